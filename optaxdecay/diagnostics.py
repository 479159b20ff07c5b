"""Diagnostics that make the decay visible: what is decayed, how strongly, and whether at all.

* :func:`describe_mask` -- which parameters a mask decays, as a table.
* :func:`effective_l2_strength` -- how strongly an L2 penalty actually acts on
  each weight once Adam's preconditioner has divided it by
  :math:`\\sqrt{\\hat v}+\\epsilon`: weights with a large gradient history are
  regularized less.
* :func:`decay_precision_report` -- which decay steps are lost to rounding in
  the params' dtype (a typical AdamW step is a no-op on ``bfloat16`` weights).
* :func:`audit` -- any optimizer as a black box: per leaf, whether its update
  decays the weights, at what per-step rate, and whether that rate is coupled to
  the gradients' history (L2 inside an adaptive optimizer) or decoupled.

Every report is a small frozen dataclass with ``rows`` (one ``NamedTuple`` per
leaf, for a DataFrame or a plot) and a ``__str__`` that prints a table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _hparams, _selection, _tree
from optaxdecay._audit import AuditReport, AuditRow, audit

__all__ = [
  "AuditReport",
  "AuditRow",
  "L2StrengthReport",
  "L2StrengthRow",
  "MaskDescription",
  "MaskRow",
  "PrecisionReport",
  "PrecisionRow",
  "audit",
  "decay_precision_report",
  "describe_mask",
  "effective_l2_strength",
]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
  widths = [
    max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
  ]

  def line(cells: Sequence[str]) -> str:
    out = [
      c.rjust(w) if i in right else c.ljust(w)
      for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(out).rstrip()

  return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _shape_dtype(leaf: Any) -> tuple[tuple[int, ...], Any]:
  shape = tuple(int(d) for d in getattr(leaf, "shape", np.shape(leaf)))
  dtype = getattr(leaf, "dtype", None)
  if dtype is None:
    dtype = np.asarray(leaf).dtype
  return shape, jnp.dtype(dtype)


# ----------------------------------------------------------------------------------------------
# describe_mask


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
  """

  rows: tuple[MaskRow, ...]

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
    table = _table(["path", "shape", "dtype", "count", "decayed"], body, right={3})
    pct = 100.0 * self.decayed / self.total if self.total else 0.0
    return (
      f"{table}\n"
      f"decayed: {self.decayed:,} of {self.total:,} parameters ({pct:.1f}%), "
      f"{self.decayed_leaves} of {len(self.rows)} leaves; "
      f"not decayed: {self.total - self.decayed:,}"
    )


def _decay_cell(multiplier: float) -> str:
  if multiplier in (0.0, 1.0):
    return "yes" if multiplier else "no"
  return f"x{multiplier:g}"


def describe_mask(params: Any, mask: _selection.MaskArg = None) -> MaskDescription:
  """Lists every parameter leaf and whether ``mask`` decays it.

  The mask is resolved exactly as the transforms resolve it (matched by key
  path, prefixes allowed, callables called with ``params``), so the table shows
  what :func:`decoupled_weight_decay` or :func:`add_l2_to_grad` with the same
  ``mask=`` will do, and the same mistakes raise the same errors.

  Works on nested dicts, Flax Linen params (``dict`` or ``FrozenDict``, boxed
  by ``nn.with_partitioning`` or not), Flax NNX state (``nnx.state(model,
  nnx.Param)``, ``Param``-wrapped or plain) and the ``nnx.Module`` itself (its
  ``nnx.Param`` state is described; a mask function is called on the module),
  Equinox modules and lists/tuples; leaves may be arrays or
  ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` output, to inspect a model
  without allocating it).

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
    TypeError: ``mask`` has a non-bool leaf or selects a non-float leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> params = {'Dense_0': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)}}
    >>> print(od.diagnostics.describe_mask(params, od.bias_mask))
    path            shape   dtype    count  decayed
    --------------  ------  -------  -----  -------
    Dense_0/bias    (4,)    float32      4  no
    Dense_0/kernel  (3, 4)  float32     12  yes
    decayed: 12 of 16 parameters (75.0%), 1 of 2 leaves; not decayed: 4
  """
  if _tree.is_nnx_module(params):  # what bias_mask and the transforms see: its nnx.Param state
    if _selection.is_mask_fn(mask):
      mask = mask(params)
    params, _ = _tree.nnx_param_state(params)
  rows = []
  for leaf, m in _selection.selected_leaves(mask, params, fn="describe_mask"):
    shape, dtype = _shape_dtype(leaf.value)
    rows.append(MaskRow(leaf.path, shape, str(dtype), math.prod(shape), m > 0, m))
  return MaskDescription(tuple(rows))


