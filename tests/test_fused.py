"""fused_adamw: bit-identical to optax.adamw, in place, and its argument checks."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import optaxdecay as od

CHUNK = 64  # small, so that the tests exercise the loop and its tail


def _params():
  rng = np.random.default_rng(0)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return {
    "Dense_0": {"kernel": f(13, 23), "bias": f(23)},  # 299 = 4 chunks + a tail of 43
    "Dense_1": {"kernel": f(23, 5), "bias": f(5)},  # 115 = 1 chunk + a tail
    "embed": f(8, 8),  # exactly 1 chunk
    "scale": f(7),  # smaller than a chunk: no loop
  }


@jax.jit
def _grads(params, t):
  return jax.tree.map(lambda p: jnp.sin(3.0 * p + t) + 0.1 * t, params)


def _optax_step(tx):
  @jax.jit
  def step(params, grads, state):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _run(step, state, params, steps):
  out = []
  for t in range(steps):
    params, state = step(params, _grads(params, jnp.float32(t)), state)
    out.append((params, state))
  return out


SETTINGS = {
  "constant": dict(learning_rate=1e-2, weight_decay=0.1),
  "schedules": dict(
    learning_rate=optax.linear_schedule(1e-2, 1e-3, 5),
    weight_decay=optax.cosine_decay_schedule(0.1, 5),
  ),
  "no_decay": dict(learning_rate=1e-2, weight_decay=0.0),
  "betas_eps": dict(learning_rate=3e-3, b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-6, weight_decay=1e-3),
}


@pytest.mark.parametrize(
  ("setting", "mask"),
  [(s, od.bias_mask) for s in SETTINGS] + [("constant", None)],
  ids=[f"{s}-bias_mask" for s in SETTINGS] + ["constant-all"],
)
def test_step_is_bit_identical_to_optax_adamw(setting, mask):
  kw = SETTINGS[setting]
  opt = od.fused_adamw(**kw, mask=mask, chunk_size=CHUNK)
  tx = optax.adamw(**kw, mask=mask)
  params = _params()
  fused = _run(jax.jit(opt.step), opt.init(params), params, 5)
  ref = _run(_optax_step(tx), tx.init(params), params, 5)
  for t, (a, b) in enumerate(zip(fused, ref, strict=True)):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
      assert x.dtype == y.dtype
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"step {t + 1}")


L2_SETTINGS = {
  "l2-only": dict(learning_rate=1e-2, weight_decay=0.0, l2=0.05),
  "l2-and-decay": dict(learning_rate=1e-2, weight_decay=0.1, l2=0.05),
  "l2-schedule": dict(
    learning_rate=optax.linear_schedule(1e-2, 1e-3, 5),
    weight_decay=0.1,
    l2=optax.linear_schedule(0.5, 0.0, 4),
  ),
}


def _l2_chain(kw, mask):
  kw = dict(kw)
  l2 = kw.pop("l2")
  return optax.chain(od.add_l2_to_grad(l2, mask=mask), optax.adamw(**kw, mask=mask))


@pytest.mark.parametrize("setting", list(L2_SETTINGS))
def test_step_with_l2_equals_chain_add_l2_to_grad_adamw(setting):
  """Adam *with L2* in one pass: the same numbers as the composable chain.

  Bit-identical for a constant ``l2``. With a scheduled one, equal up to float
  rounding: XLA:CPU contracts ``b1*m + (1-b1)*(g + l2*w)`` into fused
  multiply-adds differently inside the loop body than in the chain's fusions
  (a difference of a few ulp, seen from the second step on).
  """
  kw = L2_SETTINGS[setting]
  opt = od.fused_adamw(**kw, mask=od.bias_mask, chunk_size=CHUNK)
  chain = _l2_chain(kw, od.bias_mask)
  params = _params()
  fused = _run(jax.jit(opt.step), opt.init(params), params, 5)
  ref = _run(_optax_step(chain), chain.init(params), params, 5)
  for t, ((p, s), (q, (_, r))) in enumerate(zip(fused, ref, strict=True)):
    # The chain's state is (add_l2_to_grad's, adamw's); the fused state is adamw's.
    if callable(kw["l2"]):
      # atol: a moment near 0 is a difference of terms of order 0.1-1, and
      # inherits their rounding (~1e-8) whatever its own size.
      chex.assert_trees_all_close((p, s), (q, r), rtol=1e-6, atol=1e-7)
    else:
      chex.assert_trees_all_equal((p, s), (q, r), custom_message=f"step {t + 1}")
  # The penalty changed the trajectory (so the comparison can fail) ...
  plain = od.fused_adamw(**{k: v for k, v in kw.items() if k != "l2"}, mask=od.bias_mask)
  no_l2 = _run(jax.jit(plain.step), plain.init(params), params, 5)[-1][0]
  assert float(jnp.max(jnp.abs(no_l2["Dense_0"]["kernel"] - fused[-1][0]["Dense_0"]["kernel"]))) > 0
  # ... and, masked, left the biases' trajectory alone.
  chex.assert_trees_all_equal(no_l2["Dense_0"]["bias"], fused[-1][0]["Dense_0"]["bias"])


@pytest.mark.parametrize("setting", list(L2_SETTINGS))
def test_update_with_l2_is_the_chains_on_adamws_state(setting):
  kw = L2_SETTINGS[setting]
  opt = od.fused_adamw(**kw, mask=od.bias_mask)
  chain = _l2_chain(kw, od.bias_mask)
  params = _params()
  state, chain_state = opt.init(params), chain.init(params)
  chex.assert_trees_all_equal_structs(state, chain_state[1])
  for t in range(4):
    grads = _grads(params, jnp.float32(t))
    u, state = jax.jit(opt.update)(grads, state, params)
    v, chain_state = jax.jit(chain.update)(grads, chain_state, params)
    chex.assert_trees_all_equal((u, state), (v, chain_state[1]))
    params = optax.apply_updates(params, u)


def test_inexact_step_with_l2_matches_the_chain_up_to_rounding():
  kw = L2_SETTINGS["l2-and-decay"]
  opt = od.fused_adamw(**kw, mask=od.bias_mask, chunk_size=CHUNK, exact=False)
  chain = _l2_chain(kw, od.bias_mask)
  fast, ref = jax.jit(opt.step), _optax_step(chain)
  params = _params()
  state = chain.init(params)
  for t in range(8):
    grads = _grads(params, jnp.float32(t))
    got = fast(params, grads, state[1])
    params, state = ref(params, grads, state)
    chex.assert_trees_all_close(got, (params, state[1]), rtol=1e-6, atol=1e-7)


def test_l2_without_decay_is_torch_adam_with_weight_decay():
  """PyTorch's Adam(weight_decay=l2) is L2 in the gradient: od.compat.torch_adam."""
  params = _params()
  opt = od.fused_adamw(1e-2, weight_decay=0.0, l2=0.05, chunk_size=CHUNK)
  torch_like = od.compat.torch_adam(1e-2, weight_decay=0.05)
  a = _run(jax.jit(opt.step), opt.init(params), params, 10)[-1][0]
  b = _run(_optax_step(torch_like), torch_like.init(params), params, 10)[-1][0]
  chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


