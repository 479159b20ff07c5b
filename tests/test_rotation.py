"""``track_rotation``, ``rotation_report`` and ``equilibrium`` against a simulation of the theory.

The oracle is the random-walk model the formulas come from, simulated: each neuron's loss is
``<ξ_t, w/‖w‖>`` with fresh Gaussian ``ξ_t`` every step (scale-invariant, its gradient
orthogonal to ``w`` and shrinking as ``1/‖w‖``), trained in float64 until well past the
predicted time to equilibrium; the tracker's measured angle per step must be the formula's.
The tracker's other contract — updates passed through bit for bit, one state row per leaf of
every zoo tree, real steps only under ``MultiSteps`` — is checked beside it (and in
``tests/test_conformance.py``, where it runs behind the decay in every Optax wrapper).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import zoo

import optaxdecay as od
from optaxdecay.diagnostics import equilibrium, rotation_report, track_rotation

C, N = 64, 16  # coordinates per neuron, neurons per leaf


def _simulate(tx, scales: dict[str, float], steps: int, *, ema: float = 0.995, key: int = 0):
  """Trains one leaf of ``N`` neurons per entry of ``scales`` (gradient scale) on the random
  scale-invariant loss; returns the tracker's report and the final params."""
  keys = jax.random.split(jax.random.key(key), len(scales) + 1)

  def unit(k):  # neurons of norm 1, as an initialization of variance 1/fan_in gives them
    w = jax.random.normal(k, (C, N), jnp.float64)
    return w / jnp.linalg.norm(w, axis=0)

  params = {name: unit(k) for name, k in zip(scales, keys, strict=False)}
  tx = optax.chain(tx, track_rotation(ema=ema))

  def grad(w, xi):
    norm = jnp.linalg.norm(w, axis=0)
    return (xi - (jnp.sum(xi * w, 0) / norm**2) * w) / norm  # d<xi, w/|w|>/dw

  def step(carry, key):
    p, state = carry
    ks = jax.random.split(key, len(scales))
    g = {
      n: grad(p[n], s * jax.random.normal(k, (C, N), jnp.float64))
      for (n, s), k in zip(scales.items(), ks, strict=True)
    }
    u, state = tx.update(g, state, p)
    return (optax.apply_updates(p, u), state), None

  run = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks)[0])
  p, state = run((params, tx.init(params)), jax.random.split(keys[-1], steps))
  return state, p


