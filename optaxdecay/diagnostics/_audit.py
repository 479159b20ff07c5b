"""``diagnostics.audit``: what any optimizer really does to each weight, measured as a black box.

The method (``docs/diagnostics.md``, "Audit any optimizer"): the same gradient sequence runs
through ``tx.update`` twice, with the params held fixed at ``w`` and at ``(1 + δ)·w``. Whatever
in the update is proportional to the weights differs between the two runs, nothing else does,
so ``rate = −(u((1+δ)w) − u(w)) / (δ·w)`` per coordinate, read at the last of ``steps`` calls
(momentum has reached its steady state by then). Repeating with gradients of a small and a large
scale tells a decoupled decay (the rate does not change) from an L2 term inside an adaptive
optimizer (it changes by orders of magnitude: weights with a large gradient history are
regularized less).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _hparams, _masks, _tree
from optaxdecay.diagnostics._precision import lost_steps
from optaxdecay.diagnostics._table import render_table

#: Gradient scales (per coordinate) of the three measurements: small, unit, large.
SCALES = (1e-2, 1.0, 1e2)
#: A rate that changes by more than this factor between the small and large scale is coupled.
COUPLED_FACTOR = 2.0


class AuditRow(NamedTuple):
  """What the optimizer does to one parameter leaf (see :func:`audit`).

  Attributes:
    path: the leaf's ``'a/b'`` path, as :func:`~optaxdecay.diagnostics.describe_mask` prints it.
    kind: ``'none'`` (no part of the update is proportional to the weights), ``'decoupled'``
      (it is, at a rate that does not depend on the gradients' scale) or ``'coupled'`` (it
      depends on it: L2 inside an adaptive optimizer).
    rate: the median over coordinates of the effective per-step rate, at unit gradient scale.
    low: its 10th percentile over coordinates.
    high: its 90th percentile.
    ratio: the rate at gradient scale 1e-2 over the rate at 1e2 (1 for decoupled decay, up to
      1e4 for L2 inside Adam); ``nan`` where there is no rate.
    spread: the largest over the smallest of the rates at the three gradient scales (1 for
      decoupled decay); ``nan`` where there is no rate.
    frozen: the optimizer leaves the leaf unchanged for a non-zero gradient.
    relative: the update of each coordinate depends on the *other* weights of the leaf (a trust
      ratio or a relative step size: ``optax.lamb``, ``optax.adafactor``): ``rate`` is then the
      update-to-weight ratio, not a decay toward zero.
    lr_slope: with a learning-rate schedule (``schedule=``, or ``tx`` made by
      ``optax.inject_hyperparams``), the slope of log rate against log learning rate over the
      second half of the steps: 1 when the decay follows the schedule (``optax.adamw``: rate
      ``η_t·λ``), 0 when it does not (a constant decoupled decay); ``nan`` when not measured.
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


@dataclasses.dataclass(frozen=True)
class AuditReport:
  """The result of :func:`audit`: one :class:`AuditRow` per leaf, and the warnings."""

  rows: tuple[AuditRow, ...]
  warnings: tuple[str, ...]
  steps: int

  def __str__(self) -> str:
    slopes = any(not math.isnan(r.lr_slope) for r in self.rows)
    body = []
    for r in self.rows:
      cells = [
        r.path,
        r.kind + (" (relative)" if r.relative else ""),
        f"{r.rate:.3g}",
        f"[{r.low:.3g}, {r.high:.3g}]",
        "-" if math.isnan(r.ratio) else f"{r.ratio:.3g}",
        "yes" if r.frozen else "no",
      ]
      if slopes:
        slope = 0.0 if abs(r.lr_slope) < 0.005 else r.lr_slope  # no "-0.00"
        cells.append("-" if math.isnan(r.lr_slope) else f"{slope:.2f}")
      body.append(cells)
    headers = ["path", "kind", "rate/step", "10-90 %", "small/large grad", "frozen"]
    if slopes:
      headers.append("follows lr")
    text = render_table(headers, body, right={2, 4, 6})
    notes = "\n".join(f"warning: {w}" for w in self.warnings)
    return text + (f"\n{notes}" if notes else "")


