"""What ``mask=`` means (``optaxdecay._selection``), tried as Optax's own tests try ``masked``.

Every test runs on every leafwise row of ``tests/helpers.py``, against the row's leaf rule.
Several are ports of the cases in Optax's ``transforms/_masking_test.py`` and
``_adding_test.py`` that apply to a decay transform.
"""

from __future__ import annotations

import copy
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import LEAFWISE, ROWS

import optaxdecay as od


@pytest.fixture(params=LEAFWISE)
def tx_case(request):
  """``(name in errors, make(c, **kwargs), rule(u, w, c))`` of one leafwise row."""
  row = ROWS[request.param]
  return row.fn, row.make, row.rule


def _params():
  return {"a": 1.0, "b": [2.0, 3.0], "c": {"d": 4.0, "e": (5.0, 6.0)}}


def _arrays(tree):
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)


def _expect(expr, updates, params, mults):
  return jax.tree.map(lambda u, w, m: expr(u, w, 0.1 * m) if m else u, updates, params, mults)


# --------------------------------------------------------------------------------------------
# Ports of optax/transforms/_masking_test.py and _adding_test.py


@pytest.mark.parametrize("use_fn", [False, True])
def test_masked_port(tx_case, use_fn):
  """``test_masked``: a full-tree bool mask, static or a function; repeated application."""
  _, make, expr = tx_case
  mask = {"a": True, "b": [False, True], "c": {"d": True, "e": (False, True)}}
  params = _arrays(_params())
  updates = jax.tree.map(lambda x: -x / 10.0, params)  # opposite sign: cautious decays too
  tx = make(0.1, mask=(lambda _: mask) if use_fn else mask)
  update = jax.jit(tx.update)
  state = jax.jit(tx.init)(params)
  mults = jax.tree.map(float, mask)
  out, state = update(updates, state, params)
  chex.assert_trees_all_close(out, _expect(expr, updates, params, mults), atol=1e-7)
  again, _ = update(out, state, params)
  chex.assert_trees_all_close(again, _expect(expr, out, params, mults), atol=1e-7)


def test_prefix_mask_port(tx_case):
  """``test_prefix_mask``: a mask that is a prefix of the params."""
  _, make, expr = tx_case
  mask = {"a": True, "b": False, "c": {"d": False, "e": True}}
  params = _arrays({"a": 1.0, "b": {"f": 2.0}, "c": {"d": 3.0, "e": ([4.0, 5.0], 6.0)}})
  updates = jax.tree.map(lambda x: -x / 10.0, params)
  tx = make(0.1, mask=mask)
  out, _ = jax.jit(tx.update)(updates, tx.init(params), params)
  mults = {"a": 1.0, "b": {"f": 0.0}, "c": {"d": 0.0, "e": ([1.0, 1.0], 1.0)}}
  chex.assert_trees_all_close(out, _expect(expr, updates, params, mults), atol=1e-7)


@pytest.mark.parametrize("container", [list, tuple, dict])
def test_empty_params_port(tx_case, container):
  """``test_empty``: no parameters at all is no error and changes nothing."""
  _, make, _ = tx_case
  for mask in (None, od.bias_mask, container()):
    tx = make(0.1, mask=mask)
    out, _ = tx.update(container(), tx.init(container()), container())
    assert out == container()


@pytest.mark.parametrize("extra_key_in_mask", [False, True])
@pytest.mark.parametrize("use_fn", [False, True])
def test_tree_mismatch_fails_port(tx_case, extra_key_in_mask, use_fn):
  """``test_tree_mismatch_fails``: an extra key on either side raises at ``init``."""
  name, make, _ = tx_case
  mask = {"a": True, "b": [False, True], "c": {"d": True, "e": (False, True)}}
  params = _arrays(_params())
  if extra_key_in_mask:
    mask["c"]["extra"] = True
  else:
    params["c"]["extra"] = jnp.float32(7.0)
  tx = make(0.1, mask=(lambda _: mask) if use_fn else mask)
  where = (
    "the mask path 'c/extra' names no parameter"
    if extra_key_in_mask
    else ("the parameter 'c/extra' has no entry in the mask")
  )
  with pytest.raises(ValueError, match=f"{name}: `mask` does not match the params: {where}"):
    tx.init(params)


