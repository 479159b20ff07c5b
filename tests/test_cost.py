"""XLA's own byte count of a jitted, donated step: what the transforms add to the optimizer.

``compiled.cost_analysis()['bytes accessed']`` is deterministic for a given JAX
and backend, so the "decoupled decay is free" claim of docs/benchmarks.md
(section 1) is checked here, not only measured there. The figures are XLA:CPU's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import optaxdecay as od

pytestmark = pytest.mark.skipif(
  jax.default_backend() != "cpu", reason="the byte counts asserted here are XLA:CPU's"
)


def _params():
  # Large leaves, so that the few scalars (counts, schedule values) round away.
  return {
    "Dense_0": {"kernel": jnp.ones((256, 512)), "bias": jnp.ones(512)},
    "Dense_1": {"kernel": jnp.ones((512, 256)), "bias": jnp.ones(256)},
  }


def _words_per_param(tx: optax.GradientTransformation) -> float:
  params = _params()

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), params).compile()
  n = sum(x.size for x in jax.tree.leaves(params))
  return compiled.cost_analysis()["bytes accessed"] / 4 / n


SCHED = optax.linear_schedule(1e-4, 0.0, 100)
OPTIMIZERS = {
  "adam": lambda: optax.adam(1e-3),
  "sgd": lambda: optax.sgd(1e-2),
  "sgd(momentum)": lambda: optax.sgd(1e-2, momentum=0.9),
}


@pytest.mark.parametrize("rate", [1e-4, SCHED], ids=["constant", "schedule"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_decoupled_decay_adds_no_bytes(opt, rate):
  bare = _words_per_param(OPTIMIZERS[opt]())
  decayed = _words_per_param(
    optax.chain(OPTIMIZERS[opt](), od.decoupled_weight_decay(rate, mask=od.bias_mask))
  )
  assert decayed == pytest.approx(bare, abs=0.01), (opt, bare, decayed)


def test_l2_adds_no_bytes_to_plain_sgd():
  bare = _words_per_param(optax.sgd(1e-2))
  l2 = _words_per_param(optax.chain(od.add_l2_to_grad(1e-4, mask=od.bias_mask), optax.sgd(1e-2)))
  assert l2 == pytest.approx(bare, abs=0.01), (bare, l2)


def test_the_counter_sees_an_extra_read():
  """Control: the byte count does move when a step reads more (so the tests above can fail).

  L2 before Adam is the documented case: XLA:CPU recomputes ``g + l2*w`` in
  both moment loops, each reading ``w`` once more.
  """
  bare = _words_per_param(optax.adam(1e-3))
  l2 = _words_per_param(optax.chain(od.add_l2_to_grad(1e-4), optax.adam(1e-3)))
  assert l2 > bare + 0.5, (bare, l2)


@pytest.mark.parametrize("make", [od.decoupled_weight_decay, od.add_l2_to_grad])
def test_float_multipliers_cost_what_bools_cost(make):
  """A per-leaf multiplier folds into the scalar coefficient: no extra bytes over a bool mask."""
  bools = {"Dense_0": {"kernel": True, "bias": False}, "Dense_1": {"kernel": True, "bias": False}}
  floats = {"Dense_0": {"kernel": 1.0, "bias": 0.0}, "Dense_1": {"kernel": 0.25, "bias": 0.0}}
  for opt in ("adam", "sgd"):
    chain = lambda mask, opt=opt: (
      optax.chain(OPTIMIZERS[opt](), make(1e-4, mask=mask))
      if make is od.decoupled_weight_decay
      else optax.chain(make(1e-4, mask=mask), OPTIMIZERS[opt]())
    )
    with_bools, with_floats = _words_per_param(chain(bools)), _words_per_param(chain(floats))
    assert with_floats == pytest.approx(with_bools, abs=0.01), (opt, with_bools, with_floats)
