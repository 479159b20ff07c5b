"""compat under ``optax.inject_hyperparams``: every float argument injected, under ``jit``.

PyTorch users edit ``param_groups`` every step and Keras users assign to
``optimizer.learning_rate``; the Optax way is ``inject_hyperparams``. The chain a factory builds
at ``init`` (concrete values) must be the one it rebuilds inside ``update`` (traced values), so
its structure may depend only on arguments that cannot be injected. Each case is checked
against the same factory called with plain Python values: the same trajectory.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optaxdecay import compat

STEPS = 4
#: The value each float argument is injected with where its default is 0 or None: non-zero, so
#: that the branch a zero would skip runs (momentum, dampening, lr_decay, weight_decay).
NONZERO = {
  "momentum": 0.5, "dampening": 0.25, "lr_decay": 0.1, "weight_decay": 0.1,
  "initial_accumulator_value": 0.1, "adam_weight_decay": 0.05, "shrink": 0.1,
}  # fmt: skip
#: Required arguments without defaults.
REQUIRED = {"lr": 0.01, "learning_rate": 0.01, "alpha": 0.01, "weight_decay": 0.1, "b1": 0.9}
#: Matrices only (Muon refuses vectors).
MATRIX_ONLY = {"torch_muon", "scale_by_torch_muon", "scale_by_keras_muon"}


def _factories() -> list[str]:
  return sorted(
    n
    for n in compat.__all__
    if callable(getattr(compat, n)) and "_to_" not in n and not n[0].isupper()
  )


def _float_args(fn) -> tuple[dict, dict]:
  """``(floats, others)``: the factory's float arguments (to inject) and the rest (static)."""
  floats, others = {}, {}
  for p in inspect.signature(fn).parameters.values():
    value = REQUIRED.get(p.name) if p.default is inspect.Parameter.empty else p.default
    if p.name in NONZERO and (value is None or value == 0):
      value = NONZERO[p.name]
    if isinstance(value, float) and not isinstance(value, bool):
      floats[p.name] = value
    elif value is not None and p.default is inspect.Parameter.empty:
      others[p.name] = value
  return floats, others


@pytest.mark.parametrize("name", _factories())
def test_every_float_argument_can_be_injected_under_jit(name):
  factory = getattr(compat, name)
  floats, others = _float_args(factory)
  if name == "scale_by_torch_momentum":
    floats["momentum"] = 0.5
  static = tuple(n for n in inspect.signature(factory).parameters if n not in floats)
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
  if name not in MATRIX_ONLY:
    params["bias"] = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
           for _ in range(STEPS)]  # fmt: skip

  def run(tx):
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    p, s, out = params, tx.init(params), []
    for g in grads:
      u, s = step(g, s, p)
      p = optax.apply_updates(p, u)
      out.append(p)
    return out

  plain = run(factory(**floats, **others))
  injected = optax.inject_hyperparams(factory, static_args=static)(**floats, **others)
  state = injected.init(params)
  assert set(floats) <= set(state.hyperparams), sorted(state.hyperparams)
  # An injected value is a float32 array where the plain call folds a Python float: the two
  # round differently, to float32 precision of the parameters' scale.
  for a, b in zip(run(injected), plain, strict=True):
    for k in a:
      scale = max(1.0, float(np.max(np.abs(b[k]))))
      np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-5 * scale, err_msg=f"{name}: {k}")
