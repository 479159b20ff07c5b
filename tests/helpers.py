"""The one table of the transforms under test, and of the optimizers built on them.

Its rows are the leafwise transforms (every way of building one: L2, decoupled, cautious,
proximal, toward an anchor, the ``weight_decay`` spelling) and, for the selection matrix, the
optimizers whose update on a zero gradient is their decay alone (``fused_adamw`` and one
``compat`` optimizer per convention: torch AdamW, Keras AdamW, torch SGD + L2); the other
``compat`` optimizers are checked against their frameworks in ``tests/test_compat_*.py``. Each
row says how to build the entry point with its coefficient ``c`` (``row.make(c, mask=...)``),
what it does to one selected leaf ``w`` — its leaf rule on any incoming update ``u`` (the
leafwise transforms), and its update on a zero gradient (every row) — and how it is named in
errors. ``tests/test_transforms.py`` and ``tests/test_selection.py`` run every leafwise row,
``tests/test_conformance.py`` every row over the zoo of parameter trees and the Optax wrappers:
adding a transform is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

import optaxdecay as od
from optaxdecay import compat

#: The coefficients the rows are built with: exact in binary, large enough to see.
RATE, L2, LR, WD = 0.125, 0.25, 0.5, 0.25
EPS = 1e-3  # Adam's epsilon, representable in float16 (1e-8 underflows: 0/0 on a zero gradient)
#: ``anchor=ZEROS`` in ``kwargs``: the row decays toward an anchor of zeros built from the params.
ZEROS = "zeros"


class Row(NamedTuple):
  """One entry point. ``kwargs`` holds all its arguments but ``mask``, the coefficient included.

  Attributes:
    factory: the public function.
    arg: the name of the coefficient the rows scale (what ``inject_hyperparams`` and ``vmap``
      vary).
    kwargs: every argument but ``mask``.
    zero_grad: ``(w, c) -> u``, the update of a selected leaf ``w`` on a zero gradient.
    rule: ``(u, w, c) -> u'`` on any incoming update, for a leafwise transform; ``None`` for a
      whole optimizer (its update depends on its state).
    upper: the coefficient must stay below this (the per-step rate it gives: ``< 1``).
    static: the arguments ``inject_hyperparams`` must not inject.
  """

  factory: Callable[..., Any]
  arg: str
  kwargs: dict[str, Any]
  zero_grad: Callable[[Any, Any], Any]
  rule: Callable[[Any, Any, Any], Any] | None = None
  upper: float | None = None
  static: tuple[str, ...] = ("mask",)

  @property
  def fn(self) -> str:
    """The name the entry point's errors carry."""
    return self.factory.__name__

  @property
  def leafwise(self) -> bool:
    """A transform with a leaf rule that needs nothing but ``c`` and ``mask`` to build."""
    return self.rule is not None and self.kwargs.get("anchor") != ZEROS

  def make(self, c: Any, **overrides: Any) -> Any:
    """The entry point with coefficient ``c`` (``overrides``: ``mask=`` and other arguments)."""
    return self.factory(**{**self.kwargs, self.arg: c, **overrides})


def _cautious(u: Any, w: Any, c: Any) -> Any:
  return u - c * jnp.where(jnp.sign(u) * jnp.sign(w) <= 0, w, 0.0)


def _adamw_like(w: Any, c: Any) -> Any:
  return -LR * c * w  # Adam of a zero gradient is zero: what is left is the decay, -lr * wd * w


ROWS: dict[str, Row] = {
  "add_l2_to_grad": Row(
    od.add_l2_to_grad, "l2", {"l2": L2}, lambda w, c: c * w, lambda u, w, c: u + c * w
  ),
  "decoupled_weight_decay": Row(
    od.decoupled_weight_decay, "rate", {"rate": RATE}, lambda w, c: -c * w,
    lambda u, w, c: u - c * w, upper=1.0,
  ),
  # PyTorch's and Optax's convention: the per-step rate is learning_rate * weight_decay.
  "decoupled_weight_decay-wd": Row(
    od.decoupled_weight_decay, "weight_decay", {"weight_decay": WD, "learning_rate": LR},
    lambda w, c: -LR * c * w, lambda u, w, c: u - LR * c * w, upper=1.0 / LR,
  ),
  # A zero update moves no coordinate away from zero: cautious decay decays every one.
  "cautious": Row(
    od.decoupled_weight_decay, "rate", {"rate": RATE, "cautious": True}, lambda w, c: -c * w,
    _cautious, upper=1.0,
  ),
  "proximal_weight_decay": Row(
    od.proximal_weight_decay, "rate", {"rate": RATE}, lambda w, c: -c * w / (1 + c),
    lambda u, w, c: (u - c * w) / (1 + c),
  ),
  # Toward an anchor of zeros: the plain decay again, through the anchor's state.
  "anchor": Row(
    od.decoupled_weight_decay, "rate", {"rate": RATE, "anchor": ZEROS}, lambda w, c: -c * w,
    lambda u, w, c: u - c * w, upper=1.0, static=("mask", "anchor"),
  ),
  "fused_adamw": Row(
    od.fused_adamw, "weight_decay", {"learning_rate": LR, "weight_decay": WD, "eps": EPS},
    _adamw_like,
  ),
  "torch_adamw": Row(
    compat.torch_adamw, "weight_decay", {"lr": LR, "weight_decay": WD, "eps": EPS}, _adamw_like
  ),
  "keras_adamw": Row(
    compat.keras_adamw, "weight_decay", {"learning_rate": LR, "weight_decay": WD, "epsilon": EPS},
    _adamw_like,
  ),
  # Coupled L2 through plain SGD: the same -lr * wd * w (the SGD equivalence).
  "torch_sgd": Row(compat.torch_sgd, "weight_decay", {"lr": LR, "weight_decay": WD}, _adamw_like),
}  # fmt: skip

#: The rows whose generic behaviour (masks, schedules, wrappers, errors) the unit tests run.
LEAFWISE = [name for name, row in ROWS.items() if row.leafwise]
#: The rows that are whole optimizers built on a transform (Adam's state: not on Python floats).
OPTIMIZERS = [name for name, row in ROWS.items() if row.rule is None]
