"""Decay toward a reference point (``anchor=``): L2-SP / L2-Init, exactly.

The theory extends: with plain SGD, ``add_l2_to_grad(l2, anchor=w0)`` (the gradient of
``(l2/2)||w - w0||^2``) equals ``decoupled_weight_decay(lr * l2, anchor=w0)`` step for step,
schedules included; with Adam it does not.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import testing as odt

STEPS = 150


def _lr(kind):
  return 0.3 if kind == "constant" else optax.warmup_cosine_decay_schedule(0.0, 0.5, 20, STEPS)


@pytest.mark.parametrize("lr_kind", ["constant", "schedule"])
@pytest.mark.parametrize("mask", [None, "bias_mask", "multipliers"])
@pytest.mark.parametrize(
  "x64,rtol,atol", [(False, 1e-5, 1e-6), (True, 1e-12, 1e-14)], ids=["float32", "float64"]
)
def test_sgd_l2_sp_equals_decoupled_decay_toward_the_anchor(
  lr_kind, mask, x64, rtol, atol, make_digits
):
  with jax.enable_x64(x64):
    problem = make_digits(jnp.float64 if x64 else jnp.float32)
    masks = {
      None: None,
      "bias_mask": od.bias_mask,
      "multipliers": od.decay_multipliers([("Dense_0/kernel", 1.0), ("Dense_1/kernel", 0.25)]),
    }
    m, lr, l2 = masks[mask], _lr(lr_kind), 1e-2
    # The anchor: "pretrained" weights, away from both zero and the start.
    w0 = jax.tree.map(lambda w: 0.5 * w + 0.05, problem.params)
    tx_l2 = optax.chain(od.add_l2_to_grad(l2, mask=m, anchor=w0), optax.sgd(lr))
    tx_wd = optax.chain(
      optax.sgd(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(l2, lr), mask=m, anchor=w0)
    )
    div = odt.assert_equivalent(
      tx_l2, tx_wd, problem.params, problem.grad_fn, STEPS, rtol=rtol, atol=atol
    )
    # Toward the anchor is not toward zero: the two regularizers end far apart.
    to_zero = odt.trajectory(
      optax.chain(od.add_l2_to_grad(l2, mask=m), optax.sgd(lr)),
      problem.params,
      problem.grad_fn,
      STEPS,
    )
    to_w0 = odt.trajectory(tx_l2, problem.params, problem.grad_fn, STEPS)
    gap = max(jax.tree.leaves(jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), to_zero, to_w0)))
    assert float(gap) > 1e3 * max(div.max_abs, atol)


def test_adam_l2_sp_is_not_decoupled_decay_toward_the_anchor(digits32):
  problem = digits32
  w0 = jax.tree.map(lambda w: 0.5 * w, problem.params)
  lr, l2 = 1e-2, 1e-2
  adam_l2 = optax.chain(od.add_l2_to_grad(l2, anchor=w0), optax.adam(lr))
  adam_wd = optax.chain(optax.adam(lr), od.decoupled_weight_decay(lr * l2, anchor=w0))
  div = odt.assert_not_equivalent(adam_l2, adam_wd, problem.params, problem.grad_fn, 100)
  assert div.max_rel > 1e-2


def test_init_anchor_is_the_params_at_init_and_only_displacement_decays():
  params = {"w": jnp.array([1.0, -2.0, 3.0]), "bias": jnp.ones(2)}
  for make, sign in ((od.decoupled_weight_decay, -1), (od.add_l2_to_grad, 1)):
    tx = make(0.5, anchor="init", mask=od.bias_mask)
    state = tx.init(params)
    assert isinstance(state, od.AnchorState)
    chex.assert_trees_all_equal(state.anchor, {"w": params["w"], "bias": None})
    moved = {"w": params["w"] + jnp.array([2.0, 0.0, -4.0]), "bias": jnp.full(2, 5.0)}
    u, state = tx.update(jax.tree.map(jnp.zeros_like, moved), state, moved)
    np.testing.assert_allclose(u["w"], sign * 0.5 * np.array([2.0, 0.0, -4.0]))
    np.testing.assert_array_equal(u["bias"], 0.0)
    assert int(state.count) == 1


def test_unselected_leaves_cost_no_memory_and_the_anchor_is_a_copy():
  params = {"w": jnp.ones((64, 64)), "bias": jnp.ones(64)}
  state = od.decoupled_weight_decay(0.1, anchor="init", mask=od.bias_mask).init(params)
  assert state.anchor["bias"] is None
  assert sum(x.size for x in jax.tree.leaves(state.anchor)) == 64 * 64
  assert state.anchor["w"] is not params["w"]
  # Donating the params to the next step must not invalidate the anchor.
  step = jax.jit(lambda p: jax.tree.map(lambda x: x * 2, p), donate_argnums=0)
  step(params)
  np.testing.assert_array_equal(state.anchor["w"], 1.0)


def test_cautious_and_proximal_toward_the_anchor():
  w0 = {"w": jnp.array([1.0, 1.0])}
  w = {"w": jnp.array([3.0, 3.0])}
  u = {"w": jnp.array([-0.1, 0.1])}  # towards the anchor, away from it
  cautious = od.decoupled_weight_decay(0.5, cautious=True, anchor=w0)
  out, _ = cautious.update(u, cautious.init(w), w)
  np.testing.assert_allclose(out["w"], [-0.1 - 0.5 * 2.0, 0.1])  # gated on u * (w - w0) <= 0
  prox = od.proximal_weight_decay(0.25, anchor=w0)
  out, _ = prox.update(u, prox.init(w), w)
  new = optax.apply_updates(w, out)["w"]
  np.testing.assert_allclose(new, (w["w"] + u["w"] + 0.25 * w0["w"]) / 1.25, rtol=1e-6)


def test_schedule_runs_on_the_anchor_states_count():
  sched = optax.linear_schedule(0.5, 0.0, 4)
  tx = od.decoupled_weight_decay(sched, anchor="init")
  params = {"w": jnp.zeros(1)}
  state = tx.init(params)
  moved = {"w": jnp.ones(1)}
  got = []
  for _ in range(3):
    u, state = tx.update({"w": jnp.zeros(1)}, state, moved)
    got.append(float(-u["w"][0]))
  np.testing.assert_allclose(got, [0.5, 0.375, 0.25])


def test_inside_masked_multisteps_and_inject_hyperparams():
  params = {"a": jnp.full(2, 3.0), "b": jnp.full(2, 3.0)}
  w0 = {"a": jnp.ones(2), "b": jnp.ones(2)}
  zero = jax.tree.map(jnp.zeros_like, params)
  masked = optax.masked(od.decoupled_weight_decay(0.5, anchor=w0), {"a": True, "b": False})
  out, _ = jax.jit(masked.update)(zero, masked.init(params), params)
  np.testing.assert_allclose(out["a"], -1.0)
  np.testing.assert_array_equal(out["b"], 0.0)
  injected = optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.5, anchor="init")
  state = injected.init(w0)
  state.hyperparams["rate"] = jnp.asarray(0.25)
  out, _ = jax.jit(injected.update)(zero, state, params)
  np.testing.assert_allclose(out["a"], -0.5)
  multi = optax.MultiSteps(
    optax.chain(optax.sgd(0.0), od.decoupled_weight_decay(0.5, anchor=w0)), every_k_schedule=2
  )
  state = multi.init(params)
  p = params
  for _ in range(4):
    u, state = multi.update(zero, state, p)
    p = optax.apply_updates(p, u)
  np.testing.assert_allclose(p["a"], 1.0 + 2.0 * 0.5**2)  # two real steps toward w0


def test_checkpoint_round_trip_resumes_bit_identically():
  serialization = pytest.importorskip("flax.serialization", reason="flax is in the [test] extra")
  params = {"w": jnp.linspace(-1.0, 1.0, 8)}
  tx = optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(1e-2, anchor="init"))
  grad = lambda p, t: jax.tree.map(lambda x: jnp.cos(x + t), p)

  @jax.jit
  def step(p, s, t):
    u, s = tx.update(grad(p, t), s, p)
    return optax.apply_updates(p, u), s

  p, s = params, tx.init(params)
  for t in range(3):
    p, s = step(p, s, t)
  restored = serialization.from_bytes(tx.init(params), serialization.to_bytes(s))
  a, b = (p, s), (p, restored)
  for t in range(3, 6):
    a = step(*a, t)
    b = step(*b, t)
  chex.assert_trees_all_equal(a, b)


def test_map_params_derives_the_anchors_sharding():
  params = {"w": jnp.ones((4, 2)), "bias": jnp.ones(2)}
  tx = optax.chain(optax.adam(1e-3), od.decoupled_weight_decay(1e-3, anchor="init"))
  specs = optax.tree.map_params(tx, lambda p: p.shape, tx.init(params))
  assert specs[1].anchor == {"w": (4, 2), "bias": (2,)}
  # With a mask the anchor keeps only the decayed leaves; map_params maps what is there.
  masked = optax.chain(
    optax.adam(1e-3), od.decoupled_weight_decay(1e-3, anchor="init", mask=od.bias_mask)
  )
  specs = optax.tree.map_params(masked, lambda p: p.shape, masked.init(params))
  assert specs[1].anchor == {"w": (4, 2), "bias": None}


@pytest.mark.parametrize(
  ("anchor", "error", "match"),
  [
    ("zero", ValueError, r"`anchor='zero'`: pass None"),
    (lambda p: p, TypeError, "`anchor` must be None, 'init' or a pytree"),
  ],
)
def test_bad_anchor_raises_at_construction(anchor, error, match):
  for make in (od.add_l2_to_grad, od.decoupled_weight_decay, od.proximal_weight_decay):
    with pytest.raises(error, match=match):
      make(0.1, anchor=anchor)


def test_anchor_that_does_not_fit_the_params_raises_at_init():
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  cases = [
    ({"w": jnp.ones((2, 2))}, ValueError, "`anchor` does not match the params: the parameter 'b'"),
    (
      {"w": jnp.ones((2, 2)), "b": jnp.ones(2), "c": jnp.ones(1)},
      ValueError,
      "`anchor` does not match the params: the anchor path 'c' names no parameter",
    ),
    ({"w": jnp.ones((1, 2)), "b": jnp.ones(2)}, ValueError, r"`anchor` at 'w' has shape \(1, 2\)"),
    ({"w": jnp.ones((2, 2), jnp.int32), "b": jnp.ones(2)}, TypeError, "`anchor` at 'w' has dtype"),
  ]
  for anchor, error, match in cases:
    with pytest.raises(error, match=f"decoupled_weight_decay: {match}"):
      od.decoupled_weight_decay(0.1, anchor=anchor).init(params)
