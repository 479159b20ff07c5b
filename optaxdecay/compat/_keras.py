"""Keras 3 optimizers: one decoupled decay (and gradient accumulation) in the base class."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import optax

from optaxdecay import _hparams, _selection, _tree
from optaxdecay._rates import lr_times
from optaxdecay.compat._common import (
  ScalarOrSchedule,
  check_moments,
  check_muon,
  decay,
  keras_weight_decay,
  lion_step,
  momentum_trace,
)
from optaxdecay.compat._keras_scale import (
  check_keras_adafactor,
  keras_adafactor_transform,
  keras_adam_transform,
  keras_adamax_transform,
  keras_lamb_transform,
  keras_muon_transform,
)
from optaxdecay.compat._torch_scale import torch_nadam_transform


def keras_sgd(
  learning_rate: ScalarOrSchedule = 0.01,
  momentum: float = 0.0,
  nesterov: bool = False,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
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
    gradient_accumulation_steps: Keras' gradient accumulation: update on every ``n``-th call
      with the mean gradient (``optax.MultiSteps``, with the schedule on Keras' call count).

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
  _hparams.check_bool(nesterov, fn=fn, arg="nesterov")
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0, high_inclusive=True)

  def step(lr: ScalarOrSchedule, _: _Decay) -> optax.GradientTransformation:
    return optax.chain(optax.scale_by_learning_rate(lr), momentum_trace(momentum, nesterov))

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)


def keras_adam(
  learning_rate: ScalarOrSchedule = 0.001,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  amsgrad: bool = False,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
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
    amsgrad: Keras' AMSGrad (keyword-only here: Keras' positional order puts it before
      ``weight_decay``).
    mask: leaves that are decayed; ``None`` selects all.
    gradient_accumulation_steps: Keras' gradient accumulation: update on every ``n``-th call
      with the mean gradient (``optax.MultiSteps``, with the schedule on Keras' call count).

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
  return _keras_adam(
    "keras_adam",
    learning_rate,
    beta_1,
    beta_2,
    epsilon,
    weight_decay,
    mask,
    gradient_accumulation_steps,
    amsgrad,
  )


def _keras_adam(
  fn: str,
  learning_rate: ScalarOrSchedule,
  beta_1: float,
  beta_2: float,
  epsilon: float,
  weight_decay: float | None,
  mask: _selection.MaskArg,
  accumulation: int | None,
  amsgrad: bool = False,
) -> optax.GradientTransformation:
  check_moments(fn, beta_1, beta_2, epsilon, names=("beta_1", "beta_2", "epsilon"))
  _hparams.check_bool(amsgrad, fn=fn, arg="amsgrad")

  def step(lr: ScalarOrSchedule, _: _Decay) -> optax.GradientTransformation:
    return optax.chain(
      keras_adam_transform(beta_1, beta_2, epsilon, amsgrad=amsgrad),
      optax.scale_by_learning_rate(lr),
    )

  return _keras(fn, learning_rate, weight_decay, mask, accumulation, step)


class _Decay(NamedTuple):
  """Keras' base-class decay, checked: its coefficient and the leaves it selects."""

  weight_decay: float
  selection: _selection.Selection


def _keras(
  fn: str,
  learning_rate: ScalarOrSchedule,
  weight_decay: float | None,
  mask: _selection.MaskArg,
  accumulation: int | None,
  step: Callable[[ScalarOrSchedule, _Decay], optax.GradientTransformation],
) -> optax.GradientTransformation:
  """Keras' base optimizer around an optimizer's own ``step(lr, decay)``: the decoupled decay,
  ×lr, from the weights before the step (``_apply_weight_decay``), and the accumulation.

  ``weight_decay`` and ``mask`` are checked here, once; ``step`` gets them checked (LAMB's and
  Adafactor's steps read the decayed weights)."""
  checked = _Decay(keras_weight_decay(fn, weight_decay), _selection.selection(mask, fn=fn))

  def build(lr: ScalarOrSchedule) -> optax.GradientTransformation:
    rate = lr_times(checked.weight_decay, lr)
    return optax.chain(
      step(lr, checked), decay(fn, "learning_rate * weight_decay", rate, checked.selection)
    )

  return _accumulated(fn, learning_rate, accumulation, build)


