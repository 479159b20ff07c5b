"""Converters between the frameworks' ``weight_decay`` arguments."""

from __future__ import annotations

from typing import Any

from optaxdecay import _hparams
from optaxdecay._rates import lr_times
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  check_betas,
  is_zero,
  keras_weight_decay,
  value_at_step0,
)


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
  lr0 = value_at_step0(fn, "lr", lr)
  b1, b2 = check_betas(fn, betas)
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
  a = value_at_step0(fn, "alpha", alpha)
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
  lr0 = value_at_step0(fn, "lr", lr)
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
  lr0 = (
    value_at_step0(fn, "lr", lr)
    if initial_lr is None
    else value_at_step0(fn, "initial_lr", initial_lr)
  )
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
  lr = value_at_step0(fn, "learning_rate", learning_rate)
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
  if not is_zero(momentum) and (
    not is_zero(weight_decay) or not is_zero(dampening) or callable(lr)
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
    nesterov=bool(nesterov) and not is_zero(momentum),
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
  wd = keras_weight_decay(fn, weight_decay)
  if not is_zero(momentum) and (not is_zero(wd) or callable(learning_rate)):
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
    nesterov=bool(nesterov) and not is_zero(momentum),
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
  lr0 = value_at_step0(fn, "lr", lr)
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
  a = value_at_step0(fn, "alpha", alpha)
  return dict(
    learning_rate=_hparams.combine(lambda e: a * e, schedule_multiplier),
    momentum=float(b1),
    nesterov=False,
    weight_decay=weight_decay / a,
  )


def paper_lion_to_composer_lionw(
  learning_rate: ScalarOrSchedule = 1e-4,
  b1: float = 0.9,
  b2: float = 0.99,
  weight_decay: float = 0.0,
) -> dict[str, Any]:
  r"""``composer_lionw`` arguments equal to ``paper_lion(...)`` (= ``optax.lion``, ``keras_lion``).

  :math:`\lambda_{\text{Composer}} = \eta_0\lambda`, ``initial_lr`` :math:`=\eta_0`. **Exact**
  for any constant or scheduled learning rate with :math:`\eta_0 > 0`.

  Args:
    learning_rate: the paper's (Optax's, Keras') learning rate, a float or a schedule.
    b1: :math:`\beta_1`.
    b2: :math:`\beta_2`.
    weight_decay: the paper's :math:`\lambda`.

  Returns:
    ``dict(lr, betas, weight_decay, initial_lr)`` for :func:`composer_lionw`.

  Raises:
    ValueError: :math:`\eta_0 \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.paper_lion_to_composer_lionw(3e-4, weight_decay=1.0)['weight_decay']
    0.0003
  """
  fn = "paper_lion_to_composer_lionw"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  lr0 = value_at_step0(fn, "learning_rate", learning_rate)
  return dict(lr=learning_rate, betas=(b1, b2), weight_decay=lr0 * weight_decay, initial_lr=lr0)


def composer_lionw_to_paper_lion(
  lr: ScalarOrSchedule = 1e-4,
  betas: tuple[float, float] = (0.9, 0.99),
  weight_decay: float = 0.0,
  *,
  initial_lr: float | None = None,
) -> dict[str, Any]:
  r"""``paper_lion`` arguments equal to ``composer_lionw(...)``: :math:`\lambda = \lambda_C/\eta_0`.

  **Exact** for any constant or scheduled ``lr`` with :math:`\eta_0 > 0`. The same
  ``weight_decay`` goes to ``optax.lion`` and :func:`keras_lion`.

  Args:
    lr: Composer's learning rate, a float or a schedule.
    betas: Composer's betas.
    weight_decay: Composer's :math:`\lambda_C`.
    initial_lr: Composer's :math:`\eta_0`; default ``lr`` or ``lr(0)``.

  Returns:
    ``dict(learning_rate, b1, b2, weight_decay)`` for :func:`paper_lion`.

  Raises:
    ValueError: :math:`\eta_0 \le 0`, or an invalid ``weight_decay``.

  Example:
    >>> from optaxdecay import compat
    >>> compat.composer_lionw_to_paper_lion(1e-4, weight_decay=1e-5)['weight_decay']  # 1e-5/1e-4
    0.1
  """
  fn = "composer_lionw_to_paper_lion"
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  lr0 = value_at_step0(fn, "initial_lr" if initial_lr is not None else "lr", initial_lr or lr)
  return dict(learning_rate=lr, b1=betas[0], b2=betas[1], weight_decay=weight_decay / lr0)