def test_mask_fn_port(tx_case):
  """``test_mask_fn``: a mask function over mixed NumPy/JAX leaves."""
  _, make, expr = tx_case
  params = {"a": jnp.ones((1, 2)), "b": (jnp.ones((1,)), np.ones((1, 2, 3), np.float32))}
  tx = make(0.1, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
  grads = jax.tree.map(lambda x: -2 * x, params)
  out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  chex.assert_trees_all_close(
    out, _expect(expr, grads, params, {"a": 1.0, "b": (0.0, 1.0)}), rtol=1e-6
  )


def test_nested_inside_optax_masked_port(tx_case):
  """``test_nested_mask`` (optax#271): our mask inside an outer ``optax.masked``."""
  _, make, expr = tx_case
  params = {
    "linear_1": {"w": jnp.full((1, 1), 2.0), "b": jnp.full(1, 2.0)},
    "linear_2": {"w": jnp.full((1, 2), 2.0), "b": jnp.full(2, 2.0)},
    "linear_3": {"w": jnp.full((2, 3), 2.0), "b": jnp.full(3, 2.0)},
  }
  inner_mask = jax.tree.map(lambda _: True, params)
  inner_mask["linear_2"] = False
  outer = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  tx = optax.masked(make(0.1, mask=inner_mask), outer)
  updates = jax.tree.map(lambda x: -jnp.ones_like(x), params)
  out, _ = jax.jit(tx.update)(updates, jax.jit(tx.init)(params), params)
  want = copy.deepcopy(updates)
  for layer in ("linear_1", "linear_3"):
    want[layer]["w"] = expr(updates[layer]["w"], params[layer]["w"], 0.1)
  chex.assert_trees_all_close(out, want)


def test_none_updates_port(tx_case):
  """``test_none_argument``: ``update(None, state, params)`` returns ``None``; None leaves pass."""
  _, make, expr = tx_case
  weights = (jnp.ones((2,)), {"a": jnp.ones((2,)), "b": jnp.ones((2,))})
  tx = make(0.1)
  out, _ = tx.update(None, tx.init(weights), weights)
  assert out is None
  updates = (None, {"a": -jnp.ones(2), "b": None})
  out, _ = tx.update(updates, tx.init(weights), weights)
  assert out[0] is None and out[1]["b"] is None
  np.testing.assert_allclose(out[1]["a"], expr(-jnp.ones(2), jnp.ones(2), 0.1))


def test_update_requires_params_port(tx_case):
  name, make, _ = tx_case
  tx = make(0.1)
  with pytest.raises(ValueError, match=f"{name}: `update` needs `params`"):
    tx.update({"w": jnp.ones(1)}, tx.init({"w": jnp.ones(1)}))


def test_tree_map_params_port(tx_case):
  """``optax.tree.map_params`` calls ``init`` with a placeholder: state shardings still work."""
  _, make, _ = tx_case
  params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  for rate in (0.1, optax.linear_schedule(0.1, 0.0, 10)):
    tx = optax.chain(optax.adam(1e-3), make(rate, mask=od.bias_mask))
    state = tx.init(params)
    mapped = optax.tree.map_params(tx, lambda p: p + 1, state)
    chex.assert_trees_all_equal_structs(mapped, state)


# --------------------------------------------------------------------------------------------
# A selection with nothing in it is the identity.


@pytest.mark.parametrize("outer", ["masked-prefix", "masked-full", "partition"])
def test_everything_removed_by_an_outer_wrapper_is_the_identity(tx_case, outer):
  _, make, _ = tx_case
  params = {"head": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "body": jnp.ones(3)}
  updates = jax.tree.map(lambda x: -x, params)
  inner = make(0.1, mask=od.bias_mask)
  if outer == "masked-prefix":
    tx = optax.masked(inner, {"head": False, "body": False})
  elif outer == "masked-full":
    tx = optax.masked(inner, jax.tree.map(lambda _: False, params))
  else:
    # a group whose only members are... none: every label is the other group's
    labels = jax.tree.map(lambda _: "frozen", params)
    tx = optax.partition({"decayed": inner, "frozen": optax.identity()}, labels)
  out, _ = jax.jit(tx.update)(updates, tx.init(params), params)
  chex.assert_trees_all_equal(out, updates)


def test_full_tree_static_mask_inside_optax_masked(tx_case):
  """The outer wrapper replaced some params by ``MaskedNode``: their mask entries are ignored."""
  _, make, expr = tx_case
  params = {"head": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)}, "body": jnp.ones(3)}
  full = {"head": {"kernel": True, "bias": False}, "body": True}
  tx = optax.masked(make(0.1, mask=full), {"head": True, "body": False})
  updates = jax.tree.map(lambda x: -x, params)
  out, _ = jax.jit(tx.update)(updates, tx.init(params), params)
  want = dict(updates, head=dict(updates["head"]))
  want["head"]["kernel"] = expr(updates["head"]["kernel"], params["head"]["kernel"], 0.1)
  chex.assert_trees_all_close(out, want)


