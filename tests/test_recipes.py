"""The how-to's table "your framework's rule -> optaxdecay", one test per line.

Each test re-types the framework's own rule (from its source) and checks that the optaxdecay
one-liner gives the same decision on every parameter of that framework's naming.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.traverse_util import unflatten_dict
from test_doc_blocks import code_blocks

import optaxdecay as od

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras


def _flat(mask) -> dict[str, bool]:
  return {leaf.path: bool(leaf.value) for leaf in od._tree.flatten_leaves(mask)[0]}


def _torch_model():
  torch = pytest.importorskip("torch", reason="torch is not installed (extra: compat)")
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.attention = nn.Linear(8, 8)
      self.LayerNorm = nn.LayerNorm(8)  # BERT's naming
      self.final_norm = nn.LayerNorm(8)
      self.rmsnorm = nn.RMSNorm(8)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.wte = nn.Embedding(16, 8)
      self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
      self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
      self.blocks = nn.ModuleList([Block(), Block()])
      self.head = nn.Linear(8, 3)

  model = Net()
  params = {n: jnp.asarray(p.detach().numpy()) for n, p in model.named_parameters()}
  return torch, model, params


def test_pytorch_param_groups_no_decay_list():
  """HF's example scripts: ``no_decay = ['bias', 'LayerNorm.weight']``, substring match."""
  _, model, params = _torch_model()
  no_decay = ["bias", "LayerNorm.weight"]
  want = {n: not any(nd in n for nd in no_decay) for n, _ in model.named_parameters()}
  got = od.decay_mask(exclude=(), exclude_regex=map(re.escape, no_decay))(params)
  assert got == want


def _timm_vit():
  """A ViT with timm's parameter names: the four tokens of ``no_weight_decay()`` (register and
  distillation tokens included), 3-D, so the ``ndim`` rule alone would decay them."""
  torch = pytest.importorskip("torch", reason="torch is not installed (extra: compat)")
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.norm1, self.norm2 = nn.LayerNorm(8), nn.LayerNorm(8)
      self.attn = nn.Module()
      self.attn.qkv, self.attn.proj = nn.Linear(8, 24), nn.Linear(8, 8)
      self.mlp = nn.Module()
      self.mlp.fc1, self.mlp.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)

  class VisionTransformer(nn.Module):
    def __init__(self):
      super().__init__()
      self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
      self.reg_token = nn.Parameter(torch.zeros(1, 4, 8))
      self.dist_token = nn.Parameter(torch.zeros(1, 1, 8))
      self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
      self.patch_embed = nn.Module()
      self.patch_embed.proj = nn.Conv2d(3, 8, 4, 4)
      self.blocks = nn.ModuleList([Block(), Block()])
      self.norm = nn.LayerNorm(8)
      self.head = nn.Linear(8, 10)

    def no_weight_decay(self):  # timm's VisionTransformer.no_weight_decay
      return {"pos_embed", "cls_token", "dist_token", "reg_token"}

  model = VisionTransformer()
  params = {n: jnp.asarray(p.detach().numpy()) for n, p in model.named_parameters()}
  return model, params


def test_timm_param_groups_weight_decay():
  """timm ``param_groups_weight_decay``: no decay if ndim <= 1, '.bias', or a name the model's
  ``no_weight_decay()`` lists (matched with ``fnmatch``), on a ViT's real names."""
  import fnmatch

  model, params = _timm_vit()
  skip = model.no_weight_decay()
  want = {
    n: not (p.ndim <= 1 or n.endswith(".bias") or any(fnmatch.fnmatch(n, s) for s in skip))
    for n, p in model.named_parameters()
  }
  assert not any(want[t] for t in skip)  # the tokens are 3-D: only the list keeps them out
  spelled = od.decay_mask(
    exclude=("bias",),
    min_ndim=2,
    exclude_regex=("^pos_embed$", "^cls_token$", "^reg_token$", "^dist_token$"),
  )
  general = od.decay_mask(
    exclude=("bias",), min_ndim=2, exclude_regex=["^" + fnmatch.translate(s) for s in skip]
  )
  assert spelled(params) == want
  assert general(params) == want


HF_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def test_hugging_face_trainer_decay_parameter_names():
  """``Trainer.get_decay_parameter_names``: forbidden name patterns and LayerNorm modules."""
  torch, model, params = _torch_model()

  def get_parameter_names(module, forbidden_types, patterns):  # re-typed from transformers
    result = []
    for name, child in module.named_children():
      result += [
        f"{name}.{n}"
        for n in get_parameter_names(child, forbidden_types, patterns)
        if not isinstance(child, tuple(forbidden_types))
        and not any(p.search(f"{name}.{n}".lower()) for p in patterns)
      ]
    result += [k for k in module._parameters if not any(p.search(k.lower()) for p in patterns)]
    return result

  decayed = set(
    get_parameter_names(model, [torch.nn.LayerNorm], [re.compile(p) for p in HF_PATTERNS])
  )
  want = {n: n in decayed for n, _ in model.named_parameters()}
  got = od.decay_mask(exclude=(), exclude_regex=[f"(?i){p}" for p in HF_PATTERNS])(params)
  assert got == want


