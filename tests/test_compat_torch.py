"""``optaxdecay.compat``'s PyTorch optimizers against the real ``torch.optim`` (skipped without
torch).

Every comparison runs ``STEPS`` updates on the noisy quadratic of ``compat_helpers.problem``, with a
constant learning rate and with a ``LambdaLR`` schedule that rises then falls.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compat_helpers import (
  ATOL32,
  ATOL64,
  SGD_CASES,
  STEPS,
  check,
  lr_factor,
  max_err,
  missing_arguments,
  muon_labels,
  our_traj,
  problem,
  schedule,
  torch_traj,
)

import optaxdecay as od
from optaxdecay import compat
from optaxdecay.testing import assert_equivalent, assert_not_equivalent, trajectory


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "lambdalr"])
@pytest.mark.parametrize("case", list(SGD_CASES))
def test_torch_sgd_matches_pytorch(torch, case, scheduled):
  kw = SGD_CASES[case]
  params, grad_np, grad_fn = problem()
  lr, wd = 0.05, 0.1
  ref = torch_traj(
    torch,
    lambda tp: torch.optim.SGD(tp.values(), lr=lr, weight_decay=wd, **kw),
    params,
    grad_np,
    lr_factor if scheduled else None,
  )
  tx = compat.torch_sgd(schedule(lr) if scheduled else lr, weight_decay=wd, **kw)
  check(f"torch SGD {case} sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL32)


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "lambdalr"])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_torch_adam_and_adamw_match_pytorch(torch, name, scheduled):
  params, grad_np, grad_fn = problem()
  lr, wd = 0.02, 0.5
  ref = torch_traj(
    torch,
    lambda tp: getattr(torch.optim, name)(tp.values(), lr=lr, weight_decay=wd),
    params,
    grad_np,
    lr_factor if scheduled else None,
  )
  factory = compat.torch_adam if name == "Adam" else compat.torch_adamw
  tx = factory(schedule(lr) if scheduled else lr, weight_decay=wd)
  check(f"torch {name} sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL32)


def test_torch_adamw_defaults_match_pytorch(torch):
  params, grad_np, grad_fn = problem(seed=1)
  ref = torch_traj(torch, lambda tp: torch.optim.AdamW(tp.values()), params, grad_np)
  check("torch AdamW defaults", our_traj(compat.torch_adamw(), params, grad_fn), ref, ATOL32)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_torch_float64_agrees_to_rounding(torch, x64, name):
  """In float64 the float32 drift above vanishes: the conventions are exact."""
  params, grad_np, grad_fn = problem(np.float64)
  lr, wd = 0.02, 0.5
  kw = dict(momentum=0.9, dampening=0.5) if name == "SGD" else {}
  ref = torch_traj(
    torch,
    lambda tp: getattr(torch.optim, name)(tp.values(), lr=lr, weight_decay=wd, **kw),
    params,
    grad_np,
    lr_factor,
  )
  factory = {"SGD": compat.torch_sgd, "Adam": compat.torch_adam, "AdamW": compat.torch_adamw}
  tx = factory[name](schedule(lr), weight_decay=wd, **kw)
  check(f"torch {name} float64", our_traj(tx, params, grad_fn), ref, ATOL64)


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_torch_mask_matches_param_groups(torch, name):
  """mask=od.bias_mask is PyTorch's param group with weight_decay=0 for biases."""
  params, grad_np, grad_fn = problem()
  lr, wd = (0.05, 0.1) if name == "SGD" else (0.02, 0.5)

  def make(tp):
    groups = [{"params": [tp["w"]]}, {"params": [tp["bias"]], "weight_decay": 0.0}]
    if name == "SGD":
      return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=wd)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=wd)

  ref = torch_traj(torch, make, params, grad_np)
  if name == "SGD":
    tx = compat.torch_sgd(lr, momentum=0.9, weight_decay=wd, mask=od.bias_mask)
  else:
    tx = compat.torch_adamw(lr, weight_decay=wd, mask=od.bias_mask)
  check(f"torch {name} masked", our_traj(tx, params, grad_fn), ref, ATOL32)
  extra = {"SGD": dict(momentum=0.9), "AdamW": {}}[name]
  unmasked = torch_traj(
    torch,
    lambda tp: getattr(torch.optim, name)(tp.values(), lr=lr, weight_decay=wd, **extra),
    params,
    grad_np,
  )
  assert max_err(unmasked, ref) > 1e-3  # the mask is doing something


