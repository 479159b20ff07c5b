"""The decay and L2 transforms and the leafwise engine they share.

Every transform here is ``u_i <- leaf_fn(u_i, w_i, m_i * c_t)`` on the leaves
its mask selects, with ``m_i`` the leaf's multiplier (``True`` = 1) and ``c_t``
a constant or a schedule evaluated on the transform's own step count. Leaves
with multiplier 0, and absent leaves, pass through untouched at no cost. A new
transform of this kind is a public factory here that checks its arguments and
calls :func:`_leafwise` with its ``leaf_fn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _anchor, _checked, _hparams, _rates, _selection, _tree

LeafFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def _leafwise(
  *,
  fn: str,
  arg: str,
  value: optax.ScalarOrSchedule,
  selection: _selection.Selection,
  leaf_fn: LeafFn,
  high: float | None = None,
  anchor: _anchor.Anchor = None,
  per_step: bool = False,
) -> optax.GradientTransformation:
  """The transform, from already-checked arguments; see the public factories.

  ``value`` times each leaf's multiplier must stay below ``high`` (checked now for a static
  mask, at ``init`` for a mask function, and at every step under :func:`checked`); with
  ``per_step``, ``value`` is a user's per-step rate, and an implausible one warns
  (:func:`~optaxdecay._hparams.warn_per_step_rate`). With an ``anchor``, ``leaf_fn`` sees the
  displacement ``w - w0`` instead of ``w``, and the state is an
  :class:`~optaxdecay.AnchorState` that keeps ``w0``.
  """
  if selection.static:
    _check_strength(value, selection.largest(), fn=fn, arg=arg, high=high, per_step=per_step)

  def init_fn(params: optax.Params) -> optax.OptState:
    if not _has_values(params):  # optax.tree.map_params' placeholder: params-shaped state
      if anchor is None:
        return _hparams.init_state(value)
      return _anchor.AnchorState(jnp.zeros([], jnp.int32), params)
    mults = selection.resolve(params)
    if not selection.static:
      largest = selection.largest(params)
      _check_strength(value, largest, fn=fn, arg=arg, high=high, per_step=per_step)
    if anchor is None:
      return _hparams.init_state(value)
    return _anchor.AnchorState(
      jnp.zeros([], jnp.int32), _anchor.init_anchor(anchor, params, mults, fn=fn)
    )

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
  ) -> tuple[optax.Updates, optax.OptState]:
    if params is None:
      raise ValueError(
        f"{fn}: `update` needs `params` (the current weights): call "
        "`tx.update(grads, state, params)`."
      )
    step = _hparams.current_value if anchor is None else _anchor.current_value
    coef, new_state = step(value, state)
    if updates is None or _hparams.is_static_zero(value):
      return updates, new_state
    mults = selection.resolve(params)
    u_leaves, p_leaves, treedef = _tree.align(updates, params, fn=fn)
    if anchor is not None:
      w0s = _anchor.anchor_leaves(new_state, len(p_leaves), fn=fn)
      p_leaves = [w if w0 is None else w - w0 for w, w0 in zip(p_leaves, w0s, strict=True)]
    top = max(mults, default=0.0)
    if top in (0.0, 1.0):
      _checked.check_range(coef, fn=fn, arg=arg, high=high if top else None)
    else:
      _checked.check_range(coef, fn=fn, arg=arg, high=None)
      _check_scaled(coef, top, fn=fn, arg=arg, high=high)
    out = [
      u
      if m == 0 or _tree.is_absent(u)
      else cast_like(leaf_fn(u, w, coef if m == 1 else coef * m), u)
      for u, w, m in zip(u_leaves, p_leaves, mults, strict=True)
    ]
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def cast_like(x: Any, like: Any) -> jax.Array:
  """``x`` in ``like``'s dtype (a Python-number ``like``: JAX's weak type for it)."""
  return jnp.asarray(x, dtype=getattr(like, "dtype", None))


def _check_strength(
  value: Any, largest: tuple[float, str], *, fn: str, arg: str, high: float | None, per_step: bool
) -> None:
  """``value`` times the largest multiplier is in range (a schedule: at step 0), and, for a
  user's per-step rate, not implausibly large (a warning)."""
  top, path = largest
  if top == 0:
    return  # nothing is selected: the transform is the identity
  if high is not None:
    x0 = value(jnp.zeros([], jnp.int32)) if callable(value) else value
    if not isinstance(x0, jax.core.Tracer):
      _check_scaled(float(np.asarray(x0)), top, fn=fn, arg=arg, high=high, path=path)
  if per_step:
    where = f" (at {path!r})" if path else ""
    _hparams.warn_per_step_rate(value, fn=fn, arg=arg, multiplier=top, where=where)


