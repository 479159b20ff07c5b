"""Validation and evaluation of ``ScalarOrSchedule`` hyperparameters.

Constants are checked when a transform is built. A traced value (the live
hyperparameter that ``optax.inject_hyperparams`` passes inside ``jit``) cannot be
checked then; a schedule is checked at step 0 when it is built, since no
exception can be raised from inside a compiled step.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class ScheduleState(NamedTuple):
  """State of a transform whose hyperparameter is a schedule.

  Attributes:
    count: number of ``update`` calls so far (``int32``); the schedule is
      evaluated at ``count`` before it is incremented, so the first update uses
      ``schedule(0)``.
  """

  count: jax.Array


def _concrete_float(value: Any) -> float | None:
  """``float(value)`` if it is a concrete scalar, ``None`` if traced."""
  if isinstance(value, jax.core.Tracer):
    return None
  if not isinstance(value, (int, float, np.number, np.ndarray, jax.Array)):
    raise TypeError(f"expected a number, got {type(value).__name__}")
  arr = np.asarray(value)
  if arr.shape != ():
    raise ValueError(f"expected a scalar, got an array of shape {arr.shape}")
  return float(arr)


def check_scalar_or_schedule(
  value: Any,
  *,
  transform: str,
  arg: str,
  upper: float | None = None,
  allow_zero: bool = True,
) -> None:
  """Raises if a constant (or a schedule's step-0 value) is out of range.

  The range is ``[0, upper)`` (``(0, upper)`` if not ``allow_zero``); the value
  must be finite.
  """
  if isinstance(value, bool) or value is None:
    raise TypeError(f"{transform}: `{arg}` must be a float or a schedule, got {value!r}.")
  where = ""
  if callable(value):
    try:
      value = value(jnp.zeros([], jnp.int32))
    except Exception as e:
      raise TypeError(
        f"{transform}: `{arg}` is callable, so it is used as a schedule "
        f"`step -> value`, but calling it with step 0 failed: {e!r}"
      ) from e
    where = " (the schedule's value at step 0)"
  try:
    x = _concrete_float(value)
  except (TypeError, ValueError) as e:
    raise TypeError(
      f"{transform}: `{arg}` must be a scalar or a schedule returning a "
      f"scalar{where}; got {value!r} ({e})."
    ) from e
  if x is None:
    return
  if not math.isfinite(x):
    raise ValueError(f"{transform}: `{arg}` must be finite, got {x}{where}.")
  if x < 0 or (x == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{transform}: `{arg}` must be {bound}, got {x}{where}.")
  if upper is not None and x >= upper:
    raise ValueError(
      f"{transform}: `{arg}` must be < {upper}, got {x}{where}: it is the "
      "fraction of each weight removed per step, so a value >= 1 zeroes or "
      "flips the weights. Did you pass an L2 coefficient or a learning-rate-"
      "free decay? See `optaxdecay.l2_to_decay_rate`."
    )


def init_state(value: Any) -> optax.OptState:
  """``ScheduleState(0)`` for a schedule, ``EmptyState()`` for a constant."""
  if callable(value):
    return ScheduleState(count=jnp.zeros([], jnp.int32))
  return optax.EmptyState()


def current_value(value: Any, state: optax.OptState) -> tuple[Any, Any]:
  """The hyperparameter at this step, and the state for the next."""
  if callable(value):
    return value(state.count), ScheduleState(optax.safe_increment(state.count))
  return value, state


def is_static_zero(value: Any) -> bool:
  """A Python-number zero: the transform is then the identity, at no cost."""
  return isinstance(value, (int, float)) and value == 0
