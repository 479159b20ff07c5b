"""Decay variants: cautious decay (decoupled_weight_decay(cautious=True)) and proximal decay.

Each is checked against a float64 NumPy implementation of its published equation.
"""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import testing

RNG = np.random.default_rng(0)
W0 = RNG.normal(0.0, 1.0, (5, 4))
TARGET = RNG.normal(0.0, 1.0, (5, 4))
SCALE = RNG.uniform(0.2, 2.0, (5, 4))


def quad_grad(w: np.ndarray) -> np.ndarray:
  """Gradient of 0.5 * sum(SCALE * (w - TARGET)^2): many sign patterns of (g, w)."""
  return SCALE * (w - TARGET)


def jax_grad_fn(params, step):
  del step
  return {"w": jnp.asarray(SCALE, jnp.float32) * (params["w"] - jnp.asarray(TARGET, jnp.float32))}


def params32():
  return {"w": jnp.asarray(W0, jnp.float32)}


# --- float64 references of the published equations -------------------------------------------


def ref_cautious(direction, lr, lam, steps):
  """Chen et al. 2025: x <- x - lr (d + lam 1(d*x >= 0) x), d the descent direction."""
  x = W0.copy()
  out = []
  for t in range(steps):
    d = direction(x, t)
    x = x - lr * (d + lam * (d * x >= 0) * x)
    out.append(x)
  return np.stack(out)


def adam_direction(b1=0.9, b2=0.999, eps=1e-8):
  """Adam's descent direction m_hat / (sqrt(v_hat) + eps), in float64."""
  m = np.zeros_like(W0)
  v = np.zeros_like(W0)

  def direction(x, t):
    nonlocal m, v
    g = quad_grad(x)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1 ** (t + 1))
    v_hat = v / (1 - b2 ** (t + 1))
    return m_hat / (np.sqrt(v_hat) + eps)

  return direction


def ref_proximal_adam(lr, lam, steps, b1=0.9, b2=0.999, eps=1e-8):
  """Zhuang et al. 2022: theta_t = (theta_{t-1} - lr m_hat/(sqrt(v_hat)+eps)) / (1 + lr lam)."""
  direction = adam_direction(b1, b2, eps)
  x = W0.copy()
  out = []
  for t in range(steps):
    x = (x - lr * direction(x, t)) / (1 + lr * lam)
    out.append(x)
  return np.stack(out)


# --- cautious weight decay --------------------------------------------------------------------


def test_cautious_sgd_matches_float64_paper_equation():
  lr, lam, steps = 0.05, 0.5, 30
  tx = optax.chain(optax.sgd(lr), od.decoupled_weight_decay(lr * lam, cautious=True))
  traj = testing.trajectory(tx, params32(), jax_grad_fn, steps)["w"]
  ref = ref_cautious(lambda x, t: quad_grad(x), lr, lam, steps)
  np.testing.assert_allclose(np.asarray(traj), ref, rtol=1e-5, atol=1e-6)


def test_cautious_adam_matches_float64_paper_equation():
  lr, lam, steps = 0.02, 0.5, 30
  tx = optax.chain(optax.adam(lr), od.decoupled_weight_decay(lr * lam, cautious=True))
  traj = testing.trajectory(tx, params32(), jax_grad_fn, steps)["w"]
  ref = ref_cautious(adam_direction(), lr, lam, steps)
  np.testing.assert_allclose(np.asarray(traj), ref, rtol=1e-4, atol=1e-5)


def test_cautious_differs_from_plain_decay_on_this_problem():
  # Otherwise the two tests above would not tell the variants apart.
  lr, lam, steps = 0.05, 0.5, 30
  plain = ref_cautious(lambda x, t: quad_grad(x), lr, 0.0, steps)  # no decay at all
  cwd = ref_cautious(lambda x, t: quad_grad(x), lr, lam, steps)
  x = W0.copy()
  for _ in range(steps):
    x = x - lr * (quad_grad(x) + lam * x)
  assert np.abs(cwd[-1] - x).max() > 1e-2
  assert np.abs(cwd[-1] - plain[-1]).max() > 1e-2