def test_update_with_l2_needs_params():
  opt = od.fused_adamw(1e-3, l2=0.1)
  params = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"fused_adamw: `update` needs `params`"):
    opt.update(params, opt.init(params))


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_inexact_step_matches_optax_adamw_up_to_rounding(setting):
  """exact=False: each step, from the same params/grads/state as optax.adamw's
  trajectory, agrees with optax's step to float32 rounding."""
  kw = SETTINGS[setting]
  opt = od.fused_adamw(**kw, mask=od.bias_mask, chunk_size=CHUNK, exact=False)
  tx = optax.adamw(**kw, mask=od.bias_mask)
  fast, ref = jax.jit(opt.step), _optax_step(tx)
  params = _params()
  state = tx.init(params)
  for t in range(8):
    grads = _grads(params, jnp.float32(t))
    got = fast(params, grads, state)
    params, state = ref(params, grads, state)
    # atol: 1e-6 of a step (lr <= 1e-2), for parameters near 0 where the
    # two orders of operations round differently relative to their size.
    chex.assert_trees_all_close(got, (params, state), rtol=1e-6, atol=1e-8)
  moved = jax.tree.map(lambda x, p: float(jnp.max(jnp.abs(x - p))), params, _params())
  assert min(jax.tree.leaves(moved)) > 1e-3  # the comparison is not vacuous


