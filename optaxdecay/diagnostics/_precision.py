"""``decay_precision_report``: which decay steps the params' dtype rounds away."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from optaxdecay import _hparams, _selection
from optaxdecay.diagnostics._table import render_table


class PrecisionRow(NamedTuple):
  """One leaf of a :class:`PrecisionReport`.

  Attributes:
    path: the leaf's path.
    dtype: the leaf's dtype.
    count: number of elements.
    lost: nonzero elements whose decay step rounds away.
    fraction: ``lost / count``.
  """

  path: str
  dtype: str
  count: int  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  lost: int
  fraction: float


@dataclasses.dataclass(frozen=True)
class PrecisionReport:
  """Result of :func:`decay_precision_report`; ``str()`` prints a table.

  Attributes:
    rows: one :class:`PrecisionRow` per selected leaf.
    rate: the decay rate checked.
  """

  rows: tuple[PrecisionRow, ...]
  rate: float

  @property
  def lost(self) -> int:
    """Elements whose decay step is lost, over all selected leaves."""
    return sum(r.lost for r in self.rows)

  @property
  def count(self) -> int:
    """Elements in the selected leaves."""
    return sum(r.count for r in self.rows)

  @property
  def fraction(self) -> float:
    """``lost / count`` over all selected leaves (0 if there are none)."""
    return self.lost / self.count if self.count else 0.0

  def __str__(self) -> str:
    body = [
      [r.path, r.dtype, f"{r.count:,}", f"{r.lost:,}", f"{100 * r.fraction:.1f}%"]
      for r in self.rows
    ]
    table = render_table(["path", "dtype", "count", "lost", "lost %"], body, right={2, 3, 4})
    return (
      f"{table}\n"
      f"rate {self.rate:g}: {self.lost:,} of {self.count:,} decay steps "
      f"({100 * self.fraction:.1f}%) round to no change"
    )


def lost_steps(w: np.ndarray, rate: float) -> np.ndarray:
  """Nonzero finite elements that one correctly rounded ``w - rate*w`` maps back to ``w``.

  The step moves ``|w|`` towards zero by ``d = rate*|w|``; the result rounds to
  ``w`` iff ``d`` is below half the gap to the next representable magnitude
  below ``|w|`` (a tie keeps ``w`` when its significand is even). The gap is
  exact: that neighbour's bit pattern is ``|w|``'s minus one, in every IEEE-like
  format (bfloat16, float16, float32, float64, subnormals included).
  """
  a = np.abs(w)
  bits = a.view(np.dtype(f"uint{8 * a.dtype.itemsize}"))
  finite = np.isfinite(a.astype(np.float64)) & (a != 0)
  below = np.where(finite, bits - 1, bits).view(a.dtype)
  a64 = a.astype(np.float64)
  half_gap = (a64 - below.astype(np.float64)) / 2
  d = rate * a64
  even = (bits & 1) == 0
  return finite & ((d < half_gap) | ((d == half_gap) & even))


def decay_precision_report(
  params: Any, rate: float, *, mask: _selection.MaskArg = None
) -> PrecisionReport:
  """The fraction of each leaf's decay step that is lost to rounding.

  One decoupled-decay step :math:`w \\leftarrow w - r\\,w` changes a weight only
  if the result rounds to a different number in the weight's dtype, i.e.
  when

  .. math::

    r\\,|w| \\ge \\tfrac12\\,\\mathrm{ulp}(w),

  with :math:`\\mathrm{ulp}(w)` the spacing of the dtype just below
  :math:`|w|` (half the usual ulp at a power of two; a tie keeps :math:`w` when
  its last significand bit is even). Elements below the threshold keep their
  value: the decay is **silently a no-op** on them, step after step, however
  many steps you take. With :math:`p` significand bits the threshold relative
  to a normal (not subnormal) :math:`|w|` lies in :math:`[2^{-p-1}, 2^{-p})`: ``bfloat16``
  (:math:`p=8`) loses every step with :math:`r < 2^{-9} \\approx 1.95\\times10^{-3}`
  and none with :math:`r \\ge 2^{-8} \\approx 3.9\\times10^{-3}`
  -- AdamW's ``lr 1e-4 × wd 0.1`` is :math:`r = 10^{-5}` -- while ``float32``
  (:math:`p=24`) keeps every step with :math:`r \\ge 2^{-24} \\approx 6\\times10^{-8}`.
  The remedy is to keep float32 master weights (decay and update them in float32,
  cast to bfloat16 for the forward pass); see the diagnostics docs.

  Each element is checked exactly, as one correctly rounded step
  ``w - r*w`` in the leaf's dtype (round to nearest, ties to even). Zeros and
  non-finite values are never counted as lost (there is nothing to decay).

  Args:
    params: the parameters (arrays of any float dtype, ``bfloat16`` included).
    rate: the fraction removed per step, :math:`0 \\le r < 1` (for
      ``optax.adamw`` this is ``lr * weight_decay``; for a schedule, its value
      at the step being inspected).
    mask: which leaves are decayed (as in the transforms). Default: all.

  Returns:
    A :class:`PrecisionReport` (``rows``, totals, a table via ``print``).

  Raises:
    ValueError: ``rate`` is out of range; ``mask`` does not match the params.
    TypeError: ``rate`` is not a float; ``mask`` selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> w = jnp.linspace(-1.0, 1.0, 100)
    >>> params = {'bf16': w.astype(jnp.bfloat16), 'f32': w}
    >>> report = od.diagnostics.decay_precision_report(params, rate=1e-4 * 0.1)
    >>> [(r.path, r.fraction) for r in report.rows]
    [('bf16', 1.0), ('f32', 0.0)]
  """
  fn = "decay_precision_report"
  rate = _hparams.check_concrete(rate, fn=fn, arg="rate", high=1.0)
  selected = _selection.selected_leaves(mask, params, fn=fn)
  top, path = max(((m, leaf.path) for leaf, m in selected), default=(0.0, ""))
  where = f" (at {path!r})" if top != 1 else ""
  _hparams.warn_per_step_rate(rate, fn=fn, arg="rate", multiplier=top, where=where)
  rows = []
  for leaf, m in selected:
    if not m:
      continue
    w = np.asarray(leaf.value)
    lost = int(lost_steps(w, rate * m).sum())
    rows.append(
      PrecisionRow(leaf.path, str(w.dtype), int(w.size), lost, lost / w.size if w.size else 0.0)
    )
  return PrecisionReport(tuple(rows), rate)