def _check_scaled(
  coef: Any, top: float, *, fn: str, arg: str, high: float | None, path: str = ""
) -> None:
  """``coef * multiplier`` stays below ``high``: now if ``coef`` is known, else under
  ``checked``. The message says which leaf's multiplier it is, when there is one."""
  if high is None:
    return
  if isinstance(coef, (int, float)):
    if coef * top < high:
      return
    if top == 1:
      raise ValueError(f"{fn}: `{arg}` must be < {high:g}, got {coef}{_hparams.rate_hint(arg)}.")
    at = f" (at {path!r})" if path else ""
    raise ValueError(
      f"{fn}: `{arg}`={coef} times the largest `mask` multiplier {top}{at} is "
      f"{coef * top}, not < {high:g}{_hparams.rate_hint(arg)}."
    )
  _checked.check_range(coef * top, fn=fn, arg=f"{arg} * mask multiplier", high=high)


def _has_values(params: Any) -> bool:
  """Whether ``params`` holds parameter values to check a mask against.

  ``optax.tree.map_params`` (the usual way to derive the optimizer state's
  shardings from the params') calls ``init`` with a placeholder object
  instead of params. The state does not depend on the params, so the mask is
  then checked at the first ``update`` instead.
  """
  return any(
    hasattr(x, "dtype") or isinstance(x, (int, float, complex)) for x in jax.tree.leaves(params)
  )


