"""The conventions with no installable framework here, against float64 references of their
published equations: the AdamW paper, Composer, TF-Addons, Lion (paper, llm-foundry,
bitsandbytes' coupled variant) and Moonlight's Muon.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compat_helpers import (
  ATOL64,
  SGD_CASES,
  STEPS,
  adam_moments,
  check,
  lr_factor,
  max_err,
  muon_labels,
  our_traj,
  problem,
  ref_loop,
  schedule,
  warmup,
  zeros64,
)

import optaxdecay as od
from optaxdecay import compat
from optaxdecay.testing import assert_equivalent, assert_not_equivalent, trajectory


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
def test_paper_adamw_matches_algorithm_2(x64, scheduled):
  params, grad_np, grad_fn = problem(np.float64)
  alpha, wd, b1, b2, eps = 0.02, 0.05, 0.9, 0.999, 1e-8
  mult = lr_factor if scheduled else (lambda k: 1.0)

  def step(p, g, t, s):
    s = adam_moments(s, g, b1, b2)
    eta = mult(t - 1)  # SetScheduleMultiplier(t); our count is t - 1
    new = {}
    for k in p:
      mh, vh = s["m"][k] / (1 - b1**t), s["v"][k] / (1 - b2**t)
      new[k] = p[k] - eta * (alpha * mh / (np.sqrt(vh) + eps) + wd * p[k])
    return new, s

  ref = ref_loop(params, grad_np, step, {"m": zeros64(params), "v": zeros64(params)})
  tx = compat.paper_adamw(
    alpha, weight_decay=wd, schedule_multiplier=lr_factor if scheduled else 1.0, b1=b1, b2=b2
  )
  check(f"paper AdamW sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL64)


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
def test_paper_sgdw_matches_algorithm_1(x64, scheduled):
  params, grad_np, grad_fn = problem(np.float64)
  alpha, b1, wd = 0.05, 0.9, 0.02
  mult = lr_factor if scheduled else (lambda k: 1.0)

  def step(p, g, t, m):
    eta = mult(t - 1)
    m = {k: b1 * m[k] + eta * alpha * g[k] for k in g}
    return {k: p[k] - m[k] - eta * wd * p[k] for k in p}, m

  ref = ref_loop(params, grad_np, step, zeros64(params))
  tx = compat.paper_sgdw(
    alpha, b1, weight_decay=wd, schedule_multiplier=lr_factor if scheduled else 1.0
  )
  check(f"paper SGDW sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL64)


@pytest.mark.parametrize("lr_kind", ["const", "schedule", "warmup_from_0"])
def test_composer_adamw_matches_reference(x64, lr_kind):
  params, grad_np, grad_fn = problem(np.float64)
  base, wd, b1, b2, eps = 0.02, 0.01, 0.9, 0.95, 1e-8
  lr = {"const": lambda k: base, "schedule": schedule(base), "warmup_from_0": warmup(base)}[lr_kind]

  def step(p, g, t, s):
    lr_t = lr(t - 1)
    s = adam_moments(s, g, b1, b2)
    new = {}
    for k in p:
      q = p[k] * (1 - (lr_t / base) * wd)
      denom = np.sqrt(s["v"][k]) / math.sqrt(1 - b2**t) + eps
      new[k] = q - (lr_t / (1 - b1**t)) * s["m"][k] / denom
    return new, s

  ref = ref_loop(params, grad_np, step, {"m": zeros64(params), "v": zeros64(params)})
  ours_lr = base if lr_kind == "const" else lr
  tx = compat.composer_adamw(ours_lr, weight_decay=wd, initial_lr=base)
  check(f"Composer DecoupledAdamW lr={lr_kind}", our_traj(tx, params, grad_fn), ref, ATOL64)


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_composer_sgdw_matches_reference(x64, case):
  kw = SGD_CASES[case]
  params, grad_np, grad_fn = problem(np.float64)
  base, wd = 0.05, 0.02
  lr = schedule(base)
  mu, tau = kw["momentum"], kw["dampening"]

  def step(p, g, t, buf):
    lr_t = lr(t - 1)
    d = dict(g)
    if mu:
      buf = {k: g[k].copy() if t == 1 else mu * buf[k] + (1 - tau) * g[k] for k in g}
      d = {k: g[k] + mu * buf[k] for k in g} if kw["nesterov"] else buf
    return {k: p[k] * (1 - (lr_t / base) * wd) - lr_t * d[k] for k in p}, buf

  ref = ref_loop(params, grad_np, step, zeros64(params))
  tx = compat.composer_sgdw(lr, weight_decay=wd, **kw)  # initial_lr = lr(0) = base
  check(f"Composer DecoupledSGDW {case}", our_traj(tx, params, grad_fn), ref, ATOL64)


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
def test_tfa_adamw_matches_reference(x64, scheduled):
  params, grad_np, grad_fn = problem(np.float64)
  base, wd, b1, b2, eps = 0.02, 0.01, 0.9, 0.999, 1e-7
  lr = schedule(base) if scheduled else (lambda k: base)
  wd_t = (lambda k: wd * lr_factor(k)) if scheduled else (lambda k: wd)

  def step(p, g, t, s):
    new = {}
    for k in p:
      q = p[k] - wd_t(t - 1) * p[k]  # decay first, not x lr
      m = s["m"][k] + (g[k] - s["m"][k]) * (1 - b1)
      v = s["v"][k] + (g[k] ** 2 - s["v"][k]) * (1 - b2)
      s["m"][k], s["v"][k] = m, v
      lr_hat = lr(t - 1) * math.sqrt(1 - b2**t) / (1 - b1**t)
      new[k] = q - lr_hat * m / (np.sqrt(v) + eps)
    return new, s

  ref = ref_loop(params, grad_np, step, {"m": zeros64(params), "v": zeros64(params)})
  tx = compat.tfa_adamw(wd_t if scheduled else wd, schedule(base) if scheduled else base)
  check(f"TF-Addons AdamW sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL64)


@pytest.mark.parametrize("nesterov", [False, True])
def test_tfa_sgdw_matches_reference(x64, nesterov):
  params, grad_np, grad_fn = problem(np.float64)
  base, wd, mu = 0.05, 0.01, 0.9
  lr = schedule(base)

  def step(p, g, t, vel):
    lr_t = lr(t - 1)
    vel = {k: mu * vel[k] - lr_t * g[k] for k in g}
    new = {}
    for k in p:
      q = p[k] - wd * p[k]
      new[k] = q + (mu * vel[k] - lr_t * g[k] if nesterov else vel[k])
    return new, vel

  ref = ref_loop(params, grad_np, step, zeros64(params))
  tx = compat.tfa_sgdw(wd, lr, momentum=mu, nesterov=nesterov)
  check(f"TF-Addons SGDW nesterov={nesterov}", our_traj(tx, params, grad_fn), ref, ATOL64)


def test_paper_lion_is_optax_lion_and_keras_lion():
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  lr, wd = schedule(0.01), 0.3
  ours = compat.paper_lion(lr, 0.9, 0.99, weight_decay=wd, mask=od.bias_mask)
  for other in (
    optax.lion(lr, b1=0.9, b2=0.99, weight_decay=wd, mask=od.bias_mask),
    compat.keras_lion(lr, 0.9, 0.99, weight_decay=wd, mask=od.bias_mask),
  ):
    assert_equivalent(ours, other, p, grad_fn, steps=STEPS, rtol=1e-6, atol=1e-7)


def _lionw_reference(lr_fn, lr0, b1, b2, wd):
  """llm-foundry's ``DecoupledLionW.lionw``, re-typed in NumPy (float64)."""

  def step(p, g, t, m):
    lr = lr_fn(t - 1)
    out, new_m = {}, {}
    for k in p:
      decayed = p[k] * (1 - (lr / lr0) * wd)
      update = np.sign(m[k] + (1 - b1) * (g[k] - m[k]))  # exp_avg.lerp(grad, 1 - beta1)
      out[k] = decayed - lr * update
      new_m[k] = m[k] + (1 - b2) * (g[k] - m[k])  # exp_avg.lerp_(grad, 1 - beta2)
    return out, new_m

  return step


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
def test_composer_lionw_matches_llm_foundry(x64, scheduled):
  params, grad_np, grad_fn = problem(np.float64)
  lr, wd, b1, b2 = 0.01, 0.05, 0.9, 0.99
  lr_fn = schedule(lr) if scheduled else (lambda k: lr)
  ref = ref_loop(params, grad_np, _lionw_reference(lr_fn, lr, b1, b2, wd), zeros64(params))
  tx = compat.composer_lionw(lr_fn if scheduled else lr, (b1, b2), weight_decay=wd)
  check(f"composer LionW sched={scheduled} float64", our_traj(tx, params, grad_fn), ref, 1e-12)


