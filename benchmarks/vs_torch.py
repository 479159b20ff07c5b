"""An AdamW step in JAX vs PyTorch's ``AdamW(foreach=True)`` / ``AdamW(fused=True)`` on CPU.

Same sizes as ``step_overhead.py`` (one 8M kernel; 64 Dense layers with
``bias_mask``: biases not decayed, a second torch param group with
``weight_decay=0``), same process, candidates interleaved run by run. An AdamW
step must read ``p, g, m, v`` and write ``p, m, v``: 7 words per parameter.
Run order is shuffled every round, and PyTorch's OpenMP threads are made to
sleep when idle (``OMP_WAIT_POLICY=PASSIVE``) so that neither framework's
threads slow the other's next run. The script also measures the machine's
in-place memory bandwidth (simple in-place kernels over a comparable working
set, in the same rounds) and reports the fraction of it each AdamW step
achieves, counting 7 words per parameter.

    python benchmarks/vs_torch.py            # ~1-2 min on a 2-core box
    python benchmarks/vs_torch.py --quick    # ~30 s
    taskset -c 0 python benchmarks/vs_torch.py   # everything on one core
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

# PyTorch's OpenMP threads otherwise keep spinning after each kernel and slow
# down whatever runs next in this process (here: the JAX candidates). Must be
# set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One CPU device per usable core, for `fused_adamw(...).sharded_step`: XLA runs
# the fused loop on one thread per device. JAX reads this flag only at start-up.
# The single-device candidates run on device 0 and still use every core.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + (
  ""
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
  else f" --xla_force_host_platform_device_count={len(os.sched_getaffinity(0))}"
)

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
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import optaxdecay as od

LR, WD = 1e-3, 1e-4
ADAMW_WORDS = 7


def torch_candidates(torch, params, grads):
  """name -> step callable, for foreach and fused AdamW."""
  out = {}
  for kind in ("foreach", "fused"):
    decay, no_decay = [], []
    names = od.bias_mask(params)
    for p, g, sel in zip(
      jax.tree.leaves(params), jax.tree.leaves(grads), jax.tree.leaves(names), strict=True
    ):
      t = torch.tensor(np.asarray(p)).requires_grad_()
      t.grad = torch.tensor(np.asarray(g))
      (decay if sel else no_decay).append(t)
    groups = [{"params": decay, "weight_decay": WD}]
    if no_decay:
      groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=LR, **{kind: True})
    out[f"torch AdamW({kind}=True)"] = opt.step
  return out


def bandwidth_probes(torch, n: int) -> tuple[dict, dict]:
  """In-place kernels over 4 x n floats (AdamW's working set); -> (fns, bytes)."""
  x = jnp.ones(4 * n, jnp.float32)
  scale = jax.jit(lambda a: a * 1.0000001, donate_argnums=0)
  box = {"x": x}

  def jax_scale():
    box["x"] = scale(box["x"])
    box["x"].block_until_ready()

  a = torch.ones(4 * n)
  b, c = torch.ones(2 * n), torch.ones(2 * n)
  fns = {
    "jax x = x*s (donated)": jax_scale,
    "torch x.mul_(s)": lambda: a.mul_(1.0000001),
    "torch x.add_(y)": lambda: b.add_(c),
  }
  nbytes = {
    "jax x = x*s (donated)": 2 * 4 * n * WORD,
    "torch x.mul_(s)": 2 * 4 * n * WORD,
    "torch x.add_(y)": 3 * 2 * n * WORD,
  }
  return fns, nbytes


ONE_PASS = "jax one fusion: p = f(p, g, m, v) (donated)"


def one_pass_probe(n: int) -> Callable[[], None]:
  """XLA's own single fusion that reads 4 arrays and writes 1: Adam's parameter update alone.

  The composable step cannot be one pass on XLA:CPU, but this shows how fast
  XLA streams AdamW's arrays when it *does* emit one loop: an AdamW step moving
  its 7 words at this rate is the best an XLA-generated kernel could hope for.
  """
  p, g, m, v = (jnp.ones(n, jnp.float32) for _ in range(4))

  @functools.partial(jax.jit, donate_argnums=0)
  def update(p, g, m, v):
    return p * 0.9999 - 1e-3 * (0.9 * m + 0.1 * g) / (jnp.sqrt(0.999 * v + 1e-3 * g * g) + 1e-8)

  box = {"p": p}

  def run() -> None:
    box["p"] = update(box["p"], g, m, v)
    box["p"].block_until_ready()

  return run


def sharded_runner(fused: od.FusedAdamW, params, grads) -> Runner:
  """``fused.sharded_step`` with every leaf split along its first axis over all devices."""
  mesh = Mesh(np.array(jax.devices()), ("cores",))
  n = jax.device_count()
  specs = jax.tree.map(lambda p: P("cores") if p.shape[0] % n == 0 else P(), params)
  shard = lambda tree: jax.tree.map(
    lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), tree, specs
  )
  params, grads = shard(params), shard(grads)
  # mu and nu sharded like their parameters, the counts replicated.
  state_shardings = optax.tree.map_params(
    fused.init,
    lambda _, p: p.sharding,
    jax.eval_shape(fused.init, params),
    params,
    transform_non_params=lambda _: NamedSharding(mesh, P()),
  )
  state = jax.jit(fused.init, out_shardings=state_shardings)(params)
  step = fused.sharded_step(mesh, specs)
  c = compile_step(lambda p, s, g: step(p, g, s), params, state, grads)
  return Runner(c, params, state, grads)


