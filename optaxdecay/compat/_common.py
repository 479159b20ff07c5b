"""Shared pieces of the reproductions: argument rules and builders each written once.

Every ``compat`` module builds its optimizers from these, so that a rule (Nesterov's
requirements, a pair of betas, "no momentum means no trace") has one wording everywhere.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _hparams, _selection
from optaxdecay._transforms import decay_transform

ScalarOrSchedule: TypeAlias = optax.ScalarOrSchedule


def check_betas(fn: str, betas: Any, *, one: bool = False, name: str = "betas") -> tuple[Any, Any]:
  """PyTorch's ``betas=(beta1, beta2)``, each in ``[0, 1)`` (``[0, 1]`` with ``one``: Lion).

  ``name`` is the argument as the caller spells it (``adam_betas`` in ``moonlight_muon``).
  """
  if not isinstance(betas, (tuple, list)) or len(betas) != 2:
    raise TypeError(f"{fn}: `{name}` must be a pair (beta1, beta2), got {betas!r}.")
  for i in (0, 1):
    _hparams.check_number(betas[i], fn=fn, arg=f"{name}[{i}]", high=1.0, high_inclusive=one)
  return betas[0], betas[1]


def check_torch_nesterov(fn: str, nesterov: bool, momentum: Any, dampening: Any) -> None:
  """PyTorch's rule: Nesterov momentum needs ``momentum > 0`` and no dampening."""
  _hparams.check_bool(nesterov, fn=fn, arg="nesterov")
  if nesterov and (is_zero(momentum) or not is_zero(dampening)):
    raise ValueError(f"{fn}: `nesterov=True` requires `momentum > 0` and `dampening == 0`.")


def maximize_sign(fn: str, maximize: Any) -> optax.GradientTransformation:
  """PyTorch's ``maximize=True``: the gradient is negated first (``optax.scale(-1)``)."""
  _hparams.check_bool(maximize, fn=fn, arg="maximize")
  return optax.scale(-1.0) if maximize else optax.identity()


def is_zero(value: Any) -> bool:
  """A concrete zero (Python or NumPy/JAX scalar, not traced)."""
  if value is None:
    return True
  if isinstance(value, jax.core.Tracer) or callable(value):
    return False
  return float(np.asarray(value)) == 0.0


def momentum_trace(momentum: Any, nesterov: bool = False) -> optax.GradientTransformation:
  """``optax.trace(momentum, nesterov)``, or the identity for a Python-number zero momentum.

  Only a Python number decides the structure: under ``optax.inject_hyperparams`` the
  momentum is an array (concrete at ``init``, traced under ``jit``), and the chain built at
  ``init`` must be the one ``update`` rebuilds.
  """
  if _hparams.is_static_zero(momentum):
    return optax.identity()
  return optax.trace(decay=momentum, nesterov=nesterov)


def scaled_schedule(alpha: float, schedule: ScalarOrSchedule) -> ScalarOrSchedule:
  """``alpha * schedule_t``: a base learning rate times a schedule multiplier (the paper)."""
  return _hparams.combine(lambda e: alpha * e, schedule)


def value_at_step0(fn: str, arg: str, lr: ScalarOrSchedule) -> Any:
  """The learning rate's value at step 0: ``lr`` itself or ``lr(0)``; must be > 0."""
  value = lr(jnp.zeros([], jnp.int32)) if callable(lr) else lr
  where = " (the schedule's value at step 0)" if callable(lr) else ""
  x = _hparams.check_number(value, fn=fn, arg=arg, low=None, where=where)
  if x is not None and x <= 0:
    raise ValueError(
      f"{fn}: `{arg}` must be > 0 at step 0 (got {x}): the conversion divides by "
      "the initial learning rate."
    )
  return x if x is not None else value


