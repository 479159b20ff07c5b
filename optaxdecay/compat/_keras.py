"""Keras 3 optimizers: decoupled decay in the base class, ``epsilon hat`` Adam, Lion."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay._rates import lr_times
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  check_lion_betas,
  decay,
  keras_weight_decay,
  lion,
  momentum_trace,
)
from optaxdecay.compat._scale import scale_by_keras_adam


def keras_sgd(
  learning_rate: ScalarOrSchedule = 0.01,
  momentum: float = 0.0,
  nesterov: bool = False,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.SGD`` (Keras 3): decoupled decay ×lr, lr inside the velocity.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    v_t = \mu v_{t-1} - \eta_t g_t,\quad
    \theta_{t+1} = \theta + \begin{cases}\mu v_t - \eta_t g_t & \text{Nesterov}\\
    v_t & \text{else}\end{cases}

  Keras decays every optimizer's weights *before* its step, by
  :math:`\eta_t\lambda` (``variable - variable * wd * lr``): for SGD too, so
  Keras' ``SGD(weight_decay=λ)`` is **not** PyTorch's ``SGD(weight_decay=λ)``
  once there is momentum. The velocity accumulates :math:`\eta_t g_t`, so
  with a learning-rate schedule it also differs from PyTorch's momentum
  (which multiplies the buffer by the current :math:`\eta_t`). Built as
  ``chain(scale_by_learning_rate(lr), optax.trace(momentum, nesterov),
  decoupled_weight_decay(l2_to_decay_rate(weight_decay, lr)))``.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (Keras'
      ``LearningRateSchedule``, called with ``iterations``, 0 on the first
      step). Default ``0.01``.
    momentum: :math:`\mu \in [0, 1]`.
    nesterov: Keras' Nesterov form (ignored without momentum, as in Keras).
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``
      removes some); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``learning_rate *
      weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_sgd(learning_rate=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([1.0])}, tx.init(params), params)
    >>> updates['w']  # -lr * wd * w - lr * g
    Array([-0.2], dtype=float32)

  References:
    ``keras/src/optimizers/sgd.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  fn = "keras_sgd"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0, high_inclusive=True)
  wd = keras_weight_decay(fn, weight_decay)
  return optax.chain(
    optax.scale_by_learning_rate(learning_rate),
    momentum_trace(momentum, nesterov),
    decay(fn, "learning_rate * weight_decay", lr_times(wd, learning_rate), mask),
  )


def keras_adam(
  learning_rate: ScalarOrSchedule = 0.001,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Adam`` (Keras 3): epsilon hat; ``weight_decay`` is decoupled.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
      \cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  In Keras 3 ``Adam(weight_decay=λ)`` is the same update as
  ``AdamW(weight_decay=λ)`` (the decay lives in the base optimizer), unlike
  PyTorch's ``Adam(weight_decay)``. See :func:`keras_adamw` and
  :func:`scale_by_keras_adam`.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`; Keras' default ``1e-7``.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``learning_rate *
      weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adam(learning_rate=0.1, epsilon=0.0)
    >>> params = {'w': jnp.array([1.0])}
    >>> updates, _ = tx.update({'w': jnp.array([3.0])}, tx.init(params), params)
    >>> updates['w']
    Array([-0.1], dtype=float32)

  References:
    ``keras/src/optimizers/adam.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  return _keras_adam("keras_adam", learning_rate, beta_1, beta_2, epsilon, weight_decay, mask)


def _keras_adam(
  fn: str,
  learning_rate: ScalarOrSchedule,
  beta_1: float,
  beta_2: float,
  epsilon: float,
  weight_decay: float | None,
  mask: _selection.MaskArg,
) -> optax.GradientTransformation:
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  wd = keras_weight_decay(fn, weight_decay)
  _hparams.check_number(beta_1, fn=fn, arg="beta_1", high=1.0)
  _hparams.check_number(beta_2, fn=fn, arg="beta_2", high=1.0)
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")
  return optax.chain(
    scale_by_keras_adam(beta_1, beta_2, epsilon),
    optax.scale_by_learning_rate(learning_rate),
    decay(fn, "learning_rate * weight_decay", lr_times(wd, learning_rate), mask),
  )


def keras_adamw(
  learning_rate: ScalarOrSchedule = 0.001,
  weight_decay: float = 0.004,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.AdamW`` (Keras 3): decay ×lr before the step; epsilon hat.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
      \cdot\frac{m_t}{\sqrt{v_t} + \hat\epsilon}

  The decay is the same as PyTorch's ``AdamW`` (:math:`\eta_t\lambda`; the
  Adam step does not depend on :math:`\theta`, so "before" or "after" the
  step is the same update), but the Adam direction uses epsilon hat
  (:func:`scale_by_keras_adam`), so the two differ whenever :math:`\epsilon`
  is not negligible against :math:`\sqrt{\hat v_t}`. Defaults are Keras':
  ``weight_decay=0.004``, ``epsilon=1e-7``.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule. Default ``0.001``.
    weight_decay: :math:`\lambda \ge 0`.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\hat\epsilon \ge 0`.
    mask: leaves that are decayed (Keras' ``exclude_from_weight_decay``);
      ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range; ``learning_rate *
      weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adamw(learning_rate=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']
    Array([-0.1], dtype=float32)

  References:
    ``keras/src/optimizers/adamw.py``, ``adam.py`` and ``base_optimizer.py``.
  """
  if weight_decay is None:
    raise TypeError("keras_adamw: `weight_decay` must be a float, got None.")
  return _keras_adam("keras_adamw", learning_rate, beta_1, beta_2, epsilon, weight_decay, mask)


def keras_lion(
  learning_rate: ScalarOrSchedule = 1e-3,
  beta_1: float = 0.9,
  beta_2: float = 0.99,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Lion`` (Keras 3): the base class' decay ×lr, then the sign update.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    \theta_{t+1} = \theta - \eta_t\,\mathrm{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t),\quad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

  The same update as the Lion paper's and ``optax.lion``'s (:func:`paper_lion`) with the same
  :math:`\lambda`. Keras refuses ``beta_1 = 0``; so does this.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (called with ``iterations``).
    beta_1: :math:`\beta_1 \in (0, 1]`.
    beta_2: :math:`\beta_2 \in [0, 1]`.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_lion(learning_rate=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([3.0])}, tx.init(params), params)
    >>> u['w']  # -lr * wd * w - lr * sign(g)
    Array([-0.2], dtype=float32)

  References:
    ``keras/src/optimizers/lion.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  fn = "keras_lion"
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  _hparams.check_number(beta_1, fn=fn, arg="beta_1", low=0.0, low_inclusive=False)
  betas = check_lion_betas(fn, beta_1, beta_2, names=("beta_1", "beta_2"))
  wd = keras_weight_decay(fn, weight_decay)
  return lion(
    fn, learning_rate, betas, "learning_rate * weight_decay", lr_times(wd, learning_rate), mask
  )
