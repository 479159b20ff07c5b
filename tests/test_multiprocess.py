"""Multi-controller JAX on one machine, as on a pod: 2 processes x 4 CPU devices, one mesh.

Each run is ``tests/multiprocess_worker.py`` started once per process with ``jax.distributed``
(a coordinator on a free localhost port, CPU collectives through gloo). Every process asserts
that it built the same mask, that the optimizer state is sharded like the params, and that the
compiled optimizer update has no collectives; process 0 writes the gathered params and state.
Six launches in all: two jobs train every run the comparisons need (one JAX start per process
for several checks), then the restores onto other meshes, a process that dies, the example.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses / builds: not in `pytest --quick`

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("multiprocess_worker.py")
TIMEOUT = 120  # seconds for one run, whatever happens

pytest.importorskip("flax", reason="the worker's model is a Flax Linen MLP ([test] extra)")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(n: int, *args: str, local_devices: int | None = None, out: Path | None = None):
  """``n`` processes of one job; ``[(returncode, output)]`` per process, bounded in time."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
  port = _free_port()
  local = local_devices or 8 // n
  procs = []
  for i in range(n):
    cmd = [sys.executable, str(WORKER), *args, "--num-processes", str(n), "--process-id", str(i)]
    cmd += ["--port", str(port), "--local-devices", str(local)]
    if out is not None:
      cmd += ["--out", str(out)]
    procs.append(
      subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    )
  results = []
  for p in procs:
    try:
      text, _ = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail(f"a process ran past {TIMEOUT} s: {args}")
    results.append((p.returncode, text))
  return results


def _ok(results, n_devices: int = 8, runs: int = 1) -> None:
  for i, (code, text) in enumerate(results):
    assert code == 0, f"process {i} exited with {code}:\n{text[-3000:]}"
    assert f"OK process {i}/{len(results)}: {n_devices} devices" in text, text[-2000:]
    assert "mask identical on every process" in text
    # One OK line per optimizer the job trained, each after all of its checks passed.
    assert text.count("no collectives in the optimizer update") == runs, text[-2000:]


def _load(path: Path) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def _bitwise(a: dict, b: dict) -> list[str]:
  assert sorted(a) == sorted(b)
  return [k for k in a if not np.array_equal(a[k], b[k])]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp("multiprocess")


DETERMINISTIC = ["adamw", "l2", "multipliers"]
# The runs of the two jobs below (one of 1 process, one of 2), each trained in turn in one JAX
# start per process: the bit-identity runs, XLA's own all-reduce, and the checkpoint's reference
# run (which saves after step 3 of 6).
RUNS = [f"{name}@deterministic" for name in DETERMINISTIC] + ["adamw@train", "adamw@elementwise"]


@pytest.fixture(scope="module")
def jobs(tmp) -> dict[int, Path]:
  """``{process count: folder}`` of ``RUNS``' results (``name@mode.npz``) and checkpoint
  (``ckpt``), from one 1-process and one 2-process job."""
  folders = {}
  for n in (1, 2):
    folders[n] = tmp / f"job-{n}"
    folders[n].mkdir()
    args = ("--optimizer", ",".join(RUNS), "--steps", "6", "--save-at", "3")
    _ok(launch(n, *args, "--ckpt", str(folders[n] / "ckpt"), out=folders[n]), runs=len(RUNS))
  return folders


@pytest.mark.parametrize("optimizer", DETERMINISTIC)
def test_two_processes_are_bit_identical_to_one(jobs, optimizer):
  """FSDP + DP training of the Flax MLP, bit for bit across process counts.

  The gradients are reduced in a fixed order (``deterministic_grads`` in the worker: exact
  all-gathers, then a sum in device order), so what remains is what the library does.
  """
  run = f"{optimizer}@deterministic.npz"
  assert not _bitwise(_load(jobs[1] / run), _load(jobs[2] / run))


def test_training_with_the_models_gradients_agrees_to_rounding(jobs):
  """With XLA's own all-reduce, gloo sums the gradients in another order than one process does.

  The difference is the all-reduce's, not the optimizer's (the test above reduces in a fixed
  order and is bitwise): it stays at the level of float32 rounding of the gradient sums.
  """
  a, b = _load(jobs[1] / "adamw@train.npz"), _load(jobs[2] / "adamw@train.npz")
  for k in a:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_checkpoints_move_between_process_counts_and_meshes(tmp, jobs):
  """Save from 2 processes, resume in 1 on a 1x4 mesh; save from 1, resume in 2 on 4x2.

  Another mesh splits a batch into other per-device sums, so the comparison uses gradients
  that need no reduction (``--mode elementwise``): everything else, the optimizer state and
  its restore onto new shardings, is compared bit for bit.
  """
  # The jobs' elementwise runs are the references (6 steps on 2x4) and saved the checkpoints on
  # the way (after step 3); the two references must agree bit for bit.
  full = _load(jobs[2] / "adamw@elementwise.npz")
  assert not _bitwise(full, _load(jobs[1] / "adamw@elementwise.npz"))
  args = ("--optimizer", "adamw", "--mode", "elementwise", "--first", "3", "--steps", "3")
  resumed = tmp / "resumed-in-one.npz"
  ck2, ck1 = jobs[2] / "ckpt", jobs[1] / "ckpt"
  one = launch(1, *args, "--mesh", "1x4", "--restore", str(ck2), local_devices=4, out=resumed)
  _ok(one, n_devices=4)
  assert not _bitwise(full, _load(resumed))
  resumed2 = tmp / "resumed-in-two.npz"
  _ok(launch(2, *args, "--mesh", "4x2", "--restore", str(ck1), out=resumed2))
  assert not _bitwise(full, _load(resumed2))


def test_a_process_that_dies_makes_the_others_fail_not_hang():
  results = launch(2, "--mode", "die")
  assert results[1][0] == 3  # the one that died
  code, text = results[0]
  assert code != 0, text[-2000:]
  assert "another task died" in text or "stopped sending heartbeats" in text, text[-3000:]


def test_sharded_training_example_launches_two_processes():
  """``examples/sharded_training.py --processes 2``: the example's own multi-process launcher."""
  from _subprocess import run_python

  example = ROOT / "examples" / "sharded_training.py"
  proc = run_python([example, "--processes", "2", "--smoke"], timeout=TIMEOUT)
  assert "8 devices, mesh {'data': 2, 'fsdp': 4}" in proc.stdout
  assert "smoke: OK" in proc.stdout
  assert "launcher: 2 processes exited with [0, 0]" in proc.stdout
