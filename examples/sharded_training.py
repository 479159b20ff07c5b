"""FSDP + data-parallel training with decoupled weight decay, sharded by JAX SPMD.

Parameters are sharded along the ``fsdp`` axis of a ``(data, fsdp)`` device
mesh, each batch along both axes. The optimizer is

    optax.chain(optax.adam(lr), od.decoupled_weight_decay(rate, mask=od.bias_mask))

and needs no sharding code of its own: the decay is elementwise, so XLA keeps
each update on the device that holds its shard (no collective ops; see
``tests/test_sharding.py``). The optimizer state gets its parameters'
shardings through ``optax.tree.map_params``.

On one machine without accelerators, the script simulates ``--devices`` CPU
devices (default 8) with ``XLA_FLAGS=--xla_force_host_platform_device_count``.

    python examples/sharded_training.py            # 300 steps on sklearn digits
    python examples/sharded_training.py --smoke    # a few steps, with checks

Several processes on this one machine, as on a pod (multi-controller SPMD: one
process per "host", a global mesh over all of their devices, CPU collectives
through gloo):

    python examples/sharded_training.py --processes 2 --smoke   # 2 x 4 CPU devices

launches the processes itself, with a coordinator on a free localhost port.

Multi-host (several processes, e.g. a TPU pod slice or a GPU cluster): start
the same script on every host with ``--distributed``, e.g. on each of two GPU
hosts ``python sharded_training.py --distributed --coordinator host0:1234
--num-processes 2 --process-id <0 or 1>`` (on Cloud TPU and SLURM the three are
auto-detected and ``--distributed`` alone is enough). It then calls
``jax.distributed.initialize()`` before anything else touches JAX (the
coordinator address, process count and id are auto-detected on Cloud TPU and
SLURM, or passed as arguments / ``JAX_COORDINATOR_ADDRESS`` etc.). The mesh is
built from ``jax.devices()``, which then lists *all* hosts' devices, and each
process feeds only its own slice of the global batch with
``jax.make_array_from_process_local_data`` (done below even on one host). Save
checkpoints with ``orbax.checkpoint``, which writes each shard from the
process that owns it. Nothing in the optimizer changes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--smoke", action="store_true", help="a few steps, with assertions")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--devices", type=int, default=8, help="simulated CPU devices (single host)")
  p.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize()")
  p.add_argument(
    "--processes", type=int, default=1, help="launch this many processes on this machine"
  )
  p.add_argument("--coordinator", default=None, help="with --distributed: host:port")
  p.add_argument("--num-processes", type=int, default=None, help="with --distributed")
  p.add_argument("--process-id", type=int, default=None, help="with --distributed")
  p.add_argument("--batch", type=int, default=128, help="global batch size")
  p.add_argument("--lr", type=float, default=3e-3)
  p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW-style, x lr")
  return p.parse_args(argv)


def launch(n: int) -> int:
  """Run this script as ``n`` processes of one ``jax.distributed`` job on localhost."""
  import socket
  import subprocess

  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
  argv = [a for a in sys.argv[1:] if not a.startswith("--processes")]
  if "--processes" in sys.argv[1:]:
    i = sys.argv.index("--processes")
    argv = sys.argv[1:i] + sys.argv[i + 2 :]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={max(1, ARGS.devices // n)}"
  env["JAX_PLATFORMS"] = "cpu"
  distributed = lambda i: [
    *("--coordinator", f"127.0.0.1:{port}"),
    *("--num-processes", str(n), "--process-id", str(i)),
  ]
  procs = [
    subprocess.Popen(
      [sys.executable, os.path.abspath(__file__), *argv, "--distributed", *distributed(i)],
      env=env,
      stdout=subprocess.DEVNULL if i else None,  # process 0 speaks for all of them
      stderr=subprocess.DEVNULL if i else None,
    )
    for i in range(n)
  ]
  codes = [p.wait(timeout=600) for p in procs]
  print(f"launcher: {n} processes exited with {codes}")
  return max(codes, key=abs)


ARGS = parse_args()
if ARGS.processes > 1 and not ARGS.distributed:
  sys.exit(launch(ARGS.processes))
if not ARGS.distributed and "xla_force_host_platform_device_count" not in os.environ.get(
  "XLA_FLAGS", ""
):
  # Must happen before JAX starts: it reads XLA_FLAGS once.
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices}"
  ).strip()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

if ARGS.distributed:
  if os.environ.get("JAX_PLATFORMS") == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU-only multi-process
  jax.distributed.initialize(ARGS.coordinator, ARGS.num_processes, ARGS.process_id)

import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import optaxdecay as od


def make_mesh() -> Mesh:
  n = jax.device_count()
  data = 2 if n % 2 == 0 and n >= 4 else 1
  return Mesh(np.array(jax.devices()).reshape(data, n // data), ("data", "fsdp"))


def fsdp_spec(shape: tuple[int, ...], fsdp: int) -> P:
  """Shard the first dimension divisible by the fsdp axis size; else replicate."""
  for i, d in enumerate(shape):
    if d % fsdp == 0:
      return P(*([None] * i), "fsdp")
  return P()


def init_params(hidden: int = 128) -> dict:
  rng = np.random.default_rng(0)

  def dense(fan_in, fan_out):
    return {
      "kernel": rng.normal(0, fan_in**-0.5, (fan_in, fan_out)).astype(np.float32),
      "bias": np.zeros(fan_out, np.float32),
    }

  return {
    "Dense_0": dense(64, hidden),
    "Dense_1": dense(hidden, hidden),
    "Dense_2": dense(hidden, 10),
  }


def loss_fn(params, x, y):
  h = x
  for i in range(2):
    h = jax.nn.relu(h @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"])
  logits = h @ params["Dense_2"]["kernel"] + params["Dense_2"]["bias"]
  logp = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), logits


def main() -> None:
  from sklearn.datasets import load_digits

  mesh = make_mesh()
  fsdp = mesh.shape["fsdp"]
  host = init_params()
  param_sh = jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp)), host)
  params = jax.tree.map(jax.device_put, host, param_sh)

  lr = ARGS.lr
  tx = optax.chain(
    optax.adam(lr),
    od.decoupled_weight_decay(od.l2_to_decay_rate(ARGS.weight_decay, lr), mask=od.bias_mask),
  )
  # The optimizer state: mu/nu sharded like their parameters, counts replicated.
  state_sh = optax.tree.map_params(
    tx,
    lambda _, s: s,
    jax.eval_shape(tx.init, params),
    param_sh,
    transform_non_params=lambda _: NamedSharding(mesh, P()),
  )
  state = jax.jit(tx.init, out_shardings=state_sh)(params)

  batch_sh = NamedSharding(mesh, P(("data", "fsdp")))

  def train_step(params, state, x, y):
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  train_step = jax.jit(train_step, donate_argnums=(0, 1), out_shardings=(param_sh, state_sh, None))

  x_all, y_all = load_digits(return_X_y=True)
  x_all = (x_all / 16.0).astype(np.float32)
  y_all = y_all.astype(np.int32)
  n_train = 1500
  steps = 8 if ARGS.smoke else ARGS.steps
  rng = np.random.default_rng(1)
  # Each process loads only its slice of the global batch.
  per_process = ARGS.batch // jax.process_count()
  losses = []
  t0 = time.perf_counter()
  for step in range(steps):
    idx = rng.integers(0, n_train, ARGS.batch)
    mine = idx[jax.process_index() * per_process : (jax.process_index() + 1) * per_process]
    x = jax.make_array_from_process_local_data(batch_sh, x_all[mine])
    y = jax.make_array_from_process_local_data(batch_sh, y_all[mine])
    params, state, loss = train_step(params, state, x, y)
    losses.append(float(loss))
    if step % max(1, steps // 6) == 0 or step == steps - 1:
      print(f"step {step:4d}  loss {losses[-1]:.4f}")
  elapsed = time.perf_counter() - t0

  test_x = jax.device_put(x_all[n_train:], NamedSharding(mesh, P()))
  _, logits = jax.jit(loss_fn)(params, test_x, jnp.asarray(y_all[n_train:]))
  acc = float(jnp.mean(jnp.argmax(logits, -1) == y_all[n_train:]))
  print(
    f"{jax.device_count()} devices, mesh {dict(mesh.shape)}; {steps} steps in {elapsed:.1f}s; "
    f"held-out accuracy {acc:.3f}"
  )
  print("Dense_0/kernel sharding:", params["Dense_0"]["kernel"].sharding.spec)
  print("its Adam mu sharding:  ", state[0][0].mu["Dense_0"]["kernel"].sharding.spec)

  if ARGS.smoke:
    assert jax.device_count() >= 2, "smoke mode expects several (simulated) devices"
    assert losses[-1] < losses[0], losses
    for p, s in zip(jax.tree.leaves(params), jax.tree.leaves(param_sh), strict=True):
      assert p.sharding.is_equivalent_to(s, p.ndim), (p.sharding, s)
    mu = state[0][0].mu
    for m, s in zip(jax.tree.leaves(mu), jax.tree.leaves(param_sh), strict=True):
      assert m.sharding.is_equivalent_to(s, m.ndim), (m.sharding, s)
    print("smoke: OK")


if __name__ == "__main__":
  main()
