"""Rate rules: every ``ScalarOrSchedule -> ScalarOrSchedule`` rule that sets the decay.

Each rule returns a float when its inputs are floats, and a schedule
``step -> value`` when a ``ScalarOrSchedule`` input is a schedule, so its result
can be passed straight to :func:`decoupled_weight_decay` (as ``rate``) or to
``optax.adamw`` (as ``weight_decay``, where noted). A new rule goes here.

* :func:`l2_to_decay_rate` / :func:`decay_rate_to_l2` -- :math:`r_t = \\eta_t\\lambda_t`,
  the reparametrization under which L2 and decoupled decay agree for plain SGD.
* :func:`corrected_decay_rate` -- AdamC's :math:`r_t = \\lambda\\eta_t^2/\\eta_{\\max}`.
* :func:`normalized_weight_decay` -- :math:`\\lambda = \\lambda_{norm}\\sqrt{b/(BT)}`.
* :func:`rate_from_timescale` / :func:`timescale_from_rate` -- the decay as an
  EMA timescale in epochs, :math:`r = b/(N\\tau_{epoch})`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _deprecation, _hparams


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
  fn = "l2_to_decay_rate"
  _hparams.check_scalar_or_schedule(l2, fn=fn, arg="l2")
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  return lr_times(l2, learning_rate)


def lr_times(value: optax.ScalarOrSchedule, learning_rate: optax.ScalarOrSchedule) -> Any:
  """``learning_rate_t * value_t`` from checked arguments (:func:`l2_to_decay_rate`'s rule)."""
  return _hparams.combine(lambda lr, lam: lr * lam, learning_rate, value)


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
  fn = "decay_rate_to_l2"
  _hparams.check_rate(rate, fn=fn, arg="rate")
  _hparams.warn_per_step_rate(rate, fn=fn, arg="rate")
  _hparams.check_scalar_or_schedule(
    learning_rate, fn=fn, arg="learning_rate", low_inclusive=callable(learning_rate)
  )
  return _hparams.combine(lambda r, lr: r / lr, rate, learning_rate)


@_deprecation.keyword_only("max_learning_rate")
def corrected_decay_rate(
  weight_decay: optax.ScalarOrSchedule,
  learning_rate: optax.ScalarOrSchedule,
  *,
  max_learning_rate: float,
) -> optax.ScalarOrSchedule:
  r"""AdamC's corrected decay: :math:`r_t = \lambda\,\eta_t^2/\eta_{\max}`.

  AdamW removes :math:`\eta_t\lambda` of each weight per step. For layers
  followed by a normalization (whose weights' scale does not change the
  output), Defazio et al. show that this makes the steady-state
  gradient-to-weight ratio grow as the learning rate is annealed, and
  correct it by scaling the decay with :math:`\eta_t/\eta_{\max}`. The fraction
  removed per step becomes

  .. math::

    r_t = \lambda\,\frac{\eta_t^2}{\eta_{\max}} .

  Pass the result as ``rate`` to :func:`decoupled_weight_decay`, with a mask
  that selects the normalized layers (the paper keeps plain AdamW decay, or
  none, elsewhere). In ``optax.adamw``'s terms this is
  ``weight_decay=λ·lr_t/lr_max``. With a constant learning rate
  (:math:`\eta_t = \eta_{\max}`) it is AdamW's :math:`\eta\lambda`.

  Args:
    weight_decay: :math:`\lambda \ge 0` (AdamW's ``weight_decay``): a float or a
      schedule.
    learning_rate: :math:`\eta_t \ge 0`: a float or the learning-rate schedule
      the optimizer uses.
    max_learning_rate: :math:`\eta_{\max} > 0`, the schedule's peak (a float).
      A constant ``learning_rate``, and a schedule's value at step 0, must not
      exceed it.

  Returns:
    :math:`r_t`: a float if ``weight_decay`` and ``learning_rate`` are floats,
    else a schedule ``step -> r_t``.

  Raises:
    ValueError: a value is negative or non-finite, ``max_learning_rate <= 0``,
      or the learning rate exceeds ``max_learning_rate``.
    TypeError: an argument is not a number (or, where allowed, a schedule).

  Example:
    >>> import optax
    >>> import optaxdecay as od
    >>> od.corrected_decay_rate(0.1, 5e-4, max_learning_rate=1e-3)
    2.5e-05
    >>> lr = optax.cosine_decay_schedule(1e-3, decay_steps=100)
    >>> rate = od.corrected_decay_rate(0.1, lr, max_learning_rate=1e-3)
    >>> tx = optax.chain(optax.adam(lr), od.decoupled_weight_decay(rate))
    >>> float(rate(50))  # 0.1 * (5e-4)**2 / 1e-3
    2.5e-05

  References:
    Defazio, Mishchenko, Sinha & Zhou, `Why Gradients Rapidly Increase Near
    the End of Training <https://arxiv.org/abs/2506.02285>`_, arXiv 2506.02285,
    2025 (AdamC).
  """
  fn = "corrected_decay_rate"
  _hparams.check_scalar_or_schedule(weight_decay, fn=fn, arg="weight_decay")
  lr0 = _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  lr_max = _hparams.check_concrete(
    max_learning_rate, fn=fn, arg="max_learning_rate", low_inclusive=False
  )
  # A float32 schedule's peak may round slightly above the float given as max.
  if lr0 is not None and lr0 > lr_max * (1 + 1e-6):
    where = " at step 0" if callable(learning_rate) else ""
    raise ValueError(
      f"{fn}: `learning_rate`{where} is {lr0}, above `max_learning_rate`="
      f"{lr_max}; pass the schedule's peak value as `max_learning_rate`."
    )
  return _hparams.combine(lambda wd, lr: wd * lr * lr / lr_max, weight_decay, learning_rate)


@_deprecation.keyword_only("batch_size", "dataset_size", "epochs")
def normalized_weight_decay(
  lambda_norm: optax.ScalarOrSchedule,
  *,
  batch_size: int,
  dataset_size: int,
  epochs: float,
) -> optax.ScalarOrSchedule:
  r"""Loshchilov & Hutter's normalized weight decay: :math:`\lambda = \lambda_{norm}\sqrt{b/(BT)}`.

  A decay tuned for one budget over-regularizes a longer run: the total shrink
  grows with the number of steps :math:`BT/b`. Normalizing makes
  :math:`\lambda_{norm}` transfer across batch sizes :math:`b`, dataset sizes
  :math:`B` and epoch budgets :math:`T`:

  .. math::

    \lambda = \lambda_{norm}\sqrt{\frac{b}{B\,T}} .

  The result is the paper's :math:`\lambda`, the fraction removed per step at
  schedule multiplier 1 (their decay is **not** multiplied by the base
  learning rate :math:`\alpha`): pass it as ``rate`` to
  :func:`decoupled_weight_decay` (times a schedule multiplier, if you use
  one), or as ``weight_decay=λ / lr`` to ``optax.adamw(lr, ...)``.

  Args:
    lambda_norm: :math:`\lambda_{norm} \ge 0`: a float or a schedule.
    batch_size: :math:`b`, examples per step (a positive int).
    dataset_size: :math:`B`, training examples per epoch (a positive int,
      ``>= batch_size``).
    epochs: :math:`T`, the total number of epochs (a positive number).

  Returns:
    :math:`\lambda`: a float, or a schedule if ``lambda_norm`` is one.

  Raises:
    ValueError: a value is out of range, or ``batch_size > dataset_size``.
    TypeError: a count is not an int, or ``lambda_norm`` is not a number or
      schedule.

  Example:
    >>> import optaxdecay as od
    >>> od.normalized_weight_decay(0.05, batch_size=128, dataset_size=50_000, epochs=200)
    0.00017888543819998318

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (the appendix on
    normalized weight decay).
  """
  fn = "normalized_weight_decay"
  _hparams.check_scalar_or_schedule(lambda_norm, fn=fn, arg="lambda_norm")
  b, n = _sizes(batch_size, dataset_size, fn=fn)
  t = _hparams.check_concrete(epochs, fn=fn, arg="epochs", low_inclusive=False)
  factor = math.sqrt(b / (n * t))
  return _hparams.combine(lambda lam: lam * factor, lambda_norm)


@_deprecation.keyword_only("dataset_size", "batch_size")
def rate_from_timescale(
  tau_epochs: optax.ScalarOrSchedule, *, dataset_size: int, batch_size: int
) -> optax.ScalarOrSchedule:
  r"""The per-step decay whose EMA timescale is ``tau_epochs`` epochs.

  Wang & Aitchison read decoupled decay as an exponential moving average of
  past updates: with :math:`r = \eta\lambda` removed per step, the weights
  average over about :math:`\tau_{iter} = 1/r` steps, i.e.
  :math:`\tau_{epoch} = \tau_{iter}\, b/N` epochs, and the best
  :math:`\tau_{epoch}` stays roughly constant when the dataset or model size
  changes. Solving for the rate:

  .. math::

    r = \eta\lambda = \frac{b}{N\,\tau_{epoch}} .

  Pass the result as ``rate`` to :func:`decoupled_weight_decay`; the AdamW
  coefficient for a learning rate ``lr`` is ``weight_decay = r / lr``.

  Keeping ``tau_epochs`` fixed is a rule for growing ``dataset_size`` at a
  fixed number of epochs; it says nothing about the learning rate. How it
  fared against other rules, where measured, is on the docs page *How to set
  the decay as lr, T and N change*.

  Args:
    tau_epochs: :math:`\tau_{epoch} > 0`: a float or a schedule.
    dataset_size: :math:`N`, training examples per epoch (a positive int).
    batch_size: :math:`b`, examples per step (a positive int).

  Returns:
    :math:`r`: a float, or a schedule if ``tau_epochs`` is one.

  Raises:
    ValueError: ``tau_epochs`` is not finite and positive, or so short that
      :math:`r \ge 1` (a timescale under one step).
    TypeError: a size is not an int.

  Example:
    >>> import optaxdecay as od
    >>> od.rate_from_timescale(20.0, dataset_size=50_000, batch_size=100)
    0.0001
    >>> od.timescale_from_rate(1e-4, dataset_size=50_000, batch_size=100)
    20.0

  References:
    Wang & Aitchison, `How to set AdamW's weight decay as you scale model and
    dataset size <https://arxiv.org/abs/2405.13698>`_, arXiv 2405.13698, 2024.
  """
  fn = "rate_from_timescale"
  tau0 = _hparams.check_scalar_or_schedule(tau_epochs, fn=fn, arg="tau_epochs", low_inclusive=False)
  b, n = _sizes(batch_size, dataset_size, fn=fn)
  if tau0 is not None and b / (n * tau0) >= 1:
    where = " at step 0" if callable(tau_epochs) else ""
    raise ValueError(
      f"{fn}: `tau_epochs`{where} is {tau0}, shorter than one step "
      f"(batch_size/dataset_size = {b / n}); the rate would be >= 1."
    )
  return _hparams.combine(lambda tau: b / (n * tau), tau_epochs)


@_deprecation.keyword_only("dataset_size", "batch_size")
def timescale_from_rate(
  rate: optax.ScalarOrSchedule, *, dataset_size: int, batch_size: int
) -> optax.ScalarOrSchedule:
  r"""The inverse of :func:`rate_from_timescale`: :math:`\tau_{epoch} = b/(N r)`.

  ``rate`` is the fraction removed per step (``lr * weight_decay`` for
  ``optax.adamw``). A rate of 0 has an infinite timescale (``inf``).

  Args:
    rate: :math:`0 \le r < 1`: a float or a schedule.
    dataset_size: :math:`N`, training examples per epoch (a positive int).
    batch_size: :math:`b`, examples per step (a positive int).

  Returns:
    :math:`\tau_{epoch}`: a float, or a schedule if ``rate`` is one.

  Raises:
    ValueError: ``rate`` is negative, non-finite or ``>= 1``.
    TypeError: a size is not an int.

  Example:
    >>> import optaxdecay as od
    >>> od.timescale_from_rate(1e-3 * 0.1, dataset_size=50_000, batch_size=100)
    20.0

  References:
    Wang & Aitchison, `How to set AdamW's weight decay as you scale model and
    dataset size <https://arxiv.org/abs/2405.13698>`_, arXiv 2405.13698, 2024.
  """
  fn = "timescale_from_rate"
  _hparams.check_rate(rate, fn=fn, arg="rate")
  _hparams.warn_per_step_rate(rate, fn=fn, arg="rate")
  b, n = _sizes(batch_size, dataset_size, fn=fn)

  def tau(r: Any) -> Any:
    if isinstance(r, numbers.Real) and not isinstance(r, np.ndarray):
      return math.inf if r == 0 else b / (n * float(r))
    return b / (n * jnp.asarray(r))  # arrays, tracers, schedule values: inf where r is 0

  return _hparams.combine(tau, rate)


def _sizes(batch_size: Any, dataset_size: Any, *, fn: str) -> tuple[int, int]:
  """``(batch_size, dataset_size)``, positive ints with ``batch_size <= dataset_size``."""
  b = _hparams.check_count(batch_size, fn=fn, arg="batch_size")
  n = _hparams.check_count(dataset_size, fn=fn, arg="dataset_size")
  if b > n:
    raise ValueError(
      f"{fn}: `batch_size`={b} is larger than `dataset_size`={n}; `dataset_size` is the number "
      "of training examples per epoch (were the two swapped?)."
    )
  return b, n
