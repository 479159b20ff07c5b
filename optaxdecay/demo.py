"""``python -m optaxdecay.demo``: is weight decay the same as L2? Watch it happen.

Trains one small Flax MLP on scikit-learn's handwritten digits (bundled, no
download) four times, from the same initialization and on the same mini-batches:

- **SGD + L2**: ``chain(add_l2_to_grad(l2, mask=bias_mask), sgd(lr))``;
- **SGD + decoupled**: ``chain(sgd(lr), decoupled_weight_decay(rate, mask=bias_mask))``
  with the equivalent rate ``rate = l2_to_decay_rate(l2, lr) = lr * l2``;
- **Adam + L2** and **Adam + decoupled**, converted the same way (the second is
  ``optax.adamw(lr, weight_decay=l2, mask=bias_mask)``).

It prints a table (test accuracy, the norm of the decayed weights and of the
excluded biases, and how far apart each pair of runs ends up) and writes a PNG
of the weight-norm curves. The two SGD runs agree to float32 rounding; the two
Adam runs do not, because Adam divides the L2 term by its preconditioner.

Needs the ``examples`` extra (``pip install -e ".[examples]"``: flax,
scikit-learn, matplotlib, tqdm); this module imports them only when run, so
importing it needs only the core dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxdecay as od

#: The four runs, in table order.
RUNS = ("SGD + L2", "SGD + decoupled", "Adam + L2", "Adam + decoupled")


class Data(NamedTuple):
  """The digits data set, split once with a fixed seed (pixels scaled to [0, 1])."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray


class RunResult(NamedTuple):
  """What one training run produced."""

  params: Any
  test_accuracy: float
  train_accuracy: float
  decayed_norm: np.ndarray  # after each step
  excluded_norm: np.ndarray  # after each step
  seconds: float


