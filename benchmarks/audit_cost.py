"""What ``od.diagnostics.audit`` costs: wall time on the 8.4M-parameter benchmark model.

One ``audit`` is 9 runs of ``steps`` optimizer calls each (3 gradient scales x 2 weights, and at
unit scale every other weight perturbed, a shared init and zero weights), all of one compiled
scan, plus that compile. The figure printed is the audit's wall time and its ratio to one
jitted ``optax.adamw`` step on the same params, both measured in this run.

    python benchmarks/audit_cost.py            # ~1 min on a 2-core box
    python benchmarks/audit_cost.py --smoke
"""

from __future__ import annotations

import time

import jax
import optax
from _common import grads_like, load, machine, many_leaves, n_params, parser

import optaxdecay as od


def main() -> None:
  args = parser(__doc__).parse_args()
  params = many_leaves(4, 16, 32) if args.smoke else many_leaves()
  steps = 8 if args.smoke else 128  # 128: the audit's default
  tx = optax.adamw(1e-3, weight_decay=0.1, mask=od.bias_mask)
  print(f"# audit cost\n{machine()}\nparams: {n_params(params):,}; steps per measurement: {steps}")
  step = jax.jit(lambda p, s, g: tx.update(g, s, p))
  state, grads = tx.init(params), grads_like(params)
  jax.block_until_ready(step(params, state, grads))
  t0 = time.perf_counter()
  for _ in range(5):
    jax.block_until_ready(step(params, state, grads))
  one_step = (time.perf_counter() - t0) / 5
  t0 = time.perf_counter()
  report = od.diagnostics.audit(tx, params, steps=steps)
  total = time.perf_counter() - t0
  print(f"one optax.adamw step: {one_step * 1e3:.1f} ms")
  print(f"audit (compile included): {total:.1f} s = {total / one_step:.0f} adamw steps")
  print(f"leaves reported: {len(report.rows)}; warnings: {len(report.warnings)}")
  print(f"load average after: {load()}")


if __name__ == "__main__":
  main()
