"""``bias_mask`` and ``decay_mask`` on every pytree family users bring."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxdecay as od


def test_nested_dict():
  params = {"a": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "w": jnp.ones(3)}
  assert od.bias_mask(params) == {"a": {"kernel": True, "bias": False}, "w": True}


def test_haiku_names():
  params = {
    "mlp/~/linear_0": {"w": jnp.ones((2, 3)), "b": jnp.ones(3)},
    "layer_norm": {"scale": jnp.ones(3), "offset": jnp.ones(3)},
  }
  mask = od.bias_mask(params)
  assert mask["mlp/~/linear_0"] == {"w": True, "b": False}
  # Haiku's norm `offset` is its bias: not decayed, like Flax LayerNorm's `bias`.
  assert mask["layer_norm"] == {"scale": True, "offset": False}


def test_flat_state_dict_names():
  """PyTorch-style flat keys: the name is the last ``.``-separated part."""
  params = {"fc1.weight": jnp.ones((3, 2)), "fc1.bias": jnp.ones(3), "head/b": jnp.ones(2)}
  assert od.bias_mask(params) == {"fc1.weight": True, "fc1.bias": False, "head/b": False}


def test_lists_and_tuples_without_names():
  """No names at all: 1-D leaves are the biases."""
  params = [(jnp.ones((2, 3)), jnp.ones(3)), (jnp.ones((3, 1)), jnp.ones(1))]
  assert od.bias_mask(params) == [(True, False), (True, False)]


def test_list_under_named_key():
  params = {"bias": [jnp.ones(2), jnp.ones(2)], "kernel": [jnp.ones((2, 2))]}
  assert od.bias_mask(params) == {"bias": [False, False], "kernel": [True]}


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Linear:
  """An Equinox-style module: attribute paths ``.weight`` / ``.bias``."""

  weight: jax.Array
  bias: jax.Array


def test_attribute_paths():
  model = [Linear(jnp.ones((3, 2)), jnp.ones(3)), Linear(jnp.ones((1, 3)), jnp.ones(1))]
  mask = od.bias_mask(model)
  assert mask == [Linear(True, False), Linear(True, False)]
  tx = od.decoupled_weight_decay(0.5, mask=od.bias_mask)
  updates = jax.tree.map(jnp.zeros_like, model)
  out, _ = tx.update(updates, tx.init(model), model)
  np.testing.assert_array_equal(out[0].bias, np.zeros(3))
  np.testing.assert_allclose(out[0].weight, -0.5 * np.ones((3, 2)))


def _linen_params():
  flax = pytest.importorskip("flax", reason="flax is in the [test] extra")
  nn = flax.linen

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Dense(8)(x)
      x = nn.LayerNorm()(x)
      return nn.Dense(2)(nn.relu(x))

  return MLP().init(jax.random.key(0), jnp.ones((1, 4)))["params"]


def test_flax_linen_params():
  params = _linen_params()
  mask = od.bias_mask(params)
  assert mask["Dense_0"] == {"kernel": True, "bias": False}
  assert mask["Dense_1"] == {"kernel": True, "bias": False}
  assert mask["LayerNorm_0"] == {"scale": True, "bias": False}
  norm_free = od.decay_mask(exclude_regex=("LayerNorm",), exclude=("bias",))(params)
  assert norm_free["LayerNorm_0"] == {"scale": False, "bias": False}
  assert norm_free["Dense_0"] == {"kernel": True, "bias": False}


def test_frozen_dict_params_with_plain_dict_mask():
  """optax#160: a dict mask on FrozenDict params fails in ``optax.masked``; ours matches by path."""
  flax = pytest.importorskip("flax", reason="flax is in the [test] extra")
  params = flax.core.freeze(_linen_params())
  dict_mask = jax.tree.map(lambda _: True, flax.core.unfreeze(params))
  dict_mask["Dense_0"]["bias"] = False
  tx = od.decoupled_weight_decay(0.5, mask=dict_mask)
  out, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_array_equal(out["Dense_0"]["bias"], 0.0)
  np.testing.assert_allclose(out["Dense_0"]["kernel"], -0.5 * params["Dense_0"]["kernel"])
  # The callable mask keeps the FrozenDict structure, so Optax's own masked works too.
  assert type(od.bias_mask(params)) is type(params)
  adamw = optax.adamw(1e-3, weight_decay=0.1, mask=od.bias_mask)
  adamw.update(jax.tree.map(jnp.zeros_like, params), adamw.init(params), params)


def _nnx_step(nnx, model, tx):
  """One ``nnx.Optimizer`` step with zero gradients: only the decay moves weights."""
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
  opt.update(model, grads)
  after = nnx.state(model, nnx.Param)
  return before, after


