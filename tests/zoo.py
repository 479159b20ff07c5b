"""A zoo of real parameter trees, each built by the real framework, for the conformance matrix.

Every :class:`Specimen` holds the params a user of that framework hands to an optimizer, the
``mask=`` the docs tell that user to write, and — written out by hand, as a reader of the docs
expects it — the set of leaf paths that mask decays. The conformance tests compare every
selection entry point of optaxdecay, through every Optax wrapper, with that annotation (and
with Optax itself, given the annotation as a bool mask).

Paths are the ``'a/b'`` strings of the *unboxed* params (Linen's partitioning boxes and NNX's
``Variable`` wrappers removed), i.e. what ``describe_mask`` prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxdecay as od


@dataclasses.dataclass(frozen=True)
class Specimen:
  """One zoo tree.

  Attributes:
    name: the test id.
    params: the params as the framework gives them (boxes, ``Variable`` wrappers, ``None``
      leaves included).
    decayed: the paths a reader expects ``mask`` to decay.
    mask: the ``mask=`` argument the docs give for this framework (default ``bias_mask``).
    mask_source: what to call a mask *function* on, when the user calls it on something else
      than ``params`` (the ``nnx.Module`` itself); ``None``: pass the function as ``mask=``.
    only: ``(kwargs, paths)``: how a reader of the docs writes "only the Dense/Linear weights"
      for this tree with ``decay_mask``'s include rules (by module class where the tree, or
      ``mask_source``, carries the classes; by name otherwise), and the paths it decays.
  """

  name: str
  params: Any
  decayed: frozenset[str]
  mask: Any = od.bias_mask
  mask_source: Any = None
  only: tuple[dict[str, Any], frozenset[str]] = ({}, frozenset())

  @property
  def mask_arg(self) -> Any:
    """The ``mask=`` to pass: the function, or its value on ``mask_source``."""
    return self.mask if self.mask_source is None else self.mask(self.mask_source)


def unboxed(tree: Any) -> Any:
  """``tree`` without Linen boxes and NNX ``Variable`` wrappers (the oracle's view)."""
  from flax import nnx
  from flax.core import meta

  def strip(x: Any) -> Any:
    if isinstance(x, meta.AxisMetadata):
      return x.unbox(apply_constraint=False) if isinstance(x, meta.Partitioned) else x.unbox()
    if isinstance(x, nnx.Variable):
      return x.get_value()
    return x

  wrapped = lambda x: isinstance(x, (meta.AxisMetadata, nnx.Variable))
  return jax.tree.map(strip, tree, is_leaf=wrapped)


def path_string(path: Any) -> str:
  """A JAX key path as ``'a/b'``, written independently of optaxdecay's own walk."""

  def part(k: Any) -> str:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        return str(getattr(k, attr))
    return str(k)

  return "/".join(part(k) for k in path)


def leaf_paths(tree: Any) -> list[tuple[str, Any]]:
  """``[(path, leaf)]`` of the present leaves of the unboxed ``tree`` (JAX's key paths)."""
  pairs, _ = jax.tree_util.tree_flatten_with_path(unboxed(tree))
  return [(path_string(path), leaf) for path, leaf in pairs]


def _w(rng: np.random.Generator, *shape: int, dtype: Any = jnp.float32) -> jax.Array:
  return jnp.asarray(rng.normal(size=shape) + 0.5, dtype)


# ----------------------------------------------------------------------------------------------
# Flax Linen


def _linen() -> list[Specimen]:
  from flax import linen as nn
  from flax.core import freeze

  x = jnp.ones((1, 3))

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.LayerNorm()(nn.Dense(4)(x))
      return nn.Dense(2)(x)

  mlp = MLP().init(jax.random.key(0), x)["params"]
  mlp_decayed = frozenset({"Dense_0/kernel", "LayerNorm_0/scale", "Dense_1/kernel"})

  class Block(nn.Module):
    @nn.compact
    def __call__(self, x, _):
      return nn.LayerNorm()(nn.Dense(3)(x)), None

  class Scanned(nn.Module):
    @nn.compact
    def __call__(self, x):
      blocks = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=2)
      return blocks()(x, None)[0]

  scanned = Scanned().init(jax.random.key(1), x)["params"]

  class Remat(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.remat(nn.Dense)(2)(x)

  remat = Remat().init(jax.random.key(2), x)["params"]

  class WithBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.BatchNorm(use_running_average=True)(nn.Dense(3)(x))

  bn = WithBatchNorm().init(jax.random.key(3), x)["params"]  # params only: no batch_stats

  def boxed(partition: Callable[..., Any]) -> Any:
    class Sharded(nn.Module):
      @nn.compact
      def __call__(self, x):
        x = nn.Dense(
          4,
          kernel_init=partition(nn.initializers.lecun_normal(), ("embed", "mlp")),
          bias_init=partition(nn.initializers.normal(1.0), ("mlp",)),
        )(x)
        x = nn.LayerNorm(
          scale_init=partition(nn.initializers.ones, ("mlp",)),
          bias_init=partition(nn.initializers.normal(1.0), ("mlp",)),
        )(x)
        return nn.Dense(2, kernel_init=partition(nn.initializers.lecun_normal(), ("mlp", None)))(x)

    return Sharded().init(jax.random.key(4), x)["params"]

  dense = ({"include_regex": ("Dense",)}, frozenset({"Dense_0/kernel", "Dense_1/kernel"}))
  return [
    Specimen("linen", mlp, mlp_decayed, only=dense),
    Specimen("linen-frozendict", freeze(mlp), mlp_decayed, only=dense),
    # nn.scan stacks the block's params on a leading axis: the stacked LayerNorm scale is 2-D,
    # biases are excluded by name whatever their ndim.
    Specimen(
      "linen-scan",
      scanned,
      frozenset({"ScanBlock_0/Dense_0/kernel", "ScanBlock_0/LayerNorm_0/scale"}),
      only=({"include_regex": ("Dense",)}, frozenset({"ScanBlock_0/Dense_0/kernel"})),
    ),
    Specimen(
      "linen-remat",
      remat,
      frozenset({"CheckpointDense_0/kernel"}),
      only=({"include_regex": ("Dense",)}, frozenset({"CheckpointDense_0/kernel"})),
    ),
    Specimen(
      "linen-batchnorm",
      bn,
      frozenset({"Dense_0/kernel", "BatchNorm_0/scale"}),
      only=({"include_regex": ("Dense",)}, frozenset({"Dense_0/kernel"})),
    ),
    Specimen("linen-partitioned", boxed(nn.with_partitioning), mlp_decayed, only=dense),
    Specimen("linen-logical", boxed(nn.with_logical_partitioning), mlp_decayed, only=dense),
  ]


# ----------------------------------------------------------------------------------------------
# Flax NNX


def _nnx() -> list[Specimen]:
  from flax import nnx

  class Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
      self.embed = nnx.Embed(5, 3, rngs=rngs)
      self.dense = nnx.Linear(3, 4, rngs=rngs)
      self.norm = nnx.LayerNorm(4, rngs=rngs)
      self.lora = nnx.LoRA(4, 2, 2, rngs=rngs)

  model = Model(nnx.Rngs(0))
  everything = frozenset(
    {"embed/embedding", "dense/kernel", "norm/scale", "lora/lora_a", "lora/lora_b"}
  )
  levanter = od.decay_mask(exclude_modules=("LayerNorm", "RMSNorm", "Embed"))

  @nnx.vmap(in_axes=0, out_axes=0)
  def stack(key: jax.Array) -> nnx.Linear:
    return nnx.Linear(3, 3, rngs=nnx.Rngs(key))

  stacked = stack(jax.random.split(jax.random.key(1), 2))

  class Scanned(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
      @nnx.split_rngs(splits=2)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def layers(rngs: nnx.Rngs) -> nnx.LayerNorm:
        return nnx.LayerNorm(3, rngs=rngs)

      self.layers = layers(rngs)

  scanned = Scanned(nnx.Rngs(2))
  linear = frozenset({"dense/kernel"})
  by_class = ({"include_modules": ("Linear",)}, linear)
  return [
    Specimen(
      "nnx-state",
      nnx.state(model, nnx.Param),
      everything,
      only=({"include_regex": ("^dense/",)}, linear),
    ),
    # The module itself: the mask function called on it (its nnx.Param state's structure).
    Specimen(
      "nnx-module",
      nnx.state(model, nnx.Param),
      everything,
      mask=od.bias_mask,
      mask_source=model,
      only=by_class,
    ),
    # Levanter's rule with NNX's class names: no decay inside LayerNorm or Embed.
    Specimen(
      "nnx-levanter",
      nnx.state(model, nnx.Param),
      frozenset({"dense/kernel", "lora/lora_a", "lora/lora_b"}),
      mask=levanter,
      mask_source=model,
      only=({"include_modules": (nnx.Linear,)}, linear),
    ),
    Specimen(
      "nnx-vmap-stack",
      nnx.state(stacked, nnx.Param),
      frozenset({"kernel"}),
      only=({"include_regex": ("kernel",)}, frozenset({"kernel"})),
    ),
    # A stack of LayerNorms: 2-D scales and biases; the nanoGPT rule counts ndim per layer.
    Specimen(
      "nnx-stacked-norms",
      nnx.state(scanned, nnx.Param),
      frozenset(),
      mask=od.decay_mask(min_ndim=2, stacked="layers/"),
      # Only the stacked layers, biases still out: their 2-D scales decay.
      only=({"include_regex": ("^layers/",), "stacked": "layers/"}, frozenset({"layers/scale"})),
    ),
  ]


# ----------------------------------------------------------------------------------------------
# Equinox


def _equinox() -> list[Specimen]:
  import equinox as eqx

  keys = jax.random.split(jax.random.key(0), 4)
  mlp = eqx.filter(eqx.nn.MLP(3, 2, 4, 1, key=keys[0]), eqx.is_inexact_array)

  class WithStatic(eqx.Module):
    linear: eqx.nn.Linear
    norm: eqx.nn.LayerNorm
    label: str = eqx.field(static=True)

  ws = WithStatic(eqx.nn.Linear(3, 3, key=keys[1]), eqx.nn.LayerNorm(3), "block")
  stacked = eqx.filter_vmap(lambda k: eqx.nn.Linear(3, 3, key=k))(jax.random.split(keys[2], 2))
  return [
    # eqx.filter leaves None where the MLP holds its activation functions.
    Specimen(
      "eqx-filter",
      mlp,
      frozenset({"layers/0/weight", "layers/1/weight"}),
      only=({"include_modules": ("Linear",)}, frozenset({"layers/0/weight", "layers/1/weight"})),
    ),
    Specimen(
      "eqx-static",
      eqx.filter(ws, eqx.is_inexact_array),
      frozenset({"linear/weight", "norm/weight"}),
      only=({"include_modules": (eqx.nn.Linear,)}, frozenset({"linear/weight"})),
    ),
    Specimen(
      "eqx-levanter",
      eqx.filter(ws, eqx.is_inexact_array),
      frozenset({"linear/weight"}),
      mask=od.decay_mask(exclude_modules=("LayerNorm", "RMSNorm", "Embedding")),
      only=({"include_modules": ("Linear",)}, frozenset({"linear/weight"})),
    ),
    Specimen(
      "eqx-vmap-stack",
      eqx.filter(stacked, eqx.is_inexact_array),
      frozenset({"weight"}),
      only=({"include_modules": ("Linear",)}, frozenset({"weight"})),
    ),
  ]


# ----------------------------------------------------------------------------------------------
# Haiku


def _haiku() -> list[Specimen]:
  import haiku as hk

  x = jnp.ones((1, 3))
  net = hk.transform(lambda x: hk.LayerNorm(-1, True, True)(hk.Linear(4)(x)))
  params = net.init(jax.random.key(0), x)

  def layer(x):
    return jax.nn.relu(hk.Linear(3)(x))

  stack = hk.transform(lambda x: hk.experimental.layer_stack(2)(layer)(x))
  stacked = stack.init(jax.random.key(1), x)
  return [
    Specimen(
      "haiku",
      params,
      frozenset({"linear/w", "layer_norm/scale"}),
      only=({"include_regex": ("linear",)}, frozenset({"linear/w"})),
    ),
    # hk.layer_stack adds a leading axis: a stacked `b` is 2-D; `stacked=` says so.
    Specimen(
      "haiku-layer-stack",
      stacked,
      frozenset({"__layer_stack_no_per_layer/linear/w"}),
      mask=od.decay_mask(stacked="__layer_stack"),
      only=(
        {"include_regex": ("linear",), "stacked": "__layer_stack"},
        frozenset({"__layer_stack_no_per_layer/linear/w"}),
      ),
    ),
  ]


# ----------------------------------------------------------------------------------------------
# Plain pytrees


class Pair(NamedTuple):
  weight: Any
  bias: Any


def _plain() -> list[Specimen]:
  rng = np.random.default_rng(0)
  mixed = {
    "layers": [Pair(_w(rng, 3, 2), _w(rng, 2)), Pair(_w(rng, 2, 2), None)],
    "head": (_w(rng, 2, 1), _w(rng, 1)),  # no names: ndim decides
    "act": {},  # an empty subtree (an activation with no params)
    "temperature": jnp.asarray(0.7),  # a 0-d leaf: decayed (it is no bias)
    "gain": 1.5,  # a Python float
    "frozen": None,
  }
  dtypes = {
    "f16": {"kernel": _w(rng, 2, 2, dtype=jnp.float16), "bias": _w(rng, 2, dtype=jnp.float16)},
    "bf16": {"kernel": _w(rng, 2, 2, dtype=jnp.bfloat16)},
    "c64": {
      "kernel": jnp.asarray(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)), jnp.complex64),
      "bias": jnp.asarray([1 + 2j, -1j], jnp.complex64),
    },
  }
  torch_style = {"fc1.weight": _w(rng, 3, 3), "fc1.bias": _w(rng, 3), "ln.weight": _w(rng, 3)}
  return [
    Specimen(
      "plain-mixed",
      mixed,
      frozenset({"layers/0/weight", "layers/1/weight", "head/0", "temperature", "gain"}),
      only=({"include_regex": ("^layers/",)}, frozenset({"layers/0/weight", "layers/1/weight"})),
    ),
    Specimen(
      "plain-dtypes",
      dtypes,
      frozenset({"f16/kernel", "bf16/kernel", "c64/kernel"}),
      only=({"include_regex": ("kernel",)}, frozenset({"f16/kernel", "bf16/kernel", "c64/kernel"})),
    ),
    Specimen(
      "torch-state-dict",
      torch_style,
      frozenset({"fc1.weight", "ln.weight"}),
      only=({"include_regex": (r"^fc\d",)}, frozenset({"fc1.weight"})),
    ),
  ]