MORE_TORCH = {
  "RMSprop": (
    compat.torch_rmsprop,
    dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.3, momentum=0.0, centered=False),
  ),
  "RMSprop-momentum-centered": (
    compat.torch_rmsprop,
    dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.3, momentum=0.8, centered=True),
  ),
  "Adagrad": (
    compat.torch_adagrad,
    dict(lr=0.05, lr_decay=0.01, weight_decay=0.3, initial_accumulator_value=0.1, eps=1e-8),
  ),
  "Adamax": (compat.torch_adamax, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)),
  "NAdam": (
    compat.torch_nadam,
    dict(lr=0.02, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.3, momentum_decay=0.05),
  ),
  "NAdam-decoupled": (
    compat.torch_nadam,
    dict(lr=0.02, weight_decay=0.5, momentum_decay=4e-3, decoupled_weight_decay=True),
  ),
  # 30 steps cross RAdam's switch (rho_t > 5 from step 6 with beta2 = 0.999).
  "RAdam": (compat.torch_radam, dict(lr=0.02, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.3)),
  "RAdam-decoupled": (
    compat.torch_radam,
    dict(lr=0.02, weight_decay=0.5, decoupled_weight_decay=True),
  ),
  # A 2-D leaf (factored second moment) and a 1-D one; lr 0.3 caps rho_t = min(lr, 1/sqrt(t))
  # from step 12 on.
  "Adafactor": (
    compat.torch_adafactor,
    dict(lr=0.05, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.3),
  ),
  "Adafactor-relative": (
    compat.torch_adafactor,
    dict(lr=0.3, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1),
  ),
}


def _torch_class(torch, name):
  return getattr(torch.optim, name.split("-")[0])


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "lambdalr"])
@pytest.mark.parametrize("name", list(MORE_TORCH))
def test_more_torch_optimizers_match_pytorch(torch, name, scheduled):
  factory, kw = MORE_TORCH[name]
  params, grad_np, grad_fn = problem()
  ref = torch_traj(
    torch,
    lambda tp: _torch_class(torch, name)(tp.values(), **kw),
    params,
    grad_np,
    lr_factor if scheduled else None,
  )
  ours = dict(kw, lr=schedule(kw["lr"]) if scheduled else kw["lr"])
  check(f"torch {name} sched={scheduled}", our_traj(factory(**ours), params, grad_fn), ref, ATOL32)


@pytest.mark.parametrize("name", list(MORE_TORCH))
def test_more_torch_optimizers_float64_and_param_groups(torch, x64, name):
  """float64 to 1e-12 with a schedule, and the bias in a param group without weight decay."""
  factory, kw = MORE_TORCH[name]
  params, grad_np, grad_fn = problem(np.float64)

  def make(tp):
    groups = [{"params": [tp["w"]]}, {"params": [tp["bias"]], "weight_decay": 0.0}]
    return _torch_class(torch, name)(groups, **kw)

  # torch keeps scalar state (NAdam's mu_product, the step) in the *default* dtype: float64 too.
  default = torch.get_default_dtype()
  torch.set_default_dtype(torch.float64)
  try:
    ref = torch_traj(torch, make, params, grad_np, lr_factor)
  finally:
    torch.set_default_dtype(default)
  tx = factory(**dict(kw, lr=schedule(kw["lr"])), mask=od.bias_mask)
  check(f"torch {name} float64 masked", our_traj(tx, params, grad_fn), ref, 1e-12)


def test_torch_radam_switches_at_torchs_step_when_rho_crosses_5_below_float32_resolution(torch):
  """beta2 = 0.7678067806924251 gives rho_7 = 5 + 8.8e-9: PyTorch (float64, in Python) rectifies
  from step 7; rho_7 evaluated in float32 is not > 5, and step 7 would be plain momentum."""
  b2 = 0.7678067806924251
  assert compat.scale_by_torch_radam(b2=b2) is not None
  from optaxdecay.compat._torch_scale import radam_switch_step

  assert radam_switch_step(b2) == 7
  params, grad_np, grad_fn = problem()
  kw = dict(lr=0.02, betas=(0.9, b2), eps=1e-6)
  ref = torch_traj(torch, lambda tp: torch.optim.RAdam(tp.values(), **kw), params, grad_np)
  check(
    "torch RAdam at the rho = 5 crossing",
    our_traj(compat.torch_radam(**kw), params, grad_fn),
    ref,
    ATOL32,
  )


