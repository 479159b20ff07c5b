"""Decoupled weight decay (AdamW-style) as a gradient transformation."""

from __future__ import annotations

from typing import Any

import optax

from optaxdecay import _core, _tree


def decoupled_weight_decay(
  rate: optax.ScalarOrSchedule, *, mask: _tree.MaskArg = None
) -> optax.GradientTransformation:
  r"""Shrinks the selected weights by ``rate`` per step, outside the optimizer.

  Each selected update leaf becomes

  .. math::

    u_t \leftarrow u_t - r_t \, w_t ,

  so after ``params = optax.apply_updates(params, updates)`` one step is
  :math:`w_{t+1} = (1 - r_t)\,w_t + u_t`. Put it **after** the optimizer (after
  its learning-rate scaling and sign flip): the decay is then never
  preconditioned, which is what AdamW's "decoupled" means.

  ``rate`` is the fraction of each weight removed per step. It is **not**
  multiplied by any learning rate: to reproduce ``optax.adamw(lr,
  weight_decay=wd)`` or PyTorch's ``AdamW``, pass
  ``rate=od.l2_to_decay_rate(wd, lr)`` (a schedule if ``lr`` is one).

  Args:
    rate: :math:`0 \le r_t < 1`: a float, or a schedule ``step -> float``
      evaluated on this transform's own count (0 on the first update). A Python
      ``0`` makes the transform the identity.
    mask: which leaves are decayed: ``None`` (all), a pytree of bools with the
      params' structure or a prefix of it, or a callable
      ``params -> such a pytree`` (called with ``params``, e.g.
      :func:`bias_mask`). Masks are matched to params by key path.

  Returns:
    An :class:`optax.GradientTransformation`; its state is
    ``optax.EmptyState()`` for a constant ``rate`` and a
    ``ScheduleState(count)`` for a schedule.

  Raises:
    ValueError: ``rate`` is negative, non-finite or ``>= 1``; ``update`` is
      called without ``params``; ``mask`` does not match the params.
    TypeError: ``mask`` has a non-bool leaf or selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.array([1.0, -2.0]), 'bias': jnp.array([3.0])}
    >>> tx = optax.chain(
    ...     optax.adam(1e-3), od.decoupled_weight_decay(0.01, mask=od.bias_mask))
    >>> grads = {'w': jnp.zeros(2), 'bias': jnp.zeros(1)}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> updates['w'], updates['bias']
    (Array([-0.01,  0.02], dtype=float32), Array([0.], dtype=float32))

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (Algorithms 1-2).
  """
  return _core.leafwise_transform(
    transform="decoupled_weight_decay",
    arg="rate",
    value=rate,
    mask=mask,
    leaf_fn=_decay,
    upper=1.0,
  )


def _decay(u: Any, w: Any, rate: Any) -> Any:
  return u - rate * w
