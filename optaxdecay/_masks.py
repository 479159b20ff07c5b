"""Mask rules: which parameters decay, and how strongly.

:func:`decay_mask` (exclusion rules, ``True``/``False``), :func:`bias_mask` (its
default instance) and :func:`decay_multipliers` (big_vision's ordered regex
rules, float multipliers). Each builds a function ``params -> mask`` whose
result has the structure of ``params`` and works as ``mask=`` here and in
Optax's ``masked``, ``add_decayed_weights`` and ``adamw``. A new rule goes here,
as a builder on :func:`_rule_mask`.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optaxdecay import _hparams, _selection, _tree

#: Leaf names that :func:`bias_mask` treats as biases: Flax/Equinox/PyTorch
#: ``bias``, Haiku ``b`` (only for leaves with at most one dimension per layer:
#: a 2-D ``b`` is a matrix) and Haiku's norm ``offset``.
BIAS_NAMES: tuple[str, ...] = ("bias", "b", "offset")

_SEPARATORS = re.compile(r"[./]")

#: Containers that carry no module class: a tree of only these (Flax Linen
#: params, ``nnx.state(...)``, Haiku params) cannot answer ``exclude_modules``.
CONTAINER_NAMES = frozenset({"dict", "list", "tuple", "FrozenDict", "State", "NoneType"})


def leaf_name(names: Any) -> str | None:
  """The name a rule matches: the leaf's own key, if it is a string.

  The last component of the path, split on ``.`` and ``/`` so that flat names
  work too: the name of ``{'fc1.bias': w}`` (a PyTorch ``state_dict`` key) and
  of ``{'mlp/~/linear_0': {'b': w}}`` (Haiku) is ``'bias'`` and ``'b'``. A leaf
  that is an element of a list or tuple (its last component is an index) has
  **no** name of its own, whatever encloses the list: ``[W, b]`` and
  ``{'layers': [W, b]}`` are read the same way (by ``ndim``, see
  :func:`bias_mask`). ``None`` if the leaf has no name.

  ``names`` is a key path: a tuple of ``str``/``int`` components, a path
  string (``'Dense_0/bias'``), or the tuple of JAX keys that
  ``jax.tree_util.tree_flatten_with_path`` gives (``DictKey``, ``GetAttrKey``,
  ``SequenceKey``).

  Example:
    >>> import optaxdecay as od
    >>> od.leaf_name(('Dense_0', 'kernel')), od.leaf_name(('fc1.bias',)), od.leaf_name(('w', 0))
    ('kernel', 'bias', None)
    >>> od.leaf_name('Dense_0/bias')
    'bias'
  """
  if isinstance(names, str):
    names = (names,)
  if not isinstance(names, (tuple, list)):
    raise TypeError(
      "leaf_name: `names` must be a key path (a tuple of str/int components, a path string, "
      f"or the keys jax.tree_util.tree_flatten_with_path gives), got {type(names).__name__}."
    )
  names = _tree.key_names(names)
  if not names or not isinstance(names[-1], str):
    return None
  return _SEPARATORS.split(names[-1])[-1]


def _regex(pattern: Any, *, fn: str, arg: str) -> re.Pattern[str]:
  if not isinstance(pattern, str):
    raise TypeError(f"{fn}: `{arg}` must be a regular expression string, got {pattern!r}.")
  try:
    return re.compile(pattern)
  except re.error as e:
    raise ValueError(f"{fn}: `{arg}` = {pattern!r} is not a valid regular expression: {e}.") from e


def _stacking_rules(stacked: Any, *, fn: str) -> list[tuple[re.Pattern[str], int]]:
  """``stacked`` as ``[(compiled regex, leading axes)]``; a bare string means one axis.

  A mapping ``{regex: n_axes}`` is its items, in order.
  """
  if isinstance(stacked, str):
    stacked = (stacked,)
  elif isinstance(stacked, Mapping):
    stacked = tuple(stacked.items())
  rules = []
  for i, entry in enumerate(stacked):
    pair = isinstance(entry, (tuple, list)) and len(entry) == 2
    pattern, axes = (entry, 1) if isinstance(entry, str) else tuple(entry) if pair else (None, 0)
    if isinstance(axes, bool) or not isinstance(axes, int) or axes < 1:
      raise TypeError(
        f"{fn}: `stacked[{i}]` must be a regex or a (regex, n_axes >= 1) pair, got {entry!r}."
      )
    rules.append((_regex(pattern, fn=fn, arg=f"stacked[{i}]"), axes))
  return rules


def _layer_ndim(leaf: _tree.Leaf, stacked: list[tuple[re.Pattern[str], int]], *, fn: str) -> int:
  """The leaf's dimensions per layer: its ``ndim`` less the stacking axes that apply."""
  ndim = int(np.ndim(leaf.value))
  for pattern, axes in stacked:
    if pattern.search(leaf.path):
      if ndim < axes:
        raise ValueError(
          f"{fn}: `stacked` says {leaf.path!r} has {axes} leading stacking axes, but the "
          f"leaf has shape {np.shape(leaf.value)}."
        )
      return ndim - axes
  return ndim


