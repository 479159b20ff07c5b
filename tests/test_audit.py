"""``diagnostics.audit``: the verdicts on real optimizers, with the expected numbers written out.

Each expectation is the optimizer's own equation: ``optax.adamw`` removes ``lr * wd`` of each
weight per step; ``add_decayed_weights`` before plain SGD is L2 and removes ``lr * lam``
(the SGD equivalence); before SGD-momentum ``mu`` it removes ``lr * lam / (1 - mu)`` at steady
state; before Adam it is preconditioned (coupled to the gradients' scale).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import compat
from optaxdecay.diagnostics import audit

LR, LAM = 1e-2, 0.1
PARAMS = {
  "dense": {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) + 0.05, "bias": jnp.ones(3)},
  "LayerNorm_0": {"scale": jnp.full(3, 1.5)},
}


def _rows(tx, params=PARAMS, **kw):
  report = audit(tx, params, **kw)
  return {r.path: r for r in report.rows}, report


DECOUPLED_AT_LR_LAM = {
  "optax.adamw": optax.adamw(LR, weight_decay=LAM),
  "chain(add_decayed_weights, sgd)": optax.chain(optax.add_decayed_weights(LAM), optax.sgd(LR)),
  "chain(adam, decoupled_weight_decay)": optax.chain(
    optax.adam(LR), od.decoupled_weight_decay(LR * LAM)
  ),
  "fused_adamw": od.fused_adamw(LR, weight_decay=LAM),
  "optax.lion": optax.lion(LR, weight_decay=LAM),
  "compat.torch_adamw": compat.torch_adamw(LR, weight_decay=LAM),
  "compat.keras_adamw": compat.keras_adamw(LR, weight_decay=LAM),
  "MultiSteps(adamw, 4)": optax.MultiSteps(optax.adamw(LR, weight_decay=LAM), 4),
  "inject_hyperparams(adamw)": optax.inject_hyperparams(optax.adamw)(LR, weight_decay=LAM),
  "anchor=zeros": optax.chain(
    optax.adam(LR),
    od.decoupled_weight_decay(LR * LAM, anchor=jax.tree.map(jnp.zeros_like, PARAMS)),
  ),
}


@pytest.mark.parametrize("name", list(DECOUPLED_AT_LR_LAM))
def test_decoupled_optimizers_remove_lr_times_lambda_per_step(name):
  rows, _ = _rows(DECOUPLED_AT_LR_LAM[name])
  for row in rows.values():
    assert row.kind == "decoupled", (name, row)
    np.testing.assert_allclose(row.rate, LR * LAM, rtol=1e-3, err_msg=name)
    np.testing.assert_allclose(row.ratio, 1.0, rtol=1e-2, err_msg=name)


def test_adam_alone_decays_nothing():
  rows, report = _rows(optax.adam(LR))
  assert {r.kind for r in rows.values()} == {"none"} and not report.warnings


@pytest.mark.parametrize(
  "tx",
  [
    optax.chain(optax.add_decayed_weights(LAM), optax.adam(LR)),
    compat.torch_adam(LR, weight_decay=LAM),
    optax.chain(od.add_l2_to_grad(LAM), optax.adam(LR)),
  ],
  ids=["add_decayed_weights+adam", "torch_adam", "add_l2_to_grad+adam"],
)
def test_l2_inside_adam_is_coupled_to_the_gradient_scale(tx):
  rows, report = _rows(tx)
  kernel = rows["dense/kernel"]
  assert kernel.kind == "coupled"
  assert kernel.ratio > 10  # small gradients: strong L2; large gradients: weak
  assert any("L2 term inside an adaptive optimizer" in w for w in report.warnings)


def test_momentum_amplifies_l2_tenfold_at_steady_state():
  rows, _ = _rows(optax.chain(optax.add_decayed_weights(LAM), optax.sgd(LR, momentum=0.9)))
  for row in rows.values():
    assert row.kind == "decoupled"  # plain SGD-momentum does not precondition
    np.testing.assert_allclose(row.rate, LR * LAM / (1 - 0.9), rtol=1e-3)


def test_masks_and_multipliers_are_read_per_leaf():
  mults = od.decay_multipliers([(".*kernel", 1.0), (".*scale", 0.5)])
  rows, report = _rows(optax.chain(optax.adam(LR), od.decoupled_weight_decay(0.01, mask=mults)))
  assert rows["dense/bias"].kind == "none"
  np.testing.assert_allclose(rows["dense/kernel"].rate, 0.01, rtol=1e-3)
  np.testing.assert_allclose(rows["LayerNorm_0/scale"].rate, 0.005, rtol=1e-3)
  assert any("'LayerNorm_0/scale' is a normalization parameter" in w for w in report.warnings)
  _, defaults = _rows(optax.adamw(LR, weight_decay=LAM))  # optax.adamw's default mask: all
  assert any("'dense/bias' is a bias and decays" in w for w in defaults.warnings)


def test_a_frozen_group_decays_nothing_and_a_decay_outside_the_partition_is_flagged():
  labels = {"dense": {"kernel": "train", "bias": "frozen"}, "LayerNorm_0": "train"}
  inside = optax.partition(
    {"frozen": optax.set_to_zero(), "train": optax.adamw(LR, weight_decay=LAM)}, labels
  )
  rows, _ = _rows(inside)
  assert rows["dense/bias"].kind == "none" and rows["dense/bias"].frozen
  outside = optax.chain(
    optax.partition({"frozen": optax.set_to_zero(), "train": optax.adam(LR)}, labels),
    od.decoupled_weight_decay(LR * LAM),
  )
  rows, report = _rows(outside)
  assert rows["dense/bias"].frozen and rows["dense/bias"].kind == "decoupled"
  assert any("'dense/bias' is frozen" in w for w in report.warnings)


def test_a_decay_after_the_sign_flip_grows_the_weights_and_is_flagged():
  tx = optax.chain(optax.adam(LR), optax.add_decayed_weights(LR * LAM))  # the wrong place
  rows, report = _rows(tx)
  np.testing.assert_allclose(rows["dense/kernel"].rate, -LR * LAM, rtol=1e-3)
  assert any("*grows* the weight" in w for w in report.warnings)


def test_the_timescale_against_the_run():
  _, short = _rows(optax.adamw(LR, weight_decay=LAM), training_steps=10)  # tau = 1000 steps
  assert any("the decay does little in this run" in w for w in short.warnings)
  _, long = _rows(optax.adamw(LR, weight_decay=LAM), training_steps=100_000)
  assert any("forget their initialization" in w for w in long.warnings)


def test_framework_params_flax_linen_boxes_nnx_state_and_equinox():
  from flax import linen as nn
  from flax import nnx

  eqx = pytest.importorskip("equinox", reason="equinox is in the [test] extra")

  class Boxed(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(3, kernel_init=nn.with_partitioning(nn.initializers.ones, (None, "m")))(x)

  linen = Boxed().init(jax.random.key(0), jnp.ones((1, 2)))["params"]
  state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), nnx.Param)
  mlp = eqx.filter(eqx.nn.MLP(2, 2, 3, 1, key=jax.random.key(1)), eqx.is_inexact_array)
  tx = optax.adamw(LR, weight_decay=LAM, mask=od.bias_mask)
  for params, decayed in (
    (linen, {"Dense_0/kernel"}),
    (state, {"kernel"}),
    (mlp, {"layers/0/weight", "layers/1/weight"}),
  ):
    rows, _ = _rows(tx, params)
    assert {p for p, r in rows.items() if r.kind == "decoupled"} == decayed
    for p in decayed:
      np.testing.assert_allclose(rows[p].rate, LR * LAM, rtol=1e-3)


def test_bad_arguments_name_audit():
  with pytest.raises(ValueError, match="audit: `steps` must be a positive int"):
    audit(optax.adam(LR), PARAMS, steps=0)
  with pytest.raises(ValueError, match="audit: `delta` must be < 1"):
    audit(optax.adam(LR), PARAMS, delta=1.0)


MATRICES = {
  "w1": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) + 0.05,
  "w2": jnp.linspace(0.1, 1.0, 15).reshape(3, 5),
}


def test_adamw_with_a_mask_decays_only_the_masked_leaves():
  rows, report = _rows(optax.adamw(LR, weight_decay=LAM, mask=od.bias_mask))
  assert rows["dense/bias"].kind == "none"
  for path in ("dense/kernel", "LayerNorm_0/scale"):  # bias_mask spares biases only
    np.testing.assert_allclose(rows[path].rate, LR * LAM, rtol=1e-3)
  assert (
    len(report.warnings) == 1 and "'LayerNorm_0/scale' is a normalization" in report.warnings[0]
  )


def test_muon_decays_the_matrices_it_orthogonalizes_at_lr_times_lambda():
  """optax.contrib.muon: decoupled decay lr*wd on 2-D leaves; the rest goes to its Adam,
  decayed only by ``adam_weight_decay``. torch.optim.Muon (2-D only): ``p *= 1 - lr*wd``."""
  rows, _ = _rows(optax.contrib.muon(LR, weight_decay=LAM))
  np.testing.assert_allclose(rows["dense/kernel"].rate, LR * LAM, rtol=1e-3)
  assert rows["dense/kernel"].kind == "decoupled" and not rows["dense/kernel"].relative
  assert rows["dense/bias"].kind == "none" and rows["LayerNorm_0/scale"].kind == "none"
  rows, _ = _rows(optax.contrib.muon(LR, weight_decay=LAM, adam_weight_decay=2 * LAM))
  np.testing.assert_allclose(rows["dense/bias"].rate, 2 * LR * LAM, rtol=1e-3)
  rows, _ = _rows(compat.torch_muon(LR, weight_decay=LAM), MATRICES)
  for row in rows.values():
    assert row.kind == "decoupled" and not row.relative
    np.testing.assert_allclose(row.rate, LR * LAM, rtol=1e-3)


@pytest.mark.parametrize(
  "tx",
  [optax.lamb(LR, weight_decay=LAM), optax.lamb(LR, weight_decay=0.0), optax.adafactor(LR)],
  ids=["lamb", "lamb-no-decay", "adafactor"],
)
def test_steps_scaled_by_the_weights_norm_are_flagged_not_read_as_decay(tx):
  """LAMB's trust ratio and Adafactor's relative step make the whole update proportional to
  the leaf's norm: the uniform perturbation reads that as a rate (even with no decay at all),
  the every-other-coordinate perturbation shows it is not per-coordinate decay."""
  rows, report = _rows(tx)
  for row in rows.values():
    assert row.relative, row
    assert row.rate != 0
  assert all("update-to-weight ratio, not a decay" in w for w in report.warnings)
  assert len(report.warnings) == len(rows)  # no "bias decays" claims about a relative step


def test_adafactor_weight_decay_rate_is_a_per_step_rate_not_scaled_by_the_lr():
  """optax.adafactor adds ``weight_decay_rate * w`` after its learning rate: rate = wd itself."""
  tx = optax.adafactor(LR, multiply_by_parameter_scale=False, weight_decay_rate=1e-3)
  rows, _ = _rows(tx)
  for row in rows.values():
    assert row.kind == "decoupled" and not row.relative
    np.testing.assert_allclose(row.rate, 1e-3, rtol=1e-3)
  rows, _ = _rows(optax.adafactor(LR, multiply_by_parameter_scale=False))
  assert {r.kind for r in rows.values()} == {"none"}


WARMUP = optax.linear_schedule(0.0, LR, 200)  # changes 2x over the audit's second half


@pytest.mark.parametrize(
  ("tx", "slope"),
  [
    (optax.adamw(WARMUP, weight_decay=LAM), 1.0),
    (optax.chain(optax.add_decayed_weights(LAM), optax.sgd(WARMUP)), 1.0),
    (optax.chain(optax.adam(WARMUP), od.decoupled_weight_decay(LR * LAM)), 0.0),
  ],
  ids=["optax.adamw", "sgd+l2", "adam+constant-decoupled"],
)
def test_whether_the_rate_follows_the_schedule(tx, slope):
  rows, report = _rows(tx, schedule=WARMUP)
  for row in rows.values():
    np.testing.assert_allclose(row.lr_slope, slope, atol=1e-3)
  assert "follows lr" in str(report)


def test_inject_hyperparams_learning_rate_is_read_from_the_state():
  rows, _ = _rows(optax.inject_hyperparams(optax.adamw)(WARMUP, weight_decay=LAM))
  for row in rows.values():
    np.testing.assert_allclose(row.lr_slope, 1.0, atol=1e-3)
    np.testing.assert_allclose(row.rate, float(WARMUP(119)) * LAM, rtol=1e-3)  # the last step
  rows, _ = _rows(optax.inject_hyperparams(optax.adamw)(LR, weight_decay=LAM))
  assert all(np.isnan(r.lr_slope) for r in rows.values())  # a constant: nothing to follow


def test_a_schedule_that_does_not_change_or_is_not_callable_is_refused():
  with pytest.raises(ValueError, match="audit: the learning rate of `schedule` changes by less"):
    audit(optax.adamw(LR), PARAMS, schedule=optax.constant_schedule(LR))
  with pytest.raises(TypeError, match="audit: `schedule` must be a function"):
    audit(optax.adamw(LR), PARAMS, schedule=LR)


def test_a_decay_that_bfloat16_rounds_away_is_flagged():
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), PARAMS)
  _, report = _rows(optax.adamw(1e-3, weight_decay=0.1, mask=od.bias_mask), params)
  lost = [w for w in report.warnings if "round to no change" in w]
  assert [w.split(":")[0] for w in lost] == ["'LayerNorm_0/scale'", "'dense/kernel'"]
  assert all("in bfloat16, 100% of the decay steps" in w for w in lost)  # 1e-4 < 2**-9
  _, fine = _rows(optax.adamw(1e-3, weight_decay=0.1, mask=od.bias_mask))  # float32: 1e-4 kept
  assert not any("round to no change" in w for w in fine.warnings)


@pytest.mark.parametrize(
  ("inner", "optimizer"),
  [(optax.adam(LR), "adam"), (optax.radam(LR), "radam")],
)
def test_effective_l2_strength_agrees_with_the_audit(inner, optimizer):
  """The state-reading diagnostic and the black-box audit on the same gradients: lr * median
  kappa is the audit's rate (the L2 term is small next to the noise, so v-hat is the noise's).
  Under RAdam that needs the rectification r_t (~0.24 at step 120): without it 4x too high."""
  from optaxdecay.diagnostics._audit import _noise

  l2 = 1e-4
  params = {"w": jnp.linspace(0.5, 1.5, 256)}
  tx = optax.chain(od.add_l2_to_grad(l2), inner)
  rate = audit(tx, params).rows[0].rate
  z, c = _noise(params, 120, jax.random.key(0))
  state = tx.init(params)
  for c_t in c:
    _, state = tx.update(jax.tree.map(lambda x, c_t=c_t: c_t * x, z), state, params)
  kappa = od.diagnostics.effective_l2_strength(state, l2, optimizer=optimizer).rows[0].median
  # 5 %: the finite difference also sees the L2 term's share of v-hat, which kappa's
  # first-order formula leaves out (3.5 % here); the rectification is a factor 4.
  np.testing.assert_allclose(LR * kappa, rate, rtol=0.05)
  if optimizer == "radam":
    unrectified = od.diagnostics.effective_l2_strength(state, l2).rows[0].median
    assert LR * unrectified > 3 * rate


@pytest.mark.parametrize("name", ["adamax", "yogi", "lamb", "sgd"])
def test_effective_l2_strength_refuses_states_it_cannot_read(name):
  tx = optax.chain(od.add_l2_to_grad(1e-4), optax.adam(LR))
  state = tx.init(PARAMS)
  _, state = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
  with pytest.raises(ValueError, match=f"`optimizer`='{name}' cannot be interpreted"):
    od.diagnostics.effective_l2_strength(state, 1e-4, optimizer=name)
