"""The papers' own algorithms: Loshchilov & Hutter's AdamW and SGDW (ICLR 2019), Chen et al.'s
Lion (2023)."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay._rates import lr_times
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  check_lion_betas,
  decay,
  lion_step,
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
      _selection.selection(mask, fn=fn),
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
      _selection.selection(mask, fn=fn),
    ),
  )


def paper_lion(
  learning_rate: ScalarOrSchedule = 1e-4,
  b1: float = 0.9,
  b2: float = 0.99,
  weight_decay: float = 0.0,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Lion as in Chen et al. (2023), Algorithm 2: decay :math:`\eta_t\lambda`, outside the sign.

  .. math::

    c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    \theta_{t+1} = \theta_t - \eta_t\bigl(\mathrm{sign}(c_t) + \lambda\theta_t\bigr),\quad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

  :math:`\eta_t` is the (scheduled) learning rate, so the decay is multiplied by it, unlike
  the AdamW paper's (:func:`paper_adamw`, ×schedule multiplier only). This is exactly
  ``optax.lion(learning_rate, b1, b2, weight_decay=λ)`` and Keras' ``Lion``; Composer's
  ``DecoupledLionW`` divides the decay by :math:`\eta_0`
  (:func:`paper_lion_to_composer_lionw`). Because the sign update has size
  :math:`\eta_t` per coordinate, the paper recommends a learning rate 3-10× smaller and a
  :math:`\lambda` 3-10× larger than AdamW's, for the same :math:`\eta\lambda`.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    b1: :math:`\beta_1 \in [0, 1]`, the interpolation of the update.
    b2: :math:`\beta_2 \in [0, 1]`, the momentum's decay.
    weight_decay: :math:`\lambda \ge 0`.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.paper_lion(learning_rate=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([-3.0])}, tx.init(params), params)
    >>> u['w']  # -lr * (sign(g) + wd * w) = -0.1 * (-1 + 1)
    Array([0.], dtype=float32)

  References:
    Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023
    (arXiv:2302.06675), Algorithm 2.
  """
  fn = "paper_lion"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  betas = check_lion_betas(fn, b1, b2, names=("b1", "b2"))
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  rate = lr_times(weight_decay, learning_rate)
  return optax.chain(
    lion_step(learning_rate, betas),
    decay(fn, "learning_rate * weight_decay", rate, _selection.selection(mask, fn=fn)),
  )
