r"""Other frameworks' optimizers and weight-decay conventions, reproduced exactly.

"weight_decay" names a different update in every framework: an L2 term added
to the gradient (PyTorch ``SGD``/``Adam``) or a decoupled shrink of the weights
(``AdamW``); multiplied by the learning rate (PyTorch, Keras, Optax), by the
learning rate's *ratio* to its initial value (Composer), by a schedule
multiplier only (the paper), or by nothing (TF-Addons); with Adam's epsilon
after the bias correction (PyTorch) or before it ("epsilon hat", Keras). Each
factory here returns an :class:`optax.GradientTransformation` that reproduces
one step of the named optimizer up to float rounding, built from
:func:`~optaxdecay.add_l2_to_grad`, :func:`~optaxdecay.decoupled_weight_decay`
and Optax pieces; the conventions Optax has no transform for have their own
``scale_by_torch_*`` / ``scale_by_keras_*`` (:func:`scale_by_torch_momentum`: PyTorch's
dampening with its undampened first step; :func:`scale_by_keras_adam`: epsilon hat;
:func:`scale_by_keras_adamax`; PyTorch's AMSGrad, Adagrad, NAdam, RAdam, Adafactor and Muon).

Notation: :math:`\eta_t` is the learning rate at step ``t`` (0-based: the
value a schedule returns for the ``t``-th update, like a PyTorch ``LambdaLR``
stepped once per optimizer step or a Keras ``LearningRateSchedule``),
:math:`\eta_0` its initial value, :math:`\lambda` the framework's
``weight_decay`` and :math:`g_t` the incoming gradient. Optax adds updates to
the parameters, so a descent step is :math:`-\eta_t\,u_t`.

Every factory takes ``mask=``: which leaves get the L2 term or the decay
(``None``, the frameworks' own default, selects all; see
:func:`~optaxdecay.bias_mask`). The ``*_to_*`` converters return the keyword
arguments of the target factory that give the same trajectory, and say in
their docstrings when that is exact; where no conversion is exact they raise.

One module per framework, re-exported here; ``CONTRIBUTING.md`` in the repository has the
map of the modules.
"""

from optaxdecay import _deprecation
from optaxdecay.compat._bitsandbytes import bnb_lion_coupled
from optaxdecay.compat._composer import composer_adamw, composer_lionw, composer_sgdw
from optaxdecay.compat._convert import (
  composer_adamw_to_torch_adamw,
  composer_lionw_to_paper_lion,
  keras_adamw_to_tfa_adamw,
  keras_sgd_to_torch_sgd,
  paper_adamw_to_torch_adamw,
  paper_lion_to_composer_lionw,
  paper_sgdw_to_keras_sgd,
  tfa_adamw_to_keras_adamw,
  torch_adamw_to_composer_adamw,
  torch_adamw_to_paper_adamw,
  torch_sgd_to_composer_sgdw,
  torch_sgd_to_keras_sgd,
)
from optaxdecay.compat._keras import (
  keras_adafactor,
  keras_adagrad,
  keras_adam,
  keras_adamax,
  keras_adamw,
  keras_lamb,
  keras_lion,
  keras_muon,
  keras_nadam,
  keras_rmsprop,
  keras_sgd,
)
from optaxdecay.compat._keras_scale import (
  ScaleByKerasAdafactorState,
  ScaleByKerasAdamState,
  ScaleByKerasAmsgradState,
  scale_by_keras_adafactor,
  scale_by_keras_adam,
  scale_by_keras_adamax,
  scale_by_keras_lamb,
  scale_by_keras_muon,
)
from optaxdecay.compat._moonlight import moonlight_muon
from optaxdecay.compat._paper import paper_adamw, paper_lion, paper_sgdw
from optaxdecay.compat._tfa import tfa_adamw, tfa_sgdw
from optaxdecay.compat._torch import (
  torch_adafactor,
  torch_adagrad,
  torch_adam,
  torch_adamax,
  torch_adamw,
  torch_muon,
  torch_nadam,
  torch_radam,
  torch_rmsprop,
  torch_sgd,
)
from optaxdecay.compat._torch_scale import (
  ScaleByTorchAdafactorState,
  ScaleByTorchAdagradState,
  ScaleByTorchAmsgradState,
  ScaleByTorchMomentumState,
  ScaleByTorchNadamState,
  scale_by_torch_adafactor,
  scale_by_torch_adagrad,
  scale_by_torch_amsgrad,
  scale_by_torch_momentum,
  scale_by_torch_muon,
  scale_by_torch_nadam,
  scale_by_torch_radam,
)

__all__ = [
  "ScaleByKerasAdafactorState",
  "ScaleByKerasAdamState",
  "ScaleByKerasAmsgradState",
  "ScaleByTorchAdafactorState",
  "ScaleByTorchAdagradState",
  "ScaleByTorchAmsgradState",
  "ScaleByTorchMomentumState",
  "ScaleByTorchNadamState",
  "bnb_lion_coupled",
  "composer_adamw",
  "composer_adamw_to_torch_adamw",
  "composer_lionw",
  "composer_lionw_to_paper_lion",
  "composer_sgdw",
  "keras_adafactor",
  "keras_adagrad",
  "keras_adam",
  "keras_adamax",
  "keras_adamw",
  "keras_adamw_to_tfa_adamw",
  "keras_lamb",
  "keras_lion",
  "keras_muon",
  "keras_nadam",
  "keras_rmsprop",
  "keras_sgd",
  "keras_sgd_to_torch_sgd",
  "moonlight_muon",
  "paper_adamw",
  "paper_adamw_to_torch_adamw",
  "paper_lion",
  "paper_lion_to_composer_lionw",
  "paper_sgdw",
  "paper_sgdw_to_keras_sgd",
  "scale_by_keras_adafactor",
  "scale_by_keras_adam",
  "scale_by_keras_adamax",
  "scale_by_keras_lamb",
  "scale_by_keras_muon",
  "scale_by_torch_adafactor",
  "scale_by_torch_adagrad",
  "scale_by_torch_amsgrad",
  "scale_by_torch_momentum",
  "scale_by_torch_muon",
  "scale_by_torch_nadam",
  "scale_by_torch_radam",
  "tfa_adamw",
  "tfa_adamw_to_keras_adamw",
  "tfa_sgdw",
  "torch_adafactor",
  "torch_adagrad",
  "torch_adam",
  "torch_adamax",
  "torch_adamw",
  "torch_adamw_to_composer_adamw",
  "torch_adamw_to_paper_adamw",
  "torch_muon",
  "torch_nadam",
  "torch_radam",
  "torch_rmsprop",
  "torch_sgd",
  "torch_sgd_to_composer_sgdw",
  "torch_sgd_to_keras_sgd",
]

# The state classes' names before 0.2 (each is now named for its ``scale_by_*``).
__getattr__ = _deprecation.renamed(
  __name__,
  {
    "TorchMomentumState": ("ScaleByTorchMomentumState", ScaleByTorchMomentumState),
    "TorchAdagradState": ("ScaleByTorchAdagradState", ScaleByTorchAdagradState),
    "TorchAdafactorState": ("ScaleByTorchAdafactorState", ScaleByTorchAdafactorState),
  },
)