def test_chunk_size_does_not_change_the_result():
  params = _params()
  results = []
  for chunk in (1, 7, CHUNK, 10**6):
    opt = od.fused_adamw(1e-2, weight_decay=0.1, mask=od.bias_mask, chunk_size=chunk)
    results.append(_run(jax.jit(opt.step), opt.init(params), params, 3)[-1])
  for r in results[1:]:
    chex.assert_trees_all_equal(r, results[0])


def test_decay_is_masked():
  params = _params()
  grads = jax.tree.map(jnp.zeros_like, params)
  opt = od.fused_adamw(1e-2, weight_decay=0.5, mask=od.bias_mask, chunk_size=CHUNK)
  new, _ = jax.jit(opt.step)(params, grads, opt.init(params))
  # Zero gradients: the Adam direction is 0, so only decayed leaves move.
  chex.assert_trees_all_equal(new["Dense_0"]["bias"], params["Dense_0"]["bias"])
  chex.assert_trees_all_close(new["Dense_0"]["kernel"], params["Dense_0"]["kernel"] * (1 - 5e-3))


def test_matches_the_composable_chain():
  """Same algorithm as chain(adam, decoupled_weight_decay(lr * wd)), up to rounding."""
  lr, wd = 1e-2, 0.1
  opt = od.fused_adamw(lr, weight_decay=wd, mask=od.bias_mask, chunk_size=CHUNK)
  chain = optax.chain(
    optax.adam(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(wd, lr), mask=od.bias_mask)
  )
  params = _params()
  a = _run(jax.jit(opt.step), opt.init(params), params, 10)[-1][0]
  b = _run(_optax_step(chain), chain.init(params), params, 10)[-1][0]
  chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)
  moved = jax.tree.map(lambda x, p: float(jnp.max(jnp.abs(x - p))), a, params)
  assert min(jax.tree.leaves(moved)) > 1e-3  # the comparison is not vacuous


def test_init_and_update_are_optax_adamws():
  params = _params()
  opt = od.fused_adamw(1e-2, weight_decay=0.1, mask=od.bias_mask)
  tx = optax.adamw(1e-2, weight_decay=0.1, mask=od.bias_mask)
  state = opt.init(params)
  chex.assert_trees_all_equal_structs(state, tx.init(params))
  grads = _grads(params, jnp.float32(0))
  chex.assert_trees_all_equal(
    jax.jit(opt.update)(grads, state, params), jax.jit(tx.update)(grads, state, params)
  )
  # Usable wherever an optimizer's (init, update) pair is expected.
  chained = optax.chain(optax.clip(1.0), opt)
  chained.update(grads, chained.init(params), params)


def test_step_updates_in_place_when_donated():
  n = 3 * 2**16 + 5
  params = {"w": jnp.ones(n)}
  opt = od.fused_adamw(1e-3, chunk_size=2**12)
  state = opt.init(params)
  compiled = (
    jax.jit(lambda p, g, s: opt.step(p, g, s), donate_argnums=(0, 2))
    .lower(params, params, state)
    .compile()
  )
  mem = compiled.memory_analysis()
  # No full-size temporary or copy of p, mu or nu: scratch is chunk-sized.
  assert mem.temp_size_in_bytes < n * 4 // 4, mem
  assert mem.alias_size_in_bytes >= 3 * n * 4, mem


def test_step_under_jit_accepts_nested_structures():
  params = [{"kernel": jnp.ones((4, 40))}, (jnp.ones(3), jnp.ones((2, 2)))]
  opt = od.fused_adamw(1e-2, chunk_size=16)
  tx = optax.adamw(1e-2)
  a = _run(jax.jit(opt.step), opt.init(params), params, 2)[-1]
  b = _run(_optax_step(tx), tx.init(params), params, 2)[-1]
  chex.assert_trees_all_equal(a, b)


