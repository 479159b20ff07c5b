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
  """

  path: str
  kind: str
  rate: float
  low: float
  high: float
  ratio: float
  spread: float
  frozen: bool


@dataclasses.dataclass(frozen=True)
class AuditReport:
  """The result of :func:`audit`: one :class:`AuditRow` per leaf, and the warnings."""

  rows: tuple[AuditRow, ...]
  warnings: tuple[str, ...]
  steps: int

  def __str__(self) -> str:
    from optaxdecay.diagnostics import _table

    body = [
      (
        r.path,
        r.kind,
        f"{r.rate:.3g}",
        f"[{r.low:.3g}, {r.high:.3g}]",
        "-" if math.isnan(r.ratio) else f"{r.ratio:.3g}",
        "yes" if r.frozen else "no",
      )
      for r in self.rows
    ]
    headers = ("path", "kind", "rate/step", "10-90 %", "small/large grad", "frozen")
    text = _table(headers, body, right={2, 4})
    notes = "\n".join(f"warning: {w}" for w in self.warnings)
    return text + (f"\n{notes}" if notes else "")


def _measure(tx: optax.GradientTransformation, params: Any, steps: int, key: Any) -> Any:
  """``run(scale, params) -> last update``: one jitted scan over ``steps`` calls.

  The gradient at step ``t`` is ``scale * c_t * z``: one standard normal draw ``z`` per
  coordinate (made once), times a standard normal scalar ``c_t`` per step, so drawing the noise
  costs one pass over the params, not one per step.
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
  c = jax.random.normal(k_c, (steps,))

  @jax.jit
  def run(scale: Any, p: Any) -> Any:
    def body(carry: Any, c_t: Any) -> tuple[Any, None]:
      state, _ = carry
      g = jax.tree.map(lambda x: (scale * c_t * x).astype(x.dtype), z)
      u, state = tx.update(g, state, p)
      return (state, u), None  # only the last update is kept: memory of one update

    state = tx.init(p)
    first, _ = tx.update(jax.tree.map(jnp.zeros_like, z), state, p)  # the updates' structure
    (_, last), _ = jax.lax.scan(body, (state, jax.tree.map(jnp.zeros_like, first)), c)
    return last

  return run


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
  relative step) show as a rate too: the update changes with the weights' scale. Their
  ``kind`` then says how that rate depends on the gradients, not that it is a weight decay.

  Args:
    tx: the optimizer.
    params: the parameters (any pytree; Linen boxes and NNX ``Variable`` wrappers included).
    steps: calls of ``tx.update`` per measurement.
    delta: the relative perturbation of the weights (large enough that the difference of the
      two updates stands out of float32 rounding of an update driven by gradients of 1e2; a
      decay linear in the weights is measured exactly whatever its size).
    training_steps: the length of the run, for the timescale warnings.
    key: a ``jax.random`` key for the noise (default: ``jax.random.key(0)``).

  Returns:
    An :class:`AuditReport`; ``print`` it for a table.

  Raises:
    ValueError: ``steps`` or ``training_steps`` not positive, ``delta`` not in ``(0, 1)``.

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
  key = jax.random.key(0) if key is None else key
  leaves, _ = _tree.flatten_leaves(params)
  scaled = _tree.rebuild(
    params, [leaf.value if leaf.absent else (1 + delta) * leaf.value for leaf in leaves]
  )
  zeros = _tree.rebuild(
    params, [leaf.value if leaf.absent else jnp.zeros_like(leaf.value) for leaf in leaves]
  )
  run = _measure(tx, params, steps, key)
  rates = []
  for scale in SCALES:
    base = _leaf_values(run(scale, params))
    moved = _leaf_values(run(scale, scaled))
    with np.errstate(divide="ignore", invalid="ignore"):  # zero weights: no rate (dropped)
      rates.append(
        [
          None if b is None else -(m - b) / (delta * np.asarray(leaf.value, np.float64))
          for leaf, b, m in zip(leaves, base, moved, strict=True)
        ]
      )
  at_zero = _leaf_values(run(1.0, zeros))
  rows, warnings = [], []
  for i, leaf in enumerate(leaves):
    if leaf.absent:
      continue
    row = _row(leaf, [r[i] for r in rates], at_zero[i])
    rows.append(row)
    warnings += _warnings(leaf, row, training_steps)
  return AuditReport(tuple(rows), tuple(warnings), steps)


def _stats(rate: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
  finite = rate[(w != 0) & np.isfinite(rate)]
  if finite.size == 0:
    return 0.0, 0.0, 0.0
  lo, med, hi = np.percentile(finite, [10, 50, 90])
  return float(med), float(lo), float(hi)


def _row(leaf: _tree.Leaf, rates: list[Any], at_zero: Any) -> AuditRow:
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
  return AuditRow(leaf.path, kind, rate, low, high, ratio, spread, frozen)


def _warnings(leaf: _tree.Leaf, row: AuditRow, training_steps: int | None) -> list[str]:
  if row.kind == "none":
    return []
  out = []
  name = _masks.leaf_name(leaf.names) or ""
  ndim = np.ndim(leaf.value)
  at = f"{row.path!r}"
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
  if training_steps is not None and row.rate > 0:
    tau = 1 / row.rate
    if tau > 10 * training_steps:
      out.append(f"{at}: decay timescale {tau:.3g} steps >> the run's {training_steps}: the "
                 "decay does little in this run.")  # fmt: skip
    elif tau < training_steps / 10:
      out.append(f"{at}: decay timescale {tau:.3g} steps << the run's {training_steps}: the "
                 "weights forget their initialization within the run.")  # fmt: skip
  return out
