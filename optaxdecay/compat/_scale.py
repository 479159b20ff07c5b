"""The transforms Optax does not have: PyTorch's momentum, AMSGrad, Adagrad, NAdam and RAdam, and
Keras' "epsilon hat" Adam."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from optaxdecay import _hparams, _selection, _tree
from optaxdecay.compat._common import (
  check_moments,
  check_torch_nesterov,
  momentum_trace,
)


class TorchMomentumState(NamedTuple):
  """State of :func:`scale_by_torch_momentum` with ``dampening != 0``.

  Attributes:
    count: number of updates so far (``int32``); the buffer is set to the
      gradient itself, undampened, when ``count == 0``.
    momentum_buffer: PyTorch's ``momentum_buffer``, one leaf per parameter.
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  momentum_buffer: optax.Updates


def scale_by_torch_momentum(
  momentum: float, dampening: float = 0.0, nesterov: bool = False
) -> optax.GradientTransformation:
  r"""PyTorch SGD's momentum buffer, dampening and first step included.

  .. math::

    b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + (1-\tau)\, g_t \ (t > 1), \qquad
    u_t = \begin{cases} g_t + \mu\, b_t & \text{Nesterov} \\ b_t & \text{else}\end{cases}

  The first buffer is the gradient itself, **not** :math:`(1-\tau)g_1`. With
  ``dampening=0`` this is exactly :func:`optax.trace` (whose zero initial trace
  gives :math:`b_1 = g_1`), which is returned then; only a nonzero dampening
  needs its own state. The learning rate is applied after it (PyTorch
  multiplies the buffer by :math:`\eta_t`, it does not accumulate it).

  Args:
    momentum: :math:`\mu \ge 0`; ``0`` gives the identity.
    dampening: :math:`\tau \ge 0`.
    nesterov: PyTorch's Nesterov form; needs ``momentum > 0`` and
      ``dampening == 0``, as in PyTorch.

  Returns:
    An :class:`optax.GradientTransformation`: :func:`optax.identity` for
    ``momentum=0``, :func:`optax.trace` for ``dampening=0``, else one with a
    :class:`TorchMomentumState`.

  Raises:
    ValueError: ``momentum`` or ``dampening`` negative or non-finite; Nesterov
      without momentum or with dampening.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_momentum(0.9, dampening=0.5)
    >>> g = jnp.array([1.0])
    >>> u, state = tx.update(g, tx.init(g))  # first step: the gradient itself
    >>> u, _ = tx.update(g, state)  # 0.9 * 1 + 0.5 * 1
    >>> u
    Array([1.4], dtype=float32)

  References:
    ``torch.optim.SGD`` (``torch/optim/sgd.py``, ``_single_tensor_sgd``).
  """
  fn = "scale_by_torch_momentum"
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  _hparams.check_number(dampening, fn=fn, arg="dampening")
  check_torch_nesterov(fn, nesterov, momentum, dampening)
  # The structure follows Python-number zeros only (see momentum_trace): an injected
  # dampening of 0 runs the general buffer below, which is the same arithmetic.
  if _hparams.is_static_zero(momentum) or _hparams.is_static_zero(dampening):
    return momentum_trace(momentum, nesterov)

  def init_fn(params: optax.Params) -> TorchMomentumState:
    return TorchMomentumState(
      count=jnp.zeros([], jnp.int32), momentum_buffer=optax.tree.zeros_like(params)
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, TorchMomentumState]:
    del params
    first = state.count == 0
    buf = jax.tree.map(
      lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g).astype(b.dtype),
      updates,
      state.momentum_buffer,
    )
    out = buf
    if nesterov:  # torch: g + momentum * buf (nesterov needs dampening 0: checked above)
      out = jax.tree.map(lambda g, b: (g + momentum * b).astype(b.dtype), updates, buf)
    return out, TorchMomentumState(cast(jax.Array, optax.safe_increment(state.count)), buf)

  return optax.GradientTransformation(init_fn, update_fn)


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


class TorchAdagradState(NamedTuple):
  """State of :func:`scale_by_torch_adagrad`: the running sum of squared gradients."""

  sum_of_squares: optax.Updates


