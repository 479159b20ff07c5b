"""Deprecation paths: old names and old calling conventions keep working for one release, warning.

Every warning is a ``DeprecationWarning`` that names the new spelling. What is deprecated, and
since when, is listed in ``CHANGELOG.md``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: The release in which the deprecated spellings below are removed.
REMOVED_IN = "0.3"


def renamed(module: str, aliases: dict[str, tuple[str, Any]]) -> Callable[[str], Any]:
  """A module ``__getattr__`` serving ``aliases`` (``old name -> (new name, object)``), warning."""

  def getattr_(name: str) -> Any:
    if name not in aliases:
      raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, obj = aliases[name]
    warnings.warn(
      f"{module}.{name} is deprecated and will be removed in {REMOVED_IN}: use {module}.{new}.",
      DeprecationWarning,
      stacklevel=2,
    )
    return obj

  return getattr_


def _spelled(value: Any) -> str:
  """``value`` as it would be written in a call, if it is a number or a short string; ``...``."""
  if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) < 30):
    return repr(value)
  return "..."


def keyword_only(*names: str) -> Callable[[F], F]:
  """Makes ``names`` keyword-only, still accepting them positionally (in their old order) with a
  ``DeprecationWarning`` that shows the keyword spelling.

  The decorated function's signature must list ``names`` as keyword-only, right after its
  positional parameters; its old signature had them positionally, in this order.
  """

  def decorate(fn: F) -> F:
    params = inspect.signature(fn).parameters.values()
    positional = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      extra = args[positional:]
      if extra:
        if len(extra) > len(names):
          raise TypeError(
            f"{fn.__name__}() takes {positional} positional arguments but {len(args)} were given."
          )
        moved = dict(zip(names, extra, strict=False))
        clash = sorted(set(moved) & set(kwargs))
        if clash:
          raise TypeError(f"{fn.__name__}() got multiple values for argument {clash[0]!r}.")
        spelled = ", ".join(f"{k}={_spelled(v)}" for k, v in moved.items())
        warnings.warn(
          f"{fn.__name__}: passing {', '.join(f'`{k}`' for k in moved)} positionally is "
          f"deprecated and will stop working in {REMOVED_IN}: write {fn.__name__}(..., "
          f"{spelled}).",
          DeprecationWarning,
          stacklevel=2,
        )
        args, kwargs = args[:positional], {**kwargs, **moved}
      return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

  return decorate
