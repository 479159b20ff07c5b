"""The leafwise engine shared by every decay/L2 transform.

A transform here is ``u_i <- leaf_fn(u_i, w_i, c_t)`` on the leaves selected by
its mask (others pass through untouched, at no cost), where ``c_t`` is a
constant or a schedule evaluated on the transform's own step count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from optaxdecay import _hparams, _tree

LeafFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def leafwise_transform(
  *,
  transform: str,
  arg: str,
  value: optax.ScalarOrSchedule,
  mask: _tree.MaskArg,
  leaf_fn: LeafFn,
  upper: float | None = None,
) -> optax.GradientTransformation:
  """Builds the transform; see the public factories for the semantics."""
  _hparams.check_scalar_or_schedule(value, transform=transform, arg=arg, upper=upper)
  if isinstance(mask, (bool, np.bool_)):
    raise TypeError(
      f"{transform}: `mask={mask}` is a single bool; pass `mask=None` to apply "
      "to every leaf, or a pytree/callable to choose leaves. (A bare bool also "
      "appears when `optax.inject_hyperparams` calls a mask function with the "
      "step count as if it were a schedule: pass `static_args=('mask',)`.)"
    )
  if mask is not None and not callable(mask):
    # A static mask's leaves are checked now; its match to the params is
    # checked at the first init/update.
    _tree.check_mask_leaves(mask, transform=transform)

  def init_fn(params: optax.Params) -> optax.OptState:
    if _has_values(params):
      _tree.resolve_mask(mask, params, transform=transform)
    return _hparams.init_state(value)

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
  ) -> tuple[optax.Updates, optax.OptState]:
    if params is None:
      raise ValueError(
        f"{transform}: `update` needs `params` (the current weights): call "
        "`tx.update(grads, state, params)`."
      )
    coef, new_state = _hparams.current_value(value, state)
    if _hparams.is_static_zero(value):
      return updates, new_state
    selected = _tree.resolve_mask(mask, params, transform=transform)
    u_leaves, p_leaves, treedef = _tree.flatten_updates_and_params(
      updates, params, transform=transform
    )
    out = [
      leaf_fn(u, w, coef).astype(u.dtype) if sel else u
      for u, w, sel in zip(u_leaves, p_leaves, selected, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def _has_values(params: Any) -> bool:
  """Whether ``params`` holds parameter values to check a mask against.

  ``optax.tree.map_params`` (the usual way to derive the optimizer state's
  shardings from the params') calls ``init`` with a placeholder object
  instead of params. The state does not depend on the params, so the mask is
  then checked at the first ``update`` instead.
  """
  return any(
    hasattr(x, "dtype") or isinstance(x, (int, float, complex)) for x in jax.tree.leaves(params)
  )