def scale_by_torch_adagrad(
  initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> optax.GradientTransformation:
  r"""PyTorch's Adagrad scaling: :math:`u = g/(\sqrt{s_t} + \epsilon)`, :math:`s_t = s_{t-1} + g^2`.

  ``optax.scale_by_rss`` puts :math:`\epsilon` inside the square root; PyTorch adds it
  outside, and starts the sum at ``initial_accumulator_value``.

  Args:
    initial_accumulator_value: :math:`s_0 \ge 0`.
    eps: :math:`\epsilon \ge 0`.

  Returns:
    An :class:`optax.GradientTransformation` whose state is a :class:`TorchAdagradState`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_adagrad(eps=0.0)
    >>> u, _ = tx.update({'w': jnp.array([3.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> u['w']  # 3 / sqrt(9)
    Array([1.], dtype=float32)

  References:
    ``torch/optim/adagrad.py`` (``_single_tensor_adagrad``).
  """
  fn = "scale_by_torch_adagrad"
  _hparams.check_number(initial_accumulator_value, fn=fn, arg="initial_accumulator_value")
  _hparams.check_number(eps, fn=fn, arg="eps")

  def init_fn(params: optax.Params) -> TorchAdagradState:
    return TorchAdagradState(
      jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params)
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, TorchAdagradState]:
    del params
    total = jax.tree.map(lambda s, g: s + g * g, state.sum_of_squares, updates)
    scaled = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, total)
    return scaled, TorchAdagradState(total)

  return optax.GradientTransformation(init_fn, update_fn)


def _init_adam_state(params: optax.Params) -> optax.ScaleByAdamState:
  """``optax.ScaleByAdamState`` with zero moments: the state of the Adam-like transforms here."""
  zeros = optax.tree.zeros_like(params)
  return optax.ScaleByAdamState(jnp.zeros([], jnp.int32), zeros, zeros)


class ScaleByTorchAmsgradState(NamedTuple):
  """State of :func:`scale_by_torch_amsgrad`: Adam's moments and the running max of ``nu``."""

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


