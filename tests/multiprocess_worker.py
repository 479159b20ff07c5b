"""One process of a multi-controller JAX run (``jax.distributed``), for tests/test_multiprocess.py.

Started N times (or once, N=1, as the single-process reference) with the same arguments but
``--process-id``. Each process has ``--local-devices`` CPU devices; together they form one
global mesh ``(data, fsdp)``. It trains a small Flax Linen MLP FSDP + data parallel with one of
the optimizers in ``OPTIMIZERS``, checks what must hold on every process, and process 0 writes
the final params and optimizer state (gathered to the host) to ``--out``.

Modes: ``train`` (``jax.grad`` of the sharded batch: XLA's all-reduce), ``deterministic`` (the
same gradients reduced in a fixed order, so that 1 and N processes agree bit for bit),
``elementwise`` (gradients ``sin(3w + t)``, which need no cross-device reduction, so that runs
on different meshes can be compared bit for bit),
``die`` (process 1 exits right after start-up, to test that the others fail, not hang).
One job can train several runs in turn (one JAX start for several checks): ``--optimizer``
takes a comma-separated list of ``name`` or ``name@mode`` (``mode`` defaults to ``--mode``), and
with several runs ``--out`` is a folder of one ``.npz`` per run, named as the run is given.
Checkpoints: ``--save-at K --ckpt DIR`` saves with Orbax after step K (in a job of several runs,
the ``elementwise`` run saves: the one whose results compare across meshes); ``--restore DIR
--first K`` starts from it, on whatever mesh this run has.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

MODES = ["train", "deterministic", "elementwise", "die"]


def parse_args() -> argparse.Namespace:
  p = argparse.ArgumentParser()
  p.add_argument("--process-id", type=int, default=0)
  p.add_argument("--num-processes", type=int, default=1)
  p.add_argument("--port", type=int, default=0)
  p.add_argument("--local-devices", type=int, default=8)
  p.add_argument("--mesh", default="2x4", help="data x fsdp")
  p.add_argument(
    "--optimizer", default="adamw", help="runs, comma-separated: `name` or `name@mode`"
  )
  p.add_argument("--mode", default="train", choices=MODES)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--first", type=int, default=0)
  p.add_argument("--save-at", type=int, default=-1)
  p.add_argument("--ckpt", default="")
  p.add_argument("--restore", default="")
  p.add_argument("--out", default="", help="a .npz file; a folder for several optimizers")
  return p.parse_args()


ARGS = parse_args()
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ARGS.local_devices}"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

if ARGS.num_processes > 1:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    f"127.0.0.1:{ARGS.port}",
    num_processes=ARGS.num_processes,
    process_id=ARGS.process_id,
    heartbeat_timeout_seconds=10,
    initialization_timeout=60,
  )
  if ARGS.mode == "die" and ARGS.process_id == 1:
    os._exit(3)  # a host that dies mid-run: the others must fail, not hang

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import optaxdecay as od  # noqa: E402

SCHED = optax.linear_schedule(1e-2, 1e-3, 10)
MULTIPLIERS = od.decay_multipliers([("Dense_0/kernel", 1.0), ("Dense_1/kernel", 0.5)])
# name -> (mask, optimizer)
OPTIMIZERS = {
  "adamw": (
    od.bias_mask,
    lambda m: optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(SCHED, mask=m)),
  ),
  "l2": (od.bias_mask, lambda m: optax.chain(od.add_l2_to_grad(1e-3, mask=m), optax.adam(1e-2))),
  "multipliers": (
    MULTIPLIERS,
    lambda m: optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(1e-2, mask=m)),
  ),
}
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(16)(jnp.tanh(nn.Dense(64)(x)))


MODEL = MLP()


def mesh() -> Mesh:
  data, fsdp = (int(n) for n in ARGS.mesh.split("x"))
  return Mesh(np.array(jax.devices()).reshape(data, fsdp), ("data", "fsdp"))


def specs(params):
  """FSDP: the first axis of every matrix over ``fsdp``; vectors replicated."""
  return jax.tree.map(lambda x: P("fsdp") if x.ndim == 2 else P(), params)


def host_params():
  p = MODEL.init(jax.random.key(0), jnp.zeros((1, 64)))["params"]
  return jax.tree.map(lambda x: np.asarray(x) + 0.01, p)  # nonzero biases


def put(host, sh):
  """A global array from host data that every process holds: each takes its own shards."""
  return jax.tree.map(
    lambda h, s: jax.make_array_from_callback(h.shape, s, lambda idx, h=h: h[idx]), host, sh
  )


def batch(t: int):
  rng = np.random.default_rng(t)
  return rng.normal(size=(32, 64)).astype(np.float32), rng.integers(0, 16, 32).astype(np.int32)


def loss_fn(params, x, y):
  logp = jax.nn.log_softmax(MODEL.apply({"params": params}, x))
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def deterministic_grads(m: Mesh, params, x, y):
  """Backprop with a reduction order that does not depend on how devices map to processes.

  Each device computes the gradient of its batch shard (params all-gathered: an exact copy);
  the per-device gradients are all-gathered (exact) and summed in device order on every
  device. XLA's own all-reduce (``jax.grad`` of the sharded batch) sums in whatever order the
  collective implementation chooses, which differs between one process and gloo.
  """
  from jax import shard_map

  n = m.devices.size
  pspecs = specs(params)
  axes = ("data", "fsdp")

  def local(params, x, y):
    full = jax.tree.map(
      lambda w, s: jax.lax.all_gather(w, "fsdp", axis=0, tiled=True) if s == P("fsdp") else w,
      params,
      pspecs,
    )
    g = jax.grad(loss_fn)(full, x, y)
    g = jax.tree.map(lambda v: jax.lax.all_gather(v, axes).sum(axis=0) / n, g)
    idx = jax.lax.axis_index("fsdp")

    def own_shard(v, s):
      if s != P("fsdp"):
        return v
      size = v.shape[0] // m.shape["fsdp"]
      return jax.lax.dynamic_slice_in_dim(v, idx * size, size)

    return jax.tree.map(own_shard, g, pspecs)

  batch = P(axes)
  # The gathered sum is the same on every device, so the outputs are replicated over `data`.
  return shard_map(
    local, mesh=m, in_specs=(pspecs, batch, batch), out_specs=pspecs, check_vma=False
  )(params, x, y)


def grads_fn(mode, params, x, y, t):
  if mode == "elementwise":
    return jax.tree.map(lambda w: jnp.sin(3.0 * w + t), params)
  if mode == "deterministic":
    return deterministic_grads(mesh(), params, x, y)
  return jax.grad(loss_fn)(params, x, y)


def gather(tree):
  """Every leaf as a host numpy array (the global value), on every process."""
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def check_same_on_every_process(what: str, text: str) -> None:
  digest = np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.int64)
  all_digests = multihost_utils.process_allgather(digest)
  if len(set(np.asarray(all_digests).ravel().tolist())) != 1:
    raise AssertionError(f"{what} differs between processes")


def main() -> None:
  """Each run in turn, in this one process (one JAX start for several checks)."""
  specs_ = ARGS.optimizer.split(",")
  runs = [(s.partition("@")[0], s.partition("@")[2] or ARGS.mode) for s in specs_]
  for name, mode in runs:
    if name not in OPTIMIZERS or mode not in MODES:
      raise SystemExit(f"--optimizer: {name}@{mode} is not one of {list(OPTIMIZERS)} @ {MODES}")
  saving = [r for r in runs if len(runs) == 1 or r[1] == "elementwise"]
  if ARGS.ckpt and len(saving) != 1:
    raise SystemExit(f"--ckpt: one run must save it (the elementwise run); got {specs_}")
  for spec, (name, mode) in zip(specs_, runs, strict=True):
    out = ARGS.out if len(runs) == 1 or not ARGS.out else os.path.join(ARGS.out, f"{spec}.npz")
    run(name, mode, out, save=ARGS.save_at if (name, mode) in saving else -1)
  if ARGS.num_processes > 1:
    jax.distributed.shutdown()


def run(name: str, mode: str, out: str, save: int) -> None:
  m = mesh()
  mask, make = OPTIMIZERS[name]
  tx = make(mask)
  hp = host_params()
  sh = jax.tree.map(lambda s: NamedSharding(m, s), specs(hp))
  params = put(hp, sh)
  # Every process builds the same mask: the rule sees the global paths and shapes.
  check_same_on_every_process("the mask", str(od.diagnostics.describe_mask(params, mask=mask)))
  abstract = jax.eval_shape(tx.init, params)
  state_sh = optax.tree.map_params(
    tx,
    lambda _, p: p.sharding,
    abstract,
    params,
    transform_non_params=lambda _: NamedSharding(m, P()),
  )
  state = jax.jit(tx.init, out_shardings=state_sh)(params)
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if leaf.ndim and not any(
      leaf.sharding.is_equivalent_to(p.sharding, leaf.ndim)
      for p in jax.tree.leaves(params)
      if p.shape == leaf.shape
    ):
      raise AssertionError(f"state{jax.tree_util.keystr(path)} is not sharded like its param")
  update_hlo = jax.jit(tx.update).lower(params, state, params).compile().as_text()
  found = [c for c in COLLECTIVES if c in update_hlo]
  if found:
    raise AssertionError(f"collectives in the optimizer update: {found}")

  if ARGS.restore:
    import orbax.checkpoint as ocp

    target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      {"params": params, "state": state},
    )
    restored = ocp.StandardCheckpointer().restore(os.path.abspath(ARGS.restore), target)
    params, state = restored["params"], restored["state"]

  batch_sh = NamedSharding(m, P(("data", "fsdp")))

  @jax.jit
  def step(params, state, x, y, t):
    updates, state = tx.update(grads_fn(mode, params, x, y, t), state, params)
    return optax.apply_updates(params, updates), state

  for t in range(ARGS.first, ARGS.first + ARGS.steps):
    x, y = batch(t)
    params, state = step(params, state, put(x, batch_sh), put(y, batch_sh), jnp.float32(t))
    if t + 1 == save:
      import orbax.checkpoint as ocp

      ckpt = ocp.StandardCheckpointer()
      ckpt.save(os.path.abspath(ARGS.ckpt), {"params": params, "state": state})
      ckpt.wait_until_finished()

  host = gather({"params": params, "state": state})
  if out and jax.process_index() == 0:
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(host)}
    np.savez(out, **flat)
  print(
    f"OK process {jax.process_index()}/{jax.process_count()}: {jax.device_count()} devices, "
    f"mesh {dict(m.shape)}; mask identical on every process; state sharded like the params; "
    f"no collectives in the optimizer update ({name}, {mode})",
    flush=True,
  )


if __name__ == "__main__":
  sys.exit(main())