class _Modules(NamedTuple):
  """A checked ``*_modules`` argument: module classes, and class names, and its own name."""

  arg: str
  classes: tuple[type, ...]
  names: frozenset[str]

  def __bool__(self) -> bool:
    return bool(self.classes or self.names)

  def enclose(self, leaf: _tree.Leaf) -> bool:
    """Whether a module enclosing ``leaf`` is one of these classes (or a subclass)."""
    for c in leaf.classes:
      if self.classes and issubclass(c, self.classes):
        return True
      if self.names and any(k.__name__ in self.names for k in c.__mro__):
        return True
    return False


def _check_modules(modules: Any, *, fn: str, arg: str) -> _Modules:
  if isinstance(modules, (str, type)):
    modules = (modules,)
  classes, names = [], []
  for i, m in enumerate(modules):
    if isinstance(m, type):
      classes.append(m)
    elif isinstance(m, str):
      names.append(m)
    else:
      raise TypeError(
        f"{fn}: `{arg}[{i}]` must be a class or a class name, got {_hparams.describe(m)}."
      )
  return _Modules(arg, tuple(classes), frozenset(names))


def _rule_mask(
  rule: Callable[[_tree.Leaf], Any],
  *,
  check: Callable[[list[_tree.Leaf]], None] | None = None,
) -> Callable[..., Any]:
  """``params -> mask``: ``rule(leaf)`` on every leaf, the params' structure kept.

  An ``nnx.Module`` is read as ``nnx.state(module, nnx.Param)`` with the
  classes of its submodules attached, and the mask has that state's structure.
  ``check(leaves)``, if given, sees every leaf (absent ones included) first.
  """

  def mask_fn(params: Any) -> Any:
    _reject_step_count(params)
    tree, leaves = _tree.param_leaves(params)
    if check is not None:
      check(leaves)
    rules = iter([rule(leaf) for leaf in leaves if not leaf.absent])
    return _tree.map_leaves(lambda _: next(rules), tree)

  return mask_fn


def _module_check(modules: _Modules, leaves: list[_tree.Leaf], *, fn: str) -> None:
  """A ``*_modules`` rule's check of the params: they carry classes, and each name is a class."""
  seen = {c for leaf in leaves for c in leaf.classes}
  if leaves and all(c.__name__ in CONTAINER_NAMES for c in seen):
    regex = modules.arg.replace("_modules", "_regex")
    raise ValueError(
      f"{fn}: `{modules.arg}` needs params that carry their module classes (Equinox "
      "modules, or the nnx.Module itself in place of its state), but these params are "
      "plain containers (e.g. Flax Linen dicts or nnx.state(...)). Call the mask function "
      f"on the nnx.Module and pass its result as `mask=`, or match names with `{regex}=` "
      "(the how-to lists the names each framework gives its modules)."
    )
  in_tree = {k.__name__ for c in seen for k in c.__mro__}
  unknown = sorted(n for n in modules.names - in_tree if not _class_named(n, seen))
  if unknown:
    present = sorted({c.__name__ for c in seen} - CONTAINER_NAMES)
    raise ValueError(
      f"{fn}: `{modules.arg}` names {unknown}, but no class of that name is defined "
      f"(the params' module classes are {present}). Check the spelling, or pass the "
      "class itself."
    )


def _class_named(name: str, seen: set[type]) -> bool:
  """Whether a class called ``name`` derives from a base of the params' module classes.

  A rule may name a module the model happens not to have (Levanter's
  ``'Embedding'`` on a model without one); a typo names no class at all.
  """
  roots = {k for c in seen for k in c.__mro__ if k.__module__ != "builtins"}
  todo, done = list(roots), set()
  while todo:
    c = todo.pop()
    if c in done:
      continue
    done.add(c)
    if c.__name__ == name:
      return True
    todo.extend(type.__subclasses__(c))
  return False


