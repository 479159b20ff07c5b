"""TensorFlow Addons' ``DecoupledWeightDecayExtension`` optimizers (decay not x lr)."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  decay,
  momentum_trace,
)
from optaxdecay.compat._keras_scale import keras_adam_transform


def tfa_adamw(
  weight_decay: ScalarOrSchedule,
  learning_rate: ScalarOrSchedule = 0.001,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``tfa.optimizers.AdamW``: the decay is **not** multiplied by the learning rate.

  .. math::

    \theta \leftarrow \theta - \lambda_t\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
      \cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  TF-Addons' ``DecoupledWeightDecayExtension`` subtracts ``weight_decay *
  var`` before the base optimizer's step (here tf.keras' Adam, with epsilon
  hat). A learning-rate schedule does **not** reach the decay: TF-Addons
  asks users to schedule ``weight_decay`` themselves, so it is a float or a
  schedule here. :func:`keras_adamw_to_tfa_adamw` gives the TF-Addons decay
  that reproduces Keras' :math:`\eta_t\lambda`.

  Args:
    weight_decay: :math:`\lambda_t \in [0, 1)`, the fraction removed per step:
      a float or a schedule (required, as in TF-Addons).
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`; default ``1e-7``.
    mask: leaves that are decayed (TF-Addons' ``decay_var_list``); ``None``
      selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.tfa_adamw(weight_decay=0.01, learning_rate=0.1)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # -wd * w, whatever the learning rate
    Array([-0.02], dtype=float32)

  References:
    TF-Addons ``tensorflow_addons/optimizers/weight_decay_optimizers.py``
    (``DecoupledWeightDecayExtension``, ``AdamW``); tf.keras (v2) ``Adam``.
  """
  fn = "tfa_adamw"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(beta_1, fn=fn, arg="beta_1", high=1.0)
  _hparams.check_number(beta_2, fn=fn, arg="beta_2", high=1.0)
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")
  return optax.chain(
    keras_adam_transform(beta_1, beta_2, epsilon, amsgrad=False),
    optax.scale_by_learning_rate(learning_rate),
    decay(fn, "weight_decay", weight_decay, _selection.selection(mask, fn=fn)),
  )


def tfa_sgdw(
  weight_decay: ScalarOrSchedule,
  learning_rate: ScalarOrSchedule = 0.001,
  momentum: float = 0.0,
  nesterov: bool = False,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``tfa.optimizers.SGDW``: decay not ×lr; tf.keras momentum (lr inside the velocity).

  .. math::

    \theta \leftarrow \theta - \lambda_t\theta,\quad
    v_t = \mu v_{t-1} - \eta_t g_t,\quad
    \theta_{t+1} = \theta + \begin{cases}\mu v_t - \eta_t g_t & \text{Nesterov}\\
    v_t & \text{else}\end{cases}

  Args:
    weight_decay: :math:`\lambda_t \in [0, 1)`: a float or a schedule.
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    momentum: :math:`\mu \ge 0`.
    nesterov: tf.keras' Nesterov form.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.tfa_sgdw(weight_decay=0.01, learning_rate=0.1)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([1.0])}, tx.init(params), params)
    >>> updates['w']  # -wd * w - lr * g
    Array([-0.12], dtype=float32)

  References:
    TF-Addons ``weight_decay_optimizers.py`` (``SGDW``); tf.keras (v2) ``SGD``.
  """
  fn = "tfa_sgdw"
  _hparams.check_bool(nesterov, fn=fn, arg="nesterov")
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  return optax.chain(
    optax.scale_by_learning_rate(learning_rate),
    momentum_trace(momentum, nesterov),
    decay(fn, "weight_decay", weight_decay, _selection.selection(mask, fn=fn)),
  )
