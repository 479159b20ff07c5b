"""What does a decay/L2 transform cost on top of the optimizer it is chained with?

A jitted, buffer-donating train step ``(params, state, grads) -> (params,
state)`` on >= 8M float32 parameters, in two layouts: one big kernel, and 64
Dense layers (kernel + bias; ``bias_mask`` excludes the biases). For each
optimizer family it prints

* the median step time and the median of per-round ratios to the bare
  optimizer (candidates interleaved run by run in one process), and
* XLA's own ``compiled.cost_analysis()['bytes accessed']`` per parameter per
  step, in 4-byte words (deterministic for a given XLA version and CPU).

The "L2 formulations" section shows why an L2 term before Adam costs extra
words on XLA:CPU whatever the leaf function looks like.

    python benchmarks/step_overhead.py            # ~1-2 min on a 2-core box
    python benchmarks/step_overhead.py --quick    # ~30 s
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import (
  WORD,
  Runner,
  bytes_per_param,
  compile_step,
  grads_like,
  interleave,
  layouts,
  load,
  machine,
  median_ratio,
  ms,
  n_params,
  optax_step,
  parser,
  rounds_for,
  table,
)

import optaxdecay as od

LR, L2, WD = 1e-3, 1e-4, 1e-4
RATE = LR * WD  # the decoupled rate of optax.adamw(LR, weight_decay=WD)


def candidates() -> dict[str, tuple[str, optax.GradientTransformation]]:
  """name -> (baseline name, optimizer)."""
  m = od.bias_mask
  # Per-leaf multipliers: biases 0, every other leaf at half strength (a float multiply).
  half = od.decay_multipliers([(".*bias", 0.0)], default=0.5)
  sched = optax.linear_schedule(RATE, 0.0, 10_000)
  return {
    "adam": ("adam", optax.adam(LR)),
    "chain(adam, decoupled_weight_decay)": (
      "adam",
      optax.chain(optax.adam(LR), od.decoupled_weight_decay(RATE, mask=m)),
    ),
    "chain(adam, decoupled_weight_decay(schedule))": (
      "adam",
      optax.chain(optax.adam(LR), od.decoupled_weight_decay(sched, mask=m)),
    ),
    "chain(adam, decoupled_weight_decay(mask=multipliers))": (
      "adam",
      optax.chain(optax.adam(LR), od.decoupled_weight_decay(RATE, mask=half)),
    ),
    "optax.adamw(mask=bias_mask)": ("adam", optax.adamw(LR, weight_decay=WD, mask=m)),
    # The rotation monitor behind the decay: reductions per neuron, the updates passed through.
    "chain(optax.adamw, track_rotation)": (
      "optax.adamw(mask=bias_mask)",
      optax.chain(optax.adamw(LR, weight_decay=WD, mask=m), od.diagnostics.track_rotation(mask=m)),
    ),
    "chain(add_l2_to_grad, adam)": (
      "adam",
      optax.chain(od.add_l2_to_grad(L2, mask=m), optax.adam(LR)),
    ),
    "chain(add_l2_to_grad(mask=multipliers), adam)": (
      "adam",
      optax.chain(od.add_l2_to_grad(L2, mask=half), optax.adam(LR)),
    ),
    "chain(optax.add_decayed_weights, adam)": (
      "adam",
      optax.chain(optax.add_decayed_weights(L2, mask=m), optax.adam(LR)),
    ),
    "sgd": ("sgd", optax.sgd(LR)),
    "chain(sgd, decoupled_weight_decay)": (
      "sgd",
      optax.chain(optax.sgd(LR), od.decoupled_weight_decay(RATE, mask=m)),
    ),
    "chain(add_l2_to_grad, sgd)": (
      "sgd",
      optax.chain(od.add_l2_to_grad(L2, mask=m), optax.sgd(LR)),
    ),
    "chain(sgd, decoupled_weight_decay(mask=multipliers))": (
      "sgd",
      optax.chain(optax.sgd(LR), od.decoupled_weight_decay(RATE, mask=half)),
    ),
    "sgd(momentum=0.9)": ("sgd(momentum=0.9)", optax.sgd(LR, momentum=0.9)),
    "chain(sgd(momentum=0.9), decoupled_weight_decay)": (
      "sgd(momentum=0.9)",
      optax.chain(optax.sgd(LR, momentum=0.9), od.decoupled_weight_decay(RATE, mask=m)),
    ),
    "chain(add_l2_to_grad, sgd(momentum=0.9))": (
      "sgd(momentum=0.9)",
      optax.chain(od.add_l2_to_grad(L2, mask=m), optax.sgd(LR, momentum=0.9)),
    ),
  }


def _l2_variant(leaf_fn) -> optax.GradientTransformation:
  """An all-leaves L2 transform with a custom leaf function (for the study)."""

  def update(updates, state, params=None):
    return jax.tree.map(leaf_fn, updates, params), state

  return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def formulations(params, grads) -> list[list]:
  """Bytes/param of L2-before-Adam written in different ways (one big leaf)."""
  n = n_params(params)
  base = optax.adam(LR)
  variants = {
    "bare adam (no L2)": base,
    "g + l2*w (add_l2_to_grad)": optax.chain(od.add_l2_to_grad(L2), base),
    "l2*w + g": optax.chain(_l2_variant(lambda g, w: L2 * w + g), base),
    "g + w*l2 via lax.mul/lax.add": optax.chain(
      _l2_variant(lambda g, w: jax.lax.add(g, jax.lax.mul(w, jnp.asarray(L2, w.dtype)))), base
    ),
    "optimization_barrier(g + l2*w)": optax.chain(
      _l2_variant(lambda g, w: jax.lax.optimization_barrier(g + L2 * w)), base
    ),
  }
  rows = []
  for name, tx in variants.items():
    state = tx.init(params)
    c = compile_step(optax_step(tx), params, state, grads)
    rows.append([name, bytes_per_param(c, n) / WORD])
  return rows


def run_layout(label: str, params, rounds: int) -> None:
  grads = grads_like(params)
  n = n_params(params)
  cands = candidates()
  runners, words = {}, {}
  for name, (_, tx) in cands.items():
    state = tx.init(params)
    compiled = compile_step(optax_step(tx), params, state, grads)
    words[name] = bytes_per_param(compiled, n) / WORD
    runners[name] = Runner(compiled, params, state, grads)
  times = interleave(runners, rounds)
  rows = []
  for name, (base, _) in cands.items():
    rows.append(
      [
        name,
        ms(times, name),
        median_ratio(times, name, base),
        words[name],
        words[name] - words[base],
      ]
    )
  adamw_ratio = median_ratio(
    times, "chain(adam, decoupled_weight_decay)", "optax.adamw(mask=bias_mask)"
  )
  print(
    f"\n## {label}: {n:,} float32 params, {len(jax.tree.leaves(params))} leaves, {rounds} rounds"
  )
  print(
    table(
      rows,
      ["step", "median ms", "ratio to bare", "words/param (XLA)", "extra words"],
    )
  )
  print(f"chain(adam, decoupled_weight_decay) / optax.adamw(mask): {adamw_ratio:.3f}")


def fused_layout(label: str, params, rounds: int) -> None:
  """The same question on the single-pass path: ``od.fused_adamw(...).step``."""
  grads = grads_like(params)
  m = od.bias_mask
  opts = {
    "fused Adam (weight_decay=0)": od.fused_adamw(LR, weight_decay=0.0),
    "fused AdamW (weight_decay, mask=bias_mask)": od.fused_adamw(LR, weight_decay=WD, mask=m),
    "fused Adam + L2 (l2, mask=bias_mask)": od.fused_adamw(LR, weight_decay=0.0, l2=L2, mask=m),
  }
  runners = {}
  for name, opt in opts.items():
    state = opt.init(params)
    c = compile_step(lambda p, s, g, o=opt: o.step(p, g, s), params, state, grads)
    runners[name] = Runner(c, params, state, grads)
  times = interleave(runners, rounds)
  base = "fused Adam (weight_decay=0)"
  rows = [[name, ms(times, name), median_ratio(times, name, base)] for name in opts]
  print(f"\n## fused path, {label}: {n_params(params):,} float32 params, {rounds} rounds")
  print(table(rows, ["step", "median ms", "ratio to fused Adam"]))


def small_leaves(rounds: int, smoke: bool = False) -> None:
  """Per-leaf dispatch: the same 32,768 params as one leaf and as 64 leaves of 512."""
  n_leaves, size = (4, 64) if smoke else (64, 512)
  rng = np.random.default_rng(0)
  one = {"w": jnp.asarray(rng.standard_normal(n_leaves * size, dtype=np.float32))}
  many = {
    f"w{i}": jnp.asarray(rng.standard_normal(size, dtype=np.float32)) for i in range(n_leaves)
  }
  fused = od.fused_adamw(LR, weight_decay=WD)
  txs = {
    "adam": optax.adam(LR),
    "chain(adam, decoupled_weight_decay)": optax.chain(
      optax.adam(LR), od.decoupled_weight_decay(RATE)
    ),
    "chain(add_l2_to_grad, adam)": optax.chain(od.add_l2_to_grad(L2), optax.adam(LR)),
  }
  runners = {}
  for label, params in (("1 leaf", one), (f"{n_leaves} leaves", many)):
    grads = grads_like(params)
    for name, tx in txs.items():
      state = tx.init(params)
      c = compile_step(optax_step(tx), params, state, grads)
      runners[f"{name} | {label}"] = Runner(c, params, state, grads)
    state = fused.init(params)
    c = compile_step(lambda p, s, g: fused.step(p, g, s), params, state, grads)
    runners[f"od.fused_adamw(...).step | {label}"] = Runner(c, params, state, grads)
  times = interleave(runners, rounds)
  rows = []
  for name in [*txs, "od.fused_adamw(...).step"]:
    one_ms = ms(times, f"{name} | 1 leaf")
    many_ms = ms(times, f"{name} | {n_leaves} leaves")
    rows.append([name, one_ms, many_ms, 1e3 * (many_ms - one_ms) / (n_leaves - 1)])
  print(
    f"\n## small leaves: {n_leaves * size:,} float32 params as 1 leaf and as {n_leaves} "
    f"leaves of {size}, {rounds} rounds"
  )
  print(table(rows, ["step", "1 leaf: ms", f"{n_leaves} leaves: ms", "extra us per leaf"]))


def main() -> None:
  args = parser(__doc__).parse_args()
  rounds = rounds_for(args, quick=10, full=60)
  print("# step_overhead")
  print("machine:", machine())
  print("ratio = median over rounds of (candidate time / bare optimizer time), same round")
  shapes = layouts(args.smoke)
  for label, params in shapes:
    run_layout(label, params, rounds)
  print("\nThe fused loop keeps each chunk in cache, so XLA's per-step byte count does not")
  print("apply (it counts a loop body once); these candidates are compared by time only.")
  for label, params in shapes:
    fused_layout(label, params, rounds)
  small_leaves(rounds, args.smoke)
  print("\n## L2 before Adam, written differently (one big leaf; XLA bytes only)")
  p = shapes[0][1]
  print(table(formulations(p, grads_like(p)), ["formulation", "words/param (XLA)"]))
  print("\nload average at end:", load())


if __name__ == "__main__":
  main()