def test_nanogpt_configure_optimizers():
  """nanoGPT: ``decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]``."""
  _, model, params = _torch_model()
  want = {n: p.dim() >= 2 for n, p in model.named_parameters()}
  assert od.decay_mask(exclude=(), min_ndim=2)(params) == want


def _linen_params():
  nn = pytest.importorskip("flax.linen", reason="flax is in the [test] extra")

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Embed(10, 4)(x)
      x = nn.LayerNorm()(nn.Dense(4)(x))
      return nn.Dense(2, name="head")(x)

  return Net().init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))["params"]


def test_big_vision_wd_mults():
  """big_vision ``optax.make``: '/'-joined names, ``re.fullmatch``, first match wins, else 0."""
  params = _linen_params()
  wd_mults = [(".*head/kernel$", 0.5), (".*/kernel$", 1.0)]

  def big_vision_mult(name):  # re-typed from big_vision/optax.py
    for pattern, mult in wd_mults:
      if re.fullmatch(pattern, name):
        return mult
    return 0.0

  got = od.decay_multipliers(wd_mults)(params)
  for leaf in od._tree.flatten_leaves(got)[0]:
    assert leaf.value == big_vision_mult(leaf.path), leaf.path
  assert got["head"]["kernel"] == 0.5 and got["Dense_0"]["kernel"] == 1.0


def test_levanter_build_weight_decay_mask(eqx_block):
  """Levanter's default: no decay inside LayerNorm/RMSNorm/Embedding modules, nor biases."""
  eqx, params = eqx_block

  def levanter(leaf):  # re-typed: "Class.field" of the enclosing module, and the root path
    modules = [c for c in leaf.classes if issubclass(c, eqx.Module)]
    class_path = f"{modules[-1].__name__}.{leaf.names[-1]}"
    root_path = ".".join(str(n) for n in leaf.names)
    for path in (root_path, class_path):
      if any(s in path for s in ("LayerNorm", "RMSNorm", "Embedding")) or path.endswith("bias"):
        return False
    return True

  leaves = [leaf for leaf in od._tree.flatten_leaves(params)[0] if not leaf.absent]
  want = {leaf.path: levanter(leaf) for leaf in leaves}
  got = od.decay_mask(exclude_modules=("LayerNorm", "RMSNorm", "Embedding"))(params)
  assert {k: v for k, v in _flat(got).items() if k in want} == want
  assert not all(want.values()) and any(want.values())


def test_maxtext_adamw_decays_everything():
  """MaxText: ``optax.adamw(lr, b1, b2, eps, eps_root, weight_decay=wd, mu_dtype=...)``, no mask."""
  params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "scale": jnp.ones(3)}
  lr = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 30)
  maxtext = optax.adamw(lr, b1=0.9, b2=0.95, eps=1e-8, eps_root=0.0, weight_decay=0.1)
  ours = optax.chain(
    optax.adam(lr, b1=0.9, b2=0.95, eps=1e-8),
    od.decoupled_weight_decay(od.l2_to_decay_rate(0.1, lr)),
  )
  grad_fn = lambda p, step: jax.tree.map(lambda x: jnp.cos(x + step), p)
  od.testing.assert_equivalent(maxtext, ours, params, grad_fn, steps=30, rtol=1e-5, atol=1e-7)


def test_keras_exclude_from_weight_decay():
  """Keras 3: ``exclude_from_weight_decay(var_names=...)`` searches each variable's *name*."""
  keras = pytest.importorskip("keras", reason="keras is not installed (extra: compat)")
  model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8), keras.layers.LayerNormalization()]
  )
  var_names = ["bias", "gamma", "normalization"]  # 'normalization' is only in a layer's path
  opt = keras.optimizers.AdamW(weight_decay=0.01)
  opt.exclude_from_weight_decay(var_names=var_names)
  want = {v.path: bool(opt._use_weight_decay(v)) for v in model.trainable_variables}
  params = {v.path: jnp.asarray(np.asarray(v.value)) for v in model.trainable_variables}
  pattern = re.compile("|".join(var_names))
  got = od.decay_mask(
    exclude=(), exclude_if=lambda path, _: bool(pattern.search(path.split("/")[-1]))
  )
  assert _flat(got(params)) == want
  by_name = {path.split("/")[-1]: decayed for path, decayed in want.items()}
  assert by_name == {"kernel": True, "bias": False, "gamma": False, "beta": True}


def _hf_decayed(model, torch) -> set[str]:
  """transformers' ``Trainer.get_decay_parameter_names``, re-typed: the name patterns and the
  ``nn.LayerNorm`` modules."""
  patterns = [re.compile(p) for p in HF_PATTERNS]

  def names(module):
    result = []
    for name, child in module.named_children():
      result += [
        f"{name}.{n}"
        for n in names(child)
        if not isinstance(child, torch.nn.LayerNorm)
        and not any(p.search(f"{name}.{n}".lower()) for p in patterns)
      ]
    result += [k for k in module._parameters if not any(p.search(k.lower()) for p in patterns)]
    return result

  return set(names(model))


