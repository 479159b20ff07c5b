"""The one tree/mask utility every optaxdecay transform shares.

Three jobs, done in one place so that every transform names leaves, reads masks
and reports mistakes the same way:

* **Naming leaves.** :func:`flatten_with_names` flattens a pytree into
  ``(names, leaf)`` pairs, where ``names`` is a tuple of ``str``/``int``
  components: dict keys (``dict``, Flax ``FrozenDict``, NNX ``State``),
  attribute names (Equinox modules, dataclasses) and sequence indices (lists,
  tuples). A Flax NNX ``Variable`` (``nnx.Param``, as ``nnx.Optimizer.init``
  sees the state) is treated as the leaf it wraps, so the same parameter has
  the same name whether or not it is wrapped.
* **Reading masks.** :func:`resolve_mask` turns a ``mask=`` argument (``None``,
  a pytree of bools, a prefix of the params, or a callable ``params -> mask``)
  into one bool per parameter leaf. Masks are matched to params **by key
  path**, not by node type: a plain ``dict`` mask works for ``FrozenDict`` or
  NNX ``State`` params, and a mask built on ``Param``-wrapped state works on
  the plain arrays ``update`` receives.
* **Errors.** Every failure raises with the transform's and the argument's
  name, and the first offending path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Names = tuple[str | int, ...]
MaskArg = Any  # None | pytree of bool | Callable[[params], pytree of bool]


def is_nnx_variable(x: Any) -> bool:
  """Whether ``x`` is a Flax NNX ``Variable`` (checked without importing flax)."""
  nnx = sys.modules.get("flax.nnx")
  return nnx is not None and isinstance(x, nnx.Variable)


def _unwrap(leaf: Any) -> Any:
  if not is_nnx_variable(leaf):
    return leaf
  get = getattr(leaf, "get_value", None)  # flax >= 0.12; `.value` is deprecated there
  return get() if get is not None else leaf.value


def _component(key: Any) -> str | int:
  if isinstance(key, jax.tree_util.DictKey):
    k = key.key
    return k if isinstance(k, int) else str(k)
  if isinstance(key, jax.tree_util.GetAttrKey):
    return key.name
  if isinstance(key, jax.tree_util.SequenceKey):
    return key.idx
  if isinstance(key, jax.tree_util.FlattenedIndexKey):
    return key.key
  return str(key)


def key_names(path: Sequence[Any]) -> Names:
  """Converts a JAX key path into a tuple of ``str``/``int`` components."""
  return tuple(_component(k) for k in path)


def path_str(names: Names) -> str:
  """``('Dense_0', 'kernel')`` -> ``'Dense_0/kernel'``; ``()`` -> ``'<root>'``."""
  return "/".join(str(n) for n in names) if names else "<root>"


def flatten_with_names(tree: Any) -> tuple[list[tuple[Names, Any]], Any]:
  """Flattens ``tree`` into ``[(names, leaf)]`` and its treedef.

  NNX ``Variable`` nodes count as leaves and are unwrapped to their value.
  """
  pairs, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_nnx_variable)
  return [(key_names(p), _unwrap(leaf)) for p, leaf in pairs], treedef


def map_with_names(fn: Callable[[Names, Any], Any], tree: Any) -> Any:
  """``fn(names, leaf)`` on every leaf, keeping ``tree``'s exact structure.

  An NNX ``Variable`` keeps its wrapper: its value is replaced by the result,
  so a mask built on ``Param``-wrapped state has the state's structure (as
  ``optax.masked`` requires) while its leaves are plain ``bool``.
  """

  def visit(path, leaf):
    names = key_names(path)
    if is_nnx_variable(leaf):
      return jax.tree.map(lambda v: fn(names, v), leaf)
    return fn(names, leaf)

  return jax.tree_util.tree_map_with_path(visit, tree, is_leaf=is_nnx_variable)


def _is_static_bool(x: Any) -> bool:
  return isinstance(x, (bool, np.bool_))


def resolve_mask(mask: MaskArg, params: Any, *, transform: str) -> list[bool]:
  """One Python ``bool`` per leaf of ``params`` (in flatten order).

  Args:
    mask: ``None`` (every leaf), a pytree of bools with the structure of
      ``params`` or a prefix of it, or a callable returning such a pytree when
      called with ``params``.
    params: the parameters.
    transform: the calling transform's name, for error messages.

  Raises:
    TypeError: a mask leaf is not a Python/NumPy bool (e.g. a traced array),
      or a selected parameter leaf is not floating point.
    ValueError: the mask's key paths do not match the params' (the message
      names the first mismatching path).
  """
  pairs, _ = flatten_with_names(params)
  if mask is None:
    selected = [True] * len(pairs)
  else:
    mask_tree = mask(params) if callable(mask) else mask
    selected = _match_mask(mask_tree, pairs, transform=transform)
  for (names, leaf), sel in zip(pairs, selected, strict=True):
    dtype = getattr(leaf, "dtype", None)
    if sel and (dtype is None or not jnp.issubdtype(dtype, jnp.inexact)):
      raise TypeError(
        f"{transform}: `mask` selects the leaf {path_str(names)!r} of dtype "
        f"{dtype}, but weight decay only applies to floating-point leaves. "
        "Exclude it with `mask=` (e.g. `optaxdecay.decay_mask(...)`)."
      )
  return selected


def check_mask_leaves(mask: Any, *, transform: str, flat: bool = False) -> list[tuple[Names, bool]]:
  """``[(names, bool)]`` for a static mask; raises if a leaf is not a bool."""
  pairs = mask if flat else flatten_with_names(mask)[0]
  out = []
  for names, value in pairs:
    if not _is_static_bool(value):
      hint = ""
      if isinstance(value, jax.Array):
        hint = (
          " A JAX array here usually means `optax.inject_hyperparams` "
          "evaluated a mask function as if it were a schedule: pass "
          "`static_args=('mask',)` to inject_hyperparams."
        )
      raise TypeError(
        f"{transform}: `mask` leaf at {path_str(names)!r} is "
        f"{type(value).__name__}, expected a Python bool (masks must be "
        f"static to be jit-compiled).{hint}"
      )
    out.append((names, bool(value)))
  return out


def _match_mask(mask_tree: Any, pairs: list[tuple[Names, Any]], *, transform: str) -> list[bool]:
  mask_pairs, _ = flatten_with_names(mask_tree)
  if not mask_pairs:
    raise ValueError(
      f"{transform}: `mask` has no leaves; expected one bool per parameter "
      "leaf (or per subtree, as a prefix of the params)."
    )
  table = dict(check_mask_leaves(mask_pairs, transform=transform, flat=True))
  used: set[Names] = set()
  out: list[bool] = []
  for names, _ in pairs:
    # The longest mask path that is a prefix of this leaf's path applies.
    for cut in range(len(names), -1, -1):
      key = names[:cut]
      if key in table:
        out.append(table[key])
        used.add(key)
        break
    else:
      raise ValueError(
        f"{transform}: `mask` does not match the params: the parameter "
        f"{path_str(names)!r} has no entry in the mask (mask paths: "
        f"{_preview(table)}). A mask must have the params' key paths, or "
        "be a prefix of them."
      )
  unused = [n for n in table if n not in used]
  if unused:
    raise ValueError(
      f"{transform}: `mask` does not match the params: the mask path "
      f"{path_str(unused[0])!r} names no parameter."
    )
  return out


def _preview(table: dict[Names, bool], limit: int = 4) -> str:
  names = [repr(path_str(n)) for n in list(table)[:limit]]
  more = ", ..." if len(table) > limit else ""
  return ", ".join(names) + more


def flatten_updates_and_params(
  updates: Any, params: Any, *, transform: str
) -> tuple[list[Any], list[Any], Any]:
  """Leaves of ``updates`` and of ``params`` (unwrapped), checked to align."""
  u_pairs, treedef = flatten_with_names(updates)
  p_pairs, _ = flatten_with_names(params)
  if [n for n, _ in u_pairs] != [n for n, _ in p_pairs]:
    u_names = [n for n, _ in u_pairs]
    p_names = [n for n, _ in p_pairs]
    first = next((a, b) for a, b in zip([*u_names, None], [*p_names, None], strict=False) if a != b)
    raise ValueError(
      f"{transform}: `updates` and `params` have different structures: the "
      f"first difference is update path {_fmt(first[0])} vs params path "
      f"{_fmt(first[1])}."
    )
  return [leaf for _, leaf in u_pairs], [leaf for _, leaf in p_pairs], treedef


def _fmt(names: Names | None) -> str:
  return "<none>" if names is None else repr(path_str(names))
