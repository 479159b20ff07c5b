"""Behaviour every leafwise transform shares (``_transforms._leafwise``), row by row of the
table in ``tests/helpers.py``: exact updates against each row's leaf rule, schedules on the
transform's own count, dtypes, gradient accumulation, ``inject_hyperparams``, and the errors.
What ``mask=`` means is tested in ``tests/test_selection.py``.
"""

from __future__ import annotations

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import LEAFWISE, ROWS

import optaxdecay as od


@pytest.fixture(params=LEAFWISE)
def row(request):
  return ROWS[request.param]


def _params():
  return {
    "Dense_0": {"kernel": jnp.arange(6.0).reshape(2, 3) - 2.5, "bias": jnp.ones(3)},
    "scale": jnp.full((3,), 2.0),
  }


def _updates(params):
  return jax.tree.map(lambda x: jnp.full_like(x, 0.5), params)


def _expected(row, params, c, selected):
  return jax.tree.map(
    lambda w, sel: row.rule(jnp.full_like(w, 0.5), w, c) if sel else jnp.full_like(w, 0.5),
    params,
    selected,
  )


@pytest.mark.parametrize("jit", [False, True])
def test_constant_exact_update(row, jit):
  params = _params()
  tx = row.make(0.1)
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  assert state == optax.EmptyState()
  out, _ = update(_updates(params), state, params)
  selected = jax.tree.map(lambda _: True, params)
  chex.assert_trees_all_close(out, _expected(row, params, 0.1, selected), rtol=1e-6)


def test_bias_mask_leaves_biases_untouched(row):
  params = _params()
  tx = row.make(0.1, mask=od.bias_mask)
  out, _ = tx.update(_updates(params), tx.init(params), params)
  selected = {"Dense_0": {"kernel": True, "bias": False}, "scale": True}
  chex.assert_trees_all_equal(out["Dense_0"]["bias"], jnp.full((3,), 0.5))
  chex.assert_trees_all_close(out, _expected(row, params, 0.1, selected), rtol=1e-6)


def test_schedule_evaluated_on_own_count(row):
  params = {"w": jnp.ones(2)}
  sched = lambda count: 0.01 * (count + 1)
  tx = row.make(sched)
  state = tx.init(params)
  assert isinstance(state, od.ScheduleState)
  for step in range(4):
    assert int(state.count) == step
    out, state = jax.jit(tx.update)({"w": jnp.zeros(2)}, state, params)
    np.testing.assert_allclose(out["w"], row.zero_grad(np.ones(2), 0.01 * (step + 1)), rtol=1e-6)


def test_python_zero_is_identity(row):
  params = _params()
  tx = row.make(0)
  u = _updates(params)
  out, _ = tx.update(u, tx.init(params), params)
  chex.assert_trees_all_equal(out, u)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_dtype_preserved_with_schedule(row, dtype):
  """A float32 schedule value must not promote low-precision updates."""
  params = {"w": jnp.ones(4, dtype)}
  tx = row.make(optax.constant_schedule(0.25))
  out, _ = tx.update({"w": jnp.zeros(4, dtype)}, tx.init(params), params)
  assert out["w"].dtype == dtype


def test_multisteps_schedule_advances_once_per_real_step(row):
  """Under gradient accumulation the decay acts (and counts) once per real step."""
  params = {"w": jnp.ones(3)}
  k = 4
  inner = optax.chain(row.make(lambda count: 0.1 * (count + 1)), optax.sgd(1.0))
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
  # SGD(1.0) negates the update the transform makes of a zero gradient: c_t = 0.1, 0.2, 0.3.
  expected, w = [], 1.0
  for t in range(3):
    w = w - row.zero_grad(w, 0.1 * (t + 1))
    expected.append(w)
  np.testing.assert_allclose(applied, expected, rtol=1e-6)


def test_inject_hyperparams_live_value(row):
  params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
  inject = optax.inject_hyperparams(row.factory, static_args=row.static)
  tx = inject(**{**row.kwargs, row.arg: 0.1}, mask=od.bias_mask)
  state = tx.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  out, state = jax.jit(tx.update)(zeros, state, params)
  np.testing.assert_allclose(out["w"], row.zero_grad(np.ones(2), 0.1), rtol=1e-6)
  state.hyperparams[row.arg] = jnp.asarray(0.3)
  out, state = jax.jit(tx.update)(zeros, state, params)
  np.testing.assert_allclose(out["w"], row.zero_grad(np.ones(2), 0.3), rtol=1e-6)
  np.testing.assert_array_equal(out["bias"], np.zeros(2))


