"""optaxdecay.diagnostics: describe_mask, effective_l2_strength, decay_precision_report."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import diagnostics, testing
from optaxdecay.diagnostics._precision import lost_steps

RNG = np.random.default_rng(0)


def mlp_params(dtype=jnp.float32):
  return {
    "Dense_0": {"kernel": jnp.ones((3, 4), dtype), "bias": jnp.zeros(4, dtype)},
    "Dense_1": {"kernel": jnp.ones((4, 2), dtype), "bias": jnp.zeros(2, dtype)},
  }


# --- describe_mask ----------------------------------------------------------------------------


def test_describe_mask_rows_and_totals():
  desc = diagnostics.describe_mask(mlp_params(), mask=od.bias_mask)
  assert [(r.path, r.shape, r.dtype, r.count, r.decayed) for r in desc.rows] == [
    ("Dense_0/bias", (4,), "float32", 4, False),
    ("Dense_0/kernel", (3, 4), "float32", 12, True),
    ("Dense_1/bias", (2,), "float32", 2, False),
    ("Dense_1/kernel", (4, 2), "float32", 8, True),
  ]
  assert (desc.total, desc.decayed, desc.decayed_leaves) == (26, 20, 2)
  text = str(desc)
  assert "Dense_0/kernel  (3, 4)  float32     12  yes" in text
  assert text.splitlines()[-1] == (
    "decayed: 20 of 26 parameters (76.9%), 2 of 4 leaves; not decayed: 6"
  )


def test_describe_mask_shows_multipliers():
  mults = od.decay_multipliers([("Dense_0/kernel", 0.5), (".*/kernel", 1.0)])
  desc = diagnostics.describe_mask(mlp_params(), mask=mults)
  assert [(r.path, r.decayed, r.multiplier) for r in desc.rows] == [
    ("Dense_0/bias", False, 0.0),
    ("Dense_0/kernel", True, 0.5),
    ("Dense_1/bias", False, 0.0),
    ("Dense_1/kernel", True, 1.0),
  ]
  text = str(desc)
  assert "Dense_0/kernel  (3, 4)  float32     12  x0.5" in text
  assert "Dense_1/kernel  (4, 2)  float32      8  yes" in text
  assert (desc.decayed, desc.decayed_leaves) == (20, 2)


def test_describe_mask_none_decays_everything():
  desc = diagnostics.describe_mask(mlp_params())
  assert all(r.decayed for r in desc.rows)
  assert desc.decayed == desc.total == 26


def test_describe_mask_prefix_mask():
  desc = diagnostics.describe_mask(mlp_params(), mask={"Dense_0": True, "Dense_1": False})
  assert {r.path: r.decayed for r in desc.rows} == {
    "Dense_0/bias": True,
    "Dense_0/kernel": True,
    "Dense_1/bias": False,
    "Dense_1/kernel": False,
  }


def test_describe_mask_agrees_with_the_transform():
  # What the table says is decayed is exactly what decoupled_weight_decay changes.
  params = mlp_params()
  mask = od.decay_mask(exclude=("bias",), exclude_regex=("Dense_1",))
  tx = od.decoupled_weight_decay(0.1, mask=mask)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  changed = {
    od._tree.path_str(n): bool(jnp.any(u != 0)) for n, u in od._tree.flatten_with_names(updates)[0]
  }
  desc = diagnostics.describe_mask(params, mask=mask)
  assert {r.path: r.decayed for r in desc.rows} == changed


def test_describe_mask_flax_linen():
  nn = pytest.importorskip("flax.linen", reason="describe_mask on Linen params needs flax")

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Dense(8)(x)
      x = nn.LayerNorm()(x)
      return nn.Dense(3)(x)

  x = jnp.ones((2, 4))
  params = Net().init(jax.random.key(0), x)["params"]
  desc = diagnostics.describe_mask(params, mask=od.decay_mask(exclude=("bias", "scale")))
  assert {r.path for r in desc.rows if r.decayed} == {"Dense_0/kernel", "Dense_1/kernel"}
  assert desc.decayed == 4 * 8 + 8 * 3
  assert desc.total == sum(x.size for x in jax.tree.leaves(params))
  # Abstract params (jax.eval_shape) give the same table without allocating the model.
  abstract = jax.eval_shape(Net().init, jax.random.key(0), x)["params"]
  assert diagnostics.describe_mask(abstract, mask=od.bias_mask).rows == (
    diagnostics.describe_mask(params, mask=od.bias_mask).rows
  )


def test_describe_mask_flax_nnx_wrapped_and_plain(nnx_model):
  nnx, model = nnx_model
  state = nnx.state(model, nnx.Param)
  wrapped = diagnostics.describe_mask(state, mask=od.bias_mask)
  plain = diagnostics.describe_mask(nnx.to_pure_dict(state), mask=od.bias_mask)
  assert wrapped.rows == plain.rows
  assert {r.path for r in wrapped.rows if r.decayed} == {
    "dense/kernel",
    "head/kernel",
    "norm/scale",
  }
  assert wrapped.decayed == 32 + 16 + 8


def test_describe_mask_on_an_nnx_module_notes_what_nnx_optimizer_will_meet(nnx_model):
  """A class rule works on the module (the table) but raises on its state, which is what
  ``nnx.Optimizer`` calls a mask function with: the description says so; a name rule does not
  need the note."""
  nnx, model = nnx_model
  by_class = od.decay_mask(exclude_modules=("LayerNorm",))
  report = diagnostics.describe_mask(model, mask=by_class)
  assert {r.path for r in report.rows if r.decayed} == {"dense/kernel", "head/kernel"}
  (note,) = report.notes
  assert "nnx.Optimizer" in note and "mask=<the mask function>(model)" in note
  assert "note: on the module's nnx.Param state" in str(report)
  with pytest.raises(ValueError, match="exclude_modules` needs params that carry"):
    optax.adamw(1e-3, mask=by_class).init(nnx.state(model, nnx.Param))
  assert diagnostics.describe_mask(model, mask=od.bias_mask).notes == ()


def test_describe_mask_on_an_unfiltered_equinox_module_says_to_filter_it():
  eqx = pytest.importorskip("equinox", reason="equinox is in the [test] extra")
  mlp = eqx.nn.MLP(2, 2, 3, 1, key=jax.random.key(1))  # its activations are leaves too
  with pytest.raises(TypeError, match=r"'activation'.*eqx.filter\(model, eqx.is_inexact_array"):
    diagnostics.describe_mask(mlp, mask=od.bias_mask)
  with pytest.raises(TypeError, match=r"'activation'.*not an array: pass the arrays only"):
    diagnostics.describe_mask(mlp, mask={"layers": False, "activation": False,
                                         "final_activation": False})  # fmt: skip


def test_describe_mask_rejects_mismatched_mask():
  with pytest.raises(ValueError, match="describe_mask: `mask` does not match the params"):
    diagnostics.describe_mask(mlp_params(), mask={"Dense_0": True})


def test_describe_mask_rejects_integer_leaf_selected():
  params = {"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}
  with pytest.raises(TypeError, match="describe_mask: `mask` selects the leaf 'step'"):
    diagnostics.describe_mask(params)


# --- effective_l2_strength --------------------------------------------------------------------

T, LR, L2 = 300, 1e-3, 1e-4
SCALES = {"big": 1.0, "small": 0.01}


def noise_grad_fn():
  # Gradient noise independent of the weights, with very different scales per leaf.
  key = jax.random.key(0)
  noise = {k: jax.random.normal(jax.random.fold_in(key, i), (T, 64)) for i, k in enumerate(SCALES)}
  return lambda p, t: {k: SCALES[k] * noise[k][t] for k in SCALES}


def run_state(tx, params, grad_fn, steps):
  @jax.jit
  def run(p):
    def body(carry, t):
      p, s = carry
      u, s = tx.update(grad_fn(p, t), s, p)
      return (optax.apply_updates(p, u), s), None

    (_, s), _ = jax.lax.scan(body, (p, tx.init(p)), jnp.arange(steps))
    return s

  return run(params)


def test_effective_l2_strength_matches_float64_formula():
  params = {"w": jnp.asarray(RNG.normal(size=(5, 3)), jnp.float32), "bias": jnp.ones(3)}
  grad_fn = lambda p, t: jax.tree.map(lambda w: jnp.sin(w * (t + 1.0)), p)
  b2, eps, eps_root = 0.99, 1e-6, 1e-12
  tx = optax.chain(od.add_l2_to_grad(L2), optax.adam(LR, b2=b2, eps=eps, eps_root=eps_root))
  state = run_state(tx, params, grad_fn, 7)
  report = diagnostics.effective_l2_strength(state, L2, b2=b2, eps=eps, eps_root=eps_root)
  nu = state[1][0].nu
  assert report.count == 7
  for row in report.rows:
    v_hat = np.asarray(nu[row.path], np.float64) / (1 - b2**7)
    kappa = L2 / (np.sqrt(v_hat + eps_root) + eps)
    np.testing.assert_allclose(report.strength[row.path], kappa, rtol=1e-12)
    assert row.mean == pytest.approx(kappa.mean(), rel=1e-12)
    assert row.median == pytest.approx(np.median(kappa), rel=1e-12)
    assert row.min == pytest.approx(kappa.min(), rel=1e-12)
    assert row.max == pytest.approx(kappa.max(), rel=1e-12)
    assert row.grad_rms == pytest.approx(math.sqrt(v_hat.mean()), rel=1e-12)
    assert row.relative == pytest.approx(np.median(kappa) / L2, rel=1e-12)


def test_effective_l2_strength_predicts_the_shrink_and_large_gradients_get_less():
  # The article's claim, measured: run Adam with and without the L2 term on the same gradient
  # noise; the L2 term's extra displacement per step is lr * kappa * w, with kappa from the
  # report, and the large-gradient leaf is regularized ~100x less.
  grad_fn = noise_grad_fn()
  params = {k: jnp.ones(64) for k in SCALES}
  tx_l2 = optax.chain(od.add_l2_to_grad(L2), optax.adam(LR))
  with_l2 = testing.trajectory(tx_l2, params, grad_fn, T)
  without = testing.trajectory(optax.adam(LR), params, grad_fn, T)
  report = diagnostics.effective_l2_strength(run_state(tx_l2, params, grad_fn, T), L2)
  rows = {r.path: r for r in report.rows}
  for k in SCALES:
    measured = -float(jnp.mean(with_l2[k][-1] - without[k][-1])) / (LR * T)  # weights ~ 1
    assert measured == pytest.approx(rows[k].mean, rel=0.1)
  assert rows["small"].mean / rows["big"].mean == pytest.approx(100.0, rel=0.15)
  assert rows["big"].relative < 1.1 < 90 < rows["small"].relative


def test_effective_l2_strength_finds_adam_inside_wrappers():
  params = {"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
  grads = jax.tree.map(lambda x: 0.5 * x, params)
  inner = optax.chain(optax.clip(10.0), optax.adamw(LR))
  wrapped = [
    optax.MultiSteps(inner, every_k_schedule=1),
    optax.inject_hyperparams(optax.adam)(learning_rate=LR),
    optax.masked(optax.adam(LR), {"Dense_0": {"kernel": True, "bias": False}}),
  ]
  for tx in wrapped:
    state = tx.init(params)
    _, state = tx.update(grads, state, params)
    report = diagnostics.effective_l2_strength(state, L2)
    assert report.count == 1
    # One step from zero state: v_hat = g^2 = 0.25, kappa = L2 / (0.5 + 1e-8).
    for row in report.rows:  # (float32 moments: 1 - b2 rounds at ~1e-5)
      assert row.mean == pytest.approx(L2 / 0.5, rel=1e-4)
  # masked Adam keeps no moments for the bias: only the kernel is reported.
  assert [r.path for r in report.rows] == ["Dense_0/kernel"]


def test_effective_l2_strength_nnx_optimizer():
  nnx = pytest.importorskip("flax.nnx", reason="nnx.Optimizer state needs flax")
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  tx = optax.chain(od.add_l2_to_grad(L2, mask=od.bias_mask), optax.adam(LR))
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  x = jnp.ones((4, 3))
  grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
  opt.update(model, grads)
  report = diagnostics.effective_l2_strength(opt.opt_state, L2, mask=od.bias_mask)
  assert [r.path for r in report.rows] == ["kernel"]
  assert report.count == 1


def test_effective_l2_strength_weight_decay_and_str():
  params = {"w": jnp.ones(4)}
  tx = optax.adam(LR)
  _, state = tx.update({"w": jnp.full(4, 2.0)}, tx.init(params), params)
  report = diagnostics.effective_l2_strength(state, 1e-3, weight_decay=1e-2)
  (row,) = report.rows
  assert row.relative == pytest.approx((1e-3 / (2.0 + 1e-8)) / 1e-2, rel=1e-4)
  text = str(report)
  assert "median / wd" in text and "decoupled decay applies 0.01 to every element" in text


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    (dict(l2=-1.0), ValueError, "`l2` must be >= 0, got -1.0"),
    (dict(l2=math.nan), ValueError, "`l2` must be finite and >= 0"),
    (dict(l2=lambda t: 1e-4), TypeError, "`l2` must be a float, got a callable"),
    (dict(l2="1e-4"), TypeError, "`l2` must be a float"),
    (dict(l2=0.0), ValueError, "`l2` is 0, so pass a positive `weight_decay`"),
    (dict(l2=1e-4, weight_decay=0.0), ValueError, "`weight_decay` must be > 0, got 0.0"),
    (dict(l2=1e-4, b2=1.0), ValueError, "`b2` must be < 1"),
    (dict(l2=1e-4, eps=-1e-8), ValueError, "`eps` must be >= 0, got -1e-08"),
  ],
)
def test_effective_l2_strength_argument_errors(kwargs, error, match):
  params = {"w": jnp.ones(2)}
  tx = optax.adam(LR)
  _, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
  with pytest.raises(error, match=f"effective_l2_strength: {match}"):
    diagnostics.effective_l2_strength(state, **kwargs)


def test_effective_l2_strength_needs_an_adam_state():
  tx = optax.sgd(0.1, momentum=0.9)
  with pytest.raises(
    ValueError, match=re.escape("effective_l2_strength: no `optax.ScaleByAdamState`")
  ):
    diagnostics.effective_l2_strength(tx.init({"w": jnp.ones(2)}), 1e-4)


def test_effective_l2_strength_rejects_two_adam_states():
  params = {"a": jnp.ones(2), "b": jnp.ones(2)}
  tx = optax.multi_transform({"x": optax.adam(1e-3), "y": optax.adam(1e-2)}, {"a": "x", "b": "y"})
  with pytest.raises(ValueError, match=re.escape("holds 2 `optax.ScaleByAdamState`s")):
    diagnostics.effective_l2_strength(tx.init(params), 1e-4)


def test_effective_l2_strength_needs_a_step():
  tx = optax.adam(LR)
  with pytest.raises(ValueError, match="effective_l2_strength: the Adam state has count 0"):
    diagnostics.effective_l2_strength(tx.init({"w": jnp.ones(2)}), 1e-4)


# --- decay_precision_report -------------------------------------------------------------------

SIGNIFICAND_BITS = {jnp.bfloat16: 8, jnp.float16: 11, jnp.float32: 24}


def formula_lost(w: np.ndarray, rate: float, p: int) -> np.ndarray:
  """float64 reference of ``rate*|w| < ulp_below(w)/2`` from the dtype's significand bits p.

  For normal |w| = m * ulp in [2^e, 2^(e+1)) the spacing is ulp = 2^(e-p+1); just below a
  power of two it is half that. A tie (rate*|w| == ulp_below/2) keeps w iff m is even.
  """
  a = np.abs(w.astype(np.float64))
  e = np.floor(np.log2(a))
  ulp = 2.0 ** (e - p + 1)
  gap_below = np.where(a == 2.0**e, ulp / 2, ulp)
  d = rate * a
  even = np.mod(a / ulp, 2) == 0
  return (d < gap_below / 2) | ((d == gap_below / 2) & even)


def random_weights(dtype, n=4000):
  """Normal (not subnormal) weights of both signs, magnitudes spread over 1e-3 .. 10."""
  mag = np.exp(RNG.uniform(np.log(1e-3), np.log(10.0), n))
  return jnp.asarray(mag * RNG.choice([-1.0, 1.0], n), dtype)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("rate", [1e-5, 1e-3, 2.5e-3, 3e-4, 1e-7, 4e-8])
def test_precision_report_matches_float64_formula(dtype, rate):
  w = random_weights(dtype)
  report = diagnostics.decay_precision_report({"w": w}, rate)
  ref = formula_lost(np.asarray(w), rate, SIGNIFICAND_BITS[dtype])
  (row,) = report.rows
  assert row.count == w.size
  assert row.lost == int(ref.sum())
  assert row.fraction == pytest.approx(ref.mean())


def test_precision_report_is_one_correctly_rounded_step():
  # Where an exact step and a rounded one are easy to compare: float16 (NumPy rounds
  # float64 -> float16 correctly), checked element by element.
  w = np.asarray(random_weights(jnp.float16))
  rate = 3e-4
  stepped = (w.astype(np.float64) * (1 - rate)).astype(np.float16)
  lost = lost_steps(w, rate)
  np.testing.assert_array_equal(lost, (stepped == w) & (w != 0))
  assert 0 < lost.mean() < 1  # the rate sits inside float16's threshold band


def test_precision_report_powers_of_two_and_ties():
  # |w| = 1: the gap below is 2^-8 in bfloat16, so rate 2^-9 is a tie; 1 is even: kept (lost).
  ones = {"w": jnp.array([1.0, -1.0], jnp.bfloat16)}
  assert diagnostics.decay_precision_report(ones, 2.0**-9).rows[0].lost == 2
  assert diagnostics.decay_precision_report(ones, 2.0**-9 * 1.001).rows[0].lost == 0
  # 129/128 has an odd significand: at the tie it rounds down to the even 1.0 (not lost);
  # 130/128 has an even one: at the tie it stays (lost).
  for m, lost in [(129, 0), (130, 1)]:
    w = m / 128
    rate = 1 / (2 * m)
    assert rate * w == 2.0**-8  # an exact tie in float64
    report = diagnostics.decay_precision_report({"w": jnp.array([w], jnp.bfloat16)}, rate)
    assert report.rows[0].lost == lost
    # The same tie through the hardware: float32 holds w - 2^-8 exactly, bfloat16 rounds once.
    stepped = jnp.asarray(w - 2.0**-8, jnp.float32).astype(jnp.bfloat16)
    assert bool(stepped == jnp.asarray(w, jnp.bfloat16)) == bool(lost)


@pytest.mark.parametrize(("dtype", "p"), [(jnp.bfloat16, 8), (jnp.float16, 11), (jnp.float32, 24)])
def test_precision_thresholds_in_the_docs(dtype, p):
  # Every step lost below 2^-(p+1), none at or above 2^-p (normal weights).
  w = random_weights(dtype)
  assert diagnostics.decay_precision_report({"w": w}, 2.0 ** -(p + 1) * 0.99).fraction == 1.0
  assert diagnostics.decay_precision_report({"w": w}, 2.0**-p).fraction == 0.0


def test_precision_report_ignores_zeros_mask_and_str():
  params = {"w": jnp.array([0.0, 0.5, 1.0], jnp.bfloat16), "bias": jnp.ones(2, jnp.bfloat16)}
  report = diagnostics.decay_precision_report(params, 1e-5, mask=od.bias_mask)
  assert [(r.path, r.count, r.lost) for r in report.rows] == [("w", 3, 2)]
  assert report.fraction == pytest.approx(2 / 3)
  assert str(report).splitlines()[-1] == (
    "rate 1e-05: 2 of 3 decay steps (66.7%) round to no change"
  )


@pytest.mark.parametrize(
  ("rate", "error", "match"),
  [
    (1.0, ValueError, "`rate` must be < 1"),
    (-1e-5, ValueError, "`rate` must be >= 0, got -1e-05"),
    (math.inf, ValueError, "`rate` must be finite and >= 0"),
    (lambda t: 1e-5, TypeError, "`rate` must be a float, got a callable"),
    (jnp.ones(2), TypeError, "`rate` must be a scalar"),
  ],
)
def test_precision_report_rate_errors(rate, error, match):
  with pytest.raises(error, match=f"decay_precision_report: {match}"):
    diagnostics.decay_precision_report({"w": jnp.ones(2)}, rate)


def test_precision_report_rejects_mismatched_mask():
  with pytest.raises(ValueError, match="decay_precision_report: `mask` does not match"):
    diagnostics.decay_precision_report({"w": jnp.ones(2)}, 1e-5, mask={"v": True})


# --- bfloat16: a typical AdamW decay is silently a no-op; float32 master weights fix it -------

ADAMW_LR, ADAMW_WD, STEPS = 1e-4, 0.1, 2000
W0 = RNG.normal(0.0, 0.05, 256) * np.exp(RNG.uniform(-2, 2, 256))
ZERO_GRAD = lambda p, t: jax.tree.map(jnp.zeros_like, p)


def test_bfloat16_adamw_decay_is_silently_a_no_op():
  params = {"w": jnp.asarray(W0, jnp.bfloat16)}
  rate = ADAMW_LR * ADAMW_WD
  assert diagnostics.decay_precision_report(params, rate).fraction == 1.0
  for tx in [
    optax.adamw(ADAMW_LR, weight_decay=ADAMW_WD),
    optax.chain(optax.adam(ADAMW_LR), od.decoupled_weight_decay(rate)),
  ]:
    traj = testing.trajectory(tx, params, ZERO_GRAD, STEPS)
    assert traj["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(traj["w"][-1]), np.asarray(params["w"]))
  # The float64 reference shrinks every weight by 2% over these steps (~5 bfloat16 ulps).
  ref = W0.astype(ml_dtypes.bfloat16).astype(np.float64) * (1 - rate) ** STEPS
  assert np.all(np.abs(ref) < np.abs(np.asarray(params["w"], np.float64)) * 0.981)


def test_float32_decay_is_applied():
  params = {"w": jnp.asarray(W0, jnp.float32)}
  rate = ADAMW_LR * ADAMW_WD
  assert diagnostics.decay_precision_report(params, rate).fraction == 0.0
  traj = testing.trajectory(optax.adamw(ADAMW_LR, weight_decay=ADAMW_WD), params, ZERO_GRAD, STEPS)
  ref = np.asarray(params["w"], np.float64) * (1 - rate) ** STEPS
  np.testing.assert_allclose(np.asarray(traj["w"][-1], np.float64), ref, rtol=1e-4)


def master_weight_trajectory(tx, w0, loss, steps):
  """The remedy in docs/diagnostics.md: float32 master weights, bfloat16 compute."""
  master = {"w": jnp.asarray(w0, jnp.float32)}

  def grad_fn(master, t):
    compute = jax.tree.map(lambda p: p.astype(jnp.bfloat16), master)
    grads = jax.grad(loss)(compute)
    return jax.tree.map(lambda g: g.astype(jnp.float32), grads)

  return testing.trajectory(tx, master, grad_fn, steps)


def test_float32_master_weights_restore_the_decay():
  tx = optax.adamw(ADAMW_LR, weight_decay=ADAMW_WD)
  traj = master_weight_trajectory(tx, W0, lambda p: 0.0 * jnp.sum(p["w"]), STEPS)
  assert diagnostics.decay_precision_report({"w": traj["w"][0]}, ADAMW_LR * ADAMW_WD).fraction == 0
  bf16_view = np.asarray(traj["w"][-1].astype(jnp.bfloat16), np.float64)
  w0_bf16 = np.asarray(jnp.asarray(W0, jnp.bfloat16), np.float64)
  ref = W0 * (1 - ADAMW_LR * ADAMW_WD) ** STEPS
  # The bfloat16 view is the float64 reference rounded to bfloat16 (within one ulp) ...
  ulp = 2.0 ** (np.floor(np.log2(np.abs(ref))) - 7)
  assert np.all(np.abs(bf16_view - ref) <= ulp)
  # ... and every weight has moved, where pure bfloat16 kept every one.
  assert np.all(bf16_view != w0_bf16)


def test_bfloat16_also_loses_small_adam_steps_and_master_weights_keep_them():
  # With real gradients, lr 1e-4 Adam steps are below half an ulp of most bfloat16 weights too:
  # few weights ever move. With float32 master weights, all of them do.
  x = jnp.asarray(RNG.normal(size=(64, 32)), jnp.float32)
  y = jnp.asarray(RNG.normal(size=(64, 4)), jnp.float32)
  w0 = RNG.normal(0.0, 0.2, (32, 4))

  def loss(p):
    w = p["w"]
    return jnp.mean((x.astype(w.dtype) @ w - y.astype(w.dtype)) ** 2)

  tx = optax.adamw(ADAMW_LR, weight_decay=ADAMW_WD)
  steps = 500
  pure = testing.trajectory(
    tx, {"w": jnp.asarray(w0, jnp.bfloat16)}, lambda p, t: jax.grad(loss)(p), steps
  )
  moved_pure = float(jnp.mean(pure["w"][-1] != jnp.asarray(w0, jnp.bfloat16)))
  master = master_weight_trajectory(tx, w0, loss, steps)
  moved_master = float(
    jnp.mean(master["w"][-1].astype(jnp.bfloat16) != jnp.asarray(w0, jnp.bfloat16))
  )
  assert moved_pure < 0.5
  assert moved_master > 0.9


def test_effective_l2_strength_refuses_a_batch_of_states_and_a_traced_one():
  params = {"w": jnp.ones(3)}
  tx = optax.chain(od.add_l2_to_grad(1e-4), optax.adam(1e-3))

  def one_step(scale):
    state = tx.init(params)
    return tx.update(jax.tree.map(lambda w: scale * w, params), state, params)[1]

  batch = jax.vmap(one_step)(jnp.arange(1.0, 3.0))
  with pytest.raises(ValueError, match=r"effective_l2_strength: `opt_state` holds a batch of "):
    diagnostics.effective_l2_strength(batch, 1e-4)
  report = diagnostics.effective_l2_strength(jax.tree.map(lambda x: x[0], batch), 1e-4)
  assert report.count == 1
  with pytest.raises(TypeError, match=r"effective_l2_strength: `opt_state` holds traced values"):
    jax.jit(lambda s: diagnostics.effective_l2_strength(s, 1e-4).l2)(one_step(1.0))


def test_describe_mask_takes_mask_by_keyword_and_warns_on_the_old_positional_call():
  params = mlp_params()
  with pytest.warns(DeprecationWarning, match=r"write describe_mask\(\.\.\., mask=\.\.\.\)"):
    old = diagnostics.describe_mask(params, od.bias_mask)
  assert old == diagnostics.describe_mask(params, mask=od.bias_mask)
