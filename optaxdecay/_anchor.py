"""Decay toward a reference point (L2-SP, L2-Init): the anchor kept in a transform's state.

With an anchor :math:`w_0`, every leafwise transform acts on the displacement
:math:`w - w_0` instead of :math:`w`: ``g + l2 (w - w0)``, ``u - rate (w - w0)``,
and so on. The anchor is part of the state (``AnchorState.anchor``), so it is
checkpointed and sharded with the optimizer state, and it holds a copy of the
*selected* leaves only: an unselected leaf (multiplier 0, or removed by an outer
``optax.masked``) is ``None`` there and costs no memory.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _selection, _tree

Anchor = Any  # None | "init" | a pytree of arrays with the params' structure


class AnchorState(NamedTuple):
  """State of a transform that decays toward an anchor.

  Attributes:
    count: number of ``update`` calls so far (``int32``): the step a schedule is
      evaluated at (the first update uses ``schedule(0)``).
    anchor: the reference point :math:`w_0`, with the params' structure: a copy
      of each selected leaf, ``None`` for the others.

  ``optax.tree.map_params(tx, f, state)`` maps the anchor like the params (so the
  FSDP recipe gives it the params' shardings). With a mask and extra param-shaped
  arguments to ``map_params``, pass ``is_leaf=lambda x: x is None`` and let ``f``
  return ``None`` there, as Optax asks for ``optax.masked``.
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  anchor: Any


def check_anchor(anchor: Anchor, *, fn: str) -> Anchor:
  """``None``, ``'init'`` or a pytree; the pytree's match to the params is checked at init."""
  if anchor is None or (isinstance(anchor, str) and anchor == "init"):
    return anchor
  if isinstance(anchor, str):
    raise ValueError(
      f"{fn}: `anchor={anchor!r}`: pass None (decay toward zero), 'init' (toward the params "
      "given to `init`) or a pytree of reference weights with the params' structure."
    )
  if _selection.is_mask_fn(anchor):
    raise TypeError(f"{fn}: `anchor` must be None, 'init' or a pytree of arrays, got {anchor!r}.")
  return anchor


def init_anchor(anchor: Anchor, params: Any, mults: list[float], *, fn: str) -> Any:
  """The state's anchor: the reference weights of the selected leaves, copied."""
  layout = _tree.Structure(params)
  p_leaves = layout.leaves
  if anchor == "init":
    source = [leaf.value for leaf in p_leaves]
  else:
    source = _match(anchor, p_leaves, fn=fn)
  out = []
  for leaf, w0, m in zip(p_leaves, source, mults, strict=True):
    if m == 0 or leaf.absent or _tree.is_absent(w0):
      out.append(leaf.value if leaf.absent else None)
      continue
    dtype = getattr(w0, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
      raise TypeError(f"{fn}: `anchor` at {leaf.path!r} has dtype {dtype}; expected floats.")
    if np.shape(w0) != np.shape(leaf.value):
      raise ValueError(
        f"{fn}: `anchor` at {leaf.path!r} has shape {np.shape(w0)} but its parameter has "
        f"shape {np.shape(leaf.value)}."
      )
    # A copy: the params' buffers may be donated to the step that follows.
    out.append(jnp.array(w0, dtype=getattr(leaf.value, "dtype", None), copy=True))
  return layout.unflatten(out)


def _match(anchor: Any, p_leaves: list[_tree.Leaf], *, fn: str) -> list[Any]:
  """The anchor's value for each parameter leaf, matched by key path.

  Like the params, the anchor may hold subtrees that an outer ``optax.masked`` /
  ``optax.partition`` removed from the params this transform sees (a prefix mask
  leaves one ``MaskedNode`` for a whole subtree): those are skipped.
  """
  a_leaves, _ = _tree.flatten_leaves(anchor)
  by_path = {leaf.names: leaf.value for leaf in a_leaves}
  params_at = {leaf.names for leaf in p_leaves}
  removed = {leaf.names for leaf in p_leaves if leaf.absent}
  for names in by_path:
    if names not in params_at and not any(names[:k] in removed for k in range(len(names))):
      raise ValueError(
        f"{fn}: `anchor` does not match the params: the anchor path "
        f"{_tree.path_str(names)!r} names no parameter. Pass reference weights with the "
        "params' structure."
      )
  out: list[Any] = []
  for leaf in p_leaves:
    if leaf.absent:
      out.append(None)
    elif leaf.names in by_path:
      out.append(by_path[leaf.names])
    else:
      raise ValueError(
        f"{fn}: `anchor` does not match the params: the parameter {leaf.path!r} has no "
        "entry in the anchor. Pass reference weights with the params' structure."
      )
  return out


def current_value(value: Any, state: Any) -> tuple[Any, AnchorState]:
  """The hyperparameter at this step (a schedule runs on the state's count), and the next state."""
  coef = value(state.count) if callable(value) else value
  return coef, AnchorState(cast(jax.Array, optax.safe_increment(state.count)), state.anchor)


def anchor_leaves(state: AnchorState, n: int, *, fn: str) -> list[Any]:
  """The anchor's leaves, aligned with the params' (``None`` where nothing is kept)."""
  leaves, _ = _tree.flatten_leaves(state.anchor)
  if len(leaves) != n:
    raise ValueError(
      f"{fn}: the state's anchor has {len(leaves)} leaves but the params have {n}: was the "
      "state made by `init` with these params?"
    )
  return [None if leaf.absent else leaf.value for leaf in leaves]
