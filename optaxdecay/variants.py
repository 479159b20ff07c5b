"""Decay variants beyond AdamW's explicit step: the proximal (implicit) form.

The cautious variant (Chen et al., 2025) is a flag of
:func:`optaxdecay.decoupled_weight_decay` (``cautious=True``).
"""

from __future__ import annotations

from typing import Any

import optax

from optaxdecay import _core, _tree


def proximal_weight_decay(
  rate: optax.ScalarOrSchedule, *, mask: _tree.MaskArg = None
) -> optax.GradientTransformation:
  r"""Weight decay in proximal (implicit) form: :math:`w \leftarrow (w + u)/(1 + r_t)`.

  Decoupled decay :func:`decoupled_weight_decay` takes an *explicit* step on
  the penalty :math:`\tfrac{\lambda}{2}\lVert w\rVert^2`, evaluated at the old
  weights. The proximal step evaluates it at the *new* weights, i.e. solves
  :math:`w_{t+1} = w_t + u_t - r_t w_{t+1}`:

  .. math::

    w_{t+1} = \frac{w_t + u_t}{1 + r_t},
    \qquad\text{so the update is}\qquad
    u_t \leftarrow \frac{u_t - r_t\, w_t}{1 + r_t} .

  With an Adam step :math:`u_t = -\eta_t\,\hat m_t/(\sqrt{\hat v_t}+\epsilon)` and
  :math:`r_t = \eta_t\lambda` this is Zhuang et al.'s AdamW-as-proximal-Adam,
  :math:`\theta_t = (\theta_{t-1} - \eta_t\hat m_t/(\sqrt{\hat v_t}+\epsilon))
  /(1+\eta_t\lambda)`. It differs from the explicit update :math:`u_t - r_t w_t`
  by :math:`-\tfrac{r_t}{1+r_t}(u_t - r_t w_t)`: second order in the step size
  when :math:`u_t` and :math:`r_t` are both proportional to :math:`\eta_t`, so
  the two agree to first order. Unlike the explicit step, it never overshoots:
  any :math:`r_t \ge 0` only scales the weights by :math:`1/(1+r_t) \in (0, 1]`,
  so ``rate >= 1`` is allowed here.

  Put it **after** the optimizer, like :func:`decoupled_weight_decay`.

  Args:
    rate: :math:`r_t \ge 0`: a float, or a schedule ``step -> float`` evaluated
      on this transform's own count (0 on the first update). A Python ``0``
      makes the transform the identity.
    mask: which leaves are decayed: ``None`` (all), a pytree of bools with the
      params' structure or a prefix of it, or a callable ``params -> such a
      pytree`` (e.g. :func:`bias_mask`). Masked-out leaves pass through.

  Returns:
    An :class:`optax.GradientTransformation`; its state is
    ``optax.EmptyState()`` for a constant ``rate`` and a
    ``ScheduleState(count)`` for a schedule.

  Raises:
    ValueError: ``rate`` is negative or non-finite; ``update`` is called
      without ``params``; ``mask`` does not match the params.
    TypeError: ``mask`` has a non-bool leaf or selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'w': jnp.array([1.0, -2.0])}
    >>> tx = od.proximal_weight_decay(0.25)
    >>> updates, _ = tx.update({'w': jnp.array([0.25, 0.5])}, tx.init(params), params)
    >>> optax.apply_updates(params, updates)['w']  # (w + u) / 1.25
    Array([ 1. , -1.2], dtype=float32)

  References:
    Zhuang, Liu, Cutkosky & Orabona, `Understanding AdamW through Proximal
    Methods and Scale-Freeness <https://arxiv.org/abs/2202.00089>`_, TMLR 2022.
  """
  return _core.leafwise_transform(
    transform="proximal_weight_decay",
    arg="rate",
    value=rate,
    mask=mask,
    leaf_fn=_proximal,
  )


def _proximal(u: Any, w: Any, rate: Any) -> Any:
  return (u - rate * w) / (1 + rate)
