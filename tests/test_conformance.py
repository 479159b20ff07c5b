"""Conformance: every selection entry point x zoo tree x Optax wrapper, against an oracle.

The entry points are the rows of ``tests/helpers.py``; the trees are the zoo's. The oracle is the
zoo's annotation (``tests/zoo.py``: the leaves a reader of the docs expects the
framework's documented ``mask=`` to decay), written as the update each entry point must give on
a **zero** incoming gradient — ``-rate·w`` on the decayed leaves and nothing elsewhere for
decoupled decay, ``+l2·w`` for L2, ``-lr·wd·w`` for the AdamW-like optimizers — and, where Optax
can say it, Optax itself given the annotation as a bool mask (``optax.adamw(mask=...)``,
``optax.add_decayed_weights``). A wrapper changes the expectation only where it says so (a
frozen group gets no update). Structure is checked too: the updates keep the params' Linen
boxes and NNX wrappers, as ``optax.adamw``'s do.

Cost: the eager wrappers share nothing but are tiny; the compiled ones (``jit``,
``MultiSteps``, ``vmap``) compile one function per (tree, wrapper) that runs every entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import zoo
from helpers import LR, OPTIMIZERS, RATE, ROWS, WD, ZEROS, Row
from jax.experimental import checkify

import optaxdecay as od
from optaxdecay import compat


def _expected(entry: Row, w: Any, s: Any) -> Any:
  """The zero-gradient update of a decayed leaf ``w`` with the coefficient scaled by ``s``."""
  return entry.zero_grad(w, entry.kwargs[entry.arg] * s)


def _tx(entry: Row, params: Any, mask: Any, **overrides: Any) -> Any:
  kwargs = {**entry.kwargs, **overrides}
  if kwargs.get("anchor") == ZEROS:
    kwargs["anchor"] = jax.tree.map(jnp.zeros_like, params)
  return entry.factory(**kwargs, mask=mask)


def _zeros(params: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, params)


def _top_keys(params: Any) -> list[Any] | None:
  inner = zoo.unboxed(params)
  if hasattr(inner, "keys") and len(inner) > 1:
    return list(inner.keys())
  return None


def _prefix(params: Any, first: Any, rest: Any) -> Any:
  """A prefix of the params' root: ``first`` for its first key, ``rest`` for the others, in
  the root's own container type (Optax matches prefixes by node type: a dict is no prefix of a
  FrozenDict)."""
  keys = _top_keys(params)
  assert keys is not None
  out = {k: first if i == 0 else rest for i, k in enumerate(keys)}
  root = zoo.unboxed(params)
  return out if type(root) is dict else type(root)(out)


def _per_leaf(spec: zoo.Specimen, fn: Callable[[str, Any], Any]) -> Any:
  """``fn(path, leaf)`` over the unboxed params (the oracle's own walk of the tree)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, leaf: fn(zoo.path_string(path), leaf), zoo.unboxed(spec.params)
  )


# ----------------------------------------------------------------------------------------------
# The wrappers: each runs a list of (name, entry) on the zero gradient and says which top-level
# subtree (if any) it freezes.


def _run_all(make: Callable[[Row], Any], entries, params, *, jit: bool = True) -> dict:
  """``{name: updates}`` of ``make(entry)`` on the zero gradient, for every entry: inside one
  ``jax.jit`` (one compile per tree and wrapper), or eagerly."""
  txs = [(n, make(e)) for n, e in entries]

  def run(p):
    return {n: tx.update(_zeros(p), tx.init(p), p)[0] for n, tx in txs}

  return jax.jit(run)(params) if jit else run(params)


def _plain(spec, entries, mask, params):
  # Eager, as in a notebook: the two transforms of the theory (every entry point runs the same
  # Python under the other wrappers, compiled).
  core = [(n, e) for n, e in entries if n in ("decoupled", "l2")]
  return _run_all(lambda e: _tx(e, params, mask), core, params, jit=False), None


