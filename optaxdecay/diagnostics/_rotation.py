"""``track_rotation`` and ``rotation_report``: how fast each neuron's weight vector turns.

For a weight vector followed by a normalization only its direction matters, and the angle it
turns per step is its effective learning rate; decay drives that angle to an equilibrium
(:func:`~optaxdecay.diagnostics.equilibrium`). The tracker is a transform that passes the
updates through unchanged and keeps running averages per neuron in its state; the report reads
them from any optimizer state.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _hparams, _selection, _tree
from optaxdecay.diagnostics._equilibrium import Equilibrium
from optaxdecay.diagnostics._table import render_table

#: A leaf is at equilibrium when its angular update is within this factor of the prediction
#: (and it has run for the predicted number of steps).
NEAR = 1.25


class RotationState(NamedTuple):
  """The state of :func:`track_rotation`.

  Attributes:
    count: the steps seen (calls whose update moved any weight).
    weight: ``1 - ema**count``: divides the running averages (Adam's bias correction).
    angle: per leaf, per neuron, the running average of the angle (radians) between ``w`` and
      ``w + u``.
    norm: the same for ``‖w‖``.
    relative: the same for ``‖u‖ / ‖w‖``.
    fan_in: per leaf, the number of coordinates of one neuron (a 0-d int32).
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
  weight: jax.Array
  angle: Any
  norm: Any
  relative: Any
  fan_in: Any


def _neurons(value: Any, axis: int, *, path: str) -> tuple[int, int]:
  """``(neurons, fan_in)`` of a leaf: slices along ``axis``; a 0-d or 1-D leaf is one neuron."""
  shape = tuple(np.shape(value))
  size = math.prod(shape)
  if len(shape) <= 1:
    return 1, size
  if not -len(shape) <= axis < len(shape):
    raise ValueError(
      f"track_rotation: `neuron_axis`={axis} is out of range for the leaf {path!r} of shape "
      f"{shape} (Flax kernels keep neurons on the last axis, -1; Equinox and PyTorch weights "
      "on the first, 0)."
    )
  n = shape[axis]
  return n, size // n if n else 0


def _measure(w: Any, u: Any, axis: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per neuron: the angle between ``w`` and ``w + u``, ``‖w‖``, and ``‖u‖/‖w‖``.

  ``w + u = (‖w‖ + u·ŵ) ŵ + u⊥``, so the angle is ``atan2(‖u⊥‖, ‖w‖ + u·ŵ)``, with ``u⊥``
  formed explicitly (no cancellation of ``‖u‖² - (u·ŵ)²``); a zero ``w`` turns by π/2. The
  sums run over every axis but the neuron axis in place (no transposed copy of the leaf), in
  float32 or wider.
  """
  w, u = jnp.asarray(w), jnp.asarray(u)
  dtype = jnp.promote_types(w.dtype, jnp.float32)
  w, u = w.astype(dtype), u.astype(dtype)
  if w.ndim <= 1:
    w, u = w.reshape(1, -1), u.reshape(1, -1)
    axis = 0
  rest = tuple(i for i in range(w.ndim) if i != axis % w.ndim)

  def total(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=rest, keepdims=True)

  w2, dot = total(w * w), total(u * w)
  live = w2 > 0
  safe = jnp.where(live, w2, 1)
  perp = u - jnp.where(live, dot / safe, 0) * w
  norm = jnp.sqrt(w2)
  along = norm + jnp.where(live, dot / jnp.sqrt(safe), 0)
  angle = jnp.arctan2(jnp.sqrt(total(perp * perp)), along)
  relative = jnp.where(live, jnp.sqrt(total(u * u)) / jnp.sqrt(safe), 0)
  return angle.reshape(-1), norm.reshape(-1), relative.reshape(-1)


def track_rotation(
  *, neuron_axis: int = -1, ema: float = 0.99, mask: _selection.MaskArg = None
) -> optax.GradientTransformation:
  r"""Passes the updates through unchanged and records how fast each neuron turns.

  Place it **last** in the chain (after the decay), so that it sees the update that is
  applied. Per leaf and per neuron — a slice of the leaf along ``neuron_axis``; a 0-d or 1-D
  leaf is one neuron — its state keeps running averages (exponential, with weight ``ema`` on the
  past, bias-corrected in the report) of

  .. math::

    \theta_t = \angle(w_t,\, w_t + u_t), \qquad \lVert w_t\rVert, \qquad
    \lVert u_t\rVert / \lVert w_t\rVert,

  over the steps whose update moves any weight (``optax.MultiSteps``' mini-steps are skipped,
  inside or outside it); read it with :func:`rotation_report`. Give it the decay's ``mask`` to
  follow only the decayed leaves (the equilibrium is a prediction about those; a neuron of zero
  weight counts ``|u|/|w| = 0``). It keeps three numbers per neuron, but each step reads the
  weights and the updates a few more times (sums per neuron): on 8.4M float32 parameters on a
  2-core CPU an AdamW step with it took about 5× as long as without
  (``benchmarks/step_overhead.py``), so follow only the leaves you need, or leave it out of the
  chain when you are not looking.

  Args:
    neuron_axis: the axis of a leaf that indexes its neurons: ``-1`` for Flax's ``(in, out)``
      kernels and convolutions, ``0`` for Equinox's and PyTorch's ``(out, in)`` weights.
    ema: the running averages' weight on the past (0.99: about the last 100 steps).
    mask: the leaves to follow, with the contract of every optaxdecay ``mask=`` (``None``:
      all; e.g. the decay's own mask, such as :func:`~optaxdecay.bias_mask`).

  Returns:
    An ``optax.GradientTransformation`` whose updates are its inputs, bit for bit, and whose
    state is a :class:`RotationState`.

  Raises:
    TypeError: ``neuron_axis`` is not an int; a bad ``mask``.
    ValueError: ``ema`` not in ``[0, 1)``; at ``init``, a ``neuron_axis`` out of range for a
      leaf of two or more dimensions, or a complex leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'kernel': jnp.ones((4, 3))}
    >>> tx = optax.chain(optax.adamw(1e-2, weight_decay=0.1), od.diagnostics.track_rotation())
    >>> state = tx.init(params)
    >>> updates, state = tx.update({'kernel': jnp.eye(4, 3)}, state, params)
    >>> report = od.diagnostics.rotation_report(state)
    >>> report.rows[0].path, report.rows[0].neurons
    ('kernel', 3)

  References:
    Kosson, Messmer & Jaggi, `Rotational Equilibrium: How Weight Decay Balances Learning
    Across Neural Networks <https://arxiv.org/abs/2305.17212>`_, ICML 2024.
  """
  fn = "track_rotation"
  if isinstance(neuron_axis, bool) or not isinstance(neuron_axis, numbers.Integral):
    raise TypeError(f"{fn}: `neuron_axis` must be an int, got {_hparams.describe(neuron_axis)}.")
  axis = int(neuron_axis)
  beta = _hparams.check_concrete(ema, fn=fn, arg="ema", high=1.0)
  selection = _selection.selection(mask, fn=fn)

  def shapes(params: Any) -> tuple[_tree.Structure, list[tuple[int, int] | None]]:
    structure = _tree.Structure(params)
    followed = selection.resolve(params)
    out: list[tuple[int, int] | None] = []
    for leaf, m in zip(structure.leaves, followed, strict=True):
      if leaf.absent or m == 0:
        out.append(None)
        continue
      if jnp.iscomplexobj(leaf.value):
        raise ValueError(f"{fn}: the leaf {leaf.path!r} is complex; angles are measured on "
                         "real weights.")  # fmt: skip
      out.append(_neurons(leaf.value, axis, path=leaf.path))
    return structure, out

  def per_leaf(structure: _tree.Structure, values: list[Any]) -> Any:
    """A state tree in the params' layout: a leaf not followed holds ``None``."""
    raws = [leaf.value if leaf.absent else v for leaf, v in zip(structure.leaves, values,
                                                                strict=True)]  # fmt: skip
    return structure.unflatten_plain(raws)

  def init_fn(params: optax.Params) -> RotationState:
    structure, sizes = shapes(params)
    dtypes = [
      None if leaf.absent else jnp.promote_types(jnp.result_type(leaf.value), jnp.float32)
      for leaf in structure.leaves
    ]
    zeros = [None if s is None else jnp.zeros(s[0], d) for s, d in zip(sizes, dtypes,
                                                                        strict=True)]  # fmt: skip
    fan_in = [None if s is None else jnp.asarray(s[1], jnp.int32) for s in sizes]
    z = per_leaf(structure, zeros)
    weight = jnp.zeros([], float)  # float64 under jax_enable_x64
    return RotationState(jnp.zeros([], jnp.int32), weight, z, z, z, per_leaf(structure, fan_in))

  def update_fn(
    updates: optax.Updates, state: optax.OptState, params: optax.Params | None = None
  ) -> tuple[optax.Updates, optax.OptState]:
    if params is None:
      raise ValueError(f"{fn}: `update` needs `params` (the weights the updates apply to).")
    state = cast(RotationState, state)
    u_leaves, p_leaves, _ = _tree.align(updates, params, fn=fn)
    structure, sizes = shapes(params)
    moved = jnp.zeros([], bool)
    for u in u_leaves:  # every leaf, followed or not: a step is a step of the whole model
      if not _tree.is_absent(u):
        moved = moved | jnp.any(u != 0)
    olds = [_leaf_values(t) for t in (state.angle, state.norm, state.relative)]
    news: list[list[Any]] = [[], [], []]
    for i, (u, w, size) in enumerate(zip(u_leaves, p_leaves, sizes, strict=True)):
      if size is None or _tree.is_absent(u):
        for k in range(3):
          news[k].append(None)
        continue
      for k, x in enumerate(_measure(w, u, axis)):
        old = olds[k][i]
        news[k].append(jnp.where(moved, beta * old + (1 - beta) * x.astype(old.dtype), old))
    weight = jnp.where(moved, beta * state.weight + (1 - beta), state.weight)
    angle, norm, relative = (per_leaf(structure, n) for n in news)
    count = state.count + moved.astype(jnp.int32)
    new_state = RotationState(count, weight, angle, norm, relative, state.fan_in)
    return updates, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def _leaf_values(tree: Any) -> list[Any]:
  return [leaf.value for leaf in _tree.flatten_leaves(tree)[0]]


# --- the report --------------------------------------------------------------------------------


class RotationRow(NamedTuple):
  """One leaf of a :class:`RotationReport`.

  Attributes:
    path: the leaf's path.
    neurons: its number of neurons.
    angular_update: the mean over neurons of the average angle turned per step (radians).
    spread: the 90th over the 10th percentile of that angle across the neurons (1 when they
      turn alike; ``nan`` for one neuron).
    weight_norm: the mean over neurons of the average ``‖w‖``.
    relative_update: the mean over neurons of the average ``‖u‖/‖w‖``.
    predicted: the equilibrium angular update (``nan`` without an ``equilibrium``).
    ratio: ``angular_update / predicted``.
    at_equilibrium: the leaf has run for the predicted steps and turns within a factor 1.25 of
      the prediction (``None`` without an ``equilibrium``).
  """

  path: str
  neurons: int
  angular_update: float
  spread: float
  weight_norm: float
  relative_update: float
  predicted: float = math.nan
  ratio: float = math.nan
  at_equilibrium: bool | None = None


@dataclasses.dataclass(frozen=True)
class RotationReport:
  """The result of :func:`rotation_report`: one :class:`RotationRow` per leaf.

  Attributes:
    rows: the leaves, in the optimizer state's order.
    steps: the steps the tracker has seen.
    equilibrium: the prediction the rows are compared with, if any.
  """

  rows: tuple[RotationRow, ...]
  steps: int
  equilibrium: Equilibrium | None = None

  def to_dict(self, prefix: str = "rotation") -> dict[str, float]:
    """Flat ``{'<prefix>/<path>/<field>': value}`` for a logger: the finite numbers of every
    row (``at_equilibrium`` as 0 or 1), and ``'<prefix>/steps'``; no ``nan`` (strict JSON)."""
    out: dict[str, float] = {f"{prefix}/steps": float(self.steps)}
    fields = ("angular_update", "spread", "weight_norm", "relative_update", "predicted", "ratio")
    for row in self.rows:
      for field in fields:
        value = float(getattr(row, field))
        if math.isfinite(value):
          out[f"{prefix}/{row.path}/{field}"] = value
      if row.at_equilibrium is not None:
        out[f"{prefix}/{row.path}/at_equilibrium"] = float(row.at_equilibrium)
    return out

  def __str__(self) -> str:
    eq = self.equilibrium
    headers = ["path", "neurons", "rad/step", "p90/p10", "|w|", "|u|/|w|"]
    if eq is not None:
      headers += ["predicted", "ratio", "at equilibrium"]
    body = []
    for r in self.rows:
      cells = [r.path, str(r.neurons), f"{r.angular_update:.3g}", _num(r.spread),
               f"{r.weight_norm:.3g}", f"{r.relative_update:.3g}"]  # fmt: skip
      if eq is not None:
        cells += [f"{r.predicted:.3g}", _num(r.ratio), "yes" if r.at_equilibrium else "no"]
      body.append(cells)
    table = render_table(headers, body, right=set(range(1, 8)))
    head = f"{self.steps} steps"
    if eq is not None:
      head += f"; {eq.optimizer} equilibrium after about {eq.steps:.3g} steps"
    return f"{head}\n{table}"


def _num(x: float) -> str:
  return "-" if math.isnan(x) else f"{x:.3g}"


def _is_state(x: Any) -> bool:
  """A tracker state: the NamedTuple, or the dict ``nnx.state(optimizer)`` turns it into."""
  if isinstance(x, RotationState):
    return True
  return isinstance(x, Mapping) and set(x) == set(RotationState._fields)


def _states(tree: Any) -> list[RotationState]:
  found = jax.tree_util.tree_leaves(tree, is_leaf=_is_state)
  return [x if isinstance(x, RotationState) else RotationState(**x) for x in found if _is_state(x)]


def rotation_report(opt_state: Any, *, equilibrium: Equilibrium | None = None) -> RotationReport:
  """Reads :func:`track_rotation`'s state from an optimizer state: per leaf, how fast it turns.

  Args:
    opt_state: any optimizer state holding a :func:`track_rotation` state — a chain's, a
      wrapper's (``optax.masked``, ``optax.partition``: each group's tracker adds its leaves),
      an ``nnx.Optimizer`` itself or ``nnx.state(optimizer)``.
    equilibrium: the prediction to compare with (from
      :func:`~optaxdecay.diagnostics.equilibrium`).

  Returns:
    A :class:`RotationReport`; ``print`` it for a table, ``to_dict()`` for a logger.

  Raises:
    ValueError: no tracker state in ``opt_state``, or two trackers following one leaf.
    TypeError: ``equilibrium`` is not an :class:`~optaxdecay.diagnostics.Equilibrium`.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> tx = optax.chain(optax.adamw(1e-2, weight_decay=0.1), od.diagnostics.track_rotation())
    >>> params = {'kernel': jnp.ones((4, 3))}
    >>> _, state = tx.update({'kernel': jnp.eye(4, 3)}, tx.init(params), params)
    >>> eq = od.diagnostics.equilibrium('adamw', learning_rate=1e-2, weight_decay=0.1)
    >>> od.diagnostics.rotation_report(state, equilibrium=eq).rows[0].at_equilibrium
    False
  """
  fn = "rotation_report"
  if equilibrium is not None and not isinstance(equilibrium, Equilibrium):
    raise TypeError(
      f"{fn}: `equilibrium` must be od.diagnostics.equilibrium(...)'s result, got "
      f"{_hparams.describe(equilibrium)}."
    )
  tree = getattr(opt_state, "opt_state", opt_state)  # an nnx.Optimizer
  states = _states(tree)
  if not states:
    raise ValueError(
      f"{fn}: `opt_state` holds no track_rotation state: put od.diagnostics.track_rotation() "
      "last in the optimizer's chain, and pass the state (or the nnx.Optimizer)."
    )
  rows: list[RotationRow] = []
  steps = 0
  for state in states:
    steps = max(steps, int(_tree.unwrap(state.count)))
    rows += _rows(state, equilibrium)
  paths = [r.path for r in rows]
  twice = sorted({p for p in paths if paths.count(p) > 1})
  if twice:
    raise ValueError(
      f"{fn}: more than one track_rotation follows {twice[0]!r}: keep one tracker per leaf "
      "(say, last in the chain, with the decay's `mask=`)."
    )
  return RotationReport(tuple(rows), steps, equilibrium)


def _rows(state: RotationState, eq: Equilibrium | None) -> list[RotationRow]:
  weight = float(_tree.unwrap(state.weight))
  count = int(_tree.unwrap(state.count))
  trees = [_tree.flatten_leaves(t)[0] for t in (state.angle, state.norm, state.relative)]
  rows = []
  for angle, norm, relative in zip(*trees, strict=True):
    if angle.absent:
      continue
    a, n, r = (np.asarray(x.value, np.float64) / weight if weight else
               np.full(np.shape(x.value), np.nan) for x in (angle, norm, relative))  # fmt: skip
    row = RotationRow(angle.path, int(a.size), float(a.mean()), _spread(a), float(n.mean()),
                      float(r.mean()))  # fmt: skip
    if eq is not None:
      ratio = row.angular_update / eq.angular_update
      near = count >= eq.steps and 1 / NEAR <= ratio <= NEAR
      row = row._replace(predicted=eq.angular_update, ratio=ratio, at_equilibrium=bool(near))
    rows.append(row)
  return rows


def _spread(angle: np.ndarray) -> float:
  if angle.size < 2:
    return math.nan
  low, high = np.percentile(angle, [10, 90])
  return float(high / low) if low > 0 else math.inf
