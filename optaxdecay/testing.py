"""chex-based helpers to compare optimizers step by step, for your own tests.

``trajectory`` runs an optimizer for ``steps`` steps in one jitted
``lax.scan``; ``assert_equivalent`` / ``assert_not_equivalent`` compare two
optimizers on the same problem and name the first step and leaf where they
part.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from optaxdecay import _tree

__all__ = ["Divergence", "assert_equivalent", "assert_not_equivalent", "compare", "trajectory"]

GradFn = Callable[[Any, jax.Array], Any]


class Divergence(NamedTuple):
  """How far two trajectories are apart.

  Attributes:
    step: the first step (1-based: the parameters *after* that many updates)
      at which some leaf is not within tolerance, or ``None`` if none is.
    path: that leaf's path (``'Dense_0/kernel'``), or ``None``.
    max_abs: the largest absolute difference over all steps and leaves.
    max_rel: the largest ``|a - b| / max(|a|, |b|)`` over all steps and leaves
      (0 where both are 0).
  """

  step: int | None
  path: str | None
  max_abs: float
  max_rel: float


def _check_steps(steps: Any, *, fn: str) -> int:
  if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
    raise ValueError(f"{fn}: `steps` must be a positive int, got {steps!r}.")
  return int(steps)


def trajectory(
  tx: optax.GradientTransformation,
  params: chex.ArrayTree,
  grad_fn: GradFn,
  steps: int,
) -> chex.ArrayTree:
  """The parameters after each of ``steps`` updates, stacked on a leading axis.

  Runs ``g = grad_fn(params, step)``, ``u, s = tx.update(g, s, params)``,
  ``params = optax.apply_updates(params, u)`` for ``step = 0 .. steps-1`` in a
  single jit-compiled ``jax.lax.scan``.

  Args:
    tx: the optimizer.
    params: the initial parameters.
    grad_fn: ``(params, step) -> grads``; ``step`` is an ``int32`` scalar, so
      a mini-batch can be chosen with it (``batches[step % n]``). For a full
      batch loss use ``lambda p, _: jax.grad(loss)(p)``.
    steps: the number of updates (``>= 1``).

  Returns:
    A pytree like ``params`` whose leaves have a leading axis of size
    ``steps``: entry ``k`` holds the parameters after ``k + 1`` updates.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from optaxdecay import testing as odt
    >>> # Gradient descent on w**2 / 2 (gradient w) with lr 0.5 halves w each step.
    >>> odt.trajectory(optax.sgd(0.5), jnp.array(1.0), lambda w, step: w, steps=3)
    Array([0.5  , 0.25 , 0.125], dtype=float32)
  """
  steps = _check_steps(steps, fn="trajectory")

  @jax.jit
  def run(params):
    def body(carry, step):
      p, s = carry
      u, s = tx.update(grad_fn(p, step), s, p)
      p = optax.apply_updates(p, u)
      return (p, s), p

    _, traj = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(steps, dtype=jnp.int32))
    return traj

  return run(params)


def compare(
  traj_a: chex.ArrayTree, traj_b: chex.ArrayTree, *, rtol: float, atol: float
) -> Divergence:
  """Compares two stacked trajectories (see :func:`trajectory`).

  Example:
    >>> import jax.numpy as jnp
    >>> from optaxdecay import testing as odt
    >>> a = {'w': jnp.array([[1.0], [2.0], [3.0]])}  # 3 steps of a 1-element leaf
    >>> b = {'w': jnp.array([[1.0], [2.0], [3.5]])}
    >>> div = odt.compare(a, b, rtol=1e-6, atol=0.0)
    >>> div.step, div.path, div.max_abs
    (3, 'w', 0.5)
  """
  chex.assert_trees_all_equal_shapes_and_dtypes(traj_a, traj_b)
  pairs_a, _ = _tree.flatten_with_names(traj_a)
  pairs_b, _ = _tree.flatten_with_names(traj_b)
  first: tuple[int, str] | None = None
  max_abs = max_rel = 0.0
  for (names, a), (_, b) in zip(pairs_a, pairs_b, strict=True):
    diff, bad, scale = _differences(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)
    with np.errstate(invalid="ignore"):  # inf / inf where both are the same infinity
      rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    max_abs = max(max_abs, float(np.nanmax(diff, initial=0.0)))
    max_rel = max(max_rel, float(np.nanmax(rel, initial=0.0)))
    if bad.any():
      step = int(np.argwhere(bad.reshape(bad.shape[0], -1).any(axis=1))[0, 0]) + 1
      if first is None or step < first[0]:
        first = (step, _tree.path_str(names))
  return Divergence(
    step=None if first is None else first[0],
    path=None if first is None else first[1],
    max_abs=max_abs,
    max_rel=max_rel,
  )


def _differences(
  a: np.ndarray, b: np.ndarray, *, rtol: float, atol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``|a - b|``, where they are not close, and ``max(|a|, |b|)``, in float64/complex128.

  Complex leaves are compared as complex numbers (``|a - b|`` is the modulus of
  the difference). Equal infinities and NaN against NaN count as equal, as in
  ``chex.assert_trees_all_close``; their difference is reported as 0.
  """
  wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
  a, b = a.astype(wide), b.astype(wide)
  same = (a == b) | (np.isnan(a) & np.isnan(b))
  with np.errstate(invalid="ignore"):
    diff = np.where(same, 0.0, np.abs(a - b))
  with np.errstate(invalid="ignore"):
    bad = ~same & ~(np.isfinite(diff) & (diff <= atol + rtol * np.abs(b)))
  return diff, bad, np.maximum(np.abs(a), np.abs(b))