@pytest.mark.parametrize("kind", ["callable", "pytree"])
def test_flax_nnx_optimizer(kind, nnx_model):
  """Init sees ``Param``-wrapped state, update sees plain arrays: both work."""
  nnx, model = nnx_model
  state = nnx.state(model, nnx.Param)
  mask = od.bias_mask if kind == "callable" else od.bias_mask(state)
  tx = optax.chain(optax.sgd(0.1), od.decoupled_weight_decay(0.5, mask=mask))
  before, after = _nnx_step(nnx, model, tx)
  np.testing.assert_array_equal(after["dense"]["bias"][...], before["dense"]["bias"][...])
  np.testing.assert_array_equal(after["norm"]["bias"][...], before["norm"]["bias"][...])
  np.testing.assert_allclose(
    after["dense"]["kernel"][...], 0.5 * before["dense"]["kernel"][...], rtol=1e-6
  )
  np.testing.assert_allclose(after["norm"]["scale"][...], 0.5 * before["norm"]["scale"][...])


def test_flax_nnx_with_optax_adamw_mask(nnx_model):
  """``bias_mask`` also serves Optax's own ``adamw(mask=...)`` under NNX."""
  nnx, model = nnx_model
  before, after = _nnx_step(nnx, model, optax.adamw(0.1, weight_decay=0.5, mask=od.bias_mask))
  np.testing.assert_array_equal(after["dense"]["bias"][...], before["dense"]["bias"][...])
  np.testing.assert_allclose(
    after["dense"]["kernel"][...], (1 - 0.05) * before["dense"]["kernel"][...], rtol=1e-6
  )


def test_nnx_mask_is_wrapped_like_state(nnx_model):
  nnx, model = nnx_model
  state = nnx.state(model, nnx.Param)
  mask = od.bias_mask(state)
  assert jax.tree.structure(mask) == jax.tree.structure(state)
  assert [bool(x) for x in jax.tree.leaves(mask)] == [
    not str(p[-2].key).endswith("bias") for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]
  ]


def test_decay_mask_min_ndim():
  params = {"emb": {"embedding": jnp.ones((10, 4))}, "ln": {"scale": jnp.ones(4)}, "b": jnp.ones(4)}
  mask = od.decay_mask(exclude=(), min_ndim=2)(params)
  assert mask == {"emb": {"embedding": True}, "ln": {"scale": False}, "b": False}


def test_decay_mask_exclude_names_and_predicate():
  params = {
    "emb": {"embedding": jnp.ones((10, 4))},
    "dense": {"kernel": jnp.ones((4, 4))},
    "bias": jnp.ones(4),
  }
  mask = od.decay_mask(exclude=("bias", "embedding"))(params)
  assert mask == {"emb": {"embedding": False}, "dense": {"kernel": True}, "bias": False}
  seen = []

  def big(path, leaf):
    seen.append(path)
    return leaf.size > 12

  mask = od.decay_mask(exclude=(), exclude_if=big)(params)
  assert mask == {"emb": {"embedding": False}, "dense": {"kernel": False}, "bias": True}
  assert sorted(seen) == ["bias", "dense/kernel", "emb/embedding"]


def test_decay_mask_regex_searches_path():
  params = {"encoder": {"LayerNorm_0": {"scale": jnp.ones(3)}, "Dense_0": {"kernel": jnp.ones(3)}}}
  mask = od.decay_mask(exclude_regex=(r"(?i)layernorm",))(params)
  assert mask == {"encoder": {"LayerNorm_0": {"scale": False}, "Dense_0": {"kernel": True}}}


def test_leaf_name():
  assert od.leaf_name(("Dense_0", "kernel")) == "kernel"
  assert od.leaf_name(("layers", 0)) is None  # a list element has no name of its own
  assert od.leaf_name(("fc.bias",)) == "bias"
  assert od.leaf_name((0, 1)) is None


def test_decay_mask_bad_arguments():
  with pytest.raises(TypeError, match="decay_mask: `exclude`"):
    od.decay_mask(exclude="bias")
  with pytest.raises(ValueError, match="decay_mask: `min_ndim`"):
    od.decay_mask(min_ndim=-1)
  with pytest.raises(TypeError, match="decay_mask: `exclude_if`"):
    od.decay_mask(exclude_if=3)


def test_mask_called_with_step_count_raises():
  """What ``inject_hyperparams`` does with a mask when ``static_args`` is missing."""
  with pytest.raises(TypeError, match="static_args=\\('mask',\\)"):
    od.bias_mask(jnp.zeros([], jnp.int32))


def test_scalar_float_params_are_fine():
  assert od.bias_mask(jnp.ones(())) is False  # a bare 0-d leaf with no name
  chex.assert_trees_all_equal(od.bias_mask({"w": jnp.ones(())}), {"w": True})
