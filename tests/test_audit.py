"""``diagnostics.audit`` against optimizers whose decay is known by construction.

Two matrices and the cases each a table cannot say. ``KNOWN`` lists optimizers — Optax's
built-ins and contrib optimizers that take a decay, optaxdecay's transforms and variants,
``compat``'s torch/Keras optimizers, the Optax wrappers — each with the verdict its own equation
gives (``optax.adamw`` removes ``lr * wd`` of each weight per step; L2 before plain SGD removes
``lr * l2``, before SGD-momentum ``mu`` it removes ``lr * l2 / (1 - mu)`` at steady state;
before Adam it is coupled to the gradients' scale), audited on a freshly initialized Flax model
(zero biases) with a one-element and a 0-d leaf. The zoo matrix runs every framework's tree
(boxed, stacked, Equinox, Haiku, NNX state and module, low precision, Python floats) through
``optax.adamw`` and L2 + SGD with the docs' mask, against the zoo's annotation.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import zoo

import optaxdecay as od
from optaxdecay import compat
from optaxdecay.diagnostics import audit

LR, WD, MU = 1e-2, 0.1, 0.9
RATE = LR * WD  # optax.adamw's per-step rate


def _fresh() -> Any:
  """A Flax Linen model as ``init`` gives it (zero biases and LayerNorm offsets), a learned
  one-element temperature and a 0-d gain."""
  from flax import linen as nn

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(3)(nn.LayerNorm()(nn.Dense(6)(x)))

  params = MLP().init(jax.random.key(0), jnp.ones((1, 5)))["params"]
  return {"mlp": params, "temperature": jnp.ones(1), "gain": jnp.asarray(2.0)}


FRESH = _fresh()
BIASES = {"mlp/Dense_0/bias", "mlp/Dense_1/bias", "mlp/LayerNorm_0/bias"}
MATRICES = {"mlp/Dense_0/kernel", "mlp/Dense_1/kernel"}


def every(_: str) -> bool:
  return True


def not_bias(path: str) -> bool:
  return path not in BIASES


def matrix(path: str) -> bool:
  return path in MATRICES


def _every_16th(t: Any) -> Any:
  return RATE * jnp.where(t % 16 == 0, 16.0, 0.0)  # 16x the rate on every 16th step


class Known(NamedTuple):
  """An optimizer and what its equation says it does to each leaf of ``FRESH``.

  ``decays(path)`` picks the leaves with a decay of kind ``kind`` at per-step ``rate`` (``None``:
  not pinned, as for L2 inside Adam) on ``fraction`` of the steps; the others have none.
  """

  make: Callable[[], optax.GradientTransformation]
  kind: str
  rate: float | None
  decays: Callable[[str], bool] = every
  fraction: float = 1.0
  relative: bool = False


KNOWN: dict[str, Known] = {
  # Optax's own, and its contrib optimizers that take a decay.
  "optax.adamw": Known(lambda: optax.adamw(LR, weight_decay=WD), "decoupled", RATE),
  "optax.adamw(mask=bias_mask)": Known(
    lambda: optax.adamw(LR, weight_decay=WD, mask=od.bias_mask), "decoupled", RATE, not_bias
  ),
  "optax.nadamw": Known(lambda: optax.nadamw(LR, weight_decay=WD), "decoupled", RATE),
  "optax.adamaxw": Known(lambda: optax.adamaxw(LR, weight_decay=WD), "decoupled", RATE),
  "optax.lion": Known(lambda: optax.lion(LR, weight_decay=WD), "decoupled", RATE),
  "optax.adafactor(weight_decay_rate)": Known(  # added after the learning rate: wd per step
    lambda: optax.adafactor(LR, multiply_by_parameter_scale=False, weight_decay_rate=RATE),
    "decoupled",
    RATE,
  ),
  "optax.contrib.muon": Known(
    lambda: optax.contrib.muon(LR, weight_decay=WD), "decoupled", RATE, matrix
  ),
  "optax.lamb": Known(lambda: optax.lamb(LR, weight_decay=WD), "decoupled", None, relative=True),
  "optax.adam": Known(lambda: optax.adam(LR), "none", 0.0, lambda _: False),
  "optax.sgd": Known(lambda: optax.sgd(LR, momentum=MU), "none", 0.0, lambda _: False),
  # L2 through the optimizer: the SGD equivalence, momentum's 1/(1 - mu), Adam's coupling.
  "add_decayed_weights+sgd": Known(
    lambda: optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR)), "decoupled", RATE
  ),
  "add_l2_to_grad+sgd(momentum)": Known(
    lambda: optax.chain(od.add_l2_to_grad(WD), optax.sgd(LR, momentum=MU)),
    "decoupled",
    RATE / (1 - MU),
  ),
  "add_l2_to_grad+sgd(nesterov)": Known(
    lambda: optax.chain(od.add_l2_to_grad(WD), optax.sgd(LR, momentum=MU, nesterov=True)),
    "decoupled",
    RATE / (1 - MU),
  ),
  "add_decayed_weights+adam": Known(
    lambda: optax.chain(optax.add_decayed_weights(WD), optax.adam(LR)), "coupled", None
  ),
  # optaxdecay's transforms and variants after Adam.
  "decoupled_weight_decay": Known(
    lambda: optax.chain(optax.adam(LR), od.decoupled_weight_decay(RATE)), "decoupled", RATE
  ),
  "decoupled_weight_decay(weight_decay=, learning_rate=)": Known(
    lambda: optax.chain(
      optax.adam(LR), od.decoupled_weight_decay(weight_decay=WD, learning_rate=LR)
    ),
    "decoupled",
    RATE,
  ),
  "proximal_weight_decay": Known(
    lambda: optax.chain(optax.adam(LR), od.proximal_weight_decay(RATE)),
    "decoupled",
    RATE / (1 + RATE),
  ),
  "cautious": Known(  # the gate opens on about half the coordinates and steps
    lambda: optax.chain(optax.adam(LR), od.decoupled_weight_decay(RATE, cautious=True)),
    "decoupled",
    RATE,
    fraction=0.5,
  ),
  "anchor='init'": Known(
    lambda: optax.chain(optax.adam(LR), od.decoupled_weight_decay(RATE, anchor="init")),
    "anchored",
    RATE,
  ),
  "every 16th step": Known(
    lambda: optax.chain(optax.adam(LR), od.decoupled_weight_decay(_every_16th)),
    "decoupled",
    16 * RATE,
    fraction=1 / 16,
  ),
  "fused_adamw": Known(lambda: od.fused_adamw(LR, weight_decay=WD), "decoupled", RATE),
  # compat: PyTorch's and Keras's conventions.
  "compat.torch_adamw": Known(lambda: compat.torch_adamw(LR, weight_decay=WD), "decoupled", RATE),
  "compat.torch_sgd": Known(lambda: compat.torch_sgd(LR, weight_decay=WD), "decoupled", RATE),
  "compat.torch_adam": Known(lambda: compat.torch_adam(LR, weight_decay=WD), "coupled", None),
  "compat.keras_adamw": Known(lambda: compat.keras_adamw(LR, weight_decay=WD), "decoupled", RATE),
  # The Optax wrappers: the rate is per real step.
  "MultiSteps(16)": Known(
    lambda: optax.MultiSteps(optax.adamw(LR, weight_decay=WD), every_k_schedule=16),
    "decoupled",
    RATE,
  ),
  "MultiSteps(32)": Known(
    lambda: optax.MultiSteps(optax.adamw(LR, weight_decay=WD), every_k_schedule=32),
    "decoupled",
    RATE,
  ),
  "inject_hyperparams": Known(
    lambda: optax.inject_hyperparams(optax.adamw)(LR, weight_decay=WD), "decoupled", RATE
  ),
  "apply_if_finite": Known(
    lambda: optax.apply_if_finite(optax.adamw(LR, weight_decay=WD), 3), "decoupled", RATE
  ),
  "clip_by_global_norm+adamw": Known(
    lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(LR, weight_decay=WD)),
    "decoupled",
    RATE,
  ),
  "partition(frozen biases)": Known(
    lambda: optax.partition(
      {"train": optax.adamw(LR, weight_decay=WD), "frozen": optax.set_to_zero()},
      lambda p: jax.tree.map(lambda m: "train" if m else "frozen", od.bias_mask(p)),
    ),
    "decoupled",
    RATE,
    not_bias,
  ),
}


def _leaves(tree: Any) -> list[tuple[str, Any]]:
  return [(leaf.path, leaf.value) for leaf in od._tree.flatten_leaves(tree)[0]]


def _rows(report: od.diagnostics.AuditReport) -> dict[str, od.diagnostics.AuditRow]:
  return {r.path: r for r in report.rows}


@pytest.mark.parametrize("name", list(KNOWN))
def test_the_audit_reads_the_decay_each_optimizer_is_built_with(name):
  known = KNOWN[name]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", od.PerStepRateWarning)  # every-16th: 16x a rate
    tx = known.make()
  rows = _rows(audit(tx, FRESH))
  assert set(rows) == {*BIASES, *MATRICES, "mlp/LayerNorm_0/scale", "temperature", "gain"}
  for path, row in rows.items():
    if not known.decays(path):
      assert row.kind == "none", (name, row)
      continue
    assert (row.kind, row.relative) == (known.kind, known.relative), (name, row)
    if known.rate is not None:
      np.testing.assert_allclose(row.rate, known.rate, rtol=1e-3, err_msg=f"{name}: {path}")
    if known.kind == "decoupled" and not known.relative:
      assert row.spread < 1.01 and not row.frozen, (name, row)
    if known.fraction == 1:
      assert row.fraction == 1, (name, row)
    elif np.size(dict(_leaves(FRESH))[path]) > 4:  # a gate opens as often as the noise says
      np.testing.assert_allclose(row.fraction, known.fraction, rtol=0.25, err_msg=path)
    else:  # one coordinate's cautious gate follows its momentum for many calls in a row
      assert 0 < row.fraction < 1, (name, row)


def test_l2_inside_adam_is_coupled_and_weights_with_large_gradients_are_regularized_less():
  """Small gradients: strong L2; large ones: weak. (The 0-d gain of 2 has an L2 term that
  outweighs even the small gradients, so its rate moves less between the scales.)"""
  rows = _rows(audit(KNOWN["add_decayed_weights+adam"].make(), FRESH))
  assert {r.kind for r in rows.values()} == {"coupled"}
  for path in (*MATRICES, *BIASES):
    assert rows[path].ratio > 10, rows[path]


@pytest.mark.parametrize("name", zoo.names())
@pytest.mark.parametrize("optimizer", ["adamw", "l2+sgd"])
def test_every_zoo_tree_with_the_docs_mask(name, optimizer):
  """Every framework's tree, as it is initialized (zero biases, boxes, stacks, NNX state and the
  module itself, Equinox, Haiku, low precision): the leaves the docs' mask decays read that
  rate, the others none. A leaf whose decay its dtype cannot resolve reads ``none`` with its
  floor above the rate and a warning saying so; complex leaves are refused."""
  specimen = zoo.get(name)
  lr, wd = 1e-2, 0.5  # a rate of 5e-3: resolvable in float16 and bfloat16 too
  tx = {
    "adamw": lambda m: optax.adamw(lr, weight_decay=wd, mask=m),
    "l2+sgd": lambda m: optax.chain(od.add_l2_to_grad(wd, mask=m), optax.sgd(lr)),
  }[optimizer](specimen.mask_arg)
  complex_leaves = [p for p, x in zoo.leaf_paths(specimen.params) if jnp.iscomplexobj(x)]
  if complex_leaves:
    with pytest.raises(ValueError, match=r"audit: the leaf '.*' of `params` has dtype complex64"):
      audit(tx, specimen.params)
    return
  report = audit(tx, specimen.params)
  for row in report.rows:
    if row.path not in specimen.decayed:
      assert row.kind == "none", row
    elif row.kind == "none":  # unresolved in the dtype: said, never silently
      assert row.floor > lr * wd / 2, row
      assert any(f"{row.path!r}: no decay resolved" in w for w in report.warnings), row
    else:
      assert row.kind == "decoupled" and not row.relative, row
      np.testing.assert_allclose(row.rate, lr * wd, rtol=2e-2, err_msg=row.path)
  assert {r.path for r in report.rows} == {p for p, _ in zoo.leaf_paths(specimen.params)}


def test_a_fresh_model_s_zero_biases_decay_and_get_the_bias_warning():
  report = audit(optax.adamw(LR, weight_decay=WD), FRESH)
  warned = {w.split(" is a bias")[0].strip("'") for w in report.warnings if " is a bias " in w}
  assert warned == BIASES


def test_the_rate_is_read_over_the_window_not_at_one_call():
  """A warmup: ``rate`` is the mean of ``lr_t * wd`` over the measured calls 64..127."""
  warm = optax.linear_schedule(0.0, LR, 256)
  rows = _rows(audit(optax.inject_hyperparams(optax.adamw)(warm, weight_decay=WD), FRESH))
  want = WD * np.mean([warm(t) for t in range(64, 128)])
  for row in rows.values():
    np.testing.assert_allclose(row.rate, want, rtol=1e-3)
    np.testing.assert_allclose(row.lr_slope, 1.0, atol=1e-3)


def test_the_timescale_is_the_sum_of_the_schedule_over_the_run():
  """A 10k-step warmup read at calls 64..127 is about 100x below its peak; over a 50k-step run,
  ``Σ lr_t·wd = 4.5``: no warning; over 2k steps, ``Σ = 0.02``: the decay does little."""
  warm = optax.linear_schedule(0.0, 1e-3, 10_000)
  tx = optax.adamw(warm, weight_decay=WD, mask=od.bias_mask)
  assert not [w for w in audit(tx, FRESH, schedule=warm, training_steps=50_000).warnings
              if "Σr" in w]  # fmt: skip
  short = audit(tx, FRESH, schedule=warm, training_steps=2_000).warnings
  assert any("removes Σr = 0.02 over the run's 2000 steps" in w and "does little" in w
             for w in short)  # fmt: skip
  constant = audit(optax.adamw(LR, weight_decay=WD), FRESH, training_steps=100_000).warnings
  assert any("Σr = 100" in w and "forget their initialization" in w for w in constant)
  injected = optax.inject_hyperparams(optax.adamw)(warm, weight_decay=WD)
  warnings_ = audit(injected, FRESH, training_steps=50_000).warnings
  assert any("pass `schedule=` for the timescale warnings" in w for w in warnings_)


def test_under_multisteps_the_schedule_counts_optimizer_steps():
  """``schedule`` and ``training_steps`` count optimizer steps, as the inner optimizer does:
  the sum is the same with and without accumulation (Σ of 1e-4·t/1000 over 1,000 steps)."""
  warm = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 1000, 100_000)
  plain = optax.adamw(warm, weight_decay=WD)
  for tx in (plain, optax.MultiSteps(optax.adamw(warm, weight_decay=WD), every_k_schedule=16)):
    report = audit(tx, {"w": jnp.ones((4, 3))}, schedule=warm, training_steps=1000)
    assert report.rows[0].lr_slope == pytest.approx(1.0, abs=0.02)
    (total,) = [float(m) for w in report.warnings for m in re.findall(r"Σr = ([\d.e+-]+) ", w)]
    assert total == pytest.approx(0.05, rel=0.01)


@pytest.mark.parametrize(
  ("tx", "changing"),
  [
    (compat.torch_sgd(0.1, momentum=0.99, weight_decay=1e-4), True),  # ~500 steps to settle
    (optax.MultiSteps(compat.torch_sgd(0.1, momentum=MU, weight_decay=1e-4), 16), True),
    (compat.torch_sgd(0.1, momentum=MU, weight_decay=1e-4), False),
  ],
  ids=["momentum-0.99", "multisteps-16-momentum", "momentum-0.9"],
)
def test_a_rate_still_changing_in_the_window_is_flagged(tx, changing):
  report = audit(tx, {"w": jnp.linspace(-0.2, 0.2, 12)})
  warned = any("the rate is still changing over the measured calls" in w for w in report.warnings)
  assert warned == changing, report
  if not changing:
    np.testing.assert_allclose(report.rows[0].rate, 0.1 * 1e-4 / (1 - MU), rtol=1e-3)


@pytest.mark.parametrize("key", [0, 1, 2])
def test_cautious_decay_reads_the_same_whatever_the_key(key):
  rows = _rows(audit(KNOWN["cautious"].make(), FRESH, key=key))
  for row in rows.values():
    assert row.kind == "decoupled", row
    np.testing.assert_allclose(row.rate, RATE, rtol=1e-3)
    assert row.low > 0 and 0 < row.fraction < 1, row
    if np.size(dict(_leaves(FRESH))[row.path]) > 4:  # one coordinate's gate follows its momentum
      assert 0.3 < row.fraction < 0.7, row


def test_a_one_element_leaf_under_a_trust_ratio_is_relative_not_a_decay():
  rows = _rows(audit(optax.lamb(LR, weight_decay=WD), {"t": jnp.ones(1), "s": jnp.asarray(2.0)}))
  assert all(r.relative for r in rows.values()), rows


def test_a_steps_scaled_by_the_weights_norm_are_flagged_not_read_as_decay():
  for tx in (optax.lamb(LR, weight_decay=0.0), optax.adafactor(LR)):
    report = audit(tx, FRESH)
    assert all(r.relative for r in report.rows if r.kind != "none")
    assert all("update-to-weight ratio, not a decay" in w for w in report.warnings)


def test_float16_adam_overflow_is_flagged_and_the_rounding_warning_kept():
  half = jax.tree.map(lambda x: x.astype(jnp.float16), FRESH)
  report = audit(optax.adamw(1e-3, weight_decay=WD), half)
  assert any("in float16 the updates are inf/nan for gradients of scale" in w
             for w in report.warnings)  # fmt: skip
  assert any("round to no change" in w for w in report.warnings)
  assert not any(r.relative for r in report.rows)


def test_nan_updates_are_non_finite_with_a_warning():
  report = audit(optax.chain(optax.adam(LR), optax.scale(jnp.nan)), FRESH)
  assert {r.kind for r in report.rows} == {"non-finite"}
  assert len([w for w in report.warnings if "inf/nan at every gradient scale" in w]) == len(
    report.rows
  )


def test_plain_sgd_l2_on_small_weights_is_decoupled_though_unresolved_at_large_gradients():
  """At gradient scale 1e2 the L2 difference is below float32's rounding of the update: that
  scale is unresolved (no ratio), not a rate of 0 and a coupled verdict."""
  lecun = jax.tree.map(lambda w: w * 0.05, FRESH)
  for tx in (compat.torch_sgd(0.1, weight_decay=1e-4),
             optax.chain(optax.sgd(0.1), od.decoupled_weight_decay(1e-5))):  # fmt: skip
    report = audit(tx, lecun)
    for row in report.rows:
      assert row.kind == "decoupled" and np.isnan(row.ratio), row
      np.testing.assert_allclose(row.rate, 1e-5, rtol=1e-2)
    assert not any("adaptive optimizer" in w for w in report.warnings)


# --- names ------------------------------------------------------------------------------------


def _warned(report, role: str) -> set[str]:
  return {w.split("'")[1] for w in report.warnings if f"is {role} and decays" in w}


def test_module_classes_name_norms_and_embeddings_before_names():
  eqx = pytest.importorskip("equinox", reason="equinox is in the [test] extra")

  class GPT(eqx.Module):  # GPT-2's field names: only the classes say what they are
    wte: eqx.nn.Embedding
    ln_f: eqx.nn.LayerNorm
    norm_proj: eqx.nn.Linear  # a Linear named like a norm

    def __init__(self, key):
      k1, k2 = jax.random.split(key)
      self.wte = eqx.nn.Embedding(8, 4, key=k1)
      self.ln_f = eqx.nn.LayerNorm(4)
      self.norm_proj = eqx.nn.Linear(4, 4, key=k2)

  model = eqx.filter(GPT(jax.random.key(0)), eqx.is_inexact_array)
  report = audit(optax.adamw(LR, weight_decay=WD), model)
  assert _warned(report, "an embedding") == {"wte/weight"}
  assert _warned(report, "a normalization parameter") == {"ln_f/weight"}
  assert _warned(report, "a bias") == {"ln_f/bias", "norm_proj/bias"}


def test_names_without_classes_an_embedding_is_a_2d_table_and_biases_follow_bias_mask():
  vit = {
    "embedding": {"kernel": jnp.ones((2, 2, 3, 4)), "bias": jnp.zeros(4)},  # a conv: no table
    "pos_embedding": jnp.ones((1, 3, 4)),  # a learned position table, ViT's shape
    "token_embed": {"embedding": jnp.ones((5, 4))},
    "encoder_norm": {"scale": jnp.ones(4)},
    "layers": [jnp.ones((4, 4)), jnp.zeros(4)],  # [W, b]: bias_mask's ndim rule
  }
  report = audit(optax.adamw(LR, weight_decay=WD), vit)
  assert _warned(report, "an embedding") == {"token_embed/embedding", "pos_embedding"}
  assert _warned(report, "a normalization parameter") == {"encoder_norm/scale"}
  assert _warned(report, "a bias") == {"embedding/bias", "layers/1"}


def test_a_flat_state_dict_s_dotted_names_and_buffers():
  state_dict = {
    "transformer.wte.weight": jnp.ones((8, 4)),
    "transformer.h.0.ln_1.weight": jnp.ones(4),
    "transformer.ln_f.weight": jnp.ones(4),
    "transformer.h.0.mlp.c_fc.weight": jnp.ones((4, 4)),
    "bn1.running_mean": jnp.ones(4),
  }
  report = audit(optax.adamw(LR, weight_decay=WD), state_dict)
  assert _warned(report, "an embedding") == {"transformer.wte.weight"}
  assert _warned(report, "a normalization parameter") == {
    "transformer.h.0.ln_1.weight", "transformer.ln_f.weight",
  }  # fmt: skip
  assert any("'bn1.running_mean' looks like a BatchNorm running statistic" in w
             for w in report.warnings)  # fmt: skip


def test_an_nnx_module_is_audited_as_its_state_with_its_classes(nnx_model):
  _, model = nnx_model
  report = audit(optax.adamw(LR, weight_decay=WD, mask=od.bias_mask), model)
  assert {r.path for r in report.rows if r.kind == "decoupled"} == {
    "dense/kernel", "norm/scale", "head/kernel",
  }  # fmt: skip
  assert _warned(report, "a normalization parameter") == {"norm/scale"}


# --- what else the report says ----------------------------------------------------------------


def test_a_frozen_group_decays_nothing_and_a_decay_outside_the_partition_is_flagged():
  def labels(p):
    return jax.tree.map(lambda m: "train" if m else "frozen", od.bias_mask(p))

  outside = optax.chain(
    optax.partition({"frozen": optax.set_to_zero(), "train": optax.adam(LR)}, labels),
    od.decoupled_weight_decay(RATE),
  )
  report = audit(outside, FRESH)
  rows = _rows(report)
  for path in BIASES:
    assert rows[path].frozen and rows[path].kind == "decoupled"
    assert any(f"{path!r} is frozen" in w for w in report.warnings)
  inside = _rows(audit(KNOWN["partition(frozen biases)"].make(), FRESH))
  assert all(inside[p].frozen and inside[p].kind == "none" for p in BIASES)


def test_a_decay_after_the_sign_flip_grows_the_weights_and_is_flagged():
  report = audit(optax.chain(optax.adam(LR), optax.add_decayed_weights(RATE)), FRESH)
  for row in report.rows:
    np.testing.assert_allclose(row.rate, -RATE, rtol=1e-3)
    assert not row.relative
  assert any("*grows* the weight" in w for w in report.warnings)


def test_an_accumulation_longer_than_the_window_says_so():
  report = audit(optax.MultiSteps(optax.adamw(LR, weight_decay=WD), 256), FRESH)
  assert {r.kind for r in report.rows} == {"none"}
  assert any("no update moved any weight" in w for w in report.warnings)


def test_whether_the_rate_follows_the_schedule():
  warm = optax.linear_schedule(0.0, LR, 256)
  for tx, slope in (
    (optax.adamw(warm, weight_decay=WD), 1.0),
    (optax.chain(optax.add_decayed_weights(WD), optax.sgd(warm)), 1.0),
    (optax.chain(optax.adam(warm), od.decoupled_weight_decay(RATE)), 0.0),
  ):
    report = audit(tx, FRESH, schedule=warm)
    for row in report.rows:
      np.testing.assert_allclose(row.lr_slope, slope, atol=1e-3)
    assert "follows lr" in str(report)
  constant = _rows(audit(optax.inject_hyperparams(optax.adamw)(LR, weight_decay=WD), FRESH))
  assert all(np.isnan(r.lr_slope) for r in constant.values())  # nothing to follow


def test_a_decay_that_bfloat16_rounds_away_is_flagged():
  params = {"kernel": jnp.full((8, 8), 0.75, jnp.bfloat16)}
  kept = audit(optax.adamw(1e-2, weight_decay=1.0), params)  # 1 % of 0.75: above half a step
  assert _rows(kept)["kernel"].kind == "decoupled"
  assert not any("round to no change" in w for w in kept.warnings)
  lost = audit(optax.adamw(1e-3, weight_decay=1.0), params)  # 0.1 %: below bfloat16's 2**-9
  assert any("in bfloat16, 100% of the decay steps" in w for w in lost.warnings)
  # AdamW's usual 1e-4 per step: below what the updates resolve in bfloat16, and rounded away.
  unseen = audit(optax.adamw(1e-3, weight_decay=0.1), params)
  assert _rows(unseen)["kernel"].kind == "none"
  assert any("rounded away entirely in bfloat16 anyway" in w for w in unseen.warnings)


def test_the_table_prints_every_row_and_its_columns():
  report = audit(KNOWN["cautious"].make(), FRESH, schedule=optax.linear_schedule(0, LR, 256))
  text = str(report)
  assert text.splitlines()[0].split() == [
    "path", "kind", "rate/step", "10-90", "%", "of", "steps", "small/large", "grad", "frozen",
    "follows", "lr",
  ]  # fmt: skip
  assert all(r.path in text for r in report.rows)
  none = str(audit(optax.adam(LR), {"w": jnp.ones(3)}))
  assert "none" in none and "< " in none  # the floor it was measured down to


# --- bad input --------------------------------------------------------------------------------


def _raises_on_update(*_: Any, **__: Any) -> Any:
  raise RuntimeError("inside the optimizer")


BAD_INPUT = [
    (optax.adamw, FRESH, {}, TypeError, r"`tx` must be .*\(call it: e.g. `optax.adamw\(1e-3\)`"),
    ("adam", FRESH, {}, TypeError, r"audit: `tx` must be an optax.GradientTransformation"),
    (optax.adam(LR), {}, {}, ValueError, r"audit: `params` has no leaves"),
    (optax.adam(LR), [], {}, ValueError, r"audit: `params` has no leaves"),
    (optax.adam(LR), None, {}, TypeError, r"audit: `params` is None"),
    (optax.adam(LR), {"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}, {}, ValueError,
     r"audit: the leaf 'step' of `params` has dtype int32"),
    (optax.adam(LR), {"w": jnp.ones(2), "n": 3}, {}, ValueError,
     r"audit: the leaf 'n' of `params` has dtype int64"),
    (optax.inject_hyperparams(optax.adamw)(LR, mask=od.bias_mask), FRESH, {}, TypeError,
     r"static_args=\('mask',\)"),
    (optax.adam(LR), {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}, {}, TypeError,
     r"audit: the leaf 'w' of `params` is .*not an array of values"),
    (optax.adam(LR), FRESH, {"key": "seed"}, TypeError, r"audit: `key` must be a jax.random key"),
    (optax.adam(LR), FRESH, {"steps": 4}, ValueError, r"audit: `steps` must be at least 8"),
    (optax.adam(LR), FRESH, {"delta": 0.0}, ValueError, r"audit: `delta` must be > 0"),
    (optax.adam(LR), FRESH, {"training_steps": 0}, ValueError, r"audit: `training_steps`"),
    (optax.adam(LR), FRESH, {"schedule": LR}, TypeError, r"audit: `schedule` must be a function"),
    (optax.adam(LR), FRESH, {"schedule": optax.constant_schedule(LR)}, ValueError,
     r"audit: the learning rate of `schedule` changes by less.*or drop `schedule=`"),
]  # fmt: skip


@pytest.mark.parametrize(("tx", "params", "kwargs", "error", "match"), BAD_INPUT)
def test_unusable_input_names_audit_and_the_argument(tx, params, kwargs, error, match):
  with pytest.raises(error, match=match):
    audit(tx, params, **kwargs)


@pytest.mark.parametrize(
  "tx",
  [
    optax.contrib.reduce_on_plateau(),  # needs `value=`
    optax.GradientTransformation(lambda p: optax.EmptyState(), _raises_on_update),
  ],
  ids=["needs-value", "raises"],
)
def test_an_exception_inside_tx_update_says_the_audit_called_it_and_how(tx):
  with pytest.raises(Exception) as err:
    audit(tx, {"w": jnp.ones(2)})
  assert any("which diagnostics.audit calls with noise gradients" in n for n in err.value.__notes__)


def test_an_int_key_is_a_seed():
  a = audit(KNOWN["cautious"].make(), FRESH, key=3)
  b = audit(KNOWN["cautious"].make(), FRESH, key=jax.random.key(3))
  assert a.rows == b.rows


# --- the audit and effective_l2_strength -------------------------------------------------------


@pytest.mark.parametrize(
  ("inner", "optimizer"),
  [(optax.adam(LR), "adam"), (optax.radam(LR), "radam")],
)
def test_effective_l2_strength_agrees_with_the_audit(inner, optimizer):
  """The state-reading diagnostic and the black-box audit on the same gradients: lr * median
  kappa is the audit's rate (the L2 term is small next to the noise, so v-hat is the noise's).
  Under RAdam that needs the rectification r_t (~0.24 at step 128): without it 4x too high."""
  from optaxdecay.diagnostics._probe import noise

  l2 = 1e-4
  params = {"w": jnp.linspace(0.5, 1.5, 256)}
  tx = optax.chain(od.add_l2_to_grad(l2), inner)
  rate = audit(tx, params).rows[0].rate
  z, c = noise(params, 128, jax.random.key(0))

  def call(state, c_t):
    return tx.update(jax.tree.map(lambda x: c_t * x, z), state, params)[1], None

  state, _ = jax.jit(lambda s: jax.lax.scan(call, s, c[:96]))(tx.init(params))  # mid-window
  kappa = od.diagnostics.effective_l2_strength(state, l2, optimizer=optimizer).rows[0].median
  # 10 %: the audit's rate is the mean over calls 64..127 and also sees the L2 term's share
  # of v-hat, which kappa's first-order formula leaves out; the rectification is a factor 4.
  np.testing.assert_allclose(LR * kappa, rate, rtol=0.1)
  if optimizer == "radam":
    unrectified = od.diagnostics.effective_l2_strength(state, l2).rows[0].median
    assert LR * unrectified > 3 * rate


@pytest.mark.parametrize("name", ["adamax", "yogi", "lamb", "sgd"])
def test_effective_l2_strength_refuses_states_it_cannot_read(name):
  params = {"w": jnp.ones(3)}
  tx = optax.chain(od.add_l2_to_grad(1e-4), optax.adam(LR))
  state = tx.init(params)
  _, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  with pytest.raises(ValueError, match=f"`optimizer`='{name}' cannot be interpreted"):
    od.diagnostics.effective_l2_strength(state, 1e-4, optimizer=name)
