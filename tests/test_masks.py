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


# --------------------------------------------------------------------------------------------
# Per-leaf multipliers: decay_multipliers (big_vision's wd_mults)


def test_decay_multipliers_first_match_wins_and_default():
  params = {
    "head": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
    "enc": {"kernel": jnp.ones((3, 3)), "bias": jnp.ones(3)},
    "embed": {"embedding": jnp.ones((5, 3))},
  }
  rules = [("head/kernel", 0.5), (".*/kernel", 1.0), ("head/.*", 3.0)]
  assert od.decay_multipliers(rules)(params) == {
    "head": {"kernel": 0.5, "bias": 3.0},
    "enc": {"kernel": 1.0, "bias": 0.0},
    "embed": {"embedding": 0.0},
  }
  # fullmatch, not search: 'kernel' alone matches no path.
  assert od.decay_multipliers([("kernel", 1.0)], default=0.1)(params)["enc"]["kernel"] == 0.1


def test_decay_multipliers_scale_the_decay_per_leaf():
  params = {"a": jnp.full(2, 2.0), "b": jnp.full(2, 2.0), "c": jnp.full(2, 2.0)}
  mask = od.decay_multipliers([("a", 1.0), ("b", 0.25)])
  for make, sign in ((od.decoupled_weight_decay, -1), (od.add_l2_to_grad, 1)):
    tx = make(0.1, mask=mask)
    out, _ = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(out["a"], sign * 0.2)
    np.testing.assert_allclose(out["b"], sign * 0.05)
    np.testing.assert_array_equal(out["c"], 0.0)


@pytest.mark.parametrize(
  ("rules", "default", "error", "match"),
  [
    ("kernel", 0.0, TypeError, "`rules` must be a sequence of"),
    ([("a", 1.0, 2)], 0.0, TypeError, r"`rules\[0\]` must be a \(regex, multiplier\) pair"),
    ([("(", 1.0)], 0.0, ValueError, r"`rules\[0\]\[0\]` = '\(' is not a valid regular"),
    ([("a", -1.0)], 0.0, ValueError, r"`rules\[0\]\[1\]` must be finite and >= 0"),
    ([("a", True)], 0.0, TypeError, r"`rules\[0\]\[1\]` must be a float"),
    ([], float("inf"), ValueError, "`default` must be finite"),
  ],
)
def test_decay_multipliers_bad_rules(rules, default, error, match):
  with pytest.raises(error, match="decay_multipliers: " + match):
    od.decay_multipliers(rules, default=default)


def test_decay_mask_bad_regex_names_the_argument():
  with pytest.raises(ValueError, match=r"decay_mask: `exclude_regex\[1\]` = '\[' is not a valid"):
    od.decay_mask(exclude_regex=("ok", "["))


# --------------------------------------------------------------------------------------------
# Decided inconsistencies: Haiku offset, a 2-D `b`, lists inside dicts


def test_two_dimensional_b_is_a_matrix_not_a_bias():
  params = {"lora": {"a": jnp.ones((4, 2)), "b": jnp.ones((2, 4))}, "linear": {"b": jnp.ones(4)}}
  assert od.bias_mask(params) == {"lora": {"a": True, "b": True}, "linear": {"b": False}}


def test_wrapping_a_bare_list_in_a_dict_changes_nothing():
  layers = [jnp.ones((2, 3)), jnp.ones(3), jnp.ones((3, 1)), jnp.ones(1)]
  assert od.bias_mask(layers) == [True, False, True, False]
  assert od.bias_mask({"layers": layers}) == {"layers": [True, False, True, False]}
  assert od.bias_mask({"net": {"layers": tuple(layers)}})["net"]["layers"] == (
    True,
    False,
    True,
    False,
  )


def test_haiku_layer_norm_offset_is_not_decayed():
  hk = pytest.importorskip("haiku", reason="dm-haiku is in the [test] extra")
  f = hk.transform(lambda x: hk.LayerNorm(-1, True, True)(hk.Linear(3)(x)))
  params = f.init(jax.random.key(0), jnp.ones((1, 2)))
  assert od.bias_mask(params) == {
    "layer_norm": {"offset": False, "scale": True},
    "linear": {"b": False, "w": True},
  }


