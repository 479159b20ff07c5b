"""Compile time on a 1000-leaf model, and peak memory of a donated train step.

1. Compile time: ``jax.jit(step).lower(...)`` (tracing, which includes mask
   resolution, + lowering) and ``.compile()`` (XLA) of an optimizer step on
   500 Dense layers (kernel + bias = 1000 leaves) with ``bias_mask``; each
   candidate re-jitted from a fresh function every round (no cache hits),
   interleaved, medians, ratio to ``optax.adamw(mask=bias_mask)``.
2. Memory: ``compiled.memory_analysis()`` of the 8M-parameter step with and
   without buffer donation (deterministic): argument, output, aliased and
   temporary bytes, and the peak = arguments + outputs - aliased + temporaries,
   in 4-byte words per parameter.

    python benchmarks/compile_memory.py            # ~1-2 min on a 2-core box
    python benchmarks/compile_memory.py --quick
"""

from __future__ import annotations

import time

import jax
import numpy as np
import optax
from _common import (
  WORD,
  compile_step,
  grads_like,
  layouts,
  load,
  machine,
  many_leaves,
  n_params,
  optax_step,
  parser,
  peak_bytes,
  rounds_for,
  table,
)

import optaxdecay as od

LR, WD = 1e-3, 1e-4


def compile_candidates():
  m = od.bias_mask
  return {
    "optax.adamw(mask=bias_mask)": lambda: optax.adamw(LR, weight_decay=WD, mask=m),
    "chain(adam, decoupled_weight_decay(mask=bias_mask))": lambda: optax.chain(
      optax.adam(LR), od.decoupled_weight_decay(LR * WD, mask=m)
    ),
    "chain(add_l2_to_grad(mask=bias_mask), adam)": lambda: optax.chain(
      od.add_l2_to_grad(WD, mask=m), optax.adam(LR)
    ),
    "adam (no decay)": lambda: optax.adam(LR),
  }


def time_compile(make_tx, params, grads) -> tuple[float, float]:
  tx = make_tx()
  state = tx.init(params)

  def step(p, s, g):  # a fresh function: no jit cache hit
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  t0 = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads)
  t1 = time.perf_counter()
  lowered.compile()
  t2 = time.perf_counter()
  return t1 - t0, t2 - t1


def compile_section(rounds: int, layers: int = 500) -> None:
  params = many_leaves(layers=layers, fan_in=16, fan_out=16)
  grads = grads_like(params)
  cands = compile_candidates()
  lower_t = {k: [] for k in cands}
  comp_t = {k: [] for k in cands}
  names = list(cands)
  time_compile(cands[names[0]], params, grads)  # warm up JAX itself
  for r in range(rounds):
    for k in names[r % len(names) :] + names[: r % len(names)]:
      a, b = time_compile(cands[k], params, grads)
      lower_t[k].append(a)
      comp_t[k].append(b)
  base = "optax.adamw(mask=bias_mask)"
  tot = {k: np.asarray(lower_t[k]) + np.asarray(comp_t[k]) for k in names}
  rows = [
    [
      k,
      1e3 * float(np.median(lower_t[k])),
      1e3 * float(np.median(comp_t[k])),
      1e3 * float(np.median(tot[k])),
      float(np.median(tot[k] / tot[base])),
    ]
    for k in names
  ]
  leaves = len(jax.tree.leaves(params))
  print(f"\n## compile time: {leaves} leaves ({n_params(params):,} params), {rounds} rounds")
  print(
    table(
      rows,
      ["step", "trace+lower ms", "XLA compile ms", "total ms", "total / optax.adamw(mask)"],
    )
  )


def memory_candidates():
  m = od.bias_mask
  return {
    "adam": optax.adam(LR),
    "optax.adamw(mask)": optax.adamw(LR, weight_decay=WD, mask=m),
    "chain(adam, decoupled_weight_decay)": optax.chain(
      optax.adam(LR), od.decoupled_weight_decay(LR * WD, mask=m)
    ),
    "chain(add_l2_to_grad, adam)": optax.chain(od.add_l2_to_grad(WD, mask=m), optax.adam(LR)),
    "od.fused_adamw(...).step": od.fused_adamw(LR, weight_decay=WD, mask=m),
  }


def memory_section(label: str, params) -> None:
  grads = grads_like(params)
  n = n_params(params)
  rows = []
  for name, tx in memory_candidates().items():
    state = tx.init(params)
    if isinstance(tx, od.FusedAdamW):
      step = lambda p, s, g, tx=tx: tx.step(p, g, s)
    else:
      step = optax_step(tx)
    for donate in (True, False):
      mem = peak_bytes(compile_step(step, params, state, grads, donate=donate))
      w = {k: v / n / WORD for k, v in mem.items()}
      rows.append(
        [
          name,
          "yes" if donate else "no",
          w["arguments"],
          w["outputs"],
          w["aliased"],
          f"{mem['temp']:,} B",
          w["peak"],
          f"{mem['peak'] / 2**20:.1f} MiB",
        ]
      )
  print(f"\n## memory_analysis: {label}, {n:,} float32 params (words per param)")
  print(
    table(
      rows,
      ["step", "donated", "arguments", "outputs", "aliased", "temp", "peak", "peak (abs)"],
    ),
  )


def main() -> None:
  args = parser(__doc__).parse_args()
  rounds = rounds_for(args, quick=1, full=2)
  print("# compile_memory")
  print("machine:", machine())
  for label, params in layouts(args.smoke):
    memory_section(label, params)
  compile_section(rounds, layers=10 if args.smoke else 500)
  print("\nload average at end:", load())


if __name__ == "__main__":
  main()
