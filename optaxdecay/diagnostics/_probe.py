"""The audit's measurement: the same noise through ``tx.update`` at several sets of weights.

A *run* calls ``tx.update`` ``steps`` times on the same noise gradients with the weights held
fixed, and records the updates of a sample of each leaf's coordinates over the second half of
the calls (by then momentum and second moments are at their steady state). One jitted program
makes every run, so it compiles once.

Two runs whose weights differ by ``Δ`` form a *pair*: the difference of their updates
``d = u_B - u_A`` is what the update owes to the weights, and ``r = -d/Δ`` is the per-step
rate of that coordinate. Each call is an event per coordinate:

* **still**: neither update moved (an ``optax.MultiSteps`` mini-step): not counted;
* **on**: ``|d|`` stands out of the rounding of the updates (``K_ULP`` units in the last place
  of the larger update, in the update's own dtype);
* otherwise quiet, with a *floor* ``tol/|Δ|``: the smallest rate the event could have resolved.
  A quiet event whose floor is far below the coordinate's rate when on is **off** (cautious
  decay, a decay every k-th step); any other is **unresolved** (a decay too small to see next
  to updates of this size).

Nothing here interprets the counts: :mod:`optaxdecay.diagnostics._audit` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _tree

#: A difference of updates is resolved when it exceeds this many units in the last place of the
#: larger update (two runs' roundings differ by about one).
K_ULP = 8
#: Coordinates per leaf whose rate is followed call by call, for the schedule check.
TRACKED = 64
#: Coordinates per leaf that are recorded (all of a smaller leaf): the verdict is a median and
#: percentiles over coordinates, which a sample spread over the leaf gives as well.
SAMPLE = 2048


class Record(NamedTuple):
  """One run: per leaf, the sampled updates of the measured calls (``[calls, sample]``, float64)
  and the updates' dtype; per call, the learning rate of an ``inject_hyperparams`` state."""

  updates: list[np.ndarray]
  dtypes: list[np.dtype]
  lr: np.ndarray | None


class Stats(NamedTuple):
  """One leaf of one pair, counted over the measured calls (per sampled coordinate)."""

  n_on: np.ndarray
  n_neg: np.ndarray  # on events with a negative rate (the update grows the weight)
  n_off: np.ndarray
  n_unresolved: np.ndarray
  s_rate: np.ndarray  # the sum of the rate over on and unresolved events
  s_floor: np.ndarray  # the sum of the floor over unresolved events
  nonfinite: bool  # either run's update was inf/nan
  per_call: np.ndarray  # per call, the mean |rate| of the first TRACKED coordinates that are on
  n_eligible: int = 0  # on events at a non-zero base weight
  n_proportional: int = 0  # ... whose update's size scaled with the weight (|u_B/w_B| = |u_A/w_A|)


