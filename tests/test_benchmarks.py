"""The benchmark scripts run end to end (``--smoke``: tiny sizes, one round).

Their figures are recorded in docs/benchmarks.md from full runs; this only
keeps the scripts from rotting. Nothing here times anything.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from _subprocess import run_python

pytestmark = pytest.mark.slow  # subprocesses / builds: not in `pytest --quick`

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str) -> str:
  return run_python([BENCH / script, "--smoke"], cwd=BENCH).stdout


def test_step_overhead_runs():
  out = _run("step_overhead.py")
  for expected in (
    "## one big leaf",
    "chain(adam, decoupled_weight_decay)",
    "chain(add_l2_to_grad, adam)",
    "## fused path",
    "fused Adam + L2",
    "## small leaves",
    "## L2 before Adam, written differently",
  ):
    assert expected in out, expected


def test_stochastic_rounding_runs():
  out = _run("stochastic_rounding.py")
  for expected in ("bfloat16 params", "float32 params", "od.apply_updates_stochastic"):
    assert expected in out, expected


@pytest.mark.skipif(
  importlib.util.find_spec("torch") is None,
  reason="vs_torch.py needs PyTorch: pip install -e '.[compat]' (CI installs torch==2.13.0)",
)
def test_vs_torch_runs():
  out = _run("vs_torch.py")
  for expected in (
    "torch AdamW(fused=True)",
    "od.fused_adamw(exact=True).step",
    "in-place",
    "An AdamW step moving its 7 words at that rate",
  ):
    assert expected in out, expected
  if len(os.sched_getaffinity(0)) > 1:  # one JAX CPU device per core
    assert "sharded_step" in out


def test_compile_memory_runs():
  out = _run("compile_memory.py")
  for expected in ("## memory_analysis", "## compile time", "od.fused_adamw(...).step"):
    assert expected in out, expected


def test_audit_cost_runs():
  out = _run("audit_cost.py")
  for expected in ("# audit cost", "one optax.adamw step", "audit (compile included)"):
    assert expected in out, expected
