"""Decoupled weight decay (AdamW-style) as a gradient transformation."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from optaxdecay import _core, _tree


def decoupled_weight_decay(
  rate: optax.ScalarOrSchedule, *, mask: _tree.MaskArg = None, cautious: bool = False
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

  **Cautious weight decay** (``cautious=True``; Chen et al., 2025) decays a
  coordinate only where the optimizer is already moving it towards zero. The
  paper writes the step with the *descent direction* :math:`d_t` (the vector
  that is subtracted, e.g. :math:`\hat m_t/(\sqrt{\hat v_t}+\epsilon)` for Adam):

  .. math::

    w_{t+1} = w_t - \eta_t\bigl(d_t + \lambda\,\mathbb{1}(d_t \odot w_t \ge 0)
    \odot w_t\bigr).

  In Optax's convention the incoming update is already the signed step that
  is *added* to the params, :math:`u_t = -\eta_t d_t` (with
  :math:`\eta_t > 0`), so :math:`d_t \odot w_t \ge 0` becomes
  :math:`u_t \odot w_t \le 0` and this transform computes

  .. math::

    u_t \leftarrow u_t - r_t\,\mathbb{1}(u_t \odot w_t \le 0) \odot w_t ,
    \qquad r_t = \eta_t\lambda .

  The gate is evaluated on the signs (``sign(u) * sign(w) <= 0``), so an
  update that is exactly zero, or a product that would underflow, still
  counts as "same sign" and is decayed, as the paper's :math:`\ge 0` says.
  The gate is only right if the incoming update has its final sign: put the
  transform after the optimizer's sign flip (``optax.adam``, ``optax.sgd``, or
  ``scale_by_learning_rate``), never between ``scale_by_adam`` and
  ``scale_by_learning_rate``, where it would decay exactly the wrong
  coordinates.

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
    TypeError: ``mask`` has a non-bool leaf or selects a non-float leaf;
      ``cautious`` is not a bool.

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

    With ``cautious=True`` only the coordinates the update pushes towards zero
    are decayed (here the first: update ``-0.1`` on weight ``1.0``):

    >>> cwd = od.decoupled_weight_decay(0.01, cautious=True)
    >>> u, _ = cwd.update({'w': jnp.array([-0.1, -0.1])}, cwd.init(params),
    ...                   {'w': jnp.array([1.0, -2.0])})
    >>> u['w']
    Array([-0.11, -0.1 ], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (Algorithms 1-2).

    Chen et al., `Cautious Weight Decay <https://arxiv.org/abs/2510.12402>`_,
    arXiv 2510.12402, 2025.
  """
  if not isinstance(cautious, bool):
    raise TypeError(f"decoupled_weight_decay: `cautious` must be a bool, got {cautious!r}.")
  return _core.leafwise_transform(
    transform="decoupled_weight_decay",
    arg="rate",
    value=rate,
    mask=mask,
    leaf_fn=_cautious_decay if cautious else _decay,
    upper=1.0,
  )


def _decay(u: Any, w: Any, rate: Any) -> Any:
  return u - rate * w


def _cautious_decay(u: Any, w: Any, rate: Any) -> Any:
  # Optax's u is minus the descent direction: decay where sign(u)*sign(w) <= 0.
  gate = jnp.sign(u) * jnp.sign(w) <= 0
  return u - rate * jnp.where(gate, w, jnp.zeros_like(w))