def test_partition_group_of_only_biases_is_the_identity(tx_case):
  _, make, expr = tx_case
  params = {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)}
  labels = {"kernel": "weights", "bias": "biases"}
  tx = optax.partition({"weights": make(0.1), "biases": make(0.1, mask=od.bias_mask)}, labels)
  updates = jax.tree.map(lambda x: -x, params)
  out, _ = jax.jit(tx.update)(updates, tx.init(params), params)
  np.testing.assert_array_equal(out["bias"], updates["bias"])
  np.testing.assert_allclose(out["kernel"], expr(updates["kernel"], params["kernel"], 0.1))


def test_all_false_and_all_zero_masks_are_the_identity(tx_case):
  _, make, _ = tx_case
  params = {"w": jnp.ones(2), "v": jnp.ones(3)}
  updates = jax.tree.map(lambda x: -x, params)
  for mask in ({"w": False, "v": False}, {"w": 0.0, "v": 0.0}, lambda p: {"w": 0.0, "v": False}):
    tx = make(0.1, mask=mask)
    out, _ = tx.update(updates, tx.init(params), params)
    chex.assert_trees_all_equal(out, updates)


# --------------------------------------------------------------------------------------------
# Function or pytree: optax#913


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class _CallableModule:
  """A callable pytree, as every Equinox module is."""

  weight: object
  bias: object

  def __call__(self, x):
    return self.weight @ x + self.bias


def test_callable_pytree_mask_is_a_pytree(tx_case):
  _, make, expr = tx_case
  model = _CallableModule(jnp.full((2, 2), 2.0), jnp.ones(2))
  mask = od.bias_mask(model)
  assert callable(mask) and mask == _CallableModule(True, False)
  tx = make(0.1, mask=mask)
  updates = jax.tree.map(lambda x: -x, model)
  out, _ = tx.update(updates, tx.init(model), model)
  np.testing.assert_array_equal(out.bias, updates.bias)
  np.testing.assert_allclose(out.weight, expr(updates.weight, model.weight, 0.1))


def test_equinox_precomputed_masks(tx_case):
  eqx = pytest.importorskip("equinox", reason="equinox is in the [test] extra")
  _, make, expr = tx_case
  model = eqx.nn.MLP(3, 2, width_size=4, depth=1, key=jax.random.key(0))
  params = eqx.filter(model, eqx.is_inexact_array)
  for mask in (jax.tree.map(lambda x: x.ndim > 1, params), od.bias_mask(params)):
    tx = make(0.1, mask=mask)
    updates = jax.tree.map(lambda x: -x, params)
    out, _ = jax.jit(tx.update)(updates, tx.init(params), params)
    for layer_out, layer_u, layer_p in zip(out.layers, updates.layers, params.layers, strict=True):
      np.testing.assert_array_equal(layer_out.bias, layer_u.bias)
      np.testing.assert_allclose(
        layer_out.weight, expr(layer_u.weight, layer_p.weight, 0.1), rtol=1e-6
      )


# --------------------------------------------------------------------------------------------
# Clear errors


def test_mask_factory_uncalled_raises(tx_case):
  _, make, _ = tx_case
  for factory, name in ((od.decay_mask, "decay_mask"), (od.decay_multipliers, "decay_multipliers")):
    with pytest.raises(TypeError, match=rf"`mask=optaxdecay\.{name}` is the mask \*builder\*"):
      make(0.1, mask=factory)


def test_mask_function_returning_a_function_raises(tx_case):
  _, make, _ = tx_case
  tx = make(0.1, mask=lambda p: od.bias_mask)
  with pytest.raises(TypeError, match="returned a function"):
    tx.init({"w": jnp.ones(2)})


@pytest.mark.parametrize(
  ("leaf", "error", "match"),
  [
    (-0.5, ValueError, r"'w' is -0.5; a multiplier must be finite and >= 0"),
    (float("nan"), ValueError, "must be finite and >= 0"),
    (1, TypeError, r"For a multiplier write 1.0"),
    ("yes", TypeError, "expected a bool or a float"),
    (jnp.ones(2), TypeError, "one bool or float per leaf"),
  ],
)
def test_bad_mask_leaf_raises_at_construction(tx_case, leaf, error, match):
  _, make, _ = tx_case
  with pytest.raises(error, match=match):
    make(0.1, mask={"w": leaf})