def _jit(spec, entries, mask, params):
  return _run_all(lambda e: _tx(e, params, mask), entries, params), None


def _checked(spec, entries, mask, params):
  txs = [(n, od.checked(_tx(e, params, mask))) for n, e in entries]

  def run(p):
    return {n: tx.update(_zeros(p), tx.init(p), p)[0] for n, tx in txs}

  err, out = jax.jit(checkify.checkify(run))(params)
  err.throw()
  return out, None


def _masked_full(spec, entries, mask, params):
  everything = jax.tree.map(lambda _: True, zoo.unboxed(params))
  return _run_all(lambda e: optax.masked(_tx(e, params, mask), everything), entries, params), None


def _masked_prefix(spec, entries, mask, params):
  keys = _top_keys(params)
  if keys is None:
    pytest.skip("a prefix mask needs a dict-like root with two or more keys")
  prefix = _prefix(params, False, True)
  return _run_all(lambda e: optax.masked(_tx(e, params, mask), prefix), entries, params), keys[0]


def _partition_frozen(spec, entries, mask, params):
  keys = _top_keys(params)
  if keys is None:
    pytest.skip("a frozen group by prefix needs a dict-like root with two or more keys")
  labels = _prefix(params, "frozen", "train")

  def make(e):
    return optax.partition({"frozen": optax.set_to_zero(), "train": _tx(e, params, mask)}, labels)

  return _run_all(make, entries, params), keys[0]


def _partition_bias(spec, entries, mask, params):
  # The decayed leaves in one group, the rest in another, the same optimizer in both: each
  # group's mask sees the other group's leaves as MaskedNode, and the union is the whole.
  labels = _per_leaf(spec, lambda path, _: "w" if path in spec.decayed else "b")
  # Optax reads a callable label tree (an Equinox module is callable) as a function: wrap it.
  labels_fn = lambda _: labels

  def make(e):
    return optax.partition({"w": _tx(e, params, mask), "b": _tx(e, params, mask)}, labels_fn)

  return _run_all(make, entries, params), None


def _multisteps(spec, entries, mask, params):
  txs = [(n, optax.MultiSteps(_tx(e, params, mask), every_k_schedule=2)) for n, e in entries]

  @jax.jit
  def run(p):
    out = {}
    for n, tx in txs:
      state = tx.init(p)
      first, state = tx.update(_zeros(p), state, p)
      out[n] = (first, tx.update(_zeros(p), state, p)[0])
    return out

  both = run(params)
  for n, (first, _) in both.items():  # nothing is applied before the k-th call
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(first)), n
  return {n: second for n, (_, second) in both.items()}, None


def _inject(spec, entries, mask, params):
  def make(e):
    kwargs = {**e.kwargs}
    if kwargs.get("anchor") == ZEROS:
      kwargs["anchor"] = _zeros(params)
    # inject_hyperparams takes the hyperparameters' dtype from the params (complex64 for the
    # dtype zoo, which optaxdecay refuses: tests/test_checked.py); a real dtype is the fix.
    inject = optax.inject_hyperparams(e.factory, static_args=e.static, hyperparam_dtype=jnp.float32)
    return inject(**kwargs, mask=mask)

  return _run_all(make, entries, params), None


def _apply_if_finite(spec, entries, mask, params):
  def make(e):
    return optax.apply_if_finite(_tx(e, params, mask), max_consecutive_errors=3)

  return _run_all(make, entries, params), None


WRAPPERS: dict[str, Callable[..., Any]] = {
  "plain": _plain,
  "jit": _jit,
  "checked": _checked,
  "masked-full": _masked_full,
  "masked-prefix": _masked_prefix,
  "partition-frozen": _partition_frozen,
  "partition-bias": _partition_bias,
  "multisteps": _multisteps,
  "inject_hyperparams": _inject,
  "apply_if_finite": _apply_if_finite,
}


def _tolerance(dtype: Any) -> float:
  return {"float16": 2e-3, "bfloat16": 1e-2}.get(str(jnp.dtype(dtype)), 1e-6)


