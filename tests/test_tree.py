"""The shared tree/mask utility: naming leaves and matching masks by key path."""

from __future__ import annotations

import collections
import dataclasses

import jax
import jax.numpy as jnp
import optax
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


def test_absent_leaves_are_kept_and_marked():
  """``None`` and ``optax.MaskedNode`` hold no parameter but keep their place."""
  tree = {"a": None, "b": optax.MaskedNode(), "c": jnp.ones(1)}
  leaves, _ = _tree.flatten_leaves(tree)
  assert [(leaf.path, leaf.absent) for leaf in leaves] == [("a", True), ("b", True), ("c", False)]
  out = _tree.map_leaves(lambda leaf: leaf.path, tree)
  assert out["a"] is None and isinstance(out["b"], optax.MaskedNode) and out["c"] == "c"


def test_enclosing_classes_of_a_registered_dataclass():
  @jax.tree_util.register_dataclass
  @dataclasses.dataclass
  class Inner:
    w: jax.Array

  @jax.tree_util.register_dataclass
  @dataclasses.dataclass
  class Outer:
    layers: list
    head: Inner

  tree = Outer([Inner(jnp.ones(1))], Inner(jnp.ones(2)))
  leaves, _ = _tree.flatten_leaves(tree)
  assert [(leaf.path, leaf.classes) for leaf in leaves] == [
    ("layers/0/w", (Outer, list, Inner)),
    ("head/w", (Outer, Inner)),
  ]


def test_nnx_graph_classes_by_path():
  nnx = pytest.importorskip("flax.nnx", reason="flax is in the [test] extra")

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.dense = nnx.Linear(2, 2, rngs=rngs)
      self.norm = nnx.LayerNorm(2, rngs=rngs)

  state, classes = _tree.nnx_param_state(Net(nnx.Rngs(0)))
  assert classes[("dense",)] is nnx.Linear and classes[("norm",)] is nnx.LayerNorm
  assert sorted(leaf.path for leaf in _tree.flatten_leaves(state)[0]) == [
    "dense/bias",
    "dense/kernel",
    "norm/bias",
    "norm/scale",
  ]
