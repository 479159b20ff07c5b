"""The one tree utility every optaxdecay module shares: naming and walking leaves.

* **Naming leaves.** :func:`flatten_leaves` flattens a pytree into
  :class:`Leaf` records: the key path as a tuple of ``str``/``int``
  components (dict keys of ``dict``, Flax ``FrozenDict`` and NNX ``State``;
  attribute names of Equinox modules and dataclasses; sequence indices), the
  leaf's value, and the classes of the pytree nodes that enclose it (so that a
  rule can ask "is this inside a ``LayerNorm``?" on Equinox modules).
* **Wrappers.** A Flax NNX ``Variable`` (``nnx.Param``, as ``nnx.Optimizer.init``
  sees the state) and a Flax Linen partitioning box (``nn.Partitioned``,
  ``nn.LogicallyPartitioned``: any ``flax.core.meta.AxisMetadata``, as
  ``nn.with_partitioning`` leaves it in the params) are the leaf they wrap, so
  the same parameter has the same path whether or not it is wrapped; results
  are put back in the wrapper (:func:`rebuild`), as ``optax.adamw`` keeps it.
* **Aligning trees.** :func:`align` pairs the leaves of an update tree with its
  params' leaves, checking that their key paths and shapes agree.
* **Absent leaves.** ``None``, Optax's ``MaskedNode`` (what an outer
  ``optax.masked`` / ``optax.multi_transform`` puts where it removed a
  parameter) and empty containers (``{}``, ``[]``, ``()``) are kept as leaves
  and marked :attr:`Leaf.absent`, so that every transform can pass them through
  and a mask can name them without error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from optax.transforms import MaskedNode

Names = tuple[str | int, ...]


class Leaf(NamedTuple):
  """One leaf of a pytree, as :func:`flatten_leaves` gives it.

  Attributes:
    names: the key path as ``str``/``int`` components.
    value: the leaf (an NNX ``Variable`` unwrapped to its value).
    classes: the types of the pytree nodes enclosing the leaf, outermost
      first (e.g. ``(MLP, tuple, Linear)`` for an Equinox ``MLP``'s weight).
  """

  names: Names
  value: Any
  classes: tuple[type, ...]

  @property
  def path(self) -> str:
    """The components joined with ``/``: ``'Dense_0/kernel'``."""
    return path_str(self.names)

  @property
  def absent(self) -> bool:
    """Whether this is no parameter: ``None`` or an outer wrapper's ``MaskedNode``."""
    return is_absent(self.value)


def is_nnx_variable(x: Any) -> bool:
  """Whether ``x`` is a Flax NNX ``Variable`` (checked without importing flax)."""
  nnx = sys.modules.get("flax.nnx")
  return nnx is not None and isinstance(x, nnx.Variable)


def is_nnx_module(x: Any) -> bool:
  """Whether ``x`` is a Flax NNX ``Module`` (checked without importing flax)."""
  nnx = sys.modules.get("flax.nnx")
  return nnx is not None and isinstance(x, nnx.Module)


def is_flax_box(x: Any) -> bool:
  """Whether ``x`` is a Flax Linen metadata box (``nn.Partitioned`` and kin)."""
  meta = sys.modules.get("flax.core.meta")
  return meta is not None and isinstance(x, meta.AxisMetadata)


def is_wrapper(x: Any) -> bool:
  """An NNX ``Variable`` or a Linen box: a node that stands for the one leaf it wraps."""
  return is_nnx_variable(x) or is_flax_box(x)


def is_absent(x: Any) -> bool:
  """``None``, ``optax.MaskedNode`` or an empty container: a place that holds no parameter."""
  return (
    x is None
    or isinstance(x, MaskedNode)
    or (isinstance(x, (Mapping, list, tuple)) and not is_wrapper(x) and len(x) == 0)
  )


def _is_leaf(x: Any) -> bool:
  return is_absent(x) or is_wrapper(x)


def unwrap(leaf: Any) -> Any:
  """The value of an NNX ``Variable`` or of a Linen box; anything else unchanged."""
  if is_flax_box(leaf):
    from flax.core import meta

    if isinstance(leaf, meta.Partitioned):  # LogicallyPartitioned too
      return leaf.unbox(apply_constraint=False)
    return leaf.unbox()
  if not is_nnx_variable(leaf):
    return leaf
  get = getattr(leaf, "get_value", None)  # flax >= 0.12; `.value` is deprecated there
  return get() if get is not None else leaf.value


def rewrap(raw: Any, value: Any) -> Any:
  """``value`` in ``raw``'s wrapper (a Linen box or an NNX ``Variable``), else ``value``."""
  if is_flax_box(raw):
    return raw.replace_boxed(value)
  if is_nnx_variable(raw):
    return jax.tree.map(lambda _: value, raw)
  return value


class Structure:
  """A tree's layout as :func:`flatten_leaves` sees it, to take it apart and put it back.

  ``leaves`` are the tree's own :class:`Leaf` records, ``flatten_up_to(other)`` gives
  the (unwrapped) leaf values of a tree of the same layout, and ``unflatten(values)``
  builds the tree again with each value back in its leaf's wrapper, so Linen boxes
  and NNX ``Variable`` nodes survive a transform. Absent leaves should be passed
  back as they are.
  """

  def __init__(self, tree: Any):
    self._raws, self.leaves, self._treedef = _flatten(tree)

  def flatten_up_to(self, tree: Any) -> list[Any]:
    """The leaf values of ``tree``, which must have this layout."""
    leaves, _ = flatten_leaves(tree)
    if len(leaves) != len(self._raws):
      raise ValueError(f"expected a tree of {len(self._raws)} leaves, got {len(leaves)}.")
    return [leaf.value for leaf in leaves]

  def unflatten(self, values: Sequence[Any]) -> Any:
    """The tree again, with ``values`` as its leaves."""
    out = [rewrap(raw, v) for raw, v in zip(self._raws, values, strict=True)]
    return jax.tree_util.tree_unflatten(self._treedef, out)

  def unflatten_plain(self, values: Sequence[Any]) -> Any:
    """The tree again with ``values`` as its leaves, *not* rewrapped: a Linen box or an NNX
    ``Variable`` becomes its new value (for a state whose leaves have other shapes than the
    params', which a box's partitioning metadata would not describe)."""
    return jax.tree_util.tree_unflatten(self._treedef, list(values))


def rebuild(tree: Any, values: Sequence[Any]) -> Any:
  """``tree`` with its leaves (as :func:`flatten_leaves` lists them) replaced by ``values``."""
  return Structure(tree).unflatten(values)


def align(
  updates: Any, params: Any, *, fn: str, arg: str = "updates"
) -> tuple[list[Any], list[Any], Structure]:
  """The leaves of ``updates`` (``arg``) and of ``params``, unwrapped, checked to align.

  Both lists include absent leaves; the :class:`Structure` is
  the updates' (its ``unflatten`` puts results back in their Linen boxes / NNX
  ``Variable`` wrappers).

  Raises:
    ValueError: the key paths differ (the message names the first difference),
      or an update has another shape than its parameter.
  """
  structure = Structure(updates)  # one walk: the leaves and the way back
  u_leaves = structure.leaves
  p_leaves, _ = flatten_leaves(params)
  u_names = [leaf.names for leaf in u_leaves]
  p_names = [leaf.names for leaf in p_leaves]
  if u_names != p_names:
    a, b = next((a, b) for a, b in zip([*u_names, None], [*p_names, None], strict=False) if a != b)
    raise ValueError(
      f"{fn}: `{arg}` and `params` have different structures: the first difference "
      f"is {arg} path {_fmt(a)} vs params path {_fmt(b)}."
    )
  for u, p in zip(u_leaves, p_leaves, strict=True):
    if u.absent or p.absent:
      continue
    u_shape, p_shape = np.shape(u.value), np.shape(p.value)
    if u_shape != p_shape:
      raise ValueError(
        f"{fn}: `{arg}` at {u.path!r} has shape {u_shape} but its parameter has shape "
        f"{p_shape}; `{arg}` must have the parameters' shapes."
      )
  return [leaf.value for leaf in u_leaves], [leaf.value for leaf in p_leaves], structure


def _fmt(names: Names | None) -> str:
  return "<none>" if names is None else repr(path_str(names))


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
  if isinstance(key, (str, int)):  # already a component
    return key
  return str(key)


def key_names(path: Sequence[Any]) -> Names:
  """Converts a JAX key path into a tuple of ``str``/``int`` components."""
  return tuple(_component(k) for k in path)


def path_str(names: Names) -> str:
  """``('Dense_0', 'kernel')`` -> ``'Dense_0/kernel'``; ``()`` -> ``'<root>'``."""
  return "/".join(str(n) for n in names) if names else "<root>"


def _enclosing_classes(treedef: Any) -> list[tuple[type, ...]]:
  """For each leaf of ``treedef`` (in flatten order), the node types above it."""
  out: list[tuple[type, ...]] = []

  def walk(td: Any, stack: tuple[type, ...]) -> None:
    if td.num_nodes == 1 and td.num_leaves == 1:
      out.append(stack)
      return
    node = td.node_data()
    inner = stack if node is None else (*stack, node[0])
    for child in td.children():
      walk(child, inner)

  walk(treedef, ())
  return out


def _flatten(tree: Any) -> tuple[list[Any], list[Leaf], Any]:
  pairs, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_leaf)
  classes = _enclosing_classes(treedef)
  leaves = [Leaf(key_names(p), unwrap(x), c) for (p, x), c in zip(pairs, classes, strict=True)]
  return [x for _, x in pairs], leaves, treedef