_FAMILIES: dict[str, tuple[str, Callable[[], list[Specimen]]]] = {
  "linen": ("flax", _linen),
  "nnx": ("flax", _nnx),
  "equinox": ("equinox", _equinox),
  "haiku": ("haiku", _haiku),
  "plain": ("jax", _plain),
}


def specimens() -> list[Specimen]:
  """Every zoo tree whose framework is installed (each family built once per session)."""
  return [s for family in _FAMILIES for s in family_specimens(family)]


_CACHE: dict[str, list[Specimen]] = {}


def family_specimens(family: str) -> list[Specimen]:
  module, build = _FAMILIES[family]
  if family not in _CACHE:
    try:
      __import__(module)
    except ImportError:
      _CACHE[family] = []
    else:
      _CACHE[family] = build()
  return _CACHE[family]


#: The ids of every zoo tree per family, installed or not (so that test ids do not depend on it).
NAMES: dict[str, tuple[str, ...]] = {
  "linen": (
    "linen", "linen-frozendict", "linen-scan", "linen-remat", "linen-batchnorm",
    "linen-partitioned", "linen-logical",
  ),
  "nnx": ("nnx-state", "nnx-module", "nnx-levanter", "nnx-vmap-stack", "nnx-stacked-norms"),
  "equinox": ("eqx-filter", "eqx-static", "eqx-levanter", "eqx-vmap-stack"),
  "haiku": ("haiku", "haiku-layer-stack"),
  "plain": ("plain-mixed", "plain-dtypes", "torch-state-dict"),
}  # fmt: skip


def names() -> list[str]:
  """The ids of every zoo tree, installed or not (``tests/test_conformance.py`` checks that they
  are exactly the specimens each installed family builds)."""
  return [name for family in _FAMILIES for name in NAMES[family]]


def get(name: str) -> Specimen:
  """The zoo tree ``name``; skips when its framework is missing."""
  for family in _FAMILIES:
    for s in family_specimens(family):
      if s.name == name:
        return s
  pytest.skip(f"zoo tree {name!r}: its framework is not installed (the [test] extra has it)")