def test_inject_hyperparams_mask_trap_raises(row):
  """Without ``static_args=('mask',)`` Optax calls the mask with the step count.

  ``optax.adamw`` then silently stops decaying (shown below); ours refuses.
  """
  params = {"w": jnp.ones(2), "bias": jnp.ones(2)}
  kwargs = {**row.kwargs, row.arg: 0.1}
  with pytest.raises(TypeError, match="static_args=\\('mask',\\)"):
    optax.inject_hyperparams(row.factory)(**kwargs, mask=od.bias_mask).init(params)
  # A user's own mask function gets a bool array, which the factory rejects.
  user_mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  with pytest.raises(TypeError, match="static_args"):
    optax.inject_hyperparams(row.factory)(**kwargs, mask=user_mask).init(params)


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
def test_bad_constant_raises(row, bad):
  with pytest.raises(ValueError, match=f"{row.fn}: `{row.arg}`"):
    row.make(bad)


def test_bad_schedule_raises_at_construction(row):
  with pytest.raises(ValueError, match=f"{row.fn}: .*schedule's value at step 0"):
    row.make(lambda count: -0.1 + 0.0 * count)


def test_schedule_that_fails_raises(row):
  def broken(count):
    raise RuntimeError("boom")

  with pytest.raises(TypeError, match=f"{row.fn}: .*schedule.*boom"):
    row.make(broken)


@pytest.mark.parametrize("bad", [True, None, "0.1", jnp.ones(3)])
def test_non_scalar_raises(row, bad):
  with pytest.raises(TypeError, match=row.fn):
    row.make(bad)


@pytest.mark.parametrize("factor", [1.0, 1.5])
def test_a_coefficient_at_its_upper_bound_raises_and_unbounded_ones_do_not(row, factor):
  """A decay rate removes that fraction per step: >= 1 zeroes or flips the weights. An L2
  coefficient (the lr scales it) and a proximal rate (it divides) have no upper bound."""
  if row.upper is None:
    row.make(5.0 * factor)
    return
  with pytest.raises(ValueError, match=f"{row.fn}: `.*{row.arg}` must be < 1"):
    row.make(row.upper * factor)


def test_mask_with_non_bool_leaf_raises(row):
  name, make = row.fn, row.make
  with pytest.raises(TypeError, match=f"{name}: `mask` leaf at 'w'"):
    make(0.1, mask={"w": 1})
  # A traced mask leaf (what a mask computed inside jit gives) cannot be static: the hint says
  # how inject_hyperparams produces one. A concrete 0-d JAX bool is accepted, as in Optax.
  with pytest.raises(TypeError, match=f"{name}: `mask` leaf at 'w'.*static_args"):
    jax.jit(lambda m: make(0.1, mask={"w": m}).init({"w": jnp.ones(2)}))(jnp.array(True))
  make(0.1, mask={"w": jnp.array(True)}).init({"w": jnp.ones(2)})


def test_non_float_leaf_selected_raises(row):
  name, make = row.fn, row.make
  params = {"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}
  with pytest.raises(TypeError, match=f"{name}: `mask` selects the leaf 'step'"):
    make(0.1).init(params)
  tx = make(0.1, mask={"w": True, "step": False})
  out, _ = tx.update({"w": jnp.zeros(2), "step": jnp.zeros((), jnp.int32)}, tx.init(params), params)
  assert out["step"].dtype == jnp.int32


def test_updates_params_mismatch_raises(row):
  name, make = row.fn, row.make
  tx = make(0.1)
  params = {"a": jnp.ones(2), "b": jnp.ones(2)}
  with pytest.raises(ValueError, match=f"{name}: `updates` and `params` have different"):
    tx.update({"a": jnp.ones(2)}, tx.init(params), params)


@pytest.mark.parametrize("bad", [True, False])
def test_root_bool_mask_raises(row, bad):
  name, make = row.fn, row.make
  with pytest.raises(TypeError, match=f"{name}: `mask={bad}` is a single bool"):
    make(0.1, mask=bad)


# --- Where users arrive: a framework's `weight_decay` in place of a per-step rate. ---


def _rate_entry_points():
  """Every public function that takes a per-step ``rate``: ``call(rate, mask)`` builds it and,
  for the transforms, resolves the mask (``init``)."""
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}

  def transform(make):
    return lambda rate, mask=None: make(rate, mask=mask).init(params)

  return {
    "decoupled_weight_decay": transform(od.decoupled_weight_decay),
    "proximal_weight_decay": transform(od.proximal_weight_decay),
    "decay_rate_to_l2": lambda rate, mask=None: od.decay_rate_to_l2(rate, 0.1),
    "timescale_from_rate": lambda rate, mask=None: od.timescale_from_rate(
      rate, dataset_size=1_000, batch_size=10
    ),
    "decay_precision_report": lambda rate, mask=None: od.diagnostics.decay_precision_report(
      params, rate if not callable(rate) else rate(0), mask=mask
    ),
  }


RATE_ENTRY_POINTS = _rate_entry_points()


@pytest.mark.parametrize("name", list(RATE_ENTRY_POINTS))
def test_a_torch_weight_decay_pasted_as_a_per_step_rate_warns_with_the_spelling_to_use(name):
  call = RATE_ENTRY_POINTS[name]
  with pytest.warns(od.PerStepRateWarning) as record:
    call(0.1)
  message = str(record[0].message)
  assert issubclass(record[0].category, UserWarning)
  assert message.startswith(f"{name}: `rate`=0.1 removes 10% of each weight per step")
  assert "a timescale of 10 steps" in message
  assert "decoupled_weight_decay(weight_decay=0.1, learning_rate=lr)" in message
  with pytest.warns(od.PerStepRateWarning, match=r"timescale of 100 steps"):
    call(1e-2)


