"""optaxdecay: is weight decay the same as L2 regularization? Settled in Optax.

Composable Optax transforms: :func:`add_l2_to_grad` (an L2 penalty's gradient,
before the optimizer), :func:`decoupled_weight_decay` (AdamW-style decay, after
it), masks (:func:`bias_mask`, :func:`decay_mask`) and the conversions between
the two (:func:`l2_to_decay_rate`, :func:`decay_rate_to_l2`). Test helpers live
in :mod:`optaxdecay.testing`; exact reproductions of PyTorch, Keras,
TF-Addons, Composer and the AdamW paper in :mod:`optaxdecay.compat`.
"""

from optaxdecay import compat, testing
from optaxdecay._hparams import ScheduleState
from optaxdecay.decay import decoupled_weight_decay
from optaxdecay.l2 import add_l2_to_grad
from optaxdecay.masks import BIAS_NAMES, bias_mask, decay_mask, leaf_name
from optaxdecay.reparam import decay_rate_to_l2, l2_to_decay_rate

__version__ = "0.1.0"

__all__ = [
  "BIAS_NAMES",
  "ScheduleState",
  "add_l2_to_grad",
  "bias_mask",
  "compat",
  "decay_mask",
  "decay_rate_to_l2",
  "decoupled_weight_decay",
  "l2_to_decay_rate",
  "leaf_name",
  "testing",
]
