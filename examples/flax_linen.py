"""Flax Linen + ``flax.training.train_state``: L2 and its equivalent decoupled decay.

A small CNN on scikit-learn's 8x8 digits, trained twice with plain SGD under a
cosine learning-rate schedule, from the same initialization on the same
mini-batches:

1. ``optax.chain(od.add_l2_to_grad(l2, mask=od.bias_mask), optax.sgd(lr))``:
   the gradient of ``C0 + (l2/2)·Σ w²`` over the kernels (biases excluded);
2. ``optax.chain(optax.sgd(lr), od.decoupled_weight_decay(rate, mask=od.bias_mask))``
   with ``rate = od.l2_to_decay_rate(l2, lr)``: a *schedule* ``lr_t · l2``,
   because ``lr`` is one.

It prints train/test accuracy of both runs and the largest parameter
difference between them: equal up to float32 rounding.

Run: ``python examples/flax_linen.py`` (``--smoke`` for one short epoch).
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import optaxdecay as od


class CNN(nn.Module):
  """Conv(16, 3x3) -> relu -> avg-pool -> Dense(64) -> relu -> Dense(10)."""

  @nn.compact
  def __call__(self, x):  # x: (batch, 8, 8, 1)
    x = nn.relu(nn.Conv(16, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(10)(x)


def load(seed=0):
  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
  return train_test_split(x, y.astype(np.int32), test_size=0.25, random_state=seed, stratify=y)


@jax.jit
def train_step(state, xb, yb):
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  grads = jax.grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads)  # tx.update(grads, opt_state, params)


@jax.jit
def accuracy(params, x, y):
  return jnp.mean(jnp.argmax(CNN().apply({"params": params}, x), -1) == y)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--lr", type=float, default=0.2, help="peak of the cosine schedule")
  parser.add_argument("--l2", type=float, default=1e-3)
  parser.add_argument("--smoke", action="store_true", help="one short epoch (for tests)")
  args = parser.parse_args(argv)

  x_tr, x_te, y_tr, y_te = load()
  batch_size = args.batch_size
  steps_per_epoch = len(x_tr) // batch_size
  epochs = args.epochs
  if args.smoke:
    epochs, steps_per_epoch = 1, 8
  total_steps = epochs * steps_per_epoch

  lr = optax.cosine_decay_schedule(args.lr, total_steps)
  mask = od.bias_mask  # decay Conv/Dense kernels, not biases
  txs = {
    "SGD + L2": optax.chain(od.add_l2_to_grad(args.l2, mask=mask), optax.sgd(lr)),
    "SGD + decoupled": optax.chain(
      optax.sgd(lr), od.decoupled_weight_decay(od.l2_to_decay_rate(args.l2, lr), mask=mask)
    ),
  }

  model = CNN()
  params = jax.jit(model.init)(jax.random.key(0), x_tr[:1])["params"]
  rng = np.random.default_rng(0)
  order = [rng.permutation(len(x_tr)) for _ in range(epochs)]  # same batches for both runs

  print(
    f"Linen CNN on load_digits ({len(x_tr)} train / {len(x_te)} test), {epochs} epoch(s) x "
    f"{steps_per_epoch} steps of batch {batch_size}, SGD with cosine lr from {args.lr:g}, "
    f"L2 λ={args.l2:g} on kernels"
  )
  final = {}
  for name, tx in txs.items():
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    start = time.perf_counter()
    for perm in order:
      for i in range(steps_per_epoch):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        state = train_step(state, x_tr[idx], y_tr[idx])
    jax.block_until_ready(state)
    secs = time.perf_counter() - start
    final[name] = state
    print(
      f"{name:<16} train acc {float(accuracy(state.params, x_tr, y_tr)):.4f}  "
      f"test acc {float(accuracy(state.params, x_te, y_te)):.4f}  ({secs:.1f} s)"
    )

  a, b = (s.params for s in final.values())
  diff = max(
    float(jnp.max(jnp.abs(u - v)))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )
  scale = max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(a))
  print(f"max |params(SGD + L2) - params(SGD + decoupled)| = {diff:.3e}  (max |w| = {scale:.3f})")
  return diff


if __name__ == "__main__":
  main()
