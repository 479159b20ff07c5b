"""``optaxdecay.testing``: trajectories and step-by-step comparisons."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optaxdecay import testing as odt

PARAMS = {"layer": {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)}}


def grad_fn(params, step):
  return jax.tree.map(lambda w: w + 0.1 * step, params)


def test_trajectory_matches_python_loop():
  tx = optax.sgd(0.1, momentum=0.5)
  traj = odt.trajectory(tx, PARAMS, grad_fn, 5)
  assert traj["layer"]["kernel"].shape == (5, 2, 2)
  p, s = PARAMS, tx.init(PARAMS)
  for step in range(5):
    u, s = tx.update(grad_fn(p, jnp.asarray(step)), s, p)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(traj["layer"]["kernel"][step], p["layer"]["kernel"], rtol=1e-6)


def test_assert_equivalent_passes_and_reports():
  div = odt.assert_equivalent(optax.sgd(0.1), optax.sgd(0.1), PARAMS, grad_fn, 4)
  assert div.step is None and div.max_abs == 0.0


def _nudge_bias_from_step(k):
  """An optimizer wrapper that adds 1e-3 to the bias update from step ``k`` on."""

  def init(params):
    return jnp.zeros([], jnp.int32)

  def update(updates, count, params=None):
    updates = dict(updates, layer=dict(updates["layer"]))
    updates["layer"]["bias"] = updates["layer"]["bias"] + jnp.where(count >= k, 1e-3, 0.0)
    return updates, count + 1

  return optax.GradientTransformation(init, update)


def test_assert_equivalent_names_step_and_leaf():
  """Identical until the bias is nudged at (0-based) step 2, i.e. after step 3."""
  tx = optax.sgd(0.1)
  with pytest.raises(AssertionError, match=r"after step 3 of 5, at leaf 'layer/bias'"):
    odt.assert_equivalent(tx, optax.chain(tx, _nudge_bias_from_step(2)), PARAMS, grad_fn, 5)


def test_assert_not_equivalent():
  div = odt.assert_not_equivalent(optax.sgd(0.1), optax.sgd(0.2), PARAMS, grad_fn, 3)
  assert div.step == 1
  with pytest.raises(AssertionError, match="agree at every one of 3 steps"):
    odt.assert_not_equivalent(optax.sgd(0.1), optax.sgd(0.1), PARAMS, grad_fn, 3)


def test_trajectory_bad_steps():
  with pytest.raises(ValueError, match="trajectory: `steps`"):
    odt.trajectory(optax.sgd(0.1), PARAMS, grad_fn, 0)


def test_compare_keeps_the_imaginary_part():
  a = {"w": jnp.array([[1 + 1j], [2 + 2j]], jnp.complex64)}
  b = {"w": jnp.array([[1 + 1j], [2 + 3j]], jnp.complex64)}
  div = odt.compare(a, b, rtol=1e-6, atol=0.0)
  assert (div.step, div.path) == (2, "w")
  np.testing.assert_allclose(div.max_abs, 1.0)


def test_equal_infinities_and_nans_are_equal_as_in_chex():
  traj = {"w": jnp.array([[1.0, jnp.inf], [jnp.nan, -jnp.inf]])}
  assert odt.compare(traj, traj, rtol=1e-6, atol=0.0).step is None
  other = {"w": jnp.array([[1.0, jnp.inf], [jnp.nan, jnp.inf]])}
  assert odt.compare(traj, other, rtol=1e-6, atol=0.0).step == 2
  # An optimizer that overflows to inf is equivalent to itself.
  blow_up = lambda w, step: -w  # gradient ascent on w**2 / 2 with lr 2: |w| triples each step
  div = odt.assert_equivalent(optax.sgd(2.0), optax.sgd(2.0), jnp.array(1e37), blow_up, steps=3)
  assert div.step is None


def test_steps_may_be_a_numpy_integer():
  out = odt.trajectory(optax.sgd(0.5), jnp.array(1.0), lambda w, step: w, np.int64(3))
  np.testing.assert_allclose(out, [0.5, 0.25, 0.125])
  with pytest.raises(ValueError, match="`steps` must be a positive int"):
    odt.trajectory(optax.sgd(0.5), jnp.array(1.0), lambda w, step: w, True)


@pytest.mark.parametrize("check", ["assert_equivalent", "assert_not_equivalent"])
def test_a_bad_step_count_names_the_function_called(check):
  tx = optax.sgd(0.1)
  with pytest.raises(ValueError, match=rf"^{check}: `steps` must be a positive int, got 0"):
    getattr(odt, check)(tx, tx, jnp.ones(2), lambda p, step: p, steps=0)