@_selection.mask_builder
def decay_mask(
  *,
  exclude: Iterable[str] = BIAS_NAMES,
  exclude_regex: Iterable[str] = (),
  min_ndim: int | None = None,
  exclude_if: Callable[[str, Any], bool] | None = None,
  exclude_modules: Iterable[type | str] = (),
  include_regex: Iterable[str] = (),
  include_modules: Iterable[type | str] = (),
  stacked: str | Iterable[str | tuple[str, int]] = (),
) -> Callable[[Any], Any]:
  """Builds a mask function: ``params -> pytree of bool`` (``True`` = decay).

  A leaf is **excluded** from decay (``False``) when any rule below matches,
  and decayed otherwise; with an *include* rule (``include_regex``,
  ``include_modules``), only the leaves it names can decay, the exclusions
  still apply to them (so ``include_modules=('Linear',)`` decays the Linear
  weights, not their biases, unless ``exclude=()``). Rules see the leaf's
  *path string*, its key path joined with ``/`` (``'Dense_0/kernel'``,
  ``'layers/0/bias'``) with any Flax NNX ``Variable`` wrapper removed, so one
  mask serves both the ``Param``-wrapped state ``nnx.Optimizer.init`` sees and
  the plain arrays ``update`` sees.

  1. ``exclude``: the leaf's name (its own key, split on ``.`` and ``/``; see
     :func:`leaf_name`) is one of these. The Haiku bias name ``'b'`` matches
     only a leaf with at most one dimension per layer.
  2. A leaf with **no** name of its own (an element of a list or tuple, e.g.
     ``[(W1, b1), (W2, b2)]``), when ``exclude`` is non-empty and ``min_ndim``
     is ``None``: it is treated as a bias iff it has at most one dimension per
     layer, since there is no name to go by.
  3. ``exclude_regex``: a pattern is *found* (``re.search``) in the path
     string, like Keras' ``exclude_from_weight_decay``. E.g. ``'LayerNorm'``
     excludes everything inside Flax ``LayerNorm_*`` modules.
  4. ``min_ndim``: the leaf has fewer dimensions per layer (``min_ndim=2`` is
     the nanoGPT/timm rule: only matrices and embeddings decay).
  5. ``exclude_modules``: a module enclosing the leaf is an instance of one of
     these classes (a subclass counts), or has one of these class names in its
     MRO. The classes are the pytree's own nodes (Equinox modules), or the
     submodules of an ``nnx.Module`` passed in place of its state. Levanter's
     rule is ``decay_mask(exclude_modules=('LayerNorm', 'RMSNorm', 'Embedding'))``.
  6. ``exclude_if(path, leaf)`` returns ``True``.

  **Include rules** name the only leaves that may decay: ``include_regex`` (a
  pattern found in the path string) or ``include_modules`` (a module enclosing
  the leaf is of one of these classes, as for ``exclude_modules``); a leaf
  either names is a candidate. A class added to the model later then stays
  undecayed instead of decaying silently. Include rules that name no leaf of
  the params warn (nothing would decay).

  **Stacked layers.** ``nn.scan``, ``nnx.vmap``/``nnx.scan`` and
  ``eqx.filter_vmap`` stack a layer's parameters along leading axes, so a
  stacked LayerNorm scale is 2-D. ``stacked`` names those leaves by a regex
  searched in the path string, with the number of leading stacking axes
  (``'blocks/'`` alone means one axis; ``[('encoder/', 1), ('moe/', 2)]``);
  the first pattern that matches applies, and every ``ndim`` rule above counts
  the dimensions per layer.

  The returned function keeps the structure of its argument (NNX ``Variable``
  wrappers included). Called with an ``nnx.Module`` it returns the mask of
  ``nnx.state(module, nnx.Param)``: compute it once and pass the result as
  ``mask=`` (the transforms themselves only ever see the state).

  Args:
    exclude: leaf names that are never decayed. Default: :data:`BIAS_NAMES`.
    exclude_regex: regular expressions searched in the path string.
    min_ndim: leaves with fewer dimensions per layer are not decayed.
    exclude_if: a predicate ``(path_string, leaf) -> bool``.
    exclude_modules: module classes, or class names, whose leaves never decay.
    include_regex: regular expressions; only leaves whose path matches one (or
      that ``include_modules`` names) may decay.
    include_modules: module classes, or class names; only leaves inside one (or
      that ``include_regex`` names) may decay.
    stacked: which leaves carry leading stacking axes, and how many.

  Returns:
    A callable ``params -> mask`` with the structure of ``params``.

  Raises:
    TypeError: an argument has the wrong type (e.g. ``exclude='bias'``).
    ValueError: a regex does not compile; ``min_ndim < 0``; (when called)
      ``exclude_modules`` or ``include_modules`` is given but the params carry
      no module classes, or names a class that does not exist, or a
      ``stacked`` leaf has fewer dimensions than its stacking axes.

  Example:
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> params = {'Dense_0': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)},
    ...           'LayerNorm_0': {'scale': jnp.ones(4), 'bias': jnp.ones(4)}}
    >>> od.decay_mask(exclude=('bias', 'scale'))(params)
    {'Dense_0': {'bias': False, 'kernel': True}, 'LayerNorm_0': {'bias': False, 'scale': False}}
    >>> od.decay_mask(exclude=(), min_ndim=2)(params)['Dense_0']
    {'bias': False, 'kernel': True}

    Only the ``Dense`` layers' weights (the include rule, with the default
    exclusion of biases):

    >>> od.decay_mask(include_regex=('Dense',))(params)
    {'Dense_0': {'bias': False, 'kernel': True}, 'LayerNorm_0': {'bias': False, 'scale': False}}

    Two layers stacked by ``nn.scan``: the scale is 2-D, but 1-D per layer.

    >>> stack = {'layers': {'kernel': jnp.ones((2, 3, 3)), 'scale': jnp.ones((2, 3))}}
    >>> od.decay_mask(min_ndim=2, stacked='layers/')(stack)
    {'layers': {'kernel': True, 'scale': False}}
  """
  fn = "decay_mask"
  for arg, value in (
    ("exclude", exclude),
    ("exclude_regex", exclude_regex),
    ("include_regex", include_regex),
  ):
    if isinstance(value, str):
      raise TypeError(
        f"{fn}: `{arg}` takes a sequence of strings, e.g. `{arg}=({value!r},)`, not a "
        "single string."
      )
  names = frozenset(exclude)
  patterns = [_regex(p, fn=fn, arg=f"exclude_regex[{i}]") for i, p in enumerate(exclude_regex)]
  includes = [_regex(p, fn=fn, arg=f"include_regex[{i}]") for i, p in enumerate(include_regex)]
  if min_ndim is not None and (
    isinstance(min_ndim, bool) or not isinstance(min_ndim, int) or min_ndim < 0
  ):
    raise ValueError(f"{fn}: `min_ndim` must be a non-negative int, got {min_ndim!r}.")
  if exclude_if is not None and not callable(exclude_if):
    raise TypeError(f"{fn}: `exclude_if` must be callable, got {exclude_if!r}.")
  excluded_modules = _check_modules(exclude_modules, fn=fn, arg="exclude_modules")
  included_modules = _check_modules(include_modules, fn=fn, arg="include_modules")
  stacks = _stacking_rules(stacked, fn=fn)
  including = bool(includes or included_modules)

  def named(leaf: _tree.Leaf) -> bool:
    """Whether an include rule names ``leaf``."""
    return any(p.search(leaf.path) for p in includes) or (
      bool(included_modules) and included_modules.enclose(leaf)
    )

  def excluded(leaf: _tree.Leaf) -> bool:
    name = leaf_name(leaf.names)
    ndim = _layer_ndim(leaf, stacks, fn=fn)
    if name is not None and name in names and (name != "b" or ndim <= 1):
      return True
    if name is None and names and min_ndim is None and ndim <= 1:
      return True
    if any(p.search(leaf.path) for p in patterns):
      return True
    if min_ndim is not None and ndim < min_ndim:
      return True
    if excluded_modules and excluded_modules.enclose(leaf):
      return True
    return exclude_if is not None and bool(exclude_if(leaf.path, leaf.value))

  def is_decayed(leaf: _tree.Leaf) -> bool:
    return (named(leaf) or not including) and not excluded(leaf)

  def check(leaves: list[_tree.Leaf]) -> None:
    for modules in (excluded_modules, included_modules):
      if modules:
        _module_check(modules, leaves, fn=fn)
    present = [leaf for leaf in leaves if not leaf.absent]
    if including and present and not any(map(named, present)):
      rules = [f"include_regex={tuple(include_regex)}"] if includes else []
      rules += [f"include_modules={sorted(included_modules.names)}"] if included_modules else []
      paths = ", ".join(repr(leaf.path) for leaf in present[:4])
      warnings.warn(
        f"{fn}: {' and '.join(rules)} name no parameter of these params (paths: {paths}"
        f"{', ...' if len(present) > 4 else ''}): nothing decays.",
        UserWarning,
        stacklevel=_hparams.user_stacklevel(),
      )

  return _rule_mask(is_decayed, check=check)


