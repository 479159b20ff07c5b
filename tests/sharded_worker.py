"""SPMD checks on 8 simulated CPU devices, run by ``tests/test_sharding.py``.

XLA reads ``--xla_force_host_platform_device_count`` once, when JAX starts, so
these checks cannot run in the pytest process (which has already started JAX
with one device). ``test_sharding.py`` runs this file in a subprocess::

  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
    python tests/sharded_worker.py [--checkpoint-dir DIR]

and asserts on the JSON object printed on the last line of stdout:
``{"checks": {name: {"ok": bool, "detail": str}}}``. Each check is
independent: one failing does not stop the others.

The setup is FSDP-style: parameters sharded along the ``fsdp`` axis of a
``(data=2, fsdp=4)`` mesh (one leaf on its second dimension, one replicated),
batches sharded along both axes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# Run from a checkout without installing: the package is one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optaxdecay as od

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all")
SCHED = optax.linear_schedule(1e-2, 1e-3, 10)

CHECKS: dict[str, dict] = {}


def check(name: str) -> Callable:
  """Registers ``fn`` as a check; it returns a detail string or raises."""

  def wrap(fn: Callable[[], str]) -> Callable[[], str]:
    def run() -> None:
      try:
        CHECKS[name] = {"ok": True, "detail": fn() or ""}
      except Exception as e:  # a failed check is reported, not fatal
        CHECKS[name] = {
          "ok": False,
          "detail": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}",
        }

    run.check_name = name
    REGISTRY.append(run)
    return fn

  return wrap


REGISTRY: list[Callable[[], None]] = []


def mesh() -> Mesh:
  return Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "fsdp"))


SPECS = {
  "Dense_0": {"kernel": P("fsdp", None), "bias": P("fsdp")},
  "Dense_1": {"kernel": P(None, "fsdp"), "bias": P()},
}


def host_params() -> dict:
  rng = np.random.default_rng(0)
  f = lambda *s: rng.normal(0, 0.3, s).astype(np.float32)
  return {
    "Dense_0": {"kernel": f(64, 32), "bias": f(32)},
    "Dense_1": {"kernel": f(32, 16), "bias": f(16)},
  }


def shardings(m: Mesh) -> dict:
  return jax.tree.map(lambda s: NamedSharding(m, s), SPECS, is_leaf=lambda x: isinstance(x, P))


def put(tree, shard_tree):
  return jax.tree.map(jax.device_put, tree, shard_tree)


def single(tree):
  return jax.device_put(tree, jax.devices()[0])


TRANSFORMS = {
  "add_l2_to_grad": lambda: od.add_l2_to_grad(1e-2, mask=od.bias_mask),
  "add_l2_to_grad(schedule)": lambda: od.add_l2_to_grad(SCHED, mask=od.bias_mask),
  "decoupled_weight_decay": lambda: od.decoupled_weight_decay(1e-2, mask=od.bias_mask),
  "decoupled_weight_decay(schedule)": lambda: od.decoupled_weight_decay(SCHED, mask=od.bias_mask),
  "decoupled_weight_decay(cautious)": lambda: od.decoupled_weight_decay(
    1e-2, mask=od.bias_mask, cautious=True
  ),
  "proximal_weight_decay(schedule)": lambda: od.proximal_weight_decay(SCHED, mask=od.bias_mask),
  # The anchor is per-parameter state: it must be sharded like the params (FSDP) and stay so.
  "decoupled_weight_decay(anchor)": lambda: od.decoupled_weight_decay(1e-2, anchor="init"),
  "add_l2_to_grad(anchor, schedule)": lambda: od.add_l2_to_grad(SCHED, anchor="init"),
  "chain(add_l2_to_grad, adam)": lambda: optax.chain(
    od.add_l2_to_grad(SCHED, mask=od.bias_mask), optax.adam(1e-3)
  ),
  "chain(adam, decoupled_weight_decay)": lambda: optax.chain(
    optax.adam(1e-3), od.decoupled_weight_decay(SCHED, mask=od.bias_mask)
  ),
  "chain(sgd(momentum), decoupled_weight_decay)": lambda: optax.chain(
    optax.sgd(1e-2, momentum=0.9), od.decoupled_weight_decay(1e-3, mask=od.bias_mask)
  ),
}


def collectives_in(hlo: str) -> list[str]:
  return sorted({op for op in COLLECTIVES if re.search(rf"\b{op}(-start)?\(", hlo)})


def assert_same_shardings(out, ref, what: str) -> None:
  """Every leaf of ``out`` has the sharding of ``ref``'s leaf (an array or a sharding)."""
  is_sharding = lambda x: isinstance(x, jax.sharding.Sharding)
  for (path, a), b in zip(
    jax.tree_util.tree_leaves_with_path(out),
    jax.tree.leaves(ref, is_leaf=is_sharding),
    strict=True,
  ):
    want = b if is_sharding(b) else b.sharding
    if not a.sharding.is_equivalent_to(want, a.ndim):
      raise AssertionError(
        f"{what}{jax.tree_util.keystr(path)}: sharding {a.sharding} != input's {want}"
      )