def _assert_update(spec, name, u, params, frozen, scale=1.0, expected_of=None):
  """``u`` has the params' structure and, leaf by leaf, the oracle's update."""
  assert jax.tree.structure(u) == jax.tree.structure(_zeros(params)), (
    f"{spec.name} / {name}: the updates lost the params' structure (boxes, wrappers)"
  )
  got = dict(zoo.leaf_paths(u))
  want = dict(zoo.leaf_paths(params))
  assert got.keys() == want.keys(), f"{spec.name} / {name}: leaves {got.keys()} != {want.keys()}"
  for path, w in want.items():
    in_frozen = frozen is not None and path.split("/")[0] == str(frozen)
    w64 = np.asarray(w).astype(np.complex128 if np.iscomplexobj(w) else np.float64)
    decayed = path in spec.decayed and not in_frozen
    expected = expected_of(w64, scale) if decayed else np.zeros_like(w64)
    np.testing.assert_allclose(
      np.asarray(got[path]).astype(w64.dtype),
      expected,
      rtol=_tolerance(np.asarray(w).dtype),
      atol=1e-7,
      err_msg=f"{spec.name} / {name}: leaf {path!r} ({'decayed' if decayed else 'kept'})",
    )


@pytest.mark.parametrize("family", list(zoo.NAMES))
def test_the_zoo_ids_are_the_specimens_each_family_builds(family):
  """The test ids are written out (so that they do not depend on what is installed): a typo there
  would show as a misleading 'framework not installed' skip, so they must be the built names."""
  built = zoo.family_specimens(family)
  if not built:
    pytest.skip(f"zoo family {family!r}: its framework is not installed")
  assert tuple(s.name for s in built) == zoo.NAMES[family]


def _tracked(rate: Any, mask: Any) -> optax.GradientTransformation:
  """The decay behind ``track_rotation``, which must pass its updates through unchanged."""
  return optax.chain(od.decoupled_weight_decay(rate, mask=mask), od.diagnostics.track_rotation())


#: The rotation monitor joins the matrix behind the decay (it refuses complex leaves).
TRACKED = Row(_tracked, "rate", {"rate": RATE}, lambda w, c: -c * w)


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("tree", zoo.names())
def test_every_entry_point_selects_the_annotated_leaves(tree, wrapper):
  spec = zoo.get(tree)
  params = spec.params
  entries = list(ROWS.items())
  if not any(jnp.iscomplexobj(x) for _, x in zoo.leaf_paths(params)):
    entries.append(("tracked", TRACKED))
  if wrapper == "checked" or tree == "plain-mixed":
    # Python-float and complex leaves: the AdamW-like optimizers are tested on them below; here
    # the Adam state of a Python float is no concern of the selection.
    entries = [(n, e) for n, e in entries if tree != "plain-mixed" or n not in _ADAM_LIKE]
  outs, frozen = WRAPPERS[wrapper](spec, entries, spec.mask_arg, params)
  for name, u in outs.items():
    entry = TRACKED if name == "tracked" else ROWS[name]
    expected = lambda w, s, e=entry: _expected(e, w, s)
    _assert_update(spec, f"{name} in {wrapper}", u, params, frozen, 1.0, expected)


_ADAM_LIKE = tuple(n for n in OPTIMIZERS if n != "torch_sgd")


@pytest.mark.parametrize("tree", zoo.names())
def test_a_vmapped_hyperparameter_scales_the_selected_decay(tree):
  spec = zoo.get(tree)
  params, mask = spec.params, spec.mask_arg
  entries = [(n, e) for n, e in ROWS.items() if n not in _ADAM_LIKE or tree != "plain-mixed"]

  @jax.jit
  def run(scales):
    out = {}
    for n, e in entries:
      base = e.kwargs[e.arg]

      def one(s, e=e, base=base):
        tx = _tx(e, params, mask, **{e.arg: base * s})
        return tx.update(_zeros(params), tx.init(params), params)[0]

      out[n] = jax.vmap(one)(scales)
    return out

  scales = jnp.asarray([1.0, 3.0])
  for name, stacked in run(scales).items():
    for i, s in enumerate((1.0, 3.0)):
      u = jax.tree.map(lambda x, i=i: x[i], stacked)
      expected = lambda w, s, e=ROWS[name]: _expected(e, w, s)
      _assert_update(spec, f"{name} at x{s}", u, params, None, s, expected)