# ----------------------------------------------------------------------------------------------
# effective_l2_strength


class L2StrengthRow(NamedTuple):
  """How strongly an L2 term acts on one leaf through Adam (see :func:`effective_l2_strength`).

  Attributes:
    path: the leaf's path.
    count: number of elements.
    grad_rms: :math:`\\sqrt{\\operatorname{mean}\\hat v}`, the leaf's RMS gradient.
    mean: mean over the leaf's elements of :math:`\\kappa = l_2/(\\sqrt{\\hat v}+\\epsilon)`.
    median: median of :math:`\\kappa` (robust to the huge values of weights whose
      gradient is always 0).
    min: smallest :math:`\\kappa` in the leaf (its largest-gradient element).
    max: largest :math:`\\kappa` in the leaf (its smallest-gradient element).
    relative: ``median / weight_decay``: 1 means the L2 term shrinks this leaf's
      typical element as much as decoupled decay with coefficient
      ``weight_decay`` would.
  """

  path: str
  count: int  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  grad_rms: float
  mean: float
  median: float
  min: float
  max: float
  relative: float


@dataclasses.dataclass(frozen=True)
class L2StrengthReport:
  """Result of :func:`effective_l2_strength`; ``str()`` prints a table.

  Attributes:
    rows: one :class:`L2StrengthRow` per selected leaf.
    strength: ``{path: kappa}``, the per-element :math:`\\kappa` arrays (float64),
      for histograms or scatter plots against the gradient scale.
    l2: the L2 coefficient used.
    weight_decay: the decoupled coefficient ``relative`` is measured against.
    count: the Adam step count the bias correction used.
  """

  rows: tuple[L2StrengthRow, ...]
  strength: dict[str, np.ndarray]
  l2: float
  weight_decay: float
  count: int

  def __str__(self) -> str:
    body = [
      [
        r.path,
        f"{r.count:,}",
        f"{r.grad_rms:.3g}",
        f"{r.median:.3g}",
        f"{r.mean:.3g}",
        f"{r.min:.3g}",
        f"{r.max:.3g}",
        f"{r.relative:.3g}",
      ]
      for r in self.rows
    ]
    table = _table(
      [
        "path",
        "count",
        "grad rms",
        "kappa median",
        "kappa mean",
        "kappa min",
        "kappa max",
        "median / wd",
      ],
      body,
      right={1, 2, 3, 4, 5, 6, 7},
    )
    values = [v for v in self.strength.values() if v.size]
    lo = min(float(v.min()) for v in values) if values else float("nan")
    hi = max(float(v.max()) for v in values) if values else float("nan")
    return (
      f"{table}\n"
      f"L2 coefficient {self.l2:g} through Adam (step {self.count}) acts like a per-element "
      f"decoupled decay kappa in [{lo:.3g}, {hi:.3g}] (x{hi / lo if lo > 0 else float('inf'):.3g} "
      f"spread); decoupled decay applies {self.weight_decay:g} to every element."
    )


def _find_adam_state(opt_state: Any) -> optax.ScaleByAdamState:
  if isinstance(opt_state, optax.ScaleByAdamState):
    return opt_state
  found: list[optax.ScaleByAdamState] = []

  def visit(node: Any) -> None:
    if isinstance(node, optax.ScaleByAdamState):
      found.append(node)
    elif isinstance(node, (tuple, list)):
      for child in node:
        visit(child)
    elif isinstance(node, dict):
      for child in node.values():
        visit(child)
    elif hasattr(node, "items") and callable(node.items):  # FrozenDict, nnx.State
      for _, child in node.items():
        visit(child)

  visit(opt_state)
  if not found:
    raise ValueError(
      "effective_l2_strength: no `optax.ScaleByAdamState` found in `opt_state` (expected the "
      "state of optax.adam/adamw/nadam/radam or scale_by_adam, possibly inside chain, masked, "
      f"inject_hyperparams or MultiSteps states); got a {type(opt_state).__name__}."
    )
  if len(found) > 1:
    raise ValueError(
      f"effective_l2_strength: `opt_state` holds {len(found)} `optax.ScaleByAdamState`s "
      "(e.g. an optax.multi_transform); pass the one you mean."
    )
  return found[0]


#: Optimizers whose state is a ``ScaleByAdamState`` that :func:`effective_l2_strength` cannot read.
_UNREADABLE = ("adamax", "adamaxw", "yogi", "lamb")


