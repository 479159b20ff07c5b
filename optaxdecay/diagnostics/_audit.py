"""``diagnostics.audit``: what any optimizer really does to each weight, measured as a black box.

The measurement is :mod:`optaxdecay.diagnostics._probe`'s; this module turns its counts into a
verdict per leaf (none, decoupled, coupled, anchored, non-finite), the report, and the warnings.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _hparams, _masks, _tree
from optaxdecay.diagnostics import _probe
from optaxdecay.diagnostics._precision import lost_steps
from optaxdecay.diagnostics._table import render_table

#: Gradient scales (per coordinate) of the three measurements: small, unit, large.
SCALES = (1e-2, 1.0, 1e2)
#: A rate that changes by more than this factor between two gradient scales is coupled.
COUPLED_FACTOR = 2.0
#: On a one-coordinate leaf, a rate whose sign flips on more than this share of the calls (and
#: less than ``1 -`` it) is a step scaled by the weights (a trust ratio), not a decay.
MIXED_SIGNS = 0.1
#: A gradient scale resolves a leaf's rate when at most this share of the counted events (on or
#: unresolved) is unresolved: the rate is then their mean, with no more than this left out.
UNRESOLVED = 0.1
#: An unresolved scale whose floor is this many times below the rate resolved at another scale
#: shows the rate fell there: coupled.
FELL = 8.0
#: A ``'none'`` whose floor is above this per-step rate (10 % of a weight over 10**4 steps)
#: could hide a decay that matters: it gets a warning.
UNSEEN = 1e-5
#: A decoupled rate that changes by more than this between the halves of the measured calls
#: has not reached its steady state (SGD-momentum 0.99 needs ~500 steps).
STEADY = 0.1
#: Smallest ``steps``: the rate is read over the second half of the calls.
MIN_STEPS = 8


class AuditRow(NamedTuple):
  """What the optimizer does to one parameter leaf (see :func:`audit`).

  Attributes:
    path: the leaf's ``'a/b'`` path, as :func:`~optaxdecay.diagnostics.describe_mask` prints it.
    kind: ``'none'`` (no part of the update is proportional to the weights, down to ``floor``),
      ``'decoupled'`` (it is, at a rate that does not depend on the gradients' scale),
      ``'coupled'`` (it depends on it: L2 inside an adaptive optimizer), ``'anchored'`` (a
      decay toward the weights at ``tx.init``, such as L2-Init) or ``'non-finite'`` (the
      updates are inf/nan at every gradient scale).
    rate: the median over coordinates of the per-step rate when the decay acts, averaged over
      the measured calls (with a schedule: its mean over them).
    low: its 10th percentile over coordinates.
    high: its 90th percentile.
    ratio: the rate at gradient scale 1e-2 over the rate at 1e2 (1 for decoupled decay, up to
      1e4 for L2 inside Adam); ``nan`` where either is not resolved.
    spread: the largest over the smallest rate among the gradient scales where it is resolved
      (1 for decoupled decay); ``nan`` where there is no rate.
    frozen: the optimizer leaves the leaf unchanged for a non-zero gradient.
    relative: the update of each coordinate depends on the *other* weights of the leaf, or its
      dependence on the weight flips sign from call to call (a trust ratio or a relative step
      size: ``optax.lamb``, ``optax.adafactor``): ``rate`` is then the update-to-weight ratio,
      not a decay toward zero.
    lr_slope: with a learning-rate schedule (``schedule=``, or ``tx`` made by
      ``optax.inject_hyperparams``), the slope of log rate against log learning rate over the
      measured calls: 1 when the decay follows the schedule (``optax.adamw``: rate
      ``η_t·λ``), 0 when it does not (a constant decoupled decay); ``nan`` when not measured.
    fraction: the share of the optimizer's steps (and coordinates) on which the decay acts:
      1 for a decay on every step, about 0.5 for cautious decay, ``1/k`` for a decay applied
      every ``k``-th step. The mean per-step rate is ``rate * fraction``.
    floor: for ``'none'``, the smallest per-step rate the measurement could have resolved in
      the leaf's dtype (a decay below it would go unseen); ``nan`` otherwise.
  """

  path: str
  kind: str
  rate: float
  low: float
  high: float
  ratio: float
  spread: float
  frozen: bool
  relative: bool = False
  lr_slope: float = math.nan
  fraction: float = 1.0
  floor: float = math.nan


@dataclasses.dataclass(frozen=True)
class AuditReport:
  """The result of :func:`audit`: one :class:`AuditRow` per leaf, and the warnings."""

  rows: tuple[AuditRow, ...]
  warnings: tuple[str, ...]
  steps: int

  def __str__(self) -> str:
    slopes = any(not math.isnan(r.lr_slope) for r in self.rows)
    gated = any(r.fraction < 0.995 for r in self.rows)
    headers = ["path", "kind", "rate/step", "10-90 %"]
    headers += ["of steps"] * gated + ["small/large grad", "frozen"] + ["follows lr"] * slopes
    right = {i for i, h in enumerate(headers) if h in _NUMERIC}
    text = render_table(headers, [_cells(r, gated, slopes) for r in self.rows], right=right)
    notes = "\n".join(f"warning: {w}" for w in self.warnings)
    return text + (f"\n{notes}" if notes else "")


_NUMERIC = frozenset({"rate/step", "of steps", "small/large grad", "follows lr"})


def _cells(r: AuditRow, gated: bool, slopes: bool) -> list[str]:
  measured = r.kind not in ("none", "non-finite")
  if r.kind == "none":
    rate = f"< {r.floor:.1g}" if r.floor > 0 else "0"
  else:
    rate = f"{r.rate:.3g}" if measured else "-"
  cells = [
    r.path,
    r.kind + (" (relative)" if r.relative else ""),
    rate,
    f"[{r.low:.3g}, {r.high:.3g}]" if measured else "-",
  ]
  if gated:
    cells.append(f"{100 * r.fraction:.0f}%" if measured else "-")
  cells += ["-" if math.isnan(r.ratio) else f"{r.ratio:.3g}", "yes" if r.frozen else "no"]
  if slopes:
    slope = 0.0 if abs(r.lr_slope) < 0.005 else r.lr_slope  # no "-0.00"
    cells.append("-" if math.isnan(r.lr_slope) else f"{slope:.2f}")
  return cells


class _Reading(NamedTuple):
  """What one pair of runs says about one leaf at one gradient scale."""

  state: str  # 'resolved', 'unresolved', 'still' (no update moved) or 'non-finite'
  rate: float = math.nan
  low: float = math.nan
  high: float = math.nan
  fraction: float = 1.0
  floor: float = math.nan  # the median smallest resolvable rate (unresolved readings)
  negative: float = 0.0  # the share of on-events whose rate is negative


def _read(s: _probe.Stats) -> _Reading:
  """A decay's rate when on, how often it is on, and how small a rate could be seen."""
  counted = s.n_on + s.n_unresolved
  if s.nonfinite:
    return _Reading("non-finite")
  if not (counted + s.n_off).any():
    return _Reading("still")
  with np.errstate(divide="ignore", invalid="ignore"):
    floors = (s.s_floor / s.n_unresolved)[s.n_unresolved > 0]
  bound = float(np.median(floors)) if floors.size else 0.0
  if not s.n_on.any() or s.n_unresolved.sum() > UNRESOLVED * counted.sum():
    return _Reading("unresolved", floor=bound)
  on = s.n_on > 0
  low, mid, high = np.percentile(s.s_rate[on] / counted[on], [10, 50, 90])
  fraction = s.n_on.sum() / (s.n_on.sum() + s.n_off.sum())
  negative = s.n_neg.sum() / s.n_on.sum()
  return _Reading("resolved", float(mid), float(low), float(high), float(fraction), bound, negative)


def _local(s: _probe.Stats, pick: np.ndarray) -> bool:
  """With every other weight perturbed, whether the others' updates stayed as they were.

  A decay, coupled or not, acts coordinate by coordinate (Adam's preconditioner too); a trust
  ratio or a relative step size rescales the whole leaf's update with the leaf's norm.
  """
  odd = pick % 2 == 1
  if odd.all() or not odd.any():
    return True
  still = s.n_on[~odd].sum()  # even coordinates: not perturbed
  return bool(still <= 0.01 * s.n_on[odd].sum())


def _scaling(s: _probe.Stats) -> bool:
  """Whether the update's size scales with the weight (``|u(w+Δ)/(w+Δ)| = |u(w)/w|``) by a
  factor that changes from call to call: a step relative to the weight (a trust ratio on a
  one-coordinate leaf), which a decay — a constant factor — is not."""
  if s.n_eligible == 0 or s.n_proportional < 0.9 * s.n_eligible:
    return False
  calls = s.per_call[np.isfinite(s.per_call)]
  varies = calls.size > 1 and np.std(calls) > 0.01 * np.mean(calls)
  return bool(s.n_neg.sum() > 0 or varies)


@dataclasses.dataclass(frozen=True)
class _Leaf:
  """One leaf's readings: per gradient scale, and the unit scale's extra measurements."""

  leaf: _tree.Leaf
  scales: tuple[_Reading, ...]
  local: bool
  anchored: _Reading
  frozen: bool
  is_bias: bool
  per_call: np.ndarray  # the unit pair's rate per call (tracked coordinates), for lr_slope
  scaling: bool  # the whole update scales with the weight, by a factor that varies
  rounding: float  # the rate that the rounding of a weight-sized result reads as (K ulp / δ)


def _row(x: _Leaf, lr_slope: float) -> AuditRow:
  small, unit, large = x.scales
  frozen = x.frozen
  if all(r.state == "non-finite" for r in x.scales):
    return AuditRow(x.leaf.path, "non-finite", math.nan, math.nan, math.nan, math.nan, math.nan,
                    frozen)  # fmt: skip
  usable = [r for r in x.scales if r.state == "resolved"]
  if not usable:
    if x.anchored.state == "resolved":
      a = x.anchored
      return AuditRow(x.leaf.path, "anchored", a.rate, a.low, a.high, math.nan, math.nan, frozen,
                      not x.local, lr_slope, a.fraction)  # fmt: skip
    floors = [r.floor for r in x.scales if r.state == "unresolved"]
    return AuditRow(x.leaf.path, "none", 0.0, 0.0, 0.0, math.nan, math.nan, frozen,
                    floor=min(floors, default=0.0))  # fmt: skip
  sizes = [abs(r.rate) for r in usable]
  spread = max(sizes) / min(sizes) if min(sizes) > 0 else math.inf
  # A scale where the rate was not resolved bounds it from above: far below the others, the
  # rate must have fallen there (L2 inside Adam at large gradients).
  fell = any(r.state == "unresolved" and r.floor * FELL < max(sizes) for r in x.scales)
  kind = "coupled" if spread > COUPLED_FACTOR or fell else "decoupled"
  main = unit if unit.state == "resolved" else usable[0]
  both = small.state == large.state == "resolved"
  ratio = small.rate / large.rate if both else math.nan
  mixed = unit.state == "resolved" and MIXED_SIGNS < unit.negative < 1 - MIXED_SIGNS
  if mixed and x.local and max(abs(main.low), abs(main.high)) < x.rounding:
    # Rates of either sign, all within the rounding of a weight-sized result: an update
    # computed as `new_params - params` (schedule-free), not a dependence on the weights.
    return AuditRow(x.leaf.path, "none", 0.0, 0.0, 0.0, math.nan, math.nan, frozen,
                    floor=x.rounding)  # fmt: skip
  relative = not x.local or mixed or x.scaling
  return AuditRow(x.leaf.path, kind, main.rate, main.low, main.high, ratio, spread, frozen,
                  relative, lr_slope, main.fraction)  # fmt: skip


# --- the warnings ----------------------------------------------------------------------------


def _dtype(leaf: _tree.Leaf) -> np.dtype:
  """The leaf's dtype as JAX sees it (a Python float: float32)."""
  return np.dtype(jnp.result_type(leaf.value))


def _module(leaf: _tree.Leaf) -> str | None:
  """The name of the innermost module class enclosing ``leaf`` (``None``: only containers)."""
  names = [c.__name__ for c in leaf.classes if c.__name__ not in _masks.CONTAINER_NAMES]
  return names[-1] if names else None


def _role(x: _Leaf) -> str | None:
  """``'bias'``, ``'norm'``, ``'embedding'`` or ``None``: by module class where the tree has
  them, else by name; a bias by :func:`~optaxdecay.bias_mask`'s own rule; an embedding is a
  2-D lookup table (a conv kernel named ``embedding`` is not one)."""
  if x.is_bias:
    return "bias"
  ndim = np.ndim(x.leaf.value)
  module = _module(x.leaf)
  if module is not None:
    if "Norm" in module:
      return "norm"
    return "embedding" if "Embed" in module and ndim == 2 else None
  parts = [p.lower() for n in x.leaf.names for p in re.split(r"[./]", str(n))]
  if parts and parts[-1] in ("running_mean", "running_var", "num_batches_tracked"):
    return "buffer"
  if _masks.leaf_name(x.leaf.names) == "scale" or any(
    "norm" in p or p.startswith("ln_") or p == "ln" for p in parts
  ):
    return "norm"
  if any("pos" in p and "embed" in p for p in parts) and ndim >= 2:
    return "embedding"  # a learned position table, (N, D) or ViT's (1, N, D)
  if ndim == 2 and any("embed" in p or p in ("wte", "wpe") for p in parts):
    return "embedding"
  return None


_ROLE_WARNING = {
  "bias": "is a bias and decays{how}: exclude it with mask=od.bias_mask.",
  "norm": "is a normalization parameter and decays{how}.",
  "embedding": "is an embedding and decays{how}.",
  "buffer": "looks like a BatchNorm running statistic (a buffer, not a parameter) and "
  "decays{how}: keep buffers out of the optimizer's params.",
}


def _warnings(x: _Leaf, row: AuditRow, total: float | None, steps: int | None) -> list[str]:
  at = f"{row.path!r}"
  out = _scale_warnings(x, row)
  if row.kind == "none" and row.floor > UNSEEN:
    out.append(_unseen_warning(x, row))
  if row.kind in ("none", "non-finite"):
    return out
  if row.relative:
    return [*out, f"{at}: the update is scaled by the leaf's own weights (a trust ratio or a "
                  "relative step size, as in optax.lamb and optax.adafactor): its rate "
                  f"{row.rate:.3g} is the update-to-weight ratio, not a decay toward zero, and a "
                  "weight decay inside it cannot be read off."]  # fmt: skip
  role = _role(x)
  if role is not None and row.rate > 0:
    toward = ", toward its value at init" if row.kind == "anchored" else ""
    how = f" (rate {row.rate:.3g} per step{toward})"
    out.append(f"{at} " + _ROLE_WARNING[role].format(how=how))
  if row.rate < 0:
    out.append(f"{at}: the update *grows* the weight (rate {row.rate:.3g} per step): a decay "
               "added after the learning rate's sign flip (optax.add_decayed_weights after "
               "optax.sgd/adam) adds +wd*w instead of subtracting it.")  # fmt: skip
  if row.frozen:
    out.append(f"{at} is frozen (no update for a non-zero gradient) but decays: is the decay "
               "outside the optax.partition / optax.masked that freezes it?")  # fmt: skip
  if row.kind == "coupled":
    varies = (f"{row.spread:.3g}x" if row.spread > COUPLED_FACTOR else
              f"more than {FELL:g}x (it falls below what one scale resolves)")  # fmt: skip
    out.append(f"{at}: the decay is an L2 term inside an adaptive optimizer: its rate varies "
               f"{varies} across gradients of scale 1e-2 to 1e2 (large-gradient weights are "
               "regularized less); use decoupled decay for one rate.")  # fmt: skip
  out += _precision_warning(x.leaf, row)
  if total is not None and steps is not None:
    out += _timescale_warning(at, total, steps)
  return out


def _unseen_warning(x: _Leaf, row: AuditRow) -> str:
  """A ``none`` whose floor could hide a decay; in low precision, what such a decay would do."""
  dtype = _dtype(x.leaf)
  text = (f"{row.path!r}: no decay resolved, but in {dtype} a per-step rate below "
          f"{row.floor:.1g} cannot be told from none at these gradient scales (a larger "
          "`delta=` resolves smaller rates)")  # fmt: skip
  w = np.asarray(x.leaf.value, dtype).reshape(-1)
  if dtype != np.float64 and w.size and float(np.mean(lost_steps(w, row.floor))) > 0.99:
    text += (f"; a decay that small is rounded away entirely in {dtype} anyway (see "
             "diagnostics.decay_precision_report)")  # fmt: skip
  return text + "."


def _scale_warnings(x: _Leaf, row: AuditRow) -> list[str]:
  """Gradient scales at which the updates were inf/nan, or did not move at all."""
  dtype = _dtype(x.leaf)
  at = f"{row.path!r}"
  if row.kind == "non-finite":
    return [f"{at}: the updates are inf/nan at every gradient scale tried (1e-2, 1, 1e2) in "
            f"{dtype}: nothing can be measured, and a run with such updates diverges."]  # fmt: skip
  bad = [f"{s:g}" for s, r in zip(SCALES, x.scales, strict=True) if r.state == "non-finite"]
  still = [f"{s:g}" for s, r in zip(SCALES, x.scales, strict=True) if r.state == "still"]
  out = []
  if bad:
    out.append(f"{at}: in {dtype} the updates are inf/nan for gradients of scale "
               f"{', '.join(bad)} (its state overflows or underflows): the verdict is read at the "
               "other scales; keep float32 master weights and optimizer state, or scale the "
               "loss.")  # fmt: skip
  if still and len(still) < len(SCALES):
    out.append(f"{at}: the updates are all zero for gradients of scale {', '.join(still)} but "
               f"not for the others (an overflow to inf in {dtype}, or clipping?): the verdict "
               "is read at the other scales.")  # fmt: skip
  return out


def _steady_warning(x: _Leaf, row: AuditRow, lr: np.ndarray | None, steps: int) -> list[str]:
  """A decoupled rate still changing over the measured calls: a momentum (or an accumulation of
  few optimizer steps) has not reached its steady state, so the rate read is not it."""
  if row.kind != "decoupled" or row.relative:
    return []
  per = x.per_call if lr is None else x.per_call / lr
  seen = per[np.isfinite(per) & (per > 0)]
  if seen.size < 2:
    return []
  first, last = (float(np.mean(h)) for h in np.array_split(seen, 2))
  if abs(last / first - 1) <= STEADY:
    return []
  side = "below" if last > first else "above"
  per_lr = " per unit lr" if lr is not None else ""
  return [
    f"{row.path!r}: the rate is still changing over the measured calls ({first:.3g} -> "
    f"{last:.3g} per step{per_lr}): a momentum or an accumulation has not reached its steady "
    f"state in {steps} calls, so the rate {row.rate:.3g} is {side} it; pass a larger `steps=` "
    "(about 5/(1 - momentum) optimizer steps).",
  ]  # fmt: skip


def _timescale_warning(at: str, total: float, steps: int) -> list[str]:
  if total <= 0:
    return []
  tau = steps / total
  head = f"{at}: the decay removes Σr = {total:.3g} over the run's {steps} steps (timescale "
  if total < 0.1:
    return [f"{head}{tau:.3g} steps): the decay does little in this run."]
  if total > 10:
    return [f"{head}{tau:.3g} steps): the weights forget their initialization within the run."]
  return []


def _precision_warning(leaf: _tree.Leaf, row: AuditRow) -> list[str]:
  """The decay steps that the leaf's own dtype rounds away (as ``decay_precision_report``)."""
  w = np.asarray(leaf.value, _dtype(leaf))
  if row.relative or row.rate <= 0 or w.dtype == np.float64:
    return []
  lost = float(np.mean(lost_steps(w.reshape(-1), row.rate))) if w.size else 0.0
  if lost <= 0.01:
    return []
  return [f"{row.path!r}: in {w.dtype}, {100 * lost:.0f}% of the decay steps (rate {row.rate:.3g}) "
          "round to no change (see diagnostics.decay_precision_report): keep float32 master "
          "weights or decay less often at a larger rate."]  # fmt: skip


# --- the inputs ------------------------------------------------------------------------------


def _check_tx(tx: Any) -> None:
  if callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None)):
    return
  hint = " (call it: e.g. `optax.adamw(1e-3)`, not `optax.adamw`)" if callable(tx) else ""
  raise TypeError(
    "audit: `tx` must be an optax.GradientTransformation (with `init` and `update`), got "
    f"{_hparams.describe(tx)}{hint}."
  )


