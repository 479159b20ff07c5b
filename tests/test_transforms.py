"""Behaviour shared by every transform built on ``_core.leafwise_transform``.

Each test runs on both public transforms: ``add_l2_to_grad`` (``g + c w``) and
``decoupled_weight_decay`` (``u - c w``).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od

TRANSFORMS = {
  "add_l2_to_grad": (od.add_l2_to_grad, +1.0),
  "decoupled_weight_decay": (od.decoupled_weight_decay, -1.0),
}


@pytest.fixture(params=list(TRANSFORMS))
def transform(request):
  """``(name, factory, sign)``: the update is ``u + sign * c * w``."""
  make, sign = TRANSFORMS[request.param]
  return request.param, make, sign


def _params():
  return {
    "Dense_0": {"kernel": jnp.arange(6.0).reshape(2, 3) - 2.5, "bias": jnp.ones(3)},
    "scale": jnp.full((3,), 2.0),
  }


def _updates(params):
  return jax.tree.map(lambda x: jnp.full_like(x, 0.5), params)


def _expected(params, c, sign, selected):
  return jax.tree.map(
    lambda w, sel: 0.5 + sign * c * w if sel else jnp.full_like(w, 0.5), params, selected
  )


@pytest.mark.parametrize("jit", [False, True])
def test_constant_exact_update(transform, jit):
  _, make, sign = transform
  params = _params()
  tx = make(0.1)
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  assert state == optax.EmptyState()
  out, _ = update(_updates(params), state, params)
  selected = jax.tree.map(lambda _: True, params)
  chex.assert_trees_all_close(out, _expected(params, 0.1, sign, selected), rtol=1e-6)


def test_bias_mask_leaves_biases_untouched(transform):
  _, make, sign = transform
  params = _params()
  tx = make(0.1, mask=od.bias_mask)
  out, _ = tx.update(_updates(params), tx.init(params), params)
  chex.assert_trees_all_equal(out["Dense_0"]["bias"], jnp.full((3,), 0.5))
  chex.assert_trees_all_close(
    out["Dense_0"]["kernel"], 0.5 + sign * 0.1 * params["Dense_0"]["kernel"]
  )
  chex.assert_trees_all_close(out["scale"], 0.5 + sign * 0.1 * params["scale"])


def test_prefix_mask(transform):
  _, make, sign = transform
  params = _params()
  tx = make(0.1, mask={"Dense_0": False, "scale": True})
  out, _ = tx.update(_updates(params), tx.init(params), params)
  selected = {"Dense_0": {"kernel": False, "bias": False}, "scale": True}
  chex.assert_trees_all_close(out, _expected(params, 0.1, sign, selected))


def test_schedule_evaluated_on_own_count(transform):
  _, make, sign = transform
  params = {"w": jnp.ones(2)}
  sched = lambda count: 0.01 * (count + 1)
  tx = make(sched)
  state = tx.init(params)
  assert isinstance(state, od.ScheduleState)
  for step in range(4):
    assert int(state.count) == step
    out, state = jax.jit(tx.update)({"w": jnp.zeros(2)}, state, params)
    np.testing.assert_allclose(out["w"], sign * 0.01 * (step + 1) * np.ones(2), rtol=1e-6)


def test_python_zero_is_identity(transform):
  _, make, _ = transform
  params = _params()
  tx = make(0)
  u = _updates(params)
  out, _ = tx.update(u, tx.init(params), params)
  chex.assert_trees_all_equal(out, u)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_dtype_preserved_with_schedule(transform, dtype):
  """A float32 schedule value must not promote low-precision updates."""
  _, make, _ = transform
  params = {"w": jnp.ones(4, dtype)}
  tx = make(optax.constant_schedule(0.25))
  out, _ = tx.update({"w": jnp.zeros(4, dtype)}, tx.init(params), params)
  assert out["w"].dtype == dtype


def test_inside_optax_masked(transform):
  _, make, sign = transform
  params = _params()
  tx = optax.masked(make(0.1), {"Dense_0": {"kernel": True, "bias": False}, "scale": False})
  out, _ = tx.update(_updates(params), tx.init(params), params)
  selected = {"Dense_0": {"kernel": True, "bias": False}, "scale": False}
  chex.assert_trees_all_close(out, _expected(params, 0.1, sign, selected))


def test_multisteps_schedule_advances_once_per_real_step(transform):
  """Under gradient accumulation the decay acts (and counts) once per real step."""
  _, make, sign = transform
  params = {"w": jnp.ones(3)}
  k = 4
  inner = optax.chain(make(lambda count: 0.1 * (count + 1)), optax.sgd(1.0))
  tx = optax.MultiSteps(inner, every_k_schedule=k)
  state = tx.init(params)
  p = params
  applied = []
  for i in range(3 * k):
    u, state = jax.jit(tx.update)({"w": jnp.zeros(3)}, state, p)
    p = optax.apply_updates(p, u)
    if (i + 1) % k == 0:
      applied.append(p["w"][0])
    else:
      chex.assert_trees_all_equal(u, {"w": jnp.zeros(3)})
  assert int(state.inner_opt_state[0].count) == 3
  # SGD(1.0) negates: w <- w - sign * c_t * w with c_t = 0.1, 0.2, 0.3.
  expected, w = [], 1.0
  for t in range(3):
    w = w * (1 - sign * 0.1 * (t + 1))
    expected.append(w)
  np.testing.assert_allclose(applied, expected, rtol=1e-6)


def test_inject_hyperparams_live_value(transform):
  name, make, sign = transform
  arg = "l2" if name == "add_l2_to_grad" else "rate"
  params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
  tx = optax.inject_hyperparams(make, static_args=("mask",))(**{arg: 0.1}, mask=od.bias_mask)
  state = tx.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  out, state = jax.jit(tx.update)(zeros, state, params)
  np.testing.assert_allclose(out["w"], sign * 0.1 * np.ones(2), rtol=1e-6)
  state.hyperparams[arg] = jnp.asarray(0.3)
  out, state = jax.jit(tx.update)(zeros, state, params)
  np.testing.assert_allclose(out["w"], sign * 0.3 * np.ones(2), rtol=1e-6)
  np.testing.assert_array_equal(out["bias"], np.zeros(2))


def test_inject_hyperparams_mask_trap_raises(transform):
  """Without ``static_args=('mask',)`` Optax calls the mask with the step count.

  ``optax.adamw`` then silently stops decaying (shown below); ours refuses.
  """
  name, make, _ = transform
  arg = "l2" if name == "add_l2_to_grad" else "rate"
  params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
  with pytest.raises(TypeError, match="static_args=\\('mask',\\)"):
    optax.inject_hyperparams(make)(**{arg: 0.1}, mask=od.bias_mask).init(params)
  # A user's own mask function gets a bool array, which the factory rejects.
  user_mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  with pytest.raises(TypeError, match="static_args"):
    optax.inject_hyperparams(make)(**{arg: 0.1}, mask=user_mask).init(params)


def test_optax_adamw_trap_is_real():
  """The pitfall we guard against: Optax's adamw silently loses its decay."""
  params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
  user_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 1, p)
  trapped = optax.inject_hyperparams(optax.adamw)(
    learning_rate=0.1, weight_decay=0.5, mask=user_mask
  )
  correct = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
    learning_rate=0.1, weight_decay=0.5, mask=user_mask
  )
  zeros = jax.tree.map(jnp.zeros_like, params)
  out_trapped, _ = trapped.update(zeros, trapped.init(params), params)
  out_correct, _ = correct.update(zeros, correct.init(params), params)
  np.testing.assert_array_equal(out_trapped["w"], np.zeros(2))  # no decay at all
  assert float(jnp.abs(out_correct["w"]).min()) > 0