def test_cautious_sign_convention_in_optax_terms():
  # Optax updates are added to params: u = -lr * d. Decay where u*w <= 0, i.e. where the
  # optimizer already moves the weight towards zero (or not at all).
  w = jnp.array([1.0, 1.0, -1.0, -1.0, 2.0, 0.0])
  u = jnp.array([-0.1, 0.1, 0.1, -0.1, 0.0, 0.3])
  rate = 0.01
  tx = od.decoupled_weight_decay(rate, cautious=True)
  out, _ = tx.update({"w": u}, tx.init({"w": w}), {"w": w})
  gate = np.array([True, False, True, False, True, True])
  np.testing.assert_allclose(
    np.asarray(out["w"]), np.asarray(u) - rate * gate * np.asarray(w), rtol=0, atol=1e-8
  )
  # Where decayed, the update already shrinks |w|: |w + u| <= |w| (x != 0).
  moves_in = np.abs(np.asarray(w + u)) <= np.abs(np.asarray(w))
  np.testing.assert_array_equal(gate[:5], moves_in[:5])


def test_cautious_gate_is_sign_based_not_product_based():
  # u*w underflows to 0 in float32. Same signs (u moves w away from 0) must stay undecayed
  # although the rounded product is 0; opposite signs are decayed.
  w = jnp.array([1e-30, 1e-30], jnp.float32)
  u = jnp.array([1e-30, -1e-30], jnp.float32)
  assert float((u * w)[0]) == 0.0
  tx = od.decoupled_weight_decay(0.5, cautious=True)
  out, _ = tx.update({"w": u}, tx.init({"w": w}), {"w": w})
  np.testing.assert_allclose(np.asarray(out["w"]), [1e-30, -1.5e-30], rtol=1e-6)


def test_cautious_false_is_bitwise_the_plain_transform():
  params = {"w": jnp.asarray(W0, jnp.float32), "bias": jnp.ones(3)}
  u = {"w": jnp.asarray(RNG.normal(size=(5, 4)), jnp.float32), "bias": jnp.ones(3)}
  a = od.decoupled_weight_decay(0.03, mask=od.bias_mask)
  b = od.decoupled_weight_decay(0.03, mask=od.bias_mask, cautious=False)
  ua, _ = a.update(u, a.init(params), params)
  ub, _ = b.update(u, b.init(params), params)
  chex.assert_trees_all_equal(ua, ub)


def test_cautious_with_schedule_and_mask():
  sched = lambda t: 0.01 * (t + 1)
  params = {"w": jnp.array([1.0, 1.0]), "bias": jnp.array([1.0])}
  u = {"w": jnp.array([-0.1, 0.1]), "bias": jnp.array([-0.1])}
  tx = od.decoupled_weight_decay(sched, mask=od.bias_mask, cautious=True)
  state = tx.init(params)
  for t in range(3):
    out, state = jax.jit(tx.update)(u, state, params)
    np.testing.assert_allclose(np.asarray(out["w"]), [-0.1 - 0.01 * (t + 1), 0.1], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(out["bias"]), np.asarray(u["bias"]))


def test_cautious_must_be_bool():
  with pytest.raises(TypeError, match="decoupled_weight_decay: `cautious` must be a bool"):
    od.decoupled_weight_decay(0.1, cautious=1)


# --- proximal weight decay --------------------------------------------------------------------


def test_proximal_adam_matches_float64_paper_equation():
  lr, lam, steps = 0.02, 0.5, 30
  tx = optax.chain(optax.adam(lr), od.proximal_weight_decay(lr * lam))
  traj = testing.trajectory(tx, params32(), jax_grad_fn, steps)["w"]
  ref = ref_proximal_adam(lr, lam, steps)
  np.testing.assert_allclose(np.asarray(traj), ref, rtol=1e-4, atol=1e-5)


