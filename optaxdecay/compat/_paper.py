"""Loshchilov & Hutter's AdamW and SGDW (ICLR 2019), as in the paper."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay._rates import lr_times
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  decay,
  momentum_trace,
  scaled_schedule,
)


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
    optax.scale_by_learning_rate(scaled_schedule(alpha, schedule_multiplier)),
    decay(
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
    optax.scale_by_learning_rate(scaled_schedule(alpha, schedule_multiplier)),
    momentum_trace(b1),
    decay(
      fn,
      "schedule_multiplier * weight_decay",
      lr_times(weight_decay, schedule_multiplier),
      mask,
    ),
  )