# --------------------------------------------------------------------------------------------
# Rules by module class


def test_exclude_modules_on_equinox_by_class_and_by_name(eqx_block):
  eqx, params = eqx_block
  by_class = od.decay_mask(exclude_modules=(eqx.nn.LayerNorm, eqx.nn.RMSNorm, eqx.nn.Embedding))
  levanter = od.decay_mask(exclude_modules=("LayerNorm", "RMSNorm", "Embedding"))
  for mask_fn in (by_class, levanter):
    mask = mask_fn(params)
    assert not mask.token_embeddings.weight and not mask.ln.weight and not mask.ln.bias
    assert not mask.rms.weight
    assert [layer.weight for layer in mask.mlp.layers] == [True, True]
    assert [layer.bias for layer in mask.mlp.layers] == [False, False]
  # Used as a precomputed mask, with Adam, on the module pytree itself.
  tx = optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(0.5, mask=levanter(params)))
  zeros = jax.tree.map(jnp.zeros_like, params)
  out, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  np.testing.assert_array_equal(out.ln.weight, 0.0)
  np.testing.assert_allclose(out.mlp.layers[0].weight, -0.5 * params.mlp.layers[0].weight)


def test_exclude_modules_matches_subclasses():
  eqx = pytest.importorskip("equinox", reason="equinox is in the [test] extra")

  class MyNorm(eqx.nn.LayerNorm):
    pass

  params = {"n": eqx.filter(MyNorm(3), eqx.is_inexact_array), "w": jnp.ones((2, 2))}
  for spec in (eqx.nn.LayerNorm, "LayerNorm"):
    mask = od.decay_mask(exclude_modules=(spec,))(params)
    assert mask["w"] and not mask["n"].weight


def test_exclude_modules_on_an_nnx_module_gives_a_state_mask(nnx_model):
  nnx, model = nnx_model
  mask = od.decay_mask(exclude_modules=(nnx.LayerNorm,))(model)
  state = nnx.state(model, nnx.Param)
  assert jax.tree.structure(mask) == jax.tree.structure(state)
  plain = nnx.to_pure_dict(nnx.State(mask)) if not isinstance(mask, dict) else mask
  assert plain == {
    "dense": {"kernel": True, "bias": False},
    "norm": {"scale": False, "bias": False},
    "head": {"kernel": True, "bias": False},
  }
  tx = optax.chain(optax.sgd(0.1), od.decoupled_weight_decay(0.5, mask=mask))
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  before = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  opt.update(model, jax.tree.map(jnp.zeros_like, before))
  after = nnx.state(model, nnx.Param)
  np.testing.assert_array_equal(after["norm"]["scale"][...], before["norm"]["scale"][...])
  np.testing.assert_allclose(
    after["dense"]["kernel"][...], 0.5 * before["dense"]["kernel"][...], rtol=1e-6
  )


def test_exclude_modules_on_plain_dicts_raises_instead_of_ignoring():
  params = _linen_params()
  mask_fn = od.decay_mask(exclude_modules=("LayerNorm",))
  with pytest.raises(ValueError, match="`exclude_modules` needs params that carry their module"):
    mask_fn(params)
  tx = od.decoupled_weight_decay(0.1, mask=mask_fn)
  with pytest.raises(ValueError, match="exclude_modules"):
    tx.init(params)


def test_exclude_modules_bad_entry():
  with pytest.raises(TypeError, match=r"decay_mask: `exclude_modules\[0\]` must be a class"):
    od.decay_mask(exclude_modules=(3,))


# --------------------------------------------------------------------------------------------
# Stacked layers: nn.scan (Linen) and nnx.vmap (NNX)


