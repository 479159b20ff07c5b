"""MosaicML Composer's (and llm-foundry's) decoupled optimizers (decay x lr / lr0)."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  check_betas,
  check_torch_nesterov,
  decay,
  lion_step,
  value_at_step0,
)
from optaxdecay.compat._torch_scale import torch_momentum_transform


def _composer_rate(
  fn: str, lr: ScalarOrSchedule, weight_decay: float, initial_lr: float | None
) -> ScalarOrSchedule:
  """``(lr_t / initial_lr) * weight_decay``, from the checks of ``lr``, ``weight_decay`` and
  ``initial_lr`` (without ``initial_lr``, ``lr`` at step 0 is the divisor: it must be > 0)."""
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  if initial_lr is None:
    lr0 = value_at_step0(fn, "lr", lr)
  else:
    _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
    lr0 = value_at_step0(fn, "initial_lr", initial_lr)
  if _hparams.is_static_zero(weight_decay):  # a Python zero only: see momentum_trace
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
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  _hparams.check_number(dampening, fn=fn, arg="dampening")
  check_torch_nesterov(fn, nesterov, momentum, dampening)
  rate = _composer_rate(fn, lr, weight_decay, initial_lr)
  return optax.chain(
    torch_momentum_transform(momentum, dampening, nesterov),
    optax.scale_by_learning_rate(lr),
    decay(fn, "lr / initial_lr * weight_decay", rate, _selection.selection(mask, fn=fn)),
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
  b1, b2 = check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  rate = _composer_rate(fn, lr, weight_decay, initial_lr)
  return optax.chain(
    optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(lr),
    decay(fn, "lr / initial_lr * weight_decay", rate, _selection.selection(mask, fn=fn)),
  )


def composer_lionw(
  lr: ScalarOrSchedule = 1e-4,
  betas: tuple[float, float] = (0.9, 0.99),
  weight_decay: float = 0.0,
  *,
  initial_lr: float | None = None,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Composer's / llm-foundry's ``DecoupledLionW``: Lion with decay :math:`(\eta_t/\eta_0)\lambda`.

  .. math::

    \theta \leftarrow \theta\Bigl(1 - \tfrac{\eta_t}{\eta_0}\lambda\Bigr),\quad
    \theta_{t+1} = \theta - \eta_t\,\mathrm{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t),\quad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

  As in :func:`composer_adamw`, ``weight_decay`` is the fraction removed per step at the
  initial learning rate: the Lion paper's (and Optax's, Keras') :math:`\lambda` is
  :math:`\lambda_{\text{Composer}}/\eta_0` (:func:`composer_lionw_to_paper_lion`).

  Args:
    lr: :math:`\eta`, a float or a schedule. Default ``1e-4`` as in llm-foundry.
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1]``.
    weight_decay: :math:`\lambda \ge 0`.
    initial_lr: :math:`\eta_0 > 0` (``group['initial_lr']``); default ``lr`` or ``lr(0)``.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.composer_lionw(lr=0.1, weight_decay=0.01)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([3.0])}, tx.init(params), params)
    >>> u['w']  # -(lr / lr0) * wd * w - lr * sign(g)
    Array([-0.12], dtype=float32)

  References:
    ``composer/optim/decoupled_weight_decay.py`` and
    ``llmfoundry/optim/lion.py`` (``DecoupledLionW.lionw``).
  """
  fn = "composer_lionw"
  pair = check_betas(fn, betas, one=True)
  rate = _composer_rate(fn, lr, weight_decay, initial_lr)
  return optax.chain(
    lion_step(lr, pair),
    decay(fn, "(lr / initial_lr) * weight_decay", rate, _selection.selection(mask, fn=fn)),
  )
