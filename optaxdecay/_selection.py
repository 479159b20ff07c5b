"""What ``mask=`` means, for every transform: one multiplier per parameter leaf.

The contract (``docs/howto.md``, "Choosing what decays"):

* ``None`` selects every leaf with multiplier 1.
* A pytree with the params' structure, or a prefix of it, matched **by key
  path** (so a plain ``dict`` mask serves ``FrozenDict`` and NNX ``State``
  params, and a mask built on ``Param``-wrapped state serves the plain arrays
  ``update`` sees). Its leaves are ``bool`` (``True`` = 1, ``False`` = 0) or
  real numbers ``>= 0``: per-leaf multipliers of ``l2``/``rate``. The longest
  mask path that is a prefix of a parameter's path applies.
* A callable ``params -> such a pytree``. A pytree whose *nodes* happen to be
  callable (an Equinox module of bools) is a pytree, not a function: the rule
  is Optax's (optax#913): a mask is a function iff all of its leaves are
  callable.
* Absent leaves (``None``, or the ``MaskedNode`` an outer ``optax.masked`` /
  ``multi_transform`` left) are never selected, and mask entries for them, or
  below them, are not an error. A selection with nothing in it is the identity.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from optaxdecay import _hparams, _tree

MaskArg = Any  # None | pytree of bool/float | Callable[[params], pytree of bool/float]

F = TypeVar("F", bound=Callable[..., Any])


def mask_builder(builder: F) -> F:
  """Declares ``builder`` a mask *builder*: a function that returns a mask function.

  ``bias_mask`` is a mask; ``decay_mask(...)`` and ``decay_multipliers(...)`` build one. A
  builder passed uncalled as ``mask=`` is refused when one of our transforms is built, and
  when something else calls it with the params in place of its arguments (``optax.masked``,
  ``optax.adamw``'s ``mask``), with the spelling to use.
  """
  name = builder.__name__
  kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
  positional = sum(p.kind in kinds for p in inspect.signature(builder).parameters.values())

  @functools.wraps(builder)
  def build(*args: Any, **kwargs: Any) -> Any:
    if len(args) > positional:
      raise TypeError(
        f"{name}: called with {_hparams.describe(args[0])} positionally, but it takes keyword "
        f"arguments only: it builds a mask function. Was it passed uncalled as a mask "
        f"(`mask=optaxdecay.{name}`)? Call it: `mask=optaxdecay.{name}(...)`."
      )
    return builder(*args, **kwargs)

  build.__optaxdecay_mask_builder__ = True  # type: ignore[attr-defined]
  return build  # type: ignore[return-value]


def is_mask_fn(mask: Any) -> bool:
  """Optax's rule: a mask is a function iff it has leaves and all are callable."""
  flags = jax.tree.leaves(jax.tree.map(callable, mask))
  return bool(flags) and all(flags)


def multiplier(value: Any, *, fn: str, where: str) -> float:
  """A mask leaf as a float multiplier: ``bool`` -> 0/1, a real ``>= 0`` as is.

  Concrete 0-d NumPy and JAX values count as their Python value, as in Optax's
  masks (``jnp.bool_(True)`` selects, ``np.float32(0.5)`` is a multiplier).
  """
  if (
    isinstance(value, (np.ndarray, jax.Array))
    and not isinstance(value, jax.core.Tracer)
    and np.shape(value) == ()
    and (np.issubdtype(value.dtype, np.bool_) or np.issubdtype(value.dtype, np.floating))
  ):
    value = np.asarray(value)[()]  # a NumPy scalar: handled below
  if isinstance(value, (bool, np.bool_)):
    return float(value)
  if isinstance(value, (float, np.floating)):
    x = float(value)
    if not math.isfinite(x) or x < 0:
      raise ValueError(
        f"{fn}: `mask` leaf at {where!r} is {x}; a multiplier must be finite and >= 0."
      )
    return x
  hint = ""
  if isinstance(value, jax.core.Tracer):
    hint = (
      " A traced value here usually means `optax.inject_hyperparams` evaluated a mask "
      "function as if it were a schedule: pass `static_args=('mask',)` to "
      "inject_hyperparams."
    )
  elif isinstance(value, (np.ndarray, jax.Array)):
    hint = (
      f" Got an array of shape {np.shape(value)} and dtype {value.dtype}: one bool or "
      "float per leaf."
    )
  if isinstance(value, numbers.Integral):
    hint = f" For a multiplier write {float(value)!r}; to select or skip, True/False."
  raise TypeError(
    f"{fn}: `mask` leaf at {where!r} is {type(value).__name__}; expected a bool "
    f"or a float >= 0 (masks must be static to be jit-compiled).{hint}"
  )


class Selection(NamedTuple):
  """A checked ``mask=`` argument; :meth:`resolve` gives one multiplier per leaf."""

  fn: str
  mask: Any
  table: dict[_tree.Names, float] | None  # the static mask's entries; None otherwise

  def largest(self, params: Any = None) -> tuple[float, str]:
    """The largest multiplier, and the path of the leaf (or mask entry) that has it.

    Known without the params for ``None`` (1) and a static mask (its largest entry); a mask
    function is resolved on ``params``. ``(0.0, "")`` when nothing is selected.
    """
    if self.mask is None:
      return 1.0, ""
    if self.table is not None:
      pairs = [(m, _tree.path_str(names)) for names, m in self.table.items()]
    else:
      leaves, _ = _tree.flatten_leaves(params)
      pairs = [(m, leaf.path) for leaf, m in zip(leaves, self.resolve(params), strict=True)]
    return max(pairs, key=lambda pair: pair[0], default=(0.0, ""))

  @property
  def static(self) -> bool:
    """Whether the multipliers are known before the params (no mask function)."""
    return self.mask is None or self.table is not None

  def resolve(self, params: Any) -> list[float]:
    """One multiplier per leaf of ``params`` (flatten order, absent leaves 0).

    Raises:
      TypeError: a mask leaf is not a bool or a real number, or a selected
        parameter is not floating point.
      ValueError: the mask's key paths do not match the params', or a
        multiplier is negative or not finite.
    """
    leaves, _ = _tree.flatten_leaves(params)
    if self.mask is None:
      mults = [0.0 if leaf.absent else 1.0 for leaf in leaves]
    else:
      table = self.table
      if table is None:
        table = _table(_call(self.mask, params, fn=self.fn), fn=self.fn, called=True)
      mults = _match(table, leaves, fn=self.fn)
    for leaf, m in zip(leaves, mults, strict=True):
      if m and not _is_inexact(leaf.value):
        raise TypeError(
          f"{self.fn}: `mask` selects the leaf {leaf.path!r} of "
          f"{_describe_value(leaf.value)}, but weight decay only applies to floating-point "
          f"leaves. {_exclude_hint(leaf.value)}"
        )
    return mults


def _call(mask_fn: Callable[[Any], Any], params: Any, *, fn: str) -> Any:
  """``mask_fn(params)``; an exception it raises gets a note naming ``fn``'s ``mask``."""
  try:
    return mask_fn(params)
  except Exception as e:
    name = getattr(mask_fn, "__qualname__", type(mask_fn).__name__)
    e.add_note(f"(raised by {fn}'s `mask` function {name}, called with the params)")
    raise


def _is_inexact(value: Any) -> bool:
  """A floating-point or complex array, or a Python float/complex (as Optax decays them)."""
  if isinstance(value, (float, complex)):
    return True
  dtype = getattr(value, "dtype", None)
  return dtype is not None and bool(jnp.issubdtype(dtype, jnp.inexact))


def _exclude_hint(value: Any) -> str:
  if getattr(value, "dtype", None) is None and not isinstance(value, (int, float, complex)):
    return (  # a function or a module setting: the params were not filtered to their arrays
      "Pass the arrays only (an Equinox module: `eqx.filter(model, eqx.is_inexact_array)`)."
    )
  return "Exclude it with `mask=` (e.g. `optaxdecay.decay_mask(...)`)."


def _describe_value(value: Any) -> str:
  dtype = getattr(value, "dtype", None)
  return f"dtype {dtype}" if dtype is not None else f"type {type(value).__name__}"


def selection(mask: MaskArg, *, fn: str) -> Selection:
  """Checks a ``mask=`` argument once, when the transform is built."""
  if isinstance(mask, (bool, np.bool_)):
    raise TypeError(
      f"{fn}: `mask={mask}` is a single bool; pass `mask=None` to apply to every "
      "leaf, or a pytree/callable to choose leaves. (A bare bool also appears when "
      "`optax.inject_hyperparams` calls a mask function with the step count as if "
      "it were a schedule: pass `static_args=('mask',)`.)"
    )
  if mask is None:
    return Selection(fn, None, None)
  if getattr(mask, "__optaxdecay_mask_builder__", False):
    name = mask.__name__
    raise TypeError(
      f"{fn}: `mask=optaxdecay.{name}` is the mask *builder*; call it to get the mask "
      f"function: `mask=optaxdecay.{name}(...)`."
    )
  if is_mask_fn(mask):
    return Selection(fn, mask, None)
  return Selection(fn, mask, _table(mask, fn=fn, called=False))


def _table(mask_tree: Any, *, fn: str, called: bool) -> dict[_tree.Names, float]:
  if is_mask_fn(mask_tree) and called:
    raise TypeError(
      f"{fn}: the `mask` function returned a function ({mask_tree!r}), not a pytree of "
      "bools or floats. Was it a mask builder that still needs calling?"
    )
  leaves, _ = _tree.flatten_leaves(mask_tree)
  return {
    leaf.names: multiplier(leaf.value, fn=fn, where=leaf.path) for leaf in leaves if not leaf.absent
  }


def _match(table: dict[_tree.Names, float], leaves: list[_tree.Leaf], *, fn: str) -> list[float]:
  used: set[_tree.Names] = set()
  out: list[float] = []
  for leaf in leaves:
    key = next(
      (leaf.names[:cut] for cut in range(len(leaf.names), -1, -1) if leaf.names[:cut] in table),
      None,
    )
    if key is not None:
      used.add(key)
      out.append(0.0 if leaf.absent else table[key])
    elif leaf.absent:
      out.append(0.0)
    else:
      raise ValueError(
        f"{fn}: `mask` does not match the params: the parameter {_keyed(leaf.names)} has "
        f"no entry in the mask (mask paths: {_preview(table)}). A mask must have the "
        "params' key paths, or be a prefix of them."
      )
  absent = {leaf.names for leaf in leaves if leaf.absent}
  for names in table:
    under_absent = any(names[:cut] in absent for cut in range(len(names) + 1))
    if names not in used and not under_absent:
      raise ValueError(
        f"{fn}: `mask` does not match the params: the mask path {_keyed(names)} names no parameter."
      )
  return out


def _keyed(names: _tree.Names) -> str:
  """A path for a message; with its keys' types where an ``int`` key would print as a ``str``."""
  text = repr(_tree.path_str(names))
  if any(isinstance(n, int) or (isinstance(n, str) and n.isdigit()) for n in names):
    text += f" (keys {names!r})"
  return text


def _preview(table: dict[_tree.Names, float], limit: int = 4) -> str:
  if not table:
    return "none: the mask has no leaves"
  names = [_keyed(n) for n in list(table)[:limit]]
  return ", ".join(names) + (", ..." if len(table) > limit else "")


def selected_leaves(mask: MaskArg, params: Any, *, fn: str) -> list[tuple[_tree.Leaf, float]]:
  """``(leaf, multiplier)`` for every present leaf of ``params``, for reports."""
  leaves, _ = _tree.flatten_leaves(params)
  mults = selection(mask, fn=fn).resolve(params)
  return [(leaf, m) for leaf, m in zip(leaves, mults, strict=True) if not leaf.absent]