# ----------------------------------------------------------------------------------------------
# The mask builders and describe_mask, and the whole optimizers against Optax's own.


@pytest.mark.parametrize("tree", zoo.names())
def test_mask_builders_and_describe_mask_agree_with_the_annotation(tree):
  spec = zoo.get(tree)
  mask_tree = spec.mask_arg if spec.mask_source is not None else spec.mask(spec.params)
  # The mask keeps the params' structure (boxes, wrappers), so optax.masked accepts it.
  assert jax.tree.structure(mask_tree) == jax.tree.structure(
    jax.tree.map(lambda _: True, spec.params)
  )
  got = {p for p, m in zoo.leaf_paths(mask_tree) if m}
  assert got == spec.decayed
  rows = od.diagnostics.describe_mask(spec.params, mask=spec.mask_arg).rows
  assert {r.path for r in rows if r.decayed} == spec.decayed
  assert {r.path for r in rows} == {p for p, _ in zoo.leaf_paths(spec.params)}


@pytest.mark.parametrize("tree", zoo.names())
def test_include_rules_decay_only_what_they_name_on_every_tree(tree):
  """ "Only the Dense/Linear weights", written as the docs say for each framework (by class where
  the tree carries classes, by name otherwise): exactly the annotated leaves decay, the default
  exclusions still apply, and a decay transform given the mask decays those leaves alone."""
  spec = zoo.get(tree)
  kwargs, expected = spec.only
  assert kwargs, f"{tree}: no include annotation"
  mask_fn = od.decay_mask(**kwargs)
  mask = mask_fn(spec.mask_source if spec.mask_source is not None else spec.params)
  assert {p for p, m in zoo.leaf_paths(mask) if m} == expected
  tx = od.decoupled_weight_decay(RATE, mask=mask)
  params = spec.params
  u = jax.jit(lambda p: tx.update(_zeros(p), tx.init(p), p)[0])(params)
  only = zoo.Specimen(spec.name, params, expected)
  _assert_update(only, "include rules", u, params, None, 1.0, lambda w, s: -RATE * s * w)


@pytest.mark.parametrize("tree", ["linen", "nnx-state", "haiku", "torch-state-dict"])
def test_include_modules_on_a_tree_without_classes_says_what_to_write(tree):
  spec = zoo.get(tree)
  with pytest.raises(ValueError, match=r"`include_modules` needs params that carry their module "
                     r"classes.*match names with `include_regex=`"):  # fmt: skip
    od.decay_mask(include_modules=("Linear",))(spec.params)


@pytest.mark.parametrize("tree", zoo.names())
def test_decay_multipliers_follow_the_written_rule_on_every_tree(tree):
  """big_vision's rule: the first regex that *fullmatches* the path gives the multiplier."""
  spec = zoo.get(tree)
  rules = [(".*bias", 0.0), (".*(kernel|weight|embedding|/w)", 0.5), (".*scale", 2.0)]
  import re

  def rule(path: str) -> float:
    return next((m for r, m in rules if re.fullmatch(r, path)), 0.0)

  tx = od.decoupled_weight_decay(RATE, mask=od.decay_multipliers(rules))
  params = spec.params
  u = tx.update(_zeros(params), tx.init(params), params)[0]
  got = dict(zoo.leaf_paths(u))
  for path, w in zoo.leaf_paths(params):
    w64 = np.asarray(w).astype(np.complex128 if np.iscomplexobj(w) else np.float64)
    np.testing.assert_allclose(
      np.asarray(got[path]).astype(w64.dtype),
      -RATE * rule(path) * w64,
      rtol=_tolerance(np.asarray(w).dtype),
      atol=1e-7,
      err_msg=f"{tree}: {path}",
    )


