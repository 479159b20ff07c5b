"""The typed API, checked by mypy: users' calls pass, a wrong argument type is reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses / builds: not in `pytest --quick`

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "tests" / "typecheck" / "usage.py"

pytest.importorskip("mypy", reason="mypy is in the [dev] extra")


def _mypy(*paths: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
  return subprocess.run(
    [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *map(str, paths)],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=600,
  )


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  """One mypy cache for both runs: the second reuses the analysis of jax and optax."""
  return tmp_path_factory.mktemp("mypy_cache")


def test_package_and_typical_usage_type_check(cache):
  out = _mypy("optaxdecay", USAGE, cache=cache)
  assert out.returncode == 0, out.stdout + out.stderr


def test_a_wrong_argument_type_is_reported(tmp_path, cache):
  bad = tmp_path / "bad_usage.py"
  bad.write_text(
    "import optaxdecay as od\n"
    "od.decoupled_weight_decay('0.1')\n"
    "od.decay_mask(min_ndim='2')\n"
    "od.fused_adamw(1e-3, chunk_size=2.5)\n"
  )
  out = _mypy(bad, cache=cache)
  assert out.returncode == 1
  for line in (2, 3, 4):
    assert f"bad_usage.py:{line}: error: Argument" in out.stdout, out.stdout
