"""SPMD: FSDP-sharded params and data-parallel batches on 8 simulated CPU devices.

JAX reads ``--xla_force_host_platform_device_count`` when it starts, and this
pytest process has already started it with one device, so the sharded checks
run once, in a subprocess (``tests/sharded_worker.py``), and each test below
asserts on one of the results it reports. See that file for what each check
does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import pytest
from _subprocess import run_python

import optaxdecay as od

WORKER = Path(__file__).with_name("sharded_worker.py")

TRANSFORM_CHECKS = [
  "transform:add_l2_to_grad",
  "transform:add_l2_to_grad(schedule)",
  "transform:decoupled_weight_decay",
  "transform:decoupled_weight_decay(schedule)",
  "transform:decoupled_weight_decay(cautious)",
  "transform:proximal_weight_decay(schedule)",
  "transform:decoupled_weight_decay(anchor)",
  "transform:add_l2_to_grad(anchor, schedule)",
  "transform:chain(add_l2_to_grad, adam)",
  "transform:chain(adam, decoupled_weight_decay)",
  "transform:chain(sgd(momentum), decoupled_weight_decay)",
]
TRAINING_CHECKS = [
  "training:chain(adam, decoupled_weight_decay(schedule))",
  "training:chain(add_l2_to_grad, sgd(momentum))",
]
CHECKPOINT_CHECKS = ["checkpoint:orbax(sharded)", "checkpoint:msgpack(sharded)"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()
  env["JAX_PLATFORMS"] = "cpu"
  root = str(Path(__file__).resolve().parent.parent)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
  proc = subprocess.run(
    [sys.executable, str(WORKER), "--checkpoint-dir", str(tmp_path_factory.mktemp("ckpt"))],
    capture_output=True,
    text=True,
    env=env,
    timeout=600,
    check=False,
  )
  lines = proc.stdout.strip().splitlines()
  if proc.returncode != 0 or not lines:
    out, err = proc.stdout[-3000:], proc.stderr[-3000:]
    pytest.fail(f"sharded worker failed (exit {proc.returncode}):\n{out}\n{err}")
  return json.loads(lines[-1])["checks"]


def _assert_ok(results: dict, name: str) -> str:
  assert name in results, f"the worker did not report {name!r} (got {sorted(results)})"
  r = results[name]
  assert r["ok"], f"{name}: {r['detail']}"
  return r["detail"]


@pytest.mark.slow  # an 8-device worker subprocess
def test_worker_sees_8_devices(results):
  assert _assert_ok(results, "devices").startswith("8 x cpu")


@pytest.mark.slow  # an 8-device worker subprocess
@pytest.mark.parametrize("name", TRANSFORM_CHECKS)
def test_transform_keeps_shardings_has_no_collectives_and_matches_one_device(results, name):
  """Every output keeps its input's sharding, the compiled update has no
  all-reduce/all-gather/reduce-scatter/collective-permute/all-to-all, and the
  values are bit-identical to the single-device run."""
  _assert_ok(results, name)


@pytest.mark.slow  # an 8-device worker subprocess
@pytest.mark.parametrize("name", TRAINING_CHECKS)
def test_fsdp_data_parallel_training_matches_one_device(results, name):
  _assert_ok(results, name)


@pytest.mark.slow  # an 8-device worker subprocess
@pytest.mark.parametrize("name", CHECKPOINT_CHECKS)
def test_sharded_checkpoint_resume_is_bit_identical(results, name):
  detail = _assert_ok(results, name)
  if detail.startswith("SKIP"):
    pytest.skip(detail)


@pytest.mark.slow  # an 8-device worker subprocess
def test_fused_adamw_on_sharded_params_is_correct(results):
  """Correct, but it gathers sharded leaves: the docs say to use the chain there."""
  assert "bit-identical" in _assert_ok(results, "fused_adamw(sharded)")


@pytest.mark.slow  # an 8-device worker subprocess
def test_fused_adamw_sharded_step_has_no_collectives_and_matches_one_device(results):
  """The remedy for the test above: shard_map the fused step, one shard per device."""
  assert "no collectives" in _assert_ok(results, "fused_adamw(sharded_step)")


@pytest.mark.parametrize(
  "tx",
  [
    optax.chain(optax.adam(1e-3), od.decoupled_weight_decay(1e-3, mask=od.bias_mask)),
    optax.chain(
      od.add_l2_to_grad(optax.linear_schedule(1e-3, 0.0, 10), mask={"w": True, "bias": False}),
      optax.sgd(1e-2, momentum=0.9),
    ),
  ],
  ids=["decay-callable-mask", "l2-schedule-static-mask"],
)
def test_state_specs_via_optax_map_params(tx):
  """``optax.tree.map_params`` (used to give the optimizer state its params'
  shardings) calls ``init`` with a placeholder, not params: it must work."""
  params = {"w": jnp.ones((4, 2)), "bias": jnp.ones(2)}
  state = tx.init(params)
  specs = optax.tree.map_params(
    tx, lambda _, spec: spec, state, {"w": "W", "bias": "B"}, transform_non_params=lambda _: "R"
  )
  leaves = jax.tree.leaves(specs)
  assert set(leaves) == {"W", "B", "R"}
  assert len(leaves) == len(jax.tree.leaves(state))


def test_mask_is_still_checked_at_update_after_placeholder_init():
  tx = od.decoupled_weight_decay(1e-3, mask={"v": True})
  params = {"w": jnp.ones(2)}
  state = tx.init(object())  # a stand-in like map_params' placeholder: not checked
  with pytest.raises(ValueError, match="decoupled_weight_decay: `mask` does not match"):
    tx.update(params, state, params)


@pytest.mark.slow  # launches the example in a subprocess
def test_sharded_training_example_smoke():
  example = Path(__file__).resolve().parent.parent / "examples" / "sharded_training.py"
  proc = run_python([example, "--smoke"])
  assert "smoke: OK" in proc.stdout
  assert "8 devices" in proc.stdout