def test_proximal_single_step_is_implicit_equation():
  # w_new = (w + u) / (1 + r), i.e. w_new = w + u - r * w_new.
  w = jnp.asarray(W0, jnp.float32)
  u = jnp.asarray(RNG.normal(0, 0.1, W0.shape), jnp.float32)
  r = 0.3
  tx = od.proximal_weight_decay(r)
  out, _ = tx.update({"w": u}, tx.init({"w": w}), {"w": w})
  new = np.asarray(optax.apply_updates({"w": w}, out)["w"], np.float64)
  np.testing.assert_allclose(new, (W0 + np.asarray(u, np.float64)) / (1 + r), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(new, W0 + np.asarray(u, np.float64) - r * new, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("with_update", [True, False])
def test_proximal_equals_explicit_to_first_order(with_update):
  # With a step h: u = -h * d, r = h * lam. Explicit: u - r w. Proximal: (u - r w) / (1 + r).
  # Their difference is -r/(1+r) (u - r w) = O(h^2): D(h)/h^2 tends to -lam (-d - lam w) and
  # halving h divides D by ~4. Checked in float64 with the library's own transforms.
  lam = 0.7
  d = RNG.normal(size=W0.shape) if with_update else np.zeros(W0.shape)
  with jax.enable_x64(True):
    w = jnp.asarray(W0, jnp.float64)
    diffs = []
    for h in [1e-2, 5e-3, 2.5e-3, 1.25e-3]:
      u = {"w": jnp.asarray(-h * d, jnp.float64)}
      prox = od.proximal_weight_decay(h * lam)
      expl = od.decoupled_weight_decay(h * lam)
      up, _ = prox.update(u, prox.init({"w": w}), {"w": w})
      ue, _ = expl.update(u, expl.init({"w": w}), {"w": w})
      assert up["w"].dtype == jnp.float64
      diff = np.asarray(up["w"] - ue["w"])
      diffs.append(diff)
      np.testing.assert_allclose(
        diff / h**2, -lam * (-d - lam * W0) / (1 + h * lam), rtol=1e-7, atol=1e-9
      )
  for coarse, fine in itertools.pairwise(diffs):
    np.testing.assert_allclose(coarse / fine, 4.0, rtol=0.02)


def test_proximal_allows_large_rates_without_flipping_signs():
  w = jnp.array([2.0, -3.0])
  tx = od.proximal_weight_decay(2.0)
  out, _ = tx.update({"w": jnp.zeros(2)}, tx.init({"w": w}), {"w": w})
  new = optax.apply_updates({"w": w}, out)["w"]
  np.testing.assert_allclose(np.asarray(new), [2.0 / 3.0, -1.0], rtol=1e-6)


def test_cautious_gates_complex_leaves_on_the_real_inner_product():
  """A complex weight moves toward zero when Re(u conj(w)) < 0, whatever the signs of the
  parts: both directions of motion, against the definition in complex128."""
  w = np.array([1j, 1j, 1 + 1j, 1 + 1j, -2.0, 3 - 1j])
  u = np.array([1.0, -1j, -1.0 + 0.5j, 0.1j, 1j, -3 + 1j])  # 0, toward, toward, away, 0, toward
  inner = np.real(u * np.conj(w))
  want = u - 0.5 * np.where(inner <= 0, w, 0)
  tx = od.decoupled_weight_decay(0.5, cautious=True)
  got, _ = tx.update(
    {"w": jnp.asarray(u, jnp.complex64)}, tx.init({"w": w}), {"w": jnp.asarray(w, jnp.complex64)}
  )
  np.testing.assert_allclose(got["w"], want, rtol=1e-6)
  # Away from zero (the 4th entry): not decayed; a sign-by-parts gate would have decayed it.
  assert inner[3] > 0 and got["w"][3] == jnp.complex64(u[3])