def test_bnb_coupled_lion_is_no_decoupled_lion_and_loses_the_decay_strength():
  """bitsandbytes#1992: L2 inside the sign. With zero gradient it moves every weight by lr
  toward zero whatever lambda is; decoupled Lion shrinks by lr * lambda * w. On a real
  trajectory the two part and keep parting."""
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  coupled = compat.bnb_lion_coupled(0.01, weight_decay=0.3)
  decoupled = compat.paper_lion(0.01, weight_decay=0.3)
  assert_not_equivalent(coupled, decoupled, p, grad_fn, steps=STEPS)
  zero = lambda q, step: jax.tree.map(jnp.zeros_like, q)
  runs = {
    (kind, wd): trajectory(tx(0.01, weight_decay=wd), p, zero, steps=10)
    for kind, tx in (("coupled", compat.bnb_lion_coupled), ("paper", compat.paper_lion))
    for wd in (1e-3, 1.0)
  }
  np.testing.assert_array_equal(runs["coupled", 1e-3]["w"], runs["coupled", 1.0]["w"])
  assert not np.allclose(runs["paper", 1e-3]["w"], runs["paper", 1.0]["w"])
  gap = [
    max_err(
      trajectory(coupled, p, grad_fn, steps=n),
      trajectory(compat.paper_lion(0.01, weight_decay=0.3), p, grad_fn, steps=n),
    )
    for n in (5, 15, 30)
  ]
  assert gap[0] < gap[1] < gap[2], gap


