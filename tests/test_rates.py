"""Rate rules (``optaxdecay._rates``): the L2 <-> decay reparametrization and the decay-scaling
rules, each against a float64 evaluation of its published equation."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import testing


def test_scalars():
  assert od.l2_to_decay_rate(1e-3, 0.5) == pytest.approx(5e-4, rel=1e-15)
  assert od.decay_rate_to_l2(5e-4, 0.5) == pytest.approx(1e-3, rel=1e-15)


@pytest.mark.parametrize("scheduled", ["lr", "l2", "both"])
def test_schedules_multiply_per_step(scheduled):
  lr_s = optax.linear_schedule(0.1, 0.01, 10)
  l2_s = optax.exponential_decay(1e-2, 5, 0.5)
  lr = lr_s if scheduled in ("lr", "both") else 0.1
  l2 = l2_s if scheduled in ("l2", "both") else 1e-2
  rate = od.l2_to_decay_rate(l2, lr)
  assert callable(rate)
  for step in range(12):
    c = jnp.asarray(step)
    want = (lr(c) if callable(lr) else lr) * (l2(c) if callable(l2) else l2)
    np.testing.assert_allclose(rate(c), want, rtol=1e-6)


def test_round_trip_with_schedule():
  lr = optax.cosine_decay_schedule(0.3, 50, alpha=0.1)
  l2 = od.decay_rate_to_l2(od.l2_to_decay_rate(1e-3, lr), lr)
  for step in (0, 7, 49, 80):
    np.testing.assert_allclose(l2(jnp.asarray(step)), 1e-3, rtol=1e-6)


def test_schedule_values_promoted_under_x64():
  """A float32 schedule times a Python float must not round the rate to float32."""
  with jax.enable_x64(True):
    lr = lambda count: jnp.asarray(0.1, jnp.float32) * jnp.ones((), jnp.float32)
    rate = od.l2_to_decay_rate(1e-3, lr)(jnp.asarray(0))
    assert rate.dtype == jnp.float64
    assert float(rate) == float(np.float32(0.1)) * 1e-3


@pytest.mark.parametrize(
  "fn,kwargs,match",
  [
    (od.l2_to_decay_rate, {"l2": -1.0, "learning_rate": 0.1}, "l2_to_decay_rate: `l2`"),
    (
      od.l2_to_decay_rate,
      {"l2": 0.1, "learning_rate": float("nan")},
      "l2_to_decay_rate: `learning_rate`",
    ),
    (od.decay_rate_to_l2, {"rate": 1.0, "learning_rate": 0.1}, "decay_rate_to_l2: `rate`"),
    (
      od.decay_rate_to_l2,
      {"rate": 0.1, "learning_rate": 0.0},
      "decay_rate_to_l2: `learning_rate` must be > 0",
    ),
  ],
)
def test_errors(fn, kwargs, match):
  with pytest.raises(ValueError, match=match):
    fn(**kwargs)


STEPS = [0, 1, 7, 50, 99, 100]


def cosine_lr_f64(t, peak=1e-3, steps=100):
  """optax.cosine_decay_schedule(peak, steps) in float64: 0.5 * peak * (1 + cos(pi t / T))."""
  t = min(t, steps)
  return 0.5 * peak * (1 + math.cos(math.pi * t / steps))


# --- corrected_decay_rate (AdamC) -------------------------------------------------------------


@pytest.mark.parametrize(
  ("wd", "lr", "lr_max"), [(0.1, 5e-4, 1e-3), (0.05, 1e-3, 1e-3), (1.0, 0.0, 0.1)]
)
def test_corrected_decay_rate_constant_matches_float64(wd, lr, lr_max):
  assert od.corrected_decay_rate(wd, lr, max_learning_rate=lr_max) == pytest.approx(
    wd * lr**2 / lr_max, rel=1e-15
  )


def test_corrected_decay_rate_at_peak_is_adamw_rate():
  assert od.corrected_decay_rate(0.1, 1e-3, max_learning_rate=1e-3) == pytest.approx(
    1e-3 * 0.1, rel=1e-15
  )


def test_corrected_decay_rate_schedule_matches_float64():
  lr = optax.cosine_decay_schedule(1e-3, decay_steps=100)
  rate = od.corrected_decay_rate(0.1, lr, max_learning_rate=1e-3)
  assert callable(rate)
  for t in STEPS:
    ref = 0.1 * cosine_lr_f64(t) ** 2 / 1e-3
    assert float(rate(jnp.asarray(t))) == pytest.approx(ref, rel=1e-5, abs=1e-12)


def test_corrected_decay_rate_scheduled_weight_decay():
  wd = lambda t: 0.1 * (1 + t)
  rate = od.corrected_decay_rate(wd, 5e-4, max_learning_rate=1e-3)
  for t in STEPS:
    assert float(rate(jnp.asarray(t))) == pytest.approx(0.1 * (1 + t) * 5e-4**2 / 1e-3, rel=1e-6)


def test_corrected_decay_rate_in_a_chain_is_adamw_with_lr_ratio_decay():
  # AdamC's decay in optax.adamw's terms: weight_decay_t = wd * lr_t / lr_max.
  lr = optax.cosine_decay_schedule(0.05, decay_steps=20)
  wd = 0.5
  ours = optax.chain(
    optax.adam(lr),
    od.decoupled_weight_decay(od.corrected_decay_rate(wd, lr, max_learning_rate=0.05)),
  )
  theirs = optax.adamw(lr, weight_decay=lambda t: wd * lr(t) / 0.05)
  params = {"w": jnp.linspace(-1.0, 1.0, 6)}
  grad_fn = lambda p, t: {"w": jnp.sin(3.0 * p["w"]) + 0.1 * t}
  testing.assert_equivalent(ours, theirs, params, grad_fn, steps=20, rtol=1e-5, atol=1e-7)
  plain = optax.adamw(lr, weight_decay=wd)
  testing.assert_not_equivalent(ours, plain, params, grad_fn, steps=20)


MAX_LR_MSG = "`max_learning_rate` must be finite and > 0"


@pytest.mark.parametrize(
  ("wd", "lr", "lr_max", "error", "match"),
  [
    (-0.1, 1e-3, 1e-3, ValueError, "`weight_decay` must be >= 0"),
    (math.nan, 1e-3, 1e-3, ValueError, "`weight_decay` must be finite"),
    (None, 1e-3, 1e-3, TypeError, "`weight_decay` must be a float or a schedule"),
    (0.1, -1e-3, 1e-3, ValueError, "`learning_rate` must be >= 0"),
    (0.1, 1e-3, 0.0, ValueError, "`max_learning_rate` must be > 0, got 0.0"),
    (0.1, 1e-3, -1.0, ValueError, "`max_learning_rate` must be > 0, got -1.0"),
    (0.1, 1e-3, math.inf, ValueError, MAX_LR_MSG),
    (0.1, 1e-3, lambda t: 1e-3, TypeError, "`max_learning_rate` must be a positive float"),
    (0.1, 2e-3, 1e-3, ValueError, "`learning_rate` is 0.002, above `max_learning_rate`"),
    (0.1, lambda t: 2e-3, 1e-3, ValueError, "`learning_rate` at step 0 is 0.002, above"),
  ],
)
def test_corrected_decay_rate_errors(wd, lr, lr_max, error, match):
  with pytest.raises(error, match=f"corrected_decay_rate: .*{match}"):
    od.corrected_decay_rate(wd, lr, max_learning_rate=lr_max)


# --- normalized_weight_decay ------------------------------------------------------------------


@pytest.mark.parametrize(
  ("lam", "b", "n", "t"), [(0.05, 128, 50_000, 200), (0.025, 64, 1_000, 10.5), (1.0, 10, 10, 1)]
)
def test_normalized_weight_decay_matches_float64(lam, b, n, t):
  ref = np.float64(lam) * np.sqrt(np.float64(b) / (np.float64(n) * np.float64(t)))
  assert od.normalized_weight_decay(lam, batch_size=b, dataset_size=n, epochs=t) == pytest.approx(
    float(ref), rel=1e-15
  )


def test_normalized_weight_decay_scales_as_inverse_sqrt_of_budget():
  short = od.normalized_weight_decay(0.05, batch_size=128, dataset_size=50_000, epochs=50)
  long = od.normalized_weight_decay(0.05, batch_size=128, dataset_size=50_000, epochs=200)
  assert short / long == pytest.approx(2.0, rel=1e-14)


def test_normalized_weight_decay_schedule():
  lam = optax.linear_schedule(0.1, 0.0, transition_steps=10)
  out = od.normalized_weight_decay(lam, batch_size=32, dataset_size=800, epochs=4)
  for t in STEPS:
    ref = max(0.1 * (1 - t / 10), 0.0) * math.sqrt(32 / (800 * 4))
    assert float(out(jnp.asarray(t))) == pytest.approx(ref, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
  ("args", "error", "match"),
  [
    ((-0.1, 32, 800, 4), ValueError, "`lambda_norm` must be >= 0"),
    ((0.1, 0, 800, 4), ValueError, "`batch_size` must be a positive int"),
    ((0.1, 32.0, 800, 4), TypeError, "`batch_size` must be a positive int"),
    ((0.1, True, 800, 4), TypeError, "`batch_size` must be a positive int"),
    ((0.1, 32, -5, 4), ValueError, "`dataset_size` must be a positive int"),
    ((0.1, 32, 800.0, 4), TypeError, "`dataset_size` must be a positive int"),
    ((0.1, 32, 800, 0), ValueError, "`epochs` must be > 0, got 0.0"),
    ((0.1, 32, 800, math.inf), ValueError, "`epochs` must be finite and > 0"),
    ((0.1, 32, 800, "4"), TypeError, "`epochs` must be a positive float"),
    ((0.1, 1000, 800, 4), ValueError, "`batch_size`=1000 is larger than `dataset_size`=800"),
  ],
)
def test_normalized_weight_decay_errors(args, error, match):
  lam, b, n, t = args
  with pytest.raises(error, match=f"normalized_weight_decay: {match}"):
    od.normalized_weight_decay(lam, batch_size=b, dataset_size=n, epochs=t)


# --- rate_from_timescale / timescale_from_rate ------------------------------------------------


@pytest.mark.parametrize(
  ("tau", "n", "b"), [(20.0, 50_000, 100), (3.5, 1_437, 64), (1.0, 1_000, 10)]
)
def test_rate_from_timescale_matches_float64(tau, n, b):
  # Wang & Aitchison: tau_iter = 1/(lr*lam), tau_epoch = tau_iter * B / N.
  rate = od.rate_from_timescale(tau, dataset_size=n, batch_size=b)
  tau_iter = 1.0 / np.float64(rate)
  assert tau_iter * b / n == pytest.approx(tau, rel=1e-14)
  assert rate == pytest.approx(float(np.float64(b) / (np.float64(n) * np.float64(tau))), rel=1e-15)


@pytest.mark.parametrize(("rate", "n", "b"), [(1e-4, 50_000, 100), (0.003, 1_437, 64)])
def test_timescale_round_trip(rate, n, b):
  tau = od.timescale_from_rate(rate, dataset_size=n, batch_size=b)
  assert tau == pytest.approx(float(np.float64(b) / (np.float64(n) * np.float64(rate))), rel=1e-15)
  assert od.rate_from_timescale(tau, dataset_size=n, batch_size=b) == pytest.approx(rate, rel=1e-14)


def test_timescale_of_zero_rate_is_infinite():
  assert od.timescale_from_rate(0.0, dataset_size=1_000, batch_size=10) == math.inf
  sched = od.timescale_from_rate(
    lambda t: jnp.where(t < 2, 0.01, 0.0), dataset_size=1_000, batch_size=10
  )
  assert float(sched(jnp.asarray(0))) == pytest.approx(1.0, rel=1e-6)
  assert float(sched(jnp.asarray(5))) == math.inf


def test_rules_accept_traced_values_under_jit():
  # inject_hyperparams passes live hyperparameters as tracers: no check, same arithmetic.
  f = jax.jit(
    lambda r, tau, lam: (
      od.timescale_from_rate(r, dataset_size=1_000, batch_size=10),
      od.rate_from_timescale(tau, dataset_size=1_000, batch_size=10),
      od.normalized_weight_decay(lam, batch_size=10, dataset_size=1_000, epochs=4),
      od.corrected_decay_rate(lam, 5e-4, max_learning_rate=1e-3),
    )
  )
  tau, rate, norm, corrected = f(0.01, 2.0, 0.1)
  assert float(tau) == pytest.approx(1.0, rel=1e-6)
  assert float(rate) == pytest.approx(0.005, rel=1e-6)
  assert float(norm) == pytest.approx(0.1 * math.sqrt(10 / 4_000), rel=1e-6)
  assert float(corrected) == pytest.approx(0.1 * 5e-4**2 / 1e-3, rel=1e-6)
  assert float(f(0.0, 2.0, 0.1)[0]) == math.inf


def test_rate_from_timescale_schedule():
  tau = lambda t: 2.0 + t
  rate = od.rate_from_timescale(tau, dataset_size=1_000, batch_size=10)
  for t in STEPS:
    assert float(rate(jnp.asarray(t))) == pytest.approx(10 / (1_000 * (2.0 + t)), rel=1e-6)


def test_rate_from_timescale_feeds_decoupled_decay():
  # A timescale of tau epochs: after tau epochs of pure decay the weights shrink by ~1/e.
  n, b, tau = 1_000, 10, 2.0
  rate = od.rate_from_timescale(tau, dataset_size=n, batch_size=b)
  steps = int(tau * n / b)
  tx = od.decoupled_weight_decay(rate)
  traj = testing.trajectory(tx, {"w": jnp.ones(1)}, lambda p, t: {"w": jnp.zeros(1)}, steps)
  assert float(traj["w"][-1, 0]) == pytest.approx((1 - rate) ** steps, rel=1e-4)
  assert float(traj["w"][-1, 0]) == pytest.approx(math.exp(-1), rel=0.01)


@pytest.mark.parametrize(
  ("args", "error", "match"),
  [
    ((0.0, 1_000, 10), ValueError, "`tau_epochs` must be > 0"),
    ((-1.0, 1_000, 10), ValueError, "`tau_epochs` must be > 0"),
    ((math.inf, 1_000, 10), ValueError, "`tau_epochs` must be finite"),
    ((0.005, 1_000, 10), ValueError, "`tau_epochs` is 0.005, shorter than one step"),
    ((lambda t: 0.005, 1_000, 10), ValueError, "`tau_epochs` at step 0 is 0.005"),
    ((1.0, 0, 10), ValueError, "`dataset_size` must be a positive int"),
    ((1.0, 1_000, 10.0), TypeError, "`batch_size` must be a positive int"),
  ],
)
def test_rate_from_timescale_errors(args, error, match):
  tau, n, b = args
  with pytest.raises(error, match=f"rate_from_timescale: {match}"):
    od.rate_from_timescale(tau, dataset_size=n, batch_size=b)


@pytest.mark.parametrize(
  ("args", "error", "match"),
  [
    ((-1e-3, 1_000, 10), ValueError, "`rate` must be >= 0"),
    ((1.0, 1_000, 10), ValueError, "`rate` must be < 1"),
    ((math.nan, 1_000, 10), ValueError, "`rate` must be finite"),
    ((1e-3, 1_000, 0), ValueError, "`batch_size` must be a positive int"),
    ((1e-3, "1000", 10), TypeError, "`dataset_size` must be a positive int"),
  ],
)
def test_timescale_from_rate_errors(args, error, match):
  rate, n, b = args
  with pytest.raises(error, match=f"timescale_from_rate: {match}"):
    od.timescale_from_rate(rate, dataset_size=n, batch_size=b)


OLD_AND_NEW_CALLS = {
  "normalized_weight_decay": (
    lambda: od.normalized_weight_decay(0.05, 128, 50_000, 200),
    lambda: od.normalized_weight_decay(0.05, batch_size=128, dataset_size=50_000, epochs=200),
    "batch_size=128, dataset_size=50000, epochs=200",
  ),
  "rate_from_timescale": (
    lambda: od.rate_from_timescale(20.0, 50_000, 100),
    lambda: od.rate_from_timescale(20.0, dataset_size=50_000, batch_size=100),
    "dataset_size=50000, batch_size=100",
  ),
  "timescale_from_rate": (
    lambda: od.timescale_from_rate(1e-4, 50_000, 100),
    lambda: od.timescale_from_rate(1e-4, dataset_size=50_000, batch_size=100),
    "dataset_size=50000, batch_size=100",
  ),
}


@pytest.mark.parametrize("name", list(OLD_AND_NEW_CALLS))
def test_the_old_positional_sizes_still_work_with_a_deprecation_warning(name):
  """The rules took the two ints in opposite positional orders: a positional call is deprecated
  (the warning spells the keywords) and still means what it meant."""
  old, new, keywords = OLD_AND_NEW_CALLS[name]
  with pytest.warns(DeprecationWarning, match=re.escape(f"write {name}(..., {keywords})")):
    value = old()
  assert value == new()


def test_keyword_only_sizes_refuse_too_many_and_repeated_arguments():
  with pytest.raises(TypeError, match="takes 1 positional arguments but 4 were given"):
    od.rate_from_timescale(20.0, 50_000, 100, 7)
  with pytest.raises(TypeError, match="multiple values for argument 'dataset_size'"):
    od.rate_from_timescale(20.0, 50_000, dataset_size=50_000, batch_size=100)


@pytest.mark.parametrize(
  "call",
  [
    lambda: od.rate_from_timescale(1000.0, dataset_size=100, batch_size=50_000),
    lambda: od.timescale_from_rate(1e-4, dataset_size=100, batch_size=50_000),
    lambda: od.normalized_weight_decay(0.05, batch_size=50_000, dataset_size=100, epochs=1),
  ],
)
def test_a_batch_larger_than_the_data_set_is_refused_by_every_rule(call):
  with pytest.raises(ValueError, match=r"`batch_size`=50000 is larger than `dataset_size`=100"):
    call()