def _preconditioner_factor(optimizer: str, threshold: float, b2: float) -> Any:
  """``count -> factor`` on Adam's preconditioned step (``None``: not preconditioned)."""
  fn = "effective_l2_strength"
  if optimizer == "adam":
    return lambda count: 1.0
  if optimizer == "radam":
    threshold = _hparams.check_concrete(threshold, fn=fn, arg="threshold")
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def rectification(count: int) -> float | None:
      b2t = b2**count
      rho = rho_inf - 2 * count * b2t / (1 - b2t)
      if rho < threshold:
        return None
      return math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))

    return rectification
  why = (
    "its step is not Adam's m/(sqrt(v)+eps) (adamax: a max of |g|; yogi: an additive second "
    "moment; lamb: a trust ratio), yet it stores an optax.ScaleByAdamState, so the state "
    "cannot tell"
    if optimizer in _UNREADABLE
    else "it is not one this function knows"
  )
  raise ValueError(
    f"{fn}: `optimizer`={optimizer!r} cannot be interpreted: {why}. Pass 'adam' (optax.adam, "
    "adamw, nadam) or 'radam', or measure any optimizer with od.diagnostics.audit(tx, params)."
  )


def _concrete_int(x: Any) -> int:
  return int(np.asarray(_tree.unwrap(x)))


