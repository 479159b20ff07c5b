"""Checkpoints: stop at step k, save, restore into a fresh state, continue.

The resumed trajectory must be bit-identical to an uninterrupted run, for the
state of every transform (constant and scheduled: a schedule's count must come
back from the checkpoint), the framework reproductions in
``optaxdecay.compat`` included, through ``flax.serialization`` msgpack and
``orbax.checkpoint``. Sharded state is checked in ``tests/sharded_worker.py``
(run by ``test_sharding.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import compat as odc

TOTAL, STOP = 6, 3
SCHED = optax.linear_schedule(0.05, 0.005, TOTAL)

TRANSFORMS: dict[str, tuple[Callable[[], optax.GradientTransformation], int]] = {
  # name: (factory, number of schedule counts in the state)
  "add_l2_to_grad": (lambda: od.add_l2_to_grad(1e-2, mask=od.bias_mask), 0),
  "add_l2_to_grad(schedule)": (lambda: od.add_l2_to_grad(SCHED, mask=od.bias_mask), 1),
  "decoupled_weight_decay": (lambda: od.decoupled_weight_decay(1e-2, mask=od.bias_mask), 0),
  "decoupled_weight_decay(schedule)": (
    lambda: od.decoupled_weight_decay(SCHED, mask=od.bias_mask),
    1,
  ),
  "chain(add_l2_to_grad(schedule), adam)": (
    lambda: optax.chain(od.add_l2_to_grad(SCHED, mask=od.bias_mask), optax.adam(1e-2)),
    1,
  ),
  "chain(adam, decoupled_weight_decay(schedule))": (
    lambda: optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(SCHED, mask=od.bias_mask)),
    1,
  ),
  "chain(sgd(momentum), decoupled_weight_decay)": (
    lambda: optax.chain(
      optax.sgd(0.1, momentum=0.9), od.decoupled_weight_decay(1e-2, mask=od.bias_mask)
    ),
    0,
  ),
  "decoupled_weight_decay(schedule, cautious)": (
    lambda: optax.chain(
      optax.adam(1e-2),
      od.decoupled_weight_decay(SCHED, mask=od.bias_mask, cautious=True),
    ),
    1,
  ),
  "proximal_weight_decay": (lambda: od.proximal_weight_decay(1e-2, mask=od.bias_mask), 0),
  "proximal_weight_decay(schedule)": (
    lambda: optax.chain(optax.adam(1e-2), od.proximal_weight_decay(SCHED, mask=od.bias_mask)),
    1,
  ),
  # The framework reproductions in optaxdecay.compat, with their own state.
  "compat.torch_sgd(nesterov, schedule)": (
    lambda: odc.torch_sgd(SCHED, momentum=0.9, weight_decay=1e-2, nesterov=True, mask=od.bias_mask),
    1,
  ),
  "compat.torch_adam": (lambda: odc.torch_adam(1e-2, weight_decay=1e-2), 0),
  "compat.torch_adamw(schedule)": (lambda: odc.torch_adamw(SCHED, mask=od.bias_mask), 1),
  "compat.keras_sgd(momentum)": (
    lambda: odc.keras_sgd(0.05, momentum=0.9, weight_decay=1e-2, mask=od.bias_mask),
    0,
  ),
  "compat.keras_adam": (lambda: odc.keras_adam(1e-2, weight_decay=1e-2), 0),
  "compat.keras_adamw(schedule)": (lambda: odc.keras_adamw(SCHED, mask=od.bias_mask), 1),
  "compat.tfa_adamw(schedule)": (lambda: odc.tfa_adamw(SCHED, 1e-2, mask=od.bias_mask), 1),
  "compat.tfa_sgdw": (lambda: odc.tfa_sgdw(1e-3, 0.05, momentum=0.9, mask=od.bias_mask), 0),
  "compat.composer_sgdw(schedule)": (
    lambda: odc.composer_sgdw(SCHED, momentum=0.9, weight_decay=1e-2, mask=od.bias_mask),
    1,
  ),
  "compat.composer_adamw(schedule)": (
    lambda: odc.composer_adamw(SCHED, weight_decay=1e-2, mask=od.bias_mask),
    1,
  ),
  "compat.paper_adamw(schedule)": (
    lambda: odc.paper_adamw(1e-2, weight_decay=1e-2, schedule_multiplier=SCHED),
    1,
  ),
  "compat.paper_sgdw(schedule)": (
    lambda: odc.paper_sgdw(0.05, 0.9, weight_decay=1e-2, schedule_multiplier=SCHED),
    1,
  ),
  "fused_adamw(schedules)": (
    lambda: od.fused_adamw(SCHED, weight_decay=SCHED, mask=od.bias_mask, chunk_size=16),
    2,
  ),
}


def _params():
  rng = np.random.default_rng(1)
  f = lambda *s: jnp.asarray(rng.normal(0, 0.5, s), jnp.float32)
  return {
    "Dense_0": {"kernel": f(5, 7), "bias": f(7)},
    "Dense_1": {"kernel": f(7, 3), "bias": f(3)},
  }


def _make_step(tx) -> Callable:
  def grads(params, t):
    return jax.tree.map(lambda p: jnp.sin(3.0 * p + t) + 0.2, params)

  if isinstance(tx, od.FusedAdamW):
    return jax.jit(lambda p, s, t: tx.step(p, grads(p, t), s))

  def step(params, state, t):
    updates, state = tx.update(grads(params, t), state, params)
    return optax.apply_updates(params, updates), state

  return jax.jit(step)


def _run(step, params, state, steps):
  out = []
  for t in steps:
    params, state = step(params, state, jnp.float32(t))
    out.append(params)
  return params, state, out


def _msgpack_roundtrip(tree, template, tmp_path):
  from flax import serialization

  path = tmp_path / "state.msgpack"
  path.write_bytes(serialization.to_bytes(tree))
  return serialization.from_bytes(template, path.read_bytes())


def _orbax_roundtrip(tree, template, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint", reason="orbax-checkpoint is not installed")
  path = (tmp_path / "orbax").absolute()
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(path, tree)
  ckptr.wait_until_finished()
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), template)
  return ckptr.restore(path, abstract)


FORMATS = {"msgpack": _msgpack_roundtrip, "orbax": _orbax_roundtrip}


def _counts(state) -> list[int]:
  return [int(x) for x in jax.tree.leaves(state) if jnp.ndim(x) == 0]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_resume_from_checkpoint_is_bit_identical(name, fmt, tmp_path):
  if fmt == "msgpack":
    pytest.importorskip("flax.serialization", reason="flax is not installed")
  factory, n_schedules = TRANSFORMS[name]
  tx = factory()
  step = _make_step(tx)
  params = _params()
  full_params, full_state, full_traj = _run(step, params, tx.init(params), range(TOTAL))

  p, s, first = _run(step, params, tx.init(params), range(STOP))
  # Restore into a *fresh* state (counts 0), so the counts must come from disk.
  template = {"params": _params(), "opt_state": tx.init(_params())}
  restored = FORMATS[fmt]({"params": p, "opt_state": s}, template, tmp_path)
  assert jax.tree.structure(restored) == jax.tree.structure(template)
  saved = {"params": p, "opt_state": s}
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(saved), strict=True):
    assert np.asarray(a).dtype == np.asarray(b).dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Schedule counts (and Adam's count) were saved at STOP and came back.
  assert _counts(restored["opt_state"]) == _counts(s)
  scheduled = [c for c in _counts(restored["opt_state"]) if c == STOP]
  assert len(scheduled) >= n_schedules

  _, s2, second = _run(step, restored["params"], restored["opt_state"], range(STOP, TOTAL))
  for t, (a, b) in enumerate(zip(first + second, full_traj, strict=True)):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"step {t + 1}")
  for x, y in zip(jax.tree.leaves(s2), jax.tree.leaves(full_state), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # The test is not vacuous: the parameters moved.
  moved = max(
    float(jnp.max(jnp.abs(x - y)))
    for x, y in zip(jax.tree.leaves(full_params), jax.tree.leaves(params), strict=True)
  )
  assert moved > 1e-3


def test_a_lost_schedule_count_would_be_detected():
  """Control: resuming with the count reset to 0 changes the trajectory."""
  tx = od.decoupled_weight_decay(SCHED, mask=od.bias_mask)
  step = _make_step(tx)
  params = _params()
  full, _, _ = _run(step, params, tx.init(params), range(TOTAL))
  p, _, _ = _run(step, params, tx.init(params), range(STOP))
  wrong, _, _ = _run(step, p, tx.init(params), range(STOP, TOTAL))
  assert not np.array_equal(
    np.asarray(wrong["Dense_0"]["kernel"]), np.asarray(full["Dense_0"]["kernel"])
  )