def test_torch_radam_is_not_optax_radam_and_its_first_steps_are_unpreconditioned():
  """Optax's RAdam adds eps after the bias correction and switches at rho >= 5: not PyTorch's.
  RAdam's first five steps (rho_t <= 5) are bias-corrected momentum, so its L2 is then
  SGD-momentum's L2, not divided by anything; from step 6 on it is preconditioned."""
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  ours = optax.chain(compat.scale_by_torch_radam(eps=1e-3), optax.scale_by_learning_rate(0.02))
  assert_not_equivalent(ours, optax.radam(0.02, eps=1e-3), p, grad_fn, steps=STEPS)
  momentum_l2 = optax.chain(
    od.add_l2_to_grad(0.3), optax.ema(0.9, debias=True), optax.scale_by_learning_rate(0.02)
  )
  radam = compat.torch_radam(lr=0.02, weight_decay=0.3)
  assert_equivalent(radam, momentum_l2, p, grad_fn, steps=5, rtol=1e-6, atol=1e-7)
  assert_not_equivalent(radam, momentum_l2, p, grad_fn, steps=STEPS)


def test_torch_adafactor_decay_follows_the_lr_not_the_relative_step(torch):
  """Adafactor's step is relative (its size is RMS(w) min(lr, 1/sqrt(t))), its decay is not:
  with zero gradient only the decay moves the weights, by lr * wd * w exactly."""
  params, _, _ = problem()
  p = jax.tree.map(jnp.asarray, params)
  zero = lambda q, step: jax.tree.map(jnp.zeros_like, q)
  traj = trajectory(compat.torch_adafactor(lr=0.3, weight_decay=0.1), p, zero, steps=5)
  np.testing.assert_allclose(traj["w"][-1], params["w"] * (1 - 0.3 * 0.1) ** 5, rtol=1e-6)
  with_decay = compat.torch_adafactor(lr=0.05, weight_decay=0.3)
  as_l2 = optax.chain(od.add_l2_to_grad(0.3), compat.torch_adafactor(lr=0.05))
  assert_not_equivalent(with_decay, as_l2, p, lambda q, s: jax.tree.map(jnp.cos, q), steps=STEPS)


def test_torch_nadam_and_radam_l2_is_not_their_decoupled_decay():
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  for factory in (compat.torch_nadam, compat.torch_radam):
    l2 = factory(lr=0.02, weight_decay=0.3)
    decoupled = factory(lr=0.02, weight_decay=0.3, decoupled_weight_decay=True)
    assert_not_equivalent(l2, decoupled, p, grad_fn, steps=STEPS)


def test_torch_rmsprop_l2_is_not_decoupled():
  """RMSprop's weight_decay is L2 through the preconditioner: not a decoupled decay."""
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  l2 = compat.torch_rmsprop(lr=0.01, weight_decay=0.3)
  decoupled = optax.chain(
    optax.scale_by_rms(decay=0.99, eps=1e-8, eps_in_sqrt=False),
    optax.scale_by_learning_rate(0.01),
    od.decoupled_weight_decay(0.01 * 0.3),
  )
  assert_not_equivalent(l2, decoupled, p, grad_fn, steps=STEPS)