def _check_params(params: Any) -> tuple[Any, list[_tree.Leaf]]:
  """The params as the optimizer gets them, and their present leaves, all floating point."""
  if params is None:
    raise TypeError("audit: `params` is None: pass the parameters the optimizer updates.")
  tree, leaves = _tree.param_leaves(params)
  present = [leaf for leaf in leaves if not leaf.absent]
  if not present:
    raise ValueError(
      f"audit: `params` has no leaves (got {_hparams.describe(params)}): pass the parameters "
      "the optimizer updates."
    )
  for leaf in present:
    dtype = getattr(leaf.value, "dtype", None)
    if isinstance(leaf.value, float):  # a Python float leaf: JAX's weakly typed float32
      continue
    if isinstance(leaf.value, int):  # a Python int (or bool): a counter, not a weight
      dtype = np.dtype(type(leaf.value).__name__ if isinstance(leaf.value, bool) else "int64")
    elif isinstance(leaf.value, jax.ShapeDtypeStruct) or dtype is None:
      raise TypeError(
        f"audit: the leaf {leaf.path!r} of `params` is {_hparams.describe(leaf.value)}, not an "
        "array of values (an Equinox module: `eqx.filter(model, eqx.is_inexact_array)`)."
      )
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(
        f"audit: the leaf {leaf.path!r} of `params` has dtype {dtype}; the audit measures the "
        "decay of real floating-point weights: pass only those (and no step counters)."
      )
  # Every run gets arrays of one dtype each (a Python float or a weakly typed leaf would make
  # the perturbed runs a second signature, and a second compile).
  values = [x.value if x.absent else jnp.asarray(_host(x)) for x in leaves]
  tree = _tree.rebuild(tree, values)
  return tree, [x if x.absent else x._replace(value=v) for x, v in zip(leaves, values, strict=True)]


