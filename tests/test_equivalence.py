"""The theory, as tests: L2 == decoupled decay under plain SGD, and only there.

* With plain SGD, ``chain(add_l2_to_grad(l2), sgd(lr))`` and
  ``chain(sgd(lr), decoupled_weight_decay(lr * l2))`` are the same update,
  ``w - lr_t (g + l2 w) = (1 - lr_t l2) w - lr_t g``, schedules included.
* With momentum or an adaptive optimizer they are not: the L2 term is
  accumulated in the momentum buffer or divided by ``sqrt(v_hat) + eps``, so
  weights with large gradients are regularized less.

Every equivalence test also checks that the regularization *matters* on the
problem (the regularized run is far from the unregularized one), so agreement
cannot come from a decay too small to see.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxdecay as od
from optaxdecay import testing as odt

STEPS = 150
L2 = 1e-2


def _distance(traj_a, traj_b) -> float:
  """Max |a - b| over all steps and leaves."""
  diffs = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), traj_a, traj_b)
  return float(max(jax.tree.leaves(diffs)))


def _lr(kind: str):
  if kind == "constant":
    return 0.3
  # Warmup then cosine decay: the learning rate changes at every step.
  return optax.warmup_cosine_decay_schedule(0.0, 0.5, 20, STEPS, end_value=0.01)


def _sgd_pair(lr, l2, mask):
  tx_l2 = optax.chain(od.add_l2_to_grad(l2, mask=mask), optax.sgd(lr))
  tx_wd = optax.chain(
    optax.sgd(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(l2, lr), mask=mask)
  )
  return tx_l2, tx_wd


# Per-leaf strengths (big_vision's wd_mults): the first layer's kernel at full strength, the
# head's at a quarter, biases none.
MULTIPLIERS = od.decay_multipliers([("Dense_0/kernel", 1.0), ("Dense_1/kernel", 0.25)])
MASKS = {"all": None, "bias_mask": od.bias_mask, "multipliers": MULTIPLIERS}


@pytest.mark.parametrize("lr_kind", ["constant", "schedule"])
@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize(
  "x64,rtol,atol", [(False, 1e-5, 1e-6), (True, 1e-12, 1e-14)], ids=["float32", "float64"]
)
def test_sgd_l2_equals_decoupled_on_digits(lr_kind, mask_kind, x64, rtol, atol, make_digits):
  with jax.enable_x64(x64):
    problem = make_digits(jnp.float64 if x64 else jnp.float32)
    mask = MASKS[mask_kind]
    lr = _lr(lr_kind)
    tx_l2, tx_wd = _sgd_pair(lr, L2, mask)
    div = odt.assert_equivalent(
      tx_l2, tx_wd, problem.params, problem.grad_fn, STEPS, rtol=rtol, atol=atol
    )
    # The regularization is not negligible: it moves the weights by far more
    # than the tolerance.
    plain = odt.trajectory(optax.sgd(lr), problem.params, problem.grad_fn, STEPS)
    reg = odt.trajectory(tx_l2, problem.params, problem.grad_fn, STEPS)
    effect = _distance(plain, reg)
    assert effect > 1e3 * max(div.max_abs, atol), (effect, div)
    if mask_kind == "multipliers":
      # The multiplier is really applied: the head's kernel is decayed, but less than at x1.
      full = odt.trajectory(
        _sgd_pair(lr, L2, od.decay_multipliers([(".*/kernel", 1.0)]))[0],
        problem.params,
        problem.grad_fn,
        STEPS,
      )
      head = lambda t: t["Dense_1"]["kernel"][-1]
      moved, moved_full = _distance(head(plain), head(reg)), _distance(head(plain), head(full))
      assert 0.1 * moved_full < moved < 0.5 * moved_full, (moved, moved_full)
    print(f"\nSGD L2 vs decoupled ({lr_kind}, {mask_kind}, x64={x64}): {div}")


def test_scheduled_l2_and_schedule_lr_equal_decoupled(digits32):
  """Both ``l2`` and ``lr`` scheduled: ``rate_t = lr_t * l2_t``."""
  problem = digits32
  lr = optax.exponential_decay(0.4, transition_steps=10, decay_rate=0.8)
  l2 = optax.linear_schedule(0.0, 5e-2, transition_steps=STEPS)
  tx_l2, tx_wd = _sgd_pair(lr, l2, od.bias_mask)
  odt.assert_equivalent(tx_l2, tx_wd, problem.params, problem.grad_fn, STEPS, rtol=1e-5, atol=1e-6)


def _random_tree(draw_shapes, seed):
  rng = np.random.default_rng(seed)
  return {
    f"layer{i}": {"kernel": rng.normal(size=shape), "bias": rng.normal(size=shape[-1:])}
    for i, shape in enumerate(draw_shapes)
  }


@settings(max_examples=20, deadline=None)
@given(
  shapes=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=3),
  seed=st.integers(0, 2**31 - 1),
  l2=st.floats(0.0, 0.5),
  lr=st.floats(1e-3, 1.0),
  curvature=st.floats(0.0, 1.0),
  use_mask=st.booleans(),
)
def test_sgd_equivalence_property(shapes, seed, l2, lr, curvature, use_mask):
  """Any pytree, ``l2``, ``lr`` and a quadratic loss: the two chains agree."""
  tree = _random_tree(shapes, seed)
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
  target = jax.tree.map(lambda x: jnp.asarray(np.cos(x), jnp.float32), tree)
  noise = jax.tree.map(lambda x: jnp.asarray(np.sin(3 * x), jnp.float32), tree)

  def grad_fn(p, step):
    sign = jnp.where(step % 2 == 0, 1.0, -1.0)
    return jax.tree.map(lambda w, t, n: curvature * (w - t) + sign * n, p, target, noise)

  tx_l2, tx_wd = _sgd_pair(lr, l2, od.bias_mask if use_mask else None)
  odt.assert_equivalent(tx_l2, tx_wd, params, grad_fn, 20, rtol=1e-5, atol=1e-6)


NOT_EQUIVALENT = {
  "sgd_momentum": lambda lr: optax.sgd(lr, momentum=0.9),
  "adam": optax.adam,
  "adagrad": optax.adagrad,
  "rmsprop": optax.rmsprop,
}
NOT_EQUIVALENT_LR = {"sgd_momentum": 0.05, "adam": 1e-3, "adagrad": 0.05, "rmsprop": 1e-3}


@pytest.mark.parametrize("name", list(NOT_EQUIVALENT))
def test_l2_and_decay_differ(name, digits32):
  """Beyond plain SGD, ``rate = lr * l2`` does not reproduce L2.

  The measure: how far the two runs end apart, relative to how far L2 moved
  the weights at all (``|w_L2 - w_decoupled| / |w_L2 - w_none|`` at the last
  step). Under plain SGD it is ~1e-6 (float rounding); here it is O(1).
  """
  lr = NOT_EQUIVALENT_LR[name]
  opt = NOT_EQUIVALENT[name](lr)
  l2 = 0.1
  tx_l2 = optax.chain(od.add_l2_to_grad(l2), opt)
  tx_wd = optax.chain(opt, od.decoupled_weight_decay(od.l2_to_decay_rate(l2, lr)))
  p, g = digits32.params, digits32.grad_fn
  div = odt.assert_not_equivalent(tx_l2, tx_wd, p, g, STEPS, rtol=1e-5, atol=1e-6)

  def last(traj):
    return jnp.concatenate([x[-1].ravel() for x in jax.tree.leaves(traj)])

  def gap(tx_a, tx_b, tx_none):
    w_a, w_b, w_none = (last(odt.trajectory(t, p, g, STEPS)) for t in (tx_a, tx_b, tx_none))
    return float(jnp.linalg.norm(w_a - w_b) / jnp.linalg.norm(w_a - w_none))

  relative = gap(tx_l2, tx_wd, opt)
  sgd_relative = gap(*_sgd_pair(lr, l2, None), optax.sgd(lr))
  print(f"\n{name}: first divergence {div}")
  print(f"relative gap {relative:.3g} (plain SGD: {sgd_relative:.3g})")
  assert relative > 0.1
  assert sgd_relative < 1e-4
  assert relative > 1e3 * sgd_relative


def _two_scale_run(tx, steps=300):
  """Coordinates with zero-mean gradients ``±100`` and ``±0.01``, both at w=1."""
  scales = jnp.array([100.0, 0.01])
  params = jnp.ones(2)

  def grad_fn(_, step):
    return scales * jnp.where(step % 2 == 0, 1.0, -1.0)

  return odt.trajectory(tx, params, grad_fn, steps)[-1]


def test_adam_l2_regularizes_large_gradient_weights_less():
  """The article's mechanism, on two coordinates.

  Adam is invariant to the gradient's scale, so without regularization both
  coordinates follow the same path. L2 adds ``l2 * w`` to the gradient before
  Adam divides by ``sqrt(v_hat) + eps``: for the ``±100`` coordinate that term
  is drowned (v_hat ~ 1e4), for the ``±0.01`` one it dominates. Decoupled
  decay is applied after Adam and shrinks both alike.
  """
  lr, l2 = 1e-2, 1e-2
  w_none = _two_scale_run(optax.adam(lr))
  w_l2 = _two_scale_run(optax.chain(od.add_l2_to_grad(l2), optax.adam(lr)))
  w_wd = _two_scale_run(optax.chain(optax.adam(lr), od.decoupled_weight_decay(lr * l2)))
  # Without regularization the two coordinates are the same (scale invariance).
  np.testing.assert_allclose(w_none[0], w_none[1], rtol=1e-5)
  shrink_l2 = 1.0 - w_l2 / w_none
  shrink_wd = 1.0 - w_wd / w_none
  print(f"\nshrink under Adam+L2: {shrink_l2}, under Adam+decoupled: {shrink_wd}")
  large, small = 0, 1
  assert shrink_l2[small] > 0.5  # the small-gradient weight is pulled hard to 0
  assert shrink_l2[large] < 1e-3 * shrink_l2[small]  # orders of magnitude less
  assert shrink_wd[large] > 0.01
  np.testing.assert_allclose(shrink_wd[large], shrink_wd[small], rtol=1e-4)


def test_sgd_momentum_l2_is_stronger_by_one_over_one_minus_mu():
  """With momentum the L2 term accumulates in the buffer: ~1/(1-mu) stronger.

  Zero gradient except the penalty: L2 under heavy-ball momentum shrinks the
  weight per step, at steady state, by ``lr * l2 / (1 - mu)``; decoupled decay
  with ``rate = lr * l2`` by exactly ``lr * l2``.
  """
  lr, l2, mu, steps = 1e-2, 1e-2, 0.9, 400
  with jax.enable_x64(True):
    params = jnp.ones((), jnp.float64)
    zero = lambda p, _: jnp.zeros_like(p)
    tx_l2 = optax.chain(od.add_l2_to_grad(l2), optax.sgd(lr, momentum=mu))
    tx_wd = optax.chain(optax.sgd(lr, momentum=mu), od.decoupled_weight_decay(lr * l2))
    w_l2 = odt.trajectory(tx_l2, params, zero, steps)
    w_wd = odt.trajectory(tx_wd, params, zero, steps)
    per_step_l2 = 1 - w_l2[-1] / w_l2[-2]
    per_step_wd = 1 - w_wd[-1] / w_wd[-2]
  np.testing.assert_allclose(per_step_wd, lr * l2, rtol=1e-9)
  np.testing.assert_allclose(per_step_l2 / per_step_wd, 1 / (1 - mu), rtol=0.02)


@pytest.mark.parametrize("make", [od.add_l2_to_grad, od.decoupled_weight_decay])
def test_jit_and_no_jit_agree(make):
  lr = optax.linear_schedule(1e-3, 1e-2, 10)
  tx = optax.chain(optax.adam(1e-2), make(od.l2_to_decay_rate(0.5, lr), mask=od.bias_mask))
  params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "bias": jnp.ones(3)}
  grads = jax.tree.map(lambda x: jnp.cos(x) + 0.1, params)

  def run(update):
    state, p, out = tx.init(params), params, []
    for _ in range(5):
      u, state = update(grads, state, p)
      p = optax.apply_updates(p, u)
      out.append(p)
    return out

  chex.assert_trees_all_close(run(tx.update), run(jax.jit(tx.update)), rtol=1e-6, atol=0)


@pytest.mark.parametrize("make", [od.add_l2_to_grad, od.decoupled_weight_decay])
def test_one_trace_across_steps(make):
  """A schedule's count lives in the state: stepping never retraces."""
  tx = optax.chain(make(optax.cosine_decay_schedule(0.1, 100), mask=od.bias_mask), optax.sgd(0.1))
  params = {"w": jnp.ones((2, 3)), "bias": jnp.ones(3)}
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(p, state):
    u, state = tx.update(jax.tree.map(jnp.ones_like, p), state, p)
    return optax.apply_updates(p, u), state

  state = tx.init(params)
  for _ in range(10):
    params, state = step(params, state)
  assert int(state[0].count) == 10
