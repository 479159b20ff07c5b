"""Shared pieces of the benchmark scripts: models, timing, XLA cost figures.

Timing on a shared machine is noisy, so every script runs its candidates
*interleaved* (one run of each, in a rotating order, per round) in one process,
and reports medians and the median of the per-round ratios to a baseline: a
burst of load from elsewhere slows every candidate of that round alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Benchmark this checkout's optaxdecay, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORD = 4  # bytes in a float32


def machine() -> str:
  """One line: CPU model, core count, JAX/device, for the record."""
  model = platform.processor() or "unknown CPU"
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
      if line.startswith("Model name:"):
        model = line.split(":", 1)[1].strip()
  except OSError:
    pass
  return (
    f"{model}; nproc={os.cpu_count()}; jax {jax.__version__} on "
    f"{jax.devices()[0].platform} ({len(jax.devices())} device(s)); optax {optax.__version__}; "
    f"load average {load()}"
  )


def load() -> str:
  """The 1/5/15-minute load averages: other work on a shared machine skews timings."""
  return "/".join(f"{x:.1f}" for x in os.getloadavg())


def parser(doc: str | None) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="a short run (a few rounds)")
  p.add_argument("--rounds", type=int, default=None, help="timed rounds per candidate")
  p.add_argument(
    "--smoke",
    action="store_true",
    help="tiny sizes, 1 round: only checks that the script runs (tests/test_benchmarks.py);\n"
    "its numbers mean nothing",
  )
  return p


def rounds_for(args: argparse.Namespace, quick: int, full: int) -> int:
  """Timed rounds: ``--rounds`` if given, else 1 (``--smoke``), ``quick`` or ``full``."""
  if args.rounds:
    return args.rounds
  return 1 if args.smoke else quick if args.quick else full


def layouts(smoke: bool = False) -> list[tuple[str, dict]]:
  """The two parameter layouts every script measures: ``[(label, params)]``."""
  if smoke:
    return [("one big leaf", one_leaf(2048 * 16)), ("4 kernels + 4 biases", many_leaves(4, 16, 32))]
  return [("one big leaf", one_leaf()), ("64 kernels + 64 biases", many_leaves())]


def one_leaf(n: int = 2048 * 4096, dtype: Any = jnp.float32) -> dict:
  """One big kernel: ``{'kernel': (2048, 4096)}`` = 8,388,608 params by default."""
  rows = 2048
  return {"kernel": jnp.asarray(_rand((rows, n // rows), 0), dtype)}


def many_leaves(layers: int = 64, fan_in: int = 256, fan_out: int = 512, dtype: Any = jnp.float32):
  """``layers`` Dense layers ``{'kernel', 'bias'}``: 64 x (256*512 + 512) = 8,421,376 params."""
  return {
    f"Dense_{i}": {
      "kernel": jnp.asarray(_rand((fan_in, fan_out), 2 * i), dtype),
      "bias": jnp.asarray(_rand((fan_out,), 2 * i + 1), dtype),
    }
    for i in range(layers)
  }


def _rand(shape: tuple[int, ...], seed: int) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * 0.1


def grads_like(params: Any) -> Any:
  return jax.tree.map(lambda p: jnp.asarray(_rand(p.shape, 10_000 + p.size), p.dtype), params)


def n_params(tree: Any) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(tree))


def optax_step(tx: optax.GradientTransformation) -> Callable:
  """``(params, state, grads) -> (params, state)``: update + apply_updates."""

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def compile_step(step: Callable, params: Any, state: Any, grads: Any, donate: bool = True):
  """The compiled step, donating params and state (in-place update)."""
  donate_argnums = (0, 1) if donate else ()
  return jax.jit(step, donate_argnums=donate_argnums).lower(params, state, grads).compile()


def cost(compiled: Any) -> dict:
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):
    ca = ca[0]
  return dict(ca or {})


def bytes_per_param(compiled: Any, n: int) -> float:
  """XLA's own count of bytes read+written by one step, per parameter."""
  return float(cost(compiled).get("bytes accessed", float("nan"))) / n


def peak_bytes(compiled: Any) -> dict:
  """Sizes from ``compiled.memory_analysis()``; ``peak`` = args + outputs - aliased + temps."""
  m = compiled.memory_analysis()
  args, out = m.argument_size_in_bytes, m.output_size_in_bytes
  alias, temp = m.alias_size_in_bytes, m.temp_size_in_bytes
  return {
    "arguments": args,
    "outputs": out,
    "aliased": alias,
    "temp": temp,
    "peak": args + out - alias + temp,
  }


class Runner:
  """Keeps a jitted step's live buffers so each call donates the previous ones."""

  def __init__(self, compiled: Any, params: Any, state: Any, grads: Any):
    self.compiled = compiled
    copy = lambda t: jax.tree.map(jnp.array, t)
    self.params, self.state, self.grads = copy(params), copy(state), grads

  def __call__(self) -> None:
    self.params, self.state = self.compiled(self.params, self.state, self.grads)
    jax.block_until_ready(self.params)


def interleave(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2) -> dict:
  """``{name: [seconds per run]}``: one run of each per round, in a new random order.

  A fixed (or merely rotated) order would give every candidate the same
  predecessor each round, and a predecessor can slow the next run (e.g.
  PyTorch's OpenMP threads keep spinning for a while after a kernel).
  """
  names = list(fns)
  for _ in range(warmup):
    for k in names:
      fns[k]()
  rng = np.random.default_rng(0)
  times: dict[str, list[float]] = {k: [] for k in names}
  for _ in range(rounds):
    for i in rng.permutation(len(names)):
      k = names[i]
      t0 = time.perf_counter()
      fns[k]()
      times[k].append(time.perf_counter() - t0)
  return times


def median_ratio(times: dict, name: str, base: str) -> float:
  return float(np.median(np.asarray(times[name]) / np.asarray(times[base])))


def ms(times: dict, name: str) -> float:
  return float(np.median(times[name])) * 1e3


def table(rows: list[list[Any]], header: list[str]) -> str:
  cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
  line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
  sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
  return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _fmt(c: Any) -> str:
  if isinstance(c, float):
    return f"{c:.3f}" if abs(c) < 100 else f"{c:.1f}"
  return str(c)
