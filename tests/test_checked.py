"""``od.checked``: run-time range checks under jit, zero cost when off."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import optaxdecay as od

PARAMS = {"w": jnp.ones(3)}


def _injected(rate):
  tx = od.checked(optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.1))
  state = tx.init(PARAMS)
  state.hyperparams["rate"] = jnp.asarray(rate)
  return tx, state


def test_injected_rate_out_of_range_is_caught_under_jit():
  tx, state = _injected(1.5)
  step = checkify.checkify(jax.jit(lambda s: tx.update(PARAMS, s, PARAMS)[0]))
  err, _ = step(state)
  with pytest.raises(checkify.JaxRuntimeError, match=r"decoupled_weight_decay: `rate` must be"):
    err.throw()


def test_in_range_passes_and_gives_the_same_numbers():
  tx, state = _injected(0.25)
  step = checkify.checkify(jax.jit(lambda s: tx.update(PARAMS, s, PARAMS)[0]))
  err, out = step(state)
  err.throw()  # no error
  plain = optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.25)
  ref, _ = plain.update(PARAMS, plain.init(PARAMS), PARAMS)
  np.testing.assert_array_equal(out["w"], ref["w"])


def test_schedule_after_step_zero_and_negative_l2():
  sched = lambda count: 0.5 - 0.2 * count  # fine at 0 and 1, negative from step 3 on
  tx = od.checked(optax.chain(od.add_l2_to_grad(sched), optax.sgd(0.1)))

  def run(state):
    for _ in range(4):
      _, state = tx.update(PARAMS, state, PARAMS)
    return state

  err, _ = checkify.checkify(jax.jit(run))(tx.init(PARAMS))
  with pytest.raises(checkify.JaxRuntimeError, match=r"add_l2_to_grad: `l2` must be finite"):
    err.throw()


def test_vmapped_rates():
  tx = od.checked(optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.1))

  def one(rate):
    state = tx.init(PARAMS)
    state.hyperparams["rate"] = rate
    return tx.update(PARAMS, state, PARAMS)[0]

  err, _ = checkify.checkify(jax.jit(jax.vmap(one)))(jnp.array([0.1, 0.2, 2.0]))
  with pytest.raises(checkify.JaxRuntimeError, match="`rate` must be finite"):
    err.throw()


def test_rate_times_multiplier_is_checked():
  tx = od.checked(optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.1, mask={"w": 4.0}))
  state = tx.init(PARAMS)
  state.hyperparams["rate"] = jnp.asarray(0.3)  # 0.3 * 4 = 1.2
  err, _ = checkify.checkify(jax.jit(lambda s: tx.update(PARAMS, s, PARAMS)[0]))(state)
  with pytest.raises(checkify.JaxRuntimeError, match=r"`rate \* mask multiplier`"):
    err.throw()


def test_zero_cost_when_off():
  """Without ``checked`` the traced program has no check in it, and is the same program."""
  plain = optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.1)
  state = plain.init(PARAMS)
  jaxpr = str(jax.make_jaxpr(lambda s: plain.update(PARAMS, s, PARAMS))(state))
  assert "check" not in jaxpr
  checked = od.checked(plain)
  err_jaxpr = str(
    jax.make_jaxpr(checkify.checkify(lambda s: checked.update(PARAMS, s, PARAMS)))(state)
  )
  assert "isfinite" in err_jaxpr or "is_finite" in err_jaxpr


def test_checked_without_checkify_under_jit_fails_loudly():
  tx, state = _injected(0.1)
  with pytest.raises(ValueError, match="checkify"):
    jax.jit(lambda s: tx.update(PARAMS, s, PARAMS))(state)


def test_checked_keeps_init_and_state():
  inner = optax.chain(optax.adam(1e-3), od.decoupled_weight_decay(0.1))
  tx = od.checked(inner)
  assert jax.tree.structure(tx.init(PARAMS)) == jax.tree.structure(inner.init(PARAMS))


def test_fused_adamw_is_checked_in_update_and_step():
  for arg, bad in (("weight_decay", -5.0), ("l2", -1.0), ("learning_rate", -1.0)):
    tx = od.checked(optax.inject_hyperparams(od.fused_adamw)(1e-2, weight_decay=0.1, l2=0.1))
    state = tx.init(PARAMS)
    state.hyperparams[arg] = jnp.asarray(bad)
    err, _ = checkify.checkify(jax.jit(lambda s, tx=tx: tx.update(PARAMS, s, PARAMS)))(state)
    with pytest.raises(checkify.JaxRuntimeError, match=f"fused_adamw: `{arg}` must be finite"):
      err.throw()
  sched = lambda count: 0.1 - 0.2 * count  # negative from step 1
  fused = od.checked(od.fused_adamw(1e-2, weight_decay=sched))
  assert isinstance(fused, od.FusedAdamW)  # .step and .sharded_step are kept, and checked
  step = checkify.checkify(jax.jit(fused.step))
  err, (p, s) = step(PARAMS, PARAMS, fused.init(PARAMS))
  err.throw()
  err, _ = step(p, PARAMS, s)
  with pytest.raises(checkify.JaxRuntimeError, match="fused_adamw: `weight_decay` must be"):
    err.throw()


def test_checked_refuses_what_is_not_a_transform():
  with pytest.raises(TypeError, match=r"checked: `tx` must be an optax.GradientTransformation"):
    od.checked(optax.adam)  # the factory, not the transform


def test_a_complex_hyperparameter_from_inject_hyperparams_is_refused_clearly():
  """inject_hyperparams takes the hyperparameters' dtype from the params: complex params give a
  complex rate, which would silently drop its imaginary part on real leaves."""
  params = {"c": jnp.ones(2, jnp.complex64), "w": jnp.ones(2)}
  tx = optax.inject_hyperparams(od.decoupled_weight_decay)(rate=0.1)
  with pytest.raises(TypeError, match="`rate` must be a float"):
    tx.init(params)
  with pytest.raises(TypeError, match=r"hyperparam_dtype=jnp.float32"):
    jax.jit(lambda p: tx.update(p, tx.init(p), p))(params)
  fixed = optax.inject_hyperparams(od.decoupled_weight_decay, hyperparam_dtype=jnp.float32)(0.1)
  u, _ = jax.jit(lambda p: fixed.update(p, fixed.init(p), p))(params)
  np.testing.assert_allclose(u["c"], 0.9)


def test_checked_wraps_the_functions_of_a_named_tuple_and_keeps_its_other_fields():
  class Named(NamedTuple):
    init: Any
    update: Any
    name: str
    lr: float

  base = od.decoupled_weight_decay(1e-3)
  tx = od.checked(Named(base.init, base.update, "mine", 0.1))
  assert isinstance(tx, Named) and (tx.name, tx.lr) == ("mine", 0.1)
  out, _ = tx.update(PARAMS, tx.init(PARAMS), PARAMS)
  chex.assert_trees_all_close(out, base.update(PARAMS, base.init(PARAMS), PARAMS)[0])
  with pytest.raises(TypeError, match=r"checked: .*got a tuple of 2 items: wrap the pair as "):
    od.checked((base.init, base.update))
