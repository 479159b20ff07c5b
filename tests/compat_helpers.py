"""Shared by the ``test_compat_*`` modules: the test problem, the trajectories of the real
frameworks and of ours, and the comparisons.

Every comparison runs ``STEPS`` updates on the same random noisy quadratic
(``g = h * p + noise[step]``, the gradient taken at the current parameters), with a constant
learning rate and with a schedule that rises then falls. The ``torch``, ``keras`` and ``x64``
fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay.testing import assert_equivalent, assert_not_equivalent, compare, trajectory

STEPS = 30


ATOL32 = 1e-5  # float32, against the real frameworks


ATOL64 = 1e-10  # float64, against hand-written references


def lr_factor(k):
  """A warmup-then-decay multiplier; works on Python numbers and JAX arrays."""
  return (1.0 + k) / (1.0 + 0.1 * k * k)


def schedule(base):
  """The Optax counterpart of ``LambdaLR(opt, lr_factor)`` with ``base_lr=base``."""
  return lambda count: base * lr_factor(count)


def problem(dtype=np.float32, seed=0, shapes=None):
  rng = np.random.default_rng(seed)
  shapes = shapes or {"w": (3, 4), "bias": (4,)}
  params = {k: (0.5 * rng.normal(size=s)).astype(dtype) for k, s in shapes.items()}
  curv = {k: rng.uniform(0.5, 2.0, size=s).astype(dtype) for k, s in shapes.items()}
  noise = {k: rng.normal(size=(STEPS, *s)).astype(dtype) for k, s in shapes.items()}

  def grad_np(p, step):
    return {k: curv[k] * p[k] + noise[k][step] for k in p}

  def grad_fn(p, step):
    return {k: jnp.asarray(curv[k]) * p[k] + jnp.asarray(noise[k])[step] for k in p}

  return params, grad_np, grad_fn


def our_traj(tx, params, grad_fn):
  """Our trajectory: one jitted step (update, then apply) called once per step.

  Eager dispatch of a ``MultiSteps``/``lax.cond`` optimizer costs seconds per test; one small
  compile per test costs a fraction of one, and it is the path users run.
  """
  p = jax.tree.map(jnp.asarray, params)

  @jax.jit
  def step_fn(p, state, step):
    updates, state = tx.update(grad_fn(p, step), state, p)
    return optax.apply_updates(p, updates), state

  state = tx.init(p)
  out = {k: [] for k in p}
  for step in range(STEPS):
    p, state = step_fn(p, state, jnp.int32(step))
    for k in p:
      out[k].append(np.asarray(p[k]))
  return {k: np.stack(v) for k, v in out.items()}


def max_err(a, b):
  return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - b[k]))) for k in a)


def check(name, ours, ref, atol):
  err = max_err(ours, ref)
  moved = max_err(ref, {k: np.broadcast_to(ref[k][0], ref[k].shape) for k in ref})
  print(f"{name}: max abs error {err:.2e} over {STEPS} steps (params moved {moved:.2f})")
  assert err <= atol, f"{name}: max abs error {err:.3e} > {atol}"


def torch_traj(torch, make_opt, params, grad_np, lr_lambda=None, before_step=None):
  """PyTorch's trajectory; ``make_opt`` returns one optimizer or a list stepped together, and
  ``before_step(params)`` runs between the gradients and the step (e.g. ``clip_grad_norm_``)."""
  tp = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
  made = make_opt(tp)
  opts = made if isinstance(made, list) else [made]
  scheds = [torch.optim.lr_scheduler.LambdaLR(o, lr_lambda) for o in opts] if lr_lambda else []
  out = {k: [] for k in tp}
  for step in range(STEPS):
    grads = grad_np({k: p.detach().numpy().copy() for k, p in tp.items()}, step)
    for k, p in tp.items():
      p.grad = torch.from_numpy(np.asarray(grads[k]))
    if before_step is not None:
      before_step(list(tp.values()))
    for o in opts:
      o.step()
    for s in scheds:
      s.step()
    for k, p in tp.items():
      out[k].append(p.detach().numpy().copy())
  return {k: np.stack(v) for k, v in out.items()}


def keras_schedule(keras, base):
  class Sched(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
      return base * lr_factor(keras.ops.cast(step, "float32"))

  return Sched()


def keras_traj(keras, opt, params, grad_np, exclude=None):
  """The real Keras optimizer's trajectory: ``opt.stateless_apply`` (the function Keras' own JAX
  trainer jits, i.e. the same code as ``opt.apply``) under ``jax.jit``, one call per step: the
  eager ``apply`` costs about a second a step on these cores, the jitted one a compile."""
  names = list(params)
  variables = [keras.Variable(params[k], name=k) for k in names]
  if exclude:
    opt.exclude_from_weight_decay(var_names=exclude)
  opt.build(variables)
  state = [v.value for v in opt.variables]
  train = [v.value for v in variables]
  step_fn = jax.jit(opt.stateless_apply)
  out = {k: [] for k in names}
  for step in range(STEPS):
    grads = grad_np({k: np.asarray(v) for k, v in zip(names, train, strict=True)}, step)
    train, state = step_fn(state, [jnp.asarray(grads[k]) for k in names], train)
    for k, v in zip(names, train, strict=True):
      out[k].append(np.asarray(v))
  return {k: np.stack(v) for k, v in out.items()}


def equivalent(tx_a, tx_b):
  params, _, grad_fn = problem(seed=3)
  div = assert_equivalent(
    tx_a, tx_b, jax.tree.map(jnp.asarray, params), grad_fn, STEPS, rtol=1e-5, atol=1e-6
  )
  print(f"max abs difference {div.max_abs:.2e}")


def all_equivalent(*txs, rtol=1e-5, atol=1e-6):
  """Like assert_equivalent for several optimizers, each compiled once."""
  params, _, grad_fn = problem(seed=3)
  params = jax.tree.map(jnp.asarray, params)
  trajs = [trajectory(tx, params, grad_fn, STEPS) for tx in txs]
  for i, traj in enumerate(trajs[1:], 1):
    div = compare(trajs[0], traj, rtol=rtol, atol=atol)
    assert div.step is None, f"optimizer {i} diverges after step {div.step} at {div.path}: {div}"
    print(f"optimizer {i}: max abs difference {div.max_abs:.2e}")


def diverge(tx_a, tx_b):
  params, _, grad_fn = problem(seed=4)
  div = assert_not_equivalent(
    tx_a, tx_b, jax.tree.map(jnp.asarray, params), grad_fn, STEPS, rtol=1e-4, atol=1e-5
  )
  print(f"first diverges after step {div.step} at {div.path!r}; max abs {div.max_abs:.2e}")


def ref_loop(params, grad_np, step_fn, state):
  """Runs ``p, state = step_fn(p, g, t, state)`` (t = 1, 2, ...) in float64."""
  p = {k: v.astype(np.float64) for k, v in params.items()}
  out = {k: [] for k in p}
  for step in range(STEPS):
    g = grad_np(p, step)
    p, state = step_fn(p, g, step + 1, state)
    for k in p:
      out[k].append(p[k].copy())
  return {k: np.stack(v) for k, v in out.items()}


def zeros64(params):
  return {k: np.zeros(v.shape, np.float64) for k, v in params.items()}


def adam_moments(state, g, b1, b2):
  m = {k: b1 * state["m"][k] + (1 - b1) * g[k] for k in g}
  v = {k: b2 * state["v"][k] + (1 - b2) * g[k] ** 2 for k in g}
  return {"m": m, "v": v}


def warmup(base):
  """Starts at 0: Composer's ratio then needs an explicit initial_lr."""
  return lambda count: base * count / (count + 3.0)


def missing_arguments(cls, factory, skip):
  import inspect

  theirs = set(inspect.signature(cls).parameters) - {"self", "params", "kwargs"}
  return sorted(theirs - set(inspect.signature(factory).parameters) - skip)


SGD_CASES = {
  "plain": dict(momentum=0.0, dampening=0.0, nesterov=False),
  "momentum": dict(momentum=0.9, dampening=0.0, nesterov=False),
  "dampening": dict(momentum=0.9, dampening=0.5, nesterov=False),
  "nesterov": dict(momentum=0.9, dampening=0.0, nesterov=True),
}


def muon_labels(params):
  return jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adamw", params)