def test_stacked_linen_scan_counts_per_layer_dimensions():
  flax = pytest.importorskip("flax", reason="flax is in the [test] extra")
  nn = flax.linen

  class Block(nn.Module):
    @nn.compact
    def __call__(self, x, _):
      return nn.LayerNorm()(nn.Dense(4)(x)), None

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=3)
      x, _ = stack(name="blocks")(x, None)
      return nn.Dense(2, name="head")(x)

  params = Net().init(jax.random.key(0), jnp.ones((1, 4)))["params"]
  assert params["blocks"]["LayerNorm_0"]["scale"].shape == (3, 4)  # stacked: 2-D
  naive = od.decay_mask(exclude=(), min_ndim=2)(params)
  assert naive["blocks"]["LayerNorm_0"]["scale"]  # the jaxformer#28 bug
  mask = od.decay_mask(exclude=(), min_ndim=2, stacked=("blocks/",))(params)
  assert mask["blocks"] == {
    "Dense_0": {"kernel": True, "bias": False},
    "LayerNorm_0": {"scale": False, "bias": False},
  }
  assert mask["head"] == {"kernel": True, "bias": False}


def test_stacked_nnx_vmap_layers():
  nnx = pytest.importorskip("flax.nnx", reason="flax is in the [test] extra")

  class Block(nnx.Module):
    def __init__(self, rngs):
      self.linear = nnx.Linear(4, 4, rngs=rngs)
      self.norm = nnx.LayerNorm(4, rngs=rngs)

  @nnx.split_rngs(splits=3)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def make(rngs):
    return Block(rngs)

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.blocks = make(rngs)
      self.head = nnx.Linear(4, 2, rngs=rngs)

  model = Net(nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  assert state["blocks"]["norm"]["scale"][...].shape == (3, 4)
  mask = od.decay_mask(min_ndim=2, stacked=[("blocks/", 1)])(model)
  flat = {leaf.path: leaf.value for leaf in od._tree.flatten_leaves(mask)[0]}
  assert flat == {
    "blocks/linear/bias": False,
    "blocks/linear/kernel": True,
    "blocks/norm/bias": False,
    "blocks/norm/scale": False,
    "head/bias": False,
    "head/kernel": True,
  }


def test_stacked_bad_arguments():
  with pytest.raises(TypeError, match=r"decay_mask: `stacked\[0\]` must be a regex or a"):
    od.decay_mask(stacked=[("layers/", 0)])
  with pytest.raises(ValueError, match=r"`stacked` says 'w' has 2 leading stacking axes"):
    od.decay_mask(stacked=[("w", 2)])({"w": jnp.ones(3)})


# ----------------------------------------------------------------------------------------------
# The edges of the mask builders: honoured, or refused naming the argument.


def test_stacked_as_a_mapping_is_honoured():
  params = {"moe": {"scale": jnp.ones((2, 2, 3))}, "dense": {"scale": jnp.ones((2, 3))}}
  as_dict = od.decay_mask(exclude=(), min_ndim=2, stacked={"moe/": 2, "dense/": 1})(params)
  as_pairs = od.decay_mask(exclude=(), min_ndim=2, stacked=[("moe/", 2), ("dense/", 1)])(params)
  assert as_dict == as_pairs == {"moe": {"scale": False}, "dense": {"scale": False}}
  # Without the 2, the stacked (2, 2, 3) scale would be read as 2-D per layer: decayed.
  assert od.decay_mask(exclude=(), min_ndim=2, stacked="moe/")(params)["moe"]["scale"]


def test_leaf_name_takes_path_strings_and_jax_key_paths():
  from jax.tree_util import DictKey, GetAttrKey, SequenceKey

  assert od.leaf_name("Dense_0/bias") == "bias"
  assert od.leaf_name((DictKey("Dense_0"), DictKey("fc1.bias"))) == "bias"
  assert od.leaf_name((GetAttrKey("linear"), GetAttrKey("weight"))) == "weight"
  assert od.leaf_name((DictKey("layers"), SequenceKey(0))) is None
  ((path, _),), _ = jax.tree_util.tree_flatten_with_path({"head": {"b": jnp.ones(2)}})
  assert od.leaf_name(path) == "b"
  with pytest.raises(TypeError, match="leaf_name: `names` must be a key path"):
    od.leaf_name(3)


def test_a_single_string_names_the_argument_and_suggests_its_own_form():
  with pytest.raises(TypeError, match=r"`exclude_regex=\('LayerNorm',\)`"):
    od.decay_mask(exclude_regex="LayerNorm")
  with pytest.raises(TypeError, match=r"`exclude=\('bias',\)`"):
    od.decay_mask(exclude="bias")


def test_exclude_modules_typo_raises(eqx_block):
  _, params = eqx_block
  with pytest.raises(ValueError, match=r"names \['LayerNrom'\], but no class of that name"):
    od.decay_mask(exclude_modules=("LayerNrom", "Embedding"))(params)
  # A class that exists but that this model lacks is fine (a rule shared across models).
  mask = od.decay_mask(exclude_modules=("LayerNorm", "RMSNorm", "Embedding", "GroupNorm"))(params)
  assert not mask.ln.weight and not mask.token_embeddings.weight


def test_levanters_nnx_line_excludes_nnx_embed():
  nnx = pytest.importorskip("flax.nnx", reason="flax is in the [test] extra")

  class Model(nnx.Module):
    def __init__(self, rngs):
      self.embed = nnx.Embed(5, 3, rngs=rngs)
      self.norm = nnx.LayerNorm(3, rngs=rngs)
      self.head = nnx.Linear(3, 2, rngs=rngs)

  model = Model(nnx.Rngs(0))
  mask = od.decay_mask(exclude_modules=("LayerNorm", "RMSNorm", "Embed"))(model)
  assert {k: bool(v.get_value()) for k, v in mask["embed"].items()} == {"embedding": False}
  assert bool(mask["head"]["kernel"].get_value())
  table = od.diagnostics.describe_mask(model, mask=od.bias_mask)  # the module, not its state
  assert {r.path for r in table.rows} == {
    "embed/embedding", "norm/scale", "norm/bias", "head/kernel", "head/bias"
  }  # fmt: skip


# --- Include rules: only what they name may decay. ---


def test_include_rules_keep_the_exclusions_unless_told_otherwise(eqx_block):
  eqx, params = eqx_block
  only_linear = od.decay_mask(include_modules=(eqx.nn.Linear,))(params)
  decayed = {p for p, m in _paths(only_linear) if m}
  assert decayed == {"mlp/layers/0/weight", "mlp/layers/1/weight"}
  with_biases = od.decay_mask(include_modules=("Linear",), exclude=())(params)
  assert {p for p, m in _paths(with_biases) if m} == decayed | {
    "mlp/layers/0/bias",
    "mlp/layers/1/bias",
  }
  # Either include rule names a candidate: the union.
  both = od.decay_mask(include_modules=("Linear",), include_regex=("token_embeddings",))(params)
  assert {p for p, m in _paths(both) if m} == decayed | {"token_embeddings/weight"}


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    ({"include_regex": "Dense"}, TypeError, r"`include_regex` takes a sequence of strings"),
    ({"include_regex": ("(",)}, ValueError, r"`include_regex\[0\]` = '\(' is not a valid"),
    ({"include_modules": (3,)}, TypeError, r"`include_modules\[0\]` must be a class or a class"),
  ],
)
def test_bad_include_rules_raise_naming_the_argument(kwargs, error, match):
  with pytest.raises(error, match=f"decay_mask: {match}"):
    od.decay_mask(**kwargs)


def test_include_modules_naming_no_class_raises_and_naming_no_leaf_warns(eqx_block):
  _, params = eqx_block
  with pytest.raises(ValueError, match=r"`include_modules` names \['Linaer'\], but no class"):
    od.decay_mask(include_modules=("Linaer",))(params)
  plain = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
  with pytest.warns(UserWarning, match=r"include_regex=\('Dense',\) name no parameter.*'dense/"):
    mask = od.decay_mask(include_regex=("Dense",))(plain)
  assert not any(jax.tree.leaves(mask))


def _paths(tree):
  """``[(path, leaf)]`` with JAX's own key paths (not optaxdecay's walk)."""
  pairs, _ = jax.tree_util.tree_flatten_with_path(tree)
  part = lambda k: str(next(getattr(k, a) for a in ("name", "key", "idx") if hasattr(k, a)))
  return [("/".join(part(k) for k in p), x) for p, x in pairs]