@pytest.mark.parametrize("name", list(RATE_ENTRY_POINTS))
def test_a_plausible_per_step_rate_and_small_per_leaf_rates_do_not_warn(name):
  call = RATE_ENTRY_POINTS[name]
  with warnings.catch_warnings():
    warnings.simplefilter("error", od.PerStepRateWarning)
    call(1e-4)
    call(9.9e-3)
    if name not in ("decay_rate_to_l2", "timescale_from_rate"):  # these take no mask
      # scenic's spelling: the rate is 1.0, the decay values are the multipliers
      call(0.999, mask=od.decay_multipliers([(".*kernel.*", 1e-4)]))
      call(0.999, mask={"kernel": 1e-4, "bias": 0.0})


def test_a_schedule_warns_on_its_peak_and_a_multiplier_decides_once_known():
  warmup_to_a_torch_wd = optax.warmup_cosine_decay_schedule(0.0, 0.1, 100, 10_000)
  with pytest.warns(od.PerStepRateWarning, match=r"\(the schedule's peak\).*weight_decay=wd"):
    od.decoupled_weight_decay(warmup_to_a_torch_wd)
  with warnings.catch_warnings():
    warnings.simplefilter("error", od.PerStepRateWarning)
    od.decoupled_weight_decay(optax.warmup_cosine_decay_schedule(0.0, 1e-4, 100, 10_000))
    tx = od.decoupled_weight_decay(0.05, mask=lambda p: {"kernel": 0.1, "bias": 0.0})
  params = {"kernel": jnp.ones(2), "bias": jnp.ones(2)}
  tx.init(params)  # 0.05 x 0.1 = 5e-3 per step: plausible
  big = od.decoupled_weight_decay(5e-3, mask=lambda p: {"kernel": 4.0, "bias": 0.0})
  with pytest.warns(od.PerStepRateWarning, match=r"multiplier 4 \(at 'kernel'\)"):
    big.init(params)  # known once the mask function runs: 2e-2 per step


def test_the_framework_conventions_do_not_warn():
  """A `weight_decay` given as one (our keyword, or a compat optimizer) is what the user meant."""
  with warnings.catch_warnings():
    warnings.simplefilter("error", od.PerStepRateWarning)
    od.decoupled_weight_decay(weight_decay=0.1, learning_rate=1e-3)
    od.proximal_weight_decay(weight_decay=0.1, learning_rate=1e-3)
    od.fused_adamw(1e-3, weight_decay=0.1)
    od.compat.torch_adamw(1e-3, weight_decay=0.1)
    od.compat.keras_adamw(1e-3, weight_decay=0.1)


@pytest.mark.parametrize("with_mask", [False, True])
def test_weight_decay_with_a_learning_rate_schedule_is_optax_adamw_step_for_step(with_mask):
  """The one spelling for a framework's weight_decay: the same trajectory as optax.adamw with
  the same warmup schedule (a constant decay would decay at full strength during warmup)."""
  from optaxdecay import testing

  lr = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 40)
  mask = od.bias_mask if with_mask else None
  ours = optax.chain(
    optax.adam(lr), od.decoupled_weight_decay(weight_decay=0.5, learning_rate=lr, mask=mask)
  )
  theirs = optax.adamw(lr, weight_decay=0.5, mask=mask)
  params = {"kernel": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "bias": jnp.ones(3)}
  grad_fn = lambda p, step: jax.tree.map(lambda w: jnp.sin(w + step), p)
  testing.assert_equivalent(ours, theirs, params, grad_fn, steps=40, rtol=1e-6, atol=1e-7)
  constant = optax.chain(optax.adam(lr), od.decoupled_weight_decay(1e-2 * 0.5, mask=mask))
  testing.assert_not_equivalent(constant, theirs, params, grad_fn, steps=40)


@pytest.mark.parametrize(
  ("kwargs", "match"),
  [
    ({"rate": 1e-4, "weight_decay": 0.1, "learning_rate": 1e-3}, "pass either `rate`.*not both"),
    ({"rate": 1e-4, "learning_rate": 1e-3}, "pass either `rate`.*not both"),
    ({"weight_decay": 0.1}, "missing `learning_rate`"),
    ({"learning_rate": 1e-3}, "missing `rate`, or `weight_decay`"),
    ({}, "missing `rate`, or `weight_decay`"),
  ],
)
@pytest.mark.parametrize("factory", [od.decoupled_weight_decay, od.proximal_weight_decay])
def test_the_two_conventions_are_given_one_at_a_time(factory, kwargs, match):
  with pytest.raises(TypeError, match=f"{factory.__name__}: {match}"):
    factory(**kwargs)
