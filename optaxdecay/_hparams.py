"""Validation and evaluation of ``ScalarOrSchedule`` hyperparameters.

Each public function checks each of its arguments once, here, with its own
name (``fn``) and the argument's (``arg``) in every message; the builders behind
it take checked values. Constants are checked when a transform is built. A
traced value (the live hyperparameter that ``optax.inject_hyperparams`` passes
inside ``jit``) cannot be checked then, and a schedule is checked at step 0:
:func:`optaxdecay.checked` adds run-time checks of both under ``jit``.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, cast

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

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax


def describe(value: Any) -> str:
  """A short description of ``value`` for an error message: a number or a short string as it is
  written, anything else by its type (and an array by its shape and dtype), never a whole tree."""
  if isinstance(value, (bool, int, float, complex, np.number)) or value is None:
    return repr(value)
  if isinstance(value, str):
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
  if isinstance(value, (np.ndarray, jax.Array)):
    return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
  if callable(value) and hasattr(value, "__name__"):
    return f"the function {value.__name__}"
  name = type(value).__name__
  article = "an" if name[:1].lower() in "aeiou" else "a"
  if isinstance(value, (tuple, list, dict)):
    return f"{article} {name} of {len(value)} items"
  return f"{article} {name}"


def _bound(low: float, inclusive: bool) -> str:
  return f"{'>=' if inclusive else '>'} {low:g}"


def check_number(
  value: Any,
  *,
  fn: str,
  arg: str,
  low: float | None = 0.0,
  low_inclusive: bool = True,
  high: float | None = None,
  high_inclusive: bool = False,
  concrete: bool = False,
  where: str = "",
  hint: str = "",
) -> float | None:
  """``float(value)`` for a real scalar in range; ``None`` if traced.

  The one numeric argument check of the package: every error names ``fn`` and
  ``arg``. The range is ``low <= value < high`` (``>``/``<=`` as the flags say;
  no bound where ``low`` or ``high`` is ``None``) and the value must be finite.

  Args:
    value: a Python/NumPy number or a 0-d array; a traced value (the live
      hyperparameter of ``optax.inject_hyperparams`` inside ``jit``) cannot be
      checked and gives ``None``, unless ``concrete``.
    fn: the public function to name in errors.
    arg: the argument to name in errors.
    low: the lower bound, or ``None``.
    low_inclusive: whether ``low`` itself is allowed.
    high: the upper bound, or ``None``.
    high_inclusive: whether ``high`` itself is allowed.
    concrete: refuse a traced value (for values used in Python arithmetic).
    where: appended after the value in range errors, e.g. which step.
    hint: appended to the upper-bound error: why the bound exists.

  Returns:
    The value as a float, or ``None`` for a traced value.

  Raises:
    TypeError: not a real scalar (a bool, ``None``, a callable, a string, an
      array of any other shape, a complex number), or traced when ``concrete``.
    ValueError: not finite, or out of range.
  """
  kind = "a positive float" if low == 0 and not low_inclusive else "a float"
  if isinstance(value, jax.core.Tracer):
    if concrete:
      raise TypeError(f"{fn}: `{arg}` must be a concrete float, got a traced value.")
    if value.shape != () or not (
      jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)
    ):
      raise TypeError(
        f"{fn}: `{arg}` must be a real scalar, got a traced {value.dtype}{list(value.shape)}. "
        "(`optax.inject_hyperparams` takes the hyperparameters' dtype from the params: with "
        "complex params pass `hyperparam_dtype=jnp.float32`.)"
      )
    return None
  if callable(value):
    raise TypeError(
      f"{fn}: `{arg}` must be {kind}, got a callable; a schedule is not accepted here: "
      "pass its value at the step you mean, e.g. `schedule(step)`."
    )
  if isinstance(value, (bool, np.bool_)) or not isinstance(
    value, (numbers.Real, np.ndarray, jax.Array)
  ):
    raise TypeError(f"{fn}: `{arg}` must be {kind}, got {describe(value)}.")
  if isinstance(value, (np.ndarray, jax.Array)):
    if value.shape != ():
      raise TypeError(f"{fn}: `{arg}` must be a scalar float, got shape {value.shape}.")
    if not (jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)):
      raise TypeError(f"{fn}: `{arg}` must be {kind}, got dtype {value.dtype}.")
  x = float(value)
  if not math.isfinite(x):
    bound = "" if low is None else f" and {_bound(low, low_inclusive)}"
    raise ValueError(f"{fn}: `{arg}` must be finite{bound}, got {x}{where}.")
  if low is not None and (x < low or (x == low and not low_inclusive)):
    raise ValueError(f"{fn}: `{arg}` must be {_bound(low, low_inclusive)}, got {x}{where}.")
  if high is not None and (x > high or (x == high and not high_inclusive)):
    bound = f"{'<=' if high_inclusive else '<'} {high:g}"
    raise ValueError(f"{fn}: `{arg}` must be {bound}, got {x}{where}{hint}.")
  return x


def check_concrete(value: Any, *, fn: str, arg: str, **bounds: Any) -> float:
  """:func:`check_number` for a value used in Python arithmetic: never traced."""
  x = check_number(value, fn=fn, arg=arg, concrete=True, **bounds)
  assert x is not None  # concrete=True raises on a traced value
  return x


def check_count(value: Any, *, fn: str, arg: str) -> int:
  """A positive integer (a Python or NumPy int, not a bool)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"{fn}: `{arg}` must be a positive int, got {describe(value)}.")
  if value <= 0:
    raise ValueError(f"{fn}: `{arg}` must be a positive int, got {value!r}.")
  return int(value)