@_selection.mask_builder
def decay_multipliers(
  rules: Sequence[tuple[str, float]], default: float = 0.0
) -> Callable[[Any], Any]:
  """Builds a mask function of per-leaf decay multipliers from ordered regex rules.

  Each rule is ``(regex, multiplier)``; the regex is ``re.fullmatch``-ed
  against the leaf's path string (its key path joined with ``/``), the
  **first** rule that matches gives the leaf's multiplier, and leaves no rule
  matches get ``default``. These are big_vision's ``wd_mults`` semantics
  exactly: ``decay_multipliers([('.*/kernel', 1.0)])`` decays kernels only.

  A multiplier scales ``l2``/``rate`` for that leaf: 0 means no decay (and no
  cost), 1 the full value, anything else ``multiplier * rate``.

  Args:
    rules: a sequence of ``(regex, multiplier >= 0)`` pairs.
    default: the multiplier of leaves no rule matches (default 0: no decay).

  Returns:
    A callable ``params -> pytree of float`` with the structure of ``params``.

  Raises:
    TypeError: ``rules`` is not a sequence of ``(str, number)`` pairs.
    ValueError: a regex does not compile, or a multiplier is negative or not finite.

  Example:
    >>> import jax.numpy as jnp
    >>> import optaxdecay as od
    >>> params = {'head': {'kernel': jnp.ones((3, 2)), 'bias': jnp.ones(2)},
    ...           'embed': {'embedding': jnp.ones((5, 3))}}
    >>> od.decay_multipliers([('head/kernel', 0.5), ('.*/kernel', 1.0)])(params)
    {'embed': {'embedding': 0.0}, 'head': {'bias': 0.0, 'kernel': 0.5}}
  """
  fn = "decay_multipliers"
  if isinstance(rules, (str, dict)) or not isinstance(rules, Sequence):
    raise TypeError(
      f"{fn}: `rules` must be a sequence of (regex, multiplier) pairs, e.g. "
      f"[('.*/kernel', 1.0)]; got {_hparams.describe(rules)}. If these are the params, the "
      f"builder was passed uncalled as a mask: write `mask=optaxdecay.{fn}([...])`."
    )
  compiled = []
  for i, rule in enumerate(rules):
    if not (isinstance(rule, (tuple, list)) and len(rule) == 2):
      raise TypeError(f"{fn}: `rules[{i}]` must be a (regex, multiplier) pair, got {rule!r}.")
    pattern = _regex(rule[0], fn=fn, arg=f"rules[{i}][0]")
    compiled.append((pattern, _check_multiplier(rule[1], fn=fn, arg=f"rules[{i}][1]")))
  fallback = _check_multiplier(default, fn=fn, arg="default")

  def multiplier(leaf: _tree.Leaf) -> float:
    return next((m for p, m in compiled if p.fullmatch(leaf.path)), fallback)

  return _rule_mask(multiplier)


