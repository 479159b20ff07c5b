"""The shared tree/mask utility: naming leaves and matching masks by key path."""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import pytest

from optaxdecay import _tree


def test_names_of_every_key_kind():
  Pair = collections.namedtuple("Pair", ["kernel", "bias"])
  tree = {"a": [jnp.ones(1), Pair(jnp.ones(2), jnp.ones(2))], "b": {3: jnp.ones(1)}}
  pairs, _ = _tree.flatten_with_names(tree)
  assert [n for n, _ in pairs] == [("a", 0), ("a", 1, "kernel"), ("a", 1, "bias"), ("b", 3)]
  assert _tree.path_str(("a", 1, "bias")) == "a/1/bias"
  assert _tree.path_str(()) == "<root>"


def test_nnx_variables_are_unwrapped_leaves():
  nnx = pytest.importorskip("flax.nnx", reason="flax is in the [test] extra")
  layer = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
  state = nnx.state(layer, nnx.Param)
  pairs, _ = _tree.flatten_with_names(state)
  assert sorted(n for n, _ in pairs) == [("bias",), ("kernel",)]
  assert all(isinstance(leaf, jax.Array) for _, leaf in pairs)
  plain = jax.tree.map(lambda x: x, nnx.to_pure_dict(state))
  assert [n for n, _ in _tree.flatten_with_names(plain)[0]] == [n for n, _ in pairs]


def test_longest_prefix_wins():
  params = {"enc": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}, "head": jnp.ones(2)}
  mask = {"enc": {"kernel": True, "bias": False}, "head": True}
  assert _tree.resolve_mask(mask, params, transform="t") == [False, True, True]
  assert _tree.resolve_mask({"enc": False, "head": True}, params, transform="t") == [
    False,
    False,
    True,
  ]


def test_callable_mask_receives_params():
  params = {"w": jnp.ones(2), "b": jnp.ones(2)}
  seen = []
  _tree.resolve_mask(lambda p: seen.append(p) or {"w": True, "b": False}, params, transform="t")
  assert seen == [params]


def test_empty_mask_raises():
  with pytest.raises(ValueError, match="t: `mask` has no leaves"):
    _tree.resolve_mask({}, {"w": jnp.ones(1)}, transform="t")


def test_none_selects_everything_and_checks_dtypes():
  assert _tree.resolve_mask(None, {"w": jnp.ones(1)}, transform="t") == [True]
  with pytest.raises(TypeError, match="t: `mask` selects the leaf 'n' of dtype int32"):
    _tree.resolve_mask(None, {"n": jnp.ones(1, jnp.int32)}, transform="t")