def init_sharded(tx, params, m: Mesh):
  """``tx.init`` under jit with the state's shardings derived from the params'.

  The usual FSDP recipe: ``optax.tree.map_params`` gives every per-parameter
  state leaf its parameter's sharding; counts are replicated.
  """
  abstract = jax.eval_shape(tx.init, params)
  state_shardings = optax.tree.map_params(
    tx,
    lambda _, p: p.sharding,
    abstract,
    params,
    transform_non_params=lambda _: NamedSharding(m, P()),
  )
  return jax.jit(tx.init, out_shardings=state_shardings)(params)


def assert_state_sharded_like_params(state, params, m: Mesh) -> None:
  """Per-parameter state leaves are sharded like their parameter; scalars replicated."""
  by_shape = {}
  for p in jax.tree.leaves(params):
    by_shape.setdefault(p.shape, []).append(p.sharding)
  replicated = NamedSharding(m, P())
  for path, x in jax.tree_util.tree_leaves_with_path(state):
    if x.ndim == 0:
      ok = x.sharding.is_equivalent_to(replicated, 0)
    else:
      ok = any(x.sharding.is_equivalent_to(s, x.ndim) for s in by_shape.get(x.shape, []))
    if not ok:
      raise AssertionError(f"state{jax.tree_util.keystr(path)}: unexpected sharding {x.sharding}")


def assert_trees_equal(a, b, what: str, max_ulp: int = 0) -> None:
  """Bit-identical leaves (``max_ulp=0``), or within ``max_ulp`` units in the last place."""
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype:
      raise AssertionError(f"{what}{jax.tree_util.keystr(path)}: dtype {x.dtype} != {y.dtype}")
    if np.issubdtype(x.dtype, np.floating) and max_ulp:
      np.testing.assert_array_max_ulp(x, y, maxulp=max_ulp)
    elif not np.array_equal(x, y):
      raise AssertionError(
        f"{what}{jax.tree_util.keystr(path)} differs: max |diff| = "
        f"{np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))}"
      )


# proximal_weight_decay divides by the traced scalar 1 + r_t. XLA's algebraic
# simplifier turns `x / s` into `x * (1/s)` in some graphs and not in others, so
# the sharded and the single-device programs may round it 1 ulp apart (the same
# happens between jit and eager). Every other transform here is bit-identical.
MAX_ULP = {"proximal_weight_decay(schedule)": 1}