def effective_l2_strength(
  opt_state: Any,
  l2: float,
  *,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  weight_decay: float | None = None,
  mask: _selection.MaskArg = None,
  optimizer: str = "adam",
  threshold: float = 5.0,
) -> L2StrengthReport:
  """How strongly an L2 penalty acts on each weight once Adam has preconditioned it.

  With :func:`add_l2_to_grad` before Adam, the penalty's gradient
  :math:`l_2 w` is divided by :math:`\\sqrt{\\hat v}+\\epsilon` like any other
  gradient. While :math:`l_2 w` is small next to the gradient noise (so
  :math:`\\hat v` is the data's), it moves each element by
  :math:`-\\eta\\,\\kappa\\,w` per step, i.e. it acts like a decoupled decay with a
  per-element coefficient

  .. math::

    \\kappa = \\frac{l_2}{\\sqrt{\\hat v + \\epsilon_{root}} + \\epsilon},
    \\qquad \\hat v = \\frac{\\nu}{1 - \\beta_2^{\\,t}},

  where AdamW applies one coefficient :math:`\\lambda` (``weight_decay``) to
  every element. Elements with a large gradient history (large :math:`\\hat v`)
  get a small :math:`\\kappa`: **they are regularized less** -- the reason
  Loshchilov & Hutter give for AdamW. ``relative = median(kappa) / weight_decay``
  compares a leaf with AdamW at coefficient ``weight_decay`` (default: ``l2``,
  the same number passed as ``weight_decay`` instead of as an L2 coefficient).

  Read from the L2 run's own state, :math:`\\hat v` includes the penalty's
  gradient; where the data gradient vanishes (an input pixel that is always 0)
  :math:`\\sqrt{\\hat v} \\approx l_2|w|` and :math:`\\kappa \\approx 1/|w|`: Adam has
  turned the penalty into a sign step of size :math:`\\eta`, the largest
  :math:`\\kappa` values in a report. Read from an AdamW run's state it answers
  "what would L2 with this coefficient have done instead".

  Args:
    opt_state: the optimizer state: an ``optax.ScaleByAdamState`` or any state
      that contains exactly one (the state of ``optax.adam``/``adamw``/
      ``nadam``/``radam``/``scale_by_adam``, also inside ``chain``, ``masked``,
      ``inject_hyperparams``, ``MultiSteps`` or a Flax ``nnx.Optimizer``'s
      ``opt_state``). Its ``nu`` must be the EMA of squared gradients (so not
      ``adamax``, whose ``nu`` is a max of absolute values), and it must have
      taken at least one step.
    l2: the L2 coefficient (a float; for a schedule, its value at the step
      being inspected).
    b2: the optimizer's :math:`\\beta_2`, for the bias correction (the state
      does not store it). Default: ``optax.adam``'s 0.999.
    eps: the optimizer's :math:`\\epsilon` (outside the root). Default 1e-8.
    eps_root: the optimizer's :math:`\\epsilon_{root}` (inside). Default 0.
    weight_decay: the decoupled coefficient to compare with (> 0); default
      ``l2``.
    mask: which leaves to report (as in the transforms; resolved on ``nu``,
      which has the params' structure). Default: all.
    optimizer: which optimizer made the state: the state alone does not say, since
      ``optax.adam``, ``adamw``, ``nadam``, ``radam``, ``adamax``, ``yogi`` and ``lamb`` all
      store an ``optax.ScaleByAdamState``. ``'adam'`` (also for ``adamw`` and ``nadam``, whose
      preconditioner is the same), or ``'radam'``: RAdam multiplies the preconditioned step by
      its rectification :math:`r_t` once :math:`\\rho_t \\ge` ``threshold`` and does not
      precondition before (then :math:`\\kappa = l_2`). Any other optimizer
      (``adamax``, ``yogi``, ``lamb``, ...) is refused: use
      :func:`~optaxdecay.diagnostics.audit`, which measures any optimizer.
    threshold: RAdam's ``threshold`` (default ``optax.radam``'s 5.0); only for ``'radam'``.

  Returns:
    An :class:`L2StrengthReport` (``rows``, per-element ``strength`` arrays,
    and a table via ``print``).

  Raises:
    ValueError: no (or more than one) ``ScaleByAdamState`` in ``opt_state``;
      it has not taken a step; a coefficient is out of range; an ``optimizer`` other than
      ``'adam'`` or ``'radam'``.
    TypeError: a coefficient is not a float.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'big_grad': jnp.ones(2), 'small_grad': jnp.ones(2)}
    >>> tx = optax.chain(od.add_l2_to_grad(1e-4), optax.adam(1e-3))
    >>> state = tx.init(params)
    >>> grads = {'big_grad': jnp.full(2, 1.0), 'small_grad': jnp.full(2, 0.01)}
    >>> _, state = tx.update(grads, state, params)
    >>> report = od.diagnostics.effective_l2_strength(state, l2=1e-4)
    >>> [round(r.relative, 1) for r in report.rows]
    [1.0, 99.0]

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (Section 2).
  """
  fn = "effective_l2_strength"
  l2 = _hparams.check_concrete(l2, fn=fn, arg="l2")
  b2 = _hparams.check_concrete(b2, fn=fn, arg="b2", high=1.0)
  eps = _hparams.check_concrete(eps, fn=fn, arg="eps")
  eps_root = _hparams.check_concrete(eps_root, fn=fn, arg="eps_root")
  if weight_decay is None:
    if l2 == 0:
      raise ValueError(f"{fn}: `l2` is 0, so pass a positive `weight_decay` to compare with.")
    weight_decay = l2
  else:
    weight_decay = _hparams.check_concrete(
      weight_decay, fn=fn, arg="weight_decay", low_inclusive=False
    )
  factor = _preconditioner_factor(optimizer, threshold, b2)
  adam = _find_adam_state(opt_state)
  count = _concrete_int(adam.count)
  if count < 1:
    raise ValueError(
      f"{fn}: the Adam state has count {count}: it has not taken a step yet, so it holds no "
      "gradient statistics. Inspect it after at least one update."
    )
  correction = 1.0 - b2**count
  if correction <= 0:
    raise ValueError(f"{fn}: `b2`={b2} gives no bias correction at count {count}.")
  rectification = factor(count)
  rows = []
  strength = {}
  for leaf, m in _selection.selected_leaves(mask, adam.nu, fn=fn):
    if not m:
      continue
    path = leaf.path
    v_hat = np.asarray(leaf.value, dtype=np.float64) / correction
    if rectification is None:  # RAdam before rectification: the step is not preconditioned
      kappa = np.full(v_hat.shape, m * l2)
    else:
      kappa = m * l2 * rectification / (np.sqrt(v_hat + eps_root) + eps)
    strength[path] = kappa
    n = int(kappa.size)
    rows.append(
      L2StrengthRow(
        path=path,
        count=n,
        grad_rms=float(np.sqrt(v_hat.mean())) if n else float("nan"),
        mean=float(kappa.mean()) if n else float("nan"),
        median=float(np.median(kappa)) if n else float("nan"),
        min=float(kappa.min()) if n else float("nan"),
        max=float(kappa.max()) if n else float("nan"),
        relative=float(np.median(kappa)) / weight_decay if n else float("nan"),
      )
    )
  return L2StrengthReport(tuple(rows), strength, l2, float(weight_decay), count)


# ----------------------------------------------------------------------------------------------
# decay_precision_report


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
    table = _table(["path", "dtype", "count", "lost", "lost %"], body, right={2, 3, 4})
    return (
      f"{table}\n"
      f"rate {self.rate:g}: {self.lost:,} of {self.count:,} decay steps "
      f"({100 * self.fraction:.1f}%) round to no change"
    )


def _lost(w: np.ndarray, rate: float) -> np.ndarray:
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
  rows = []
  for leaf, m in _selection.selected_leaves(mask, params, fn=fn):
    if not m:
      continue
    w = np.asarray(leaf.value)
    lost = int(_lost(w, rate * m).sum())
    rows.append(
      PrecisionRow(leaf.path, str(w.dtype), int(w.size), lost, lost / w.size if w.size else 0.0)
    )
  return PrecisionReport(tuple(rows), rate)
