"""Keras 3's optimizer directions that Optax has no transform for.

Each ``scale_by_keras_*`` checks its arguments and calls its ``keras_*_transform`` builder, which
takes checked arguments: the optimizers of :mod:`optaxdecay.compat` check their own (with their
own names in the messages) and call the builder, so every value is checked once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from optaxdecay import _hparams, _selection, _tree
from optaxdecay.compat._common import NS_COEFFICIENTS, check_moments, check_muon, init_adam_state


class ScaleByKerasAdamState(NamedTuple):
  """State of :func:`scale_by_keras_adam`.

  Attributes:
    count: number of updates so far (``int32``); Keras' ``iterations``.
    mu: first moment (Keras' ``momentums``).
    nu: second moment (Keras' ``velocities``).
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  mu: optax.Updates
  nu: optax.Updates


class ScaleByKerasAmsgradState(NamedTuple):
  """State of :func:`scale_by_keras_adam` with ``amsgrad=True``.

  Attributes:
    count: number of updates so far (``int32``); Keras' ``iterations``.
    mu: first moment (Keras' ``momentums``).
    nu: second moment (Keras' ``velocities``).
    nu_max: the running maximum of ``nu`` (Keras' ``velocity_hats``).
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


def scale_by_keras_adam(
  beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, *, amsgrad: bool = False
) -> optax.GradientTransformation:
  r"""Keras' Adam direction, with epsilon hat (:math:`\hat\epsilon`).

  .. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
    u_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  Keras adds :math:`\hat\epsilon` to :math:`\sqrt{v_t}` **before** the bias
  correction of :math:`v`: in Adam's usual form
  (:func:`optax.scale_by_adam`, PyTorch) this is
  :math:`\hat m_t / (\sqrt{\hat v_t} + \hat\epsilon/\sqrt{1-\beta_2^t})`, an
  epsilon that is :math:`1/\sqrt{1-\beta_2^t}` times larger early in training
  (about 31.6 at step 1 with :math:`\beta_2=0.999`). Follow it with
  :func:`optax.scale_by_learning_rate`. With ``amsgrad=True`` (Keras' AMSGrad) the
  denominator uses the running maximum of the *raw* :math:`v_t`, as PyTorch's does
  (:func:`scale_by_torch_amsgrad`), with Keras' epsilon hat.

  Args:
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`; Keras' default ``1e-7``.
    amsgrad: Keras' ``amsgrad``.

  Returns:
    An :class:`optax.GradientTransformation` with a
    :class:`ScaleByKerasAdamState` (:class:`ScaleByKerasAmsgradState` with ``amsgrad``).

  Raises:
    ValueError: a beta outside ``[0, 1)``; ``epsilon`` negative.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_keras_adam(epsilon=0.1)
    >>> g = jnp.array([1.0])
    >>> u, _ = tx.update(g, tx.init(g))  # 1 / (1 + 0.1 / sqrt(0.001))
    >>> u  # optax.scale_by_adam(eps=0.1) gives 1 / (1 + 0.1) here
    Array([0.24025148], dtype=float32)

  References:
    Keras 3 ``keras.optimizers.Adam`` (``keras/src/optimizers/adam.py``,
    ``update_step``); Kingma & Ba, `Adam <https://arxiv.org/abs/1412.6980>`_,
    ICLR 2015 (the formula before Section 2.1).
  """
  fn = "scale_by_keras_adam"
  _hparams.check_number(beta_1, fn=fn, arg="beta_1", high=1.0)
  _hparams.check_number(beta_2, fn=fn, arg="beta_2", high=1.0)
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")
  _hparams.check_bool(amsgrad, fn=fn, arg="amsgrad")
  return keras_adam_transform(beta_1, beta_2, epsilon, amsgrad=amsgrad)


def keras_adam_transform(
  beta_1: float, beta_2: float, epsilon: float, *, amsgrad: bool
) -> optax.GradientTransformation:
  """:func:`scale_by_keras_adam` from checked arguments."""

  def init_fn(params: optax.Params) -> Any:
    zeros = optax.tree.zeros_like
    if amsgrad:
      return ScaleByKerasAmsgradState(
        jnp.zeros([], jnp.int32), zeros(params), zeros(params), zeros(params)
      )
    return ScaleByKerasAdamState(count=jnp.zeros([], jnp.int32), mu=zeros(params), nu=zeros(params))

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, Any]:
    del params
    mu = optax.tree.update_moment(updates, state.mu, beta_1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, beta_2, 2)
    count = cast(jax.Array, optax.safe_increment(state.count))
    used = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else nu

    def direction(m: jax.Array, v: jax.Array) -> jax.Array:
      t = count.astype(m.dtype)
      alpha = jnp.sqrt(1 - jnp.asarray(beta_2, m.dtype) ** t) / (
        1 - jnp.asarray(beta_1, m.dtype) ** t
      )
      return (m * alpha / (jnp.sqrt(v) + epsilon)).astype(m.dtype)

    out = jax.tree.map(direction, mu, used)
    if amsgrad:
      return out, ScaleByKerasAmsgradState(count, mu, nu, used)
    return out, ScaleByKerasAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_keras_adamax(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7
) -> optax.GradientTransformation:
  r"""Keras' Adamax direction: epsilon added *after* the infinity norm.

  .. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    u_t = \max(\beta_2 u_{t-1}, \lvert g_t\rvert),\quad
    d_t = \frac{m_t}{(1-\beta_1^t)(u_t + \epsilon)}

  ``optax.scale_by_adamax`` (and PyTorch) take :math:`\max(\beta_2 u, \lvert g\rvert + \epsilon)`.

  Args:
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`.

  Returns:
    An :class:`optax.GradientTransformation` whose state is an ``optax.ScaleByAdamState``
    (``nu`` holds :math:`u`).

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_keras_adamax(eps=0.0)
    >>> u, _ = tx.update({'w': jnp.array([-2.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> u['w']
    Array([-1.], dtype=float32)

  References:
    ``keras/src/optimizers/adamax.py`` (``update_step``).
  """
  fn = "scale_by_keras_adamax"
  check_moments(fn, b1, b2, eps)
  return keras_adamax_transform(b1, b2, eps)


def keras_adamax_transform(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  """:func:`scale_by_keras_adamax` from checked arguments."""

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.ScaleByAdamState]:
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = jax.tree.map(lambda g, u: jnp.maximum(b2 * u, jnp.abs(g)), updates, state.nu)
    count = cast(jax.Array, optax.safe_increment(state.count))
    bc1 = 1 - b1**count
    out = jax.tree.map(lambda m, u: (m / (bc1.astype(m.dtype) * (u + eps))).astype(m.dtype), mu, nu)
    return out, optax.ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(init_adam_state, update_fn)


def scale_by_keras_muon(
  ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
  momentum: float = 0.95,
  ns_steps: int = 5,
  nesterov: bool = True,
  rms_rate: float | None = 0.2,
) -> optax.GradientTransformation:
  r"""Keras' Muon direction: classical momentum, Newton-Schulz in the leaf's dtype, RMS scale.

  .. math::

    m_t = \mu m_{t-1} + g_t,\quad
    d_t = \rho\sqrt{\max(A, B)}\;\mathrm{NS}\bigl(\text{Nesterov: } g_t + \mu m_t;\
      \text{else } m_t\bigr)

  with the iteration started from :math:`X/(\lVert X\rVert_F + 10^{-7})`. PyTorch's Muon
  (:func:`scale_by_torch_muon`) keeps an EMA, runs in bfloat16 and scales by another ratio.

  Args:
    ns_coefficients: ``(muon_a, muon_b, muon_c)``.
    momentum: :math:`\mu \in [0, 1)`.
    ns_steps: Newton-Schulz iterations.
    nesterov: Nesterov momentum.
    rms_rate: :math:`\rho > 0`, or ``None`` for no scaling.

  Returns:
    An :class:`optax.GradientTransformation` whose state is an ``optax.TraceState``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_keras_muon(rms_rate=None)
    >>> u, _ = tx.update({'w': 2 * jnp.eye(2)}, tx.init({'w': jnp.zeros((2, 2))}))
    >>> u['w'].shape
    (2, 2)

  References:
    ``keras/src/optimizers/muon.py`` (``_muon_update_step``, ``zeropower_via_newtonschulz5``,
    ``lr_adjust``).
  """
  fn = "scale_by_keras_muon"
  check_muon(fn, momentum, nesterov, ns_coefficients, 0.0, ns_steps, None)
  if rms_rate is not None:
    _hparams.check_number(rms_rate, fn=fn, arg="rms_rate", low_inclusive=False)
  return keras_muon_transform(ns_coefficients, momentum, ns_steps, nesterov, rms_rate)


def keras_muon_transform(
  ns_coefficients: tuple[float, float, float],
  momentum: float,
  ns_steps: int,
  nesterov: bool,
  rms_rate: float | None,
) -> optax.GradientTransformation:
  """:func:`scale_by_keras_muon` from checked arguments."""
  a, b, c = ns_coefficients

  def orthogonalize(x: jax.Array) -> jax.Array:
    tall = x.shape[-2] > x.shape[-1]
    x = jnp.swapaxes(x, -1, -2) if tall else x
    x = x / (jnp.sqrt(jnp.sum(x * x, axis=(-2, -1), keepdims=True)) + 1e-7)
    for _ in range(ns_steps):
      gram = x @ jnp.swapaxes(x, -1, -2)
      x = a * x + (b * gram + c * gram @ gram) @ x
    return jnp.swapaxes(x, -1, -2) if tall else x

  def init_fn(params: optax.Params) -> optax.TraceState:
    return optax.TraceState(optax.tree.zeros_like(params))

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.TraceState]:
    del params
    m = jax.tree.map(lambda g, t: momentum * t + g, updates, state.trace)

    def direction(g: jax.Array, t: jax.Array) -> jax.Array:
      x = orthogonalize(g + momentum * t if nesterov else t)
      if rms_rate is not None:
        x = x * math.sqrt(max(x.shape[0], x.shape[1])) * rms_rate
      return x.astype(g.dtype)

    return jax.tree.map(direction, updates, m), optax.TraceState(m)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_keras_lamb(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-7,
  *,
  shrink: optax.ScalarOrSchedule = 0.0,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Keras' LAMB direction: Adam's step scaled by the trust ratio of the *decayed* weights.

  .. math::

    u_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},\quad
    d_t = \frac{\lVert (1 - s_t)\,\theta_t\rVert}{\lVert u_t\rVert}\, u_t

  (ratio 1 where either norm is 0), per leaf. Keras decays a variable *before* its LAMB step
  (:math:`\theta \leftarrow \theta - \eta_t\lambda\theta`), so the ratio sees the decayed
  weights; pass that fraction as ``shrink`` (:math:`s_t = \eta_t\lambda`) with the decay's
  ``mask``. The decay itself stays outside, unlike ``optax.lamb`` (and the LAMB paper), which
  put it inside the ratio.

  Args:
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`, after the bias correction.
    shrink: :math:`s_t`, a float or a schedule: the fraction the decay removed first.
    mask: the leaves that ``shrink`` applies to; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation` (it needs ``params``) whose state is an
    ``optax.ScaleByAdamState``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_keras_lamb(eps=0.0)
    >>> params = {'w': jnp.array([3.0, 4.0])}
    >>> u, _ = tx.update({'w': jnp.array([1.0, -1.0])}, tx.init(params), params)
    >>> u['w']  # sign(g) (Adam's first step) times |w| / |sign(g)| = 5 / sqrt(2)
    Array([ 3.535534, -3.535534], dtype=float32)

  References:
    ``keras/src/optimizers/lamb.py`` (``update_step``); You et al., *Large Batch Optimization
    for Deep Learning*, ICLR 2020.
  """
  fn = "scale_by_keras_lamb"
  check_moments(fn, b1, b2, eps)
  _hparams.check_scalar_or_schedule(shrink, fn=fn, arg="shrink")
  selection = _selection.selection(mask, fn=fn)
  return keras_lamb_transform(b1, b2, eps, shrink=shrink, selection=selection, fn=fn)


def keras_lamb_transform(
  b1: float,
  b2: float,
  eps: float,
  *,
  shrink: optax.ScalarOrSchedule,
  selection: _selection.Selection,
  fn: str,
) -> optax.GradientTransformation:
  """:func:`scale_by_keras_lamb` from checked arguments, its errors naming ``fn``."""

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.ScaleByAdamState]:
    if params is None:
      raise ValueError(f"{fn}: `update` needs `params` (the trust ratio is relative to them).")
    s_t = shrink(state.count) if callable(shrink) else shrink
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = cast(jax.Array, optax.safe_increment(state.count))
    bc1, bc2 = 1 - b1**count, 1 - b2**count
    adam = jax.tree.map(lambda m, v: (m / bc1) / (jnp.sqrt(v / bc2) + eps), mu, nu)
    u_leaves, p_leaves, treedef = _tree.align(adam, params, fn=fn)
    out = []
    for u, w, m in zip(u_leaves, p_leaves, selection.resolve(params), strict=True):
      if _tree.is_absent(u):
        out.append(u)
        continue
      w_norm = jnp.sqrt(jnp.sum(jnp.square(w * (1 - s_t * m) if m else w)))
      u_norm = jnp.sqrt(jnp.sum(jnp.square(u)))
      ratio = jnp.where(w_norm > 0, jnp.where(u_norm > 0, w_norm / u_norm, 1.0), 1.0)
      out.append((ratio * u).astype(u.dtype))
    return treedef.unflatten(out), optax.ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(init_adam_state, update_fn)


class ScaleByKerasAdafactorState(NamedTuple):
  """State of :func:`scale_by_keras_adafactor`: the step and, per leaf, the factored second
  moment (``row``/``col`` for leaves with 2+ dimensions) or the full one (``variance``)."""

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  row: optax.Updates
  col: optax.Updates
  variance: optax.Updates


def check_keras_adafactor(
  fn: str, beta_2_decay: Any, epsilon_1: Any, epsilon_2: Any, clip_threshold: Any
) -> None:
  """Keras' Adafactor argument rules, with the caller's name in every message."""
  _hparams.check_number(
    beta_2_decay, fn=fn, arg="beta_2_decay", low=None, high=0.0, high_inclusive=True
  )
  _hparams.check_number(epsilon_1, fn=fn, arg="epsilon_1")
  _hparams.check_number(epsilon_2, fn=fn, arg="epsilon_2")
  _hparams.check_number(clip_threshold, fn=fn, arg="clip_threshold", low_inclusive=False)


def scale_by_keras_adafactor(
  lr: optax.ScalarOrSchedule = 1e-3,
  beta_2_decay: float = -0.8,
  epsilon_1: float = 1e-30,
  epsilon_2: float = 1e-3,
  clip_threshold: float = 1.0,
  *,
  shrink: optax.ScalarOrSchedule = 0.0,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Keras' Adafactor step, relative to the *decayed* weights (the parameter change itself).

  .. math::

    \rho_t = \min(\eta_t, 1/\sqrt t),\quad
    \alpha_t = \max(\epsilon_2, \mathrm{RMS}((1 - s_t)\theta_t))\,\rho_t,\quad
    u_t = g_t/\sqrt{\hat v_t},\quad
    \Delta_t = -\frac{\alpha_t}{\max(1, \mathrm{RMS}(u_t)/d)}\,u_t

  with :math:`\hat v_t` the EMA (weight :math:`1 - t^{c}` on the new term) of
  :math:`g^2 + \epsilon_1`, factored over the last two axes as
  :math:`(r/\bar r) \otimes c`. Keras decays a variable before the step, so :math:`\alpha_t`
  sees the decayed weights: pass that fraction as ``shrink`` (:math:`\eta_t\lambda`) with the
  decay's ``mask``. PyTorch's Adafactor (:func:`scale_by_torch_adafactor`) clamps instead of
  adding :math:`\epsilon_1` and sizes the step from the undecayed weights.

  Args:
    lr: :math:`\eta`, a float or a schedule: the cap of the relative step size.
    beta_2_decay: :math:`c \le 0`.
    epsilon_1: added to :math:`g^2`, :math:`\ge 0`.
    epsilon_2: the floor of the weights' RMS, :math:`\ge 0`.
    clip_threshold: :math:`d > 0`.
    shrink: :math:`s_t`, the fraction the decay removed first.
    mask: the leaves ``shrink`` applies to; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation` (it needs ``params``) whose state is a
    :class:`ScaleByKerasAdafactorState` (``row``, ``col`` or ``variance`` per leaf).

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_keras_adafactor(lr=0.01)
    >>> params = {'w': jnp.ones((2, 3))}
    >>> u, _ = tx.update({'w': jnp.ones((2, 3))}, tx.init(params), params)
    >>> u['w'][0, 0]  # -RMS(w) * min(lr, 1) on the first step
    Array(-0.01, dtype=float32)

  References:
    ``keras/src/optimizers/adafactor.py`` (``update_step``).
  """
  fn = "scale_by_keras_adafactor"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  check_keras_adafactor(fn, beta_2_decay, epsilon_1, epsilon_2, clip_threshold)
  _hparams.check_scalar_or_schedule(shrink, fn=fn, arg="shrink")
  selection = _selection.selection(mask, fn=fn)
  return keras_adafactor_transform(
    lr,
    beta_2_decay,
    epsilon_1,
    epsilon_2,
    clip_threshold,
    shrink=shrink,
    selection=selection,
    fn=fn,
  )


def keras_adafactor_transform(
  lr: optax.ScalarOrSchedule,
  beta_2_decay: float,
  epsilon_1: float,
  epsilon_2: float,
  clip_threshold: float,
  *,
  shrink: optax.ScalarOrSchedule,
  selection: _selection.Selection,
  fn: str,
) -> optax.GradientTransformation:
  """:func:`scale_by_keras_adafactor` from checked arguments, its errors naming ``fn``."""

  def init_fn(params: optax.Params) -> ScaleByKerasAdafactorState:
    def factored(p: jax.Array, shape: Callable[[tuple[int, ...]], tuple[int, ...]]) -> Any:
      # (the shape is computed only for matrices: a 0-d or 1-d leaf is not factored)
      return jnp.zeros(shape(p.shape), p.dtype) if p.ndim > 1 else None

    return ScaleByKerasAdafactorState(
      jnp.zeros([], jnp.int32),
      jax.tree.map(lambda p: factored(p, lambda s: s[:-1]), params),
      jax.tree.map(lambda p: factored(p, lambda s: (*s[:-2], s[-1])), params),
      jax.tree.map(lambda p: None if p.ndim > 1 else jnp.zeros_like(p), params),
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByKerasAdafactorState]:
    if params is None:
      raise ValueError(f"{fn}: `update` needs `params` (Adafactor's step is relative to them).")
    count = cast(jax.Array, optax.safe_increment(state.count))
    t = count.astype(jnp.result_type(float))
    lr_t = lr(state.count) if callable(lr) else lr
    s_t = shrink(state.count) if callable(shrink) else shrink
    rho = jnp.minimum(lr_t, 1.0 / jnp.sqrt(t))
    keep = 1.0 - t**beta_2_decay  # Keras' beta_2_t
    g_leaves, p_leaves, treedef = _tree.align(updates, params, fn=fn)
    rows, cols, fulls = (treedef.flatten_up_to(x) for x in (state.row, state.col, state.variance))
    mults = selection.resolve(params)
    out, new_r, new_c, new_v = [], [], [], []
    for g, p, r, c, v, m in zip(g_leaves, p_leaves, rows, cols, fulls, mults, strict=True):
      if _tree.is_absent(g):  # a leaf an outer optax.masked / partition took away
        out.append(g)
        new_r.append(r)
        new_c.append(c)
        new_v.append(v)
        continue
      sq = jnp.square(g) + epsilon_1
      if p.ndim > 1:
        r = keep * r + (1 - keep) * jnp.mean(sq, axis=-1)
        c = keep * c + (1 - keep) * jnp.mean(sq, axis=-2)
        var = jnp.expand_dims(r / jnp.mean(r, axis=-1, keepdims=True), -1) * jnp.expand_dims(c, -2)
      else:
        v = keep * v + (1 - keep) * sq
        var = v
      u = g / jnp.sqrt(var)
      w = p * (1 - s_t * m) if m else p
      alpha = jnp.maximum(epsilon_2, jnp.sqrt(jnp.mean(jnp.square(w)))) * rho
      u = u / jnp.maximum(1.0, jnp.sqrt(jnp.mean(jnp.square(u))) / clip_threshold)
      out.append((-alpha * u).astype(g.dtype))
      new_r.append(r)
      new_c.append(c)
      new_v.append(v)
    unflat = treedef.unflatten
    new_state = ScaleByKerasAdafactorState(count, unflat(new_r), unflat(new_c), unflat(new_v))
    return unflat(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)