def load_data(test_size: float = 0.25, seed: int = 0) -> Data:
  """``sklearn.datasets.load_digits`` split into train/test (stratified)."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  y = y.astype(np.int32)
  x_tr, x_te, y_tr, y_te = train_test_split(
    x, y, test_size=test_size, random_state=seed, stratify=y
  )
  return Data(x_tr, y_tr, x_te, y_te)


def make_model(hidden: Sequence[int] = (128, 128)) -> Any:
  """A Flax Linen MLP: ``Dense -> relu`` per hidden width, then ``Dense(10)``."""
  import flax.linen as nn

  class MLP(nn.Module):
    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
      for w in self.widths:
        x = nn.relu(nn.Dense(w)(x))
      return nn.Dense(10)(x)

  return MLP(tuple(hidden))


def optimizers(sgd_lr: float, adam_lr: float, l2: float) -> dict[str, optax.GradientTransformation]:
  """The four optimizers compared, keyed by the names in :data:`RUNS`."""
  mask = od.bias_mask
  return {
    "SGD + L2": optax.chain(od.add_l2_to_grad(l2, mask=mask), optax.sgd(sgd_lr)),
    "SGD + decoupled": optax.chain(
      optax.sgd(sgd_lr),
      od.decoupled_weight_decay(od.l2_to_decay_rate(l2, sgd_lr), mask=mask),
    ),
    "Adam + L2": optax.chain(od.add_l2_to_grad(l2, mask=mask), optax.adam(adam_lr)),
    "Adam + decoupled": optax.chain(
      optax.adam(adam_lr),
      od.decoupled_weight_decay(od.l2_to_decay_rate(l2, adam_lr), mask=mask),
    ),
  }


def split_norms(params: Any) -> tuple[jax.Array, jax.Array]:
  """Global L2 norms of the decayed leaves and of the excluded (bias) leaves."""
  mask = od.bias_mask(params)
  sq = jax.tree.map(lambda p: jnp.sum(jnp.square(p)), params)
  decayed = sum(s for s, m in zip(jax.tree.leaves(sq), jax.tree.leaves(mask), strict=True) if m)
  excluded = sum(
    s for s, m in zip(jax.tree.leaves(sq), jax.tree.leaves(mask), strict=True) if not m
  )
  return jnp.sqrt(decayed), jnp.sqrt(excluded)


def train(
  model: Any,
  params: Any,
  tx: optax.GradientTransformation,
  data: Data,
  batches: np.ndarray,
  *,
  chunk: int = 100,
  progress: Any = None,
) -> RunResult:
  """Runs ``len(batches)`` steps of ``tx``; ``batches[i]`` are the row indices of step ``i``.

  Steps run ``chunk`` at a time in one jitted ``lax.scan``; ``progress`` (a
  ``tqdm`` bar, or ``None``) is advanced after each chunk.
  """
  x_train = jnp.asarray(data.x_train)
  y_train = jnp.asarray(data.y_train)

  def loss_fn(p, idx):
    logits = model.apply({"params": p}, x_train[idx])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y_train[idx]).mean()

  @jax.jit
  def run_chunk(p, s, idx_chunk):
    def step(carry, idx):
      p, s = carry
      g = jax.grad(loss_fn)(p, idx)
      u, s = tx.update(g, s, p)
      p = optax.apply_updates(p, u)
      return (p, s), split_norms(p)

    (p, s), norms = jax.lax.scan(step, (p, s), idx_chunk)
    return p, s, norms

  start = time.perf_counter()
  state = tx.init(params)
  decayed, excluded = [], []
  for lo in range(0, len(batches), chunk):
    params, state, (d, e) = run_chunk(params, state, jnp.asarray(batches[lo : lo + chunk]))
    decayed.append(np.asarray(d))
    excluded.append(np.asarray(e))
    if progress is not None:
      progress.update(len(d))
  seconds = time.perf_counter() - start

  def accuracy(x, y):
    return float(_accuracy(model, params, jnp.asarray(x), jnp.asarray(y)))

  return RunResult(
    params=params,
    test_accuracy=accuracy(data.x_test, data.y_test),
    train_accuracy=accuracy(data.x_train, data.y_train),
    decayed_norm=np.concatenate(decayed),
    excluded_norm=np.concatenate(excluded),
    seconds=seconds,
  )


@jax.jit(static_argnums=0)
def _accuracy(model: Any, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(model.apply({"params": params}, x), -1) == y)


def max_abs_diff(a: Any, b: Any) -> float:
  """The largest absolute difference between two parameter pytrees."""
  return max(
    float(jnp.max(jnp.abs(x - y)))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


def plot(results: dict[str, RunResult], path: str, title: str) -> None:
  """Writes the weight-norm curves (decayed weights and biases) to ``path``."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  styles = {
    "SGD + L2": dict(color="C0", lw=3, alpha=0.5),
    "SGD + decoupled": dict(color="C1", lw=1.2, ls="--"),
    "Adam + L2": dict(color="C2", lw=1.5),
    "Adam + decoupled": dict(color="C3", lw=1.5),
  }
  for name, r in results.items():
    steps = np.arange(1, len(r.decayed_norm) + 1)
    axes[0].plot(steps, r.decayed_norm, label=name, **styles[name])
    axes[1].plot(steps, r.excluded_norm, label=name, **styles[name])
  axes[0].set_title("decayed weights (kernels): ‖w‖₂")
  axes[1].set_title("excluded by bias_mask (biases): ‖b‖₂")
  for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.suptitle(title)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
    prog="python -m optaxdecay.demo",
    description="Weight decay vs L2 on the digits data set: SGD (equivalent) and Adam (not).",
  )
  p.add_argument("--output", default="optaxdecay_demo.png", help="PNG path for the norm curves")
  p.add_argument("--steps", type=int, default=3000, help="training steps per run")
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--sgd-lr", type=float, default=0.1)
  p.add_argument("--adam-lr", type=float, default=1e-3)
  p.add_argument("--l2", type=float, default=5e-3, help="L2 coefficient (λ, the gradient is λw)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument(
    "--x64", action="store_true", help="train in float64 (the SGD gap drops to ~1e-15)"
  )
  p.add_argument("--smoke", action="store_true", help="a few steps only (for tests)")
  p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
  args = p.parse_args(argv)
  if args.smoke:
    args.steps = min(args.steps, 40)
  if args.steps < 1 or args.batch_size < 1:
    p.error("--steps and --batch-size must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the demo; ``argv`` as on the command line (``None``: ``sys.argv``).

  Returns:
    A dict with the per-run :class:`RunResult` (``'results'``), the largest
    parameter difference between the two SGD runs (``'sgd_max_diff'``) and
    between the two Adam runs (``'adam_max_diff'``), and the PNG path.
  """
  args = parse_args(argv)
  if args.x64:
    with _enable_x64():
      return _main(args)
  return _main(args)


def _enable_x64() -> Any:
  enable: Any = getattr(jax, "enable_x64", None)  # newer jax; older: jax.experimental
  if enable is None:
    enable = getattr(importlib.import_module("jax.experimental"), "enable_x64")  # noqa: B009
  return enable(True)


def _main(args: argparse.Namespace) -> dict[str, Any]:
  from tqdm.auto import tqdm

  dtype = np.float64 if args.x64 else np.float32
  data = load_data(seed=args.seed)
  data = data._replace(x_train=data.x_train.astype(dtype), x_test=data.x_test.astype(dtype))
  model = make_model()
  params = jax.jit(model.init)(jax.random.key(args.seed), jnp.zeros((1, 64), dtype))["params"]
  params = jax.tree.map(lambda p: p.astype(dtype), params)
  rng = np.random.default_rng(args.seed)
  n = len(data.x_train)
  batches = np.stack([rng.choice(n, args.batch_size, replace=False) for _ in range(args.steps)])
  txs = optimizers(args.sgd_lr, args.adam_lr, args.l2)
  chunk = min(100, args.steps)

  results: dict[str, RunResult] = {}
  with tqdm(total=len(txs) * args.steps, unit="step", disable=args.no_progress) as bar:
    for name, tx in txs.items():
      bar.set_description(name)
      results[name] = train(model, params, tx, data, batches, chunk=chunk, progress=bar)

  sgd_diff = max_abs_diff(results["SGD + L2"].params, results["SGD + decoupled"].params)
  adam_diff = max_abs_diff(results["Adam + L2"].params, results["Adam + decoupled"].params)
  rate_sgd = od.l2_to_decay_rate(args.l2, args.sgd_lr)
  rate_adam = od.l2_to_decay_rate(args.l2, args.adam_lr)

  print(
    f"\nload_digits: {n} train / {len(data.x_test)} test images; MLP 64-128-128-10; "
    f"{args.steps} steps of batch {args.batch_size} in {np.dtype(dtype).name}; "
    f"L2 λ={args.l2:g} on kernels "
    f"(bias_mask), decoupled rate = lr·λ (SGD {rate_sgd:.3g}/step, Adam {rate_adam:.3g}/step)."
  )
  header = f"{'optimizer':<18} {'test acc':>8} {'train acc':>9} {'‖kernels‖':>10} {'‖biases‖':>9}"
  print(header)
  print("-" * len(header))
  for name, r in results.items():
    print(
      f"{name:<18} {r.test_accuracy:>8.4f} {r.train_accuracy:>9.4f} "
      f"{r.decayed_norm[-1]:>10.4f} {r.excluded_norm[-1]:>9.4f}"
    )
  print("-" * len(header))
  why = "float64 rounding" if args.x64 else "float32 rounding, amplified by training; try --x64"
  print(f"max |SGD + L2 - SGD + decoupled|   = {sgd_diff:.3e}  (equivalent: {why})")
  print(f"max |Adam + L2 - Adam + decoupled| = {adam_diff:.3e}  (not equivalent)")

  plot(
    results,
    args.output,
    f"digits MLP, L2 λ={args.l2:g} vs decoupled rate lr·λ ({args.steps} steps)",
  )
  print(f"weight-norm curves written to {args.output}")
  return {
    "results": results,
    "sgd_max_diff": sgd_diff,
    "adam_max_diff": adam_diff,
    "output": args.output,
  }


if __name__ == "__main__":
  main()
