"""PyTorch (``torch.optim``) optimizers and their weight-decay conventions."""

from __future__ import annotations

import optax

from optaxdecay import _hparams, _selection
from optaxdecay._rates import lr_times
from optaxdecay._transforms import l2_transform
from optaxdecay.compat._common import (
  NS_COEFFICIENTS,
  ScalarOrSchedule,
  check_betas,
  check_muon,
  check_torch_nesterov,
  decay,
  maximize_sign,
  momentum_trace,
)
from optaxdecay.compat._torch_scale import (
  check_torch_adafactor,
  torch_adafactor_transform,
  torch_adagrad_transform,
  torch_amsgrad_transform,
  torch_momentum_transform,
  torch_muon_transform,
  torch_nadam_transform,
  torch_radam_transform,
)


def torch_sgd(
  lr: ScalarOrSchedule = 1e-3,
  momentum: float = 0.0,
  dampening: float = 0.0,
  weight_decay: float = 0.0,
  nesterov: bool = False,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.SGD``: weight decay is L2 in the gradient, before momentum.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    b_t = \text{torch momentum}(g_t)\ \text{(see } \texttt{scale\_by\_torch\_momentum}),\quad
    \theta_{t+1} = \theta_t - \eta_t\, b_t

  The decay is multiplied by the learning rate (and its schedule) and, with
  momentum, accumulated in the buffer: with :math:`\mu > 0` it is **not** a
  decoupled decay of any rate. Built as ``chain(add_l2_to_grad(weight_decay),
  scale_by_torch_momentum(...), scale_by_learning_rate(lr))``.

  Args:
    lr: :math:`\eta`, a float or a schedule ``step -> lr`` (the counterpart
      of a ``LambdaLR`` stepped once per ``optimizer.step()``: step ``t`` uses
      ``base_lr * lr_lambda(t)``). Default ``1e-3`` as in PyTorch.
    momentum: :math:`\mu \ge 0`.
    dampening: :math:`\tau \ge 0`; the first buffer is undampened.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    nesterov: PyTorch's Nesterov momentum (needs momentum and no dampening).
    maximize: ascend instead of descend (PyTorch negates the gradient first).
    mask: leaves that get the L2 term (PyTorch: the param groups with a
      nonzero ``weight_decay``); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a negative or non-finite hyperparameter; Nesterov without
      momentum or with dampening.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_sgd(lr=0.1, weight_decay=0.01)
    >>> params = {'w': jnp.array([1.0, -2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.5, 0.5])}, tx.init(params), params)
    >>> updates['w']  # -0.1 * (g + 0.01 * w)
    Array([-0.051, -0.048], dtype=float32)

  References:
    ``torch/optim/sgd.py`` (``_single_tensor_sgd``), PyTorch 2.x.
  """
  fn = "torch_sgd"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  _hparams.check_number(dampening, fn=fn, arg="dampening")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  check_torch_nesterov(fn, nesterov, momentum, dampening)
  return optax.chain(
    maximize_sign(fn, maximize),
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    torch_momentum_transform(momentum, dampening, nesterov),
    optax.scale_by_learning_rate(lr),
  )


def torch_adam(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  amsgrad: bool = False,
  *,
  maximize: bool = False,
  decoupled_weight_decay: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.Adam``: weight decay is L2, passed through the preconditioner.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    \theta_{t+1} = \theta_t - \eta_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  with :math:`\hat m, \hat v` the bias-corrected moments **of the L2-augmented
  gradient** and :math:`\epsilon` added after the bias correction. This is
  *not* AdamW: the decay is divided by :math:`\sqrt{\hat v_t}+\epsilon`, so
  weights with large gradients are barely regularized. Built as
  ``chain(add_l2_to_grad(weight_decay), optax.scale_by_adam(...),
  scale_by_learning_rate(lr))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    amsgrad: PyTorch's AMSGrad (:func:`scale_by_torch_amsgrad`: the max of the raw second
      moment, then the bias correction).
    maximize: ascend instead of descend (the gradient is negated first, as in PyTorch).
    decoupled_weight_decay: PyTorch 2.x's switch to AdamW's decoupled decay
      (``Adam(decoupled_weight_decay=True)`` is ``AdamW``): then :func:`torch_adamw`.
    mask: leaves that get the L2 term (or the decay); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of PyTorch's range.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adam(lr=0.1, weight_decay=1.0)
    >>> params = {'w': jnp.array([1.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # the first Adam step is -lr * sign(g + wd * w)
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/adam.py`` (``_single_tensor_adam``, ``decoupled_weight_decay=False``).
  """
  fn = "torch_adam"
  return _adam(fn, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay, mask)