#: Why a decay *rate* must stay below 1; the hint of :func:`check_rate`.
RATE_HINT = (
  ": it is the fraction of each weight removed per step, so a value >= 1 zeroes or flips the "
  "weights. For a PyTorch or Optax `weight_decay` (multiplied by the learning rate), write "
  "`decoupled_weight_decay(weight_decay=..., learning_rate=...)`; for an L2 coefficient, "
  "`rate=optaxdecay.l2_to_decay_rate(l2, learning_rate)`"
)

#: The same, for the product of the AdamW spelling ``weight_decay=, learning_rate=``.
PRODUCT_HINT = (
  ": the product is the fraction of each weight removed per step, so a value >= 1 zeroes or "
  "flips the weights. `learning_rate` is the optimizer's learning rate (e.g. 1e-3) and "
  "`weight_decay` the framework's coefficient (e.g. 0.1, PyTorch's and Optax's convention)"
)


def rate_hint(arg: str) -> str:
  """:data:`PRODUCT_HINT` for the AdamW spelling's product ``arg``, else :data:`RATE_HINT`."""
  return PRODUCT_HINT if "*" in arg else RATE_HINT


#: A per-step rate at or above this removes 1% of each weight per step (a timescale under 100
#: steps): more likely a framework's ``weight_decay`` than a rate (:func:`warn_per_step_rate`).
IMPLAUSIBLE_RATE = 1e-2


class PerStepRateWarning(UserWarning):
  """A per-step decay rate large enough to be a framework's ``weight_decay`` pasted as a rate.

  Raised (as a warning) by the functions that take a per-step ``rate``, when the rate times a
  leaf's multiplier is at least 1e-2 (under 100 steps of timescale). If that is the rate you
  mean, silence it with ``warnings.filterwarnings('ignore', category=od.PerStepRateWarning)``.
  """


#: The steps a schedule is sampled at to find its peak for :func:`warn_per_step_rate`.
PEAK_STEPS = np.asarray([0] + [2**k for k in range(21)], np.int32)


def peak(value: Any) -> float | None:
  """A concrete constant, or the largest value of a schedule at :data:`PEAK_STEPS` (``None``:
  traced, or a schedule that cannot be evaluated on an array of steps)."""
  if isinstance(value, jax.core.Tracer):
    return None
  if callable(value):
    try:
      values = np.asarray(value(jnp.asarray(PEAK_STEPS)), np.float64)
    except Exception:  # a schedule written for one scalar step: its step-0 check stands
      return None
    return float(values.max()) if values.shape == PEAK_STEPS.shape else None
  return float(np.asarray(value))


def user_stacklevel() -> int:
  """The ``stacklevel`` of the first frame outside optaxdecay and the libraries that call it
  (``optax.chain``'s ``init``, ``jax.jit``), for a warning raised by the caller of this."""
  frame: Any = sys._getframe(2)
  level = 2
  while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _LIBRARIES:
    frame, level = frame.f_back, level + 1
  return level


_LIBRARIES = frozenset({"optaxdecay", "optax", "jax", "flax", "equinox"})


