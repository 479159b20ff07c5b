"""Calls of every public name, as users write them; ``mypy`` checks this file in CI.

Nothing here runs under pytest (no ``test_`` prefix): it exists to be type-checked.
``tests/test_typing.py`` also checks that a wrong argument type in such a call is reported.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import optaxdecay as od
from optaxdecay import compat, diagnostics, testing

params = {"Dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)}}
lr = optax.cosine_decay_schedule(1e-3, 100)

txs: list[optax.GradientTransformation] = [
  od.add_l2_to_grad(1e-4, mask=od.bias_mask),
  od.decoupled_weight_decay(od.l2_to_decay_rate(1e-4, lr), mask=od.bias_mask, cautious=True),
  od.proximal_weight_decay(1e-3, mask=od.decay_multipliers([(".*/kernel", 1.0)])),
  od.checked(optax.chain(optax.adam(lr), od.decoupled_weight_decay(1e-4))),
  compat.torch_adamw(lr=1e-3, weight_decay=1e-2, mask=od.bias_mask),
  compat.keras_adamw(learning_rate=1e-3, weight_decay=0.004),
  compat.paper_adamw(alpha=1e-3, weight_decay=1e-4, schedule_multiplier=1.0),
]
for tx in txs:
  state = tx.init(params)
  updates, state = tx.update(params, state, params)

mask_fn = od.decay_mask(
  exclude=od.BIAS_NAMES, exclude_regex=("LayerNorm",), min_ndim=2, stacked=[("layers/", 1)]
)
mask = mask_fn(params)
name: str | None = od.leaf_name(("Dense_0", "kernel"))

opt: od.FusedAdamW = od.fused_adamw(1e-3, 0.9, 0.999, 1e-8, 0.0, None, 1e-4, od.bias_mask)
new_params, opt_state = opt.step(params, params, opt.init(params))

rates = [
  od.decay_rate_to_l2(1e-5, 0.1),
  od.corrected_decay_rate(0.1, lr, max_learning_rate=1e-3),
  od.normalized_weight_decay(0.05, batch_size=128, dataset_size=50_000, epochs=200),
  od.rate_from_timescale(20.0, dataset_size=50_000, batch_size=100),
  od.timescale_from_rate(1e-4, dataset_size=50_000, batch_size=100),
]

report: diagnostics.MaskDescription = diagnostics.describe_mask(params, mask=od.bias_mask)
precision = diagnostics.decay_precision_report(params, rate=1e-5)
traj = testing.trajectory(optax.sgd(0.1), params, lambda p, step: p, steps=3)
div: testing.Divergence = testing.compare(traj, traj, rtol=1e-6, atol=0.0)
state_count: jax.Array = od.ScheduleState(count=jnp.zeros([], jnp.int32)).count