def _noise(params: Any, steps: int, key: Any) -> tuple[Any, Any]:
  """The audit's gradients: ``g_t = scale * c_t * z``.

  One standard normal draw ``z`` per coordinate (made once) times a standard normal scalar
  ``c_t`` per step, so drawing the noise costs one pass over the params, not one per step.
  """
  k_z, k_c = jax.random.split(key)
  leaves, treedef = jax.tree.flatten(params)
  ks = jax.random.split(k_z, max(len(leaves), 1))
  z = jax.tree.unflatten(
    treedef,
    [
      jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
      for k, x in zip(ks, leaves, strict=False)
    ],
  )
  return z, jax.random.normal(k_c, (steps,))


def _grad(z: Any, scale: Any, c_t: Any) -> Any:
  return jax.tree.map(lambda x: (scale * c_t * x).astype(x.dtype), z)


def _measure(tx: optax.GradientTransformation, z: Any, c: Any) -> Any:
  """``run(scale, params) -> last update``: one jitted scan over ``len(c)`` calls."""

  @jax.jit
  def run(scale: Any, p: Any) -> Any:
    def body(carry: Any, c_t: Any) -> tuple[Any, None]:
      state, _ = carry
      u, state = tx.update(_grad(z, scale, c_t), state, p)
      return (state, u), None  # only the last update is kept: memory of one update

    state = tx.init(p)
    first, _ = tx.update(jax.tree.map(jnp.zeros_like, z), state, p)  # the updates' structure
    (_, last), _ = jax.lax.scan(body, (state, jax.tree.map(jnp.zeros_like, first)), c)
    return last

  return run


#: Coordinates per leaf whose rate is recorded at every step for the schedule check.
TRACKED = 64


def _trajectory(
  tx: optax.GradientTransformation, params: Any, scaled: Any, z: Any, c: Any, delta: float
) -> tuple[list[Any], Any]:
  """Per step, the rate of (up to) ``TRACKED`` coordinates of each leaf, and the injected lr.

  Both param trees run in one scan, so the rate is read at every step at the memory of a few
  coordinates per leaf. The learning rate is ``hyperparams['learning_rate']`` of an
  ``optax.inject_hyperparams`` state, the value used by that step (``None`` for other states).
  """
  w_leaves = jax.tree.leaves(params)
  picks = [np.flatnonzero(np.ravel(np.asarray(w)) != 0)[:TRACKED] for w in w_leaves]

  def lr_of(state: Any) -> Any:
    if _injected(state):
      lr = state.hyperparams.get("learning_rate")
      if lr is not None:
        return jnp.asarray(lr, jnp.float32)
    return None

  @jax.jit
  def run() -> tuple[list[Any], Any]:
    def body(carry: Any, c_t: Any) -> tuple[Any, Any]:
      s0, s1 = carry
      g = _grad(z, 1.0, c_t)
      u0, s0 = tx.update(g, s0, params)
      u1, s1 = tx.update(g, s1, scaled)
      rates = [
        -(jnp.ravel(b)[i] - jnp.ravel(a)[i]).astype(jnp.float32)
        / (delta * jnp.ravel(w)[i]).astype(jnp.float32)
        for a, b, w, i in zip(
          jax.tree.leaves(u0), jax.tree.leaves(u1), w_leaves, picks, strict=True
        )
      ]
      return (s0, s1), (rates, lr_of(s0))

    _, out = jax.lax.scan(body, (tx.init(params), tx.init(scaled)), c)
    return out

  return run()


def _injected(state: Any) -> bool:
  """An ``optax.inject_hyperparams`` state (stateless or stateful schedules)."""
  hyperparams = getattr(state, "hyperparams", None)
  return isinstance(state, tuple) and isinstance(hyperparams, dict)


def _leaf_values(tree: Any) -> list[Any]:
  leaves, _ = _tree.flatten_leaves(tree)
  return [None if leaf.absent else np.asarray(leaf.value, np.float64) for leaf in leaves]


