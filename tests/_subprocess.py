"""Run a Python script in a fresh interpreter, for tests of scripts and examples."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
  """This process's environment without ``XLA_FLAGS`` (a script sets its own), plus ``extra``."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(extra)
  return env


def run_python(
  args: Sequence[str | Path],
  *,
  cwd: Path | None = None,
  env: Mapping[str, str] | None = None,
  timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
  """``python *args``; fails the test, showing the output's tail, unless it exits with 0."""
  proc = subprocess.run(
    [sys.executable, *map(str, args)],
    cwd=cwd,
    env=dict(clean_env() if env is None else env),
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
  assert proc.returncode == 0, (
    f"{list(args)} exited with {proc.returncode}\n--- stdout (tail)\n{proc.stdout[-3000:]}\n"
    f"--- stderr (tail)\n{proc.stderr[-4000:]}"
  )
  return proc
