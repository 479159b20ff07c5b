"""bitsandbytes' Lion before its fix: L2 inside the sign (bitsandbytes#1992), kept as a warning."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay._transforms import l2_transform
from optaxdecay.compat._common import ScalarOrSchedule, check_betas


def bnb_lion_coupled(
  lr: ScalarOrSchedule = 1e-4,
  betas: tuple[float, float] = (0.9, 0.99),
  weight_decay: float = 0.0,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""bitsandbytes' 32-bit ``Lion`` before PR #1993: the decay folded into the gradient.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    \theta_{t+1} = \theta_t - \eta_t\,\mathrm{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t)

  The sign discards the size of :math:`\lambda\theta`: once it dominates the gradient, every
  weight moves by :math:`\eta_t` toward zero per step whatever :math:`\lambda` is, and below
  that it only tilts the sign. It is not Lion's decoupled decay of any strength
  (:func:`paper_lion`): the two trajectories part. Reproduced so that a run made with it can be
  re-run and compared, not recommended.

  Args:
    lr: :math:`\eta`, a float or a schedule.
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1]``.
    weight_decay: :math:`\lambda \ge 0`, added to the gradient as L2.
    mask: leaves that get the L2 term; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.bnb_lion_coupled(lr=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([-0.9])}, tx.init(params), params)
    >>> u['w']  # sign(-0.9 + 0.5 * 2) = +1: the decay flipped the step
    Array([-0.1], dtype=float32)

  References:
    bitsandbytes issue #1992 and PRs #1993, #2001 (2026): the 32-bit CUDA, Triton and default
    backends folded Lion's weight decay into the gradient; the 8-bit and CPU paths did not.
  """
  fn = "bnb_lion_coupled"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  b1, b2 = check_betas(fn, betas, one=True)
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  return optax.chain(
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    optax.scale_by_lion(b1=b1, b2=b2),
    optax.scale_by_learning_rate(lr),
  )