def flatten_leaves(tree: Any) -> tuple[list[Leaf], Any]:
  """``tree`` as :class:`Leaf` records (absent leaves included) and its treedef."""
  _, leaves, treedef = _flatten(tree)
  return leaves, treedef


def flatten_with_names(tree: Any) -> tuple[list[tuple[Names, Any]], Any]:
  """``[(names, leaf)]`` of the *present* leaves of ``tree``, and its treedef.

  NNX ``Variable`` nodes and Linen boxes count as leaves and are unwrapped to
  their value; ``None`` and ``MaskedNode`` hold no leaf (as in ``jax.tree.flatten``).
  """
  pairs, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_wrapper)
  return [(key_names(p), unwrap(leaf)) for p, leaf in pairs], treedef


def map_leaves(fn: Callable[[Leaf], Any], tree: Any) -> Any:
  """``fn(leaf)`` on every present leaf, keeping ``tree``'s exact structure.

  Absent leaves stay as they are. An NNX ``Variable`` or a Linen box keeps its
  wrapper: its value is replaced by the result, so a mask built on wrapped
  params has their structure (as ``optax.masked`` requires) while its leaves
  are plain Python values.
  """
  raws, leaves, treedef = _flatten(tree)
  out = [
    raw if leaf.absent else rewrap(raw, fn(leaf)) for raw, leaf in zip(raws, leaves, strict=True)
  ]
  return jax.tree_util.tree_unflatten(treedef, out)


