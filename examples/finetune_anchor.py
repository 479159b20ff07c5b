"""Fine-tuning with decay toward the pretrained weights (L2-SP), on scikit-learn's digits.

A small MLP is pretrained on the digits 0-4 (all of their training images), then fine-tuned on
the digits 5-9 from only a few images per class, with AdamW-style decoupled decay in three
forms:

* ``none``: no regularization;
* ``to zero``: ``od.decoupled_weight_decay(rate)``, the usual decay;
* ``to pretrained``: ``od.decoupled_weight_decay(rate, anchor=pretrained)``, L2-SP's decoupled
  form, which pulls the weights back toward the pretrained ones instead of toward zero.

Each regime's rate is chosen on a validation split of the new task; the chosen configuration is
then reported on the test images of the new task (5-9) and of the old task (0-4: how much the
fine-tuning forgot), over several seeds (each seed draws the pretraining initialization and the
few fine-tuning images), with paired differences and 95 % intervals. Every configuration and
seed is trained in one jitted, vmapped loop.

Run ``python examples/finetune_anchor.py`` (about a minute on 2 CPU cores) or with ``--smoke``
for a seconds-long check that it works (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxdecay as od

RATES = (1e-3, 3e-3, 1e-2)  # decoupled fraction removed per step (lr * weight_decay)
REGIMES = ("none", "to zero", "to pretrained")


def load(seed: int, shots: int):
  """Old-task train/test, new-task few-shot train, validation and test splits."""
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  rng = np.random.default_rng(1234)  # one fixed train/test split of the images
  order = rng.permutation(len(x))
  x, y = x[order], y[order]
  test = np.arange(len(x)) % 3 == 0
  old, new = y < 5, y >= 5
  seed_rng = np.random.default_rng(seed)
  pool = np.flatnonzero(new & ~test)
  few = np.concatenate(
    [seed_rng.choice(pool[y[pool] == c], shots, replace=False) for c in range(5, 10)]
  )
  val = np.setdiff1d(pool, few)
  return {
    "old_train": (x[old & ~test], y[old & ~test]),
    "old_test": (x[old & test], y[old & test]),
    "few": (x[few], y[few]),
    "val": (x[val], y[val]),
    "new_test": (x[new & test], y[new & test]),
  }


def init_mlp(key, hidden: int = 64):
  k1, k2 = jax.random.split(key)
  glorot = jax.nn.initializers.glorot_normal()
  return {
    "Dense_0": {"kernel": glorot(k1, (64, hidden)), "bias": jnp.zeros(hidden)},
    "Dense_1": {"kernel": glorot(k2, (hidden, 10)), "bias": jnp.zeros(10)},
  }


def logits(params, x):
  h = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
  return h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]


def loss(params, x, y):
  logp = jax.nn.log_softmax(logits(params, x))
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def accuracy(params, x, y):
  return jnp.mean(jnp.argmax(logits(params, x), -1) == y)


def train(tx, params, x, y, steps: int):
  """Full-batch training for ``steps`` steps in one ``lax.scan``."""

  def body(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p, x, y), s, p)
    return (optax.apply_updates(p, u), s), None

  (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
  return params


def finetune(pretrained, x, y, regime: str, rate, steps: int, lr: float):
  """One fine-tuning run; ``rate`` is traced, so all rates share one compiled loop."""
  if regime == "none":
    decay = od.decoupled_weight_decay(0.0)
  elif regime == "to zero":
    decay = od.decoupled_weight_decay(rate, mask=od.bias_mask)
  else:
    decay = od.decoupled_weight_decay(rate, mask=od.bias_mask, anchor=pretrained)
  return train(optax.chain(optax.adam(lr), decay), pretrained, x, y, steps)


def interval(diffs: np.ndarray) -> tuple[float, float]:
  """Mean and half-width of a 95 % t-interval."""
  from scipy import stats

  n = len(diffs)
  half = stats.t.ppf(0.975, n - 1) * diffs.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
  return float(diffs.mean()), float(half)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--shots", type=int, default=10, help="fine-tuning images per class")
  parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
  args = parser.parse_args()
  seeds = 2 if args.smoke else args.seeds
  pre_steps, ft_steps = (20, 20) if args.smoke else (400, 300)

  splits = [load(s, args.shots) for s in range(seeds)]
  stack = lambda name, i: jnp.asarray(np.stack([sp[name][i] for sp in splits]))
  old_x, old_y = splits[0]["old_train"]
  keys = jax.random.split(jax.random.key(0), seeds)

  pretrain = jax.jit(
    jax.vmap(lambda k: train(optax.adam(3e-3), init_mlp(k), old_x, old_y, pre_steps))
  )
  pretrained = pretrain(keys)

  results = {}  # regime -> (val acc [seeds, rates], new-test acc, old-test acc)
  for regime in REGIMES:
    rates = jnp.asarray(RATES if regime != "none" else RATES[:1])

    def one(p, x, y, rate, regime=regime):
      return finetune(p, x, y, regime, rate, ft_steps, lr=3e-3)

    run = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, None, None, 0)), in_axes=(0, 0, 0, None)))
    tuned = run(pretrained, stack("few", 0), stack("few", 1), rates)
    acc = jax.vmap(jax.vmap(accuracy, in_axes=(0, None, None)), in_axes=(0, 0, 0))
    results[regime] = tuple(
      np.asarray(acc(tuned, stack(name, 0), stack(name, 1)))
      for name in ("val", "new_test", "old_test")
    )

  print(f"digits: pretrain on 0-4, fine-tune on 5-9 from {args.shots} images per class")
  print(f"{seeds} seeds; Adam lr 3e-3, {ft_steps} full-batch steps; rate chosen on validation\n")
  print(f"{'regime':<15} {'rate':>8} {'new task (5-9) test':>22} {'old task (0-4) test':>22}")
  chosen = {}
  for regime, (val, new_test, old_test) in results.items():
    best = int(np.argmax(val.mean(axis=0)))
    rate = 0.0 if regime == "none" else RATES[best]
    new, old = new_test[:, best], old_test[:, best]
    chosen[regime] = (new, old)
    print(
      f"{regime:<15} {rate:>8g} {100 * new.mean():>14.1f} ± {100 * new.std(ddof=1):4.1f} %"
      f" {100 * old.mean():>14.1f} ± {100 * old.std(ddof=1):4.1f} %"
    )
  print("\npaired differences (percentage points, mean and 95 % interval over seeds):")
  for a, b in (("to pretrained", "to zero"), ("to pretrained", "none"), ("to zero", "none")):
    for task, i in (("new task", 0), ("old task", 1)):
      mean, half = interval(100 * (chosen[a][i] - chosen[b][i]))
      print(f"  {a} - {b:<8} {task}: {mean:+6.2f} ± {half:.2f}")


if __name__ == "__main__":
  main()