def test_sharded_step_on_one_device_equals_step():
  """The multi-device case (no collectives, 8 devices) is in test_sharding.py."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
  params = _params()
  specs = jax.tree.map(lambda p: P("x"), params)
  specs["Dense_1"]["kernel"] = P(None, "x")
  opt = od.fused_adamw(
    optax.linear_schedule(1e-2, 1e-3, 5), weight_decay=0.1, mask=od.bias_mask, chunk_size=CHUNK
  )
  a = _run(jax.jit(opt.sharded_step(mesh, specs)), opt.init(params), params, 3)
  b = _run(jax.jit(opt.step), opt.init(params), params, 3)
  chex.assert_trees_all_equal(a, b)


def test_sharded_step_rejects_a_non_mesh():
  opt = od.fused_adamw(1e-3)
  with pytest.raises(TypeError, match=r"fused_adamw\(...\).sharded_step: `mesh`"):
    opt.sharded_step(jax.devices(), {"w": P()})


def test_sharded_step_rejects_non_partitionspec_specs():
  opt = od.fused_adamw(1e-3)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
  with pytest.raises(TypeError, match=r"sharded_step: every leaf of `param_specs`"):
    opt.sharded_step(mesh, {"w": ("x",), "b": "x"})


@pytest.mark.parametrize(
  ("specs", "match"),
  [
    ({"w": P("x")}, r"must have the params' structure"),
    ({"w": P("x"), "b": P(None, "x")}, r"`param_specs` at 'b' = .*None, 'x'.* has more entries"),
    ({"w": P("y"), "b": P()}, r"`param_specs` at 'w' = .*'y'.* names mesh axes \['y'\]"),
  ],
  ids=["structure", "rank", "axis"],
)
def test_sharded_step_rejects_specs_that_do_not_fit(specs, match):
  """(A spec that does not divide its dimension is checked on 8 devices in test_sharding.py.)"""
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
  opt = od.fused_adamw(1e-3)
  params = {"w": jnp.ones(4), "b": jnp.ones(3)}
  step = opt.sharded_step(mesh, specs)
  with pytest.raises(ValueError, match=r"fused_adamw\(...\).sharded_step: .*" + match):
    step(params, params, opt.init(params))


@pytest.mark.parametrize(
  ("kwargs", "arg"),
  [
    (dict(learning_rate=-1e-3), "learning_rate"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(learning_rate=1e-3, weight_decay=-0.1), "weight_decay"),
    (dict(learning_rate=1e-3, l2=-0.1), "l2"),
    (dict(learning_rate=1e-3, l2=float("inf")), "l2"),
    (dict(learning_rate=1e-3, b1=1.0), "b1"),
    (dict(learning_rate=1e-3, b2=-0.1), "b2"),
    (dict(learning_rate=1e-3, eps=-1e-8), "eps"),
    (dict(learning_rate=1e-3, eps_root=float("inf")), "eps_root"),
    (dict(learning_rate=1e-3, chunk_size=0), "chunk_size"),
    (dict(learning_rate=1e-3, chunk_size=2.5), "chunk_size"),
  ],
)
def test_bad_hyperparameter_raises(kwargs, arg):
  with pytest.raises(ValueError, match=rf"fused_adamw: `{arg}`"):
    od.fused_adamw(**kwargs)


def test_non_float_hyperparameter_raises():
  with pytest.raises(TypeError, match=r"fused_adamw: `b1`"):
    od.fused_adamw(1e-3, b1="0.9")


def test_non_bool_exact_raises():
  with pytest.raises(TypeError, match=r"fused_adamw: `exact`"):
    od.fused_adamw(1e-3, exact="yes")


def test_non_bool_mask_raises():
  with pytest.raises(TypeError, match=r"fused_adamw: `mask`"):
    od.fused_adamw(1e-3, mask={"w": 1})


def test_mismatched_mask_raises_at_step():
  params = {"w": jnp.ones(3)}
  opt = od.fused_adamw(1e-3, mask={"v": True})
  with pytest.raises(ValueError, match=r"fused_adamw: `mask` does not match"):
    opt.step(params, params, optax.adamw(1e-3).init(params))


# --------------------------------------------------------------------------------------------
# The same contract as optax.adamw


def test_signature_matches_optax_adamw_positionally():
  import inspect

  ours = list(inspect.signature(od.fused_adamw).parameters.values())
  theirs = list(inspect.signature(optax.adamw).parameters.values())
  assert [(p.name, p.kind, p.default) for p in ours[: len(theirs)]] == [
    (p.name, p.kind, p.default) for p in theirs
  ]
  extra = ours[len(theirs) :]
  assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)
  # A positional call means the same as optax.adamw's.
  params = _params()
  args = (1e-2, 0.8, 0.99, 1e-6, 0.0, jnp.bfloat16, 0.05, od.bias_mask)
  opt, tx = od.fused_adamw(*args, chunk_size=CHUNK), optax.adamw(*args)
  fused = _run(jax.jit(opt.step), opt.init(params), params, 3)
  ref = _run(_optax_step(tx), tx.init(params), params, 3)
  chex.assert_trees_all_equal(fused[-1], ref[-1])


@pytest.mark.parametrize(
  "kw",
  [
    dict(mu_dtype=jnp.bfloat16),
    dict(mu_dtype=jnp.bfloat16, learning_rate=optax.linear_schedule(1e-2, 0.0, 5)),
    dict(nesterov=True),
    dict(nesterov=True, mu_dtype=jnp.bfloat16, learning_rate=optax.linear_schedule(1e-2, 0.0, 5)),
  ],
  ids=["mu_dtype", "mu_dtype-scheduled", "nesterov", "nesterov-mu_dtype-scheduled"],
)
def test_mu_dtype_and_nesterov_match_optax_adamw(kw):
  """mu_dtype: bit-identical. nesterov: bit-identical outside the loop, a few ulp inside it."""
  kw = {"learning_rate": 1e-2, "weight_decay": 0.1, **kw}
  opt = od.fused_adamw(**kw, mask=od.bias_mask, chunk_size=CHUNK)
  tx = optax.adamw(**kw, mask=od.bias_mask)
  params = _params()
  fused = _run(jax.jit(opt.step), opt.init(params), params, 5)
  ref = _run(_optax_step(tx), tx.init(params), params, 5)
  for t, (a, b) in enumerate(zip(fused, ref, strict=True)):
    if not kw.get("nesterov"):
      chex.assert_trees_all_equal(a, b, custom_message=f"step {t + 1}")
      continue
    for (path, x), y in zip(
      jax.tree_util.tree_flatten_with_path(a[0])[0], jax.tree.leaves(b[0]), strict=True
    ):
      ulps = np.abs(np.asarray(x).view(np.int32).astype(np.int64) - np.asarray(y).view(np.int32))
      in_loop = x.size >= CHUNK
      assert ulps.max() <= (4 if in_loop else 0), (t, jax.tree_util.keystr(path), ulps.max())
  if "mu_dtype" in kw:
    assert fused[-1][1][0].mu["Dense_0"]["kernel"].dtype == jnp.bfloat16


def test_inject_hyperparams_without_static_args():
  params = _params()
  lr = optax.linear_schedule(1e-2, 1e-3, 5)
  injected = optax.inject_hyperparams(od.fused_adamw)(learning_rate=lr, weight_decay=0.1)
  reference = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=0.1)
  a = _run(_optax_step(injected), injected.init(params), params, 4)
  b = _run(_optax_step(reference), reference.init(params), params, 4)
  chex.assert_trees_all_equal(a[-1][0], b[-1][0])
  assert not hasattr(injected, "step")
  # The fused step with injected values: build the optimizer from them inside the jitted step.
  state = injected.init(params)

  @jax.jit
  def fused_step(params, grads, state):
    opt = od.fused_adamw(**state.hyperparams, chunk_size=CHUNK)
    return opt.step(params, grads, state.inner_state)

  grads = _grads(params, jnp.float32(0))
  new_params, _ = fused_step(params, grads, state)
  want, _ = _optax_step(reference)(params, grads, reference.init(params))
  chex.assert_trees_all_equal(new_params, want)


def test_traced_chunk_size_raises():
  with pytest.raises(TypeError, match=r"static_args=\('chunk_size',\)"):
    optax.inject_hyperparams(od.fused_adamw)(learning_rate=1e-3, chunk_size=64).init(_params())


def test_float_multipliers_in_the_fused_step():
  params = _params()
  mults = od.decay_multipliers([("Dense_0/kernel", 0.5), (".*/kernel", 1.0)])
  opt = od.fused_adamw(1e-2, weight_decay=0.1, mask=mults, chunk_size=CHUNK)
  chain = optax.chain(
    optax.adam(1e-2), od.decoupled_weight_decay(od.l2_to_decay_rate(0.1, 1e-2), mask=mults)
  )
  a = _run(jax.jit(opt.step), opt.init(params), params, 5)[-1][0]
  b = _run(_optax_step(chain), chain.init(params), params, 5)[-1][0]
  chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-7)
  u = _run(_optax_step(opt), opt.init(params), params, 5)[-1][0]
  chex.assert_trees_all_equal(a, u)  # step == update, multipliers included


def test_bit_identity_scope_float16_and_eager_apply():
  """The docstring's scope: float16 within 4 ulp; an eager apply_updates rounds differently."""
  params = jax.tree.map(lambda x: x.astype(jnp.float16), _params())
  opt = od.fused_adamw(1e-2, weight_decay=0.1, chunk_size=CHUNK)
  grads = jax.tree.map(lambda g: g.astype(jnp.float16), _grads(params, jnp.float32(0)))
  a, _ = jax.jit(opt.step)(params, grads, opt.init(params))
  b, _ = _optax_step(opt)(params, grads, opt.init(params))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    ulps = np.abs(np.asarray(x).view(np.int16).astype(int) - np.asarray(y).view(np.int16))
    assert ulps.max() <= 4
  # float32 inside one jit: bitwise; composed eagerly: equal to rounding.
  params = _params()
  grads = _grads(params, jnp.float32(0))
  a, _ = jax.jit(opt.step)(params, grads, opt.init(params))
  u, _ = jax.jit(opt.update)(grads, opt.init(params), params)
  chex.assert_trees_all_close(a, optax.apply_updates(params, u), rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_equal(a, _optax_step(opt)(params, grads, opt.init(params))[0])


def test_update_accepts_and_ignores_extra_arguments_like_optax_adamw():
  params = {"w": jnp.linspace(-1.0, 1.0, 4)}
  opt, ref = od.fused_adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)
  u, _ = opt.update(params, opt.init(params), params, value=1.0, grad=params)
  want, _ = ref.update(params, ref.init(params), params, value=1.0)
  np.testing.assert_array_equal(u["w"], want["w"])