CASES = {
  # name: (optimizer, its equilibrium); per-step decay r = 2e-3 (Lion: 1e-3, see below)
  "adamw": (
    optax.adamw(1e-2, weight_decay=0.2, eps=1e-12),
    dict(optimizer="adamw", learning_rate=1e-2, weight_decay=0.2),
  ),
  "adamw b1=0": (
    optax.adamw(1e-2, b1=0.0, weight_decay=0.2, eps=1e-12),
    dict(optimizer="adamw", learning_rate=1e-2, weight_decay=0.2, b1=0.0),
  ),
  "adam + decoupled rate": (
    optax.chain(optax.adam(1e-2, eps=1e-12), od.decoupled_weight_decay(2e-3)),
    dict(optimizer="adamw", learning_rate=1e-2, rate=2e-3),
  ),
  "sgd momentum + L2": (
    optax.chain(od.add_l2_to_grad(2e-3), optax.sgd(0.1, momentum=0.9)),
    dict(optimizer="sgd", learning_rate=0.1, weight_decay=2e-3, momentum=0.9),
  ),
  "sgd momentum + decoupled rate": (
    optax.chain(optax.sgd(0.1, momentum=0.9), od.decoupled_weight_decay(2e-3)),
    dict(optimizer="sgd", learning_rate=0.1, rate=2e-3, momentum=0.9),
  ),
  # Lion's formula needs its momentum's memory, 1/(1 - b2) = 100 steps, short next to the
  # decay's 1/(2r) = 500: at r = 5e-3 (100 steps) the measured angle is 10-15 % higher.
  "lion": (
    optax.lion(1e-3, weight_decay=1.0),
    dict(optimizer="lion", learning_rate=1e-3, weight_decay=1.0),
  ),
  "lion b1=0.5": (
    optax.lion(1e-3, b1=0.5, weight_decay=1.0),
    dict(optimizer="lion", learning_rate=1e-3, weight_decay=1.0, b1=0.5),
  ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_measured_equilibrium_is_the_formula(name, x64):
  """The angle within 5 % (the tracker averages it, the formula is its root mean square); the
  norm within 8 % (the model neglects Adam's normalization's small tilt of u toward w)."""
  tx, kwargs = CASES[name]
  eq = equilibrium(**kwargs)
  state, params = _simulate(tx, {"w": 1.0}, int(eq.steps) + 1500)
  (row,) = rotation_report(state, equilibrium=eq).rows
  np.testing.assert_allclose(row.angular_update, eq.angular_update, rtol=0.05, err_msg=name)
  assert row.at_equilibrium and row.spread < 1.2, row
  if not math.isnan(eq.norm_scale):  # Adam's and Lion's norm is set by the learning rate
    norm = np.linalg.norm(np.asarray(params["w"]), axis=0).mean()
    np.testing.assert_allclose(norm, eq.norm(C), rtol=0.08, err_msg=name)


def test_before_the_predicted_time_the_leaf_is_not_at_equilibrium(x64):
  tx, kwargs = CASES["adamw"]
  eq = equilibrium(**kwargs)
  state, _ = _simulate(tx, {"w": 1.0}, int(eq.steps) // 10)
  (row,) = rotation_report(state, equilibrium=eq).rows
  assert row.at_equilibrium is False


def test_adamw_balances_neurons_of_100x_different_gradients_and_adam_l2_does_not(x64):
  """The seed's claim, per neuron: AdamW's equilibrium angle is the same for gradients of scale 1
  and 100; under Adam + L2 the large-gradient neurons are regularized less, grow, and turn
  slower: 3.3x slower after these 2,500 steps, on the way to ``100^(1/3) = 4.6`` at equilibrium
  in this model, which the large-gradient neurons, decayed weakly, reach slowly."""
  scales = {"small": 1.0, "large": 100.0}
  lr, lam = 1e-2, 0.2
  adamw, _ = _simulate(optax.adamw(lr, weight_decay=lam, eps=1e-12), scales, 2500)
  rows = {r.path: r for r in rotation_report(adamw).rows}
  np.testing.assert_allclose(rows["large"].angular_update / rows["small"].angular_update, 1, 0.05)
  l2 = optax.chain(od.add_l2_to_grad(lam), optax.adam(lr, eps=1e-12))
  adam_l2, _ = _simulate(l2, scales, 2500)
  rows = {r.path: r for r in rotation_report(adam_l2).rows}
  slower = rows["small"].angular_update / rows["large"].angular_update
  assert 2.5 < slower < 6, slower
  assert rows["large"].weight_norm > 2 * rows["small"].weight_norm  # they grew: less decay


# --- equilibrium: the formulas' arguments ------------------------------------------------------


def test_the_conventions_agree_where_they_are_the_same_decay():
  adamw = equilibrium("adamw", learning_rate=1e-3, weight_decay=0.1)
  np.testing.assert_allclose(adamw[1:], equilibrium("adamw", learning_rate=1e-3, rate=1e-4)[1:])
  l2 = equilibrium("sgd", learning_rate=0.1, weight_decay=1e-3, momentum=0.9)
  decoupled = equilibrium("sgd", learning_rate=0.1, rate=1e-3, momentum=0.9)  # ηλ/(1-μ)
  np.testing.assert_allclose(l2[1:4], decoupled[1:4])
  np.testing.assert_allclose(l2.angular_update, math.sqrt(2 * 0.1 * 1e-3 / 1.9), rtol=1e-3)


def test_lion_independent_signs_are_the_plain_random_walk():
  from optaxdecay.diagnostics._equilibrium import lion_diffusion

  assert lion_diffusion(0.0, 0.99) == 1.0
  assert 40 < lion_diffusion(0.9, 0.99) < 50


@pytest.mark.parametrize(
  ("args", "match"),
  [
    (("adam+l2",), r"`optimizer`='adam\+l2' has no single equilibrium: L2 inside Adam"),
    (("rmsprop",), r"`optimizer` must be one of \('adamw', 'sgd', 'lion'\)"),
  ],
)
def test_equilibrium_refuses_what_it_has_no_formula_for(args, match):
  with pytest.raises(ValueError, match=f"equilibrium: {match}"):
    equilibrium(*args, learning_rate=1e-3, weight_decay=0.1)


def test_adam_with_a_decoupled_rate_is_adamw_and_sgd_names_its_l2_coefficient():
  with pytest.raises(ValueError, match="is AdamW's equilibrium: pass optimizer='adamw'"):
    equilibrium("adam", learning_rate=1e-3, rate=1e-4)
  with pytest.raises(ValueError, match=r"the L2 coefficient before optax\.sgd"):
    equilibrium("sgd", learning_rate=0.1)
  # momentum defaults to optax.sgd's: none
  plain = equilibrium("sgd", learning_rate=0.1, weight_decay=1e-3)
  np.testing.assert_allclose(plain.angular_update, math.sqrt(2e-4 - 1e-8), rtol=1e-9)


BAD_EQUILIBRIUM = [
    ({"learning_rate": 1e-3}, ValueError, "give exactly one of `weight_decay`"),
    ({"learning_rate": 1e-3, "weight_decay": 0.1, "rate": 1e-4}, ValueError, "exactly one"),
    ({"learning_rate": 0.0, "weight_decay": 0.1}, ValueError, "`learning_rate` is 0 .* no "
     "equilibrium"),
    ({"learning_rate": -1.0, "weight_decay": 0.1}, ValueError, "`learning_rate` must be >= 0"),
    ({"learning_rate": 2.0, "weight_decay": 1.0}, ValueError, "per-step decay 2 .* must be < 1"),
    ({"learning_rate": 1e-3, "rate": 1.5}, ValueError, "`rate` must be < 1"),
    ({"learning_rate": 1e-3, "weight_decay": 0.1, "b1": 1.0}, ValueError, "`b1` must be < 1"),
    ({"learning_rate": optax.constant_schedule(1e-3), "weight_decay": 0.1}, TypeError,
     "a schedule is not accepted here"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_EQUILIBRIUM)
def test_equilibrium_names_the_bad_argument(kwargs, error, match):
  with pytest.raises(error, match=f"equilibrium: .*{match}"):
    equilibrium("adamw", **kwargs)


# --- the tracker's contract ------------------------------------------------------------------


def _grads(params: Any, key: int = 1) -> Any:
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(key), max(len(leaves), 1))
  noise = [
    jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
    for k, x in zip(keys, leaves, strict=False)
  ]
  return jax.tree.unflatten(treedef, noise)


def _expected_neurons(value: Any, axis: int = -1) -> int:
  shape = np.shape(value)
  return 1 if len(shape) <= 1 else shape[axis]


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_tree_gets_a_row_per_leaf(name):
  """One row per leaf of every framework's tree, with its neurons (the updates passing through
  bit for bit is checked on every zoo tree in every Optax wrapper in test_conformance.py)."""
  spec = zoo.get(name)
  params = spec.params
  paths = dict(zoo.leaf_paths(params))
  if any(jnp.iscomplexobj(x) for x in paths.values()):
    with pytest.raises(ValueError, match=r"track_rotation: the leaf .* is complex"):
      track_rotation().init(params)
    return
  tx = optax.chain(optax.adamw(1e-2, weight_decay=0.1, mask=spec.mask_arg), track_rotation())

  def two_steps(p):  # eagerly: one compile per tree would cost more than the steps
    g = _grads(p)
    _, s = tx.update(g, tx.init(p), p)
    return tx.update(g, s, p)[1]

  report = rotation_report(two_steps(params))
  assert report.steps == 2
  assert {r.path: r.neurons for r in report.rows} == {
    p: _expected_neurons(v) for p, v in paths.items()
  }
  assert all(np.isfinite(r.angular_update) and r.angular_update >= 0 for r in report.rows)


def test_the_angle_is_the_angle_between_w_and_w_plus_u():
  w = jnp.asarray([[1.0, 0.0], [0.0, 2.0]])  # neurons on the last axis: (1, 0) and (0, 2)
  u = jnp.asarray([[0.0, 2.0], [1.0, 0.0]])  # turns the first by 45°, the second by atan(2/2)
  tx = track_rotation(ema=0.0)
  _, state = tx.update({"k": u}, tx.init({"k": w}), {"k": w})
  (row,) = rotation_report(state).rows
  np.testing.assert_allclose(row.angular_update, np.mean([np.pi / 4, np.pi / 4]), rtol=1e-6)
  np.testing.assert_allclose(row.relative_update, np.mean([1.0, 1.0]), rtol=1e-6)
  np.testing.assert_allclose(row.weight_norm, 1.5, rtol=1e-6)


def test_equinox_weights_keep_their_neurons_on_the_first_axis():
  w = jnp.ones((5, 3))  # (out, in), as eqx.nn.Linear and PyTorch store it
  state = track_rotation(neuron_axis=0).init({"weight": w})
  assert rotation_report(state).rows[0].neurons == 5
  numpy_axis = track_rotation(neuron_axis=np.int64(0)).init({"weight": w})
  assert rotation_report(numpy_axis).rows[0].neurons == 5


def test_the_decay_s_mask_keeps_the_report_to_the_decayed_leaves():
  params = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}, "scale": jnp.ones(3)}
  tx = optax.chain(
    optax.adamw(1e-2, weight_decay=0.1, mask=od.bias_mask), track_rotation(mask=od.bias_mask)
  )
  updates, state = tx.update(_grads(params), tx.init(params), params)
  assert [r.path for r in rotation_report(state).rows] == ["dense/kernel", "scale"]
  untracked = optax.adamw(1e-2, weight_decay=0.1, mask=od.bias_mask)
  same, _ = untracked.update(_grads(params), untracked.init(params), params)
  for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(same), strict=True):
    np.testing.assert_array_equal(a, b)


