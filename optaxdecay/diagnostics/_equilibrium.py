"""``equilibrium``: the angular update that decay drives each scale-invariant neuron to.

The random-walk model of Kosson, Messmer & Jaggi (2024, arXiv 2305.17212): a neuron's weight
vector ``w`` (``C`` coordinates) followed by a normalization is scale-invariant, so its gradient
is orthogonal to ``w`` and, from step to step, points in an independent random direction. The
update ``u`` then grows ``‖w‖²`` by ``E‖u‖²`` per step on average (a random walk) while decay
shrinks it by the factor ``(1 - r)²``; the balance fixes ``‖w‖`` and so the angle ``‖u‖/‖w‖``
the neuron turns per step. The derivations are in the docs (``docs/rotation.md``); the tests
check every formula by simulating that model (``tests/test_rotation.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from optaxdecay import _hparams

#: The optimizers :func:`equilibrium` has a formula for.
OPTIMIZERS = ("adamw", "sgd", "lion")
#: Relaxation times in :attr:`Equilibrium.steps` (the norm's distance shrinks by ``e^3``).
RELAXATIONS = 3.0


class Equilibrium(NamedTuple):
  """The predicted equilibrium of one optimizer's scale-invariant neurons.

  Attributes:
    optimizer: ``'adamw'``, ``'sgd'`` or ``'lion'``.
    angular_update: the angle (radians) a neuron's weight vector turns per step.
    rate: the per-step rate ``r`` at which decay shrinks the norm.
    steps: three relaxation times of the norm, after which its distance from equilibrium has
      shrunk by ``e³ ≈ 20`` (``1/(2r)`` steps each for ``‖w‖²`` under Adam and Lion, ``1/(4r)``
      for ``‖w‖⁴`` under SGD, whose update shrinks as the norm grows): enough from a start
      near the equilibrium norm (an initialization of variance ``1/fan_in`` gives norm 1; a
      norm ``k`` times too large needs about ``ln(k²)/(2r)`` steps more).
    norm_scale: ``‖w‖ / √C`` at equilibrium for a neuron of ``C`` coordinates (Adam's and
      Lion's updates have a size set by the learning rate alone); ``nan`` for SGD, whose norm
      also depends on the gradients' scale.
  """

  optimizer: str
  angular_update: float
  rate: float
  steps: float
  norm_scale: float

  def norm(self, fan_in: int) -> float:
    """The equilibrium ``‖w‖`` of a neuron with ``fan_in`` coordinates."""
    return self.norm_scale * math.sqrt(fan_in)


def equilibrium(
  optimizer: str,
  *,
  learning_rate: float,
  weight_decay: float | None = None,
  rate: float | None = None,
  b1: float = 0.9,
  b2: float = 0.99,
  momentum: float = 0.0,
) -> Equilibrium:
  r"""The equilibrium angular update per step of a scale-invariant neuron.

  Give the decay as the framework's ``weight_decay`` **or** as optaxdecay's per-step ``rate``
  (:func:`~optaxdecay.decoupled_weight_decay` placed after the optimizer):

  * ``'adamw'`` — ``optax.adamw(learning_rate, b1=b1, weight_decay=weight_decay)`` (and
    ``torch.optim.AdamW``), whose decay per step is :math:`r = \eta\lambda`; or
    ``chain(optax.adam(learning_rate, b1=b1), decoupled_weight_decay(rate))``, :math:`r =`
    ``rate``:

    .. math:: \theta = \sqrt{(2r - r^2)\,\tfrac{1 - \beta_1}{1 + \beta_1}},
      \qquad \frac{\lVert w\rVert}{\sqrt C} = \frac{\eta}{\sqrt{2r - r^2}}.

  * ``'sgd'`` — ``optax.sgd(learning_rate, momentum=momentum)`` with an L2 coefficient
    ``weight_decay`` before it (``add_l2_to_grad``, ``add_decayed_weights``, ``torch.optim.SGD``'s
    ``weight_decay``), whose momentum carries the L2 term: :math:`r = \eta\lambda/(1 - \mu)`; or
    decoupled ``rate`` after it, :math:`r =` ``rate``:

    .. math:: \theta = \sqrt{(2r - r^2)\,\tfrac{1 - \mu}{1 + \mu}}
      \quad\Big(= \sqrt{2\eta\lambda/(1 + \mu)} \text{ for L2, to first order}\Big).

  * ``'lion'`` — ``optax.lion(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay)``,
    :math:`r = \eta\lambda` (or ``rate``). Lion's sign updates are correlated from step to step
    through its momentum, which makes the random walk ``D`` times longer:

    .. math:: \theta = \sqrt{(2r - r^2)/D}, \qquad
      D = 1 + \tfrac{4}{\pi}\sum_{k\ge1} \arcsin\rho_k,

    with :math:`\rho_k` the correlation of Lion's interpolated momentum ``k`` steps apart
    (:math:`D \approx 45` at the defaults ``b1=0.9, b2=0.99``).

  Adam with L2 (``add_l2_to_grad`` before ``optax.adam``) has **no** single equilibrium: the L2
  term is divided by :math:`\sqrt{\hat v}`, so a neuron's decay, norm and angular update depend
  on its gradients' scale (the angle falls as ``scale^(-1/3)`` in this model): it raises, and
  :func:`track_rotation` measures it.

  Args:
    optimizer: ``'adamw'``, ``'sgd'`` or ``'lion'``.
    learning_rate: the learning rate :math:`\eta` (its current value, under a schedule).
    weight_decay: the framework's coefficient :math:`\lambda` (see above).
    rate: optaxdecay's per-step decay rate instead.
    b1: Adam's or Lion's first-moment coefficient.
    b2: Lion's second coefficient (unused by Adam: its second moment only normalizes).
    momentum: SGD's momentum :math:`\mu` (0, as ``optax.sgd``'s default: pass yours).

  Returns:
    An :class:`Equilibrium`.

  Raises:
    ValueError: an optimizer without a formula (``'adam+l2'`` says why), both or neither of
      ``weight_decay`` and ``rate``, or a value out of range.

  Example:
    >>> import optaxdecay as od
    >>> eq = od.diagnostics.equilibrium('adamw', learning_rate=1e-3, weight_decay=0.1)
    >>> round(eq.angular_update, 5), round(eq.steps)
    (0.00324, 15000)

  References:
    Kosson, Messmer & Jaggi, `Rotational Equilibrium: How Weight Decay Balances Learning
    Across Neural Networks <https://arxiv.org/abs/2305.17212>`_, ICML 2024.
  """
  fn = "equilibrium"
  if optimizer == "adam" and rate is not None:
    raise ValueError(
      f"{fn}: `optimizer`='adam' with a decoupled `rate` (chain(optax.adam(...), "
      "decoupled_weight_decay(rate))) is AdamW's equilibrium: pass optimizer='adamw'."
    )
  if optimizer in ("adam+l2", "adam_l2", "adam"):
    raise ValueError(
      f"{fn}: `optimizer`={optimizer!r} has no single equilibrium: L2 inside Adam is divided by "
      "sqrt(v-hat), so each neuron's decay, norm and angular update depend on its gradients' "
      "scale (large-gradient neurons are regularized less and turn slower; in the random-walk "
      "model the angle falls as scale^(-1/3)). Measure it with "
      "od.diagnostics.track_rotation, or use decoupled decay ('adamw')."
    )
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"{fn}: `optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}.")
  lr = _hparams.check_concrete(learning_rate, fn=fn, arg="learning_rate")
  if lr == 0:
    raise ValueError(
      f"{fn}: `learning_rate` is 0 (the end of a schedule that decays to 0?): the weights stop "
      "turning and there is no equilibrium to reach; pass a learning rate > 0."
    )
  if (weight_decay is None) == (rate is None):
    coefficient = (
      "the L2 coefficient before optax.sgd, through the momentum"
      if optimizer == "sgd"
      else f"optax.{optimizer}'s, multiplied by the learning rate"
    )
    raise ValueError(
      f"{fn}: give exactly one of `weight_decay` ({coefficient}) and `rate` (optaxdecay's "
      "per-step rate, decoupled_weight_decay(rate) after the optimizer)."
    )
  beta = _hparams.check_concrete(b1, fn=fn, arg="b1", high=1.0)
  mu = _hparams.check_concrete(momentum, fn=fn, arg="momentum", high=1.0)
  if rate is not None:
    r = _hparams.check_concrete(rate, fn=fn, arg="rate", low=0.0, low_inclusive=False, high=1.0)
  else:
    wd = _hparams.check_concrete(weight_decay, fn=fn, arg="weight_decay", low=0.0,
                                 low_inclusive=False)  # fmt: skip
    r = lr * wd / (1 - mu) if optimizer == "sgd" else lr * wd
    if r >= 1:
      raise ValueError(f"{fn}: the per-step decay {r:g} from `learning_rate` and "
                       "`weight_decay` must be < 1.")  # fmt: skip
  shrink = 2 * r - r * r  # 1 - (1 - r)^2: the norm's loss per step, exactly
  if optimizer == "adamw":
    angle = math.sqrt(shrink * (1 - beta) / (1 + beta))
    return Equilibrium(optimizer, angle, r, RELAXATIONS / (2 * r), lr / math.sqrt(shrink))
  if optimizer == "sgd":
    angle = math.sqrt(shrink * (1 - mu) / (1 + mu))
    return Equilibrium(optimizer, angle, r, RELAXATIONS / (4 * r), math.nan)
  d = lion_diffusion(beta, _hparams.check_concrete(b2, fn=fn, arg="b2", high=1.0))
  return Equilibrium(
    optimizer, math.sqrt(shrink / d), r, RELAXATIONS / (2 * r), lr * math.sqrt(d / shrink)
  )


def lion_diffusion(b1: float, b2: float, *, terms: int = 100_000) -> float:
  """``D``: how much longer Lion's random walk is than that of independent sign steps.

  Lion steps along ``sign(c_t)``, ``c_t = b1·m_{t-1} + (1 - b1)·g_t`` with
  ``m_t = b2·m_{t-1} + (1 - b2)·g_t``. For independent Gaussian ``g_t``, ``c_t`` and
  ``c_{t+k}`` have correlation ``ρ_k = b1·b2^(k-1)·(b1·b2·V + (1 - b1)(1 - b2)) / (b1²·V +
  (1 - b1)²)`` with ``V = (1 - b2)/(1 + b2)``, their signs ``(2/π)·arcsin(ρ_k)``, and the walk's
  variance per step is the sum of those over all lags.
  """
  v = (1 - b2) / (1 + b2)
  var_c = b1 * b1 * v + (1 - b1) ** 2
  if var_c == 0 or b1 == 0:
    return 1.0
  first = b1 * (b1 * b2 * v + (1 - b1) * (1 - b2)) / var_c
  total, rho = 0.0, first
  for _ in range(terms):
    if rho < 1e-12:
      break
    total += math.asin(min(rho, 1.0))
    rho *= b2
  return 1 + 4 / math.pi * total
