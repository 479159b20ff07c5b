"""Run-time range checks for values known only under ``jit``: :func:`checked`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import jax.numpy as jnp
import optax
from jax.experimental import checkify

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


def checked(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
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

  Args:
    tx: any gradient transformation.

  Returns:
    ``tx`` with the same ``init`` and state, whose ``update`` traces the checks.

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

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, optax.OptState]:
    with _enabled():
      return optax.with_extra_args_support(tx).update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)
