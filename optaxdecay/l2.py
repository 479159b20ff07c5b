"""L2 regularization as a gradient transformation: ``add_l2_to_grad``."""

from __future__ import annotations

from typing import Any

import optax

from optaxdecay import _core, _tree


def add_l2_to_grad(
  l2: optax.ScalarOrSchedule, *, mask: _tree.MaskArg = None
) -> optax.GradientTransformation:
  r"""Adds the gradient of an L2 penalty, :math:`\lambda_t w`, to the gradient.

  With the penalty :math:`\tfrac{\lambda}{2}\sum_i w_i^2` on the selected
  leaves, each selected gradient leaf becomes

  .. math::

    g_t \leftarrow g_t + \lambda_t \, w_t .

  Put it **before** the optimizer, so the optimizer sees the regularized
  gradient: ``optax.chain(add_l2_to_grad(l2), optax.sgd(lr))`` is gradient
  descent on :math:`C_0 + \tfrac{\lambda}{2}\lVert w\rVert^2`. With plain SGD this
  equals :func:`decoupled_weight_decay` with ``rate = lr * l2`` (see
  :func:`l2_to_decay_rate`); with momentum or an adaptive optimizer (Adam,
  RMSProp, AdaGrad) the L2 term is accumulated or preconditioned and the two
  differ. For an L2 coefficient written :math:`\lambda/n` (a loss averaged over
  ``n`` examples), pass ``l2=lam / n``.

  Args:
    l2: the coefficient :math:`\lambda \ge 0`: a float, or a schedule
      ``step -> float`` evaluated on this transform's own count (0 on the
      first update). A Python ``0`` makes the transform the identity.
    mask: which leaves are penalized: ``None`` (all), a pytree of bools with
      the params' structure or a prefix of it, or a callable
      ``params -> such a pytree`` (called with ``params``, e.g.
      :func:`bias_mask`). Masks are matched to params by key path.

  Returns:
    An :class:`optax.GradientTransformation`; its state is
    ``optax.EmptyState()`` for a constant ``l2`` and a ``ScheduleState(count)``
    for a schedule.

  Raises:
    ValueError: ``l2`` is negative or non-finite; ``update`` is called
      without ``params``; ``mask`` does not match the params.
    TypeError: ``mask`` has a non-bool leaf or selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.array([1.0, -2.0]), 'bias': jnp.array([3.0])}
    >>> tx = optax.chain(od.add_l2_to_grad(0.1, mask=od.bias_mask), optax.sgd(1.0))
    >>> grads = {'w': jnp.zeros(2), 'bias': jnp.zeros(1)}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> updates['w'], updates['bias']
    (Array([-0.1,  0.2], dtype=float32), Array([0.], dtype=float32))

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (Section 2).
  """
  return _core.leafwise_transform(
    transform="add_l2_to_grad", arg="l2", value=l2, mask=mask, leaf_fn=_add_l2
  )


def _add_l2(g: Any, w: Any, l2: Any) -> Any:
  return g + l2 * w
