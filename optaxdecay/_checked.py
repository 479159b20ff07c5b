"""Run-time range checks for values known only under ``jit``: :func:`checked`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax.numpy as jnp
import optax
from jax.experimental import checkify

from optaxdecay import _hparams

_STATE = threading.local()


def active() -> bool:
  """Whether a :func:`checked` transform's ``update`` is being traced or run now."""
  return getattr(_STATE, "depth", 0) > 0


@contextlib.contextmanager
def _enabled() -> Iterator[None]:
  _STATE.depth = getattr(_STATE, "depth", 0) + 1
  try:
    yield
  finally:
    _STATE.depth -= 1


def check_range(value: Any, *, fn: str, arg: str, high: float | None) -> None:
  """Under :func:`checked`, a ``checkify`` check that ``0 <= value (< high)`` and finite.

  Outside :func:`checked` this does nothing and adds nothing to the program.
  """
  if not active():
    return
  x = jnp.asarray(value)
  ok = jnp.isfinite(x) & (x >= 0)
  bound = ">= 0"
  if high is not None:
    ok = ok & (x < high)
    bound = f">= 0 and < {high:g}"
  checkify.check(
    jnp.all(ok), f"{fn}: `{arg}` must be finite and {bound} at every step; got {{x}}.", x=x
  )


def checked(tx: Any) -> Any:
  r"""Adds run-time range checks to every optaxdecay transform inside ``tx``.

  Constants are checked when a transform is built, and a schedule at step 0.
  Values that exist only inside a compiled step are not: an
  ``optax.inject_hyperparams`` value set under ``jit`` (``rate=1.5`` flips the
  weights), a vmapped rate, a schedule after step 0, a ``rate`` times a
  per-leaf multiplier. Under ``checked``, each optaxdecay transform in ``tx``
  (however deep in ``chain``, ``inject_hyperparams``, ``masked`` or
  ``MultiSteps``) adds a ``jax.experimental.checkify`` check that its
  coefficient :math:`c_t` is finite and in range at every step
  (:math:`0 \le r_t < 1` for a decay rate, :math:`\lambda_t \ge 0` for L2).

  Functionalize the checks with ``checkify.checkify`` around the jitted step
  and raise them with ``err.throw()``; a ``checked`` update traced under
  ``jit`` without ``checkify`` fails with JAX's "not functionalized" error.
  Without ``checked`` nothing is added to the program: zero cost.

  :func:`~optaxdecay.fused_adamw` is checked too (its ``learning_rate``,
  ``weight_decay`` and ``l2``, in ``update`` and in ``step``): ``checked`` of a
  :class:`~optaxdecay.FusedAdamW` is a ``FusedAdamW`` whose ``update``,
  ``step`` and ``sharded_step`` trace the checks.

  Args:
    tx: any gradient transformation, or a :class:`~optaxdecay.FusedAdamW`.

  Returns:
    ``tx`` with the same ``init`` and state, whose ``update`` traces the checks
    (a ``GradientTransformationExtraArgs``; for a ``FusedAdamW``, a ``FusedAdamW``).

  Raises:
    TypeError: ``tx`` is not a gradient transformation.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> from jax.experimental import checkify
    >>> tx = od.checked(optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.1))
    >>> params = {'w': jnp.ones(2)}
    >>> state = tx.init(params)
    >>> state.hyperparams['rate'] = jnp.asarray(1.5)  # set at run time
    >>> step = checkify.checkify(jax.jit(lambda s: tx.update(params, s, params)))
    >>> err, _ = step(state)
    >>> print(err.get())  # doctest: +ELLIPSIS
    decoupled_weight_decay: `rate` must be finite and >= 0 and < 1 at every step; got 1.5...
  """

  if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
    hint = ""
    if isinstance(tx, tuple) and len(tx) == 2 and all(map(callable, tx)):
      hint = ": wrap the pair as optax.GradientTransformation(init, update)"
    raise TypeError(
      "checked: `tx` must be an optax.GradientTransformation (a named tuple with `init` and "
      f"`update`), got {_hparams.describe(tx)}{hint}."
    )
  plain = (optax.GradientTransformation, optax.GradientTransformationExtraArgs)
  if type(tx) in plain or not hasattr(tx, "_replace"):
    update = _with_checks(optax.with_extra_args_support(tx).update)
    return optax.GradientTransformationExtraArgs(tx.init, update)
  # Any other named tuple (fused_adamw's, with its `step`): the same type, every function in it
  # but `init` traced with the checks on, its other fields as they are.
  fields = [f for f in tx._fields if f != "init" and callable(getattr(tx, f))]
  return tx._replace(**{f: _with_checks(getattr(tx, f)) for f in fields})


def _with_checks(fn: Callable[..., Any]) -> Callable[..., Any]:
  """``fn`` run with the range checks of :func:`checked` switched on."""

  def run(*args: Any, **kwargs: Any) -> Any:
    with _enabled():
      return fn(*args, **kwargs)

  return run