def sample(size: int) -> np.ndarray:
  """The flat indices of a leaf's recorded coordinates: all of them up to :data:`SAMPLE`, else
  :data:`SAMPLE` ``/ 2`` evenly spaced pairs of neighbours (both parities, for the
  every-other-weight test)."""
  if size <= SAMPLE:
    return np.arange(size)
  starts = np.linspace(0, size - 2, SAMPLE // 2).round().astype(np.int64)
  return np.unique(np.concatenate([starts, starts + 1]))


def noise(params: Any, steps: int, key: Any) -> tuple[Any, jax.Array]:
  """The audit's gradients ``g_t = scale * c_t * z``: one standard normal draw ``z`` per
  coordinate (in the leaf's dtype) and one standard normal scalar ``c_t`` per call, drawn on
  the host from a generator seeded by ``key`` (no compile per leaf shape)."""
  data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
  rng = np.random.default_rng(np.asarray(data, np.uint32).ravel())
  leaves, treedef = jax.tree.flatten(params)
  z = [
    jnp.asarray(rng.standard_normal(np.shape(x)).astype(np.dtype(jnp.result_type(x))))
    for x in leaves
  ]
  return jax.tree.unflatten(treedef, z), jnp.asarray(rng.standard_normal(steps), jnp.float32)


def injected(state: Any) -> bool:
  """An ``optax.inject_hyperparams`` state (its ``hyperparams`` dict holds the values)."""
  return isinstance(state, tuple) and isinstance(getattr(state, "hyperparams", None), dict)


def _lr(state: Any) -> jax.Array | None:
  if injected(state) and state.hyperparams.get("learning_rate") is not None:
    return jnp.asarray(state.hyperparams["learning_rate"], jnp.float32)
  return None


def init(tx: optax.GradientTransformation, params: Any) -> Any:
  """``tx.init(params)``; an exception it raises gets a note saying the audit called it."""
  try:
    return tx.init(params)
  except Exception as err:
    err.add_note("(raised inside `tx.init(params)`, called by diagnostics.audit)")
    raise


def _update(tx: optax.GradientTransformation, grads: Any, state: Any, params: Any) -> Any:
  try:
    return tx.update(grads, state, params)
  except Exception as err:
    err.add_note(
      "(raised inside `tx.update(grads, state, params)`, which diagnostics.audit calls with "
      "noise gradients shaped like `params`, the state from `tx.init(params)` and no extra "
      "arguments: an optimizer that needs one, such as `value=`, cannot be audited as a "
      "black box)"
    )
    raise


def _present(tree: Any) -> list[Any]:
  return [leaf.value for leaf in _tree.flatten_leaves(tree)[0] if not leaf.absent]


def _gather(x: Any, pick: np.ndarray) -> Any:
  flat = jnp.ravel(x)
  return flat if len(pick) == flat.size else flat[pick]


def recorder(
  tx: optax.GradientTransformation, z: Any, c: Any
) -> Callable[[float, Any, Any], Record]:
  """``record(scale, weights, init_weights) -> Record``: one run, as one jitted program.

  ``tx.init`` gets ``init_weights`` (the same as ``weights``, or other weights: a run that
  starts from another's state sees a decay toward the weights at ``init``).
  """
  half = len(c) // 2
  picks = [sample(int(np.size(x))) for x in _present(z)]
  traced: dict[str, Any] = {}  # what tracing learns: the updates' dtypes, whether an lr is read

  @jax.jit
  def run(scale: Any, weights: Any, init_weights: Any) -> Any:
    def call(state: Any, c_t: Any) -> tuple[Any, Any]:
      grads = jax.tree.map(lambda x: (scale * c_t * x).astype(x.dtype), z)
      u, state = _update(tx, grads, state, weights)
      ups = [_gather(x, pick) for x, pick in zip(_present(u), picks, strict=True)]
      lr = _lr(state)
      traced.update(dtypes=[np.dtype(x.dtype) for x in ups], lr=lr is not None)
      # One output per call (a concatenation, not one per leaf): it compiles in about half
      # the time. Low-precision updates are exact in float32.
      ct = jnp.result_type(jnp.float32, *(x.dtype for x in ups))
      row = [x.astype(ct) for x in ups] + ([] if lr is None else [lr.astype(ct)[None]])
      return state, jnp.concatenate(row)

    _, rows = jax.lax.scan(call, init(tx, init_weights), c)
    return rows[half:]

  def record(scale: float, weights: Any, init_weights: Any) -> Record:
    rows = np.asarray(jax.device_get(run(jnp.float32(scale), weights, init_weights)), np.float64)
    ends = np.cumsum([len(p) for p in picks])
    updates = np.split(rows[:, : ends[-1] if len(ends) else 0], ends[:-1], axis=1)
    return Record(list(updates), list(traced["dtypes"]), rows[:, -1] if traced["lr"] else None)

  return record


def moving(run: Record) -> np.ndarray:
  """Per recorded call, whether any leaf's update moved (``MultiSteps`` mini-steps do not)."""
  calls = len(run.updates[0]) if run.updates else 0
  out = np.zeros(calls, bool)
  for u in run.updates:
    out |= np.any(u != 0, axis=1)
  return out


def moved(run: Record) -> list[bool]:
  """Per leaf, whether any recorded update of the run is non-zero."""
  return [bool(np.any(u != 0)) for u in run.updates]


def compare(
  base: Record, other: Record, invs: list[np.ndarray], weights: list[np.ndarray]
) -> list[Stats]:
  """Per leaf, the events of the pair ``(base, other)``; ``invs`` holds ``1/Δ`` per sampled
  coordinate (0 where the two runs' weights are the same), ``weights`` the base run's."""
  return [
    _count(a, b, inv, dtype, w)
    for a, b, inv, dtype, w in zip(
      base.updates, other.updates, invs, base.dtypes, weights, strict=True
    )
  ]


def _count(a: np.ndarray, b: np.ndarray, inv: np.ndarray, dtype: np.dtype, w: np.ndarray) -> Stats:
  finite = np.isfinite(a) & np.isfinite(b)
  a, b = np.where(finite, a, 0), np.where(finite, b, 0)
  info = np.finfo(dtype)
  eps, tiny = float(info.eps), float(info.smallest_subnormal)
  tol = K_ULP * np.maximum(eps * np.maximum(np.abs(a), np.abs(b)), tiny)
  d = b - a
  moving = finite & ((a != 0) | (b != 0))
  on = moving & (np.abs(d) > tol)
  rate = -d * inv
  floor = tol * np.abs(inv)
  n_on = on.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    guess = np.where(n_on > 0, np.abs(np.where(on, rate, 0).sum(axis=0)) / n_on, 0)
    tracked = on[:, :TRACKED]
    per_call = np.abs(np.where(tracked, rate[:, :TRACKED], 0)).sum(axis=1) / tracked.sum(axis=1)
  quiet = moving & ~on
  off = quiet & (floor < guess / 4)
  unresolved = quiet & ~off
  with np.errstate(divide="ignore"):
    w_b = w + np.where(inv != 0, 1 / np.where(inv != 0, inv, 1), 0)
  eligible = on & (w != 0)
  proportional = eligible & (np.abs(np.abs(b * w) - np.abs(a * w_b)) <= tol * np.abs(w_b))
  return Stats(
    n_on=n_on,
    n_neg=(on & (rate < 0)).sum(axis=0),
    n_off=off.sum(axis=0),
    n_unresolved=unresolved.sum(axis=0),
    s_rate=np.where(on | unresolved, rate, 0).sum(axis=0),
    s_floor=np.where(unresolved, floor, 0).sum(axis=0),
    nonfinite=not bool(finite.all()),
    per_call=per_call,
    n_eligible=int(eligible.sum()),
    n_proportional=int(proportional.sum()),
  )
