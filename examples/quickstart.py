"""Quickstart: L2 is weight decay for SGD, and is not for Adam, on a real model.

A small Flax MLP on scikit-learn's digits, trained from the same start on the
same mini-batches by two pairs of optimizers:

- SGD with L2 (``add_l2_to_grad`` before ``sgd``) vs SGD with decoupled decay
  (``decoupled_weight_decay`` after it) at the equivalent rate ``lr * l2``:
  the same parameters at every step, up to float32 rounding.
- The same two recipes around Adam: they part at the very first step.

``od.testing.assert_equivalent`` / ``assert_not_equivalent`` do the comparing
(step by step, every leaf), so this file is also a template for a test.

Run: ``python examples/quickstart.py`` (``--smoke`` for a few steps).
"""

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from sklearn.datasets import load_digits

import optaxdecay as od


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(10)(x)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--smoke", action="store_true", help="a few steps only (for tests)")
  args = parser.parse_args(argv)
  steps = 20 if args.smoke else args.steps

  x, y = load_digits(return_X_y=True)
  batch = 128
  n_batches = len(x) // batch
  xs = jnp.asarray(x[: n_batches * batch] / 16.0, jnp.float32).reshape(n_batches, batch, 64)
  ys = jnp.asarray(y[: n_batches * batch]).reshape(n_batches, batch)

  model = MLP()
  params = jax.jit(model.init)(jax.random.key(0), xs[0])["params"]

  def loss(params, xb, yb):
    logits = model.apply({"params": params}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def grad_fn(params, step):  # mini-batch `step % n_batches`
    i = step % n_batches
    return jax.grad(loss)(params, xs[i], ys[i])

  l2 = 1e-3  # the L2 coefficient λ: the penalty is (λ/2)·Σ w² over the kernels

  def l2_then(opt):
    return optax.chain(od.add_l2_to_grad(l2, mask=od.bias_mask), opt)

  def then_decay(opt, lr):
    rate = od.l2_to_decay_rate(l2, lr)  # lr·λ: exact for plain SGD
    return optax.chain(opt, od.decoupled_weight_decay(rate, mask=od.bias_mask))

  print(f"Flax MLP 64-64-10 on load_digits, batch {batch}, {steps} steps, L2 λ={l2:g}")

  lr = 0.1
  div = od.testing.assert_equivalent(
    l2_then(optax.sgd(lr)), then_decay(optax.sgd(lr), lr), params, grad_fn, steps
  )
  print(
    f"SGD  (lr={lr:g}):  L2 vs decoupled rate lr·λ={lr * l2:g}: equivalent at every step; "
    f"max |Δw| = {div.max_abs:.2e}"
  )

  lr = 1e-3
  div = od.testing.assert_not_equivalent(
    l2_then(optax.adam(lr)), then_decay(optax.adam(lr), lr), params, grad_fn, steps
  )
  print(
    f"Adam (lr={lr:g}): L2 vs decoupled rate lr·λ={lr * l2:g}: differ from step {div.step} "
    f"(leaf {div.path!r}); max |Δw| = {div.max_abs:.2e}"
  )
  return div


if __name__ == "__main__":
  main()