def add_l2_to_grad(
  l2: optax.ScalarOrSchedule, *, mask: _selection.MaskArg = None, anchor: _anchor.Anchor = None
) -> optax.GradientTransformation:
  r"""Adds the gradient of an L2 penalty, :math:`\lambda_t w`, to the gradient.

  With the penalty :math:`\tfrac{\lambda}{2}\sum_i w_i^2` on the selected
  leaves, each selected gradient leaf becomes

  .. math::

    g_t \leftarrow g_t + \lambda_t \, w_t .

  Put it **before** the optimizer, so the optimizer sees the regularized
  gradient: ``optax.chain(add_l2_to_grad(l2), optax.sgd(lr))`` is gradient
  descent on :math:`C_0 + \tfrac{\lambda}{2}\lVert w\rVert^2`. With plain SGD this
  equals :func:`decoupled_weight_decay` with ``rate = lr * l2`` (see
  :func:`l2_to_decay_rate`); with momentum or an adaptive optimizer (Adam,
  RMSProp, AdaGrad) the L2 term is accumulated or preconditioned and the two
  differ. For an L2 coefficient written :math:`\lambda/n` (a loss averaged over
  ``n`` examples), pass ``l2=lam / n``.

  See also ``optax.add_decayed_weights``, which computes the same
  :math:`g + \lambda w` (Optax names it a decay, by its use inside
  ``optax.adamw``); this transform adds per-leaf multipliers, decay toward an
  ``anchor``, and the checks of its arguments.

  Args:
    l2: the coefficient :math:`\lambda \ge 0`: a float, or a schedule
      ``step -> float`` evaluated on this transform's own count (0 on the
      first update). A Python ``0`` makes the transform the identity.
    mask: which leaves, and how strongly: ``None`` (every leaf), a pytree of
      ``bool`` or ``float >= 0`` per-leaf multipliers with the params' key paths
      (or a prefix of them), or a callable ``params -> such a pytree`` such as
      :func:`bias_mask`. See "Choosing what decays" in the how-to.
    anchor: decay toward a reference point :math:`w_0` instead of zero (L2-SP,
      L2-Init): ``None`` (zero, the default), ``'init'`` (the params given to
      ``init``) or a pytree of reference weights with the params' structure. The
      selected leaves of :math:`w_0` are copied into the state
      (:class:`AnchorState`): one extra copy of the selected weights, none of the
      others. Every equation above then reads :math:`w - w_0` for :math:`w`.

  Returns:
    An :class:`optax.GradientTransformation`; its state is
    ``optax.EmptyState()`` for a constant ``l2`` and a ``ScheduleState(count)``
    for a schedule; with an ``anchor``, an :class:`AnchorState` ``(count, anchor)``.

  Raises:
    ValueError: ``l2`` is negative or non-finite; ``update`` is called
      without ``params``; ``mask`` does not match the params, or has a negative
      multiplier; an update's shape differs from its parameter's.
    TypeError: ``mask`` has a leaf that is neither a bool nor a number, or
      selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.array([1.0, -2.0]), 'bias': jnp.array([3.0])}
    >>> tx = optax.chain(od.add_l2_to_grad(0.1, mask=od.bias_mask), optax.sgd(1.0))
    >>> grads = {'w': jnp.zeros(2), 'bias': jnp.zeros(1)}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> updates['w'], updates['bias']
    (Array([-0.1,  0.2], dtype=float32), Array([0.], dtype=float32))

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (Section 2).
  """
  fn = "add_l2_to_grad"
  _hparams.check_scalar_or_schedule(l2, fn=fn, arg="l2")
  anchor = _anchor.check_anchor(anchor, fn=fn)
  return l2_transform(l2, _selection.selection(mask, fn=fn), fn=fn, anchor=anchor)


def l2_transform(
  l2: optax.ScalarOrSchedule,
  selection: _selection.Selection,
  *,
  fn: str,
  anchor: _anchor.Anchor = None,
) -> optax.GradientTransformation:
  """:func:`add_l2_to_grad` from checked arguments, its errors naming ``fn``."""
  return _leafwise(fn=fn, arg="l2", value=l2, selection=selection, leaf_fn=add_l2, anchor=anchor)


def add_l2(g: Any, w: Any, l2: Any) -> Any:
  """``add_l2_to_grad``'s leaf expression (shared with ``fused_adamw``'s loop)."""
  return g + l2 * w