def test_multisteps_mini_steps_are_not_steps_inside_or_outside():
  params = {"w": jnp.ones((4, 3))}
  g = {"w": jnp.full((4, 3), 0.5)}
  inside = optax.MultiSteps(optax.chain(optax.adam(1e-2), track_rotation()), every_k_schedule=4)
  outside = optax.chain(optax.MultiSteps(optax.adam(1e-2), every_k_schedule=4), track_rotation())
  for tx in (inside, outside):
    state = tx.init(params)
    for _ in range(8):
      _, state = tx.update(g, state, params)
    assert rotation_report(state).steps == 2


def test_masked_and_partitioned_trackers_report_their_own_leaves():
  params = {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}
  masked = optax.masked(
    optax.chain(optax.adam(1e-2), track_rotation()), {"kernel": True, "bias": False}
  )
  _, state = masked.update(_grads(params), masked.init(params), params)
  assert [r.path for r in rotation_report(state).rows] == ["kernel"]
  labels = {"kernel": "a", "bias": "b"}
  parts = optax.partition(
    {g: optax.chain(optax.adam(1e-2), track_rotation()) for g in "ab"}, labels
  )
  _, state = parts.update(_grads(params), parts.init(params), params)
  assert sorted(r.path for r in rotation_report(state).rows) == ["bias", "kernel"]