def nnx_param_state(module: Any) -> tuple[Any, dict[Names, type]]:
  """``nnx.state(module, nnx.Param)`` and the class of every module in the graph, by path."""
  from flax import nnx

  classes = {
    key_names_from_graph(path): type(node)
    for path, node in nnx.iter_graph(module)
    if isinstance(node, nnx.Module)
  }
  return nnx.state(module, nnx.Param), classes


def param_leaves(params: Any) -> tuple[Any, list[Leaf]]:
  """The params as an optimizer gets them, and their :class:`Leaf` records.

  An ``nnx.Module`` becomes ``nnx.state(module, nnx.Param)``, whose leaves carry
  the classes of the submodules that enclose them (the state alone has none);
  anything else is returned as it is, with :func:`flatten_leaves`' records.
  """
  if not is_nnx_module(params):
    return params, flatten_leaves(params)[0]
  state, by_path = nnx_param_state(params)
  leaves = [
    leaf._replace(
      classes=tuple(
        by_path[leaf.names[:k]] for k in range(len(leaf.names)) if leaf.names[:k] in by_path
      )
    )
    for leaf in flatten_leaves(state)[0]
  ]
  return state, leaves


def key_names_from_graph(path: Sequence[Any]) -> Names:
  """An NNX graph path (a tuple of keys) as ``str``/``int`` components."""
  return tuple(k if isinstance(k, int) else str(k) for k in path)