@pytest.mark.parametrize(
  ("build", "arg"),
  [
    (lambda: compat.torch_rmsprop(alpha=1.0), "alpha"),
    (lambda: compat.torch_rmsprop(centered="yes"), "centered"),
    (lambda: compat.torch_adagrad(lr_decay=-1.0), "lr_decay"),
    (lambda: compat.torch_adagrad(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (lambda: compat.torch_adamax(betas=(0.9,)), "betas"),
    (lambda: compat.torch_nadam(momentum_decay=-1.0), "momentum_decay"),
    (lambda: compat.torch_nadam(decoupled_weight_decay=1), "decoupled_weight_decay"),
    (lambda: compat.torch_radam(betas=(0.9, 1.0)), "betas"),
    (lambda: compat.torch_radam(maximize="no"), "maximize"),
    (lambda: compat.torch_adafactor(beta2_decay=0.5), "beta2_decay"),
    (lambda: compat.torch_adafactor(d=0.5), "d"),
    (lambda: compat.torch_adafactor(eps=1e-3), "eps"),
  ],
)
def test_more_torch_optimizers_bad_arguments(build, arg):
  with pytest.raises((TypeError, ValueError), match=rf"torch_\w+: `{arg}"):
    build()


ADAM_FLAGS = {
  "Adam-amsgrad": ("Adam", dict(amsgrad=True)),
  "Adam-maximize": ("Adam", dict(maximize=True)),
  "Adam-decoupled": ("Adam", dict(decoupled_weight_decay=True)),
  "Adam-decoupled-amsgrad-maximize": (
    "Adam",
    dict(decoupled_weight_decay=True, amsgrad=True, maximize=True),
  ),
  "AdamW-amsgrad": ("AdamW", dict(amsgrad=True)),
  "AdamW-maximize": ("AdamW", dict(maximize=True)),
}


def _adam_flags_pair(torch, case, dtype, scheduled):
  """Our trajectory and PyTorch's for one ``ADAM_FLAGS`` case (lr 0.02, weight_decay 0.5)."""
  name, flags = ADAM_FLAGS[case]
  params, grad_np, grad_fn = problem(dtype)
  lr, wd = 0.02, 0.5
  ref = torch_traj(
    torch,
    lambda tp: getattr(torch.optim, name)(tp.values(), lr=lr, weight_decay=wd, **flags),
    params,
    grad_np,
    lr_factor if scheduled else None,
  )
  factory = compat.torch_adam if name == "Adam" else compat.torch_adamw
  tx = factory(schedule(lr) if scheduled else lr, weight_decay=wd, **flags)
  return our_traj(tx, params, grad_fn), ref


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "lambdalr"])
@pytest.mark.parametrize("case", list(ADAM_FLAGS))
def test_torch_adam_flags_match_pytorch(torch, case, scheduled):
  """Adam/AdamW with amsgrad, maximize and Adam(decoupled_weight_decay=True)."""
  ours, ref = _adam_flags_pair(torch, case, np.float32, scheduled)
  check(f"torch {case} sched={scheduled}", ours, ref, ATOL32)


def test_torch_adam_decoupled_is_torch_adamw_and_amsgrad_is_not_optax_amsgrad(torch):
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  assert_equivalent(
    compat.torch_adam(0.02, weight_decay=0.5, decoupled_weight_decay=True),
    compat.torch_adamw(0.02, weight_decay=0.5),
    p,
    grad_fn,
    steps=STEPS,
    rtol=0.0,
    atol=0.0,
  )
  # Optax's AMSGrad takes the max of the bias-corrected nu: a different optimizer.
  ours = optax.chain(compat.scale_by_torch_amsgrad(), optax.scale_by_learning_rate(0.02))
  optax_amsgrad = optax.amsgrad(0.02)
  assert_not_equivalent(ours, optax_amsgrad, p, grad_fn, steps=STEPS)


@pytest.mark.parametrize(
  "case", ["Adam-amsgrad", "Adam-decoupled-amsgrad-maximize", "AdamW-maximize"]
)
def test_torch_adam_flags_float64(torch, x64, case):
  """In float64 the flags agree with PyTorch to 1e-12: the float32 errors above are rounding."""
  ours, ref = _adam_flags_pair(torch, case, np.float64, scheduled=True)
  check(f"torch {case} float64", ours, ref, 1e-12)


@pytest.mark.parametrize("adjust", [None, "match_rms_adamw"], ids=["original", "match_rms"])
@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "lambdalr"])
def test_torch_muon_with_adamw_for_the_rest_matches_pytorch(torch, adjust, scheduled):
  """torch Muon on the matrix and torch AdamW on the bias, stepped together, against
  optax.partition of torch_muon and torch_adamw. Muon's Newton-Schulz runs in bfloat16 in
  PyTorch; ours rounds where it does."""
  params, grad_np, grad_fn = problem()
  lr_m, lr_a = 0.02, 0.01

  def make(tp):
    return [
      torch.optim.Muon([tp["w"]], lr=lr_m, weight_decay=0.1, adjust_lr_fn=adjust),
      torch.optim.AdamW([tp["bias"]], lr=lr_a, weight_decay=0.05),
    ]

  ref = torch_traj(torch, make, params, grad_np, lr_factor if scheduled else None)
  lr = schedule if scheduled else (lambda base: base)
  tx = optax.partition(
    {
      "muon": compat.torch_muon(lr(lr_m), weight_decay=0.1, adjust_lr_fn=adjust),
      "adamw": compat.torch_adamw(lr(lr_a), weight_decay=0.05),
    },
    muon_labels,
  )
  check(
    f"torch Muon+AdamW adjust={adjust} sched={scheduled}",
    our_traj(tx, params, grad_fn),
    ref,
    ATOL32,
  )