def scale_by_torch_amsgrad(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
  r"""PyTorch's AMSGrad: the running max of the *raw* second moment, then the bias correction.

  .. math::

    \hat v^{\max}_t = \max(\hat v^{\max}_{t-1}, v_t),\qquad
    u_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{\hat v^{\max}_t}/\sqrt{1-\beta_2^t} + \epsilon}

  ``optax.scale_by_amsgrad`` takes the max of the bias-corrected :math:`v_t/(1-\beta_2^t)`
  instead, a different (larger, early on) denominator.

  Args:
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`, after the bias correction.

  Returns:
    An :class:`optax.GradientTransformation` whose state is a
    :class:`ScaleByTorchAmsgradState`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_amsgrad(eps=0.0)
    >>> u, _ = tx.update({'w': jnp.array([-2.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> u['w']  # the first step is sign(g)
    Array([-1.], dtype=float32)

  References:
    ``torch/optim/adam.py`` (``_single_tensor_adam``, ``amsgrad=True``).
  """
  fn = "scale_by_torch_amsgrad"
  check_moments(fn, b1, b2, eps)

  def init_fn(params: optax.Params) -> ScaleByTorchAmsgradState:
    zeros = optax.tree.zeros_like(params)
    return ScaleByTorchAmsgradState(jnp.zeros([], jnp.int32), zeros, zeros, zeros)

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByTorchAmsgradState]:
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    count = cast(jax.Array, optax.safe_increment(state.count))
    bc1 = 1 - b1**count
    root_bc2 = jnp.sqrt(1 - b2**count)

    def direction(m: jax.Array, v: jax.Array) -> jax.Array:
      denom = jnp.sqrt(v) / root_bc2.astype(v.dtype) + eps
      return (m / bc1.astype(m.dtype) / denom).astype(m.dtype)

    out = jax.tree.map(direction, mu, nu_max)
    return out, ScaleByTorchAmsgradState(count, mu, nu, nu_max)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByTorchNadamState(NamedTuple):
  """State of :func:`scale_by_torch_nadam`: Adam's moments and the product of the momenta."""

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  mu_product: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def scale_by_torch_nadam(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, momentum_decay: float = 4e-3
) -> optax.GradientTransformation:
  r"""PyTorch's NAdam (Dozat 2016): Nesterov momentum with the momentum schedule :math:`\mu_t`.

  .. math::

    \mu_t = \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr),\quad
    \Pi_t = \textstyle\prod_{i \le t}\mu_i,\quad
    u_t = \frac{1}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
      \Bigl(\frac{1-\mu_t}{1-\Pi_t}\,g_t + \frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\,m_t\Bigr)

  with :math:`m_t, v_t` Adam's (uncorrected) moments and :math:`\psi` the
  ``momentum_decay``. ``optax.nadam`` is another NAdam (constant momentum, Adam's bias
  correction), so this transform reproduces ``torch.optim.NAdam``'s.

  Args:
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`, after the bias correction.
    momentum_decay: :math:`\psi \ge 0` (PyTorch's default ``4e-3``).

  Returns:
    An :class:`optax.GradientTransformation` whose state is a :class:`ScaleByTorchNadamState`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_nadam(eps=0.0)
    >>> u, _ = tx.update({'w': jnp.array([-2.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> bool(u['w'][0] < 0)  # a descent direction, with the gradient's sign
    True

  References:
    ``torch/optim/nadam.py`` (``_single_tensor_nadam``); Dozat, *Incorporating Nesterov
    momentum into Adam*, ICLR workshop 2016.
  """
  fn = "scale_by_torch_nadam"
  check_moments(fn, b1, b2, eps)
  _hparams.check_number(momentum_decay, fn=fn, arg="momentum_decay")

  def init_fn(params: optax.Params) -> ScaleByTorchNadamState:
    zeros = optax.tree.zeros_like(params)
    return ScaleByTorchNadamState(jnp.zeros([], jnp.int32), jnp.ones([]), zeros, zeros)

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByTorchNadamState]:
    del params
    count = cast(jax.Array, optax.safe_increment(state.count))
    step = count.astype(state.mu_product.dtype)
    mu_t = b1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = state.mu_product * mu_t
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    bc2 = 1 - b2**count
    c_grad = (1.0 - mu_t) / (1.0 - mu_product)
    c_mom = mu_next / (1.0 - mu_product * mu_next)

    def direction(g: jax.Array, m: jax.Array, v: jax.Array) -> jax.Array:
      denom = jnp.sqrt(v / bc2.astype(v.dtype)) + eps
      dt = g.dtype
      return (g * c_grad.astype(dt) / denom + m * c_mom.astype(dt) / denom).astype(dt)

    out = jax.tree.map(direction, updates, mu, nu)
    return out, ScaleByTorchNadamState(count, mu_product, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_torch_radam(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
  r"""PyTorch's RAdam (Liu et al. 2020): Adam with its variance rectified once it is tractable.

  .. math::

    \rho_\infty = \tfrac{2}{1-\beta_2} - 1,\quad
    \rho_t = \rho_\infty - \tfrac{2t\beta_2^t}{1-\beta_2^t},\quad
    u_t = \begin{cases}
      \hat m_t\, r_t\, \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon} & \rho_t > 5 \\
      \hat m_t & \text{else}
    \end{cases}

  with :math:`r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)
  \rho_t}}` and :math:`\hat m_t = m_t/(1-\beta_1^t)`. ``optax.scale_by_radam`` differs in two
  places: it switches at :math:`\rho_t \ge 5` and adds :math:`\epsilon` after the bias
  correction of :math:`v_t` (PyTorch adds it to :math:`\sqrt{v_t}`, before).

  Args:
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`.

  Returns:
    An :class:`optax.GradientTransformation` whose state is an ``optax.ScaleByAdamState``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_radam()
    >>> u, _ = tx.update({'w': jnp.array([-2.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> u['w']  # rho_1 = 1 <= 5: the first steps are plain momentum (m_hat = g)
    Array([-2.], dtype=float32)

  References:
    ``torch/optim/radam.py`` (``_single_tensor_radam``); Liu et al., *On the variance of the
    adaptive learning rate and beyond*, ICLR 2020.
  """
  fn = "scale_by_torch_radam"
  check_moments(fn, b1, b2, eps)
  # A concrete beta2 decides the switch step as PyTorch does, in float64 (in Python); an
  # injected (traced) one can only decide it in the default float type.
  concrete = not isinstance(b2, jax.core.Tracer)
  if concrete:
    b2 = float(b2)
    rho_inf: Any = 2.0 / (1.0 - b2) - 1.0
    a: Any = -math.log(b2) if b2 > 0 else math.inf  # b2**t = exp(-a t)
    switch_at = radam_switch_step(b2)
  else:
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    a = -jnp.log(b2)

  def rho(count: jax.Array) -> jax.Array:
    """rho_t, without float32's cancellation of rho_inf - 2t b2^t / (1 - b2^t) for small t.

    PyTorch computes it in Python (float64). For small s = a t the difference of the two
    Bernoulli series x / (e^x - 1) at -a and at s is summed term by term instead (error below
    1e-10 for s < 0.5); the direct formula has no cancellation beyond that.
    """
    t = count.astype(jnp.result_type(float))  # float32, or float64 under x64
    if concrete and not math.isfinite(a):
      return jnp.full_like(t, rho_inf)
    s = a * t
    series = t
    for k, c in ((1, 6.0), (3, -360.0), (5, 15120.0), (7, -604800.0)):
      series = series + a**k * (1.0 - t ** (k + 1)) / c
    q = jnp.exp(-s)
    direct = rho_inf - 2.0 * t * q / -jnp.expm1(-s)
    out = jnp.where(s < 0.5, series, direct)
    return out if concrete else jnp.where(b2 > 0, out, rho_inf)

  def rectified(count: jax.Array, rho_t: jax.Array) -> jax.Array:
    """Whether step ``count`` is past PyTorch's switch (``rho_t > 5``)."""
    if not concrete:
      return rho_t > 5.0
    return jnp.asarray(False) if switch_at is None else count >= switch_at

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.ScaleByAdamState]:
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = cast(jax.Array, optax.safe_increment(state.count))
    bc1, bc2 = 1 - b1**count, 1 - b2**count
    rho_t = rho(count)
    rect = jnp.sqrt(
      jnp.maximum((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0)
    )

    def direction(m: jax.Array, v: jax.Array) -> jax.Array:
      m_hat = m / bc1.astype(m.dtype)
      adaptive = jnp.sqrt(bc2).astype(v.dtype) / (jnp.sqrt(v) + eps)
      on = rectified(count, rho_t)
      return jnp.where(on, m_hat * rect.astype(m.dtype) * adaptive, m_hat).astype(m.dtype)

    out = jax.tree.map(direction, mu, nu)
    return out, optax.ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(_init_adam_state, update_fn)


def _lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
  """``torch.lerp``: exact at both ends (``weight = 1`` gives ``end``, not ``start + (end -
  start)``, which cancels to 0 when ``end`` is far below ``start``)."""
  return jnp.where(
    weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
  ).astype(start.dtype)


def radam_switch_step(b2: float) -> int | None:
  """The first step ``t`` at which PyTorch's RAdam rectifies: ``rho_t > 5``, in float64.

  ``rho_t`` grows toward ``rho_inf = 2 / (1 - b2) - 1``, so there is no such step when
  ``rho_inf <= 5`` (``b2 <= 2/3``). Evaluated exactly as ``torch/optim/radam.py`` does, in
  Python floats, so that a ``b2`` whose ``rho_t`` crosses 5 by less than float32's resolution
  switches at PyTorch's step.
  """
  rho_inf = 2.0 / (1.0 - b2) - 1.0
  if not rho_inf > 5.0:
    return None
  t = 1
  while True:
    bt = b2**t
    if rho_inf - 2.0 * t * bt / (1.0 - bt) > 5.0:
      return t
    t += 1


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

  return optax.GradientTransformation(_init_adam_state, update_fn)


def check_adafactor(fn: str, lr: Any, beta2_decay: Any, eps: Any, d: Any) -> None:
  """PyTorch Adafactor's ranges: ``beta2_decay <= 0``, ``eps = (eps1 | None, eps2)``, ``d >= 1``."""
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(
    beta2_decay, fn=fn, arg="beta2_decay", low=None, high=0.0, high_inclusive=True
  )
  if not isinstance(eps, (tuple, list)) or len(eps) != 2:
    raise TypeError(f"{fn}: `eps` must be a pair (eps1 or None, eps2), got {eps!r}.")
  if eps[0] is not None:
    _hparams.check_number(eps[0], fn=fn, arg="eps[0]")
  _hparams.check_number(eps[1], fn=fn, arg="eps[1]")
  _hparams.check_number(d, fn=fn, arg="d", low=1.0)


class TorchAdafactorState(NamedTuple):
  """State of :func:`scale_by_torch_adafactor`: the step and, per leaf, the factored second
  moment (``row``/``col`` for leaves with 2+ dimensions) or the full one (``variance``)."""

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  row: optax.Updates
  col: optax.Updates
  variance: optax.Updates


def scale_by_torch_adafactor(
  lr: optax.ScalarOrSchedule = 1e-2,
  beta2_decay: float = -0.8,
  eps: tuple[float | None, float] = (None, 1e-3),
  d: float = 1.0,
) -> optax.GradientTransformation:
  r"""PyTorch's Adafactor step (``torch.optim.Adafactor``), its relative step size included.

  .. math::

    \hat\beta_{2,t} = 1 - t^{c},\quad
    \rho_t = \min(\eta_t, 1/\sqrt t),\quad
    \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_t))\,\rho_t,\quad
    u_t = g_t / \sqrt{\max(\hat v_t, \epsilon_1^2)},\quad
    \Delta_t = -\frac{\alpha_t}{\max(1, \mathrm{RMS}(u_t)/d)}\,u_t

  with :math:`\hat v_t` the row-column factored EMA of :math:`g^2` (over the last two axes;
  the full EMA for vectors), :math:`c` = ``beta2_decay``. The output is the parameter change
  itself (the learning rate only caps :math:`\rho_t`): chain nothing after it but a decay.

  Args:
    lr: :math:`\eta`, a float or a schedule: the cap of the relative step size.
    beta2_decay: :math:`c \le 0`.
    eps: :math:`(\epsilon_1, \epsilon_2)`; ``None`` for :math:`\epsilon_1` is the machine
      epsilon of the parameters' dtype, as in PyTorch.
    d: the update clipping threshold, :math:`\ge 1`.

  Returns:
    An :class:`optax.GradientTransformation` (it needs ``params``) whose state is a
    :class:`TorchAdafactorState`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_adafactor(lr=0.01)
    >>> params = {'w': jnp.ones((2, 3))}
    >>> u, _ = tx.update({'w': jnp.ones((2, 3))}, tx.init(params), params)
    >>> u['w'][0, 0]  # -max(eps2, RMS(w)) * min(lr, 1) * sign(g) on the first step
    Array(-0.01, dtype=float32)

  References:
    ``torch/optim/_adafactor.py`` (``_single_tensor_adafactor``); Shazeer & Stern,
    *Adafactor*, ICML 2018.
  """
  check_adafactor("scale_by_torch_adafactor", lr, beta2_decay, eps, d)
  fn = "scale_by_torch_adafactor"
  eps1, eps2 = eps

  def init_fn(params: optax.Params) -> TorchAdafactorState:
    def row(p: jax.Array) -> jax.Array | None:
      return jnp.zeros((*p.shape[:-1], 1), p.dtype) if p.ndim > 1 else None

    def col(p: jax.Array) -> jax.Array | None:
      return jnp.zeros((*p.shape[:-2], 1, p.shape[-1]), p.dtype) if p.ndim > 1 else None

    def full(p: jax.Array) -> jax.Array | None:
      return None if p.ndim > 1 else jnp.zeros_like(p)

    return TorchAdafactorState(
      jnp.zeros([], jnp.int32),
      jax.tree.map(row, params),
      jax.tree.map(col, params),
      jax.tree.map(full, params),
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, TorchAdafactorState]:
    if params is None:
      raise ValueError(f"{fn}: `update` needs `params` (Adafactor's step is relative to them).")
    count = cast(jax.Array, optax.safe_increment(state.count))
    t = count.astype(jnp.result_type(float))
    lr_t = lr(state.count) if callable(lr) else lr
    rho = jnp.minimum(lr_t, 1.0 / jnp.sqrt(t))
    w = t**beta2_decay
    leaves, structure = jax.tree.flatten(updates)
    treedef: Any = structure  # flatten_up_to: the state's None leaves stay leaves
    p_leaves = treedef.flatten_up_to(params)
    r_leaves = treedef.flatten_up_to(state.row)
    c_leaves = treedef.flatten_up_to(state.col)
    v_leaves = treedef.flatten_up_to(state.variance)
    out, new_r, new_c, new_v = [], [], [], []
    for g, p, r, c, v in zip(leaves, p_leaves, r_leaves, c_leaves, v_leaves, strict=True):
      e1 = jnp.finfo(p.dtype).eps if eps1 is None else eps1
      if p.ndim > 1:
        r = _lerp(r, jnp.mean(g * g, axis=-1, keepdims=True), w)
        c = _lerp(c, jnp.mean(g * g, axis=-2, keepdims=True), w)
        var = (r @ c) / jnp.maximum(jnp.mean(r, axis=-2, keepdims=True), e1)
      else:
        v = _lerp(v, g * g, w)
        var = v
      u = g * jax.lax.rsqrt(jnp.maximum(var, e1 * e1))
      alpha = jnp.maximum(eps2, jnp.sqrt(jnp.mean(jnp.square(p)))) * rho
      denom = jnp.maximum(1.0, jnp.sqrt(jnp.mean(jnp.square(u))) / d)
      out.append((-alpha / denom * u).astype(g.dtype))
      new_r.append(r)
      new_c.append(c)
      new_v.append(v)
    unflat = treedef.unflatten
    new_state = TorchAdafactorState(count, unflat(new_r), unflat(new_c), unflat(new_v))
    return unflat(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


#: ``torch.optim.Muon``'s Newton-Schulz coefficients (Keller Jordan's quintic).
TORCH_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def scale_by_torch_muon(
  momentum: float = 0.95,
  nesterov: bool = True,
  ns_coefficients: tuple[float, float, float] = TORCH_NS_COEFFICIENTS,
  eps: float = 1e-7,
  ns_steps: int = 5,
  adjust_lr_fn: str | None = None,
) -> optax.GradientTransformation:
  r"""PyTorch's Muon direction: momentum, Newton-Schulz in bfloat16, the shape-dependent lr ratio.

  .. math::

    b_t = \mu b_{t-1} + (1-\mu) g_t,\quad
    o_t = \mathrm{NS}_{\text{bf16}}\bigl(\text{Nesterov: } g_t + \mu(b_t - g_t);\
      \text{else } b_t\bigr),\quad
    d_t = r(A, B)\, o_t

  with :math:`r = \sqrt{\max(1, A/B)}` (``adjust_lr_fn=None`` or ``'original'``) or
  :math:`0.2\sqrt{\max(A, B)}` (``'match_rms_adamw'``) for an :math:`A\times B` matrix. The
  iteration rounds to bfloat16 where PyTorch's does (the input, the normalized matrix and each
  ``addmm`` result), so it agrees with ``torch.optim.Muon`` to bfloat16 rounding of the last bit
  in a few elements. Only 2-D leaves are allowed, as in PyTorch.

  Args:
    momentum: :math:`\mu \in [0, 1)`.
    nesterov: Nesterov momentum.
    ns_coefficients: the quintic's :math:`(a, b, c)`.
    eps: the normalization's floor, :math:`\ge 0`.
    ns_steps: Newton-Schulz iterations, ``1 <= ns_steps < 100``.
    adjust_lr_fn: ``None``, ``'original'`` or ``'match_rms_adamw'``.

  Returns:
    An :class:`optax.GradientTransformation` whose state is an ``optax.TraceState``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.scale_by_torch_muon()
    >>> u, _ = tx.update({'w': jnp.eye(2)}, tx.init({'w': jnp.zeros((2, 2))}))
    >>> u['w'].dtype, u['w'].shape
    (dtype('float32'), (2, 2))

  References:
    ``torch/optim/_muon.py`` (``_single_tensor_muon``, ``_zeropower_via_newtonschulz``,
    ``_adjust_lr``), PyTorch 2.9+.
  """
  fn = "scale_by_torch_muon"
  check_muon(fn, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn)
  a, b, c = ns_coefficients

  def bf16(x: jax.Array) -> jax.Array:
    return x.astype(jnp.bfloat16).astype(jnp.float32)

  def orthogonalize(u: jax.Array) -> jax.Array:
    x = bf16(u.astype(jnp.float32))
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    # torch: a bfloat16 norm, clamped in bfloat16 (so below the floor the divisor is eps
    # rounded to bfloat16, not eps).
    x = bf16(x / bf16(jnp.maximum(bf16(jnp.sqrt(jnp.sum(x * x))), eps)))
    dot = lambda p, q: jnp.dot(p, q, precision=jax.lax.Precision.HIGHEST)
    for _ in range(ns_steps):
      gram = bf16(dot(x, x.T))
      x = bf16(a * x + dot(bf16(b * gram + c * dot(gram, gram)), x))
    return x.T if tall else x

  def ratio(shape: tuple[int, ...]) -> float:
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
      return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols))

  def init_fn(params: optax.Params) -> optax.TraceState:
    for leaf in jax.tree.leaves(params):
      if leaf.ndim != 2:
        raise ValueError(
          f"{fn}: Muon takes 2-D parameters only (as torch.optim.Muon), got shape "
          f"{leaf.shape}: give the others to another optimizer with optax.partition."
        )
    return optax.TraceState(optax.tree.zeros_like(params))

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.TraceState]:
    del params
    buf = jax.tree.map(lambda g, m: m + (1 - momentum) * (g - m), updates, state.trace)

    def direction(g: jax.Array, m: jax.Array) -> jax.Array:
      u = g + momentum * (m - g) if nesterov else m
      return (ratio(g.shape) * orthogonalize(u)).astype(g.dtype)

    return jax.tree.map(direction, updates, buf), optax.TraceState(buf)

  return optax.GradientTransformation(init_fn, update_fn)