def decoupled_weight_decay(
  rate: optax.ScalarOrSchedule | None = None,
  *,
  weight_decay: optax.ScalarOrSchedule | None = None,
  learning_rate: optax.ScalarOrSchedule | None = None,
  mask: _selection.MaskArg = None,
  cautious: bool = False,
  anchor: _anchor.Anchor = None,
) -> optax.GradientTransformation:
  r"""Shrinks the selected weights by :math:`r_t` per step, outside the optimizer.

  Each selected update leaf becomes

  .. math::

    u_t \leftarrow u_t - r_t \, w_t ,
    \qquad r_t = \eta_t\lambda_t \ \text{(AdamW's convention)}
    \quad\text{or}\quad r_t = \texttt{rate}_t ,

  so after ``params = optax.apply_updates(params, updates)`` one step is
  :math:`w_{t+1} = (1 - r_t)\,w_t + u_t`. Put it **after** the optimizer (after
  its learning-rate scaling and sign flip): the decay is then never
  preconditioned, which is what AdamW's "decoupled" means.

  Give the decay in one of two conventions:

  * ``weight_decay=wd, learning_rate=lr``: PyTorch's and Optax's ``weight_decay``,
    multiplied by the learning rate (schedule) :math:`\eta_t`, so that
    ``optax.chain(optax.adam(lr), decoupled_weight_decay(weight_decay=wd,
    learning_rate=lr))`` is ``optax.adamw(lr, weight_decay=wd)`` and
    ``torch.optim.AdamW(lr=lr, weight_decay=wd)`` step for step, warmup included.
  * ``rate``: the fraction of each weight removed per step, multiplied by no
    learning rate (the :math:`\lambda' = \eta\lambda` of the SGD equivalence). A
    constant ``rate`` times a leaf's multiplier of at least ``1e-2`` (a timescale
    under 100 steps) warns (:class:`PerStepRateWarning`): it is most likely a
    ``weight_decay`` pasted as a rate; a schedule warns on its peak over steps 0
    to :math:`2^{20}`.

  **Cautious weight decay** (``cautious=True``; Chen et al., 2025) decays a
  coordinate only where the update does not move it away from zero:

  .. math::

    u_t \leftarrow u_t - r_t\,\mathbb{1}(u_t \odot w_t \le 0) \odot w_t ,

  the paper's gate :math:`d_t \odot w_t \ge 0` on the descent direction, with
  Optax's signed update :math:`u_t = -\eta_t d_t` (on complex leaves,
  :math:`\operatorname{Re}(u_t \bar w_t) \le 0`). The incoming update must have
  its final sign: put the transform after ``optax.adam``/``optax.sgd``, never
  between ``scale_by_adam`` and ``scale_by_learning_rate``. The derivation is
  in the docs' *Decay variants* page.

  See also ``optax.add_decayed_weights``, the primitive this generalizes: it
  adds :math:`+\lambda w` to the update and is placed *before*
  ``scale_by_learning_rate`` (so its decay is multiplied by the learning rate,
  as ``optax.adamw``'s); this transform sits after the optimizer, takes the
  per-step rate itself, and adds per-leaf multipliers, cautious gating, decay
  toward an ``anchor``, and the checks of its arguments.

  Args:
    rate: :math:`r_t \ge 0`, the fraction removed per step: a float, or a
      schedule ``step -> float`` evaluated on this transform's own count (0 on the
      first update). A Python ``0`` makes the transform the identity.
    weight_decay: :math:`\lambda_t \ge 0` in PyTorch's and Optax's convention
      (with ``learning_rate``, instead of ``rate``): a float or a schedule.
    learning_rate: :math:`\eta_t \ge 0`, the optimizer's learning rate (the
      same float or schedule), with ``weight_decay``.
    mask: which leaves, and how strongly: ``None`` (every leaf), a pytree of
      ``bool`` or ``float >= 0`` per-leaf multipliers with the params' key paths
      (or a prefix of them), or a callable ``params -> such a pytree`` such as
      :func:`bias_mask`. See "Choosing what decays" in the how-to. The per-step
      rate times each leaf's multiplier must be below 1.
    anchor: decay toward a reference point :math:`w_0` instead of zero (L2-SP,
      L2-Init): ``None`` (zero, the default), ``'init'`` (the params given to
      ``init``) or a pytree of reference weights with the params' structure. The
      selected leaves of :math:`w_0` are copied into the state
      (:class:`AnchorState`): one extra copy of the selected weights, none of the
      others. Every equation above then reads :math:`w - w_0` for :math:`w`.

  Returns:
    An :class:`optax.GradientTransformation`; its state is
    ``optax.EmptyState()`` for a constant rate and a ``ScheduleState(count)``
    for a schedule; with an ``anchor``, an :class:`AnchorState`
    ``(count, anchor)``.

  Raises:
    ValueError: a coefficient is negative or non-finite; the per-step rate times
      a leaf's multiplier is ``>= 1`` (checked when the mask is known: now for a
      static mask, at ``init`` for a mask function, at every step under
      :func:`checked`); ``update`` is called without ``params``; ``mask`` does
      not match the params; an update's shape differs from its parameter's.
    TypeError: both ``rate`` and ``weight_decay`` are given, or neither, or
      ``weight_decay`` without ``learning_rate``; ``mask`` has a leaf that is
      neither a bool nor a number, or selects a non-float leaf; ``cautious`` is
      not a bool.

  Example:
    AdamW with a warmup schedule, as ``optax.adamw``/``torch.optim.AdamW`` write
    it (here on a zero gradient, so only the decay moves the weights):

    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.array([1.0, -2.0]), 'bias': jnp.array([3.0])}
    >>> lr = optax.linear_schedule(0.0, 1e-3, transition_steps=10)
    >>> tx = optax.chain(optax.adam(lr), od.decoupled_weight_decay(
    ...     weight_decay=0.1, learning_rate=lr, mask=od.bias_mask))
    >>> grads = {'w': jnp.zeros(2), 'bias': jnp.zeros(1)}
    >>> state = tx.init(params)
    >>> for _ in range(6):
    ...   updates, state = tx.update(grads, state, params)
    >>> updates['w'], updates['bias']  # step 5: -lr_5 * wd * w = -5e-4 * 0.1 * w
    (Array([-5.e-05,  1.e-04], dtype=float32), Array([0.], dtype=float32))

    The same decay as a per-step rate (a constant here):

    >>> tx = od.decoupled_weight_decay(1e-4, mask=od.bias_mask)
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> updates['w']
    Array([-1.e-04,  2.e-04], dtype=float32)

    With ``cautious=True`` only the coordinates the update pushes towards zero
    are decayed (here the first: update ``-0.1`` on weight ``1.0``):

    >>> cwd = od.decoupled_weight_decay(1e-3, cautious=True)
    >>> u, _ = cwd.update({'w': jnp.array([-0.1, -0.1])}, cwd.init(params),
    ...                   {'w': jnp.array([1.0, -2.0])})
    >>> u['w']
    Array([-0.101, -0.1  ], dtype=float32)

    Toward the params given to ``init`` (``anchor='init'``, L2-Init): only the
    displacement from them decays.

    >>> tx = od.decoupled_weight_decay(1e-3, anchor='init')
    >>> state = tx.init({'w': jnp.array([1.0, -2.0])})
    >>> u, _ = tx.update({'w': jnp.zeros(2)}, state, {'w': jnp.array([3.0, -2.0])})
    >>> u['w']  # -1e-3 * (w - w0)
    Array([-0.002, -0.   ], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (Algorithms 1-2).

    Chen et al., `Cautious Weight Decay <https://arxiv.org/abs/2510.12402>`_,
    arXiv 2510.12402, 2025.
  """
  fn = "decoupled_weight_decay"
  value, arg = _per_step(rate, weight_decay, learning_rate, fn=fn)
  _hparams.check_bool(cautious, fn=fn, arg="cautious")
  anchor = _anchor.check_anchor(anchor, fn=fn)
  selection = _selection.selection(mask, fn=fn)
  return decay_transform(
    value, selection, fn=fn, arg=arg, cautious=cautious, anchor=anchor, per_step=arg == "rate"
  )