def _grads(params: Any) -> Any:
  return jax.tree.map(lambda w: 0.1 * jnp.cos(jnp.asarray(w)) + 0.05, params)


def _oracle_mask(spec: zoo.Specimen) -> Any:
  return _per_leaf(spec, lambda path, _: path in spec.decayed)


@pytest.mark.parametrize("tree", zoo.names())
def test_fused_adamw_update_step_and_sharded_step_are_optax_adamw(tree):
  """With a real gradient, against ``optax.adamw(mask=<the annotation>)`` on the unboxed params:
  ``update``, and ``step`` / ``sharded_step`` against its ``apply_updates``."""
  spec = zoo.get(tree)
  params = spec.params
  opt = od.fused_adamw(LR, weight_decay=WD, mask=spec.mask_arg, chunk_size=2)
  ref = optax.adamw(LR, weight_decay=WD, mask=_oracle_mask(spec))
  plain = zoo.unboxed(params)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
  specs = jax.tree.map(lambda _: jax.sharding.PartitionSpec(), params)

  @jax.jit
  def run(params, plain):
    ref_u, _ = ref.update(_grads(plain), ref.init(plain), plain)
    u, _ = opt.update(_grads(params), opt.init(params), params)
    new_p, _ = opt.step(params, _grads(params), opt.init(params))
    sharded_p, _ = opt.sharded_step(mesh, specs)(params, _grads(params), opt.init(params))
    return ref_u, optax.apply_updates(plain, ref_u), u, new_p, sharded_p

  ref_u, ref_p, u, new_p, sharded_p = run(params, plain)
  assert jax.tree.structure(u) == jax.tree.structure(_zeros(params))
  assert jax.tree.structure(new_p) == jax.tree.structure(params)
  for label, got, want in (
    ("update", u, ref_u),
    ("step", new_p, ref_p),
    ("sharded", sharded_p, ref_p),
  ):
    for (path, a), (_, b) in zip(zoo.leaf_paths(got), zoo.leaf_paths(want), strict=True):
      np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), rtol=_tolerance(np.asarray(b).dtype), atol=1e-6,
        err_msg=f"{tree}: fused_adamw {label} at {path}",
      )  # fmt: skip


