"""Converting between an L2 coefficient and a decoupled decay rate."""

from __future__ import annotations

import optax

from optaxdecay import _hparams


def l2_to_decay_rate(
  l2: optax.ScalarOrSchedule, learning_rate: optax.ScalarOrSchedule
) -> optax.ScalarOrSchedule:
  r"""The decoupled rate equivalent to L2 under plain SGD: :math:`r_t = \eta_t\lambda_t`.

  For plain gradient descent (no momentum),
  ``optax.chain(add_l2_to_grad(l2), optax.sgd(lr))`` and
  ``optax.chain(optax.sgd(lr), decoupled_weight_decay(l2_to_decay_rate(l2, lr)))``
  produce the same parameters at every step, for constant and scheduled ``lr``
  and ``l2``: :math:`w - \eta_t(g + \lambda w) = (1-\eta_t\lambda)w - \eta_t g`.
  Under momentum or an adaptive optimizer there is no such rate.

  Both arguments are floats or schedules ``step -> float``; the result is a
  float if both are floats, else a schedule. Chained as above, each schedule is
  evaluated on the same step count as the optimizer's.

  Example:
    >>> import optaxdecay as od
    >>> od.l2_to_decay_rate(1e-4, 0.1)
    1e-05
  """
  _hparams.check_scalar_or_schedule(l2, transform="l2_to_decay_rate", arg="l2")
  _hparams.check_scalar_or_schedule(
    learning_rate, transform="l2_to_decay_rate", arg="learning_rate"
  )
  return _hparams.combine(lambda lr, lam: lr * lam, learning_rate, l2)


def decay_rate_to_l2(
  rate: optax.ScalarOrSchedule, learning_rate: optax.ScalarOrSchedule
) -> optax.ScalarOrSchedule:
  r"""The inverse of :func:`l2_to_decay_rate`: :math:`\lambda_t = r_t/\eta_t`.

  Exact for plain SGD whenever :math:`\eta_t > 0`. A constant ``learning_rate``
  must be positive; a scheduled one that reaches 0 gives ``inf``/``nan`` at
  that step, where no L2 coefficient reproduces a nonzero decay.

  Example:
    >>> import optaxdecay as od
    >>> od.decay_rate_to_l2(1e-5, 0.1)
    0.0001
  """
  _hparams.check_scalar_or_schedule(rate, transform="decay_rate_to_l2", arg="rate", upper=1.0)
  _hparams.check_scalar_or_schedule(
    learning_rate,
    transform="decay_rate_to_l2",
    arg="learning_rate",
    allow_zero=callable(learning_rate),
  )
  return _hparams.combine(lambda r, lr: r / lr, rate, learning_rate)
