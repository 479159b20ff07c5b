"""``apply_updates_stochastic``: the decay survives bf16 weights, unbiased; float32 unchanged."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od
from optaxdecay import diagnostics

RATE = 1e-4 * 0.1  # a typical AdamW decay: lr 1e-4 x weight_decay 0.1


def test_float32_and_float64_params_are_exactly_optax_apply_updates():
  params = {"w": jnp.linspace(-1.0, 1.0, 1000), "v": jnp.ones((3, 3))}
  updates = jax.tree.map(lambda x: 1e-9 * jnp.cos(x * 7) - 1e-3 * x, params)
  got = jax.jit(od.apply_updates_stochastic)(params, updates, jax.random.key(0))
  chex.assert_trees_all_equal(got, jax.jit(optax.apply_updates)(params, updates))
  with jax.enable_x64(True):
    p64 = {"w": jnp.linspace(-1.0, 1.0, 10, dtype=jnp.float64)}
    u64 = {"w": jnp.full(10, 1e-12, jnp.float64)}
    chex.assert_trees_all_equal(
      od.apply_updates_stochastic(p64, u64, jax.random.key(1)), optax.apply_updates(p64, u64)
    )


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_rounding_is_unbiased(dtype):
  """Many draws of one value between two neighbours: the mean is the value."""
  n = 400_000
  lo = jnp.asarray(1.0, dtype)
  hi = jnp.nextafter(lo, jnp.asarray(2.0, dtype))
  gap = float(hi.astype(jnp.float32)) - 1.0
  for frac in (0.003, 0.3, 0.5, 0.9):
    x = 1.0 + frac * gap
    w = jnp.full(n, lo)
    out = od.apply_updates_stochastic({"w": w}, {"w": jnp.full(n, frac * gap)}, jax.random.key(7))
    vals = np.asarray(out["w"].astype(jnp.float32), np.float64)
    assert set(np.unique(vals)) <= {1.0, 1.0 + gap}  # only the two neighbours
    sd = gap * np.sqrt(frac * (1 - frac) / n)
    assert abs(vals.mean() - x) < 5 * sd, (frac, vals.mean() - x, sd)


def test_exact_values_are_never_moved():
  w = {"w": jnp.asarray(np.random.default_rng(0).normal(size=10_000), jnp.bfloat16)}
  out = od.apply_updates_stochastic(w, jax.tree.map(jnp.zeros_like, w), jax.random.key(3))
  chex.assert_trees_all_equal(out, w)


def test_bf16_decay_is_lost_with_nearest_rounding_and_kept_with_stochastic():
  """The report says a typical decay is lost on every bf16 element; stochastic rounding keeps it.

  100 decay-only steps on 100,000 bf16 weights: the mean shrink w_T/w_0 matches float32 master
  weights, (1 - rate)^T, to within 5 % of the shrink; nearest rounding does not move them.
  """
  rng = np.random.default_rng(0)
  w0 = jnp.asarray(rng.normal(size=100_000), jnp.bfloat16)
  report = diagnostics.decay_precision_report({"w": w0}, rate=RATE)
  assert report.rows[0].fraction == 1.0  # nearest rounding loses the decay everywhere
  tx = od.decoupled_weight_decay(RATE)
  steps = 100

  def run(apply, key):
    def body(carry, k):
      w, s = carry
      u, s = tx.update({"w": jnp.zeros(w.shape, jnp.float32)}, s, {"w": w.astype(jnp.float32)})
      return (apply({"w": w}, u, k)["w"], s), None

    (w, _), _ = jax.lax.scan(body, (w0, tx.init({"w": w0})), jax.random.split(key, steps))
    return w

  nearest = jax.jit(lambda k: run(lambda p, u, _: optax.apply_updates(p, u), k))(jax.random.key(0))
  chex.assert_trees_all_equal(nearest, w0)
  stochastic = jax.jit(lambda k: run(od.apply_updates_stochastic, k))(jax.random.key(0))
  a, b = np.asarray(w0, np.float64), np.asarray(stochastic, np.float64)
  shrink = 1 - (a @ b) / (a @ a)
  want = 1 - (1 - RATE) ** steps
  assert abs(shrink - want) < 0.05 * want, (shrink, want)


def test_none_updates_and_keys():
  params = {"a": jnp.ones(4, jnp.bfloat16), "b": jnp.ones(4, jnp.bfloat16)}
  updates = {"a": jnp.full(4, 0.5), "b": None}
  out = od.apply_updates_stochastic(params, updates, jax.random.key(0))
  np.testing.assert_array_equal(out["b"], params["b"])
  np.testing.assert_array_equal(out["a"].astype(jnp.float32), 1.5)
  # Reproducible for a key, different across keys; a raw uint32[2] key works too.
  big = {"w": jnp.ones(1000, jnp.bfloat16)}
  u = {"w": jnp.full(1000, 1e-3)}
  k = jax.random.key(5)
  chex.assert_trees_all_equal(
    od.apply_updates_stochastic(big, u, k), od.apply_updates_stochastic(big, u, k)
  )
  assert not np.array_equal(
    od.apply_updates_stochastic(big, u, k)["w"],
    od.apply_updates_stochastic(big, u, jax.random.key(6))["w"],
  )
  od.apply_updates_stochastic(big, u, jax.random.PRNGKey(0))


@pytest.mark.parametrize(
  ("params", "updates", "key", "error", "match"),
  [
    ({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, 0, TypeError, "`key` must be a PRNG key"),
    (
      {"w": jnp.ones(2)},
      {"w": jnp.ones(2)},
      jax.random.split(jax.random.key(0), 2),
      TypeError,
      "`key` must be a single PRNG key",
    ),
    (
      {"w": jnp.ones(2, jnp.int32)},
      {"w": jnp.ones(2)},
      None,
      TypeError,
      "`params` at 'w' has dtype int32",
    ),
    (
      {"w": jnp.ones(2)},
      {"v": jnp.ones(2)},
      None,
      ValueError,
      "`updates` and `params` have different",
    ),
    ({"w": jnp.ones(2)}, {"w": jnp.ones(3)}, None, ValueError, r"`updates` at 'w' has shape"),
  ],
)
def test_bad_input(params, updates, key, error, match):
  key = jax.random.key(0) if key is None else key
  with pytest.raises(error, match=f"apply_updates_stochastic: {match}"):
    od.apply_updates_stochastic(params, updates, key)
