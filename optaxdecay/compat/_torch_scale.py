"""PyTorch's optimizer directions that Optax has no transform for.

Each ``scale_by_torch_*`` checks its arguments and calls its ``torch_*_transform`` builder, which
takes checked arguments: the optimizers of :mod:`optaxdecay.compat` check their own (with their
own names in the messages) and call the builder, so every value is checked once.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from optaxdecay import _hparams
from optaxdecay.compat._common import (
  NS_COEFFICIENTS,
  check_moments,
  check_muon,
  check_torch_nesterov,
  init_adam_state,
  momentum_trace,
)


class ScaleByTorchMomentumState(NamedTuple):
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
    :class:`ScaleByTorchMomentumState`.

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
  return torch_momentum_transform(momentum, dampening, nesterov)


def torch_momentum_transform(
  momentum: float, dampening: float, nesterov: bool
) -> optax.GradientTransformation:
  """:func:`scale_by_torch_momentum` from checked arguments."""
  # The structure follows Python-number zeros only (see momentum_trace): an injected
  # dampening of 0 runs the general buffer below, which is the same arithmetic.
  if _hparams.is_static_zero(momentum) or _hparams.is_static_zero(dampening):
    return momentum_trace(momentum, nesterov)

  def init_fn(params: optax.Params) -> ScaleByTorchMomentumState:
    return ScaleByTorchMomentumState(
      count=jnp.zeros([], jnp.int32), momentum_buffer=optax.tree.zeros_like(params)
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByTorchMomentumState]:
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
    return out, ScaleByTorchMomentumState(cast(jax.Array, optax.safe_increment(state.count)), buf)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByTorchAdagradState(NamedTuple):
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
    An :class:`optax.GradientTransformation` whose state is a :class:`ScaleByTorchAdagradState`.

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
  return torch_adagrad_transform(initial_accumulator_value, eps)


def torch_adagrad_transform(
  initial_accumulator_value: float, eps: float
) -> optax.GradientTransformation:
  """:func:`scale_by_torch_adagrad` from checked arguments."""

  def init_fn(params: optax.Params) -> ScaleByTorchAdagradState:
    return ScaleByTorchAdagradState(
      jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params)
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByTorchAdagradState]:
    del params
    total = jax.tree.map(lambda s, g: s + g * g, state.sum_of_squares, updates)
    scaled = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, total)
    return scaled, ScaleByTorchAdagradState(total)

  return optax.GradientTransformation(init_fn, update_fn)


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
  return torch_amsgrad_transform(b1, b2, eps)


def torch_amsgrad_transform(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  """:func:`scale_by_torch_amsgrad` from checked arguments."""

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
  return torch_nadam_transform(b1, b2, eps, momentum_decay)


def torch_nadam_transform(
  b1: float, b2: float, eps: float, momentum_decay: float
) -> optax.GradientTransformation:
  """:func:`scale_by_torch_nadam` from checked arguments."""

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
  return torch_radam_transform(b1, b2, eps)


def torch_radam_transform(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  """:func:`scale_by_torch_radam` from checked arguments."""
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

  return optax.GradientTransformation(init_adam_state, update_fn)


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


def check_torch_adafactor(fn: str, lr: Any, beta2_decay: Any, eps: Any, d: Any) -> None:
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


def _lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
  """``torch.lerp``: exact at both ends (``weight = 1`` gives ``end``, not ``start + (end -
  start)``, which cancels to 0 when ``end`` is far below ``start``)."""
  return jnp.where(
    weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
  ).astype(start.dtype)


class ScaleByTorchAdafactorState(NamedTuple):
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
    :class:`ScaleByTorchAdafactorState`.

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
  fn = "scale_by_torch_adafactor"
  check_torch_adafactor(fn, lr, beta2_decay, eps, d)
  return torch_adafactor_transform(lr, beta2_decay, eps, d, fn=fn)


def torch_adafactor_transform(
  lr: optax.ScalarOrSchedule,
  beta2_decay: float,
  eps: tuple[float | None, float],
  d: float,
  *,
  fn: str,
) -> optax.GradientTransformation:
  """:func:`scale_by_torch_adafactor` from checked arguments, its errors naming ``fn``."""
  eps1, eps2 = eps

  def init_fn(params: optax.Params) -> ScaleByTorchAdafactorState:
    def row(p: jax.Array) -> jax.Array | None:
      return jnp.zeros((*p.shape[:-1], 1), p.dtype) if p.ndim > 1 else None

    def col(p: jax.Array) -> jax.Array | None:
      return jnp.zeros((*p.shape[:-2], 1, p.shape[-1]), p.dtype) if p.ndim > 1 else None

    def full(p: jax.Array) -> jax.Array | None:
      return None if p.ndim > 1 else jnp.zeros_like(p)

    return ScaleByTorchAdafactorState(
      jnp.zeros([], jnp.int32),
      jax.tree.map(row, params),
      jax.tree.map(col, params),
      jax.tree.map(full, params),
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByTorchAdafactorState]:
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
    new_state = ScaleByTorchAdafactorState(count, unflat(new_r), unflat(new_c), unflat(new_v))
    return unflat(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_torch_muon(
  momentum: float = 0.95,
  nesterov: bool = True,
  ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
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
  return torch_muon_transform(
    momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, fn=fn
  )


def torch_muon_transform(
  momentum: float,
  nesterov: bool,
  ns_coefficients: tuple[float, float, float],
  eps: float,
  ns_steps: int,
  adjust_lr_fn: str | None,
  *,
  fn: str,
) -> optax.GradientTransformation:
  """:func:`scale_by_torch_muon` from checked arguments, its errors naming ``fn``."""
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