def audit(
  tx: optax.GradientTransformation,
  params: Any,
  *,
  steps: int = 120,
  delta: float = 0.25,
  training_steps: int | None = None,
  schedule: Any = None,
  key: Any = None,
) -> AuditReport:
  r"""Measures what ``tx`` does to each weight: decay or not, decoupled or L2, how strongly.

  ``tx`` is any ``optax.GradientTransformation``, treated as a black box (its state is never
  read). For each leaf the **effective per-step rate** is the fraction of the weight the update
  removes per step because of the weight's own value,

  .. math::

    r_i = -\frac{u_i\big((1+\delta)\,w\big) - u_i(w)}{\delta\,w_i},

  with :math:`u(w)` the update after ``steps`` calls on the same noise gradients, the params
  held at :math:`w` (so momentum and second moments reach their steady state: SGD-momentum
  :math:`\mu` with L2 :math:`\lambda` gives :math:`\eta\lambda/(1-\mu)`, not
  :math:`\eta\lambda`). The median over coordinates is ``rate``. Measured with noise of scale
  1e-2, 1 and 1e2 per coordinate: a rate that changes by more than 2x between any two of them is
  ``'coupled'`` (an L2 term inside an adaptive optimizer), else ``'decoupled'``; no rate above
  1e-12 is ``'none'``. ``steps`` (120) is a multiple of every ``optax.MultiSteps`` period up
  to 6, 8, 10 and 12, so the last call is a real step.

  Warnings name biases, norm scales/offsets and embeddings that decay, leaves the optimizer
  freezes (no update for a non-zero gradient) that still decay (a decay placed outside
  ``optax.partition``), an L2 term inside an adaptive optimizer, and, with
  ``training_steps=T``, a decay timescale :math:`\tau = 1/r` far longer than the run (the decay
  does nothing) or far shorter (the weights forget their initialization).

  Weight-dependent steps beyond a decay (``optax.lamb``'s trust ratio, ``optax.adafactor``'s
  relative step) show as a rate too: the update changes with the weights' scale. A third
  measurement tells them apart: with every other weight of a leaf perturbed, a decay (coupled
  or not) changes only those coordinates' updates, a step scaled by the leaf's norm changes
  them all. Such rows have ``relative=True`` and a warning; their ``kind`` then says how that
  rate depends on the gradients, not that it is a weight decay.

  With a learning-rate ``schedule`` (or a ``tx`` made by ``optax.inject_hyperparams`` with a
  ``learning_rate``, read from its state), ``lr_slope`` says whether the rate follows it: the
  slope of log rate against log learning rate over the second half of the steps, 1 for
  ``optax.adamw`` (rate :math:`\eta_t\lambda`), 0 for a constant
  :func:`~optaxdecay.decoupled_weight_decay`.

  Args:
    tx: the optimizer.
    params: the parameters (any pytree; Linen boxes and NNX ``Variable`` wrappers included).
    steps: calls of ``tx.update`` per measurement.
    delta: the relative perturbation of the weights (large enough that the difference of the
      two updates stands out of float32 rounding of an update driven by gradients of 1e2; a
      decay linear in the weights is measured exactly whatever its size).
    training_steps: the length of the run, for the timescale warnings.
    schedule: the learning-rate schedule ``tx`` uses (step -> float), to measure whether the
      decay follows it; it must change by 1.5x or more over the second half of the ``steps``.
    key: a ``jax.random`` key for the noise (default: ``jax.random.key(0)``).

  Returns:
    An :class:`AuditReport`; ``print`` it for a table.

  Raises:
    ValueError: ``steps`` or ``training_steps`` not positive, ``delta`` not in ``(0, 1)``,
      a ``schedule`` that does not change over the second half of the steps.
    TypeError: a ``schedule`` that is not callable.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'dense': {'kernel': jnp.ones((4, 3)), 'bias': jnp.ones(3)}}
    >>> report = od.diagnostics.audit(optax.adamw(1e-3, weight_decay=0.1), params)
    >>> [(r.path, r.kind, round(r.rate, 6)) for r in report.rows]
    [('dense/bias', 'decoupled', 0.0001), ('dense/kernel', 'decoupled', 0.0001)]
    >>> report.warnings[0]
    "'dense/bias' is a bias and decays (rate 0.0001 per step): exclude it with mask=od.bias_mask."
  """
  fn = "audit"
  steps = _hparams.check_count(steps, fn=fn, arg="steps")
  _hparams.check_number(delta, fn=fn, arg="delta", low_inclusive=False, high=1.0)
  if training_steps is not None:
    training_steps = _hparams.check_count(training_steps, fn=fn, arg="training_steps")
  if schedule is not None and not callable(schedule):
    raise TypeError(f"{fn}: `schedule` must be a function step -> learning rate, got {schedule!r}.")
  key = jax.random.key(0) if key is None else key
  leaves, _ = _tree.flatten_leaves(params)
  present = [leaf for leaf in leaves if not leaf.absent]

  def perturbed(factor: Any) -> Any:
    return _tree.rebuild(
      params, [leaf.value if leaf.absent else factor(leaf.value) * leaf.value for leaf in leaves]
    )

  scaled = perturbed(lambda w: 1 + delta)
  every_other = perturbed(lambda w: 1 + delta * _alternate(w))
  zeros = perturbed(lambda w: 0)
  z, c = _noise(params, steps, key)
  run = _measure(tx, z, c)
  rates = [_rates(run(scale, params), run(scale, scaled), present, delta) for scale in SCALES]
  base = _present_values(run(1.0, params))
  partial = _present_values(run(1.0, every_other))
  at_zero = _present_values(run(1.0, zeros))
  slopes = _lr_slopes(tx, params, scaled, z, c, delta, schedule, len(present))
  rows, warnings = [], []
  for i, leaf in enumerate(present):
    local = _locality(base[i], partial[i], np.shape(leaf.value))
    row = _row(leaf, [r[i] for r in rates], at_zero[i], local, slopes[i])
    rows.append(row)
    warnings += _warnings(leaf, row, training_steps)
  return AuditReport(tuple(rows), tuple(warnings), steps)