def _check_key(key: Any) -> Any:
  if key is None:
    return jax.random.key(0)
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    return jax.random.key(int(key))
  dtype = getattr(key, "dtype", None)
  if dtype is not None and (
    jnp.issubdtype(dtype, jax.dtypes.prng_key) or (dtype == jnp.uint32 and jnp.shape(key) == (2,))
  ):
    return key
  raise TypeError(
    f"audit: `key` must be a jax.random key or an int seed, got {_hparams.describe(key)}."
  )


# --- the measurement -------------------------------------------------------------------------


def _perturbation(w: np.ndarray, delta: float, *, every_other: bool) -> tuple[Any, np.ndarray]:
  """``w + Δ`` in ``w``'s dtype and ``1/Δ`` per coordinate (flat, 0 where Δ is 0).

  ``Δ = δ·sign(w)·max(|w|, rms(w))`` (``sign(0) = +1``, ``rms`` 1 on an all-zero leaf): the
  relative ``δ`` on the leaf's typical weights, and a step of that size on its small and zero
  ones (a multiplicative step would leave a zero-initialized bias where it is). Computed on the
  host in float64 (no compile per leaf shape); ``1/Δ`` is of what the dtype kept of ``Δ``.
  """
  x = w.astype(np.float64)
  rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
  step = delta * np.where(x < 0, -1.0, 1.0) * np.maximum(np.abs(x), rms if rms > 0 else 1.0)
  if every_other:
    step = np.where(np.arange(x.size).reshape(x.shape) % 2 == 1, step, 0.0)
  moved = (x + step).astype(w.dtype)
  actual = np.ravel(moved.astype(np.float64) - x)
  with np.errstate(divide="ignore"):
    return jnp.asarray(moved), np.where(actual != 0, 1 / actual, 0.0)


