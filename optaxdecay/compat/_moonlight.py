"""Muon in Optax terms: Moonlight's recipe (Muon on matrices, AdamW on the rest, one decay)."""

from __future__ import annotations

import optax
import optax.contrib

from optaxdecay import _hparams, _selection
from optaxdecay._rates import lr_times
from optaxdecay.compat._common import ScalarOrSchedule, check_betas, decay


def moonlight_muon(
  learning_rate: ScalarOrSchedule,
  weight_decay: float = 0.1,
  *,
  momentum: float = 0.95,
  nesterov: bool = True,
  ns_steps: int = 5,
  adam_betas: tuple[float, float] = (0.9, 0.95),
  eps: float = 1e-8,
  cautious: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""Moonlight's Muon (Liu et al. 2025): Muon on 2-D leaves, AdamW on the rest, one decay ×lr.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta - \eta_t \begin{cases}
      0.2\sqrt{\max(A, B)}\;\mathrm{NS}(\text{Nesterov momentum of } g) & \theta \in
        \mathbb{R}^{A\times B} \\
      \hat m/(\sqrt{\hat v} + \epsilon) & \text{otherwise}
    \end{cases}

  The :math:`0.2\sqrt{\max(A, B)}` scale gives the orthogonalized update the RMS of an AdamW
  update, so that the two halves share one learning rate and one ``weight_decay``
  (decoupled, ×lr, on both halves, as in Moonlight). Built as
  ``chain(optax.contrib.muon(..., consistent_rms=0.2), decoupled_weight_decay(lr · λ))``: the
  decay is ours, so ``mask=`` (e.g. :func:`~optaxdecay.bias_mask`) and ``cautious=True``
  (decay only the coordinates the update already pushes toward zero) apply to both halves.
  PyTorch's ``Muon(adjust_lr_fn='match_rms_adamw', weight_decay=λ)`` uses the same scale and
  the same decay convention (:math:`\theta(1 - \eta\lambda)`, unadjusted lr) on its 2-D
  parameters.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, for both halves.
    weight_decay: :math:`\lambda \ge 0` (Moonlight: 0.1).
    momentum: Muon's momentum :math:`\beta \in [0, 1)`.
    nesterov: Nesterov momentum for Muon (and Optax's AdamW half).
    ns_steps: Newton-Schulz iterations (an integer >= 1).
    adam_betas: the AdamW half's :math:`(\beta_1, \beta_2)` (Moonlight: ``(0.9, 0.95)``).
    eps: both halves' epsilon.
    cautious: cautious weight decay (:func:`~optaxdecay.decoupled_weight_decay`).
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> import optaxdecay as od
    >>> tx = compat.moonlight_muon(1e-2, weight_decay=0.1, mask=od.bias_mask)
    >>> params = {'w': jnp.eye(3), 'bias': jnp.ones(3)}
    >>> u, _ = tx.update({'w': jnp.eye(3), 'bias': jnp.ones(3)}, tx.init(params), params)
    >>> u['w'].shape, u['bias'].shape
    ((3, 3), (3,))

  References:
    Liu et al., *Muon is Scalable for LLM Training* (Moonlight), arXiv:2502.16982, 2025;
    ``optax.contrib.muon``; ``torch/optim/_muon.py``.
  """
  fn = "moonlight_muon"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0)
  _hparams.check_bool(nesterov, fn=fn, arg="nesterov")
  _hparams.check_count(ns_steps, fn=fn, arg="ns_steps")
  b1, b2 = check_betas(fn, adam_betas, name="adam_betas")
  _hparams.check_number(eps, fn=fn, arg="eps")
  _hparams.check_bool(cautious, fn=fn, arg="cautious")
  muon = optax.contrib.muon(
    learning_rate,
    ns_steps=ns_steps,
    beta=momentum,
    eps=eps,
    nesterov=nesterov,
    adam_b1=b1,
    adam_b2=b2,
    consistent_rms=0.2,
  )
  rate = lr_times(weight_decay, learning_rate)
  return optax.chain(
    muon,
    decay(fn, "learning_rate * weight_decay", rate, _selection.selection(mask, fn=fn), cautious),
  )