def make_transform_check(name: str, factory: Callable[[], optax.GradientTransformation]) -> None:
  @check(f"transform:{name}")
  def _() -> str:
    m = mesh()
    sh = shardings(m)
    tx = factory()
    hp = host_params()
    params = put(hp, sh)
    grads = put(jax.tree.map(lambda x: np.sin(3 * x), hp), sh)
    state = init_sharded(tx, params, m)
    assert_state_sharded_like_params(state, params, m)
    update = jax.jit(tx.update)
    compiled = update.lower(grads, state, params).compile()
    found = collectives_in(compiled.as_text())
    if found:
      raise AssertionError(f"collective ops in the compiled update: {found}")
    ref_state = single(tx.init(single(hp)))
    s_state = state
    for t in range(3):
      updates, new_state = update(grads, s_state, params)
      assert_same_shardings(updates, grads, "updates")
      assert_same_shardings(new_state, s_state, "state")
      ref_updates, ref_state = jax.jit(tx.update)(
        single(jax.tree.map(np.asarray, grads)), ref_state, single(hp)
      )
      ulp = MAX_ULP.get(name, 0)
      assert_trees_equal(updates, ref_updates, f"step {t}: updates", max_ulp=ulp)
      assert_trees_equal(new_state, ref_state, f"step {t}: state")
      s_state = new_state
    same = "bit-identical to" if not MAX_ULP.get(name) else f"within {MAX_ULP[name]} ulp of"
    return f"no collectives; shardings kept; {same} 1 device over 3 updates"


for _name, _factory in TRANSFORMS.items():
  make_transform_check(_name, _factory)


# --- data-parallel + FSDP training ---------------------------------------------------


def digits_batches(n_steps: int, batch: int = 64):
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  y = y.astype(np.int32)
  idx = np.arange(n_steps * batch) % len(x)
  return x[idx].reshape(n_steps, batch, 64), y[idx].reshape(n_steps, batch)


