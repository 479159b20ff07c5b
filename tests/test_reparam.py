"""``l2_to_decay_rate`` and ``decay_rate_to_l2``: scalars, schedules, inverses, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od


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
