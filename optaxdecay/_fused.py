"""A single-pass AdamW step for CPU: ``fused_adamw``.

XLA:CPU compiles the composable ``optax.adamw`` step (and
``chain(adam, decoupled_weight_decay)``) into three loops over the parameters,
one for each of ``mu``, ``nu`` and the parameter, because it has no
multi-output loop fusion: 10 words of memory traffic per parameter instead of
the 7 an AdamW step needs (read ``p, g, mu, nu``; write ``p, mu, nu``).
:func:`fused_adamw` computes the same numbers chunk by chunk inside one
``lax.fori_loop`` per leaf, so each chunk is read from memory once and stays in
cache between the three updates.

The step is built from small functions of a checked :class:`_Config`:
``_scalars`` (the per-step scalars), ``_moments`` and ``_new_param`` (one
chunk), ``_leaf_step`` (the loop over one leaf) and ``_step`` (the tree).
The state is ``optax.adamw``'s own (``_adamw(cfg).init``); ``_split_state``,
``_count`` and ``_advance`` are the one place that reads its layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from optaxdecay import _checked, _hparams, _selection, _tree
from optaxdecay._transforms import add_l2

_NAME = "fused_adamw"
_DEFAULT_CHUNK = 32768

StepFn = Callable[
  [optax.Params, optax.Updates, optax.OptState], tuple[optax.Params, optax.OptState]
]


class FusedAdamW(NamedTuple):
  """The optimizer :func:`fused_adamw` returns.

  Attributes:
    init: ``params -> state``; exactly ``optax.adamw(...).init``, so the state
      has ``optax.adamw``'s structure, size and checkpoints.
    update: ``(grads, state, params) -> (updates, state)``; exactly
      ``optax.adamw(...).update`` (with ``l2``: that of
      ``chain(add_l2_to_grad(l2, mask=mask), optax.adamw(...))``, on
      ``optax.adamw``'s state): the composable path, for ``optax.chain``,
      ``optax.MultiSteps`` or code that calls ``optax.apply_updates`` itself.
    step: ``(params, grads, state) -> (new_params, new_state)``; the fused
      path, bit-identical to ``update`` followed by ``optax.apply_updates``.
      Jit it with ``donate_argnums`` for the params and the state so that the
      update happens in place.

  The two methods take their arguments in two orders on purpose: ``update`` is
  Optax's contract, ``(grads, state, params)``, shared by every transformation
  it chains with; ``step`` replaces a whole training step and returns new
  params, so it takes them first, as ``optax.apply_updates(params, updates)``
  and the usual ``train_step(params, ..., opt_state)`` do. A state passed in
  the other method's order is caught and the error says so.

  The method :meth:`sharded_step` runs ``step`` shard by shard on a mesh.
  """

  init: optax.TransformInitFn
  update: optax.TransformUpdateExtraArgsFn
  step: StepFn

  def sharded_step(self, mesh: jax.sharding.Mesh, param_specs: Any) -> StepFn:
    """``step`` run shard by shard on ``mesh`` with ``jax.shard_map``.

    Each device updates the shard of every leaf it holds, with its own
    chunked loop: no device reads another's shard, so the compiled step has
    **no collectives** and the devices work in parallel. The numbers are
    bit-identical to ``step`` on one device (an elementwise update does not
    care where a shard ends). The state's per-parameter leaves (``mu``,
    ``nu``) must be sharded like their parameters and its counts replicated,
    as ``optax.tree.map_params`` arranges (see ``docs/benchmarks.md``).

    Use it for FSDP-sharded parameters (plain ``step`` on them makes XLA
    all-gather each sharded leaf), and on a multi-core CPU, where XLA runs
    ``step``'s loop on one thread: start the process with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` and shard
    the parameters over those CPU devices to use every core.

    Args:
      mesh: the ``jax.sharding.Mesh`` the parameters are sharded over.
      param_specs: a pytree like the params, of ``PartitionSpec`` leaves (the
        ``spec`` of each parameter's ``NamedSharding``).

    Returns:
      ``(params, grads, state) -> (new_params, new_state)``, like ``step``;
      jit it with ``donate_argnums=(0, 2)`` to update in place.

    Raises:
      TypeError: ``mesh`` is not a ``jax.sharding.Mesh`` or a leaf of
        ``param_specs`` is not a ``PartitionSpec``.
      ValueError (when the step is called): ``param_specs`` does not have the
        params' structure, or a spec has more entries than its leaf has
        dimensions, names an axis the mesh lacks, or splits a dimension into
        unequal shards.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import optaxdecay as od
      >>> from jax.sharding import Mesh, PartitionSpec as P
      >>> mesh = Mesh(np.array(jax.devices()[:1]), ('fsdp',))  # all devices, in practice
      >>> params = {'w': jnp.linspace(-1.0, 1.0, 8), 'bias': jnp.ones(2)}
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> opt = od.fused_adamw(1e-2, weight_decay=0.1, mask=od.bias_mask, chunk_size=4)
      >>> step = jax.jit(opt.sharded_step(mesh, {'w': P('fsdp'), 'bias': P()}))
      >>> new_params, _ = step(params, grads, opt.init(params))
      >>> ref, _ = jax.jit(opt.step)(params, grads, opt.init(params))
      >>> bool(jnp.all(new_params['w'] == ref['w']))
      True
    """
    where = f"{_NAME}(...).sharded_step"
    if not isinstance(mesh, jax.sharding.Mesh):
      raise TypeError(f"{where}: `mesh` must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    for leaf in jax.tree.leaves(param_specs):
      if not isinstance(leaf, PartitionSpec):
        raise TypeError(
          f"{where}: every leaf of `param_specs` must be a jax.sharding.PartitionSpec, got "
          f"{leaf!r}; pass e.g. jax.tree.map(lambda p: p.sharding.spec, params)."
        )
    replicated = lambda tree: jax.tree.map(lambda _: PartitionSpec(), tree)

    def step(
      params: optax.Params, grads: optax.Updates, state: optax.OptState
    ) -> tuple[optax.Params, optax.OptState]:
      _check_specs(params, param_specs, mesh, where)
      _check_state(state, where=where, misplaced=grads)
      _, decay_state, lr_state = _split_state(state)
      state_specs = (
        # The specs mirror the state's structure, a PartitionSpec where the state has an array.
        optax.ScaleByAdamState(count=PartitionSpec(), mu=param_specs, nu=param_specs),  # type: ignore[arg-type]
        replicated(decay_state),
        replicated(lr_state),
      )
      return jax.shard_map(
        self.step,
        mesh=mesh,
        in_specs=(param_specs, param_specs, state_specs),
        out_specs=(param_specs, state_specs),
      )(params, grads, state)

    return step


def _check_specs(params: Any, param_specs: Any, mesh: jax.sharding.Mesh, where: str) -> None:
  """``param_specs`` matches ``params`` and splits every leaf into equal shards."""
  p_def: Any = jax.tree.structure(params)
  s_def: Any = jax.tree.structure(param_specs)
  if p_def != s_def:
    raise ValueError(
      f"{where}: `param_specs` must have the params' structure, one PartitionSpec per "
      f"leaf; got\n  params:      {p_def}\n  param_specs: {s_def}"
    )
  named, _ = _tree.flatten_with_names(params)
  for (names, p), spec in zip(named, jax.tree.leaves(param_specs), strict=True):
    at = f"`param_specs` at {_tree.path_str(names)!r} = {spec}"
    if len(spec) > p.ndim:
      raise ValueError(
        f"{where}: {at} has more entries than the leaf has dimensions (shape {p.shape})."
      )
    for dim, axes in enumerate(spec):
      names = () if axes is None else axes if isinstance(axes, tuple) else (axes,)
      unknown = [a for a in names if a not in mesh.shape]
      if unknown:
        raise ValueError(
          f"{where}: {at} names mesh axes {unknown} that the mesh (axes "
          f"{tuple(mesh.shape)}) does not have."
        )
      ways = math.prod(mesh.shape[a] for a in names)
      if p.shape[dim] % ways:
        raise ValueError(
          f"{where}: {at} splits dimension {dim} of shape {p.shape} {ways} ways, which "
          "does not divide it; shard another dimension or leave this leaf replicated "
          "(PartitionSpec())."
        )


class _Config(NamedTuple):
  """``fused_adamw``'s arguments, checked once."""

  learning_rate: Any
  b1: Any
  b2: Any
  eps: Any
  eps_root: Any
  mu_dtype: Any
  weight_decay: Any
  selection: _selection.Selection
  has_mask: bool
  nesterov: bool
  l2: Any
  chunk_size: int
  exact: bool


# ----------------------------------------------------------------------------------------------
# optax.adamw's state: chain(scale_by_adam, add_decayed_weights(mask), scale_by_learning_rate)


def _adamw(cfg: _Config) -> optax.GradientTransformation:
  """The ``optax.adamw`` whose state ``fused_adamw`` keeps (its mask decides only the layout)."""
  layout_mask = (lambda p: jax.tree.map(lambda _: True, p)) if cfg.has_mask else None
  return optax.adamw(
    cfg.learning_rate,
    cfg.b1,
    cfg.b2,
    cfg.eps,
    cfg.eps_root,
    cfg.mu_dtype,
    cfg.weight_decay,
    layout_mask,
    nesterov=cfg.nesterov,
  )


def _split_state(state: Any) -> tuple[optax.ScaleByAdamState, Any, Any]:
  """``(adam_state, decay_state, lr_state)`` of an ``optax.adamw`` state."""
  adam_state, decay_state, lr_state = state
  return adam_state, decay_state, lr_state


def _is_state(x: Any) -> bool:
  return isinstance(x, tuple) and len(x) == 3 and isinstance(x[0], optax.ScaleByAdamState)


def _check_moments(state: Any, params: Any, *, where: str) -> None:
  """The state's moments have the params' leaves (paths and shapes): it was made for them."""
  shapes = lambda tree: [
    (leaf.path, np.shape(leaf.value)) for leaf in _tree.flatten_leaves(tree)[0] if not leaf.absent
  ]
  moments, weights = shapes(state[0].mu), shapes(params)
  if moments != weights:
    first = next(
      (f"{m} vs {w}" for m, w in zip(moments, weights, strict=False) if m != w),
      f"{len(moments)} vs {len(weights)} leaves",
    )
    raise ValueError(
      f"{where}: `state` was made for other params: its moments and the params differ "
      f"(path, shape): {first}. Make it with this optimizer's `init(params)`."
    )


def _check_state(state: Any, *, where: str, misplaced: Any) -> None:
  """``state`` is ``optax.adamw``'s (what ``init`` made); else a ``TypeError`` that says what it
  is, and whether the arguments look swapped (``misplaced``: the argument a state in the other
  method's order would land on)."""
  if _is_state(state):
    return
  if isinstance(state, tuple):
    parts = ", ".join(type(x).__name__ for x in state)
    got = f"{_hparams.describe(state)}: ({parts})"
  else:
    got = _hparams.describe(state)
  hint = "make it with this optimizer's `init(params)`"
  if _is_state(getattr(state, "inner_state", None)):
    hint = "pass the optax.inject_hyperparams state's `inner_state`"
  elif _is_state(misplaced):
    hint = (
      "the arguments look swapped: `step` takes (params, grads, state), as a training step "
      "does, and `update` takes Optax's (grads, state, params)"
    )
  raise TypeError(
    f"{where}: `state` is not this optimizer's state (optax.adamw's: a tuple "
    f"(ScaleByAdamState, decay state, learning-rate state)); got {got}: {hint}."
  )


def _count(state: Any) -> Any:
  """The schedule count of a decay or learning-rate state."""
  if isinstance(state, optax.transforms.MaskedState):
    state = state.inner_state
  return state.count


def _advance(state: Any) -> Any:
  """That state after one update: its schedule count (if any) incremented."""
  if isinstance(state, optax.transforms.MaskedState):
    return optax.transforms.MaskedState(inner_state=_advance(state.inner_state))
  if isinstance(state, optax.EmptyState):
    return state
  return type(state)(count=optax.safe_increment(state.count))


def _init(cfg: _Config, params: optax.Params) -> optax.OptState:
  if any(hasattr(x, "dtype") for x in jax.tree.leaves(params)):
    cfg.selection.resolve(params)
  return _adamw(cfg).init(params)


# ----------------------------------------------------------------------------------------------
# The per-step scalars and the arithmetic of one chunk (optax.adamw's expressions, so that XLA
# emits the same floating-point operations).


class _Scalars(NamedTuple):
  count_inc: Any
  lr: Any  # eta_t
  decay: Any  # lambda_t (weight_decay)
  l2: Any
  # optax.tree.bias_correction's 1 - beta**t, computed once for all leaves as Optax does (a
  # per-leaf power would be fused into each leaf's loop and can round differently).
  bc1: Any
  bc2: Any
  bc1_next: Any  # for nesterov: 1 - b1**(t + 1)


def _scalars(cfg: _Config, state: Any) -> _Scalars:
  adam_state, decay_state, lr_state = _split_state(state)
  value = lambda v, s: v(_count(s)) if callable(v) else v
  l2 = cfg.l2(adam_state.count) if callable(cfg.l2) else cfg.l2  # L2 runs on Adam's count
  count_inc = optax.safe_increment(adam_state.count)
  lr, decay = value(cfg.learning_rate, lr_state), value(cfg.weight_decay, decay_state)
  # Under od.checked: the values an inject_hyperparams state or a schedule gives at run time.
  for arg, x in (("learning_rate", lr), ("weight_decay", decay), ("l2", l2)):
    if x is not None:
      _checked.check_range(x, fn=_NAME, arg=arg, high=None)
  return _Scalars(
    count_inc,
    lr,
    decay,
    l2,
    1 - cfg.b1**count_inc,
    1 - cfg.b2**count_inc,
    1 - cfg.b1 ** optax.safe_increment(count_inc),
  )


def _penalized(cfg: _Config, s: _Scalars, g: Any, p: Any, mult: float) -> Any:
  """``add_l2_to_grad``'s expression on the leaves it would penalize."""
  if mult == 0 or cfg.l2 is None or _hparams.is_static_zero(cfg.l2):
    return g
  return add_l2(g, p, s.l2 if mult == 1 else s.l2 * mult).astype(g.dtype)


def _moments(cfg: _Config, g: Any, m: Any, v: Any) -> tuple[Any, Any]:
  m = optax.tree.update_moment(g, m, cfg.b1, 1)
  v = optax.tree.update_moment_per_elem_norm(g, v, cfg.b2, 2)
  return m, v


def _corrected(t: Any, bc: Any) -> Any:
  """``optax.tree.bias_correction``'s division, with the scalar precomputed."""
  return t / bc.astype(t.dtype)


def _mu_hat(cfg: _Config, s: _Scalars, m: Any, g: Any) -> Any:
  if cfg.nesterov:
    return cfg.b1 * _corrected(m, s.bc1_next) + (1 - cfg.b1) * _corrected(g, s.bc1)
  return _corrected(m, s.bc1)


def _exact_param(cfg: _Config, s: _Scalars, p: Any, g: Any, m: Any, v: Any, mult: float) -> Any:
  nu_hat = _corrected(v, s.bc2)
  u = _mu_hat(cfg, s, m, g) / (jnp.sqrt(nu_hat + cfg.eps_root) + cfg.eps)
  if mult and not _hparams.is_static_zero(cfg.weight_decay):
    u = u + (s.decay if mult == 1 else s.decay * mult) * p
  # optax.scale_by_learning_rate: scale_by_schedule for a schedule, scale(-lr) otherwise.
  step_size = jnp.array(-1 * s.lr, u.dtype) if callable(cfg.learning_rate) else -1 * s.lr
  u = step_size * u
  return jnp.asarray(p + u).astype(jnp.asarray(p).dtype)


def _fast_param(cfg: _Config, s: _Scalars, p: Any, g: Any, m: Any, v: Any, mult: float) -> Any:
  """PyTorch's fused-kernel arithmetic: scalars folded, one sqrt and one division."""
  dtype = jnp.asarray(p).dtype
  bc1, bc2 = s.bc1, s.bc2
  if not _hparams.is_static_zero(cfg.eps_root):
    v = v + (cfg.eps_root * bc2).astype(v.dtype)
  denom = jnp.sqrt(v) * jax.lax.rsqrt(bc2).astype(v.dtype) + cfg.eps
  if cfg.nesterov:
    bc1_next = 1 - cfg.b1 ** optax.safe_increment(s.count_inc)
    num = (
      jnp.asarray(s.lr * cfg.b1 / bc1_next, dtype) * m
      + jnp.asarray(s.lr * (1 - cfg.b1) / bc1, dtype) * g
    )
  else:
    num = jnp.asarray(s.lr / bc1, dtype) * m
  if mult and not _hparams.is_static_zero(cfg.weight_decay):
    p = p * jnp.asarray(1 - s.lr * (s.decay if mult == 1 else s.decay * mult), dtype)
  return (p - num / denom).astype(dtype)


# ----------------------------------------------------------------------------------------------
# The loop over one leaf, and the step over the tree.


def _update_range(
  cfg: _Config, s: _Scalars, arrays: tuple[Any, ...], g: Any, start: Any, size: int, mult: float
) -> tuple[Any, Any, Any]:
  """Updates ``p, m, v`` on ``[start, start + size)`` of the flattened leaf."""
  p, m, v = arrays
  piece = lambda a: jax.lax.dynamic_slice_in_dim(a, start, size)
  put = lambda a, x: jax.lax.dynamic_update_slice_in_dim(a, x.astype(a.dtype), start, 0)
  p_in = piece(p)
  g_in = _penalized(cfg, s, piece(g), p_in, mult)
  m_new, v_new = _moments(cfg, g_in, piece(m), piece(v))
  # mu and nu are written first and read back, so that no fusion reads the old mu/nu after it
  # was overwritten in place (which would force XLA to copy the whole buffer). A mu stored in
  # another dtype (mu_dtype) is not read back: Adam uses the value before the cast.
  m, v = put(m, m_new), put(v, v_new)
  m_used = piece(m) if m.dtype == m_new.dtype else m_new
  new_param = _exact_param if cfg.exact else _fast_param
  p = put(p, new_param(cfg, s, p_in, g_in, m_used, piece(v), mult))
  return p, m, v


def _leaf_step(
  cfg: _Config, s: _Scalars, p: Any, g: Any, m: Any, v: Any, mult: float
) -> tuple[Any, Any, Any]:
  chunk = cfg.chunk_size
  n_chunks = p.size // chunk
  if n_chunks == 0:
    g = _penalized(cfg, s, g, p, mult)
    m_new, v = _moments(cfg, g, m, v)
    new_param = _exact_param if cfg.exact else _fast_param
    return new_param(cfg, s, p, g, m_new, v, mult), m_new.astype(m.dtype), v
  shape = p.shape
  p, g, m, v = (x.reshape(-1) for x in (p, g, m, v))

  def body(i: Any, carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    return _update_range(cfg, s, carry, g, i * chunk, chunk, mult)

  p, m, v = jax.lax.fori_loop(0, n_chunks, body, (p, m, v))
  tail = p.size - n_chunks * chunk
  if tail:
    p, m, v = _update_range(cfg, s, (p, m, v), g, n_chunks * chunk, tail, mult)
  return p.reshape(shape), m.reshape(shape), v.reshape(shape)


def _step(
  cfg: _Config, params: optax.Params, grads: optax.Updates, state: optax.OptState
) -> tuple[optax.Params, optax.OptState]:
  _check_state(state, where=f"{_NAME}(...).step", misplaced=grads)
  _check_moments(state, params, where=f"{_NAME}(...).step")
  adam_state, decay_state, lr_state = _split_state(state)
  s = _scalars(cfg, state)
  mults = cfg.selection.resolve(params)
  g_leaves, p_leaves, _ = _tree.align(grads, params, fn=f"{_NAME}(...).step", arg="grads")
  # The moments have the params' layout (None where a parameter is None, as optax.adamw's).
  layout = _tree.Structure(params)
  m_leaves = layout.flatten_up_to(adam_state.mu)
  v_leaves = layout.flatten_up_to(adam_state.nu)
  out = [
    (p, m, v) if _tree.is_absent(p) else _leaf_step(cfg, s, p, g, m, v, mult)
    for p, g, m, v, mult in zip(p_leaves, g_leaves, m_leaves, v_leaves, mults, strict=True)
  ]
  new_params = layout.unflatten([o[0] for o in out])
  mu, nu = (
    _tree.rebuild(tree, [o[i] for o in out]) for i, tree in ((1, adam_state.mu), (2, adam_state.nu))
  )
  adam_state = optax.ScaleByAdamState(
    count=s.count_inc,
    mu=optax.tree.cast(mu, cfg.mu_dtype),
    nu=optax.tree.cast_like(nu, adam_state.nu),
  )
  return new_params, (adam_state, _advance(decay_state), _advance(lr_state))


def _update(
  cfg: _Config, grads: optax.Updates, state: optax.OptState, params: optax.Params | None
) -> tuple[optax.Updates, optax.OptState]:
  """``optax.adamw``'s update (after ``add_l2_to_grad``'s, with ``l2``), on its state."""
  if params is None:
    raise ValueError(
      f"{_NAME}: `update` needs `params` (the current weights): call "
      "`update(grads, state, params)`."
    )
  _check_state(state, where=f"{_NAME}(...).update", misplaced=params)
  _check_moments(state, params, where=f"{_NAME}(...).update")
  adam_state, decay_state, lr_state = _split_state(state)
  s = _scalars(cfg, state)
  mults = cfg.selection.resolve(params)
  g_leaves, p_leaves, treedef = _tree.align(grads, params, fn=f"{_NAME}(...).update", arg="grads")
  g_leaves = [
    _penalized(cfg, s, g, p, m) for g, p, m in zip(g_leaves, p_leaves, mults, strict=True)
  ]
  adam = optax.scale_by_adam(
    cfg.b1, cfg.b2, cfg.eps, cfg.eps_root, mu_dtype=cfg.mu_dtype, nesterov=cfg.nesterov
  )
  u, new_adam_state = adam.update(treedef.unflatten(g_leaves), adam_state)
  if not _hparams.is_static_zero(cfg.weight_decay):
    u_leaves = treedef.flatten_up_to(u)
    u = treedef.unflatten(
      [
        g if m == 0 else g + (s.decay if m == 1 else s.decay * m) * p
        for g, p, m in zip(u_leaves, p_leaves, mults, strict=True)
      ]
    )
  lr = optax.scale_by_learning_rate(cfg.learning_rate)
  u, lr_state = lr.update(u, lr_state)
  return u, (new_adam_state, _advance(decay_state), lr_state)


def _check(
  learning_rate: Any,
  b1: Any,
  b2: Any,
  eps: Any,
  eps_root: Any,
  mu_dtype: Any,
  weight_decay: Any,
  mask: Any,
  nesterov: Any,
  l2: Any,
  chunk_size: Any,
  exact: Any,
) -> _Config:
  _hparams.check_scalar_or_schedule(learning_rate, fn=_NAME, arg="learning_rate")
  _hparams.check_scalar_or_schedule(weight_decay, fn=_NAME, arg="weight_decay")
  if l2 is not None:
    _hparams.check_scalar_or_schedule(l2, fn=_NAME, arg="l2")
  for arg, value in (("b1", b1), ("b2", b2)):
    _hparams.check_number(value, fn=_NAME, arg=arg, high=1.0)
  for arg, value in (("eps", eps), ("eps_root", eps_root)):
    _hparams.check_number(value, fn=_NAME, arg=arg)
  if chunk_size is None:
    chunk_size = _DEFAULT_CHUNK
  elif isinstance(chunk_size, jax.Array | jax.core.Tracer) and not isinstance(chunk_size, bool):
    raise TypeError(
      f"{_NAME}: `chunk_size` is an array ({chunk_size!r}); it sets the loop's shape, so it must "
      "be a Python int. Under `optax.inject_hyperparams`, pass `static_args=('chunk_size',)`."
    )
  elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"{_NAME}: `chunk_size` must be a positive int, got {chunk_size!r}.")
  return _Config(
    learning_rate,
    b1,
    b2,
    eps,
    eps_root,
    mu_dtype,
    weight_decay,
    _selection.selection(mask, fn=_NAME),
    mask is not None,
    _hparams.check_bool(nesterov, fn=_NAME, arg="nesterov"),
    l2,
    chunk_size,
    _hparams.check_bool(exact, fn=_NAME, arg="exact"),
  )


def fused_adamw(
  learning_rate: optax.ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  mu_dtype: Any | None = None,
  weight_decay: optax.ScalarOrSchedule = 1e-4,
  mask: _selection.MaskArg = None,
  *,
  nesterov: bool = False,
  l2: optax.ScalarOrSchedule | None = None,
  chunk_size: int | None = None,
  exact: bool = True,
) -> FusedAdamW:
  r"""``optax.adamw`` with a single-pass, in-place ``step`` for CPU.

  The same arguments, in the same order, as ``optax.adamw`` (``nesterov`` is
  keyword-only there too), and one step is the same (Optax's convention: the
  decay is multiplied by the learning rate; :math:`\eta_t` and
  :math:`\lambda_t` may be schedules):

  .. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
    w_t = w_{t-1} - \eta_t \Big(
      \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}
      + \mu_i \lambda_t w_{t-1} \Big),

  with :math:`\mu_i` the leaf's ``mask`` multiplier (``True`` = 1; float
  multipliers as in :func:`decoupled_weight_decay`). With ``nesterov=True``
  the first fraction uses Optax's Nesterov moment, with ``mu_dtype`` the first
  moment is stored in that dtype (as MaxText's bf16 ``mu``).

  ``init`` returns exactly ``optax.adamw(...).init``'s state (same structure,
  dtypes and checkpoints), and ``update`` is ``optax.adamw(...).update``, bit
  for bit. ``step(params, grads, state)`` returns the new
  params and state in one pass: each leaf with at least ``chunk_size``
  elements is processed ``chunk_size`` elements at a time in a
  ``lax.fori_loop`` (smaller leaves go through ordinary XLA fusions), so the
  compiled step reads ``p, g, mu, nu`` and writes ``p, mu, nu`` once (7 words
  per parameter) instead of XLA:CPU's three passes (10 words).

  **Exactness.** Inside one ``jax.jit`` on CPU, ``step`` equals ``update``
  followed by ``optax.apply_updates`` bit for bit for float32, bfloat16 and
  float64 params, with any ``mu_dtype``. Float16 params, and with
  ``nesterov=True`` the leaves that run through the loop, agree to a few units
  in the last place (XLA:CPU rounds float16 arithmetic, and contracts the
  Nesterov sum into a fused multiply-add, at other points in the loop). An
  eager ``optax.apply_updates`` rounds differently from a jitted one.

  With ``l2``, the L2 penalty's gradient is first added to the gradient,
  :math:`g_t \leftarrow g_t + \mu_i\lambda^{L2}_t w_{t-1}`, so ``update`` and
  ``step`` are ``optax.chain(od.add_l2_to_grad(l2, mask=mask),
  optax.adamw(...))`` on ``optax.adamw``'s state: Adam *with L2
  regularization* (with ``weight_decay=0``, PyTorch's
  ``torch.optim.Adam(weight_decay=l2)``). ``step`` is then bit-identical to the
  chain for a constant ``l2`` and equal up to float rounding for a scheduled
  one.

  With ``exact=False`` the step instead uses the arithmetic of PyTorch's fused
  AdamW kernel, one division and one square root per parameter (the bias
  corrections and :math:`1-\eta_t\lambda_t` are folded into scalars):

  .. math::

    w_t = (1-\eta_t\lambda_t)\,w_{t-1} - \frac{\eta_t}{1-\beta_1^t}\,
      \frac{m_t}{\sqrt{v_t + \epsilon_{root}(1-\beta_2^t)}\,/\sqrt{1-\beta_2^t} + \epsilon},

  the same update up to float rounding.

  XLA:CPU runs the loop on one thread: ``step`` pays off when the process
  effectively has one core, or with one CPU device per core through
  :meth:`FusedAdamW.sharded_step` (also the step for FSDP-sharded params,
  where plain ``step`` would all-gather); ``docs/benchmarks.md`` has the
  measurements. On GPU/TPU, XLA's multi-output fusion already fuses the
  composable step.

  **Under** ``optax.inject_hyperparams(od.fused_adamw)(...)`` (no
  ``static_args`` needed) the result is an ordinary Optax transformation: its
  ``update`` is the composable path with live hyperparameters, and it has no
  ``step``. For the fused step with injected values, build the optimizer inside
  the jitted step from them: ``od.fused_adamw(**state.hyperparams).step(params,
  grads, state.inner_state)``.

  Args:
    learning_rate: :math:`\eta`: a float or a schedule ``count -> float``.
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`, added outside the square root.
    eps_root: :math:`\epsilon_{root} \ge 0`, added inside the square root.
    mu_dtype: the dtype of the first moment ``mu`` (``None``: the params').
    weight_decay: :math:`\lambda \ge 0` (multiplied by the learning rate, as
      in ``optax.adamw``): a float or a schedule.
    mask: which leaves are decayed (and L2-penalized, with ``l2``), and how
      strongly: as for :func:`decoupled_weight_decay`.
    nesterov: use Nesterov momentum, as ``optax.adamw(nesterov=True)``.
    l2: :math:`\lambda^{L2} \ge 0`, the coefficient of the L2 penalty added to
      the gradient, as in :func:`add_l2_to_grad` (default ``None``: none): a
      float or a schedule, evaluated on Adam's step count (0 on the first
      update, as ``add_l2_to_grad``'s own count would be).
    chunk_size: elements per loop iteration (a positive int; default 32768,
      128 KiB per float32 chunk, so that the four chunks of ``p, g, mu, nu``
      fit in a current x86 core's L2 cache).
    exact: ``True`` (default): ``step`` is bit-identical to ``optax.adamw``.
      ``False``: PyTorch-style arithmetic, equal up to rounding.

  Returns:
    A :class:`FusedAdamW` ``(init, update, step)``.

  Raises:
    ValueError: a hyperparameter is out of range (negative or non-finite
      ``learning_rate``/``weight_decay``/``l2``/``eps``/``eps_root``, ``b1``
      or ``b2`` outside ``[0, 1)``, ``chunk_size < 1``); ``mask`` does not
      match the params; ``update`` is called without ``params``.
    TypeError: a hyperparameter has the wrong type (``chunk_size`` traced:
      pass ``static_args=('chunk_size',)`` to ``inject_hyperparams``).

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.linspace(-1.0, 1.0, 8), 'bias': jnp.ones(2)}
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> opt = od.fused_adamw(1e-2, weight_decay=0.1, mask=od.bias_mask, chunk_size=4)
    >>> state = opt.init(params)
    >>> new_params, state = jax.jit(opt.step)(params, grads, state)
    >>> ref = jax.jit(lambda p, g, s: optax.apply_updates(p, opt.update(g, s, p)[0]))
    >>> bool(jnp.all(new_params['w'] == ref(params, grads, opt.init(params))['w']))
    True

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  cfg = _check(
    learning_rate,
    b1,
    b2,
    eps,
    eps_root,
    mu_dtype,
    weight_decay,
    mask,
    nesterov,
    l2,
    chunk_size,
    exact,
  )

  def update(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, optax.OptState]:
    del extra_args  # optax.GradientTransformationExtraArgs: extra arguments are accepted, unused
    return _update(cfg, updates, state, params)

  return FusedAdamW(
    lambda params: _init(cfg, params),
    update,
    lambda params, grads, state: _step(cfg, params, grads, state),
  )