@pytest.mark.parametrize(
  ("build", "arg"),
  [
    (lambda: compat.keras_lion(beta_1=0.0), "beta_1"),
    (lambda: compat.keras_lion(beta_2=1.5), "beta_2"),
    (lambda: compat.paper_lion(weight_decay=-1.0), "weight_decay"),
    (lambda: compat.composer_lionw(betas=(0.9, 1.5)), r"betas\[1\]"),
    (lambda: compat.composer_lionw(lr=warmup(0.01), weight_decay=0.1), "lr"),
    (lambda: compat.bnb_lion_coupled(betas=(0.9,)), "betas"),
  ],
)
def test_lion_bad_arguments(build, arg):
  with pytest.raises((TypeError, ValueError), match=f"`{arg}"):
    build()


def _muon_problem():
  params, _, grad_fn = problem(shapes={"w": (6, 4), "bias": (4,)}, seed=3)
  return jax.tree.map(jnp.asarray, params), grad_fn


def test_moonlight_muon_is_optax_muon_with_consistent_rms_and_one_decay():
  params, grad_fn = _muon_problem()
  lr, wd = schedule(0.02), 0.1
  ours = compat.moonlight_muon(lr, weight_decay=wd)
  ref = optax.contrib.muon(
    lr,
    beta=0.95,
    adam_b1=0.9,
    adam_b2=0.95,
    weight_decay=wd,
    adam_weight_decay=wd,
    consistent_rms=0.2,
  )
  assert_equivalent(ours, ref, params, grad_fn, steps=STEPS, rtol=1e-5, atol=1e-6)
  # The 0.2 sqrt(max(A, B)) scale: the matrix update's RMS is about 0.2 lr (Newton-Schulz only
  # approximates an orthogonal matrix), as AdamW's is about lr.
  u, _ = compat.moonlight_muon(0.02, weight_decay=0.0).update(
    grad_fn(params, 0), compat.moonlight_muon(0.02, weight_decay=0.0).init(params), params
  )
  assert 0.1 < float(jnp.sqrt(jnp.mean(u["w"] ** 2))) / 0.02 < 0.3


