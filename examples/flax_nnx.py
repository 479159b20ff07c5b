"""Flax NNX: Adam + L2 vs Adam + decoupled decay vs ``optax.adamw``.

An NNX MLP on scikit-learn's digits, trained three times with
``nnx.Optimizer(model, tx, wrt=nnx.Param)`` / ``optimizer.update(model, grads)``,
from the same initialization on the same mini-batches:

1. **Adam + L2**: ``optax.chain(od.add_l2_to_grad(wd, mask=od.bias_mask), optax.adam(lr))``;
2. **Adam + decoupled**: ``optax.chain(optax.adam(lr),
   od.decoupled_weight_decay(od.l2_to_decay_rate(wd, lr), mask=od.bias_mask))``;
3. **optax.adamw**: ``optax.adamw(lr, weight_decay=wd, mask=od.bias_mask)``.

(2) and (3) are the same algorithm (Optax's ``adamw`` multiplies its decay by
the learning rate, which is what ``l2_to_decay_rate`` does), so they agree up to
float32 rounding; (1) passes the L2 term through Adam's preconditioner and ends
somewhere else. ``od.bias_mask`` works on NNX state both as ``init`` sees it
(``Param``-wrapped) and as ``update`` sees it (plain arrays).

Run: ``python examples/flax_nnx.py`` (``--smoke`` for a few steps).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import optaxdecay as od


class MLP(nnx.Module):
  def __init__(self, rngs: nnx.Rngs, dtype=jnp.float32):
    self.fc1 = nnx.Linear(64, 128, param_dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(128, 10, param_dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return self.fc2(nnx.relu(self.fc1(x)))


@nnx.jit
def train_step(model, optimizer, xb, yb):
  def loss_fn(model):
    return optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()

  grads = nnx.grad(loss_fn)(model)
  optimizer.update(model, grads)


@nnx.jit
def accuracy(model, x, y):
  return jnp.mean(jnp.argmax(model(x), -1) == y)


def params_of(model):
  return jax.tree.leaves(nnx.state(model, nnx.Param))


def kernel_norm(model):
  return float(jnp.sqrt(sum(jnp.sum(m.kernel[...] ** 2) for m in (model.fc1, model.fc2))))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--wd", type=float, default=1e-2, help="L2 coefficient / AdamW weight_decay")
  parser.add_argument("--x64", action="store_true", help="train in float64")
  parser.add_argument("--smoke", action="store_true", help="a few steps only (for tests)")
  args = parser.parse_args(argv)
  if args.x64:
    jax.config.update("jax_enable_x64", True)
  dtype = np.float64 if args.x64 else np.float32

  x, y = load_digits(return_X_y=True)
  x_tr, x_te, y_tr, y_te = train_test_split(
    (x / 16.0).astype(dtype), y.astype(np.int32), test_size=0.25, random_state=0, stratify=y
  )
  bs = args.batch_size
  steps_per_epoch = len(x_tr) // bs
  epochs = args.epochs
  if args.smoke:
    epochs, steps_per_epoch = 1, 5
  rng = np.random.default_rng(0)
  order = [rng.permutation(len(x_tr)) for _ in range(epochs)]

  lr, wd, mask = args.lr, args.wd, od.bias_mask
  txs = {
    "Adam + L2": optax.chain(od.add_l2_to_grad(wd, mask=mask), optax.adam(lr)),
    "Adam + decoupled": optax.chain(
      optax.adam(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(wd, lr), mask=mask)
    ),
    "optax.adamw": optax.adamw(lr, weight_decay=wd, mask=mask),
  }
  print(
    f"NNX MLP 64-128-10 on load_digits ({len(x_tr)} train / {len(x_te)} test), "
    f"{epochs * steps_per_epoch} steps of batch {bs} in {np.dtype(dtype).name}, "
    f"Adam lr={lr:g}, λ={wd:g} on kernels"
  )
  models = {}
  for name, tx in txs.items():
    model = MLP(nnx.Rngs(0), dtype)  # the same initialization for every run
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    start = time.perf_counter()
    for perm in order:
      for i in range(steps_per_epoch):
        idx = perm[i * bs : (i + 1) * bs]
        train_step(model, optimizer, x_tr[idx], y_tr[idx])
    secs = time.perf_counter() - start
    models[name] = model
    print(
      f"{name:<17} train acc {float(accuracy(model, x_tr, y_tr)):.4f}  "
      f"test acc {float(accuracy(model, x_te, y_te)):.4f}  "
      f"‖kernels‖ {kernel_norm(model):7.3f}  ({secs:.1f} s)"
    )

  def max_diff(a, b):
    pa, pb = params_of(models[a]), params_of(models[b])
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(pa, pb, strict=True))

  diffs = {
    "decoupled_vs_adamw": max_diff("Adam + decoupled", "optax.adamw"),
    "l2_vs_decoupled": max_diff("Adam + L2", "Adam + decoupled"),
  }
  why = "rounding" if args.x64 else "float32 rounding, amplified by Adam; try --x64"
  print(
    f"max |Adam + decoupled - optax.adamw| = {diffs['decoupled_vs_adamw']:.3e}  "
    f"(same algorithm: {why})"
  )
  print(f"max |Adam + L2 - Adam + decoupled|   = {diffs['l2_vs_decoupled']:.3e}  (not equivalent)")
  return diffs


if __name__ == "__main__":
  main()