def _per_step(
  rate: Any, weight_decay: Any, learning_rate: Any, *, fn: str
) -> tuple[optax.ScalarOrSchedule, str]:
  """The per-step rate from either convention, checked, and the name its errors give it."""
  if rate is not None and (weight_decay is not None or learning_rate is not None):
    raise TypeError(
      f"{fn}: pass either `rate` (the fraction removed per step) or `weight_decay` with "
      "`learning_rate` (PyTorch's and Optax's convention: rate = learning_rate * weight_decay), "
      "not both."
    )
  if rate is not None:
    _hparams.check_scalar_or_schedule(rate, fn=fn, arg="rate")
    return rate, "rate"
  if weight_decay is None or learning_rate is None:
    missing = "`learning_rate`" if weight_decay is not None else "`rate`, or `weight_decay`"
    raise TypeError(
      f"{fn}: missing {missing}: pass `rate` (the fraction removed per step), or "
      "`weight_decay` with `learning_rate` (PyTorch's and Optax's convention, "
      "rate = learning_rate * weight_decay)."
    )
  _hparams.check_scalar_or_schedule(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  return _rates.lr_times(weight_decay, learning_rate), "learning_rate * weight_decay"


def decay_transform(
  rate: optax.ScalarOrSchedule,
  selection: _selection.Selection,
  *,
  fn: str,
  arg: str = "rate",
  cautious: bool = False,
  anchor: _anchor.Anchor = None,
  per_step: bool = False,
) -> optax.GradientTransformation:
  """:func:`decoupled_weight_decay` from checked arguments, its errors naming ``fn``; with
  ``per_step``, ``rate`` is a user's per-step rate (an implausible one warns)."""
  leaf_fn = _cautious_decay if cautious else _decay
  return _leafwise(
    fn=fn,
    arg=arg,
    value=rate,
    selection=selection,
    leaf_fn=leaf_fn,
    high=1.0,
    anchor=anchor,
    per_step=per_step,
  )


def _decay(u: Any, w: Any, rate: Any) -> Any:
  return u - rate * w


def _cautious_decay(u: Any, w: Any, rate: Any) -> Any:
  # Optax's u is minus the descent direction: decay where sign(u)*sign(w) <= 0.
  return u - rate * jnp.where(_cautious_gate(u, w), w, jnp.zeros_like(w))


def _cautious_gate(u: Any, w: Any) -> jax.Array:
  """Where the update does not move ``w`` away from zero: ``Re(u · conj(w)) <= 0``.

  For real leaves this is ``sign(u) * sign(w) <= 0`` (signs, so that no product
  underflows). For complex leaves ``w`` moves toward zero when the real inner
  product ``Re(u conj(w)) = u_re w_re + u_im w_im`` is negative; it is evaluated
  on ``u/|u|`` and ``w/|w|`` (the cosine of the angle between them), which
  neither underflows nor overflows.
  """
  if not jnp.iscomplexobj(u) and not jnp.iscomplexobj(w):
    return jnp.sign(u) * jnp.sign(w) <= 0
  unit = lambda z: z / jnp.where(jnp.abs(z) > 0, jnp.abs(z), 1).astype(z.dtype)
  return jnp.real(unit(jnp.asarray(u)) * jnp.conj(unit(jnp.asarray(w)))) <= 0


def proximal_weight_decay(
  rate: optax.ScalarOrSchedule | None = None,
  *,
  weight_decay: optax.ScalarOrSchedule | None = None,
  learning_rate: optax.ScalarOrSchedule | None = None,
  mask: _selection.MaskArg = None,
  anchor: _anchor.Anchor = None,
) -> optax.GradientTransformation:
  r"""Weight decay in proximal (implicit) form: :math:`w \leftarrow (w + u)/(1 + r_t)`.

  Decoupled decay :func:`decoupled_weight_decay` takes an *explicit* step on
  the penalty :math:`\tfrac{\lambda}{2}\lVert w\rVert^2`, evaluated at the old
  weights. The proximal step evaluates it at the *new* weights, i.e. solves
  :math:`w_{t+1} = w_t + u_t - r_t w_{t+1}`:

  .. math::

    w_{t+1} = \frac{w_t + u_t}{1 + r_t},
    \qquad\text{so the update is}\qquad
    u_t \leftarrow \frac{u_t - r_t\, w_t}{1 + r_t} .

  With an Adam step :math:`u_t = -\eta_t\,\hat m_t/(\sqrt{\hat v_t}+\epsilon)` and
  :math:`r_t = \eta_t\lambda` this is Zhuang et al.'s AdamW-as-proximal-Adam,
  :math:`\theta_t = (\theta_{t-1} - \eta_t\hat m_t/(\sqrt{\hat v_t}+\epsilon))
  /(1+\eta_t\lambda)`. It differs from the explicit update :math:`u_t - r_t w_t`
  by :math:`-\tfrac{r_t}{1+r_t}(u_t - r_t w_t)`: second order in the step size
  when :math:`u_t` and :math:`r_t` are both proportional to :math:`\eta_t`, so
  the two agree to first order. Unlike the explicit step, it never overshoots:
  any :math:`r_t \ge 0` only scales the weights by :math:`1/(1+r_t) \in (0, 1]`,
  so ``rate >= 1`` is allowed here.

  Put it **after** the optimizer, like :func:`decoupled_weight_decay`, and give
  the decay as that does: a per-step ``rate`` (an implausibly large one warns),
  or ``weight_decay`` with ``learning_rate`` for :math:`r_t = \eta_t\lambda_t`.

  Args:
    rate: :math:`r_t \ge 0`: a float, or a schedule ``step -> float`` evaluated
      on this transform's own count (0 on the first update). A Python ``0``
      makes the transform the identity.
    weight_decay: :math:`\lambda_t \ge 0` (with ``learning_rate``, instead of
      ``rate``): a float or a schedule.
    learning_rate: :math:`\eta_t \ge 0`, the optimizer's learning rate, with
      ``weight_decay``.
    mask: which leaves, and how strongly: ``None`` (every leaf), a pytree of
      ``bool`` or ``float >= 0`` per-leaf multipliers with the params' key paths
      (or a prefix of them), or a callable ``params -> such a pytree`` such as
      :func:`bias_mask`. See "Choosing what decays" in the how-to.
    anchor: decay toward a reference point :math:`w_0` instead of zero (L2-SP,
      L2-Init): ``None`` (zero, the default), ``'init'`` (the params given to
      ``init``) or a pytree of reference weights with the params' structure. The
      selected leaves of :math:`w_0` are copied into the state
      (:class:`AnchorState`): one extra copy of the selected weights, none of the
      others. Every equation above then reads :math:`w - w_0` for :math:`w`.

  Returns:
    An :class:`optax.GradientTransformation`; its state is
    ``optax.EmptyState()`` for a constant ``rate`` and a
    ``ScheduleState(count)`` for a schedule; with an ``anchor``, an
    :class:`AnchorState` ``(count, anchor)``.

  Raises:
    ValueError: a coefficient is negative or non-finite; ``update`` is called
      without ``params``; ``mask`` does not match the params; an update's shape
      differs from its parameter's.
    TypeError: both ``rate`` and ``weight_decay`` are given, or neither, or
      ``weight_decay`` without ``learning_rate``; ``mask`` has a leaf that is
      neither a bool nor a number, or selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.array([1.0, -2.0])}
    >>> tx = od.proximal_weight_decay(weight_decay=0.5, learning_rate=0.5)
    >>> updates, _ = tx.update({'w': jnp.array([0.25, 0.5])}, tx.init(params), params)
    >>> optax.apply_updates(params, updates)['w']  # (w + u) / (1 + 0.5 * 0.5)
    Array([ 1. , -1.2], dtype=float32)

  References:
    Zhuang, Liu, Cutkosky & Orabona, `Understanding AdamW through Proximal
    Methods and Scale-Freeness <https://arxiv.org/abs/2202.00089>`_, TMLR 2022.
  """
  fn = "proximal_weight_decay"
  value, arg = _per_step(rate, weight_decay, learning_rate, fn=fn)
  anchor = _anchor.check_anchor(anchor, fn=fn)
  selection = _selection.selection(mask, fn=fn)
  return _leafwise(
    fn=fn,
    arg=arg,
    value=value,
    selection=selection,
    leaf_fn=_proximal,
    anchor=anchor,
    per_step=arg == "rate",
  )


def _proximal(u: Any, w: Any, rate: Any) -> Any:
  return (u - rate * w) / (1 + rate)