def _present_values(tree: Any) -> list[Any]:
  return [v for v in _leaf_values(tree) if v is not None]


def _rates(base: Any, moved: Any, present: list[_tree.Leaf], delta: float) -> list[Any]:
  with np.errstate(divide="ignore", invalid="ignore"):  # zero weights: no rate (dropped)
    return [
      -(m - b) / (delta * np.asarray(leaf.value, np.float64))
      for leaf, b, m in zip(present, _present_values(base), _present_values(moved), strict=True)
    ]


def _alternate(w: Any) -> Any:
  """1 on every other coordinate (in row-major order), 0 on the rest."""
  return (jnp.arange(jnp.size(w)) % 2).reshape(jnp.shape(w)).astype(jnp.result_type(w))


def _locality(base: Any, partial: Any, shape: tuple[int, ...]) -> bool:
  """Whether perturbing every other weight leaves the other coordinates' updates unchanged.

  A decay, coupled or not, acts coordinate by coordinate (Adam's preconditioner too); a trust
  ratio or a relative step size rescales the whole leaf's update with the leaf's norm.
  """
  on = np.asarray(_alternate(np.zeros(shape)), bool)
  if on.all() or not on.any():
    return True
  diff = np.abs(partial - base)
  return bool(np.max(diff[~on], initial=0.0) <= 1e-3 * max(np.max(diff[on]), 1e-30))


