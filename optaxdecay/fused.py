"""A single-pass AdamW step for CPU: ``fused_adamw``.

XLA:CPU compiles the composable ``optax.adamw`` step (and
``chain(adam, decoupled_weight_decay)``) into three loops over the parameters,
one for each of ``mu``, ``nu`` and the parameter, because it has no
multi-output loop fusion: 10 words of memory traffic per parameter instead of
the 7 an AdamW step needs (read ``p, g, mu, nu``; write ``p, mu, nu``).
:func:`fused_adamw` computes the same numbers chunk by chunk inside one
``lax.fori_loop`` per leaf, so each chunk is read from memory once and stays in
cache between the three updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec

from optaxdecay import _hparams, _tree
from optaxdecay.l2 import _add_l2, add_l2_to_grad

_NAME = "fused_adamw"

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

  The method :meth:`sharded_step` runs ``step`` shard by shard on a mesh.
  """

  init: optax.TransformInitFn
  update: optax.TransformUpdateFn
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
      _, decay_state, lr_state = state
      state_specs = (
        optax.ScaleByAdamState(count=PartitionSpec(), mu=param_specs, nu=param_specs),
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
  p_def = jax.tree.structure(params)
  s_def = jax.tree.structure(param_specs)
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


def _has_count(state: Any) -> bool:
  # Not hasattr: every NamedTuple (EmptyState too) has a `count` method.
  return "count" in getattr(type(state), "_fields", ())


def _schedule_count(state: Any) -> Any:
  """The count of an ``add_decayed_weights``/``scale_by_schedule`` state, or None."""
  if isinstance(state, optax.transforms.MaskedState):
    state = state.inner_state
  return state.count if _has_count(state) else None


def _advance(state: Any) -> Any:
  """That state after one update: its schedule count (if any) incremented."""
  if isinstance(state, optax.transforms.MaskedState):
    return optax.transforms.MaskedState(inner_state=_advance(state.inner_state))
  if _has_count(state):
    return type(state)(count=optax.safe_increment(state.count))
  return state


def fused_adamw(
  learning_rate: optax.ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  weight_decay: optax.ScalarOrSchedule = 1e-4,
  *,
  mask: _tree.MaskArg = None,
  l2: optax.ScalarOrSchedule = 0.0,
  chunk_size: int = 32768,
  exact: bool = True,
) -> FusedAdamW:
  r"""``optax.adamw`` with a single-pass, in-place ``step`` for CPU.

  One step, as in ``optax.adamw`` (Optax's convention: the decay is
  multiplied by the learning rate; :math:`\eta_t` and :math:`\lambda_t` may be
  schedules):

  .. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
    w_t = w_{t-1} - \eta_t \Big(
      \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}
      + \lambda_t w_{t-1} \Big),

  with the decay term only on the leaves selected by ``mask``. Equivalently,
  ``optax.chain(optax.adam(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(
  weight_decay, lr)))`` up to rounding (there the decay is not folded into the
  learning-rate product).

  With ``l2`` > 0, the L2 penalty's gradient is first added to the gradient,
  :math:`g_t \leftarrow g_t + \lambda^{L2}_t w_{t-1}` (on the leaves selected
  by ``mask``), so the step is ``optax.chain(od.add_l2_to_grad(l2, mask=mask),
  optax.adamw(...))``: Adam *with L2 regularization*, the coupled penalty that
  Adam rescales (see ``docs/theory.md``). With ``weight_decay=0`` that is
  PyTorch's ``torch.optim.Adam(weight_decay=l2)``. In a chain, ``g + l2*w``
  costs 2 extra words of memory traffic per parameter on XLA:CPU (XLA
  recomputes it in both moment loops); in the fused loop ``w``'s chunk is in
  cache already, so it reads nothing more from memory, but the added cache
  reads and arithmetic still cost time (measured in
  ``benchmarks/step_overhead.py``). ``step`` is then bit-identical to the
  chain for a constant ``l2`` and equal up to float rounding for a scheduled
  one (XLA contracts the arithmetic into fused multiply-adds differently
  inside the loop; tested).

  ``init`` and (without ``l2``) ``update`` *are* ``optax.adamw(...)``'s.
  ``step(params, grads, state)`` returns the new params and state **bit-identical** to
  ``update`` + ``optax.apply_updates``, but each leaf with at least
  ``chunk_size`` elements is processed ``chunk_size`` elements at a time in a
  ``lax.fori_loop`` (smaller leaves go through ordinary XLA fusions): the
  compiled step reads ``p, g, mu, nu`` and writes ``p, mu, nu`` once (7 words
  per parameter) instead of XLA:CPU's three passes (10 words).

  With ``exact=False`` the step instead uses the arithmetic of PyTorch's fused
  AdamW kernel, one division and one square root per parameter (the bias
  corrections and :math:`1-\eta_t\lambda_t` are folded into scalars):

  .. math::

    w_t = (1-\eta_t\lambda_t)\,w_{t-1} - \frac{\eta_t}{1-\beta_1^t}\,
      \frac{m_t}{\sqrt{v_t + \epsilon_{root}(1-\beta_2^t)}\,/\sqrt{1-\beta_2^t} + \epsilon},

  the same update up to float rounding (tested to ``rtol=1e-5`` against
  ``optax.adamw``) and cheaper when the step is compute-bound.

  When to use it (measured in ``docs/benchmarks.md``): XLA:CPU runs the loop
  on one thread, so ``step`` pays off when the process effectively has one
  core (pinned with ``taskset``, one process per core, an oversubscribed
  machine) and the optimizer step is a noticeable part of the step time:
  1.02-1.29x faster than the composable step there. On a multi-core CPU with
  few large leaves, give JAX one CPU device per core and use
  :meth:`FusedAdamW.sharded_step`; with many medium leaves, or on an idle
  multi-core CPU without that setup, the composable step is faster (its loops
  use every core). On FSDP-sharded parameters use ``sharded_step``: plain
  ``step`` makes XLA all-gather each sharded leaf. On GPU/TPU (not measured
  here) XLA's multi-output fusion should already fuse the composable step.

  Bit-identity is tested on CPU with the XLA of the JAX version this release
  was tested with; XLA's algebraic simplifier, which can round the same
  expression differently in different graphs, could break it elsewhere.

  Args:
    learning_rate: :math:`\eta`: a float or a schedule ``count -> float``.
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`, added outside the square root.
    eps_root: :math:`\epsilon_{root} \ge 0`, added inside the square root.
    weight_decay: :math:`\lambda \ge 0` (multiplied by the learning rate, as
      in ``optax.adamw``): a float or a schedule.
    mask: which leaves are decayed (and L2-penalized, with ``l2``), as in
      ``optax.adamw``: ``None`` (all), a pytree of bools or a callable
      ``params -> pytree of bools`` such as :func:`bias_mask`.
    l2: :math:`\lambda^{L2} \ge 0`, the coefficient of the L2 penalty added to
      the gradient, as in :func:`add_l2_to_grad` (default 0: none): a float
      or a schedule, evaluated on Adam's step count (0 on the first update,
      as ``add_l2_to_grad``'s own count would be).
    chunk_size: elements per loop iteration (a positive int). The four chunks
      of ``p, g, mu, nu`` should fit in the per-core L2 cache; the default
      (128 KiB per float32 chunk) does on current x86 server cores.
    exact: ``True`` (default): ``step`` is bit-identical to ``optax.adamw``.
      ``False``: PyTorch-style arithmetic, equal up to rounding.

  Returns:
    A :class:`FusedAdamW` ``(init, update, step)``.

  Raises:
    ValueError: a hyperparameter is out of range (negative or non-finite
      ``learning_rate``/``weight_decay``/``l2``/``eps``/``eps_root``, ``b1``
      or ``b2`` outside ``[0, 1)``, ``chunk_size < 1``); ``mask`` does not
      match the params; ``update`` with ``l2`` is called without ``params``.
    TypeError: a hyperparameter has the wrong type.

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
    >>> u, _ = opt.update(grads, opt.init(params), params)
    >>> bool(jnp.all(new_params['w'] == optax.apply_updates(params, u)['w']))
    True

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  _hparams.check_scalar_or_schedule(learning_rate, transform=_NAME, arg="learning_rate")
  _hparams.check_scalar_or_schedule(weight_decay, transform=_NAME, arg="weight_decay")
  _hparams.check_scalar_or_schedule(l2, transform=_NAME, arg="l2")
  for arg, value in (("b1", b1), ("b2", b2)):
    _hparams.check_number(value, fn=_NAME, arg=arg, high=1.0)
  for arg, value in (("eps", eps), ("eps_root", eps_root)):
    _hparams.check_number(value, fn=_NAME, arg=arg)
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"{_NAME}: `chunk_size` must be a positive int, got {chunk_size!r}.")
  if not isinstance(exact, bool):
    raise TypeError(f"{_NAME}: `exact` must be a bool, got {exact!r}.")
  if mask is not None and not callable(mask):
    _tree.check_mask_leaves(mask, transform=_NAME)

  tx = optax.adamw(
    learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root, weight_decay=weight_decay, mask=mask
  )
  skip_l2 = _hparams.is_static_zero(l2)
  l2_tx = add_l2_to_grad(l2, mask=mask)

  def update(
    grads: optax.Updates, state: optax.OptState, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.OptState]:
    # chain(add_l2_to_grad(l2, mask), adamw), keeping adamw's state: the L2
    # schedule's count is Adam's, which counts the same updates.
    if params is None:
      raise ValueError(
        f"{_NAME}: `update` with `l2` needs `params` (the current weights): call "
        "`update(grads, state, params)`."
      )
    l2_state = _hparams.ScheduleState(count=state[0].count) if callable(l2) else optax.EmptyState()
    grads, _ = l2_tx.update(grads, l2_state, params)
    return tx.update(grads, state, params)

  def step(
    params: optax.Params, grads: optax.Updates, state: optax.OptState
  ) -> tuple[optax.Params, optax.OptState]:
    adam_state, decay_state, lr_state = state
    count_inc = optax.safe_increment(adam_state.count)

    # The exact expressions of optax.adamw = chain(scale_by_adam,
    # add_decayed_weights, scale_by_learning_rate) + apply_updates, so that
    # XLA emits the same floating-point operations.
    decay_t = weight_decay
    if callable(weight_decay):
      decay_t = weight_decay(_schedule_count(decay_state))
    skip_decay = _hparams.is_static_zero(weight_decay)
    if callable(learning_rate):
      step_size = -1 * learning_rate(_schedule_count(lr_state))

      def scale_lr(u):
        return jnp.array(step_size, dtype=u.dtype) * u
    else:
      step_size = -1 * learning_rate

      def scale_lr(u):
        return step_size * u

    def moments(g, m, v):
      m = optax.tree.update_moment(g, m, b1, 1)
      v = optax.tree.update_moment_per_elem_norm(g, v, b2, 2)
      return m, v

    # optax.tree.bias_correction, with the scalar computed once for all leaves.
    bc1 = 1 - b1**count_inc
    bc2 = 1 - b2**count_inc

    def exact_param(p, m, v, decayed):
      m_hat = m / bc1.astype(m.dtype)
      v_hat = v / bc2.astype(v.dtype)
      u = m_hat / (jnp.sqrt(v_hat + eps_root) + eps)
      if decayed and not skip_decay:
        u = u + decay_t * p
      u = scale_lr(u)
      return jnp.asarray(p + u).astype(jnp.asarray(p).dtype)

    # exact=False: per-step scalars, then one sqrt and one division per element.
    lr_t = learning_rate(_schedule_count(lr_state)) if callable(learning_rate) else learning_rate
    alpha = lr_t / bc1
    inv_sqrt_bc2 = jax.lax.rsqrt(bc2)
    root_shift = eps_root * bc2
    keep = 1 - lr_t * decay_t

    def fast_param(p, m, v, decayed):
      dtype = jnp.asarray(p).dtype
      if not _hparams.is_static_zero(eps_root):
        v = v + root_shift.astype(v.dtype)
      denom = jnp.sqrt(v) * inv_sqrt_bc2.astype(v.dtype) + eps
      if decayed and not skip_decay:
        p = p * jnp.asarray(keep, dtype)
      return (p - jnp.asarray(alpha, dtype) * m / denom).astype(dtype)

    new_param = exact_param if exact else fast_param

    # The L2 schedule runs on Adam's count (before this update), as in update().
    l2_t = l2(adam_state.count) if callable(l2) else l2

    def penalized(g, p, decayed):
      # add_l2_to_grad's expression, on the leaves it would penalize.
      if decayed and not skip_l2:
        return _add_l2(g, p, l2_t).astype(g.dtype)
      return g

    def update_range(p, g, m, v, start, size, decayed):
      # mu and nu are written first and read back, so that no fusion reads
      # the old mu/nu after it was overwritten in place (which would force
      # XLA to copy the whole buffer).
      def piece(a):
        return jax.lax.dynamic_slice_in_dim(a, start, size)

      def put(a, x):
        return jax.lax.dynamic_update_slice_in_dim(a, x, start, 0)

      m_new, v_new = moments(penalized(piece(g), piece(p), decayed), piece(m), piece(v))
      m = put(m, m_new)
      v = put(v, v_new)
      p = put(p, new_param(piece(p), piece(m), piece(v), decayed))
      return p, m, v

    def leaf_step(p, g, m, v, decayed):
      n = p.size
      n_chunks = n // chunk_size
      if n_chunks == 0:
        m, v = moments(penalized(g, p, decayed), m, v)
        return new_param(p, m, v, decayed), m, v
      shape = p.shape
      p, g, m, v = (x.reshape(-1) for x in (p, g, m, v))

      def body(i, carry):
        p, m, v = carry
        return update_range(p, g, m, v, i * chunk_size, chunk_size, decayed)

      p, m, v = jax.lax.fori_loop(0, n_chunks, body, (p, m, v))
      tail = n - n_chunks * chunk_size
      if tail:
        p, m, v = update_range(p, g, m, v, n_chunks * chunk_size, tail, decayed)
      return p.reshape(shape), m.reshape(shape), v.reshape(shape)

    selected = _tree.resolve_mask(mask, params, transform=_NAME)
    p_leaves, treedef = jax.tree_util.tree_flatten(params)
    g_leaves = treedef.flatten_up_to(grads)
    m_leaves = treedef.flatten_up_to(adam_state.mu)
    v_leaves = treedef.flatten_up_to(adam_state.nu)
    out = [
      leaf_step(*leaves)
      for leaves in zip(p_leaves, g_leaves, m_leaves, v_leaves, selected, strict=True)
    ]
    new_params = treedef.unflatten([o[0] for o in out])
    mu = treedef.unflatten([o[1] for o in out])
    nu = treedef.unflatten([o[2] for o in out])
    new_state = (
      optax.ScaleByAdamState(count=count_inc, mu=mu, nu=optax.tree.cast_like(nu, adam_state.nu)),
      _advance(decay_state),
      _advance(lr_state),
    )
    return new_params, new_state

  return FusedAdamW(tx.init, tx.update if skip_l2 else update, step)
