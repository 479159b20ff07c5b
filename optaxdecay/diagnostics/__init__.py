"""Diagnostics that make the decay visible: what is decayed, how strongly, and whether at all.

* :func:`describe_mask` -- which parameters a mask decays, as a table.
* :func:`effective_l2_strength` -- how strongly an L2 penalty actually acts on
  each weight once Adam's preconditioner has divided it by
  :math:`\\sqrt{\\hat v}+\\epsilon`: weights with a large gradient history are
  regularized less.
* :func:`decay_precision_report` -- which decay steps are lost to rounding in
  the params' dtype (a typical AdamW step is a no-op on ``bfloat16`` weights).
* :func:`audit` -- any optimizer as a black box: per leaf, whether its update
  decays the weights, at what per-step rate, and whether that rate is coupled to
  the gradients' history (L2 inside an adaptive optimizer) or decoupled.
* :func:`track_rotation` / :func:`rotation_report` -- a transform that records how
  fast each neuron's weight vector turns during training, and its report;
  :func:`equilibrium` -- the angle decay drives it to.

Every report is a small frozen dataclass with ``rows`` (one ``NamedTuple`` per
leaf, for a DataFrame or a plot) and a ``__str__`` that prints a table.
"""

from optaxdecay.diagnostics._audit import AuditReport, AuditRow, audit
from optaxdecay.diagnostics._equilibrium import Equilibrium, equilibrium
from optaxdecay.diagnostics._l2 import L2StrengthReport, L2StrengthRow, effective_l2_strength
from optaxdecay.diagnostics._mask import MaskDescription, MaskRow, describe_mask
from optaxdecay.diagnostics._precision import PrecisionReport, PrecisionRow, decay_precision_report
from optaxdecay.diagnostics._rotation import (
  RotationReport,
  RotationRow,
  RotationState,
  rotation_report,
  track_rotation,
)

__all__ = [
  "AuditReport",
  "AuditRow",
  "Equilibrium",
  "L2StrengthReport",
  "L2StrengthRow",
  "MaskDescription",
  "MaskRow",
  "PrecisionReport",
  "PrecisionRow",
  "RotationReport",
  "RotationRow",
  "RotationState",
  "audit",
  "decay_precision_report",
  "describe_mask",
  "effective_l2_strength",
  "equilibrium",
  "rotation_report",
  "track_rotation",
]
