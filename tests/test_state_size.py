"""Optimizer-state size: a decay/L2 transform adds nothing but one int32 per schedule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import optaxdecay as od

PARAMS = {
  "Dense_0": {"kernel": jnp.ones((16, 32)), "bias": jnp.ones(32)},
  "Dense_1": {"kernel": jnp.ones((32, 4), jnp.bfloat16), "bias": jnp.ones(4, jnp.bfloat16)},
}
SCHED = optax.linear_schedule(1e-3, 0.0, 100)


def _nbytes(tree) -> int:
  return sum(jnp.asarray(x).nbytes for x in jax.tree.leaves(tree))


OPTIMIZERS = {
  "adam": lambda: optax.adam(1e-3),
  "sgd_momentum": lambda: optax.sgd(1e-2, momentum=0.9),
  "sgd": lambda: optax.sgd(1e-2),
}
TRANSFORMS = {
  # name: (factory, position, number of schedules)
  "l2_constant": (lambda m: od.add_l2_to_grad(1e-4, mask=m), "before", 0),
  "l2_schedule": (lambda m: od.add_l2_to_grad(SCHED, mask=m), "before", 1),
  "decay_constant": (lambda m: od.decoupled_weight_decay(1e-4, mask=m), "after", 0),
  "decay_schedule": (lambda m: od.decoupled_weight_decay(SCHED, mask=m), "after", 1),
}


CASES = [(o, t, od.bias_mask) for o in OPTIMIZERS for t in TRANSFORMS] + [
  ("adam", t, None) for t in TRANSFORMS
]


@pytest.mark.parametrize(
  ("opt", "transform", "mask"),
  CASES,
  ids=[f"{o}-{t}-{'bias_mask' if m else 'all'}" for o, t, m in CASES],
)
def test_chain_state_is_the_bare_optimizers_plus_one_int32_per_schedule(opt, transform, mask):
  factory, position, n_schedules = TRANSFORMS[transform]
  base = OPTIMIZERS[opt]()
  tx = factory(mask)
  chain = optax.chain(tx, base) if position == "before" else optax.chain(base, tx)
  bare = _nbytes(base.init(PARAMS))
  state = chain.init(PARAMS)
  assert _nbytes(state) == bare + 4 * n_schedules
  # ... and stays so after an update (no state grows or changes dtype).
  _, new_state = jax.jit(chain.update)(PARAMS, state, PARAMS)
  assert _nbytes(new_state) == _nbytes(state)
  assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


@pytest.mark.parametrize(
  ("tx", "expected"),
  [
    (od.add_l2_to_grad(1e-4), optax.EmptyState()),
    (od.decoupled_weight_decay(1e-4, mask=od.bias_mask), optax.EmptyState()),
  ],
)
def test_constant_transform_state_is_empty(tx, expected):
  state = tx.init(PARAMS)
  assert state == expected
  assert jax.tree.leaves(state) == []


@pytest.mark.parametrize("factory", [od.add_l2_to_grad, od.decoupled_weight_decay])
def test_scheduled_transform_state_is_one_int32_scalar(factory):
  (leaf,) = jax.tree.leaves(factory(SCHED, mask=od.bias_mask).init(PARAMS))
  assert leaf.shape == () and leaf.dtype == jnp.int32


def test_fused_adamw_state_is_optax_adamws():
  params = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS)
  fused = od.fused_adamw(1e-3, mask=od.bias_mask).init(params)
  assert _nbytes(fused) == _nbytes(optax.adamw(1e-3, mask=od.bias_mask).init(params))
  assert _nbytes(fused) == _nbytes(optax.adam(1e-3).init(params))
