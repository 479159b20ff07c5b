"""optaxdecay: is weight decay the same as L2 regularization? Settled in Optax.

Composable Optax transforms: :func:`add_l2_to_grad` (an L2 penalty's gradient,
before the optimizer), :func:`decoupled_weight_decay` (AdamW-style decay, after
it), masks (:func:`bias_mask`, :func:`decay_mask`, :func:`decay_multipliers`) and
the conversions between the two (:func:`l2_to_decay_rate`,
:func:`decay_rate_to_l2`); :func:`checked` adds run-time range checks. Decay variants
(cautious: ``decoupled_weight_decay(..., cautious=True)``,
:func:`proximal_weight_decay`) and rules that set the decay
(:func:`corrected_decay_rate`, :func:`normalized_weight_decay`,
:func:`rate_from_timescale`) go beyond AdamW; :func:`fused_adamw` is a
single-pass AdamW step for CPU. Test helpers live in :mod:`optaxdecay.testing`,
inspection tools in :mod:`optaxdecay.diagnostics`, and exact reproductions of
PyTorch, Keras, TF-Addons, Composer and the AdamW paper in
:mod:`optaxdecay.compat`.

Each public name is re-exported here from one private module per idea;
``CONTRIBUTING.md`` in the repository has the map of the modules.
"""

from optaxdecay import compat, diagnostics, testing
from optaxdecay._anchor import AnchorState
from optaxdecay._checked import checked
from optaxdecay._fused import FusedAdamW, fused_adamw
from optaxdecay._hparams import PerStepRateWarning, ScheduleState
from optaxdecay._masks import BIAS_NAMES, bias_mask, decay_mask, decay_multipliers, leaf_name
from optaxdecay._rates import (
  corrected_decay_rate,
  decay_rate_to_l2,
  l2_to_decay_rate,
  normalized_weight_decay,
  rate_from_timescale,
  timescale_from_rate,
)
from optaxdecay._rounding import apply_updates_stochastic
from optaxdecay._transforms import add_l2_to_grad, decoupled_weight_decay, proximal_weight_decay

__version__ = "0.1.0"

__all__ = [
  "BIAS_NAMES",
  "AnchorState",
  "FusedAdamW",
  "PerStepRateWarning",
  "ScheduleState",
  "add_l2_to_grad",
  "apply_updates_stochastic",
  "bias_mask",
  "checked",
  "compat",
  "corrected_decay_rate",
  "decay_mask",
  "decay_multipliers",
  "decay_rate_to_l2",
  "decoupled_weight_decay",
  "diagnostics",
  "fused_adamw",
  "l2_to_decay_rate",
  "leaf_name",
  "normalized_weight_decay",
  "proximal_weight_decay",
  "rate_from_timescale",
  "testing",
  "timescale_from_rate",
]