def _run_both(
  tx_a: optax.GradientTransformation,
  tx_b: optax.GradientTransformation,
  params: chex.ArrayTree,
  grad_fn: GradFn,
  steps: int,
  *,
  rtol: float,
  atol: float,
  fn: str,
) -> tuple[chex.ArrayTree, chex.ArrayTree, Divergence]:
  """Both trajectories and how far apart they are (the two asserts' shared body)."""
  _check_steps(steps, fn=fn)
  traj_a = trajectory(tx_a, params, grad_fn, steps)
  traj_b = trajectory(tx_b, params, grad_fn, steps)
  return traj_a, traj_b, compare(traj_a, traj_b, rtol=rtol, atol=atol)


def assert_equivalent(
  tx_a: optax.GradientTransformation,
  tx_b: optax.GradientTransformation,
  params: chex.ArrayTree,
  grad_fn: GradFn,
  steps: int,
  *,
  rtol: float = 1e-5,
  atol: float = 1e-7,
) -> Divergence:
  """Asserts two optimizers give the same parameters after every step.

  Each step's parameters are compared with ``chex.assert_trees_all_close``
  (``|a - b| <= atol + rtol * |b|``).

  Returns:
    The :class:`Divergence` (``step`` is ``None``), to report how close.

  Raises:
    AssertionError: naming the first diverging step and leaf path and the
      largest differences.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> from optaxdecay import testing as odt
    >>> lr, l2 = 0.1, 0.01
    >>> params = {'w': jnp.array([1.0, -2.0])}
    >>> grad_fn = lambda p, step: {'w': jnp.cos(p['w'] + step)}
    >>> sgd_l2 = optax.chain(od.add_l2_to_grad(l2), optax.sgd(lr))
    >>> sgd_wd = optax.chain(optax.sgd(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(l2, lr)))
    >>> odt.assert_equivalent(sgd_l2, sgd_wd, params, grad_fn, steps=20).step is None
    True
  """
  traj_a, traj_b, div = _run_both(
    tx_a, tx_b, params, grad_fn, steps, rtol=rtol, atol=atol, fn="assert_equivalent"
  )
  if div.step is not None:
    raise AssertionError(
      f"optimizers diverge first after step {div.step} of {steps}, at leaf "
      f"{div.path!r} (rtol={rtol}, atol={atol}); largest differences over "
      f"the run: abs {div.max_abs:.3e}, rel {div.max_rel:.3e}."
    )
  chex.assert_trees_all_close(traj_a, traj_b, rtol=rtol, atol=atol)
  return div


def assert_not_equivalent(
  tx_a: optax.GradientTransformation,
  tx_b: optax.GradientTransformation,
  params: chex.ArrayTree,
  grad_fn: GradFn,
  steps: int,
  *,
  rtol: float = 1e-5,
  atol: float = 1e-7,
) -> Divergence:
  """Asserts two optimizers' parameters differ beyond tolerance at some step.

  Returns:
    The :class:`Divergence`: the first step and leaf where they part, and by
    how much, so a test can report or bound it.

  Raises:
    AssertionError: if every step agrees within ``rtol``/``atol``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> from optaxdecay import testing as odt
    >>> lr, l2 = 0.1, 0.01
    >>> params = {'w': jnp.array([1.0, -2.0])}
    >>> grad_fn = lambda p, step: {'w': jnp.cos(p['w'] + step)}
    >>> adam_l2 = optax.chain(od.add_l2_to_grad(l2), optax.adam(lr))
    >>> adam_wd = optax.chain(optax.adam(lr), od.decoupled_weight_decay(lr * l2))
    >>> odt.assert_not_equivalent(adam_l2, adam_wd, params, grad_fn, steps=20).path
    'w'
  """
  _, _, div = _run_both(
    tx_a, tx_b, params, grad_fn, steps, rtol=rtol, atol=atol, fn="assert_not_equivalent"
  )
  if div.step is None:
    raise AssertionError(
      f"optimizers agree at every one of {steps} steps (rtol={rtol}, "
      f"atol={atol}; largest differences abs {div.max_abs:.3e}, rel "
      f"{div.max_rel:.3e}), but were expected to differ."
    )
  return div
