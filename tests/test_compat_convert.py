"""The converters between conventions are exact where they say so, and the conventions that are
not equivalent diverge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import optax
import pytest
from compat_helpers import (
  all_equivalent,
  diverge,
  equivalent,
  lr_factor,
  schedule,
  warmup,
)

from optaxdecay import compat


class Conversion(NamedTuple):
  """``target(**convert(**kwargs))`` must follow ``source(**kwargs)`` step for step, and
  ``source(**inverse(**converted))`` too where there is a way back."""

  source: Callable[..., optax.GradientTransformation]
  convert: Callable[..., dict[str, Any]]
  target: Callable[..., optax.GradientTransformation]
  kwargs: dict[str, Any]
  inverse: Callable[..., dict[str, Any]] | None = None
  tolerance: tuple[float, float] = (1e-5, 1e-6)  # rtol, atol


# Schedules wherever a converter follows one (a constant is the special case lr_factor == 1).
CONVERSIONS = {
  "torch_adamw-paper_adamw": Conversion(
    compat.torch_adamw, compat.torch_adamw_to_paper_adamw, compat.paper_adamw,
    {"lr": schedule(0.02), "weight_decay": 0.5}, compat.paper_adamw_to_torch_adamw,
  ),
  "torch_adamw-composer_adamw": Conversion(
    compat.torch_adamw, compat.torch_adamw_to_composer_adamw, compat.composer_adamw,
    {"lr": schedule(0.02), "weight_decay": 0.5}, compat.composer_adamw_to_torch_adamw,
  ),
  "keras_adamw-tfa_adamw": Conversion(
    compat.keras_adamw, compat.keras_adamw_to_tfa_adamw, compat.tfa_adamw,
    {"learning_rate": schedule(0.02), "weight_decay": 0.5},
  ),
  "tfa_adamw-keras_adamw": Conversion(
    compat.tfa_adamw, compat.tfa_adamw_to_keras_adamw, compat.keras_adamw,
    {"weight_decay": 0.01, "learning_rate": 0.02},
  ),
  "torch_sgd-keras_sgd-scheduled_decay": Conversion(
    compat.torch_sgd, compat.torch_sgd_to_keras_sgd, compat.keras_sgd,
    {"lr": schedule(0.05), "momentum": 0.0, "weight_decay": 0.1}, compat.keras_sgd_to_torch_sgd,
  ),
  "torch_sgd-keras_sgd-momentum": Conversion(
    compat.torch_sgd, compat.torch_sgd_to_keras_sgd, compat.keras_sgd,
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}, compat.keras_sgd_to_torch_sgd,
  ),
  "paper_sgdw-keras_sgd": Conversion(
    compat.paper_sgdw, compat.paper_sgdw_to_keras_sgd, compat.keras_sgd,
    {"alpha": 0.05, "b1": 0.9, "weight_decay": 0.005, "schedule_multiplier": lr_factor},
  ),
  "torch_sgd-composer_sgdw": Conversion(
    compat.torch_sgd, compat.torch_sgd_to_composer_sgdw, compat.composer_sgdw,
    {"lr": schedule(0.05), "weight_decay": 0.1},
  ),
  "paper_lion-composer_lionw": Conversion(
    compat.paper_lion, compat.paper_lion_to_composer_lionw, compat.composer_lionw,
    {"learning_rate": schedule(0.01), "b1": 0.9, "b2": 0.99, "weight_decay": 0.3},
    tolerance=(1e-6, 1e-7),  # a sign step: exact to rounding
  ),
  # lr starts at 0: Composer needs initial_lr, and the converter passes it on.
  "composer_lionw-paper_lion": Conversion(
    compat.composer_lionw, compat.composer_lionw_to_paper_lion, compat.paper_lion,
    {"lr": warmup(0.01), "betas": (0.9, 0.99), "weight_decay": 3e-3, "initial_lr": 0.01},
    tolerance=(1e-6, 1e-7),
  ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CONVERSIONS))
def test_every_converter_is_exact_both_ways(name):
  c = CONVERSIONS[name]
  converted = c.convert(**c.kwargs)
  txs = [c.source(**c.kwargs), c.target(**converted)]
  if c.inverse is not None:
    txs.append(c.source(**c.inverse(**converted)))
  rtol, atol = c.tolerance
  all_equivalent(*txs, rtol=rtol, atol=atol)


def test_the_lion_converters_scale_the_decay_by_the_initial_lr():
  """Composer's decay is eta_0 times the paper's: the numbers change, and keeping them is not
  the same optimizer."""
  paper = CONVERSIONS["paper_lion-composer_lionw"].kwargs
  assert compat.paper_lion_to_composer_lionw(**paper)["weight_decay"] == pytest.approx(0.01 * 0.3)
  composer = CONVERSIONS["composer_lionw-paper_lion"].kwargs
  assert compat.composer_lionw_to_paper_lion(**composer)["weight_decay"] == pytest.approx(0.3)
  same = dict(lr=schedule(0.01), betas=(0.9, 0.99), weight_decay=0.3)
  diverge(compat.composer_lionw(**same), compat.paper_lion(**paper))


def test_keras_adam_weight_decay_equals_keras_adamw():
  equivalent(compat.keras_adam(0.02, weight_decay=0.5), compat.keras_adamw(0.02, 0.5))


def test_torch_adamw_equals_optax_adamw():
  lr = schedule(0.02)
  equivalent(compat.torch_adamw(lr, weight_decay=0.5), optax.adamw(lr, weight_decay=0.5))


def test_works_under_inject_hyperparams():
  tx = optax.inject_hyperparams(compat.torch_adamw)(lr=0.02, weight_decay=0.5)
  equivalent(tx, compat.torch_adamw(0.02, weight_decay=0.5))


def test_not_equivalent_torch_adam_l2_vs_torch_adamw():
  diverge(compat.torch_adam(0.02, weight_decay=0.5), compat.torch_adamw(0.02, weight_decay=0.5))


def test_not_equivalent_torch_sgd_vs_keras_sgd_with_momentum_and_decay():
  diverge(
    compat.torch_sgd(0.05, momentum=0.9, weight_decay=0.1),
    compat.keras_sgd(0.05, momentum=0.9, weight_decay=0.1),
  )


def test_not_equivalent_torch_vs_keras_momentum_under_a_schedule():
  """No decay at all: only where the learning rate sits (outside/inside the buffer)."""
  diverge(compat.torch_sgd(schedule(0.05), momentum=0.9), compat.keras_sgd(schedule(0.05), 0.9))


def test_not_equivalent_torch_adamw_vs_keras_adamw_epsilon():
  diverge(
    compat.torch_adamw(0.02, eps=1e-2, weight_decay=0.5),
    compat.keras_adamw(0.02, weight_decay=0.5, epsilon=1e-2),
  )


def test_not_equivalent_keras_adamw_vs_tfa_adamw_unscheduled_decay():
  lr = schedule(0.02)
  diverge(compat.keras_adamw(lr, weight_decay=0.5), compat.tfa_adamw(0.02 * 0.5, lr))


def test_not_equivalent_torch_adamw_vs_paper_adamw_same_numbers():
  diverge(compat.torch_adamw(0.02, weight_decay=0.5), compat.paper_adamw(0.02, weight_decay=0.5))


def test_not_equivalent_torch_adamw_vs_composer_adamw_same_numbers():
  diverge(
    compat.torch_adamw(0.02, weight_decay=0.01),
    compat.composer_adamw(0.02, betas=(0.9, 0.999), weight_decay=0.01),
  )


def test_not_equivalent_torch_sgd_l2_vs_composer_sgdw_with_momentum():
  kw = compat.torch_sgd_to_composer_sgdw(0.05, weight_decay=0.1)
  diverge(
    compat.torch_sgd(0.05, momentum=0.9, weight_decay=0.1),
    compat.composer_sgdw(momentum=0.9, **kw),
  )


def test_not_equivalent_paper_sgdw_vs_composer_sgdw_under_a_schedule():
  """lr inside the momentum (paper) vs outside (Composer/PyTorch)."""
  diverge(
    compat.paper_sgdw(0.05, 0.9, weight_decay=0.0, schedule_multiplier=lr_factor),
    compat.composer_sgdw(schedule(0.05), momentum=0.9),
  )


def test_not_equivalent_tfa_sgdw_vs_keras_sgd_same_numbers():
  diverge(compat.tfa_sgdw(0.1, 0.05, momentum=0.9), compat.keras_sgd(0.05, 0.9, weight_decay=0.1))


def test_not_equivalent_torch_dampening_first_step():
  """PyTorch's undampened first buffer is not optax.ema-style dampening."""
  diverge(
    optax.chain(compat.scale_by_torch_momentum(0.9, dampening=0.5), optax.scale(-0.05)),
    optax.chain(optax.trace(0.9), optax.scale(0.5), optax.scale(-0.05)),
  )
