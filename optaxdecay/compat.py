r"""Other frameworks' optimizers and weight-decay conventions, reproduced exactly.

"weight_decay" names a different update in every framework: an L2 term added
to the gradient (PyTorch ``SGD``/``Adam``) or a decoupled shrink of the weights
(``AdamW``); multiplied by the learning rate (PyTorch, Keras, Optax), by the
learning rate's *ratio* to its initial value (Composer), by a schedule
multiplier only (the paper), or by nothing (TF-Addons); with Adam's epsilon
after the bias correction (PyTorch) or before it ("epsilon hat", Keras). Each
factory here returns an :class:`optax.GradientTransformation` that reproduces
one step of the named optimizer up to float rounding, built from
:func:`~optaxdecay.add_l2_to_grad`, :func:`~optaxdecay.decoupled_weight_decay`
and Optax pieces; only two conventions need their own transform:
:func:`scale_by_torch_momentum` (PyTorch's dampening with its undampened first
step) and :func:`scale_by_keras_adam` (epsilon hat).

Notation: :math:`\eta_t` is the learning rate at step ``t`` (0-based: the
value a schedule returns for the ``t``-th update, like a PyTorch ``LambdaLR``
stepped once per optimizer step or a Keras ``LearningRateSchedule``),
:math:`\eta_0` its initial value, :math:`\lambda` the framework's
``weight_decay`` and :math:`g_t` the incoming gradient. Optax adds updates to
the parameters, so a descent step is :math:`-\eta_t\,u_t`.

Every factory takes ``mask=``: which leaves get the L2 term or the decay
(``None``, the frameworks' own default, selects all; see
:func:`~optaxdecay.bias_mask`). The ``*_to_*`` converters return the keyword
arguments of the target factory that give the same trajectory, and say in
their docstrings when that is exact; where no conversion is exact they raise.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _hparams, _selection
from optaxdecay._rates import lr_times
from optaxdecay._transforms import decay_transform, l2_transform

__all__ = [
  "ScaleByKerasAdamState",
  "TorchMomentumState",
  "composer_adamw",
  "composer_adamw_to_torch_adamw",
  "composer_sgdw",
  "keras_adam",
  "keras_adamw",
  "keras_adamw_to_tfa_adamw",
  "keras_sgd",
  "keras_sgd_to_torch_sgd",
  "paper_adamw",
  "paper_adamw_to_torch_adamw",
  "paper_sgdw",
  "paper_sgdw_to_keras_sgd",
  "scale_by_keras_adam",
  "scale_by_torch_momentum",
  "tfa_adamw",
  "tfa_adamw_to_keras_adamw",
  "tfa_sgdw",
  "torch_adam",
  "torch_adamw",
  "torch_adamw_to_composer_adamw",
  "torch_adamw_to_paper_adamw",
  "torch_sgd",
  "torch_sgd_to_composer_sgdw",
  "torch_sgd_to_keras_sgd",
]

ScalarOrSchedule: TypeAlias = optax.ScalarOrSchedule


# --------------------------------------------------------------------------
# Argument checks.


def _check_betas(fn: str, betas: Any) -> tuple[Any, Any]:
  if not isinstance(betas, (tuple, list)) or len(betas) != 2:
    raise TypeError(f"{fn}: `betas` must be a pair (beta1, beta2), got {betas!r}.")
  _hparams.check_number(betas[0], fn=fn, arg="betas[0]", high=1.0)
  _hparams.check_number(betas[1], fn=fn, arg="betas[1]", high=1.0)
  return betas[0], betas[1]


def _is_zero(value: Any) -> bool:
  """A concrete zero (Python or NumPy/JAX scalar, not traced)."""
  if value is None:
    return True
  if isinstance(value, jax.core.Tracer) or callable(value):
    return False
  return float(np.asarray(value)) == 0.0


def _initial(fn: str, arg: str, lr: ScalarOrSchedule) -> Any:
  """The learning rate's value at step 0: ``lr`` itself or ``lr(0)``; must be > 0."""
  value = lr(jnp.zeros([], jnp.int32)) if callable(lr) else lr
  where = " (the schedule's value at step 0)" if callable(lr) else ""
  x = _hparams.check_number(value, fn=fn, arg=arg, low=None, where=where)
  if x is not None and x <= 0:
    raise ValueError(
      f"{fn}: `{arg}` must be > 0 at step 0 (got {x}): the conversion divides by "
      "the initial learning rate."
    )
  return x if x is not None else value


def _decay(
  fn: str, what: str, rate: ScalarOrSchedule, mask: _selection.MaskArg
) -> optax.GradientTransformation:
  """``decoupled_weight_decay(rate)``, its errors naming ``fn`` and ``what``.

  ``rate`` is built from arguments ``fn`` checked itself; only the product is new here.
  """
  _hparams.check_rate(rate, fn=fn, arg=what)
  return decay_transform(rate, _selection.selection(mask, fn=fn), fn=fn, arg=what)


# --------------------------------------------------------------------------
# The two transforms Optax does not have.


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
  if nesterov and (_is_zero(momentum) or not _is_zero(dampening)):
    raise ValueError(f"{fn}: `nesterov=True` requires `momentum > 0` and `dampening == 0`.")
  if _is_zero(momentum):
    return optax.identity()
  if _is_zero(dampening):
    return optax.trace(decay=momentum, nesterov=nesterov)

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
    return buf, TorchMomentumState(cast(jax.Array, optax.safe_increment(state.count)), buf)

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