def run_layout(torch, label: str, params, rounds: int) -> None:
  grads = grads_like(params)
  n = n_params(params)
  runners, words = {}, {}
  jax_txs = {
    "optax.adamw(mask)": optax.adamw(LR, weight_decay=WD, mask=od.bias_mask),
    "chain(adam, decoupled_weight_decay)": optax.chain(
      optax.adam(LR), od.decoupled_weight_decay(LR * WD, mask=od.bias_mask)
    ),
  }
  for name, tx in jax_txs.items():
    state = tx.init(params)
    c = compile_step(optax_step(tx), params, state, grads)
    words[name] = bytes_per_param(c, n) / WORD
    runners[name] = Runner(c, params, state, grads)
  for exact in (True, False):
    fused = od.fused_adamw(LR, weight_decay=WD, mask=od.bias_mask, exact=exact)
    state = fused.init(params)
    c = compile_step(lambda p, s, g, f=fused: f.step(p, g, s), params, state, grads)
    name = f"od.fused_adamw(exact={exact}).step"
    runners[name] = Runner(c, params, state, grads)
    words[name] = float("nan")  # XLA does not count loop bodies x trips
    if jax.device_count() > 1:
      name = f"od.fused_adamw(exact={exact}).sharded_step, {jax.device_count()} CPU devices"
      runners[name] = sharded_runner(fused, params, grads)
      words[name] = float("nan")
  runners.update(torch_candidates(torch, params, grads))
  probes, probe_bytes = bandwidth_probes(torch, n)
  runners.update(probes)
  runners[ONE_PASS] = one_pass_probe(n)
  times = interleave(runners, rounds)
  bw = {k: probe_bytes[k] / (ms(times, k) / 1e3) for k in probes}
  best_bw = max(bw.values())
  base = "torch AdamW(fused=True)"
  rows = []
  for name in runners:
    if name in probes or name == ONE_PASS:
      continue
    achieved = ADAMW_WORDS * WORD * n / (ms(times, name) / 1e3)
    rows.append(
      [
        name,
        ms(times, name),
        median_ratio(times, name, base),
        achieved / 1e9,
        achieved / best_bw,
        words.get(name, float("nan")),
      ]
    )
  print(
    f"\n## {label}: {n:,} float32 params, {len(jax.tree.leaves(params))} leaves, {rounds} rounds"
  )
  print(
    table(
      rows,
      [
        "AdamW step",
        "median ms",
        "time / torch fused",
        "GB/s (7 words/param)",
        "fraction of in-place BW",
        "words/param (XLA)",
      ],
    )
  )
  print(
    table(
      [[k, ms(times, k), bw[k] / 1e9] for k in probes],
      ["in-place bandwidth probe", "median ms", "GB/s"],
    )
  )
  one_pass_bw = 5 * n * WORD / (ms(times, ONE_PASS) / 1e3)
  ideal_ms = 1e3 * ADAMW_WORDS * n * WORD / one_pass_bw
  print(
    f"{ONE_PASS}: {ms(times, ONE_PASS):.3f} ms, {one_pass_bw / 1e9:.1f} GB/s (5 words/param). "
    f"An AdamW step moving its 7 words at that rate: {ideal_ms:.2f} ms = "
    f"{ideal_ms / ms(times, base):.2f} x torch AdamW(fused=True)'s median."
  )


def main() -> None:
  args = parser(__doc__).parse_args()
  try:
    import torch
  except ImportError:
    print("vs_torch: needs torch (pip install torch); skipped.")
    sys.exit(0)
  rounds = rounds_for(args, quick=10, full=60)
  print("# vs_torch")
  print("machine:", machine())
  print(
    f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
    f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
  )
  print("fraction = (7 words x 4 B x params / median time) / best in-place probe bandwidth")
  print("words/param (XLA) is nan for fused_adamw: cost_analysis does not multiply a loop")
  print("body by its trip count; by construction it reads p, g, m, v and writes p, m, v once.")
  for label, params in layouts(args.smoke):
    run_layout(torch, label, params, rounds)
  print("\nload average at end:", load())


if __name__ == "__main__":
  main()