def _accumulated(
  fn: str,
  learning_rate: ScalarOrSchedule,
  accumulation: int | None,
  build: Callable[[ScalarOrSchedule], optax.GradientTransformation],
) -> optax.GradientTransformation:
  """``build(lr)``, with Keras' ``gradient_accumulation_steps = n`` when given.

  Keras then updates on every ``n``-th call with the mean gradient; its schedule sees the call
  count (``_iterations``) while the optimizer's own step count (``iterations``, Adam's bias
  correction) counts updates. ``optax.MultiSteps`` counts updates for both, so the schedule is
  shifted to the call of the ``j``-th update, ``(j + 1) n - 1``.
  """
  _hparams.check_scalar_or_schedule(learning_rate, fn=fn, arg="learning_rate")
  n = _check_accumulation(fn, accumulation)
  lr = learning_rate
  if n is not None and callable(learning_rate):
    sched = learning_rate
    lr = lambda j: sched((j + 1) * n - 1)
  tx = build(lr)
  return tx if n is None else optax.MultiSteps(tx, every_k_schedule=n).gradient_transformation()


def _check_accumulation(fn: str, steps: Any) -> int | None:
  """Keras' ``gradient_accumulation_steps``: ``None`` or an integer >= 2."""
  if steps is None:
    return None
  n = _hparams.check_count(steps, fn=fn, arg="gradient_accumulation_steps")
  if n < 2:
    raise ValueError(
      f"{fn}: `gradient_accumulation_steps` must be None or an integer >= 2 (as in Keras), "
      f"got {steps!r}."
    )
  return n


