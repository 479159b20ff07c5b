"""What does stochastic rounding cost over ``optax.apply_updates``?

A jitted, buffer-donating ``params, updates -> params`` on >= 8M parameters stored in bfloat16
(the case it is for) and in float32 (where ``od.apply_updates_stochastic`` is
``optax.apply_updates`` exactly), in the two layouts of the other scripts. It prints the
median time and the median of per-round ratios to ``optax.apply_updates`` on the same params
(candidates interleaved run by run in one process), and XLA's bytes per parameter.

    python benchmarks/stochastic_rounding.py          # ~30 s on a 2-core box
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from _common import (
  bytes_per_param,
  interleave,
  layouts,
  load,
  machine,
  median_ratio,
  ms,
  n_params,
  parser,
  rounds_for,
  table,
)

import optaxdecay as od


class Apply:
  """One jitted, donated application of ``fn(params, updates, key)``, re-run in place."""

  def __init__(self, fn, params, updates):
    self.compiled = (
      jax.jit(fn, donate_argnums=0).lower(params, updates, jax.random.key(0)).compile()
    )
    self.params = jax.tree.map(jnp.copy, params)  # its own buffers: they are donated
    self.updates, self.key = updates, jax.random.key(0)

  def __call__(self) -> None:
    self.key, k = jax.random.split(self.key)
    self.params = self.compiled(self.params, self.updates, k)
    jax.block_until_ready(self.params)


def main() -> None:
  args = parser(__doc__).parse_args()
  rounds = rounds_for(args, quick=10, full=40)
  print("# stochastic_rounding")
  print("machine:", machine())
  nearest = lambda p, u, _k: optax.apply_updates(p, u)
  for label, params32 in layouts(args.smoke):
    for dtype in (jnp.bfloat16, jnp.float32):
      params = jax.tree.map(lambda x, d=dtype: x.astype(d), params32)
      updates = jax.tree.map(lambda x: jnp.full(x.shape, -1e-5, jnp.float32), params32)
      n = n_params(params)
      fns = {
        "optax.apply_updates": Apply(nearest, params, updates),
        "od.apply_updates_stochastic": Apply(od.apply_updates_stochastic, params, updates),
      }
      times = interleave(fns, rounds)
      rows = [
        [
          name,
          ms(times, name),
          median_ratio(times, name, "optax.apply_updates"),
          bytes_per_param(fn.compiled, n),
        ]
        for name, fn in fns.items()
      ]
      print(f"\n## {label}, {jnp.dtype(dtype).name} params: {n:,} params, {rounds} rounds")
      print(table(rows, ["apply", "median ms", "ratio to apply_updates", "bytes/param (XLA)"]))
  print("\nload average at end:", load())


if __name__ == "__main__":
  main()
