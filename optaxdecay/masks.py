"""Masks that choose which parameters are decayed: ``bias_mask`` and ``decay_mask``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from optaxdecay import _tree

#: Leaf names that :func:`bias_mask` treats as biases (Flax/Equinox/PyTorch
#: ``bias``, Haiku ``b``).
BIAS_NAMES: tuple[str, ...] = ("bias", "b")

_SEPARATORS = re.compile(r"[./]")


def leaf_name(names: _tree.Names) -> str | None:
  """The name a rule matches: the last **string** component of the path.

  Integer components (list/tuple indices) are skipped, and a string component
  is split on ``.`` and ``/`` so that flat names work too: the name of
  ``{'fc1.bias': w}`` (a PyTorch ``state_dict`` key) and of
  ``{'mlp/~/linear_0': {'b': w}}`` (Haiku) is ``'bias'`` and ``'b'``.
  ``None`` if the path has no string component (e.g. a bare tuple of arrays).

  Example:
    >>> import optaxdecay as od
    >>> od.leaf_name(('Dense_0', 'kernel')), od.leaf_name(('fc1.bias',)), od.leaf_name((0, 1))
    ('kernel', 'bias', None)
  """
  for n in reversed(names):
    if isinstance(n, str):
      return _SEPARATORS.split(n)[-1]
  return None


def _ndim(leaf: Any) -> int:
  return int(np.ndim(leaf)) if not hasattr(leaf, "ndim") else int(leaf.ndim)


def decay_mask(
  *,
  exclude: Iterable[str] = BIAS_NAMES,
  exclude_regex: Iterable[str] = (),
  min_ndim: int | None = None,
  exclude_if: Callable[[str, Any], bool] | None = None,
) -> Callable[[Any], Any]:
  """Builds a mask function: ``params -> pytree of bool`` (``True`` = decay).

  A leaf is **excluded** from decay (``False``) when any rule below matches,
  and decayed otherwise. Rules see the leaf's *path string*, its components
  joined with ``/`` (``'Dense_0/kernel'``, ``'layers/0/bias'``), with any Flax
  NNX ``Variable`` wrapper removed, so one mask serves both the
  ``Param``-wrapped state ``nnx.Optimizer.init`` sees and the plain arrays
  ``update`` sees.

  1. ``exclude``: the leaf's name (the last string component of its path,
     split on ``.`` and ``/``; see :func:`leaf_name`) equals one of these.
  2. ``exclude_regex``: a pattern is *found* (``re.search``) in the path
     string, like Keras' ``exclude_from_weight_decay``. E.g. ``'LayerNorm'``
     excludes everything inside Flax ``LayerNorm_*`` modules.
  3. ``min_ndim``: the leaf has fewer dimensions (``min_ndim=2`` is the
     nanoGPT/timm rule: only matrices and embeddings decay).
  4. ``exclude_if(path, leaf)`` returns ``True``.
  5. A leaf whose path has **no** string component (a bare list/tuple of
     arrays, e.g. ``[(W1, b1), (W2, b2)]``), when ``exclude`` is non-empty and
     ``min_ndim`` is ``None``: it is treated as a bias iff ``ndim <= 1``, since
     there is no name to go by.

  The returned function keeps the structure of its argument (NNX ``Variable``
  wrappers included), so it works as ``mask=`` here and in Optax's ``masked``,
  ``add_decayed_weights`` and ``adamw``.

  Args:
    exclude: leaf names that are never decayed. Default: ``('bias', 'b')``.
    exclude_regex: regular expressions searched in the path string.
    min_ndim: leaves with ``ndim < min_ndim`` are not decayed.
    exclude_if: a predicate ``(path_string, leaf) -> bool``.

  Returns:
    A callable ``params -> mask`` with the structure of ``params``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> params = {'Dense_0': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)},
    ...           'LayerNorm_0': {'scale': jnp.ones(4), 'bias': jnp.ones(4)}}
    >>> od.decay_mask(exclude=('bias', 'scale'))(params)
    {'Dense_0': {'bias': False, 'kernel': True}, 'LayerNorm_0': {'bias': False, 'scale': False}}
    >>> od.decay_mask(exclude=(), min_ndim=2)(params)['Dense_0']
    {'bias': False, 'kernel': True}
  """
  if isinstance(exclude, str) or isinstance(exclude_regex, str):
    raise TypeError(
      "decay_mask: `exclude` and `exclude_regex` take a sequence of strings, "
      f"e.g. ({exclude!r},), not a single string."
    )
  names = frozenset(exclude)
  patterns = tuple(re.compile(p) for p in exclude_regex)
  if min_ndim is not None and (not isinstance(min_ndim, int) or min_ndim < 0):
    raise ValueError(f"decay_mask: `min_ndim` must be a non-negative int, got {min_ndim!r}.")
  if exclude_if is not None and not callable(exclude_if):
    raise TypeError(f"decay_mask: `exclude_if` must be callable, got {exclude_if!r}.")

  def is_decayed(path: _tree.Names, leaf: Any) -> bool:
    name = leaf_name(path)
    text = _tree.path_str(path)
    ndim = _ndim(leaf)
    if name is not None and name in names:
      return False
    if name is None and names and min_ndim is None and ndim <= 1:
      return False
    if any(p.search(text) for p in patterns):
      return False
    if min_ndim is not None and ndim < min_ndim:
      return False
    return not (exclude_if is not None and exclude_if(text, leaf))

  def mask_fn(params: Any) -> Any:
    _reject_step_count(params)
    return _tree.map_with_names(is_decayed, params)

  return mask_fn


def _reject_step_count(params: Any) -> None:
  """A bare integer scalar is a step count, never params: say what went wrong."""
  if (
    isinstance(params, (jax.Array, np.ndarray, int))
    and not isinstance(params, bool)
    and np.ndim(params) == 0
    and np.issubdtype(np.asarray(params).dtype, np.integer)
  ):
    raise TypeError(
      "optaxdecay mask: called with an integer scalar instead of params. "
      "This happens when `optax.inject_hyperparams` treats a mask function "
      "as a schedule and calls it with the step count (which would silently "
      "disable decay). Pass `static_args=('mask',)` to inject_hyperparams."
    )


_bias_mask = decay_mask()


def bias_mask(params: Any) -> Any:
  """``True`` for every leaf that is decayed, ``False`` for biases.

  The rule: a leaf is a bias iff its name — the last string component of its
  key path, split on ``.`` and ``/`` — is ``'bias'`` (Flax, Equinox, PyTorch
  ``state_dict``) or ``'b'`` (Haiku). A leaf with no string component in its
  path (a bare list/tuple of arrays) is a bias iff ``ndim <= 1``. Everything
  else, norm ``scale`` and embeddings included, is decayed; use
  :func:`decay_mask` to exclude more.

  Works on nested dicts, Flax Linen params and ``FrozenDict``, Flax NNX state
  (``Param``-wrapped, as ``nnx.Optimizer.init`` sees it, and plain arrays, as
  ``update`` sees it), Equinox modules (``.bias``), Haiku params and
  lists/tuples; the result has the structure of ``params``.

  Args:
    params: a pytree of parameters.

  Returns:
    A pytree of ``bool`` with the structure of ``params``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optaxdecay as od
    >>> params = {'Dense_0': {'kernel': jnp.ones((3, 4)), 'bias': jnp.zeros(4)}}
    >>> od.bias_mask(params)
    {'Dense_0': {'bias': False, 'kernel': True}}
    >>> tx = optax.adamw(1e-3, weight_decay=1e-2, mask=od.bias_mask)
  """
  return _bias_mask(params)