@pytest.mark.parametrize("tree", zoo.names())
def test_compat_adamw_is_optax_adamw_given_the_annotation(tree):
  """``compat.torch_adamw(mask=...)`` (PyTorch's AdamW, decay before the step) agrees with
  ``optax.adamw(mask=<annotation>)`` to rounding on every tree: same selection, same numbers."""
  spec = zoo.get(tree)
  params = spec.params
  tx = compat.torch_adamw(LR, weight_decay=WD, mask=spec.mask_arg)
  ref = optax.adamw(LR, eps=1e-8, weight_decay=WD, mask=_oracle_mask(spec))
  plain = zoo.unboxed(params)
  want, _ = jax.jit(ref.update)(_grads(plain), ref.init(plain), plain)
  got, _ = jax.jit(tx.update)(_grads(params), tx.init(params), params)
  for (path, a), (_, b) in zip(zoo.leaf_paths(got), zoo.leaf_paths(want), strict=True):
    np.testing.assert_allclose(
      np.asarray(a), np.asarray(b), rtol=_tolerance(np.asarray(b).dtype), atol=1e-6,
      err_msg=f"{tree}: torch_adamw at {path}",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Drawn nestings: the generic properties on trees nobody wrote down.

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the [test] extra")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DTYPES = (jnp.float32, jnp.float16, jnp.bfloat16, jnp.complex64)
_NAMES = ("kernel", "bias", "b", "w", "scale", "offset", "embedding", "fc.bias", "x")


def _leaf_strategy():
  shapes = st.sampled_from([(), (2,), (2, 3), (1, 2, 2)])
  return st.one_of(
    st.none(),
    st.builds(
      lambda shape, dtype, seed: jnp.asarray(
        np.random.default_rng(seed).normal(size=shape) + 0.5, dtype
      ),
      shapes,
      st.sampled_from(_DTYPES),
      st.integers(0, 2**16),
    ),
  )


def _trees():
  return st.recursive(
    _leaf_strategy(),
    lambda kids: st.one_of(
      st.dictionaries(st.sampled_from(_NAMES), kids, max_size=3),
      st.lists(kids, max_size=3),
      st.lists(kids, max_size=3).map(tuple),
      st.builds(zoo.Pair, kids, kids),
    ),
    max_leaves=6,
  ).filter(lambda t: isinstance(t, (dict, list, tuple)))  # a container at the root


def _written_bias_rule(names: tuple, leaf: Any) -> bool:
  """``bias_mask``'s rule as the docs write it, on JAX's own key path (not optaxdecay's walk)."""
  last = names[-1] if names else None
  ndim = np.ndim(leaf)
  if isinstance(last, jax.tree_util.SequenceKey) or last is None:
    return ndim > 1
  name = str(getattr(last, "key", getattr(last, "name", last))).replace("/", ".").split(".")[-1]
  return not (name in ("bias", "offset") or (name == "b" and ndim <= 1))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(tree=_trees(), rate=st.sampled_from([0.0625, 0.25, 0.5]), mult=st.sampled_from([0.5, 2.0]))
def test_drawn_trees_select_by_the_written_rule_and_decay_by_rate_times_multiplier(
  tree, rate, mult
):
  pairs, _ = jax.tree_util.tree_flatten_with_path(tree)
  want = {jax.tree_util.keystr(p): _written_bias_rule(p, x) for p, x in pairs}
  got_mask = od.bias_mask(tree)
  got = {jax.tree_util.keystr(p): m for p, m in jax.tree_util.tree_flatten_with_path(got_mask)[0]}
  assert got == want
  # Zero gradient: -rate * mult * w on the selected leaves, exactly, and None/empty kept.
  mults = jax.tree.map(lambda m: mult if m else 0.0, got_mask)
  tx = od.decoupled_weight_decay(rate, mask=mults if mult * rate < 1 else got_mask)
  m_eff = mult if mult * rate < 1 else 1.0
  u, _ = tx.update(_zeros(tree), tx.init(tree), tree)
  assert jax.tree.structure(u) == jax.tree.structure(_zeros(tree))
  for (p, w), (_, x) in zip(pairs, jax.tree_util.tree_flatten_with_path(u)[0], strict=True):
    expected = -rate * m_eff * np.asarray(w, np.complex128) if want[jax.tree_util.keystr(p)] else 0
    np.testing.assert_allclose(np.asarray(x, np.complex128), expected, rtol=_tolerance(w.dtype))


@pytest.mark.parametrize("tree", ["linen-partitioned", "linen-logical", "nnx-state"])
def test_the_diagnostics_read_wrapped_params_as_the_unwrapped_ones(tree):
  """Boxes and Variable wrappers change nothing in a report: the oracle is the same report on
  the unboxed params."""
  spec = zoo.get(tree)
  boxed, plain = spec.params, zoo.unboxed(spec.params)
  tx = optax.chain(od.add_l2_to_grad(1e-3, mask=od.bias_mask), optax.adam(1e-3))
  reports = []
  for params in (boxed, plain):
    _, state = tx.update(_grads(params), tx.init(params), params)
    low = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), params)
    reports.append(
      (
        str(od.diagnostics.effective_l2_strength(state, 1e-3, mask=od.bias_mask)),
        str(od.diagnostics.decay_precision_report(low, 1e-4, mask=od.bias_mask)),
      )
    )
  assert reports[0] == reports[1]
  assert all(path in reports[0][0] for path in spec.decayed)