# --- Errors: each names the transform and the argument. ---


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), -float("inf")])
def test_bad_constant_raises(transform, bad):
  name, make, _ = transform
  arg = "l2" if name == "add_l2_to_grad" else "rate"
  with pytest.raises(ValueError, match=f"{name}: `{arg}`"):
    make(bad)


def test_bad_schedule_raises_at_construction(transform):
  name, make, _ = transform
  with pytest.raises(ValueError, match=f"{name}: .*schedule's value at step 0"):
    make(lambda count: -0.1 + 0.0 * count)


def test_schedule_that_fails_raises(transform):
  name, make, _ = transform

  def broken(count):
    raise RuntimeError("boom")

  with pytest.raises(TypeError, match=f"{name}: .*schedule.*boom"):
    make(broken)


@pytest.mark.parametrize("bad", [True, None, "0.1", jnp.ones(3)])
def test_non_scalar_raises(transform, bad):
  name, make, _ = transform
  with pytest.raises(TypeError, match=name):
    make(bad)


@pytest.mark.parametrize("rate", [1.0, 1.5])
def test_decay_rate_at_least_one_raises(rate):
  with pytest.raises(ValueError, match="decoupled_weight_decay: `rate` must be < 1"):
    od.decoupled_weight_decay(rate)


def test_large_l2_is_allowed():
  """An L2 coefficient has no upper bound (the lr scales it)."""
  od.add_l2_to_grad(5.0)