def loss_fn(params, x, y):
  h = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
  h = h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]
  logits = h[:, :10]
  logp = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def make_train_step(tx):
  def step(params, state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  return step


TRAIN_TXS = {
  "chain(adam, decoupled_weight_decay(schedule))": lambda: optax.chain(
    optax.adam(1e-2), od.decoupled_weight_decay(SCHED, mask=od.bias_mask)
  ),
  "chain(add_l2_to_grad, sgd(momentum))": lambda: optax.chain(
    od.add_l2_to_grad(1e-3, mask=od.bias_mask), optax.sgd(0.1, momentum=0.9)
  ),
}


def run_sharded(tx, steps: int, m: Mesh, start=None, step=None, first: int = 0):
  """``steps`` FSDP+DP train steps on batches ``first, first+1, ...``."""
  sh = shardings(m)
  batch_sh = NamedSharding(m, P(("data", "fsdp")))
  xs, ys = digits_batches(first + steps)
  if start is None:
    params = put(host_params(), sh)
    state = init_sharded(tx, params, m)
    assert_state_sharded_like_params(state, params, m)
  else:
    params, state = start
  if step is None:
    step = jax.jit(make_train_step(tx), donate_argnums=(0, 1))
  losses = []
  for t in range(first, first + steps):
    x = jax.device_put(xs[t], batch_sh)
    y = jax.device_put(ys[t], batch_sh)
    params, state, loss = step(params, state, x, y)
    assert_same_shardings(params, sh, f"step {t}: params")
    assert_state_sharded_like_params(state, params, m)
    losses.append(float(loss))
  return params, state, losses


def make_training_check(name: str, factory) -> None:
  @check(f"training:{name}")
  def _() -> str:
    steps = 5
    m = mesh()
    tx = factory()
    params, state, losses = run_sharded(tx, steps, m)
    # Positive control for the collective detector: the *training* step needs
    # them (the gradient sums over the data-parallel batch shards).
    sh = shardings(m)
    p0 = put(host_params(), sh)
    batch_sh = NamedSharding(m, P(("data", "fsdp")))
    xs, ys = digits_batches(1)
    hlo = (
      jax.jit(make_train_step(tx))
      .lower(
        p0,
        init_sharded(tx, p0, m),
        jax.device_put(xs[0], batch_sh),
        jax.device_put(ys[0], batch_sh),
      )
      .compile()
      .as_text()
    )
    if not collectives_in(hlo):
      raise AssertionError("no collectives found in the sharded train step: detector broken?")
    # The same steps on one device.
    xs, ys = digits_batches(steps)
    p1 = single(host_params())
    s1 = tx.init(p1)
    step = jax.jit(make_train_step(tx))
    ref_losses = []
    for t in range(steps):
      p1, s1, loss = step(p1, s1, single(xs[t]), single(ys[t]))
      ref_losses.append(float(loss))
    # The gradient's cross-device sums may add in another order: compare with
    # a float32 tolerance here; the transforms alone are bit-exact (above).
    for a, b in zip(jax.tree.leaves((params, state)), jax.tree.leaves((p1, s1)), strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    if not losses[-1] < losses[0]:
      raise AssertionError(f"loss did not decrease: {losses}")
    moved = max(
      float(np.max(np.abs(np.asarray(a) - b)))
      for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(host_params()), strict=True)
    )
    if moved < 1e-3:
      raise AssertionError("parameters did not move; the comparison would be vacuous")
    return f"{steps} FSDP+DP steps match 1 device; losses {losses[0]:.4f} -> {losses[-1]:.4f}"


for _name, _factory in TRAIN_TXS.items():
  make_training_check(_name, _factory)


# --- checkpoints of sharded state --------------------------------------------------


_RESUME: dict = {}


def _resume_and_compare(restore: Callable, label: str) -> str:
  """Stop at step k, restore with ``restore(params, state)``, continue; compare."""
  total, k = 6, 3
  m = mesh()
  if not _RESUME:  # one optimizer, compiled step and uninterrupted run for both formats
    tx = TRAIN_TXS["chain(adam, decoupled_weight_decay(schedule))"]()
    step = jax.jit(make_train_step(tx), donate_argnums=(0, 1))
    _RESUME.update(tx=tx, step=step, full=run_sharded(tx, total, m, step=step))
  tx, step = _RESUME["tx"], _RESUME["step"]
  full_params, full_state, full_losses = _RESUME["full"]
  # Interrupted: k steps, checkpoint, restore, then the remaining steps.
  params, state, losses_a = run_sharded(tx, k, m, step=step)
  params, state = restore(params, state)
  assert_same_shardings(params, shardings(m), "restored params")
  params, state, losses_b = run_sharded(tx, total - k, m, start=(params, state), step=step, first=k)
  assert_trees_equal((params, state), (full_params, full_state), f"{label}: resumed run ")
  if losses_a + losses_b != full_losses:
    raise AssertionError(f"losses differ: {losses_a + losses_b} vs {full_losses}")
  count = state[1].count
  return f"stopped at {k}, resumed to {total}: bit-identical (schedule count {int(count)})"


@check("checkpoint:orbax(sharded)")
def _orbax() -> str:
  try:
    import orbax.checkpoint as ocp
  except ImportError:
    return "SKIP: orbax.checkpoint is not installed"
  directory = Path(ARGS.checkpoint_dir or tempfile.mkdtemp()) / "orbax"

  def restore(params, state):
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(directory, {"params": params, "opt_state": state})
    ckpt.wait_until_finished()
    target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      {"params": params, "opt_state": state},
    )
    restored = ckpt.restore(directory, target)
    assert_same_shardings(restored["opt_state"], state, "restored state")
    return restored["params"], restored["opt_state"]

  return _resume_and_compare(restore, "orbax")


@check("checkpoint:msgpack(sharded)")
def _msgpack() -> str:
  try:
    from flax import serialization
  except ImportError:
    return "SKIP: flax is not installed"

  def restore(params, state):
    blob = serialization.to_bytes({"params": params, "opt_state": state})
    template = {"params": params, "opt_state": state}
    host = serialization.from_bytes(template, blob)
    # msgpack holds host arrays: put each leaf back with its old sharding.
    restored = jax.tree.map(lambda h, x: jax.device_put(h, x.sharding), host, template)
    return restored["params"], restored["opt_state"]

  return _resume_and_compare(restore, "msgpack")


