"""``effective_l2_strength``: how strongly an L2 penalty acts on each weight through Adam."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from optaxdecay import _hparams, _selection, _tree
from optaxdecay.diagnostics._table import render_table


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
    table = render_table(
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


def _step_count(x: Any, *, fn: str) -> int:
  """The Adam state's step count as an int: one concrete state, not a batch or a tracer."""
  x = _tree.unwrap(x)
  if isinstance(x, jax.core.Tracer):
    raise TypeError(
      f"{fn}: `opt_state` holds traced values: call it on a concrete state, outside jax.jit."
    )
  shape = np.shape(x)
  if shape != ():
    raise ValueError(
      f"{fn}: `opt_state` holds a batch of states (its Adam step count has shape {shape}, e.g. "
      "from jax.vmap): pass one of them, e.g. jax.tree.map(lambda x: x[i], opt_state)."
    )
  return int(np.asarray(x))


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
  count = _step_count(adam.count, fn=fn)
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