def test_nnx_optimizer_carries_the_tracker_and_the_report_reads_it(nnx_model):
  nnx, model = nnx_model
  tx = optax.chain(optax.adamw(1e-2, weight_decay=0.1), track_rotation())
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  def loss(m):
    return jnp.sum(m(jnp.ones((2, 4))) ** 2)

  grads = nnx.grad(loss)(model)
  optimizer.update(model, grads)
  report = rotation_report(optimizer)
  assert report.steps == 1
  assert rotation_report(nnx.state(optimizer)).rows == report.rows  # what a checkpoint holds
  assert {r.path for r in report.rows} == {
    "dense/kernel", "dense/bias", "norm/scale", "norm/bias", "head/kernel", "head/bias",
  }  # fmt: skip


def test_report_to_dict_and_table():
  tx, kwargs = CASES["adamw"]
  params = {"w": jnp.ones((4, 3))}
  full = optax.chain(tx, track_rotation())
  _, state = full.update(_grads(params), full.init(params), params)
  report = rotation_report(state, equilibrium=equilibrium(**kwargs))
  flat = report.to_dict()
  fields = ("angular_update", "spread", "weight_norm", "relative_update", "predicted")
  fields += ("ratio", "at_equilibrium")
  assert set(flat) == {"rotation/steps"} | {f"rotation/w/{f}" for f in fields}
  assert all(math.isfinite(v) for v in flat.values())
  one_neuron = rotation_report(track_rotation().init({"b": jnp.ones(3)})).to_dict()
  assert "rotation/b/spread" not in one_neuron  # nan (one neuron) is left out: strict JSON
  text = str(report)
  assert text.startswith("1 steps; adamw equilibrium after about")
  assert "predicted" in text and "at equilibrium" in text


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    ({"neuron_axis": 2}, ValueError, r"`neuron_axis`=2 is out of range for the leaf 'k' of shape"),
    ({"neuron_axis": True}, TypeError, r"`neuron_axis` must be an int"),
    ({"neuron_axis": "out"}, TypeError, r"`neuron_axis` must be an int"),
    ({"ema": 1.0}, ValueError, r"`ema` must be < 1"),
  ],
)
def test_track_rotation_names_the_bad_argument(kwargs, error, match):
  with pytest.raises(error, match=f"track_rotation: {match}"):
    track_rotation(**kwargs).init({"k": jnp.ones((3, 4))})


def test_two_trackers_on_one_leaf_are_refused():
  params = {"w": jnp.ones((4, 3))}
  tx = optax.chain(track_rotation(), optax.adam(1e-2), track_rotation())
  _, state = tx.update(_grads(params), tx.init(params), params)
  with pytest.raises(ValueError, match="more than one track_rotation follows 'w'"):
    rotation_report(state)


def test_the_report_needs_a_tracker_and_a_real_equilibrium():
  state = optax.adam(1e-3).init({"w": jnp.ones(3)})
  with pytest.raises(ValueError, match="rotation_report: `opt_state` holds no track_rotation"):
    rotation_report(state)
  tracked = track_rotation().init({"w": jnp.ones(3)})
  with pytest.raises(TypeError, match="rotation_report: `equilibrium` must be"):
    rotation_report(tracked, equilibrium=1e-3)
  with pytest.raises(ValueError, match="track_rotation: `update` needs `params`"):
    track_rotation().update({"w": jnp.ones(3)}, tracked)