@check("fused_adamw(sharded)")
def _fused() -> str:
  """fused_adamw.step on FSDP-sharded params: same numbers, but not collective-free."""
  m = mesh()
  sh = shardings(m)
  opt = od.fused_adamw(1e-2, weight_decay=0.1, mask=od.bias_mask, chunk_size=128)
  hp = host_params()
  params = put(hp, sh)
  grads = put(jax.tree.map(lambda x: np.sin(3 * x), hp), sh)
  state = init_sharded(opt, params, m)
  step = jax.jit(opt.step)
  found = collectives_in(step.lower(params, grads, state).compile().as_text())
  new_params, new_state = step(params, grads, state)
  p1 = single(hp)
  ref_params, ref_state = jax.jit(opt.step)(
    p1, single(jax.tree.map(np.asarray, grads)), opt.init(p1)
  )
  assert_trees_equal((new_params, new_state), (ref_params, ref_state), "fused step ")
  return f"bit-identical to 1 device; collectives in its HLO: {found or 'none'}"


@check("fused_adamw(sharded_step)")
def _fused_sharded() -> str:
  """fused_adamw.sharded_step: each device updates its own shards, nothing is gathered."""
  m = mesh()
  sh = shardings(m)
  opt = od.fused_adamw(
    optax.linear_schedule(1e-2, 1e-3, 5), weight_decay=0.1, mask=od.bias_mask, chunk_size=128
  )
  hp = host_params()
  params = put(hp, sh)
  state = init_sharded(opt, params, m)
  step = jax.jit(opt.sharded_step(m, SPECS), donate_argnums=(0, 2))
  p1, s1 = single(hp), opt.init(single(hp))
  ref_step = jax.jit(opt.step)
  found = None
  for t in range(3):
    g_host = jax.tree.map(lambda x, t=t: np.sin(3 * np.asarray(x) + t), hp)
    grads = put(g_host, sh)
    if found is None:
      found = collectives_in(step.lower(params, grads, state).compile().as_text())
      if found:
        raise AssertionError(f"sharded_step's compiled HLO has collectives: {found}")
    in_shardings = jax.tree.map(lambda x: x.sharding, (params, state))
    params, state = step(params, grads, state)
    assert_same_shardings((params, state), in_shardings, "sharded_step output ")
    p1, s1 = ref_step(p1, single(g_host), s1)
    hp = jax.tree.map(np.asarray, params)
    assert_trees_equal((params, state), (p1, s1), f"sharded_step, update {t} ")
  # A spec that does not divide its dimension is refused, naming the leaf.
  bad = {"w": P("fsdp")}
  try:
    opt.sharded_step(m, bad)({"w": np.ones(6, np.float32)}, {"w": np.ones(6, np.float32)}, None)
  except ValueError as e:
    expected = r"`param_specs` at 'w' = .* splits dimension 0 of shape \(6,\) 4 ways"
    if not re.search(expected, str(e)):
      raise AssertionError(f"unexpected message: {e}") from e
  else:
    raise AssertionError("a 4-way split of 6 elements was accepted")
  return "no collectives; shardings kept; bit-identical to 1 device over 3 updates"


@check("devices")
def _devices() -> str:
  n = jax.device_count()
  if n != 8:
    raise AssertionError(f"expected 8 simulated devices, got {n}: XLA_FLAGS not applied?")
  return f"{n} x {jax.devices()[0].platform}"


ARGS = argparse.Namespace(checkpoint_dir=None)


def main() -> None:
  global ARGS
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--checkpoint-dir", default=None)
  parser.add_argument("--only", default=None, help="regex: run the matching checks only")
  ARGS = parser.parse_args()
  for run in REGISTRY:
    if ARGS.only is None or re.search(ARGS.only, run.check_name):
      run()
  print(json.dumps({"checks": CHECKS}))


if __name__ == "__main__":
  main()