def decay(
  fn: str,
  what: str,
  rate: ScalarOrSchedule,
  selection: _selection.Selection,
  cautious: bool = False,
) -> optax.GradientTransformation:
  """``decoupled_weight_decay(rate, cautious=cautious)``, its errors naming ``fn`` and ``what``.

  ``rate`` is built from arguments ``fn`` checked itself, and ``selection`` is ``fn``'s checked
  ``mask``; only the product is new here.
  """
  _hparams.check_scalar_or_schedule(rate, fn=fn, arg=what)  # < 1 per leaf: in decay_transform
  return decay_transform(rate, selection, fn=fn, arg=what, cautious=cautious)


def keras_weight_decay(fn: str, weight_decay: float | None) -> float:
  """Keras' ``weight_decay``: ``None`` (its default) is no decay."""
  if weight_decay is None:
    return 0.0
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  return weight_decay


def lion_step(lr: ScalarOrSchedule, betas: tuple[Any, Any]) -> optax.GradientTransformation:
  """Lion's sign update ``-lr_t * sign(b1 m + (1 - b1) g)``, without a decay.

  Every Lion in use decays outside the sign (computed from the weights before the step, so
  before or after the update is the same); they differ only in the decay's rate.
  """
  b1, b2 = betas
  return optax.chain(optax.scale_by_lion(b1=b1, b2=b2), optax.scale_by_learning_rate(lr))


def check_moments(
  fn: str, b1: Any, b2: Any, eps: Any, *, names: tuple[str, str, str] = ("b1", "b2", "eps")
) -> None:
  """An Adam-like pair of decay rates, each in ``[0, 1)``, and an epsilon ``>= 0``."""
  _hparams.check_number(b1, fn=fn, arg=names[0], high=1.0)
  _hparams.check_number(b2, fn=fn, arg=names[1], high=1.0)
  _hparams.check_number(eps, fn=fn, arg=names[2])


def check_lion_betas(fn: str, b1: Any, b2: Any, *, names: tuple[str, str]) -> tuple[Any, Any]:
  """Lion's two betas, each in ``[0, 1]`` (``b1 = 1``: the update is the sign of the momentum)."""
  for name, value in zip(names, (b1, b2), strict=True):
    _hparams.check_number(value, fn=fn, arg=name, high=1.0, high_inclusive=True)
  return b1, b2


def init_adam_state(params: optax.Params) -> optax.ScaleByAdamState:
  """``optax.ScaleByAdamState`` with zero moments: the state of the Adam-like transforms here."""
  zeros = optax.tree.zeros_like(params)
  return optax.ScaleByAdamState(jnp.zeros([], jnp.int32), zeros, zeros)


#: The Newton-Schulz quintic's coefficients (Keller Jordan's): the default of ``torch.optim.Muon``
#: and of ``keras.optimizers.Muon``.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def check_muon(
  fn: str,
  momentum: Any,
  nesterov: Any,
  ns_coefficients: Any,
  eps: Any,
  ns_steps: Any,
  adjust_lr_fn: Any,
  *,
  coefficient_names: tuple[str, str, str] | None = None,
) -> None:
  """``torch.optim.Muon``'s argument rules; ``coefficient_names``: the caller's a, b, c."""
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0)
  _hparams.check_bool(nesterov, fn=fn, arg="nesterov")
  if not isinstance(ns_coefficients, (tuple, list)) or len(ns_coefficients) != 3:
    raise TypeError(f"{fn}: `ns_coefficients` must be three numbers (a, b, c).")
  names = coefficient_names or tuple(f"ns_coefficients[{i}]" for i in range(3))
  for name, value in zip(names, ns_coefficients, strict=True):
    _hparams.check_number(value, fn=fn, arg=name, low=None)
  _hparams.check_number(eps, fn=fn, arg="eps")
  if _hparams.check_count(ns_steps, fn=fn, arg="ns_steps") >= 100:
    raise ValueError(f"{fn}: `ns_steps` must be < 100 (as in PyTorch), got {ns_steps}.")
  if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
    raise ValueError(
      f"{fn}: `adjust_lr_fn` must be None, 'original' or 'match_rms_adamw', got {adjust_lr_fn!r}."
    )