def test_torch_muon_decay_uses_the_unadjusted_lr_and_refuses_vectors():
  p = {"w": jnp.ones((8, 2))}  # tall: 'original' adjusts the lr by sqrt(8 / 2) = 2
  zero = jax.tree.map(jnp.zeros_like, p)
  tx = compat.torch_muon(lr=0.02, weight_decay=0.5)
  u, _ = tx.update(zero, tx.init(p), p)
  np.testing.assert_allclose(u["w"], -0.02 * 0.5 * p["w"])  # not 2 * 0.02 * 0.5
  g = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)), jnp.float32)}
  no_decay = compat.torch_muon(lr=0.02, weight_decay=0.0)
  step = no_decay.update(g, no_decay.init(p), p)[0]["w"]
  ortho = compat.scale_by_torch_muon(adjust_lr_fn="original")
  unit = ortho.update(g, ortho.init(p))[0]["w"] / 2.0
  np.testing.assert_allclose(step, -0.02 * 2.0 * unit, rtol=1e-6)
  # The error names the function called: torch_muon, or the transform itself.
  with pytest.raises(ValueError, match=r"^torch_muon: Muon takes 2-D parameters only"):
    compat.torch_muon().init({"w": jnp.ones((2, 2)), "bias": jnp.ones(2)})
  with pytest.raises(ValueError, match=r"^scale_by_torch_muon: Muon takes 2-D parameters only"):
    compat.scale_by_torch_muon().init({"bias": jnp.ones(2)})


@pytest.mark.parametrize(
  ("build", "arg"),
  [
    (lambda: compat.torch_muon(adjust_lr_fn="spectral"), "adjust_lr_fn"),
    (lambda: compat.torch_muon(ns_steps=100), "ns_steps"),
    (lambda: compat.torch_muon(ns_coefficients=(1.0, 2.0)), "ns_coefficients"),
    (lambda: compat.torch_muon(momentum=1.0), "momentum"),
    (lambda: compat.torch_muon(weight_decay=-1.0), "weight_decay"),
  ],
)
def test_torch_muon_bad_arguments(build, arg):
  with pytest.raises((TypeError, ValueError), match=f"torch_muon: `{arg}"):
    build()


def test_torch_adafactor_with_beta2_decay_0_is_exact_at_the_lerp_end(torch):
  """beta2_decay=0 makes the second-moment weight 1: torch's lerp gives g**2 exactly, where
  ``v + 1 * (g**2 - v)`` cancels to 0 for g**2 << v (and the clamp then blows up the step)."""
  params = {"w": np.array([1.0, -1.0], np.float32)}
  grads = [np.array([1.0, 1.0], np.float32), np.array([1e-4, 1.0], np.float32)]
  kw = dict(lr=0.01, beta2_decay=0.0)
  tp = torch.nn.Parameter(torch.tensor(params["w"]))
  opt = torch.optim.Adafactor([tp], **kw)
  tx = compat.torch_adafactor(**kw)
  p, state = {"w": jnp.asarray(params["w"])}, None
  state = tx.init(p)
  for g in grads:
    tp.grad = torch.from_numpy(g)
    opt.step()
    u, state = tx.update({"w": jnp.asarray(g)}, state, p)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(p["w"], tp.detach().numpy(), rtol=0, atol=1e-6)