def check_muon(
  fn: str,
  momentum: Any,
  nesterov: Any,
  ns_coefficients: Any,
  eps: Any,
  ns_steps: Any,
  adjust_lr_fn: Any,
  *,
  coefficient_names: tuple[str, str, str] | None = None,
) -> None:
  """``torch.optim.Muon``'s argument rules; ``coefficient_names``: the caller's a, b, c."""
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0)
  _hparams.check_bool(nesterov, fn=fn, arg="nesterov")
  if not isinstance(ns_coefficients, (tuple, list)) or len(ns_coefficients) != 3:
    raise TypeError(f"{fn}: `ns_coefficients` must be three numbers (a, b, c).")
  names = coefficient_names or tuple(f"ns_coefficients[{i}]" for i in range(3))
  for name, value in zip(names, ns_coefficients, strict=True):
    _hparams.check_number(value, fn=fn, arg=name, low=None)
  _hparams.check_number(eps, fn=fn, arg="eps")
  if _hparams.check_count(ns_steps, fn=fn, arg="ns_steps") >= 100:
    raise ValueError(f"{fn}: `ns_steps` must be < 100 (as in PyTorch), got {ns_steps}.")
  if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
    raise ValueError(
      f"{fn}: `adjust_lr_fn` must be None, 'original' or 'match_rms_adamw', got {adjust_lr_fn!r}."
    )


def scale_by_keras_muon(
  ns_coefficients: tuple[float, float, float] = TORCH_NS_COEFFICIENTS,
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

  return optax.GradientTransformation(_init_adam_state, update_fn)


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
    :class:`TorchAdafactorState` (``row``, ``col`` or ``variance`` per leaf).

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

  def init_fn(params: optax.Params) -> TorchAdafactorState:
    def factored(p: jax.Array, shape: Callable[[tuple[int, ...]], tuple[int, ...]]) -> Any:
      # (the shape is computed only for matrices: a 0-d or 1-d leaf is not factored)
      return jnp.zeros(shape(p.shape), p.dtype) if p.ndim > 1 else None

    return TorchAdafactorState(
      jnp.zeros([], jnp.int32),
      jax.tree.map(lambda p: factored(p, lambda s: s[:-1]), params),
      jax.tree.map(lambda p: factored(p, lambda s: (*s[:-2], s[-1])), params),
      jax.tree.map(lambda p: None if p.ndim > 1 else jnp.zeros_like(p), params),
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, TorchAdafactorState]:
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
    new_state = TorchAdafactorState(count, unflat(new_r), unflat(new_c), unflat(new_v))
    return unflat(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)
