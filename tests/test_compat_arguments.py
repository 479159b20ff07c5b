"""Across every ``compat`` factory: bad arguments raise naming the function and the argument, masks
reach every optimizer, and the optimizers work inside Optax's wrappers.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compat_helpers import (
  schedule,
  warmup,
)

import optaxdecay as od
from optaxdecay import compat
from optaxdecay.testing import assert_equivalent, trajectory


def _neg_at_0(count):
  return -1.0 + 0.0 * count


ERROR_CASES = {
  "sgd_negative_lr": (lambda: compat.torch_sgd(-0.1), ValueError, "torch_sgd: `lr`"),
  "sgd_nan_lr": (lambda: compat.torch_sgd(float("nan")), ValueError, "torch_sgd: `lr`"),
  "sgd_schedule_negative": (lambda: compat.torch_sgd(_neg_at_0), ValueError, "torch_sgd: `lr`"),
  "sgd_negative_momentum": (
    lambda: compat.torch_sgd(0.1, momentum=-0.5),
    ValueError,
    "torch_sgd: `momentum`",
  ),
  "sgd_negative_weight_decay": (
    lambda: compat.torch_sgd(0.1, weight_decay=-1.0),
    ValueError,
    "torch_sgd: `weight_decay`",
  ),
  "sgd_bool_weight_decay": (
    lambda: compat.torch_sgd(0.1, weight_decay=True),
    TypeError,
    "torch_sgd: `weight_decay`",
  ),
  "sgd_nesterov_without_momentum": (
    lambda: compat.torch_sgd(0.1, nesterov=True),
    ValueError,
    "torch_sgd: `nesterov=True` requires `momentum > 0` and `dampening == 0`",
  ),
  "sgd_nesterov_with_dampening": (
    lambda: compat.torch_sgd(0.1, momentum=0.9, dampening=0.1, nesterov=True),
    ValueError,
    "torch_sgd: `nesterov=True` requires `momentum > 0` and `dampening == 0`",
  ),
  "adam_beta_one": (
    lambda: compat.torch_adam(betas=(0.9, 1.0)),
    ValueError,
    r"torch_adam: `betas\[1\]`",
  ),
  "adam_betas_not_a_pair": (
    lambda: compat.torch_adam(betas=0.9),
    TypeError,
    "torch_adam: `betas`",
  ),
  "adam_negative_eps": (lambda: compat.torch_adam(eps=-1e-8), ValueError, "torch_adam: `eps`"),
  "adamw_decay_fraction_ge_1": (
    lambda: compat.torch_adamw(2.0, weight_decay=0.5),
    ValueError,
    r"torch_adamw: `lr \* weight_decay` must be < 1",
  ),
  "keras_sgd_momentum_gt_1": (
    lambda: compat.keras_sgd(momentum=1.5),
    ValueError,
    "keras_sgd: `momentum`",
  ),
  "keras_adamw_negative_decay": (
    lambda: compat.keras_adamw(weight_decay=-0.1),
    ValueError,
    "keras_adamw: `weight_decay`",
  ),
  "keras_adamw_none_decay": (
    lambda: compat.keras_adamw(weight_decay=None),
    TypeError,
    "keras_adamw: `weight_decay`",
  ),
  "keras_adamw_beta_2_one": (
    lambda: compat.keras_adamw(beta_2=1.0),
    ValueError,
    "keras_adamw: `beta_2`",
  ),
  "keras_adam_array_epsilon": (
    lambda: compat.keras_adam(epsilon=np.ones(2)),
    TypeError,
    "keras_adam: `epsilon`",
  ),
  "tfa_adamw_decay_ge_1": (
    lambda: compat.tfa_adamw(1.0),
    ValueError,
    "tfa_adamw: `weight_decay` must be < 1",
  ),
  "tfa_sgdw_decay_schedule_negative": (
    lambda: compat.tfa_sgdw(_neg_at_0),
    ValueError,
    "tfa_sgdw: `weight_decay`",
  ),
  "composer_initial_lr_zero": (
    lambda: compat.composer_adamw(0.1, initial_lr=0.0),
    ValueError,
    "composer_adamw: `initial_lr` must be > 0",
  ),
  "composer_warmup_from_zero_without_initial_lr": (
    lambda: compat.composer_sgdw(warmup(0.1), weight_decay=1e-4),
    ValueError,
    "composer_sgdw: `lr` must be > 0 at step 0",
  ),
  "paper_negative_alpha": (
    lambda: compat.paper_adamw(-1.0, weight_decay=0.1),
    ValueError,
    "paper_adamw: `alpha`",
  ),
  "paper_decay_fraction_ge_1": (
    lambda: compat.paper_sgdw(0.1, 0.9, weight_decay=1.0),
    ValueError,
    r"paper_sgdw: `schedule_multiplier \* weight_decay`",
  ),
  "keras_adam_beta_1_one": (
    lambda: compat.scale_by_keras_adam(beta_1=1.0),
    ValueError,
    "scale_by_keras_adam: `beta_1`",
  ),
  "momentum_nesterov_dampening": (
    lambda: compat.scale_by_torch_momentum(0.9, 0.5, nesterov=True),
    ValueError,
    "scale_by_torch_momentum: `nesterov=True`",
  ),
  "convert_sgd_momentum_and_decay": (
    lambda: compat.torch_sgd_to_keras_sgd(0.1, momentum=0.9, weight_decay=1e-4),
    ValueError,
    "torch_sgd_to_keras_sgd: with momentum",
  ),
  "convert_sgd_momentum_and_schedule": (
    lambda: compat.keras_sgd_to_torch_sgd(schedule(0.1), momentum=0.9),
    ValueError,
    "keras_sgd_to_torch_sgd: with momentum",
  ),
  "convert_tfa_schedule": (
    lambda: compat.tfa_adamw_to_keras_adamw(schedule(1e-3), 0.1),
    TypeError,
    "tfa_adamw_to_keras_adamw",
  ),
  "convert_zero_lr": (
    lambda: compat.torch_adamw_to_paper_adamw(0.0),
    ValueError,
    "torch_adamw_to_paper_adamw: `lr` must be > 0",
  ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_arguments_raise(case):
  build, exc, match = ERROR_CASES[case]
  with pytest.raises(exc, match=match):
    build()


def test_mask_mismatch_is_reported():
  tx = compat.torch_adamw(mask={"nope": True})
  with pytest.raises(ValueError, match="torch_adamw: `mask` does not match"):
    tx.init({"w": jnp.ones(2)})


def test_per_leaf_multipliers_reach_the_compat_optimizers():
  """A float mask is a per-leaf multiplier here too (PyTorch param groups with other decays)."""
  params = {"w": jnp.linspace(-1.0, 1.0, 6), "v": jnp.linspace(1.0, 2.0, 4), "b": jnp.ones(2)}
  mask = {"w": 1.0, "v": 0.25, "b": False}
  grad_fn = lambda p, step: jax.tree.map(lambda x: jnp.cos(x + step), p)
  lr, wd = 1e-2, 0.1
  ours = compat.torch_adamw(lr=lr, weight_decay=wd, mask=mask)
  groups = optax.chain(
    optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
    optax.scale_by_learning_rate(lr),
    od.decoupled_weight_decay(lr * wd, mask={"w": True, "v": False, "b": False}),
    od.decoupled_weight_decay(lr * wd * 0.25, mask={"w": False, "v": True, "b": False}),
  )
  assert_equivalent(ours, groups, params, grad_fn, steps=20, rtol=1e-6, atol=1e-7)
  l2 = compat.torch_sgd(lr=0.1, weight_decay=0.01, mask=mask)
  l2_groups = optax.chain(
    od.add_l2_to_grad(0.01, mask={"w": True, "v": False, "b": False}),
    od.add_l2_to_grad(0.0025, mask={"w": False, "v": True, "b": False}),
    optax.sgd(0.1),
  )
  assert_equivalent(l2, l2_groups, params, grad_fn, steps=20, rtol=1e-6, atol=1e-7)


NEW_IN_OPTAX_WRAPPERS = {
  "torch_nadam": lambda: compat.torch_nadam(0.01, weight_decay=0.1),
  "torch_radam": lambda: compat.torch_radam(0.01, weight_decay=0.1, decoupled_weight_decay=True),
  "torch_adafactor": lambda: compat.torch_adafactor(0.01, weight_decay=0.1),
  "torch_muon": lambda: compat.torch_muon(0.01),
  "keras_rmsprop": lambda: compat.keras_rmsprop(0.01, momentum=0.5, weight_decay=0.1),
  "keras_lamb": lambda: compat.keras_lamb(0.01, weight_decay=0.1),
  "keras_adafactor": lambda: compat.keras_adafactor(0.01, weight_decay=0.1),
  "keras_nadam": lambda: compat.keras_nadam(0.01, weight_decay=0.1, gradient_accumulation_steps=2),
  "keras_muon": lambda: compat.keras_muon(0.01),
  "paper_lion": lambda: compat.paper_lion(0.01, weight_decay=0.1),
  "composer_lionw": lambda: compat.composer_lionw(0.01, weight_decay=1e-3),
  "moonlight_muon": lambda: compat.moonlight_muon(0.01, cautious=True),
}


@pytest.mark.parametrize("name", list(NEW_IN_OPTAX_WRAPPERS))
def test_new_optimizers_inside_optax_masked_act_on_the_selected_leaves_alone(name):
  """Under optax.masked (and so partition) the kernel's trajectory is the one the optimizer
  gives the kernel alone, under jit; the masked-out bias is left to the outer chain."""
  rng = np.random.default_rng(0)
  kernel = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  params = {"dense": {"kernel": kernel, "bias": jnp.ones(3)}}
  grad_fn = lambda p, step: jax.tree.map(lambda x: jnp.cos(x + step), p)
  masked = optax.masked(NEW_IN_OPTAX_WRAPPERS[name](), {"dense": {"kernel": True, "bias": False}})
  together = trajectory(masked, params, grad_fn, steps=6)
  alone = trajectory(
    NEW_IN_OPTAX_WRAPPERS[name](),
    {"dense": {"kernel": kernel}},
    lambda p, step: {"dense": {"kernel": jnp.cos(p["dense"]["kernel"] + step)}},
    steps=6,
  )
  np.testing.assert_allclose(together["dense"]["kernel"], alone["dense"]["kernel"], atol=1e-6)
  # optax.masked passes the raw gradient through for the bias: params + cos(...) each step.
  assert not np.allclose(together["dense"]["bias"][-1], 1.0)


@pytest.mark.parametrize(
  ("factory", "kwargs", "message"),
  [
    (compat.torch_sgd, dict(momentum=0.9, nesterov="yes"), "torch_sgd: `nesterov` must be a bool"),
    (compat.keras_sgd, dict(momentum=0.9, nesterov="yes"), "keras_sgd: `nesterov` must be a bool"),
    (
      compat.composer_sgdw,
      dict(lr=0.1, nesterov="yes"),
      "composer_sgdw: `nesterov` must be a bool",
    ),
    (
      compat.tfa_sgdw,
      dict(weight_decay=0.1, nesterov="yes"),
      "tfa_sgdw: `nesterov` must be a bool",
    ),
    (
      compat.keras_adafactor,
      dict(clip_threshold=0),
      "keras_adafactor: `clip_threshold` must be > 0",
    ),
    (
      compat.keras_adafactor,
      dict(beta_2_decay=0.5),
      "keras_adafactor: `beta_2_decay` must be <= 0",
    ),
    (compat.keras_adafactor, dict(epsilon_1=-1.0), "keras_adafactor: `epsilon_1` must be >= 0"),
    (compat.keras_muon, dict(momentum=1.0), "keras_muon: `momentum` must be < 1"),
    (compat.keras_muon, dict(ns_steps=0), "keras_muon: `ns_steps` must be a positive int"),
    (compat.keras_muon, dict(muon_a="x"), "keras_muon: `muon_a` must be a float"),
    (
      compat.moonlight_muon,
      dict(learning_rate=0.1, adam_betas=(1.0, 0.95)),
      r"moonlight_muon: `adam_betas\[0\]` must be < 1",
    ),
  ],
)
def test_errors_name_the_function_called_and_the_argument_passed(factory, kwargs, message):
  with pytest.raises((TypeError, ValueError), match=message):
    factory(**kwargs)


# ----------------------------------------------------------------------------------------------
# Each value is checked once, at the entry point the user called.

_CHECKS = ("check_number", "check_scalar_or_schedule", "check_concrete", "check_count")
_CHECKS += ("check_bool", "check_rate")


def _factories():
  return sorted(
    n
    for n in compat.__all__
    if callable(getattr(compat, n)) and "_to_" not in n and not n[0].isupper()
  )


def _required(factory):
  given = {"lr": 0.01, "learning_rate": 0.01, "alpha": 0.01, "weight_decay": 0.1, "b1": 0.9}
  given["momentum"] = 0.9
  params = inspect.signature(factory).parameters.values()
  return {p.name: given[p.name] for p in params if p.default is inspect.Parameter.empty}


@pytest.mark.parametrize("name", _factories())
def test_every_argument_is_checked_once_by_the_function_called(name, monkeypatch):
  """Every argument check of building ``compat.<name>(...)`` is recorded as (function, argument):
  none is repeated, and each names the function the user called."""
  from optaxdecay import _hparams, _selection

  seen, depth = [], [0]  # a check that calls another check is one check
  for check in _CHECKS:
    original = getattr(_hparams, check)

    def record(value, *args, _original=original, **kwargs):
      if depth[0] == 0:
        seen.append((kwargs["fn"], kwargs["arg"]))
      depth[0] += 1
      try:
        return _original(value, *args, **kwargs)
      finally:
        depth[0] -= 1

    monkeypatch.setattr(_hparams, check, record)
  selection = _selection.selection

  def record_mask(mask, *, fn):
    seen.append((fn, "mask"))
    return selection(mask, fn=fn)

  monkeypatch.setattr(_selection, "selection", record_mask)
  getattr(compat, name)(**_required(getattr(compat, name)))
  assert seen, "no argument was checked"
  repeated = sorted({s for s in seen if seen.count(s) > 1})
  assert not repeated, f"{name}: checked more than once: {repeated}"
  assert {fn for fn, _ in seen} == {name}, f"{name}: checks named {sorted(set(seen))}"


@pytest.mark.parametrize(
  ("old", "new"),
  [
    ("TorchMomentumState", "ScaleByTorchMomentumState"),
    ("TorchAdagradState", "ScaleByTorchAdagradState"),
    ("TorchAdafactorState", "ScaleByTorchAdafactorState"),
  ],
)
def test_the_old_state_names_still_import_with_a_deprecation_warning(old, new):
  with pytest.warns(DeprecationWarning, match=rf"compat\.{old} is deprecated.*compat\.{new}"):
    cls = getattr(compat, old)
  assert cls is getattr(compat, new)
  with pytest.raises(AttributeError, match="has no attribute 'NoSuchState'"):
    compat.NoSuchState  # noqa: B018


def test_keras_adafactor_has_a_state_of_its_own():
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
  assert isinstance(
    compat.scale_by_keras_adafactor().init(params), compat.ScaleByKerasAdafactorState
  )
  assert isinstance(
    compat.scale_by_torch_adafactor().init(params), compat.ScaleByTorchAdafactorState
  )
