"""Applying updates to low-precision params with stochastic rounding: the decay survives.

A typical AdamW decay removes ``lr * wd = 1e-5`` of each weight per step: far less than half
the spacing of ``bfloat16`` numbers near the weight (``2**-8`` relative), so rounding to the
nearest ``bfloat16`` undoes it on every element, every step
(:func:`optaxdecay.diagnostics.decay_precision_report`). Rounding *stochastically*, up or down
with probabilities that make the expected result exact, keeps the decay in expectation.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optaxdecay import _tree

_FN = "apply_updates_stochastic"


def _check_key(key: Any) -> jax.Array:
  if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise TypeError(f"{_FN}: `key` must be a single PRNG key, got an array of shape {key.shape}.")
    return key
  if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
    return jax.random.wrap_key_data(key)
  raise TypeError(
    f"{_FN}: `key` must be a PRNG key such as `jax.random.key(0)`, got {type(key).__name__}"
    f"{' of dtype ' + str(key.dtype) if hasattr(key, 'dtype') else ''}."
  )


def _uniform_bits(shape: tuple[int, ...], seed: jax.Array) -> jax.Array:
  """32 pseudo-random bits per element: an integer hash of the element's index and ``seed``.

  A counter-based hash (Wellons' "lowbias32") fuses into the elementwise update, where
  ``jax.random``'s generators cost ~10x the update itself on CPU; it is not a cryptographic
  generator, and unbiased rounding needs none (only uniform bits per element).
  """
  h = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape) * jnp.uint32(0x9E3779B9) + seed
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x7FEB352D)
  h = h ^ (h >> 15)
  h = h * jnp.uint32(0x846CA68B)
  return h ^ (h >> 16)


def stochastic_round(x: jax.Array, dtype: Any, seed: jax.Array) -> jax.Array:
  """``x`` (float32) rounded to ``dtype``, up or down, unbiased: ``E[result] == x``.

  ``bfloat16`` is float32's upper half: adding 16 random bits to the discarded lower half and
  truncating rounds the magnitude up with probability (lower half) / 2**16, exactly. Other
  narrow types choose between the nearest ``dtype`` number and its neighbour on the other side
  of ``x`` with probabilities inversely proportional to their distances from ``x``.
  """
  bits = _uniform_bits(x.shape, seed)
  if jnp.dtype(dtype) == jnp.bfloat16:
    raw = jax.lax.bitcast_convert_type(x, jnp.uint32)
    rounded = (raw + (bits >> 16)) & jnp.uint32(0xFFFF0000)
    return jax.lax.bitcast_convert_type(rounded, jnp.float32).astype(dtype)
  near = x.astype(dtype)
  near32 = near.astype(x.dtype)
  away = jnp.where(near32 > x, -jnp.inf, jnp.inf).astype(dtype)
  other = jnp.nextafter(near, away)
  gap = other.astype(x.dtype) - near32
  p_other = jnp.where(gap != 0, (x - near32) / jnp.where(gap != 0, gap, 1), 0)
  uniform = (bits >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
  return jnp.where(uniform < p_other, other, near)


def _is_low_precision(dtype: Any) -> bool:
  return jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32


def apply_updates_stochastic(params: optax.Params, updates: optax.Updates, key: Any) -> Any:
  r"""``optax.apply_updates`` with stochastic rounding for low-precision params.

  For a leaf stored in a float type narrower than float32 (``bfloat16``, ``float16``) the sum
  :math:`x = w + u` is computed in float32 and rounded to the leaf's dtype *stochastically*:
  to the neighbour :math:`\lfloor x\rfloor` or :math:`\lceil x\rceil` (the two ``dtype``
  numbers around :math:`x`) with probabilities that make the rounding unbiased,

  .. math::

    \Pr[\lceil x\rceil] = \frac{x - \lfloor x\rfloor}{\lceil x\rceil - \lfloor x\rfloor},
    \qquad \mathbb{E}[\mathrm{round}(x)] = x ,

  so a decay step far smaller than the spacing of ``bfloat16`` numbers is no longer lost:
  it moves a small fraction of the elements by a whole spacing instead of none by a
  fraction, and holds in expectation. float32 and float64 leaves get exactly
  ``optax.apply_updates`` (bit for bit). The random bits come from an integer hash of each
  element's index, seeded per leaf from ``key``, fused into the update
  (``docs/benchmarks.md`` measures the cost). Use it in place of ``optax.apply_updates``
  in a bf16 training step, with a fresh key every step.

  Args:
    params: the parameters (a pytree of float arrays).
    updates: the updates, with the params' structure (``None`` leaves leave a parameter as
      it is).
    key: a PRNG key (``jax.random.key(...)``; a raw ``uint32[2]`` key works too), split
      per leaf.

  Returns:
    The new params, each leaf in its original dtype.

  Raises:
    TypeError: ``key`` is not a PRNG key, or a parameter is not floating point.
    ValueError: ``updates`` does not have the params' structure or shapes.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> w = {'w': jnp.ones(100_000, jnp.bfloat16)}
    >>> u = {'w': jnp.full(100_000, -1e-3)}  # far below bf16's spacing at 1 (2**-8)
    >>> new = od.apply_updates_stochastic(w, u, jax.random.key(0))['w']
    >>> round(float(new.astype(jnp.float32).mean()), 3)  # the update, in expectation
    0.999
    >>> bool(jnp.all((w['w'] + u['w']).astype(jnp.bfloat16) == 1))  # nearest rounding: lost
    True
  """
  key = _check_key(key)
  u_leaves, p_leaves, _ = _tree.align(updates, params, fn=_FN)
  p_tree_leaves, treedef = _tree.flatten_leaves(params)
  keys = list(jax.random.split(key, len(p_leaves))) if p_leaves else []
  out = []
  for leaf, u, w, k in zip(p_tree_leaves, u_leaves, p_leaves, keys, strict=True):
    if leaf.absent or _tree.is_absent(u):
      out.append(w)
      continue
    dtype = getattr(w, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(
        f"{_FN}: `params` at {leaf.path!r} has dtype {dtype}; only floating-point params "
        "can take an update."
      )
    if _is_low_precision(dtype):
      seed = jax.random.bits(k, (), jnp.uint32)
      out.append(stochastic_round(w.astype(jnp.float32) + u.astype(jnp.float32), dtype, seed))
    else:
      out.append(jnp.asarray(w + u).astype(dtype))
  return jax.tree_util.tree_unflatten(treedef, out)