def _host(leaf: _tree.Leaf) -> np.ndarray:
  return np.asarray(leaf.value, _dtype(leaf))


def _perturbed(
  tree: Any, leaves: list[_tree.Leaf], delta: float, *, every_other: bool = False
) -> tuple[Any, list[np.ndarray]]:
  values, invs = [], []
  for leaf in leaves:
    if leaf.absent:
      values.append(leaf.value)
      continue
    moved, inv = _perturbation(_host(leaf), delta, every_other=every_other)
    values.append(moved)
    invs.append(inv[_probe.sample(inv.size)])
  return _tree.rebuild(tree, values), invs


def _zeros(tree: Any, leaves: list[_tree.Leaf]) -> Any:
  return _tree.rebuild(
    tree, [x.value if x.absent else jnp.asarray(np.zeros_like(_host(x))) for x in leaves]
  )


def audit(
  tx: optax.GradientTransformation,
  params: Any,
  *,
  steps: int = 128,
  delta: float = 0.25,
  training_steps: int | None = None,
  schedule: Any = None,
  key: Any = None,
) -> AuditReport:
  r"""Measures what ``tx`` does to each weight: decay or not, decoupled or L2, how strongly.

  ``tx`` is any ``optax.GradientTransformation``, treated as a black box. The same noise
  gradients go through ``tx.update`` ``steps`` times, with the params held fixed at :math:`w`
  and, in a second run with its own ``tx.init``, at :math:`w + \Delta`; per coordinate and call,

  .. math::

    r_{i,t} = -\frac{u_{i,t}(w + \Delta) - u_{i,t}(w)}{\Delta_i},
    \qquad \Delta_i = \delta\,\operatorname{sign}(w_i)\max\big(|w_i|, \operatorname{rms}(w)\big),

  is the fraction of the weight the update removes because of the weight's own value (a
  perturbation that also moves zero-initialized biases). Over the second half of the calls
  (momentum and second moments at their steady state: SGD-momentum :math:`\mu` with L2
  :math:`\lambda` gives :math:`\eta\lambda/(1-\mu)`) each coordinate's rate is averaged over
  the calls on which the decay acts; ``rate`` is the median over coordinates and ``fraction``
  the share of calls on which it acts (cautious decay, a decay every :math:`k`-th step). Calls
  on which the optimizer moves nothing (``optax.MultiSteps``' mini-steps) do not count: the
  rate is per optimizer step. A difference of the two updates within 8 units in the last place
  of the update's dtype is not resolved.

  The gradients are noise of scale 1e-2, 1 and 1e2 per coordinate: a rate that changes by more
  than 2x between the scales where it is resolved (or falls below what can be resolved at one
  of them) is ``'coupled'`` — an L2 term inside an adaptive optimizer — else ``'decoupled'``:
  a rate independent of the gradients' scale (L2 through plain SGD is one; through
  SGD-momentum it reads its steady-state rate :math:`\eta\lambda/(1-\mu)`, though that decay
  lags the weights through the momentum buffer). A decoupled rate still changing over the
  measured calls (a momentum of 0.99, or ``MultiSteps`` leaving few optimizer steps in the
  window) gets a warning to pass a larger ``steps``.
  No rate resolved at any scale is ``'none'`` (``floor`` says down to which rate). A decay
  toward the weights at ``init`` (``anchor='init'``, L2-Init) moves with the perturbed run's
  init; a third run that starts from the unperturbed run's state measures it: ``'anchored'``.
  Updates that are inf/nan at every scale are ``'non-finite'``; a scale where they overflow is
  left out, with a warning.

  A step that depends on the weights beyond a decay (``optax.lamb``'s trust ratio,
  ``optax.adafactor``'s relative step) reads as a rate too. A run with only every other weight
  perturbed tells them apart — a decay changes only those coordinates' updates, a step scaled
  by the leaf's norm changes them all — and on a one-coordinate leaf the sign of such a rate
  flips from call to call; those rows have ``relative=True`` and one warning.

  Warnings name biases (by :func:`~optaxdecay.bias_mask`'s rule), normalization parameters and
  embeddings (2-D lookup tables; by module class where the tree carries classes — Equinox, an
  ``nnx.Module`` — else by name) that decay; leaves the optimizer freezes but that still decay
  (a decay outside ``optax.partition``); an L2 term inside an adaptive optimizer; a decay the
  leaf's dtype rounds away; and, with ``training_steps=T``, a total decay
  :math:`\sum_t r_t` over the run below 0.1 (the decay does little) or above 10 (the weights
  forget their initialization). With a ``schedule`` that the rate follows, the sum follows the
  schedule over the whole run.

  With a learning-rate ``schedule`` (or a ``tx`` made by ``optax.inject_hyperparams`` with a
  ``learning_rate``, read from its state), ``lr_slope`` says whether the rate follows it: the
  slope of log rate against log learning rate over the measured calls, 1 for ``optax.adamw``
  (rate :math:`\eta_t\lambda`), 0 for a constant :func:`~optaxdecay.decoupled_weight_decay`.

  Args:
    tx: the optimizer.
    params: the parameters (any pytree of floating-point arrays; Linen boxes, NNX state and the
      ``nnx.Module`` itself, and filtered Equinox modules included).
    steps: calls of ``tx.update`` per run (at least 8); the second half is measured, so it must
      hold a few of the optimizer's real steps (``optax.MultiSteps(every_k_schedule=k)``: more
      than ``2k`` calls).
    delta: the size of the perturbation relative to the weights, in ``(0, 1]``.
    training_steps: the number of optimizer steps in the run, for the timescale warnings.
    schedule: the learning-rate schedule ``tx`` uses (``schedule(t)``: the learning rate of the
      ``t``-th optimizer step; under ``optax.MultiSteps``, of its inner optimizer's steps), to
      measure whether the decay follows it and to sum it over ``training_steps``; it must
      change by 1.5x or more over the optimizer steps of the second half of the calls.
    key: a ``jax.random`` key or an int seed for the noise (default: ``jax.random.key(0)``).

  Returns:
    An :class:`AuditReport`; ``print`` it for a table.

  Raises:
    TypeError: ``tx`` is not a gradient transformation, ``params`` is ``None`` or has a leaf
      that is neither an array nor a Python float, ``schedule`` is not callable, ``key`` is
      neither a key nor an int.
    ValueError: ``params`` has no leaves or a leaf that is not real floating point; ``steps``
      below 8 or ``training_steps`` not positive; ``delta`` not in ``(0, 1]``; a ``schedule``
      that does not change over the second half of the steps.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'dense': {'kernel': jnp.ones((4, 3)), 'bias': jnp.zeros(3)}}
    >>> report = od.diagnostics.audit(optax.adamw(1e-3, weight_decay=0.1), params)
    >>> [(r.path, r.kind, round(r.rate, 6)) for r in report.rows]
    [('dense/bias', 'decoupled', 0.0001), ('dense/kernel', 'decoupled', 0.0001)]
    >>> report.warnings[0]
    "'dense/bias' is a bias and decays (rate 0.0001 per step): exclude it with mask=od.bias_mask."
  """
  fn = "audit"
  _check_tx(tx)
  steps = _hparams.check_count(steps, fn=fn, arg="steps")
  if steps < MIN_STEPS:
    raise ValueError(
      f"audit: `steps` must be at least {MIN_STEPS} (the rate is read over the second half of "
      f"the calls), got {steps}."
    )
  _hparams.check_number(delta, fn=fn, arg="delta", low_inclusive=False, high=1.0,
                        high_inclusive=True)  # fmt: skip
  if training_steps is not None:
    training_steps = _hparams.check_count(training_steps, fn=fn, arg="training_steps")
  if schedule is not None and not callable(schedule):
    raise TypeError(f"{fn}: `schedule` must be a function step -> learning rate, got {schedule!r}.")
  key = _check_key(key)
  tree, leaves = _check_params(params)
  readings, injected_lr, moving = _measure(tx, tree, leaves, steps=steps, delta=delta, key=key)
  lr = _window_lr(injected_lr, schedule, np.arange(steps // 2, steps), moving)
  rows, warnings = [], []
  for x in readings:
    row = _row(x, _slope(x.per_call, lr))
    rows.append(row)
    total = _total(row, lr, schedule, training_steps)
    warnings += _warnings(x, row, total, training_steps)
    warnings += _steady_warning(x, row, lr, steps)
  warnings += _report_warnings(readings, rows, steps=steps, schedule=schedule,
                               training_steps=training_steps)  # fmt: skip
  return AuditReport(tuple(rows), tuple(warnings), steps)


def _measure(
  tx: optax.GradientTransformation,
  tree: Any,
  leaves: list[_tree.Leaf],
  *,
  steps: int,
  delta: float,
  key: Any,
) -> tuple[list[_Leaf], np.ndarray | None, np.ndarray]:
  """Nine runs of one compiled program: the pair ``(w, w + Δ)`` at each gradient scale; at unit
  scale also every other weight perturbed, the perturbed weights from the unperturbed ``init``
  (a decay toward the weights at init) and zero weights (frozen or not)."""
  present = [leaf for leaf in leaves if not leaf.absent]
  z, c = _probe.noise(tree, steps, key)
  moved, inv = _perturbed(tree, leaves, delta)
  every, inv_every = _perturbed(tree, leaves, delta, every_other=True)
  record = _probe.recorder(tx, z, c)
  picks = [_probe.sample(int(np.size(leaf.value))) for leaf in present]
  w = [
    np.ravel(np.asarray(leaf.value, np.float64))[p] for leaf, p in zip(present, picks, strict=True)
  ]
  pairs = []
  for scale in SCALES:
    base = record(scale, tree, tree)
    pairs.append(_probe.compare(base, record(scale, moved, moved), inv, w))
    if scale == 1:
      unit_base = base
      local = _probe.compare(base, record(scale, every, every), inv_every, w)
      anchored = _probe.compare(base, record(scale, moved, tree), inv, w)
      zeros = _zeros(tree, leaves)
      frozen = [not m for m in _probe.moved(record(scale, zeros, zeros))]
  decayed = [bool(x.value) for x in _tree.flatten_leaves(_masks.bias_mask(tree))[0] if not x.absent]
  out = []
  for i, (leaf, pick) in enumerate(zip(present, picks, strict=True)):
    scales = tuple(_read(p[i]) for p in pairs)
    rounding = _probe.K_ULP * float(jnp.finfo(_dtype(leaf)).eps) / delta
    unit = pairs[1][i]
    out.append(_Leaf(leaf, scales, _local(local[i], pick), _read(anchored[i]), frozen[i],
                     not decayed[i], unit.per_call, _scaling(unit), rounding))  # fmt: skip
  return out, unit_base.lr, _probe.moving(unit_base)


# --- the learning rate -----------------------------------------------------------------------


def _window_lr(
  injected: np.ndarray | None, schedule: Any, window: np.ndarray, moving: np.ndarray
) -> np.ndarray | None:
  """The learning rate of the measured calls (``nan`` on calls that move nothing): the
  ``schedule``'s at each call's optimizer step, or the injected one; ``None`` where there is
  none, or an injected one that does not change (nothing to follow).

  Under ``optax.MultiSteps`` one call in ``k`` is an optimizer step; ``k`` is read from the
  calls that moved the weights, and the call ``t`` is the optimizer step ``(t + 1) / k - 1``.
  """
  if schedule is not None:
    k = len(window) / max(int(moving.sum()), 1)
    step = np.maximum(np.floor((window + 1) / k) - 1, 0).astype(int)
    lr = np.asarray([float(schedule(int(t))) for t in step])
  elif injected is not None:
    lr = injected
  else:
    return None
  lr = np.where(moving, lr, np.nan)
  seen = lr[moving]
  if seen.size and np.all(seen > 0) and seen.max() >= 1.5 * seen.min():
    return lr
  if schedule is None:
    return None
  low, high = (seen.min(), seen.max()) if seen.size else (math.nan, math.nan)
  raise ValueError(
    f"audit: the learning rate of `schedule` changes by less than 1.5x over the measured "
    f"optimizer steps (from {low:.3g} to {high:.3g}, all > 0 needed), so whether the decay "
    "follows it cannot be measured: pass `steps=` so that the second half of the calls covers "
    "a part of the schedule that changes (e.g. its warmup), or drop `schedule=` for a constant "
    "learning rate."
  )


def _slope(per_call: np.ndarray, lr: np.ndarray | None) -> float:
  """d log rate / d log lr over the calls on which tracked coordinates decayed."""
  if lr is None:
    return math.nan
  ok = np.isfinite(per_call) & (per_call > 0) & np.isfinite(lr)
  if ok.sum() < 3 or lr[ok].max() < 1.5 * lr[ok].min():
    return math.nan
  return float(np.polyfit(np.log(lr[ok]), np.log(per_call[ok]), 1)[0])


def _follows(slope: float) -> bool:
  return abs(slope - 1) < 0.25


def _total(
  row: AuditRow, lr: np.ndarray | None, schedule: Any, training_steps: int | None
) -> float | None:
  """``Σ_t r_t`` over the run: constant, or following the ``schedule`` where the rate does."""
  if (
    training_steps is None
    or row.kind not in ("decoupled", "coupled", "anchored")
    or row.relative
    or row.rate <= 0
  ):
    return None
  per_step = row.rate * row.fraction
  if not _follows(row.lr_slope):
    return per_step * training_steps
  if schedule is None or lr is None:
    return None  # it follows an injected learning rate the audit cannot extrapolate
  return per_step / float(np.nanmean(lr)) * _schedule_sum(schedule, training_steps)


def _schedule_sum(schedule: Any, steps: int) -> float:
  """``Σ_{t<steps} schedule(t)``, from at most 4096 evenly spaced steps."""
  ts = np.unique(np.linspace(0, steps - 1, min(steps, 4096)).round().astype(np.int64))
  try:
    values = np.asarray(schedule(jnp.asarray(ts)), np.float64)
  except Exception:  # a schedule written for one scalar step
    values = np.asarray([float(schedule(int(t))) for t in ts[:: max(1, len(ts) // 256)]])
  if values.shape != ts.shape:
    values = np.asarray([float(schedule(int(t))) for t in ts[:: max(1, len(ts) // 256)]])
  return float(np.mean(values)) * steps


def _report_warnings(
  readings: list[_Leaf],
  rows: list[AuditRow],
  *,
  steps: int,
  schedule: Any,
  training_steps: int | None,
) -> list[str]:
  out = []
  if all(r.state == "still" for x in readings for r in x.scales):
    out.append(f"no update moved any weight in the measured calls {steps // 2}..{steps - 1}: "
               "an optax.MultiSteps that accumulates more calls than that? Pass a larger "
               "`steps=`.")  # fmt: skip
  follows = [r for r in rows if _follows(r.lr_slope) and r.kind != "none"]
  if training_steps is not None and schedule is None and follows:
    out.append("the decay follows the injected learning rate, whose values over the whole run "
               "the audit cannot see: pass `schedule=` for the timescale warnings.")  # fmt: skip
  return out