def _lr_slopes(
  tx: optax.GradientTransformation,
  params: Any,
  scaled: Any,
  z: Any,
  c: Any,
  delta: float,
  schedule: Any,
  n: int,
) -> list[float]:
  """Per leaf, d log|rate| / d log lr over the second half of the steps (``nan``: not measured)."""
  injected = _injected(tx.init(params))
  if schedule is None and not injected:
    return [math.nan] * n
  per_step, lr = _trajectory(tx, params, scaled, z, c, delta)
  assert len(per_step) == n, (len(per_step), n)
  steps = len(c)
  window = np.arange(steps // 2, steps)
  if schedule is not None:
    lr = np.asarray([float(schedule(int(t))) for t in window])
  elif lr is None:
    return [math.nan] * n
  else:
    lr = np.asarray(lr, np.float64)[window]
  if np.any(lr <= 0) or lr.max() < 1.5 * lr.min():
    if schedule is None:
      return [math.nan] * n  # an injected constant learning rate: nothing to follow
    raise ValueError(
      f"audit: the learning rate of `schedule` changes by less than 1.5x over steps "
      f"{window[0]}..{window[-1]} (from {lr.min():.3g} to {lr.max():.3g}, all > 0 needed), so "
      "whether the decay follows it cannot be measured: pass `steps=` so the second half of the "
      "steps covers a part of the schedule that changes (e.g. its warmup)."
    )
  out = []
  for r in per_step:
    rate = np.median(np.abs(np.asarray(r, np.float64)[window]), axis=1) if r.shape[1] else None
    if rate is None or np.any(rate <= 0):
      out.append(math.nan)
    else:
      out.append(float(np.polyfit(np.log(lr), np.log(rate), 1)[0]))
  return out


def _stats(rate: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
  finite = rate[(w != 0) & np.isfinite(rate)]
  if finite.size == 0:
    return 0.0, 0.0, 0.0
  lo, med, hi = np.percentile(finite, [10, 50, 90])
  return float(med), float(lo), float(hi)


def _row(
  leaf: _tree.Leaf, rates: list[Any], at_zero: Any, local: bool, lr_slope: float
) -> AuditRow:
  w = np.asarray(leaf.value, np.float64)
  small, unit, large = (_stats(r, w) for r in rates)
  rate, low, high = unit
  frozen = bool(np.all(at_zero == 0))
  if max(abs(small[0]), abs(unit[0]), abs(large[0])) < 1e-12:
    return AuditRow(leaf.path, "none", 0.0, 0.0, 0.0, math.nan, math.nan, frozen)
  ratio = small[0] / large[0] if large[0] != 0 else math.inf
  # Coupled if the rate moves by more than the factor between *any* two of the three scales:
  # an L2 term that dominates the gradient at both ends can give a small/large ratio near 1.
  sizes = [abs(small[0]), abs(unit[0]), abs(large[0])]
  spread = max(sizes) / min(sizes) if min(sizes) > 0 else math.inf
  kind = "coupled" if spread > COUPLED_FACTOR else "decoupled"
  return AuditRow(leaf.path, kind, rate, low, high, ratio, spread, frozen, not local, lr_slope)


def _warnings(leaf: _tree.Leaf, row: AuditRow, training_steps: int | None) -> list[str]:
  if row.kind == "none":
    return []
  out = []
  name = _masks.leaf_name(leaf.names) or ""
  ndim = np.ndim(leaf.value)
  at = f"{row.path!r}"
  if row.relative:
    return [f"{at}: each coordinate's update depends on the leaf's other weights (a trust "
            "ratio or a relative step size, as in optax.lamb and optax.adafactor): its rate "
            f"{row.rate:.3g} is the update-to-weight ratio, not a decay toward zero, and a "
            "weight decay inside it cannot be read off."]  # fmt: skip
  if name in ("bias", "offset") or (name == "b" and ndim <= 1):
    out.append(f"{at} is a bias and decays (rate {row.rate:.3g} per step): exclude it with "
               "mask=od.bias_mask.")  # fmt: skip
  elif name == "scale" or "norm" in row.path.lower():
    out.append(f"{at} is a normalization parameter and decays (rate {row.rate:.3g} per step).")
  elif "embed" in row.path.lower():
    out.append(f"{at} is an embedding and decays (rate {row.rate:.3g} per step).")
  if row.rate < 0:
    out.append(f"{at}: the update *grows* the weight (rate {row.rate:.3g} per step): a decay "
               "added after the learning rate's sign flip (optax.add_decayed_weights after "
               "optax.sgd/adam) adds +wd*w instead of subtracting it.")  # fmt: skip
  if row.frozen:
    out.append(f"{at} is frozen (no update for a non-zero gradient) but decays: is the decay "
               "outside the optax.partition / optax.masked that freezes it?")  # fmt: skip
  if row.kind == "coupled":
    out.append(f"{at}: the decay is an L2 term inside an adaptive optimizer: its rate varies "
               f"{row.spread:.3g}x across gradients of scale 1e-2 to 1e2 (large-gradient weights "
               "are regularized less); use decoupled decay for one rate.")  # fmt: skip
  out += _precision_warning(leaf, row)
  if training_steps is not None and row.rate > 0:
    tau = 1 / row.rate
    if tau > 10 * training_steps:
      out.append(f"{at}: decay timescale {tau:.3g} steps >> the run's {training_steps}: the "
                 "decay does little in this run.")  # fmt: skip
    elif tau < training_steps / 10:
      out.append(f"{at}: decay timescale {tau:.3g} steps << the run's {training_steps}: the "
                 "weights forget their initialization within the run.")  # fmt: skip
  return out


def _precision_warning(leaf: _tree.Leaf, row: AuditRow) -> list[str]:
  """The decay steps that the leaf's own dtype rounds away (as ``decay_precision_report``)."""
  w = np.asarray(leaf.value)
  if (
    row.relative
    or row.rate <= 0
    or w.dtype == np.float64
    or not jnp.issubdtype(w.dtype, jnp.floating)
  ):
    return []
  lost = float(np.mean(lost_steps(w.reshape(-1), row.rate))) if w.size else 0.0
  if lost <= 0.01:
    return []
  return [f"{row.path!r}: in {w.dtype}, {100 * lost:.0f}% of the decay steps (rate {row.rate:.3g}) "
          "round to no change (see diagnostics.decay_precision_report): keep float32 master "
          "weights or decay less often at a larger rate."]  # fmt: skip
