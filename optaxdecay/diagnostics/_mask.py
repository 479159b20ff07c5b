"""``describe_mask``: which parameters a mask decays, as a table."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from optaxdecay import _deprecation, _selection, _tree
from optaxdecay.diagnostics._table import render_table


def _shape_dtype(path: str, leaf: Any) -> tuple[tuple[int, ...], Any]:
  dtype = getattr(leaf, "dtype", None)
  if dtype is None:
    dtype = np.asarray(leaf).dtype
  if np.dtype(dtype).kind == "O":
    raise TypeError(
      f"describe_mask: the leaf at {path!r} is {leaf!r}, not an array: pass the arrays only "
      "(an Equinox module: `eqx.filter(model, eqx.is_inexact_array)`)."
    )
  shape = tuple(int(d) for d in getattr(leaf, "shape", np.shape(leaf)))
  return shape, jnp.dtype(dtype)


class MaskRow(NamedTuple):
  """One parameter leaf in a :class:`MaskDescription`.

  ``multiplier`` is the leaf's decay multiplier (``True`` = 1.0, ``False`` =
  0.0, or a float mask's value); ``decayed`` is ``multiplier > 0``.
  """

  path: str
  shape: tuple[int, ...]
  dtype: str
  count: int  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  decayed: bool
  multiplier: float = 1.0


@dataclasses.dataclass(frozen=True)
class MaskDescription:
  """What a mask selects; ``str()`` prints it as a table with totals.

  Attributes:
    rows: one :class:`MaskRow` per parameter leaf, in flatten order.
    notes: what the table alone does not show (printed after it).
  """

  rows: tuple[MaskRow, ...]
  notes: tuple[str, ...] = ()

  @property
  def total(self) -> int:
    """Number of scalar parameters."""
    return sum(r.count for r in self.rows)

  @property
  def decayed(self) -> int:
    """Number of scalar parameters the mask decays."""
    return sum(r.count for r in self.rows if r.decayed)

  @property
  def decayed_leaves(self) -> int:
    """Number of leaves the mask decays."""
    return sum(r.decayed for r in self.rows)

  def __str__(self) -> str:
    body = [
      [r.path, str(r.shape), r.dtype, f"{r.count:,}", _decay_cell(r.multiplier)] for r in self.rows
    ]
    table = render_table(["path", "shape", "dtype", "count", "decayed"], body, right={3})
    pct = 100.0 * self.decayed / self.total if self.total else 0.0
    notes = "".join(f"\nnote: {n}" for n in self.notes)
    return (
      f"{table}\n"
      f"decayed: {self.decayed:,} of {self.total:,} parameters ({pct:.1f}%), "
      f"{self.decayed_leaves} of {len(self.rows)} leaves; "
      f"not decayed: {self.total - self.decayed:,}{notes}"
    )


def _decay_cell(multiplier: float) -> str:
  if multiplier in (0.0, 1.0):
    return "yes" if multiplier else "no"
  return f"x{multiplier:g}"


@_deprecation.keyword_only("mask")
def describe_mask(params: Any, *, mask: _selection.MaskArg = None) -> MaskDescription:
  """Lists every parameter leaf and whether ``mask`` decays it.

  The mask is resolved exactly as the transforms resolve it (matched by key
  path, prefixes allowed, callables called with ``params``), so the table shows
  what :func:`decoupled_weight_decay` or :func:`add_l2_to_grad` with the same
  ``mask=`` will do, and the same mistakes raise the same errors.

  Works on nested dicts, Flax Linen params (``dict`` or ``FrozenDict``, boxed
  by ``nn.with_partitioning`` or not), Flax NNX state (``nnx.state(model,
  nnx.Param)``, ``Param``-wrapped or plain) and the ``nnx.Module`` itself (its
  ``nnx.Param`` state is described; a mask function is called on the module),
  Equinox modules (filtered to their arrays, as the optimizer gets them) and
  lists/tuples; leaves may be arrays or ``jax.ShapeDtypeStruct``
  (``jax.eval_shape`` output, to inspect a model without allocating it).

  On an ``nnx.Module`` a mask function is called on the module, as you call it
  to pass ``mask=m(model)``; ``nnx.Optimizer`` instead calls a mask function on
  the module's ``nnx.Param`` state, and where that raises (a rule on module
  classes, which the state does not carry), the description says so in a note.

  Args:
    params: the parameters.
    mask: ``None`` (every leaf), a pytree of bools or float multipliers, or a
      callable ``params -> such a pytree`` (e.g. :func:`optaxdecay.bias_mask`
      or :func:`optaxdecay.decay_multipliers`). A leaf decayed with a
      multiplier other than 1 shows it (``x0.5``).

  Returns:
    A :class:`MaskDescription`; ``print`` it for the table.

  Raises:
    ValueError: ``mask`` does not match the params.
    TypeError: ``mask`` has a leaf that is neither a bool nor a number, or
      selects a non-float leaf; a leaf of ``params`` is not an array (a
      function of an unfiltered Equinox module).

  Example:
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> params = {'Dense_0': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)}}
    >>> print(od.diagnostics.describe_mask(params, mask=od.bias_mask))
    path            shape   dtype    count  decayed
    --------------  ------  -------  -----  -------
    Dense_0/bias    (4,)    float32      4  no
    Dense_0/kernel  (3, 4)  float32     12  yes
    decayed: 12 of 16 parameters (75.0%), 1 of 2 leaves; not decayed: 4
  """
  notes: tuple[str, ...] = ()
  if _tree.is_nnx_module(params):  # what bias_mask and the transforms see: its nnx.Param state
    module = params
    params, _ = _tree.nnx_param_state(module)
    if _selection.is_mask_fn(mask):
      notes = _state_note(mask, params)
      mask = mask(module)
  rows = []
  for leaf, m in _selection.selected_leaves(mask, params, fn="describe_mask"):
    shape, dtype = _shape_dtype(leaf.path, leaf.value)
    rows.append(MaskRow(leaf.path, shape, str(dtype), math.prod(shape), m > 0, m))
  return MaskDescription(tuple(rows), notes)


def _state_note(mask: Any, state: Any) -> tuple[str, ...]:
  """What ``nnx.Optimizer(model, tx)`` meets: the mask function called on the Param state."""
  try:
    mask(state)
  except (ValueError, TypeError) as err:
    return (
      "on the module's nnx.Param state (what nnx.Optimizer calls a mask function with) "
      f"this mask raises ({type(err).__name__}: {str(err).splitlines()[0][:120]}...): pass "
      "`mask=<the mask function>(model)` to the transform, as this table does.",
    )
  return ()