def test_update_without_params_raises(transform):
  name, make, _ = transform
  params = _params()
  tx = make(0.1)
  with pytest.raises(ValueError, match=f"{name}: `update` needs `params`"):
    tx.update(_updates(params), tx.init(params))


def test_mask_structure_mismatch_names_path(transform):
  name, make, _ = transform
  params = _params()
  tx = make(0.1, mask={"Dense_0": {"kernel": True}, "scale": True})
  with pytest.raises(ValueError, match=f"{name}: .*'Dense_0/bias' has no entry"):
    tx.init(params)
  tx = make(0.1, mask={"Dense_0": True, "scale": True, "extra": False})
  with pytest.raises(ValueError, match=f"{name}: .*'extra' names no parameter"):
    tx.update(_updates(params), optax.EmptyState(), params)


def test_mask_with_non_bool_leaf_raises(transform):
  name, make, _ = transform
  with pytest.raises(TypeError, match=f"{name}: `mask` leaf at 'w'"):
    make(0.1, mask={"w": 1})
  # A traced mask leaf (what a mask computed inside jit gives) cannot be static: the hint says
  # how inject_hyperparams produces one. A concrete 0-d JAX bool is accepted, as in Optax.
  with pytest.raises(TypeError, match=f"{name}: `mask` leaf at 'w'.*static_args"):
    jax.jit(lambda m: make(0.1, mask={"w": m}).init({"w": jnp.ones(2)}))(jnp.array(True))
  make(0.1, mask={"w": jnp.array(True)}).init({"w": jnp.ones(2)})


def test_non_float_leaf_selected_raises(transform):
  name, make, _ = transform
  params = {"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}
  with pytest.raises(TypeError, match=f"{name}: `mask` selects the leaf 'step'"):
    make(0.1).init(params)
  tx = make(0.1, mask={"w": True, "step": False})
  out, _ = tx.update({"w": jnp.zeros(2), "step": jnp.zeros((), jnp.int32)}, tx.init(params), params)
  assert out["step"].dtype == jnp.int32


def test_updates_params_mismatch_raises(transform):
  name, make, _ = transform
  tx = make(0.1)
  params = {"a": jnp.ones(2), "b": jnp.ones(2)}
  with pytest.raises(ValueError, match=f"{name}: `updates` and `params` have different"):
    tx.update({"a": jnp.ones(2)}, tx.init(params), params)


@pytest.mark.parametrize("bad", [True, False])
def test_root_bool_mask_raises(transform, bad):
  name, make, _ = transform
  with pytest.raises(TypeError, match=f"{name}: `mask={bad}` is a single bool"):
    make(0.1, mask=bad)