def test_torch_muon_below_the_normalization_floor_divides_by_eps_in_bfloat16(torch):
  """A momentum of Frobenius norm 2.4e-8 < eps: torch divides by clamp(norm, eps) *in
  bfloat16*; one Newton-Schulz call on such a 4x3 matrix, against torch's own."""
  from torch.optim._muon import _zeropower_via_newtonschulz

  rng = np.random.default_rng(0)
  g = rng.normal(size=(4, 3)).astype(np.float32)
  g *= 2.4e-8 / np.linalg.norm(g)
  coeffs, eps = (3.4445, -4.775, 2.0315), 1e-7
  want = _zeropower_via_newtonschulz(torch.from_numpy(g), coeffs, 5, eps).float().numpy()
  # The direction of one step with momentum 0 and no lr ratio: exactly the orthogonalized g.
  tx = compat.scale_by_torch_muon(momentum=0.0, nesterov=False, eps=eps)
  u, _ = tx.update({"w": jnp.asarray(g)}, tx.init({"w": jnp.asarray(g)}))
  ratio = max(1.0, 4 / 3) ** 0.5  # torch's "original" adjust_lr_fn, folded into the direction
  np.testing.assert_allclose(np.asarray(u["w"]) / ratio, want, rtol=0, atol=1e-6)


MAXIMIZING = {
  "SGD": (compat.torch_sgd, dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
  "RMSprop": (compat.torch_rmsprop, dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
  "Adagrad": (compat.torch_adagrad, dict(lr=0.05, lr_decay=0.01, weight_decay=0.1)),
  "Adamax": (compat.torch_adamax, dict(lr=0.02, weight_decay=0.1)),
}


@pytest.mark.parametrize("name", list(MAXIMIZING))
def test_torch_maximize_matches_pytorch(torch, name):
  """``maximize=True``: PyTorch negates the gradient before everything, L2 included."""
  factory, kw = MAXIMIZING[name]
  params, grad_np, grad_fn = problem()
  neg_np = lambda p, step: {k: -v for k, v in grad_np(p, step).items()}  # ascent stays bounded
  neg_fn = lambda p, step: {k: -v for k, v in grad_fn(p, step).items()}
  opt = lambda tp: getattr(torch.optim, name)(tp.values(), **kw, maximize=True)
  ref = torch_traj(torch, opt, params, neg_np)
  check(
    f"torch {name} maximize", our_traj(factory(**kw, maximize=True), params, neg_fn), ref, ATOL32
  )


#: Constructor arguments of the reproduced optimizers that compat does not take, each with the
#: reason (docs/conventions.md, "What is not reproduced"). A new argument in a later torch/Keras
#: fails the test below until it is reproduced or listed here.
TORCH_NOT_TAKEN = {"foreach", "fused", "capturable", "differentiable"}  # kernels, not numbers


TORCH_PAIRS = {
  "SGD": "torch_sgd", "Adam": "torch_adam", "AdamW": "torch_adamw", "RMSprop": "torch_rmsprop",
  "Adagrad": "torch_adagrad", "Adamax": "torch_adamax", "NAdam": "torch_nadam",
  "RAdam": "torch_radam", "Adafactor": "torch_adafactor", "Muon": "torch_muon",
}  # fmt: skip


def test_every_torch_constructor_argument_is_reproduced_or_listed(torch):
  for cls, fn in TORCH_PAIRS.items():
    assert not missing_arguments(getattr(torch.optim, cls), getattr(compat, fn), TORCH_NOT_TAKEN), (
      cls
    )


@pytest.mark.parametrize("max_norm", [0.5, 100.0], ids=["clipping", "not-clipping"])
def test_torch_adamw_with_clipping_is_optax_clipping_then_our_decay(torch, max_norm):
  """A PyTorch training step as users port it: ``clip_grad_norm_``, then ``AdamW`` with a
  no-decay group for the biases and a ``LambdaLR`` warmup. Ours: ``optax.clip_by_global_norm``,
  ``optax.adam`` and ``decoupled_weight_decay(weight_decay=, learning_rate=, mask=bias_mask)``.
  torch divides by ``norm + 1e-6``, Optax by ``norm``: equal to float32 rounding here."""
  params, grad_np, grad_fn = problem()

  def make(tp):
    groups = [
      {"params": [tp["w"]]},
      {"params": [tp["bias"]], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=0.05, weight_decay=0.5)

  clip = lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm)
  ref = torch_traj(torch, make, params, grad_np, lr_factor, before_step=clip)
  lr = schedule(0.05)
  tx = optax.chain(
    optax.clip_by_global_norm(max_norm),
    optax.adam(lr),
    od.decoupled_weight_decay(weight_decay=0.5, learning_rate=lr, mask=od.bias_mask),
  )
  check(f"torch clip_grad_norm_({max_norm}) + AdamW", our_traj(tx, params, grad_fn), ref, ATOL32)