def scale_by_keras_adam(
  beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7
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
  :func:`optax.scale_by_learning_rate`.

  Args:
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`; Keras' default ``1e-7``.

  Returns:
    An :class:`optax.GradientTransformation` with a
    :class:`ScaleByKerasAdamState`.

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

  def init_fn(params: optax.Params) -> ScaleByKerasAdamState:
    return ScaleByKerasAdamState(
      count=jnp.zeros([], jnp.int32),
      mu=optax.tree.zeros_like(params),
      nu=optax.tree.zeros_like(params),
    )

  def update_fn(
    updates: optax.Updates, state: Any, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByKerasAdamState]:
    del params
    mu = optax.tree.update_moment(updates, state.mu, beta_1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, beta_2, 2)
    count = cast(jax.Array, optax.safe_increment(state.count))

    def direction(m: jax.Array, v: jax.Array) -> jax.Array:
      t = count.astype(m.dtype)
      alpha = jnp.sqrt(1 - jnp.asarray(beta_2, m.dtype) ** t) / (
        1 - jnp.asarray(beta_1, m.dtype) ** t
      )
      return (m * alpha / (jnp.sqrt(v) + epsilon)).astype(m.dtype)

    return jax.tree.map(direction, mu, nu), ScaleByKerasAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------
# PyTorch.


def torch_sgd(
  lr: ScalarOrSchedule = 1e-3,
  momentum: float = 0.0,
  dampening: float = 0.0,
  weight_decay: float = 0.0,
  nesterov: bool = False,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.SGD``: weight decay is L2 in the gradient, before momentum.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    b_t = \text{torch momentum}(g_t)\ \text{(see } \texttt{scale\_by\_torch\_momentum}),\quad
    \theta_{t+1} = \theta_t - \eta_t\, b_t

  The decay is multiplied by the learning rate (and its schedule) and, with
  momentum, accumulated in the buffer: with :math:`\mu > 0` it is **not** a
  decoupled decay of any rate. Built as ``chain(add_l2_to_grad(weight_decay),
  scale_by_torch_momentum(...), scale_by_learning_rate(lr))``.

  Args:
    lr: :math:`\eta`, a float or a schedule ``step -> lr`` (the counterpart
      of a ``LambdaLR`` stepped once per ``optimizer.step()``: step ``t`` uses
      ``base_lr * lr_lambda(t)``). Default ``1e-3`` as in PyTorch.
    momentum: :math:`\mu \ge 0`.
    dampening: :math:`\tau \ge 0`; the first buffer is undampened.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    nesterov: PyTorch's Nesterov momentum (needs momentum and no dampening).
    mask: leaves that get the L2 term (PyTorch: the param groups with a
      nonzero ``weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a negative or non-finite hyperparameter; Nesterov without
      momentum or with dampening.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_sgd(lr=0.1, weight_decay=0.01)
    >>> params = {'w': jnp.array([1.0, -2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.5, 0.5])}, tx.init(params), params)
    >>> updates['w']  # -0.1 * (g + 0.01 * w)
    Array([-0.051, -0.048], dtype=float32)

  References:
    ``torch/optim/sgd.py`` (``_single_tensor_sgd``), PyTorch 2.x.
  """
  fn = "torch_sgd"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  _hparams.check_number(dampening, fn=fn, arg="dampening")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  if nesterov and (_is_zero(momentum) or not _is_zero(dampening)):
    raise ValueError(f"{fn}: Nesterov momentum requires a momentum and zero dampening.")
  return optax.chain(
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    scale_by_torch_momentum(momentum, dampening, nesterov),
    optax.scale_by_learning_rate(lr),
  )


def torch_adam(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.Adam``: weight decay is L2, passed through the preconditioner.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    \theta_{t+1} = \theta_t - \eta_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  with :math:`\hat m, \hat v` the bias-corrected moments **of the L2-augmented
  gradient** and :math:`\epsilon` added after the bias correction. This is
  *not* AdamW: the decay is divided by :math:`\sqrt{\hat v_t}+\epsilon`, so
  weights with large gradients are barely regularized. Built as
  ``chain(add_l2_to_grad(weight_decay), optax.scale_by_adam(...),
  scale_by_learning_rate(lr))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    mask: leaves that get the L2 term; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of PyTorch's range.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adam(lr=0.1, weight_decay=1.0)
    >>> params = {'w': jnp.array([1.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # the first Adam step is -lr * sign(g + wd * w)
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/adam.py`` (``_single_tensor_adam``, ``decoupled_weight_decay=False``).
  """
  fn = "torch_adam"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  b1, b2 = _check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  return optax.chain(
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(lr),
  )


def torch_adamw(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 1e-2,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.AdamW``: decoupled decay, multiplied by the (scheduled) lr.

  .. math::

    \theta_{t+1} = \theta_t(1 - \eta_t\lambda)
      - \eta_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  with the moments of the raw gradient. Same update as ``optax.adamw(lr,
  b1, b2, eps, weight_decay)``, but with PyTorch's defaults
  (``weight_decay=1e-2``, not Optax's ``1e-4``). Built as
  ``chain(optax.scale_by_adam(...), scale_by_learning_rate(lr),
  decoupled_weight_decay(l2_to_decay_rate(weight_decay, lr)))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`; the fraction removed per step is
      :math:`\eta_t\lambda`, which must be ``< 1``.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range, or ``lr * weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adamw(lr=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # no gradient: only the decay, -lr * wd * w
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/adamw.py`` and ``torch/optim/adam.py``
    (``decoupled_weight_decay=True``); Loshchilov & Hutter, `Decoupled Weight
    Decay Regularization <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  fn = "torch_adamw"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  b1, b2 = _check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  return optax.chain(
    optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(lr),
    _decay(fn, "lr * weight_decay", lr_times(weight_decay, lr), mask),
  )


# --------------------------------------------------------------------------
# Keras 3.


def _keras_wd(fn: str, weight_decay: float | None) -> float:
  if weight_decay is None:
    return 0.0
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  return weight_decay


def keras_sgd(
  learning_rate: ScalarOrSchedule = 0.01,
  momentum: float = 0.0,
  nesterov: bool = False,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.SGD`` (Keras 3): decoupled decay ×lr, lr inside the velocity.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    v_t = \mu v_{t-1} - \eta_t g_t,\quad
    \theta_{t+1} = \theta + \begin{cases}\mu v_t - \eta_t g_t & \text{Nesterov}\\
    v_t & \text{else}\end{cases}

  Keras decays every optimizer's weights *before* its step, by
  :math:`\eta_t\lambda` (``variable - variable * wd * lr``): for SGD too, so
  Keras' ``SGD(weight_decay=λ)`` is **not** PyTorch's ``SGD(weight_decay=λ)``
  once there is momentum. The velocity accumulates :math:`\eta_t g_t`, so
  with a learning-rate schedule it also differs from PyTorch's momentum
  (which multiplies the buffer by the current :math:`\eta_t`). Built as
  ``chain(scale_by_learning_rate(lr), optax.trace(momentum, nesterov),
  decoupled_weight_decay(l2_to_decay_rate(weight_decay, lr)))``.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (Keras'
      ``LearningRateSchedule``, called with ``iterations``, 0 on the first
      step). Default ``0.01``.
    momentum: :math:`\mu \in [0, 1]`.
    nesterov: Keras' Nesterov form (ignored without momentum, as in Keras).
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``
      removes some); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``learning_rate *
      weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_sgd(learning_rate=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([1.0])}, tx.init(params), params)
    >>> updates['w']  # -lr * wd * w - lr * g
    Array([-0.2], dtype=float32)

  References:
    ``keras/src/optimizers/sgd.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  fn = "keras_sgd"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0, high_inclusive=True)
  wd = _keras_wd(fn, weight_decay)
  return optax.chain(
    optax.scale_by_learning_rate(learning_rate),
    optax.identity() if _is_zero(momentum) else optax.trace(decay=momentum, nesterov=nesterov),
    _decay(fn, "learning_rate * weight_decay", lr_times(wd, learning_rate), mask),
  )


def keras_adam(
  learning_rate: ScalarOrSchedule = 0.001,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Adam`` (Keras 3): epsilon hat; ``weight_decay`` is decoupled.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
      \cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  In Keras 3 ``Adam(weight_decay=λ)`` is the same update as
  ``AdamW(weight_decay=λ)`` (the decay lives in the base optimizer), unlike
  PyTorch's ``Adam(weight_decay)``. See :func:`keras_adamw` and
  :func:`scale_by_keras_adam`.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`; Keras' default ``1e-7``.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``learning_rate *
      weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adam(learning_rate=0.1, epsilon=0.0)
    >>> params = {'w': jnp.array([1.0])}
    >>> updates, _ = tx.update({'w': jnp.array([3.0])}, tx.init(params), params)
    >>> updates['w']
    Array([-0.1], dtype=float32)

  References:
    ``keras/src/optimizers/adam.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  return _keras_adam("keras_adam", learning_rate, beta_1, beta_2, epsilon, weight_decay, mask)


def _keras_adam(
  fn: str,
  learning_rate: ScalarOrSchedule,
  beta_1: float,
  beta_2: float,
  epsilon: float,
  weight_decay: float | None,
  mask: _selection.MaskArg,
) -> optax.GradientTransformation:
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  wd = _keras_wd(fn, weight_decay)
  _hparams.check_number(beta_1, fn=fn, arg="beta_1", high=1.0)
  _hparams.check_number(beta_2, fn=fn, arg="beta_2", high=1.0)
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")
  return optax.chain(
    scale_by_keras_adam(beta_1, beta_2, epsilon),
    optax.scale_by_learning_rate(learning_rate),
    _decay(fn, "learning_rate * weight_decay", lr_times(wd, learning_rate), mask),
  )


def keras_adamw(
  learning_rate: ScalarOrSchedule = 0.001,
  weight_decay: float = 0.004,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.AdamW`` (Keras 3): decay ×lr before the step; epsilon hat.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
      \cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  The decay is the same as PyTorch's ``AdamW`` (:math:`\eta_t\lambda`; the
  Adam step does not depend on :math:`\theta`, so "before" or "after" the
  step is the same update), but the Adam direction uses epsilon hat
  (:func:`scale_by_keras_adam`), so the two differ whenever :math:`\epsilon`
  is not negligible against :math:`\sqrt{\hat v_t}`. Defaults are Keras':
  ``weight_decay=0.004``, ``epsilon=1e-7``.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    weight_decay: :math:`\lambda \ge 0`.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`.
    mask: leaves that are decayed (Keras' ``exclude_from_weight_decay``);
      ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``learning_rate *
      weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adamw(learning_rate=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']
    Array([-0.1], dtype=float32)

  References:
    ``keras/src/optimizers/adamw.py``, ``adam.py`` and ``base_optimizer.py``.
  """
  if weight_decay is None:
    raise TypeError("keras_adamw: `weight_decay` must be a float, got None.")
  return _keras_adam("keras_adamw", learning_rate, beta_1, beta_2, epsilon, weight_decay, mask)


# --------------------------------------------------------------------------
# TensorFlow Addons.


def tfa_adamw(
  weight_decay: ScalarOrSchedule,
  learning_rate: ScalarOrSchedule = 0.001,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``tfa.optimizers.AdamW``: the decay is **not** multiplied by the learning rate.

  .. math::

    \theta \leftarrow \theta - \lambda_t\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
      \cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  TF-Addons' ``DecoupledWeightDecayExtension`` subtracts ``weight_decay *
  var`` before the base optimizer's step (here tf.keras' Adam, with epsilon
  hat). A learning-rate schedule does **not** reach the decay: TF-Addons
  asks users to schedule ``weight_decay`` themselves, so it is a float or a
  schedule here. :func:`keras_adamw_to_tfa_adamw` gives the TF-Addons decay
  that reproduces Keras' :math:`\eta_t\lambda`.

  Args:
    weight_decay: :math:`\lambda_t \in [0, 1)`, the fraction removed per step:
      a float or a schedule (required, as in TF-Addons).
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`; default ``1e-7``.
    mask: leaves that are decayed (TF-Addons' ``decay_var_list``); ``None``
      selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.tfa_adamw(weight_decay=0.01, learning_rate=0.1)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # -wd * w, whatever the learning rate
    Array([-0.02], dtype=float32)

  References:
    TF-Addons ``tensorflow_addons/optimizers/weight_decay_optimizers.py``
    (``DecoupledWeightDecayExtension``, ``AdamW``); tf.keras (v2) ``Adam``.
  """
  fn = "tfa_adamw"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(beta_1, fn=fn, arg="beta_1", high=1.0)
  _hparams.check_number(beta_2, fn=fn, arg="beta_2", high=1.0)
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")
  return optax.chain(
    scale_by_keras_adam(beta_1, beta_2, epsilon),
    optax.scale_by_learning_rate(learning_rate),
    _decay(fn, "weight_decay", weight_decay, mask),
  )


def tfa_sgdw(
  weight_decay: ScalarOrSchedule,
  learning_rate: ScalarOrSchedule = 0.001,
  momentum: float = 0.0,
  nesterov: bool = False,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``tfa.optimizers.SGDW``: decay not ×lr; tf.keras momentum (lr inside the velocity).

  .. math::

    \theta \leftarrow \theta - \lambda_t\theta,\quad
    v_t = \mu v_{t-1} - \eta_t g_t,\quad
    \theta_{t+1} = \theta + \begin{cases}\mu v_t - \eta_t g_t & \text{Nesterov}\\
    v_t & \text{else}\end{cases}

  Args:
    weight_decay: :math:`\lambda_t \in [0, 1)`: a float or a schedule.
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    momentum: :math:`\mu \ge 0`.
    nesterov: tf.keras' Nesterov form.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.tfa_sgdw(weight_decay=0.01, learning_rate=0.1)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([1.0])}, tx.init(params), params)
    >>> updates['w']  # -wd * w - lr * g
    Array([-0.12], dtype=float32)

  References:
    TF-Addons ``weight_decay_optimizers.py`` (``SGDW``); tf.keras (v2) ``SGD``.
  """
  fn = "tfa_sgdw"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  return optax.chain(
    optax.scale_by_learning_rate(learning_rate),
    optax.identity() if _is_zero(momentum) else optax.trace(decay=momentum, nesterov=nesterov),
    _decay(fn, "weight_decay", weight_decay, mask),
  )


# --------------------------------------------------------------------------
# MosaicML Composer.


def _composer_rate(
  fn: str, lr: ScalarOrSchedule, weight_decay: float, initial_lr: float | None
) -> ScalarOrSchedule:
  """``(lr_t / initial_lr) * weight_decay``."""
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  if initial_lr is None:
    lr0 = _initial(fn, "lr", lr)
  else:
    _hparams.check_number(initial_lr, fn=fn, arg="initial_lr")
    lr0 = _initial(fn, "initial_lr", initial_lr)
  if _is_zero(weight_decay):
    return 0.0
  return _hparams.combine(lambda lr_t: lr_t / lr0 * weight_decay, lr)


def composer_sgdw(
  lr: ScalarOrSchedule,
  momentum: float = 0.0,
  dampening: float = 0.0,
  weight_decay: float = 0.0,
  nesterov: bool = False,
  *,
  initial_lr: float | None = None,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Composer's ``DecoupledSGDW``: decay :math:`(\eta_t/\eta_0)\lambda`, PyTorch momentum.

  .. math::

    \theta_{t+1} = \theta_t\Bigl(1 - \tfrac{\eta_t}{\eta_0}\lambda\Bigr) - \eta_t\, b_t

  with :math:`b_t` PyTorch's momentum buffer of the **raw** gradient
  (:func:`scale_by_torch_momentum`). The decay follows the learning-rate
  *schedule* but not its *size*: ``weight_decay`` is the fraction removed per
  step at the initial learning rate.

  Args:
    lr: :math:`\eta`, a float or a schedule (required, as in Composer).
    momentum: :math:`\mu \ge 0`.
    dampening: :math:`\tau \ge 0`.
    weight_decay: :math:`\lambda \ge 0`.
    nesterov: PyTorch's Nesterov momentum.
    initial_lr: :math:`\eta_0 > 0`, the learning rate given to Composer's
      constructor (``group['initial_lr']``); default ``lr`` or ``lr(0)``.
      Pass it when a schedule starts below its base value (a warmup from 0).
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; :math:`\eta_0 \le 0`;
      Nesterov without momentum or with dampening; a decay fraction
      :math:`(\eta_t/\eta_0)\lambda \ge 1` at step 0.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from optaxdecay import compat
    >>> lr = optax.linear_schedule(0.1, 0.05, transition_steps=10)
    >>> tx = compat.composer_sgdw(lr, weight_decay=0.01)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # -(lr_0 / lr_0) * wd * w
    Array([-0.02], dtype=float32)

  References:
    MosaicML Composer ``composer/optim/decoupled_weight_decay.py``
    (``DecoupledSGDW.sgdw``).
  """
  fn = "composer_sgdw"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  _hparams.check_number(dampening, fn=fn, arg="dampening")
  if nesterov and (_is_zero(momentum) or not _is_zero(dampening)):
    raise ValueError(f"{fn}: Nesterov momentum requires a momentum and zero dampening.")
  rate = _composer_rate(fn, lr, weight_decay, initial_lr)
  return optax.chain(
    scale_by_torch_momentum(momentum, dampening, nesterov),
    optax.scale_by_learning_rate(lr),
    _decay(fn, "lr / initial_lr * weight_decay", rate, mask),
  )


def composer_adamw(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.95),
  eps: float = 1e-8,
  weight_decay: float = 1e-5,
  *,
  initial_lr: float | None = None,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Composer's ``DecoupledAdamW``: decay :math:`(\eta_t/\eta_0)\lambda`.

  .. math::

    \theta_{t+1} = \theta_t\Bigl(1 - \tfrac{\eta_t}{\eta_0}\lambda\Bigr)
      - \eta_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  PyTorch's Adam direction, Composer's defaults (``betas=(0.9, 0.95)``,
  ``weight_decay=1e-5``). Equal to :func:`torch_adamw` with
  ``weight_decay / initial_lr`` (see :func:`composer_adamw_to_torch_adamw`)
  and to :func:`paper_adamw` with :math:`\alpha=\eta_0`, multiplier
  :math:`\eta_t/\eta_0`.

  Args:
    lr: :math:`\eta`, a float or a schedule.
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`.
    initial_lr: :math:`\eta_0 > 0` (Composer's constructor ``lr``); default
      ``lr`` or ``lr(0)``.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; :math:`\eta_0 \le 0`; a decay
      fraction :math:`\ge 1`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.composer_adamw(lr=0.1, weight_decay=0.01)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # -wd * w: not multiplied by lr = 0.1
    Array([-0.02], dtype=float32)

  References:
    MosaicML Composer ``composer/optim/decoupled_weight_decay.py``
    (``DecoupledAdamW.adamw``).
  """
  fn = "composer_adamw"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  b1, b2 = _check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  rate = _composer_rate(fn, lr, weight_decay, initial_lr)
  return optax.chain(
    optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(lr),
    _decay(fn, "lr / initial_lr * weight_decay", rate, mask),
  )


# --------------------------------------------------------------------------
# Loshchilov & Hutter (ICLR 2019).


def paper_adamw(
  alpha: float = 1e-3,
  *,
  weight_decay: float,
  schedule_multiplier: ScalarOrSchedule = 1.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""AdamW as in Loshchilov & Hutter, Algorithm 2: decay :math:`\eta_t\lambda`, not ×α.

  .. math::

    \theta_t = \theta_{t-1} - \eta_t\Bigl(\alpha\,\frac{\hat m_t}{\sqrt{\hat v_t}
      + \epsilon} + \lambda\,\theta_{t-1}\Bigr)

  :math:`\eta_t` is the schedule multiplier (``SetScheduleMultiplier(t)``):
  it scales both terms, while :math:`\alpha` scales only the Adam step. So
  :math:`\lambda_{\text{paper}} = \alpha\,\lambda_{\text{PyTorch}}`: see
  :func:`torch_adamw_to_paper_adamw`.

  Args:
    alpha: :math:`\alpha > 0`; the paper's default ``0.001``.
    weight_decay: :math:`\lambda \ge 0` (no default in the paper).
    schedule_multiplier: :math:`\eta_t \ge 0`: a float or a schedule, called
      with the 0-based step count (the paper's :math:`t-1`).
    b1: :math:`\beta_1 \in [0, 1)`.
    b2: :math:`\beta_2 \in [0, 1)`.
    eps: :math:`\epsilon \ge 0`.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; :math:`\eta_t\lambda \ge 1`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.paper_adamw(0.1, weight_decay=0.01, schedule_multiplier=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # -eta * wd * w
    Array([-0.01], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Algorithm 2.
  """
  fn = "paper_adamw"
  _hparams.check_number(alpha, fn=fn, arg="alpha")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_scalar_or_schedule(schedule_multiplier, fn=fn, arg="schedule_multiplier")
  _hparams.check_number(b1, fn=fn, arg="b1", high=1.0)
  _hparams.check_number(b2, fn=fn, arg="b2", high=1.0)
  _hparams.check_number(eps, fn=fn, arg="eps")
  return optax.chain(
    optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(_hparams.combine(lambda e: alpha * e, schedule_multiplier)),
    _decay(
      fn,
      "schedule_multiplier * weight_decay",
      lr_times(weight_decay, schedule_multiplier),
      mask,
    ),
  )


def paper_sgdw(
  alpha: float,
  b1: float,
  *,
  weight_decay: float,
  schedule_multiplier: ScalarOrSchedule = 1.0,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""SGDW as in Loshchilov & Hutter, Algorithm 1: lr inside the momentum, decay ×η_t.

  .. math::

    m_t = \beta_1 m_{t-1} + \eta_t\alpha\, g_t,\qquad
    \theta_t = \theta_{t-1} - m_t - \eta_t\lambda\,\theta_{t-1}

  Built as ``chain(scale_by_learning_rate(alpha * eta), optax.trace(b1),
  decoupled_weight_decay(eta * weight_decay))``.

  Args:
    alpha: :math:`\alpha \ge 0`, the initial learning rate.
    b1: :math:`\beta_1 \ge 0`, the momentum factor.
    weight_decay: :math:`\lambda \ge 0`.
    schedule_multiplier: :math:`\eta_t \ge 0`, a float or a schedule called
      with the 0-based step count.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; :math:`\eta_t\lambda \ge 1`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.paper_sgdw(0.1, 0.9, weight_decay=0.01, schedule_multiplier=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([1.0])}, tx.init(params), params)
    >>> updates['w']  # -eta * alpha * g - eta * wd * w
    Array([-0.06], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Algorithm 1.
  """
  fn = "paper_sgdw"
  _hparams.check_number(alpha, fn=fn, arg="alpha")
  _hparams.check_number(b1, fn=fn, arg="b1")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_scalar_or_schedule(schedule_multiplier, fn=fn, arg="schedule_multiplier")
  return optax.chain(
    optax.scale_by_learning_rate(_hparams.combine(lambda e: alpha * e, schedule_multiplier)),
    optax.identity() if _is_zero(b1) else optax.trace(decay=b1),
    _decay(
      fn,
      "schedule_multiplier * weight_decay",
      lr_times(weight_decay, schedule_multiplier),
      mask,
    ),
  )


# --------------------------------------------------------------------------
# Converters: keyword arguments for the target factory.


def torch_adamw_to_paper_adamw(
  lr: ScalarOrSchedule,
  weight_decay: float = 1e-2,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
) -> dict[str, Any]:
  r"""``paper_adamw`` arguments equal to ``torch_adamw(lr, betas, eps, weight_decay)``.

  :math:`\alpha = \eta_0`, :math:`\lambda_{\text{paper}} = \eta_0\lambda`,
  multiplier :math:`\eta_t/\eta_0`. **Exact** for every constant or scheduled
  ``lr`` with :math:`\eta_0 > 0`: both are
  :math:`\theta - \eta_t u_t - \eta_t\lambda\theta` (up to float rounding in
  :math:`\eta_0\cdot\eta_t/\eta_0`).

  Args:
    lr: PyTorch's learning rate, a float or a schedule; :math:`\eta_0 > 0`.
    weight_decay: PyTorch's :math:`\lambda`.
    betas: PyTorch's betas.
    eps: PyTorch's epsilon (both add it after the bias correction).

  Returns:
    ``dict(alpha, weight_decay, schedule_multiplier, b1, b2, eps)`` for
    :func:`paper_adamw`.

  Raises:
    ValueError: :math:`\eta_0 \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> kw = compat.torch_adamw_to_paper_adamw(lr=0.5, weight_decay=0.01)
    >>> kw['alpha'], kw['weight_decay'], kw['schedule_multiplier']
    (0.5, 0.005, 1.0)
    >>> tx = compat.paper_adamw(**kw)
  """
  fn = "torch_adamw_to_paper_adamw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  lr0 = _initial(fn, "lr", lr)
  b1, b2 = _check_betas(fn, betas)
  return dict(
    alpha=lr0,
    weight_decay=lr0 * weight_decay,
    schedule_multiplier=_hparams.combine(lambda lr_t: lr_t / lr0, lr),
    b1=b1,
    b2=b2,
    eps=eps,
  )


def paper_adamw_to_torch_adamw(
  alpha: float = 1e-3,
  *,
  weight_decay: float,
  schedule_multiplier: ScalarOrSchedule = 1.0,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
) -> dict[str, Any]:
  r"""``torch_adamw`` arguments equal to ``paper_adamw(...)``.

  :math:`\eta_t^{\text{torch}} = \alpha\eta_t`,
  :math:`\lambda_{\text{torch}} = \lambda/\alpha`. **Exact** for any
  multiplier schedule when :math:`\alpha > 0`.

  Args:
    alpha: the paper's :math:`\alpha > 0`.
    weight_decay: the paper's :math:`\lambda`.
    schedule_multiplier: the paper's :math:`\eta_t`, a float or a schedule.
    b1: :math:`\beta_1`.
    b2: :math:`\beta_2`.
    eps: :math:`\epsilon`.

  Returns:
    ``dict(lr, betas, eps, weight_decay)`` for :func:`torch_adamw` (and
    ``torch.optim.AdamW`` with a ``LambdaLR`` of ``schedule_multiplier``).

  Raises:
    ValueError: :math:`\alpha \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.paper_adamw_to_torch_adamw(0.5, weight_decay=0.005)['weight_decay']
    0.01
  """
  fn = "paper_adamw_to_torch_adamw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  a = _initial(fn, "alpha", alpha)
  _hparams.check_scalar_or_schedule(schedule_multiplier, fn=fn, arg="schedule_multiplier")
  return dict(
    lr=_hparams.combine(lambda e: a * e, schedule_multiplier),
    betas=(b1, b2),
    eps=eps,
    weight_decay=weight_decay / a,
  )


def torch_adamw_to_composer_adamw(
  lr: ScalarOrSchedule,
  weight_decay: float = 1e-2,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
) -> dict[str, Any]:
  r"""``composer_adamw`` arguments equal to ``torch_adamw(lr, betas, eps, weight_decay)``.

  :math:`\lambda_{\text{Composer}} = \eta_0\lambda`, ``initial_lr`` :math:`=\eta_0`,
  and PyTorch's betas (Composer's default betas differ). **Exact** for any
  constant or scheduled ``lr`` with :math:`\eta_0 > 0`.

  Args:
    lr: PyTorch's learning rate, a float or a schedule.
    weight_decay: PyTorch's :math:`\lambda`.
    betas: PyTorch's betas.
    eps: PyTorch's epsilon.

  Returns:
    ``dict(lr, betas, eps, weight_decay, initial_lr)`` for
    :func:`composer_adamw`.

  Raises:
    ValueError: :math:`\eta_0 \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.torch_adamw_to_composer_adamw(0.5, weight_decay=0.01)['weight_decay']
    0.005
  """
  fn = "torch_adamw_to_composer_adamw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  lr0 = _initial(fn, "lr", lr)
  return dict(lr=lr, betas=betas, eps=eps, weight_decay=lr0 * weight_decay, initial_lr=lr0)


def composer_adamw_to_torch_adamw(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.95),
  eps: float = 1e-8,
  weight_decay: float = 1e-5,
  *,
  initial_lr: float | None = None,
) -> dict[str, Any]:
  r"""``torch_adamw`` arguments equal to ``composer_adamw(...)``.

  :math:`\lambda_{\text{torch}} = \lambda/\eta_0`. **Exact** for any
  constant or scheduled ``lr`` with :math:`\eta_0 > 0`.

  Args:
    lr: Composer's learning rate, a float or a schedule.
    betas: Composer's betas (default ``(0.9, 0.95)``).
    eps: Composer's epsilon.
    weight_decay: Composer's :math:`\lambda`.
    initial_lr: Composer's :math:`\eta_0`; default ``lr`` or ``lr(0)``.

  Returns:
    ``dict(lr, betas, eps, weight_decay)`` for :func:`torch_adamw`.

  Raises:
    ValueError: :math:`\eta_0 \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.composer_adamw_to_torch_adamw(0.5, weight_decay=0.005)['weight_decay']
    0.01
  """
  fn = "composer_adamw_to_torch_adamw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  lr0 = _initial(fn, "lr", lr) if initial_lr is None else _initial(fn, "initial_lr", initial_lr)
  return dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay / lr0)


def keras_adamw_to_tfa_adamw(
  learning_rate: ScalarOrSchedule = 0.001,
  weight_decay: float = 0.004,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
) -> dict[str, Any]:
  r"""``tfa_adamw`` arguments equal to ``keras_adamw(...)``.

  TF-Addons' decay is :math:`\lambda^{\text{TFA}}_t = \eta_t\lambda` (a
  schedule when ``learning_rate`` is one). **Exact**: both use tf.keras'
  epsilon-hat Adam and decay before the step.

  Args:
    learning_rate: Keras' learning rate, a float or a schedule.
    weight_decay: Keras' :math:`\lambda`.
    beta_1: :math:`\beta_1`.
    beta_2: :math:`\beta_2`.
    epsilon: :math:`\hat\epsilon`.

  Returns:
    ``dict(weight_decay, learning_rate, beta_1, beta_2, epsilon)`` for
    :func:`tfa_adamw`.

  Example:
    >>> from optaxdecay import compat
    >>> compat.keras_adamw_to_tfa_adamw(0.5, weight_decay=0.01)['weight_decay']
    0.005
  """
  fn = "keras_adamw_to_tfa_adamw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  return dict(
    weight_decay=lr_times(weight_decay, learning_rate),
    learning_rate=learning_rate,
    beta_1=beta_1,
    beta_2=beta_2,
    epsilon=epsilon,
  )


def tfa_adamw_to_keras_adamw(
  weight_decay: float,
  learning_rate: float = 0.001,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
) -> dict[str, Any]:
  r"""``keras_adamw`` arguments equal to ``tfa_adamw(...)``, for constants only.

  :math:`\lambda_{\text{Keras}} = \lambda^{\text{TFA}}/\eta`. **Exact only
  when both are constants**: Keras always multiplies its (constant)
  ``weight_decay`` by the current learning rate, so a TF-Addons decay that is
  not proportional to the learning rate at every step (a scheduled
  ``learning_rate`` with a constant ``weight_decay``, say) has no Keras
  equivalent; schedules are refused rather than converted approximately.

  Args:
    weight_decay: TF-Addons' :math:`\lambda^{\text{TFA}}`, a float.
    learning_rate: TF-Addons' :math:`\eta > 0`, a float.
    beta_1: :math:`\beta_1`.
    beta_2: :math:`\beta_2`.
    epsilon: :math:`\hat\epsilon`.

  Returns:
    ``dict(learning_rate, weight_decay, beta_1, beta_2, epsilon)`` for
    :func:`keras_adamw`.

  Raises:
    TypeError: ``weight_decay`` or ``learning_rate`` is a schedule.
    ValueError: ``learning_rate <= 0``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.tfa_adamw_to_keras_adamw(0.005, learning_rate=0.5)['weight_decay']
    0.01
  """
  fn = "tfa_adamw_to_keras_adamw"
  if callable(weight_decay) or callable(learning_rate):
    raise TypeError(
      f"{fn}: `weight_decay` and `learning_rate` must be floats: Keras' decay is "
      "always `learning_rate_t * weight_decay`, so a scheduled TF-Addons decay or "
      "learning rate has no exact Keras equivalent."
    )
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay", high=1.0)
  lr = _initial(fn, "learning_rate", learning_rate)
  return dict(
    learning_rate=learning_rate,
    weight_decay=weight_decay / lr,
    beta_1=beta_1,
    beta_2=beta_2,
    epsilon=epsilon,
  )


def torch_sgd_to_keras_sgd(
  lr: ScalarOrSchedule = 1e-3,
  momentum: float = 0.0,
  dampening: float = 0.0,
  weight_decay: float = 0.0,
  nesterov: bool = False,
) -> dict[str, Any]:
  r"""``keras_sgd`` arguments equal to ``torch_sgd(...)``, where one exists.

  Plain SGD (``momentum=0``): **exact** for any ``lr`` schedule and
  ``weight_decay``, since :math:`\theta - \eta_t(g + \lambda\theta)` is
  Keras' :math:`(\theta - \eta_t\lambda\theta) - \eta_t g`. With momentum it is
  exact only when ``weight_decay == 0``, ``dampening == 0`` and ``lr`` is a
  constant: PyTorch accumulates the L2 term in the buffer and applies the
  current :math:`\eta_t` to the whole buffer, Keras decays outside it and
  accumulates :math:`\eta_t g_t`. Those cases raise.

  Args:
    lr: PyTorch's learning rate.
    momentum: PyTorch's :math:`\mu`.
    dampening: PyTorch's :math:`\tau`.
    weight_decay: PyTorch's :math:`\lambda` (L2).
    nesterov: PyTorch's Nesterov flag.

  Returns:
    ``dict(learning_rate, momentum, nesterov, weight_decay)`` for
    :func:`keras_sgd`.

  Raises:
    ValueError: the combination has no exact Keras equivalent.

  Example:
    >>> from optaxdecay import compat
    >>> compat.torch_sgd_to_keras_sgd(lr=0.1, weight_decay=1e-4)
    {'learning_rate': 0.1, 'momentum': 0.0, 'nesterov': False, 'weight_decay': 0.0001}
  """
  fn = "torch_sgd_to_keras_sgd"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0, high_inclusive=True)
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  if not _is_zero(momentum) and (
    not _is_zero(weight_decay) or not _is_zero(dampening) or callable(lr)
  ):
    raise ValueError(
      f"{fn}: with momentum, PyTorch's SGD equals Keras' only without weight_decay, "
      "without dampening and with a constant lr: PyTorch's L2 term goes through the "
      "momentum buffer (Keras decays outside it) and PyTorch multiplies the whole "
      "buffer by the current lr (Keras accumulates lr_t * g_t)."
    )
  return dict(
    learning_rate=lr,
    momentum=float(momentum),
    nesterov=bool(nesterov) and not _is_zero(momentum),
    weight_decay=weight_decay,
  )


def keras_sgd_to_torch_sgd(
  learning_rate: ScalarOrSchedule = 0.01,
  momentum: float = 0.0,
  nesterov: bool = False,
  weight_decay: float | None = None,
) -> dict[str, Any]:
  r"""``torch_sgd`` arguments equal to ``keras_sgd(...)``, where one exists.

  The inverse of :func:`torch_sgd_to_keras_sgd`, under the same conditions:
  **exact** without momentum (any schedule, any decay), or with momentum when
  there is no ``weight_decay`` and ``learning_rate`` is a constant; otherwise
  it raises.

  Args:
    learning_rate: Keras' learning rate.
    momentum: Keras' :math:`\mu`.
    nesterov: Keras' Nesterov flag.
    weight_decay: Keras' :math:`\lambda` or ``None``.

  Returns:
    ``dict(lr, momentum, dampening, weight_decay, nesterov)`` for
    :func:`torch_sgd`.

  Raises:
    ValueError: the combination has no exact PyTorch equivalent.

  Example:
    >>> from optaxdecay import compat
    >>> compat.keras_sgd_to_torch_sgd(0.1, momentum=0.9)
    {'lr': 0.1, 'momentum': 0.9, 'dampening': 0.0, 'weight_decay': 0.0, 'nesterov': False}
  """
  fn = "keras_sgd_to_torch_sgd"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0, high_inclusive=True)
  wd = _keras_wd(fn, weight_decay)
  if not _is_zero(momentum) and (not _is_zero(wd) or callable(learning_rate)):
    raise ValueError(
      f"{fn}: with momentum, Keras' SGD equals PyTorch's only without weight_decay "
      "and with a constant learning_rate: Keras decays outside the velocity (PyTorch's "
      "L2 goes through its buffer) and accumulates lr_t * g_t (PyTorch multiplies the "
      "whole buffer by the current lr)."
    )
  return dict(
    lr=learning_rate,
    momentum=float(momentum),
    dampening=0.0,
    weight_decay=wd,
    nesterov=bool(nesterov) and not _is_zero(momentum),
  )


def torch_sgd_to_composer_sgdw(
  lr: ScalarOrSchedule,
  weight_decay: float = 0.0,
) -> dict[str, Any]:
  r"""``composer_sgdw`` arguments equal to plain ``torch_sgd(lr, weight_decay=...)``.

  :math:`\lambda_{\text{Composer}} = \eta_0\lambda`, ``initial_lr``
  :math:`=\eta_0`. **Exact only without momentum** (the only case this
  function accepts): then both are :math:`\theta - \eta_t g - \eta_t\lambda\theta`
  for any schedule. With momentum PyTorch's L2 term is accumulated in the
  buffer and Composer's decay is not, so there is no equivalent.

  Args:
    lr: PyTorch's learning rate, a float or a schedule; :math:`\eta_0 > 0`.
    weight_decay: PyTorch's :math:`\lambda` (L2).

  Returns:
    ``dict(lr, weight_decay, initial_lr)`` for :func:`composer_sgdw`.

  Raises:
    ValueError: :math:`\eta_0 \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.torch_sgd_to_composer_sgdw(0.5, weight_decay=0.01)['weight_decay']
    0.005
  """
  fn = "torch_sgd_to_composer_sgdw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  lr0 = _initial(fn, "lr", lr)
  return dict(lr=lr, weight_decay=lr0 * weight_decay, initial_lr=lr0)


def paper_sgdw_to_keras_sgd(
  alpha: float,
  b1: float,
  *,
  weight_decay: float,
  schedule_multiplier: ScalarOrSchedule = 1.0,
) -> dict[str, Any]:
  r"""``keras_sgd`` arguments equal to ``paper_sgdw(...)``.

  Both put the learning rate inside the momentum (Keras' velocity is
  :math:`-m_t`), so :math:`\eta^{\text{Keras}}_t = \alpha\eta_t`,
  ``momentum`` :math:`=\beta_1` and :math:`\lambda_{\text{Keras}} = \lambda/\alpha`.
  **Exact** for any multiplier schedule when :math:`\alpha > 0` and
  :math:`\beta_1 \le 1` (Keras' range).

  Args:
    alpha: the paper's :math:`\alpha > 0`.
    b1: the paper's momentum :math:`\beta_1 \in [0, 1]`.
    weight_decay: the paper's :math:`\lambda`.
    schedule_multiplier: the paper's :math:`\eta_t`, a float or a schedule.

  Returns:
    ``dict(learning_rate, momentum, nesterov, weight_decay)`` for
    :func:`keras_sgd`.

  Raises:
    ValueError: :math:`\alpha \le 0`, :math:`\beta_1` outside ``[0, 1]`` or an
      invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.paper_sgdw_to_keras_sgd(0.5, 0.9, weight_decay=0.005)
    {'learning_rate': 0.5, 'momentum': 0.9, 'nesterov': False, 'weight_decay': 0.01}
  """
  fn = "paper_sgdw_to_keras_sgd"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_number(b1, fn=fn, arg="b1", high=1.0, high_inclusive=True)
  _hparams.check_scalar_or_schedule(schedule_multiplier, fn=fn, arg="schedule_multiplier")
  a = _initial(fn, "alpha", alpha)
  return dict(
    learning_rate=_hparams.combine(lambda e: a * e, schedule_multiplier),
    momentum=float(b1),
    nesterov=False,
    weight_decay=weight_decay / a,
  )
