"""The one tree utility every optaxdecay module shares: naming and walking leaves.

* **Naming leaves.** :func:`flatten_leaves` flattens a pytree into
  :class:`Leaf` records: the key path as a tuple of ``str``/``int``
  components (dict keys of ``dict``, Flax ``FrozenDict`` and NNX ``State``;
  attribute names of Equinox modules and dataclasses; sequence indices), the
  leaf's value, and the classes of the pytree nodes that enclose it (so that a
  rule can ask "is this inside a ``LayerNorm``?" on Equinox modules).
* **Wrappers.** A Flax NNX ``Variable`` (``nnx.Param``, as ``nnx.Optimizer.init``
  sees the state) is the leaf it wraps, so the same parameter has the same path
  whether or not it is wrapped.
* **Absent leaves.** ``None`` and Optax's ``MaskedNode`` (what an outer
  ``optax.masked`` / ``optax.multi_transform`` puts where it removed a
  parameter) are kept as leaves and marked :attr:`Leaf.absent`, so that every
  transform can pass them through and a mask can name them without error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
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


def is_absent(x: Any) -> bool:
  """``None`` or ``optax.MaskedNode``: a place in the tree that holds no parameter."""
  return x is None or isinstance(x, MaskedNode)


def _is_leaf(x: Any) -> bool:
  return is_absent(x) or is_nnx_variable(x)


def unwrap(leaf: Any) -> Any:
  """The value of an NNX ``Variable``; anything else unchanged."""
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

  NNX ``Variable`` nodes count as leaves and are unwrapped to their value;
  ``None`` and ``MaskedNode`` hold no leaf (as in ``jax.tree.flatten``).
  """
  pairs, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_nnx_variable)
  return [(key_names(p), unwrap(leaf)) for p, leaf in pairs], treedef


def map_leaves(fn: Callable[[Leaf], Any], tree: Any) -> Any:
  """``fn(leaf)`` on every present leaf, keeping ``tree``'s exact structure.

  Absent leaves stay as they are. An NNX ``Variable`` keeps its wrapper: its
  value is replaced by the result, so a mask built on ``Param``-wrapped state
  has the state's structure (as ``optax.masked`` requires) while its leaves
  are plain Python values.
  """
  raws, leaves, treedef = _flatten(tree)
  out = []
  for raw, leaf in zip(raws, leaves, strict=True):
    if leaf.absent:
      out.append(raw)
    elif is_nnx_variable(raw):
      out.append(jax.tree.map(lambda _, leaf=leaf: fn(leaf), raw))
    else:
      out.append(fn(leaf))
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


def key_names_from_graph(path: Sequence[Any]) -> Names:
  """An NNX graph path (a tuple of keys) as ``str``/``int`` components."""
  return tuple(k if isinstance(k, int) else str(k) for k in path)