def keras_adamw(
  learning_rate: ScalarOrSchedule = 0.001,
  weight_decay: float = 0.004,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  amsgrad: bool = False,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
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
    amsgrad: Keras' AMSGrad (the running maximum of the raw second moment).
    mask: leaves that are decayed (Keras' ``exclude_from_weight_decay``);
      ``None`` selects all.
    gradient_accumulation_steps: Keras' gradient accumulation: update on every ``n``-th call
      with the mean gradient (``optax.MultiSteps``, with the schedule on Keras' call count).

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
  return _keras_adam(
    "keras_adamw",
    learning_rate,
    beta_1,
    beta_2,
    epsilon,
    weight_decay,
    mask,
    gradient_accumulation_steps,
    amsgrad,
  )


def keras_lion(
  learning_rate: ScalarOrSchedule = 1e-3,
  beta_1: float = 0.9,
  beta_2: float = 0.99,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
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
    gradient_accumulation_steps: Keras' gradient accumulation: update on every ``n``-th call
      with the mean gradient (``optax.MultiSteps``, with the schedule on Keras' call count).

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
  # Keras' Lion refuses beta_1 = 0 (the update would ignore the momentum); the paper's allows it.
  _hparams.check_number(
    beta_1, fn=fn, arg="beta_1", low_inclusive=False, high=1.0, high_inclusive=True
  )
  _hparams.check_number(beta_2, fn=fn, arg="beta_2", high=1.0, high_inclusive=True)
  betas = (beta_1, beta_2)
  return _keras(
    fn,
    learning_rate,
    weight_decay,
    mask,
    gradient_accumulation_steps,
    lambda lr, _: lion_step(lr, betas),
  )


def keras_rmsprop(
  learning_rate: ScalarOrSchedule = 1e-3,
  rho: float = 0.9,
  momentum: float = 0.0,
  epsilon: float = 1e-7,
  centered: bool = False,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.RMSprop`` (Keras 3): decay ×lr; epsilon inside the root; lr in momentum.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad
    b_t = \mu b_{t-1} + \frac{\eta_t g_t}{\sqrt{v_t + \epsilon}},\quad
    \theta_{t+1} = \theta - b_t

  (centered: :math:`\sqrt{v_t - \bar g_t^2 + \epsilon}`). PyTorch's ``RMSprop`` differs in all
  three places: its ``weight_decay`` is L2, its epsilon is outside the root, its momentum buffer
  holds the unscaled step (:func:`torch_rmsprop`). Built from ``optax.scale_by_rms`` (or
  ``scale_by_stddev``) with ``eps_in_sqrt=True``, ``scale_by_learning_rate`` and
  ``optax.trace``.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    rho: :math:`\rho \in [0, 1)`.
    momentum: :math:`\mu \in [0, 1]`.
    epsilon: :math:`\epsilon \ge 0`, inside the square root.
    centered: subtract the squared mean gradient.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_rmsprop(learning_rate=0.1, rho=0.0, epsilon=0.0, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([3.0])}, tx.init(params), params)
    >>> u['w']  # -lr * wd * w - lr * g / |g|
    Array([-0.2], dtype=float32)

  References:
    ``keras/src/optimizers/rmsprop.py`` (``update_step``).
  """
  fn = "keras_rmsprop"
  _hparams.check_number(rho, fn=fn, arg="rho", high=1.0)
  _hparams.check_number(momentum, fn=fn, arg="momentum", high=1.0, high_inclusive=True)
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")
  _hparams.check_bool(centered, fn=fn, arg="centered")
  scale = optax.scale_by_stddev if centered else optax.scale_by_rms

  def step(lr: ScalarOrSchedule, _: _Decay) -> optax.GradientTransformation:
    return optax.chain(
      scale(decay=rho, eps=epsilon, initial_scale=0.0, eps_in_sqrt=True),
      optax.scale_by_learning_rate(lr),
      momentum_trace(momentum, False),
    )

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)


def keras_adagrad(
  learning_rate: ScalarOrSchedule = 1e-3,
  initial_accumulator_value: float = 0.1,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Adagrad`` (Keras 3): decay ×lr; epsilon inside the root.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    s_t = s_{t-1} + g_t^2\ (s_0 = \text{initial\_accumulator\_value}),\quad
    \theta_{t+1} = \theta - \frac{\eta_t g_t}{\sqrt{s_t + \epsilon}}

  ``optax.scale_by_rss`` with Keras' initial accumulator; PyTorch's ``Adagrad`` has L2,
  ``lr_decay`` and epsilon outside the root (:func:`torch_adagrad`).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    initial_accumulator_value: :math:`s_0 \ge 0`.
    epsilon: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adagrad(0.1, initial_accumulator_value=0.0, epsilon=0.0)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([-4.0])}, tx.init(params), params)
    >>> u['w']  # -lr * g / sqrt(g^2)
    Array([0.1], dtype=float32)

  References:
    ``keras/src/optimizers/adagrad.py`` (``update_step``).
  """
  fn = "keras_adagrad"
  _hparams.check_number(initial_accumulator_value, fn=fn, arg="initial_accumulator_value")
  _hparams.check_number(epsilon, fn=fn, arg="epsilon")

  def step(lr: ScalarOrSchedule, _: _Decay) -> optax.GradientTransformation:
    return optax.chain(
      optax.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=epsilon),
      optax.scale_by_learning_rate(lr),
    )

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)


def keras_adamax(
  learning_rate: ScalarOrSchedule = 1e-3,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Adamax`` (Keras 3): decay ×lr; epsilon outside the max.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    u_t = \max(\beta_2 u_{t-1}, \lvert g_t\rvert),\quad
    \theta_{t+1} = \theta - \frac{\eta_t}{1-\beta_1^t}\,\frac{m_t}{u_t + \epsilon}

  PyTorch and Optax put epsilon inside the max (:math:`\max(\beta_2 u, \lvert g\rvert +
  \epsilon)`), hence :func:`scale_by_keras_adamax`.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adamax(0.1, epsilon=0.0)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([-4.0])}, tx.init(params), params)
    >>> u['w']  # the first step is -lr * sign(g)
    Array([0.1], dtype=float32)

  References:
    ``keras/src/optimizers/adamax.py`` (``update_step``).
  """
  fn = "keras_adamax"
  check_moments(fn, beta_1, beta_2, epsilon, names=("beta_1", "beta_2", "epsilon"))

  def step(lr: ScalarOrSchedule, _: _Decay) -> optax.GradientTransformation:
    return optax.chain(
      keras_adamax_transform(beta_1, beta_2, epsilon), optax.scale_by_learning_rate(lr)
    )

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)


def keras_nadam(
  learning_rate: ScalarOrSchedule = 1e-3,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Nadam`` (Keras 3): decay ×lr, then PyTorch's NAdam step with
  :math:`\psi = 1`.

  .. math::

    \theta \leftarrow \theta - \eta_t\lambda\theta,\quad
    \theta_{t+1} = \theta - \eta_t\, u_t

  with :math:`u_t` the NAdam direction of :func:`scale_by_torch_nadam` with
  ``momentum_decay=1`` (Keras' momentum schedule :math:`\beta_1(1 - \tfrac12 0.96^t)`).
  PyTorch's ``NAdam`` differs in its default :math:`\psi = 0.004` and in its L2
  ``weight_decay`` (:func:`torch_nadam`).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\epsilon \ge 0`, after the bias correction.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_nadam(0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> u['w']  # zero gradient: only the decay, -lr * wd * w
    Array([-0.1], dtype=float32)

  References:
    ``keras/src/optimizers/nadam.py`` (``update_step``, ``_backend_update_step``).
  """
  fn = "keras_nadam"
  check_moments(fn, beta_1, beta_2, epsilon, names=("beta_1", "beta_2", "epsilon"))

  def step(lr: ScalarOrSchedule, _: _Decay) -> optax.GradientTransformation:
    return optax.chain(
      torch_nadam_transform(beta_1, beta_2, epsilon, momentum_decay=1.0),
      optax.scale_by_learning_rate(lr),
    )

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)


def keras_muon(
  learning_rate: ScalarOrSchedule = 1e-3,
  adam_beta_1: float = 0.9,
  adam_beta_2: float = 0.999,
  adam_weight_decay: float | None = 0.004,
  epsilon: float = 1e-7,
  weight_decay: float | None = 0.004,
  *,
  exclude_layers: Sequence[str] | None = None,
  exclude_embeddings: bool = True,
  muon_a: float = 3.4445,
  muon_b: float = -4.7750,
  muon_c: float = 2.0315,
  adam_lr_ratio: float = 1.0,
  momentum: float = 0.95,
  ns_steps: int = 5,
  nesterov: bool = True,
  rms_rate: float | None = 0.2,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Muon`` (Keras 3): Muon on matrices, Keras' AdamW on the rest, two decays.

  .. math::

    \text{Muon leaves: } \theta \leftarrow \theta(1 - \eta_t\lambda) - \eta_t\,\rho
      \sqrt{\max(A, B)}\;\mathrm{NS}(g + \mu m),\ m \leftarrow \mu m + g;\qquad
    \text{the rest: } \theta \leftarrow \theta(1 - \eta_t\lambda_{\text{adam}})
      - r\eta_t\,\text{Keras Adam step}

  A leaf goes to the AdamW half when it is not 2-D, when ``exclude_embeddings`` and its path
  contains ``"embedding"`` (any case), or when a pattern of ``exclude_layers`` is found in its
  path (``re.search``); paths are the leaf's key names joined by ``/``, as Keras' variable
  paths are. ``weight_decay`` decays the Muon leaves, ``adam_weight_decay`` the others, both ×
  the *unscaled* learning rate (``adam_lr_ratio`` :math:`r` scales the AdamW update only).
  :math:`\rho` is ``rms_rate`` (``None``: no scaling). Keras' Newton-Schulz runs in the
  parameters' dtype and divides by ``norm + 1e-7``; its momentum is :math:`\mu m + g`, not
  PyTorch's EMA.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    adam_beta_1: the AdamW half's :math:`\beta_1`.
    adam_beta_2: the AdamW half's :math:`\beta_2`.
    adam_weight_decay: the AdamW half's :math:`\lambda_{\text{adam}}` or ``None``.
    epsilon: the AdamW half's epsilon hat.
    weight_decay: the Muon half's :math:`\lambda` or ``None``.
    exclude_layers: regexes; a matching path goes to the AdamW half.
    exclude_embeddings: send paths containing ``"embedding"`` to the AdamW half.
    muon_a: Newton-Schulz :math:`a`.
    muon_b: Newton-Schulz :math:`b`.
    muon_c: Newton-Schulz :math:`c`.
    adam_lr_ratio: :math:`r > 0`, the AdamW half's learning-rate multiplier.
    momentum: :math:`\mu \in [0, 1)`.
    ns_steps: Newton-Schulz iterations.
    nesterov: Nesterov momentum.
    rms_rate: :math:`\rho > 0` or ``None``.
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.
    gradient_accumulation_steps: Keras' gradient accumulation (see :func:`keras_sgd`).

  Returns:
    An :class:`optax.GradientTransformation` (an ``optax.partition`` of the two halves).

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_muon(0.01, weight_decay=0.1, adam_weight_decay=0.5)
    >>> params = {'dense': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}}
    >>> zero = {'dense': {'kernel': jnp.zeros((2, 2)), 'bias': jnp.zeros(2)}}
    >>> u, _ = tx.update(zero, tx.init(params), params)
    >>> u['dense']['kernel'][0, 0], u['dense']['bias'][0]  # -lr * wd * w, each its own wd
    (Array(-0.001, dtype=float32), Array(-0.005, dtype=float32))

  References:
    ``keras/src/optimizers/muon.py`` (``_should_use_adamw``, ``_muon_update_step``,
    ``_adamw_update_step``, ``_apply_weight_decay``).
  """
  fn = "keras_muon"
  check_moments(
    fn, adam_beta_1, adam_beta_2, epsilon, names=("adam_beta_1", "adam_beta_2", "epsilon")
  )
  wd_muon = keras_weight_decay(fn, weight_decay)
  if adam_weight_decay is None:
    wd_adam = 0.0
  else:
    _hparams.check_number(adam_weight_decay, fn=fn, arg="adam_weight_decay")
    wd_adam = adam_weight_decay  # (check_number gives None for an injected, traced value)
  patterns = _check_patterns(fn, exclude_layers)
  _hparams.check_bool(exclude_embeddings, fn=fn, arg="exclude_embeddings")
  names = ("muon_a", "muon_b", "muon_c")
  check_muon(
    fn, momentum, nesterov, (muon_a, muon_b, muon_c), 0.0, ns_steps, None, coefficient_names=names
  )
  _hparams.check_number(adam_lr_ratio, fn=fn, arg="adam_lr_ratio", low_inclusive=False)
  if rms_rate is not None:
    _hparams.check_number(rms_rate, fn=fn, arg="rms_rate", low_inclusive=False)
  selection = _selection.selection(mask, fn=fn)
  muon = keras_muon_transform((muon_a, muon_b, muon_c), momentum, ns_steps, nesterov, rms_rate)

  def labels(params: Any) -> Any:
    def label(leaf: _tree.Leaf) -> str:
      path = "/".join(str(n) for n in leaf.names)
      adam = leaf.value.ndim != 2 or (exclude_embeddings and "embedding" in path.lower())
      return "adam" if adam or any(p.search(path) for p in patterns) else "muon"

    return _tree.map_leaves(label, params)

  def build(lr: ScalarOrSchedule) -> optax.GradientTransformation:
    # A Python 1 only (an injected ratio is an array): the structure must not follow a value.
    static_one = isinstance(adam_lr_ratio, (int, float)) and adam_lr_ratio == 1
    adam_lr = lr if static_one else _hparams.combine(lambda e: adam_lr_ratio * e, lr)
    what = "learning_rate * weight_decay"
    halves: dict[Any, optax.GradientTransformation] = {
      "muon": optax.chain(
        muon,
        optax.scale_by_learning_rate(lr),
        decay(fn, what, lr_times(wd_muon, lr), selection),
      ),
      "adam": optax.chain(
        keras_adam_transform(adam_beta_1, adam_beta_2, epsilon, amsgrad=False),
        optax.scale_by_learning_rate(adam_lr),
        decay(fn, "learning_rate * adam_weight_decay", lr_times(wd_adam, lr), selection),
      ),
    }
    return optax.partition(halves, labels)

  return _accumulated(fn, learning_rate, gradient_accumulation_steps, build)


def _check_patterns(fn: str, patterns: Sequence[str] | None) -> list[re.Pattern[str]]:
  if patterns is None:
    return []
  if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
    raise TypeError(f"{fn}: `exclude_layers` must be a list of regex strings, got {patterns!r}.")
  try:
    return [re.compile(p) for p in patterns]
  except re.error as e:
    raise ValueError(f"{fn}: `exclude_layers` has an invalid regex: {e}") from e


def keras_lamb(
  learning_rate: ScalarOrSchedule = 1e-3,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Lamb`` (Keras 3): the base class' decay first, then LAMB on the result.

  .. math::

    \theta \leftarrow \theta(1 - \eta_t\lambda),\quad
    \theta_{t+1} = \theta - \eta_t\,\frac{\lVert\theta\rVert}{\lVert u_t\rVert}\,u_t,\quad
    u_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  The trust ratio uses the already decayed weights and the decay is not in :math:`u_t`: the
  LAMB paper and ``optax.lamb`` add :math:`\lambda\theta` to :math:`u_t` before the ratio
  instead (:func:`scale_by_keras_lamb`).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    beta_1: :math:`\beta_1 \in [0, 1)`.
    beta_2: :math:`\beta_2 \in [0, 1)`.
    epsilon: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.
    gradient_accumulation_steps: Keras' gradient accumulation (see :func:`keras_sgd`).

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_lamb(0.1, epsilon=0.0, weight_decay=0.5)
    >>> params = {'w': jnp.array([3.0, 4.0])}
    >>> u, _ = tx.update({'w': jnp.array([1.0, 1.0])}, tx.init(params), params)
    >>> u['w']  # -lr * wd * w - lr * |0.95 w| / |sign(g)| * sign(g)
    Array([-0.4859, -0.5359], dtype=float32)

  References:
    ``keras/src/optimizers/lamb.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  fn = "keras_lamb"
  check_moments(fn, beta_1, beta_2, epsilon, names=("beta_1", "beta_2", "epsilon"))

  def step(lr: ScalarOrSchedule, wd: _Decay) -> optax.GradientTransformation:
    shrink = lr_times(wd.weight_decay, lr)
    lamb = keras_lamb_transform(
      beta_1, beta_2, epsilon, shrink=shrink, selection=wd.selection, fn=fn
    )
    return optax.chain(lamb, optax.scale_by_learning_rate(lr))

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)


def keras_adafactor(
  learning_rate: ScalarOrSchedule = 1e-3,
  beta_2_decay: float = -0.8,
  epsilon_1: float = 1e-30,
  epsilon_2: float = 1e-3,
  clip_threshold: float = 1.0,
  relative_step: bool = True,
  weight_decay: float | None = None,
  *,
  mask: _selection.MaskArg = None,
  gradient_accumulation_steps: int | None = None,
) -> optax.GradientTransformation:
  r"""``keras.optimizers.Adafactor`` (Keras 3): the base class' decay ×lr, then a step relative
  to the decayed weights.

  .. math::

    \theta \leftarrow \theta(1 - \eta_t\lambda),\quad \theta_{t+1} = \theta + \Delta_t

  with :math:`\Delta_t` of :func:`scale_by_keras_adafactor`, whose size is
  :math:`\max(\epsilon_2, \mathrm{RMS}(\theta))\min(\eta_t, 1/\sqrt t)` on the decayed
  :math:`\theta`. In Keras 3.15 ``relative_step`` changes nothing (the step is capped by
  :math:`1/\sqrt t` either way); it is accepted for the signature and checked to be a bool.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    beta_2_decay: :math:`c \le 0`.
    epsilon_1: added to :math:`g^2`.
    epsilon_2: the floor of the weights' RMS.
    clip_threshold: the update clipping threshold, :math:`> 0`.
    relative_step: Keras' flag (no effect, see above).
    weight_decay: :math:`\lambda \ge 0` or ``None`` (no decay).
    mask: leaves that are decayed (Keras: ``exclude_from_weight_decay``); ``None`` selects all.
    gradient_accumulation_steps: Keras' gradient accumulation (see :func:`keras_sgd`).

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.keras_adafactor(0.01, weight_decay=0.5)
    >>> params = {'w': jnp.ones((2, 2))}
    >>> u, _ = tx.update({'w': jnp.ones((2, 2))}, tx.init(params), params)
    >>> u['w'][0, 0]  # -lr * wd * w - RMS(0.995 w) * lr * sign(g)
    Array(-0.01495, dtype=float32)

  References:
    ``keras/src/optimizers/adafactor.py`` (``update_step``) and
    ``keras/src/optimizers/base_optimizer.py`` (``_apply_weight_decay``).
  """
  fn = "keras_adafactor"
  _hparams.check_bool(relative_step, fn=fn, arg="relative_step")
  check_keras_adafactor(fn, beta_2_decay, epsilon_1, epsilon_2, clip_threshold)

  def step(lr: ScalarOrSchedule, wd: _Decay) -> optax.GradientTransformation:
    shrink = lr_times(wd.weight_decay, lr)
    return keras_adafactor_transform(
      lr,
      beta_2_decay,
      epsilon_1,
      epsilon_2,
      clip_threshold,
      shrink=shrink,
      selection=wd.selection,
      fn=fn,
    )

  return _keras(fn, learning_rate, weight_decay, mask, gradient_accumulation_steps, step)