def _gpt2():
  """GPT-2 with Hugging Face's module names and classes (``GPT2LMHeadModel``, 2 blocks)."""
  torch = pytest.importorskip("torch", reason="torch is not installed (extra: compat)")
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.ln_1, self.ln_2 = nn.LayerNorm(8), nn.LayerNorm(8)
      self.attn = nn.Module()
      self.attn.c_attn, self.attn.c_proj = nn.Linear(8, 24), nn.Linear(8, 8)
      self.mlp = nn.Module()
      self.mlp.c_fc, self.mlp.c_proj = nn.Linear(8, 32), nn.Linear(32, 8)

  model = nn.Module()
  model.transformer = nn.Module()
  model.transformer.wte, model.transformer.wpe = nn.Embedding(16, 8), nn.Embedding(6, 8)
  model.transformer.h = nn.ModuleList([Block(), Block()])
  model.transformer.ln_f = nn.LayerNorm(8)
  model.lm_head = nn.Linear(8, 16, bias=False)
  return torch, model


def _clip():
  """CLIP with Hugging Face's module names and classes (``CLIPModel``, one layer per tower)."""
  torch = pytest.importorskip("torch", reason="torch is not installed (extra: compat)")
  nn = torch.nn

  def encoder():
    layer = nn.Module()
    layer.self_attn = nn.Module()
    for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
      setattr(layer.self_attn, proj, nn.Linear(8, 8))
    layer.layer_norm1, layer.layer_norm2 = nn.LayerNorm(8), nn.LayerNorm(8)
    layer.mlp = nn.Module()
    layer.mlp.fc1, layer.mlp.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
    enc = nn.Module()
    enc.layers = nn.ModuleList([layer])
    return enc

  model = nn.Module()
  model.text_model = nn.Module()
  model.text_model.embeddings = nn.Module()
  model.text_model.embeddings.token_embedding = nn.Embedding(16, 8)
  model.text_model.embeddings.position_embedding = nn.Embedding(6, 8)
  model.text_model.encoder = encoder()
  model.text_model.final_layer_norm = nn.LayerNorm(8)
  model.vision_model = nn.Module()
  model.vision_model.embeddings = nn.Module()
  model.vision_model.embeddings.class_embedding = nn.Parameter(torch.zeros(8))
  model.vision_model.embeddings.patch_embedding = nn.Conv2d(3, 8, 4, 4, bias=False)
  model.vision_model.embeddings.position_embedding = nn.Embedding(5, 8)
  model.vision_model.pre_layrnorm = nn.LayerNorm(8)  # sic: transformers' name
  model.vision_model.encoder = encoder()
  model.vision_model.post_layernorm = nn.LayerNorm(8)
  model.visual_projection = nn.Linear(8, 4, bias=False)
  model.text_projection = nn.Linear(8, 4, bias=False)
  model.logit_scale = nn.Parameter(torch.tensor(2.6592))
  return torch, model


def _howto_names() -> dict[str, Any]:
  """The how-to's cell that defines ``HF_PATTERNS`` and the LayerNorm names, run as pasted."""
  text = (Path(__file__).resolve().parent.parent / "docs" / "howto.md").read_text()
  (cell,) = [src for _, src in code_blocks(text) if "GPT2_LAYERNORMS =" in src]
  namespace: dict[str, Any] = {"od": od}
  exec(cell, namespace)  # the documentation's own code, as pasted
  return namespace


@pytest.mark.parametrize("layout", ["state_dict", "nested"])
@pytest.mark.parametrize("name", ["gpt2", "clip"])
def test_hugging_face_trainer_on_gpt2_and_clip_state_dict_names(name, layout):
  """On a state_dict's names the patterns alone decay GPT-2's ``ln_1/ln_2/ln_f`` and CLIP's
  ``layer_norm1/2`` and ``pre_layrnorm`` weights (the Trainer excludes them by class); the
  how-to's line adds each model's LayerNorm module names and agrees leaf for leaf, on the
  flat ``state_dict`` (dotted keys) and on the same tree nested (``/`` paths)."""
  torch, model = {"gpt2": _gpt2, "clip": _clip}[name]()
  howto = _howto_names()
  flat = {n: jnp.asarray(p.detach().numpy()) for n, p in model.named_parameters()}
  decayed = _hf_decayed(model, torch)
  want = {n: n in decayed for n in flat}
  if layout == "nested":
    flat, want = (unflatten_dict(d, sep=".") for d in (flat, want))
  patterns = [f"(?i){p}" for p in howto["HF_PATTERNS"]]
  patterns_only = od.decay_mask(exclude=(), exclude_regex=patterns)
  missed = sorted(
    path for path, m in _flat(patterns_only(flat)).items() if m and not _flat(want)[path]
  )
  assert missed, "the patterns alone should decay some LayerNorm weights on these names"
  assert all(path.replace("/", ".").endswith(".weight") for path in missed), missed
  layernorms = howto[f"{name.upper()}_LAYERNORMS"]
  line = od.decay_mask(exclude=(), exclude_regex=[*patterns, layernorms])
  assert line(flat) == want
  if name == "gpt2":
    assert howto["gpt2_trainer_rule"](flat) == want