@pytest.mark.parametrize(
  ("call", "match"),
  [
    (
      lambda opt, p, g: opt.step(p, g, optax.adam(1e-3).init(p)),
      r"fused_adamw\(\.\.\.\)\.step: `state` is not this optimizer's state .* got a tuple of 2 "
      r"items: \(ScaleByAdamState, EmptyState\): make it with this optimizer's `init\(params\)`",
    ),
    (
      lambda opt, p, g: opt.step(g, opt.init(p), p),  # update's order
      r"fused_adamw\(\.\.\.\)\.step: `state` .* the arguments look swapped: `step` takes "
      r"\(params, grads, state\)",
    ),
    (
      lambda opt, p, g: opt.update(p, g, opt.init(p)),  # step's order
      r"fused_adamw\(\.\.\.\)\.update: `state` .* the arguments look swapped",
    ),
    (
      lambda opt, p, g: opt.step(p, g, optax.inject_hyperparams(optax.adamw)(1e-3).init(p)),
      r"fused_adamw\(\.\.\.\)\.step: `state` .*inject_hyperparams state's `inner_state`",
    ),
  ],
  ids=["adam-state", "update-order", "step-order", "injected-state"],
)
def test_a_state_that_is_not_its_own_raises_naming_the_method_and_the_argument(call, match):
  params = {"w": jnp.ones(3)}
  opt = od.fused_adamw(1e-3, weight_decay=0.1)
  with pytest.raises(TypeError, match=match):
    call(opt, params, params)


def test_a_state_made_for_other_params_and_misshapen_grads_name_the_method_and_argument():
  params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  opt = od.fused_adamw(1e-3)
  for other in ({"kernel": jnp.ones((2, 2))}, {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}):
    for call, where in ((opt.step, "step"), (lambda p, g, s: opt.update(g, s, p), "update")):
      with pytest.raises(ValueError, match=rf"fused_adamw\(\.\.\.\)\.{where}: `state` was made "):
        call(params, params, opt.init(other))
  with pytest.raises(ValueError, match=r"fused_adamw\(\.\.\.\)\.step: `grads` at 'bias' has shape"):
    opt.step(params, {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(3)}, opt.init(params))