def warn_per_step_rate(
  value: Any, *, fn: str, arg: str, multiplier: float = 1.0, where: str = ""
) -> None:
  """Warns (:class:`PerStepRateWarning`) if ``value * multiplier`` is an implausible per-step
  rate: at least :data:`IMPLAUSIBLE_RATE`, most likely a ``weight_decay`` pasted as a rate.

  ``value`` is a checked rate (a float, a schedule: its :func:`peak`, or traced: no warning);
  ``where`` names the leaf whose multiplier is used.
  """
  x = peak(value)
  if x is None or x * multiplier < IMPLAUSIBLE_RATE:
    return
  r = x * multiplier
  scaled = f" times the `mask` multiplier {multiplier:g}{where}" if multiplier != 1 else ""
  wd = "wd" if callable(value) else f"{x:g}"
  schedule = " (the schedule's peak)" if callable(value) else ""
  warnings.warn(
    f"{fn}: `{arg}`={x:g}{schedule}{scaled} removes {100 * r:.3g}% of each weight per step, a "
    f"timescale of {1 / r:.3g} steps. `{arg}` is the fraction removed per step, not a PyTorch "
    f"or Optax `weight_decay`: for AdamW's `weight_decay={wd}` with learning rate (schedule) "
    f"`lr`, write `optaxdecay.decoupled_weight_decay(weight_decay={wd}, learning_rate=lr)` (a "
    f"per-step rate of lr·{wd}). If you mean {x:g} per step, silence this with "
    "warnings.filterwarnings('ignore', category=optaxdecay.PerStepRateWarning).",
    PerStepRateWarning,
    stacklevel=user_stacklevel(),
  )


def check_scalar_or_schedule(
  value: Any,
  *,
  fn: str,
  arg: str,
  low_inclusive: bool = True,
  high: float | None = None,
  hint: str = "",
) -> float | None:
  """Raises if a constant (or a schedule's step-0 value) is out of range.

  The range is ``0 <= value < high`` (``0 < value`` if not ``low_inclusive``;
  no upper bound if ``high`` is ``None``); the value must be finite. A schedule
  is called once, at step 0, to check that it returns a scalar in range; its
  later values are checked only under :func:`optaxdecay.checked`.

  Returns:
    The constant, or the schedule's value at step 0, as a float (``None`` if
    traced).
  """
  if isinstance(value, bool) or value is None:
    raise TypeError(f"{fn}: `{arg}` must be a float or a schedule, got {describe(value)}.")
  where = ""
  if callable(value):
    try:
      value = value(jnp.zeros([], jnp.int32))
    except Exception as e:
      raise TypeError(
        f"{fn}: `{arg}` is callable, so it is used as a schedule "
        f"`step -> value`, but calling it with step 0 failed: {e!r}"
      ) from e
    where = " (the schedule's value at step 0)"
  try:
    return check_number(
      value, fn=fn, arg=arg, low_inclusive=low_inclusive, high=high, where=where, hint=hint
    )
  except TypeError as e:
    if isinstance(value, jax.core.Tracer):
      raise  # its message says where a traced value of the wrong dtype comes from
    raise TypeError(
      f"{fn}: `{arg}` must be a float or a schedule returning one; got {describe(value)}{where}."
    ) from e


def check_rate(value: Any, *, fn: str, arg: str) -> float | None:
  """:func:`check_scalar_or_schedule` for a decay rate: ``0 <= value < 1``."""
  return check_scalar_or_schedule(value, fn=fn, arg=arg, high=1.0, hint=RATE_HINT)


def check_bool(value: Any, *, fn: str, arg: str) -> bool:
  """A Python bool (not a NumPy bool, not an int)."""
  if not isinstance(value, bool):
    raise TypeError(f"{fn}: `{arg}` must be a bool, got {describe(value)}.")
  return value


def init_state(value: Any) -> optax.OptState:
  """``ScheduleState(0)`` for a schedule, ``EmptyState()`` for a constant."""
  if callable(value):
    return ScheduleState(count=jnp.zeros([], jnp.int32))
  return optax.EmptyState()


def current_value(value: Any, state: Any) -> tuple[Any, Any]:
  """The hyperparameter at this step, and the state for the next."""
  if callable(value):
    return value(state.count), ScheduleState(cast(jax.Array, optax.safe_increment(state.count)))
  return value, state


def is_static_zero(value: Any) -> bool:
  """A Python-number zero: the transform is then the identity, at no cost."""
  return isinstance(value, (int, float)) and value == 0


def combine(op: Callable[..., Any], *values: Any) -> optax.ScalarOrSchedule:
  """``op(*values)`` for constants, else the schedule ``count -> op(*values(count))``.

  When any value is a schedule, every value (constants included) is promoted
  to the default float type before ``op`` (float64 under ``jax_enable_x64``):
  a float32 schedule value times a Python float would otherwise round the
  result to float32, and a conversion would be exact only to float32 precision.
  """
  if not any(callable(v) for v in values):
    return op(*values)

  def schedule(count: Any) -> Any:
    dtype = jnp.result_type(float)
    return op(*(jnp.asarray(v(count) if callable(v) else v, dtype) for v in values))

  return schedule