def test_bad_mask_leaf_from_a_function_raises_at_init(tx_case):
  _, make, _ = tx_case
  tx = make(0.1, mask=lambda p: {"w": -1.0})
  with pytest.raises(ValueError, match="a multiplier must be finite and >= 0"):
    tx.init({"w": jnp.ones(2)})


def test_update_shape_mismatch_raises(tx_case):
  """Broadcasting would silently be wrong: ``(1, 2)`` update on a ``(2, 2)`` weight."""
  _, make, _ = tx_case
  params = {"w": jnp.ones((2, 2))}
  tx = make(0.1)
  with pytest.raises(ValueError, match=r"`updates` at 'w' has shape \(1, 2\).*\(2, 2\)"):
    tx.update({"w": jnp.ones((1, 2))}, tx.init(params), params)


def test_rate_times_each_leafs_multiplier_must_be_below_one_not_the_rate_alone():
  """The range is per leaf: scenic's spelling (the rate is the schedule's ratio, exactly 1, and
  the decay values are the multipliers) is valid and removes 1e-4 per step; rate x multiplier
  >= 1 is refused as soon as the multipliers are known (now for a static mask, at init for a
  mask function), naming the leaf."""
  params = {"kernel": jnp.ones(2), "bias": jnp.ones(2)}
  scenic = od.decay_multipliers([(".*kernel.*", 1e-4)])
  for mask in (scenic, {"kernel": 1e-4, "bias": 0.0}):
    tx = od.decoupled_weight_decay(1.0, mask=mask)
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(u["kernel"], -1e-4)
    np.testing.assert_array_equal(u["bias"], 0.0)
  # Nothing selected: no range to check, the identity.
  od.decoupled_weight_decay(1.0, mask={"kernel": False, "bias": False})
  too_much = r"`rate`=0.6 times the largest `mask` multiplier 2.0 \(at 'kernel'\) is 1.2, not < 1"
  with pytest.raises(ValueError, match=too_much):
    od.decoupled_weight_decay(0.6, mask={"kernel": 2.0, "bias": 0.5})
  tx = od.decoupled_weight_decay(0.6, mask=lambda p: {"kernel": 2.0, "bias": 0.5})
  with pytest.raises(ValueError, match=too_much):
    tx.init(params)
  with pytest.raises(ValueError, match=r"`rate` must be < 1, got 1.0: .* zeroes or flips"):
    od.decoupled_weight_decay(1.0, mask={"kernel": True, "bias": False})
  with pytest.raises(ValueError, match=r"`learning_rate \* weight_decay` must be < 1") as err:
    od.decoupled_weight_decay(weight_decay=1.0, learning_rate=1.0)
  assert "`learning_rate` is the optimizer's learning rate" in str(err.value)
  assert "write `decoupled_weight_decay(weight_decay=" not in str(err.value)  # already did


# --------------------------------------------------------------------------------------------
# Frozen parameters (diffusers#1009): decay inside the trainable group, never outside


def _frozen_setup():
  params = {
    "backbone": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)},
    "head": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)},
  }
  labels = {"backbone": "frozen", "head": "train"}
  return params, labels, jax.tree.map(jnp.zeros_like, params)


def _apply(tx, params, grads):
  updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  return optax.apply_updates(params, updates)


def test_decay_inside_the_partition_leaves_frozen_weights_alone():
  params, labels, grads = _frozen_setup()
  right = optax.partition(
    {
      "train": optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(0.1, mask=od.bias_mask)),
      "frozen": optax.set_to_zero(),
    },
    labels,
  )
  out = _apply(right, params, grads)
  chex.assert_trees_all_equal(out["backbone"], params["backbone"])
  np.testing.assert_allclose(out["head"]["kernel"], 0.9 * params["head"]["kernel"])


def test_decay_outside_the_partition_decays_frozen_weights():
  """The wrong placement, shown: the frozen backbone shrinks although its updates are zero."""
  params, labels, grads = _frozen_setup()
  wrong = optax.chain(
    optax.partition({"train": optax.adam(1e-2), "frozen": optax.set_to_zero()}, labels),
    od.decoupled_weight_decay(0.1, mask=od.bias_mask),
  )
  out = _apply(wrong, params, grads)
  np.testing.assert_allclose(out["backbone"]["kernel"], 0.9 * params["backbone"]["kernel"])