def _check_multiplier(value: Any, *, fn: str, arg: str) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{fn}: `{arg}` must be a float >= 0, got {value!r}.")
  x = float(value)
  if not math.isfinite(x) or x < 0:
    raise ValueError(f"{fn}: `{arg}` must be finite and >= 0, got {x}.")
  return x


def _reject_step_count(params: Any) -> None:
  """A bare integer scalar is a step count, never params: say what went wrong."""
  if (
    isinstance(params, (jax.Array, np.ndarray, int))
    and not isinstance(params, bool)
    and np.ndim(params) == 0
    and np.issubdtype(jnp.result_type(params), np.integer)
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

  The rule: a leaf is a bias iff its name — its own key, split on ``.`` and
  ``/`` (:func:`leaf_name`) — is ``'bias'`` (Flax, Equinox, PyTorch
  ``state_dict``) or ``'offset'`` (Haiku's norm bias), or is ``'b'`` (Haiku)
  on a leaf with at most one dimension. A leaf with no name of its own (an
  element of a list or tuple) is a bias iff ``ndim <= 1``. Everything else,
  norm ``scale`` and embeddings included, is decayed; use :func:`decay_mask`
  to exclude more.

  Works on nested dicts, Flax Linen params and ``FrozenDict``, Flax NNX state
  (``Param``-wrapped, as ``nnx.Optimizer.init`` sees it, and plain arrays, as
  ``update`` sees it) and the ``nnx.Module`` itself, Equinox modules
  (``.bias``), Haiku params and lists/tuples; the result has the structure of
  ``params``.

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