def _adam(
  fn: str,
  lr: ScalarOrSchedule,
  betas: tuple[float, float],
  eps: float,
  weight_decay: float,
  amsgrad: bool,
  maximize: bool,
  decoupled: bool,
  mask: _selection.MaskArg,
) -> optax.GradientTransformation:
  """``torch.optim.Adam``/``AdamW`` (``_single_tensor_adam``), its arguments checked once."""
  b1, b2 = check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  _hparams.check_bool(amsgrad, fn=fn, arg="amsgrad")
  moments = torch_amsgrad_transform(b1, b2, eps) if amsgrad else optax.scale_by_adam(b1, b2, eps)
  return _preconditioned(fn, lr, weight_decay, maximize, decoupled, mask, moments)


def torch_adamw(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 1e-2,
  amsgrad: bool = False,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.AdamW``: decoupled decay, multiplied by the (scheduled) lr.

  .. math::

    \theta_{t+1} = \theta_t(1 - \eta_t\lambda)
      - \eta_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

  with the moments of the raw gradient. Same update as ``optax.adamw(lr,
  b1, b2, eps, weight_decay)``, but with PyTorch's defaults
  (``weight_decay=1e-2``, not Optax's ``1e-4``). Built as
  ``chain(optax.scale_by_adam(...), scale_by_learning_rate(lr),
  decoupled_weight_decay(l2_to_decay_rate(weight_decay, lr)))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`; the fraction removed per step is
      :math:`\eta_t\lambda`, which must be ``< 1``.
    amsgrad: PyTorch's AMSGrad (:func:`scale_by_torch_amsgrad`).
    maximize: ascend instead of descend (the decay still shrinks the weights).
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Raises:
    ValueError: a hyperparameter out of range, or ``lr * weight_decay >= 1``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adamw(lr=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([2.0])}
    >>> updates, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> updates['w']  # no gradient: only the decay, -lr * wd * w
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/adamw.py`` and ``torch/optim/adam.py``
    (``decoupled_weight_decay=True``); Loshchilov & Hutter, `Decoupled Weight
    Decay Regularization <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  return _adam("torch_adamw", lr, betas, eps, weight_decay, amsgrad, maximize, True, mask)


def torch_rmsprop(
  lr: ScalarOrSchedule = 1e-2,
  alpha: float = 0.99,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  momentum: float = 0.0,
  centered: bool = False,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.RMSprop``: weight decay is L2, divided by the running RMS.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\quad
    d_t = \frac{g_t}{\sqrt{v_t - \bar g_t^2\,[\text{centered}]} + \epsilon},\quad
    b_t = \mu b_{t-1} + d_t,\quad
    \theta_{t+1} = \theta_t - \eta_t b_t

  with :math:`\bar g_t = \alpha\bar g_{t-1} + (1-\alpha)g_t` when ``centered``,
  :math:`\epsilon` outside the square root, and the learning rate applied *after* the
  momentum buffer (so a schedule scales the whole buffer, as in PyTorch). Built as
  ``chain(add_l2_to_grad(weight_decay), optax.scale_by_rms(alpha, eps, eps_in_sqrt=False)``
  (``scale_by_stddev`` when centered) ``, optax.trace(momentum), scale_by_learning_rate(lr))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    alpha: :math:`\alpha \in [0, 1)`, the smoothing constant.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    momentum: :math:`\mu \ge 0`.
    centered: subtract the squared running mean of the gradient.
    maximize: ascend instead of descend (PyTorch negates the gradient first).
    mask: leaves that get the L2 term (PyTorch: param groups); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_rmsprop(lr=0.1, alpha=0.0, eps=0.0, weight_decay=1.0)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> u['w']  # alpha=0: -lr * sign(g + wd * w)
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/rmsprop.py`` (``_single_tensor_rmsprop``).
  """
  fn = "torch_rmsprop"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(alpha, fn=fn, arg="alpha", high=1.0)
  _hparams.check_number(eps, fn=fn, arg="eps")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_number(momentum, fn=fn, arg="momentum")
  _hparams.check_bool(centered, fn=fn, arg="centered")
  scale = optax.scale_by_stddev if centered else optax.scale_by_rms
  return optax.chain(
    maximize_sign(fn, maximize),
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    scale(decay=alpha, eps=eps, eps_in_sqrt=False),
    momentum_trace(momentum),
    optax.scale_by_learning_rate(lr),
  )


def torch_adagrad(
  lr: ScalarOrSchedule = 1e-2,
  lr_decay: float = 0.0,
  weight_decay: float = 0.0,
  initial_accumulator_value: float = 0.0,
  eps: float = 1e-10,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.Adagrad``: weight decay is L2, divided by the root sum of squares.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    s_t = s_{t-1} + g_t^2,\quad
    \theta_{t+1} = \theta_t - \frac{\eta_t}{1 + t\,\delta}\,\frac{g_t}{\sqrt{s_t} + \epsilon}

  for the ``t``-th update (0-based), :math:`\delta` = ``lr_decay`` and
  :math:`s_0` = ``initial_accumulator_value``. Built as ``chain(add_l2_to_grad(weight_decay),``
  :func:`scale_by_torch_adagrad` ``, scale_by_learning_rate(lr_t / (1 + t * lr_decay)))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    lr_decay: :math:`\delta \ge 0`.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    initial_accumulator_value: :math:`s_0 \ge 0`.
    eps: :math:`\epsilon \ge 0`.
    maximize: ascend instead of descend (PyTorch negates the gradient first).
    mask: leaves that get the L2 term (PyTorch: param groups); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adagrad(lr=0.1, eps=0.0, weight_decay=1.0)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> u['w']  # the first step is -lr * sign(g + wd * w)
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/adagrad.py`` (``_single_tensor_adagrad``).
  """
  fn = "torch_adagrad"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(lr_decay, fn=fn, arg="lr_decay")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_number(initial_accumulator_value, fn=fn, arg="initial_accumulator_value")
  _hparams.check_number(eps, fn=fn, arg="eps")
  step_size = lr
  if not _hparams.is_static_zero(lr_decay):  # a Python zero only: see momentum_trace
    base = lr if callable(lr) else (lambda _count: lr)
    step_size = lambda count: base(count) / (1 + count * lr_decay)
  return optax.chain(
    maximize_sign(fn, maximize),
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    torch_adagrad_transform(initial_accumulator_value, eps),
    optax.scale_by_learning_rate(step_size),
  )


def torch_adamax(
  lr: ScalarOrSchedule = 2e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.Adamax``: weight decay is L2, divided by the infinity norm.

  .. math::

    g_t \leftarrow g_t + \lambda\theta_t,\quad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon),\quad
    \theta_{t+1} = \theta_t - \frac{\eta_t}{1-\beta_1^{t+1}}\,\frac{m_t}{u_t}

  Built as ``chain(add_l2_to_grad(weight_decay), optax.scale_by_adamax(b1, b2, eps),
  scale_by_learning_rate(lr))``.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`, the L2 coefficient.
    maximize: ascend instead of descend (PyTorch negates the gradient first).
    mask: leaves that get the L2 term (PyTorch: param groups); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adamax(lr=0.1, eps=0.0, weight_decay=1.0)
    >>> params = {'w': jnp.array([2.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> u['w']  # the first step is -lr * sign(g + wd * w)
    Array([-0.1], dtype=float32)

  References:
    ``torch/optim/adamax.py`` (``_single_tensor_adamax``).
  """
  fn = "torch_adamax"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  b1, b2 = check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  return optax.chain(
    maximize_sign(fn, maximize),
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    optax.scale_by_adamax(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(lr),
  )


def torch_nadam(
  lr: ScalarOrSchedule = 2e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  momentum_decay: float = 4e-3,
  decoupled_weight_decay: bool = False,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.NAdam``: L2 through the preconditioner, or decoupled (``× lr``) when asked.

  .. math::

    \text{L2: } g_t \leftarrow g_t + \lambda\theta_t;\qquad
    \text{decoupled: } \theta_t \leftarrow \theta_t(1 - \eta_t\lambda);\qquad
    \theta_{t+1} = \theta_t - \eta_t\, u_t

  with :math:`u_t` PyTorch's NAdam direction (:func:`scale_by_torch_nadam`, with its momentum
  schedule ``momentum_decay``). ``decoupled_weight_decay=True`` is PyTorch's "NAdamW".

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart). Default ``2e-3``.
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`.
    momentum_decay: :math:`\psi \ge 0`, the momentum schedule's decay.
    decoupled_weight_decay: decay the weights by :math:`\eta_t\lambda` outside the
      preconditioner instead of adding :math:`\lambda\theta` to the gradient.
    maximize: ascend instead of descend.
    mask: leaves that get the L2 term (or the decay); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_nadam(lr=0.1, weight_decay=0.1, decoupled_weight_decay=True)
    >>> params = {'w': jnp.array([1.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> u['w']  # zero gradient: only the decoupled decay, -lr * wd * w
    Array([-0.01], dtype=float32)

  References:
    ``torch/optim/nadam.py`` (``_single_tensor_nadam``), PyTorch 2.x.
  """
  fn = "torch_nadam"
  _hparams.check_number(momentum_decay, fn=fn, arg="momentum_decay")
  b1, b2 = check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  moments = torch_nadam_transform(b1, b2, eps, momentum_decay)
  return _preconditioned(fn, lr, weight_decay, maximize, decoupled_weight_decay, mask, moments)


def torch_radam(
  lr: ScalarOrSchedule = 1e-3,
  betas: tuple[float, float] = (0.9, 0.999),
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  decoupled_weight_decay: bool = False,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.RAdam``: L2 through the (rectified) preconditioner, or decoupled (``× lr``).

  .. math::

    \text{L2: } g_t \leftarrow g_t + \lambda\theta_t;\qquad
    \text{decoupled: } \theta_t \leftarrow \theta_t(1 - \eta_t\lambda);\qquad
    \theta_{t+1} = \theta_t - \eta_t\, u_t

  with :math:`u_t` PyTorch's RAdam direction (:func:`scale_by_torch_radam`): plain
  bias-corrected momentum while :math:`\rho_t \le 5` (the first steps), rectified Adam after.
  With L2, the first steps are therefore *not* preconditioned (the L2 term is not divided by
  anything) and the later ones are: the coupling changes during training.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart).
    betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps: :math:`\epsilon \ge 0`.
    weight_decay: :math:`\lambda \ge 0`.
    decoupled_weight_decay: decay the weights by :math:`\eta_t\lambda` outside the
      preconditioner instead of adding :math:`\lambda\theta` to the gradient.
    maximize: ascend instead of descend.
    mask: leaves that get the L2 term (or the decay); ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_radam(lr=0.1, weight_decay=0.5)
    >>> params = {'w': jnp.array([1.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0])}, tx.init(params), params)
    >>> u['w']  # step 1 is unrectified: -lr * (g + wd * w)
    Array([-0.05], dtype=float32)

  References:
    ``torch/optim/radam.py`` (``_single_tensor_radam``), PyTorch 2.x.
  """
  fn = "torch_radam"
  b1, b2 = check_betas(fn, betas)
  _hparams.check_number(eps, fn=fn, arg="eps")
  moments = torch_radam_transform(b1, b2, eps)
  return _preconditioned(fn, lr, weight_decay, maximize, decoupled_weight_decay, mask, moments)


def _preconditioned(
  fn: str,
  lr: ScalarOrSchedule,
  weight_decay: float,
  maximize: bool,
  decoupled: bool,
  mask: _selection.MaskArg,
  moments: optax.GradientTransformation,
) -> optax.GradientTransformation:
  """PyTorch's pattern around a preconditioner: maximize, then L2 before it or decay after it."""
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_bool(decoupled, fn=fn, arg="decoupled_weight_decay")
  sign = maximize_sign(fn, maximize)  # PyTorch negates g first
  if decoupled:
    return optax.chain(
      sign,
      moments,
      optax.scale_by_learning_rate(lr),
      decay(fn, "lr * weight_decay", lr_times(weight_decay, lr), _selection.selection(mask, fn=fn)),
    )
  return optax.chain(
    sign,
    l2_transform(weight_decay, _selection.selection(mask, fn=fn), fn=fn),
    moments,
    optax.scale_by_learning_rate(lr),
  )


def torch_adafactor(
  lr: ScalarOrSchedule = 1e-2,
  beta2_decay: float = -0.8,
  eps: tuple[float | None, float] = (None, 1e-3),
  d: float = 1.0,
  weight_decay: float = 0.0,
  *,
  maximize: bool = False,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.Adafactor``: decoupled decay ×lr, while the step is relative to the weights.

  .. math::

    \theta_{t+1} = \theta_t(1 - \eta_t\lambda) + \Delta_t

  with :math:`\Delta_t` PyTorch's Adafactor step (:func:`scale_by_torch_adafactor`), whose size
  is :math:`\max(\epsilon_2, \mathrm{RMS}(\theta_t))\min(\eta_t, 1/\sqrt t)`: the learning rate
  only caps it. The decay, though, is :math:`\eta_t\lambda` with the *uncapped* learning rate,
  so it does not follow the relative step size.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart). Default ``1e-2``.
    beta2_decay: :math:`c \le 0`; :math:`1 - \beta_{2,t} = t^c`.
    eps: :math:`(\epsilon_1, \epsilon_2)`; ``None``: the parameters' machine epsilon.
    d: the update clipping threshold, :math:`\ge 1`.
    weight_decay: :math:`\lambda \ge 0`.
    maximize: ascend instead of descend.
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_adafactor(lr=0.01, weight_decay=0.5)
    >>> params = {'w': jnp.ones((2, 2))}
    >>> u, _ = tx.update({'w': jnp.zeros((2, 2))}, tx.init(params), params)
    >>> u['w'][0, 0]  # zero gradient: only the decay, -lr * wd * w
    Array(-0.005, dtype=float32)

  References:
    ``torch/optim/_adafactor.py`` (``_single_tensor_adafactor``), PyTorch 2.5+.
  """
  fn = "torch_adafactor"
  check_torch_adafactor(fn, lr, beta2_decay, eps, d)
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  _hparams.check_bool(maximize, fn=fn, arg="maximize")
  sign = optax.scale(-1.0) if maximize else optax.identity()
  return optax.chain(
    sign,
    torch_adafactor_transform(lr, beta2_decay, eps, d, fn=fn),
    decay(fn, "lr * weight_decay", lr_times(weight_decay, lr), _selection.selection(mask, fn=fn)),
  )


def torch_muon(
  lr: ScalarOrSchedule = 1e-3,
  weight_decay: float = 0.1,
  momentum: float = 0.95,
  nesterov: bool = True,
  ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
  eps: float = 1e-7,
  ns_steps: int = 5,
  adjust_lr_fn: str | None = None,
  *,
  mask: _selection.MaskArg = None,
) -> optax.GradientTransformation:
  r"""``torch.optim.Muon``: the decay uses the *unadjusted* lr, the update the adjusted one.

  .. math::

    \theta_{t+1} = \theta_t(1 - \eta_t\lambda) - \eta_t\, r(A, B)\, o_t

  with :math:`o_t` the orthogonalized momentum and :math:`r` the shape ratio of
  :func:`scale_by_torch_muon`. For 2-D parameters only, as in PyTorch: give the rest
  (biases, norms, embeddings if you like) to another optimizer with ``optax.partition``, e.g.
  ``optax.partition({'muon': torch_muon(0.02), 'adamw': torch_adamw(3e-4)}, labels)`` with
  ``labels = lambda p: jax.tree.map(lambda x: 'muon' if x.ndim == 2 else 'adamw', p)``, the
  counterpart of two torch optimizers stepped together.

  Args:
    lr: :math:`\eta`, a float or a schedule (a ``LambdaLR`` counterpart). Default ``1e-3``.
    weight_decay: :math:`\lambda \ge 0`; PyTorch's default is ``0.1``.
    momentum: :math:`\mu \in [0, 1)`.
    nesterov: Nesterov momentum (default, as in PyTorch).
    ns_coefficients: the Newton-Schulz quintic's :math:`(a, b, c)`.
    eps: the normalization's floor.
    ns_steps: Newton-Schulz iterations.
    adjust_lr_fn: ``None``/``'original'`` (:math:`\sqrt{\max(1, A/B)}`) or
      ``'match_rms_adamw'`` (:math:`0.2\sqrt{\max(A, B)}`, Moonlight's; see
      :func:`moonlight_muon`).
    mask: leaves that are decayed; ``None`` selects all.

  Returns:
    An :class:`optax.GradientTransformation`; its ``init`` raises for a leaf that is not 2-D.

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import compat
    >>> tx = compat.torch_muon(lr=0.02, weight_decay=0.1)
    >>> params = {'w': jnp.ones((2, 3))}
    >>> u, _ = tx.update({'w': jnp.zeros((2, 3))}, tx.init(params), params)
    >>> u['w'][0, 0]  # zero gradient: only the decay, -lr * wd * w
    Array(-0.002, dtype=float32)

  References:
    ``torch/optim/_muon.py`` (``_single_tensor_muon``), PyTorch 2.9+; Jordan et al., *Muon*
    (2024).
  """
  fn = "torch_muon"
  _hparams.check_scalar_or_schedule(lr, fn=fn, arg="lr")
  _hparams.check_number(weight_decay, fn=fn, arg="weight_decay")
  check_muon(fn, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn)
  return optax.chain(
    torch_muon_transform(momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, fn=fn),
    optax.scale_by_learning_rate(lr),
    decay(fn, "lr * weight_decay", lr_times(weight_decay, lr), _selection.selection(mask, fn=fn)),
  )