def test_frozen_by_optax_masked_around_the_whole_optimizer():
  params, _, grads = _frozen_setup()
  trainable = {"backbone": False, "head": True}
  frozen = {"backbone": True, "head": False}
  right = optax.chain(
    optax.masked(
      optax.chain(optax.adam(1e-2), od.decoupled_weight_decay(0.1, mask=od.bias_mask)), trainable
    ),
    optax.masked(optax.set_to_zero(), frozen),
  )
  out = _apply(right, params, grads)
  chex.assert_trees_all_equal(out["backbone"], params["backbone"])
  np.testing.assert_allclose(out["head"]["kernel"], 0.9 * params["head"]["kernel"])


# ----------------------------------------------------------------------------------------------
# Optax parity at the edges of `mask=` (each a case a user hit from outside).


def test_a_bool_over_an_empty_subtree_is_a_valid_prefix():
  params = {"act": {}, "w": jnp.ones(2)}
  for tx in (
    od.decoupled_weight_decay(0.5, mask={"act": False, "w": True}),
    optax.masked(optax.add_decayed_weights(0.5), {"act": False, "w": True}),
  ):
    u, _ = tx.update({"act": {}, "w": jnp.zeros(2)}, tx.init(params), params)
    assert u["act"] == {}
    np.testing.assert_allclose(np.abs(u["w"]), 0.5)


@pytest.mark.parametrize(
  ("leaf", "mult"),
  [(jnp.bool_(True), 1.0), (jnp.asarray(False), 0.0), (jnp.float32(0.5), 0.5),
   (np.asarray(0.5), 0.5), (np.bool_(True), 1.0), (np.float16(0.25), 0.25)],
)  # fmt: skip
def test_concrete_0d_numpy_and_jax_mask_leaves_are_their_value(leaf, mult):
  params = {"w": jnp.ones(2)}
  tx = od.decoupled_weight_decay(0.5, mask={"w": leaf})
  u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
  np.testing.assert_allclose(u["w"], -0.5 * mult)


def test_concrete_0d_leaves_keep_the_range_checks():
  with pytest.raises(ValueError, match="multiplier must be finite and >= 0"):
    od.decoupled_weight_decay(0.1, mask={"w": jnp.float32(-1.0)})
  with pytest.raises(TypeError, match="one bool or float per leaf"):
    od.decoupled_weight_decay(0.1, mask={"w": np.ones(2, bool)})
  with pytest.raises(TypeError, match=r"For a multiplier write 1.0"):
    od.decoupled_weight_decay(0.1, mask={"w": 1})


def test_int_and_str_keys_that_print_alike_are_told_apart():
  with pytest.raises(ValueError, match=r"parameter '0' \(keys \(0,\)\).*'0' \(keys \('0',\)\)"):
    od.decoupled_weight_decay(0.1, mask={"0": True}).init({0: jnp.ones(2)})


def test_a_python_float_param_is_decayed_as_optax_decays_it():
  params = {"gain": 2.0, "w": jnp.ones(2)}
  tx = od.decoupled_weight_decay(0.25)
  u, _ = tx.update({"gain": 0.0, "w": jnp.zeros(2)}, tx.init(params), params)
  ref, _ = optax.add_decayed_weights(0.25).update({"gain": 0.0, "w": jnp.zeros(2)}, None, params)
  np.testing.assert_allclose(u["gain"], -ref["gain"])
  with pytest.raises(TypeError, match=r"selects the leaf 'n' of type int"):
    tx.init({"n": 3})


def test_an_error_inside_a_mask_function_names_the_transform_that_called_it():
  def broken(params):
    raise KeyError("no such layer")

  tx = od.decoupled_weight_decay(1e-3, mask=broken)
  with pytest.raises(KeyError, match="no such layer") as info:
    tx.init({"w": jnp.ones(2)})
  assert any("decoupled_weight_decay's `mask` function" in n for n in info.value.__notes__)


@pytest.mark.parametrize("builder", [od.decay_mask, od.decay_multipliers])
def test_a_mask_builder_passed_uncalled_to_optax_says_to_call_it(builder):
  """Optax's own wrappers call the mask with the params: the builders say what went wrong."""
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  spelling = rf"mask=optaxdecay\.{builder.__name__}\("
  for make in (
    lambda: optax.masked(optax.add_decayed_weights(1e-4), builder).init(params),
    lambda: optax.adamw(1e-3, mask=builder).init(params),
  ):
    with pytest.raises(TypeError, match=rf"^{builder.__name__}: .*{spelling}"):
      make()