def test_moonlight_muon_cautious_decays_only_where_the_update_points_to_zero():
  params, grad_fn = _muon_problem()
  g = grad_fn(params, 0)
  plain, cautious, bare = (
    compat.moonlight_muon(0.02, weight_decay=0.5, mask=od.bias_mask),
    compat.moonlight_muon(0.02, weight_decay=0.5, cautious=True, mask=od.bias_mask),
    compat.moonlight_muon(0.02, weight_decay=0.0),
  )
  u = {
    name: tx.update(g, tx.init(params), params)[0]
    for name, tx in (("plain", plain), ("cautious", cautious), ("bare", bare))
  }
  w = params["w"]
  decay_part = u["cautious"]["w"] - u["bare"]["w"]
  toward_zero = u["bare"]["w"] * w < 0
  np.testing.assert_allclose(decay_part, jnp.where(toward_zero, -0.02 * 0.5 * w, 0.0), atol=1e-7)
  np.testing.assert_allclose(u["plain"]["w"] - u["bare"]["w"], -0.02 * 0.5 * w, atol=1e-7)
  np.testing.assert_array_equal(u["cautious"]["bias"], u["bare"]["bias"])  # masked out
  assert 0 < int(toward_zero.sum()) < w.size
  assert_not_equivalent(plain, cautious, params, grad_fn, steps=STEPS)


@pytest.mark.parametrize(
  ("build", "arg"),
  [
    (lambda: compat.moonlight_muon(0.02, weight_decay=-0.1), "weight_decay"),
    (lambda: compat.moonlight_muon(0.02, momentum=1.0), "momentum"),
    (lambda: compat.moonlight_muon(0.02, ns_steps=0), "ns_steps"),
    (lambda: compat.moonlight_muon(0.02, cautious="yes"), "cautious"),
  ],
)
def test_moonlight_muon_bad_arguments(build, arg):
  with pytest.raises((TypeError, ValueError), match=f"moonlight_muon: `{arg}"):
    build()


def test_the_three_muon_decay_conventions_mean_the_same_lambda():
  """torch Muon, Keras Muon and Moonlight all decay by lr * weight_decay with the *unadjusted*
  lr (whatever scales the update); Keras gives the non-Muon leaves adam_weight_decay, torch
  leaves them to the other optimizer, Moonlight uses one lambda for both. With zero gradient only
  the decay acts, so the three steps are exactly -lr * lambda * w."""
  p = {"w": jnp.full((6, 2), 2.0), "bias": jnp.full((2,), 2.0)}
  zero = jax.tree.map(jnp.zeros_like, p)
  lr, wd, wd_adam = 0.02, 0.1, 0.3

  def step(tx):
    return tx.update(zero, tx.init(p), p)[0]

  torch_side = optax.partition(
    {
      "muon": compat.torch_muon(lr, weight_decay=wd, adjust_lr_fn="match_rms_adamw"),
      "adamw": compat.torch_adamw(lr, weight_decay=wd_adam),
    },
    muon_labels,
  )
  keras_side = compat.keras_muon(lr, weight_decay=wd, adam_weight_decay=wd_adam)
  for u in (step(torch_side), step(keras_side)):
    np.testing.assert_allclose(u["w"], -lr * wd * p["w"], rtol=1e-6)
    np.testing.assert_allclose(u["bias"], -lr * wd_adam * p["bias"], rtol=1e-6)
  u = step(compat.moonlight_muon(lr, weight_decay=wd))
  for k in p:
    np.testing.assert_allclose(u[k], -lr * wd * p[k], rtol=1e-6)
