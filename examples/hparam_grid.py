"""The AdamW paper's Figure 2 in miniature: does the best λ move with the learning rate?

For each of four optimizers, a grid of (learning rate × decay) settings is
trained **all at once**: ``jax.vmap`` over the grid inside one ``jax.jit``
program per optimizer (one compile, every configuration in lock-step on the
same mini-batches from the same initialization). The model is a small Flax MLP
on scikit-learn's digits; the schedule is cosine annealing, applied to the
decay too, as in the paper (Loshchilov & Hutter, ICLR 2019, Alg. 1-2):

- **Adam + L2**:  ``chain(add_l2_to_grad(λ), adam(lr_t))``  (λ: the L2 coefficient);
- **AdamW**:      ``chain(adam(lr_t), decoupled_weight_decay(λ·m_t))``;
- **SGD + L2**:   ``chain(add_l2_to_grad(λ), sgd(lr_t, momentum=0.9))``;
- **SGDW**:       ``chain(sgd(lr_t, momentum=0.9), decoupled_weight_decay(λ·m_t))``;

where ``m_t`` is the cosine multiplier and ``lr_t = lr·m_t``. The decoupled
rate is the paper's: **not** multiplied by the learning rate. Biases are
excluded everywhere (``od.bias_mask``).

It writes heatmaps of test loss and test accuracy (PNG) and prints, per
optimizer, the best λ (by test loss) at each learning rate and the slope of
``log10 λ*`` against ``log10 lr``. If decay and learning rate were fully
*coupled* through their product (only ``lr·λ`` matters), the slope would be
-1; if they were *decoupled* it would be 0; a decay that must keep pace with
the step size (a fixed point of ``lr·u = rate·w``) gives +1.

Run: ``python examples/hparam_grid.py`` (``--smoke`` for a few steps).
"""

import argparse
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import study
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import optaxdecay as od

# log10 ranges of the grid axes, per optimizer: (lr range, λ range).
GRIDS = {
  "Adam + L2": ((-3.0, -1.0), (-5.0, -1.0)),
  "AdamW": ((-3.0, -1.0), (-5.5, -1.5)),
  "SGD + L2": ((-2.25, -0.25), (-5.0, -1.0)),
  "SGDW": ((-2.25, -0.25), (-5.5, -1.5)),
}


class MLP(nn.Module):
  hidden: int = 32

  @nn.compact
  def __call__(self, x):
    return nn.Dense(10)(nn.relu(nn.Dense(self.hidden)(x)))


def make_tx(name, lr, lam, steps):
  """The optimizer ``name`` at one grid point; ``lr`` and ``lam`` may be traced."""
  mult = optax.cosine_decay_schedule(1.0, steps)  # m_t: 1 -> 0
  lr_t = lambda t: lr * mult(t)
  rate_t = lambda t: lam * mult(t)
  mask = od.bias_mask
  if name == "Adam + L2":
    return optax.chain(od.add_l2_to_grad(lam, mask=mask), optax.adam(lr_t))
  if name == "AdamW":
    return optax.chain(optax.adam(lr_t), od.decoupled_weight_decay(rate_t, mask=mask))
  if name == "SGD + L2":
    return optax.chain(od.add_l2_to_grad(lam, mask=mask), optax.sgd(lr_t, momentum=0.9))
  if name == "SGDW":
    return optax.chain(optax.sgd(lr_t, momentum=0.9), od.decoupled_weight_decay(rate_t, mask=mask))
  raise ValueError(name)


def make_grid_trainer(model, data, batches):
  """``train(name, lrs, lams)``: final test loss/accuracy for every (lr, λ), in one program."""
  x_tr, y_tr, x_te, y_te = (jnp.asarray(a) for a in data)
  steps = batches.shape[0]
  batches = jnp.asarray(batches)

  def loss_fn(params, x, y):
    logits = model.apply({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

  def train_one(name, params, lr, lam):
    tx = make_tx(name, lr, lam, steps)

    def step(carry, idx):
      p, s = carry
      g = jax.grad(lambda p: loss_fn(p, x_tr[idx], y_tr[idx])[0])(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), batches)
    loss, logits = loss_fn(params, x_te, y_te)
    return loss, jnp.mean(jnp.argmax(logits, -1) == y_te)

  @jax.jit(static_argnums=0)
  def train(name, params, lrs, lams):
    lr, lam = (a.ravel() for a in jnp.meshgrid(lrs, lams, indexing="ij"))
    loss, acc = jax.vmap(lambda a, b: train_one(name, params, a, b))(lr, lam)
    shape = (lrs.shape[0], lams.shape[0])
    return loss.reshape(shape), acc.reshape(shape)

  return train


def best_lambda(lams, losses):
  """Per learning rate: log10 of the loss-minimizing λ, refined by a parabola in log λ.

  Returns ``(log10 λ*, at_edge)``; ``nan`` where every setting diverged.
  """
  log_l = np.log10(lams)
  step = log_l[1] - log_l[0]
  out, edge = [], []
  for row in losses:
    row = np.where(np.isfinite(row), row, np.inf)
    i = int(np.argmin(row))
    if not np.isfinite(row[i]):
      out.append(np.nan)
      edge.append(False)
      continue
    x = log_l[i]
    if 0 < i < len(row) - 1 and np.all(np.isfinite(row[i - 1 : i + 2])):
      a, b, c = row[i - 1 : i + 2]
      denom = a - 2 * b + c
      if denom > 0:
        x += 0.5 * step * (a - c) / denom
    out.append(x)
    edge.append(i in (0, len(row) - 1))
  return np.array(out), np.array(edge)


def slope(log_lr, log_lam, keep):
  """Least-squares slope of log10 λ* on log10 lr over the rows in ``keep``."""
  if keep.sum() < 2:
    return np.nan
  return float(np.polyfit(log_lr[keep], log_lam[keep], 1)[0])


def plot(results, path, steps):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.colors import LogNorm

  names = list(results)
  fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7.5), constrained_layout=True)
  for j, name in enumerate(names):
    r = results[name]
    log_lr, log_lam = np.log10(r["lrs"]), np.log10(r["lams"])
    ext = [log_lam[0], log_lam[-1], log_lr[0], log_lr[-1]]
    half_x = 0.5 * (log_lam[1] - log_lam[0])
    half_y = 0.5 * (log_lr[1] - log_lr[0])
    ext = [ext[0] - half_x, ext[1] + half_x, ext[2] - half_y, ext[3] + half_y]
    best = float(np.nanmin(np.where(np.isfinite(r["loss"]), r["loss"], np.nan)))
    for i, (key, label, cmap, norm) in enumerate(
      [
        ("loss", "test loss (log scale)", "viridis_r", LogNorm(best, float(np.log(10)))),
        ("acc", "test accuracy", "viridis", plt.Normalize(0.85, 1.0)),
      ]
    ):
      ax = axes[i, j]
      data = np.ma.masked_invalid(r[key])
      im = ax.imshow(data, origin="lower", extent=ext, aspect="auto", cmap=cmap, norm=norm)
      fig.colorbar(im, ax=ax, label=label)
      ax.plot(r["log_best"], log_lr, "w.-", lw=1, label="best λ per lr (loss)")
      ax.set_title(f"{name}: {label}")
      ax.set_xlabel("log10 λ" + (" (L2 coefficient)" if "L2" in name else " (rate per step)"))
      ax.set_ylabel("log10 lr")
    axes[0, j].legend(loc="lower left", fontsize=8)
  fig.suptitle(f"digits MLP, {steps} steps, cosine schedule: test metrics over (lr, λ)")
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--output", default=str(study.OUT / "hparam_grid.png"), help="PNG path for the heatmaps"
  )
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--train-size", type=int, default=500, help="train examples; rest: test")
  parser.add_argument("--n-lr", type=int, default=8, help="learning rates in the grid")
  parser.add_argument("--n-lambda", type=int, default=9, help="decay values in the grid")
  parser.add_argument("--smoke", action="store_true", help="a few steps only (for tests)")
  args = parser.parse_args(argv)
  steps = 10 if args.smoke else args.steps

  x, y = load_digits(return_X_y=True)
  data = train_test_split(
    (x / 16.0).astype(np.float32),
    y.astype(np.int32),
    train_size=args.train_size,
    random_state=0,
    stratify=y,
  )
  x_tr, x_te, y_tr, y_te = data
  rng = np.random.default_rng(0)
  batches = np.stack([rng.choice(len(x_tr), args.batch_size, replace=False) for _ in range(steps)])
  model = MLP(args.hidden)
  params = jax.jit(model.init)(jax.random.key(0), x_tr[:1])["params"]
  train = make_grid_trainer(model, (x_tr, y_tr, x_te, y_te), batches)

  n = args.n_lr * args.n_lambda
  print(
    f"MLP 64-{args.hidden}-10 on load_digits ({len(x_tr)} train / {len(x_te)} test), "
    f"{steps} steps of batch {args.batch_size}, cosine schedule; "
    f"{args.n_lr} lr x {args.n_lambda} λ = {n} runs per optimizer, vmapped in one jitted program"
  )
  results = {}
  for name, ((lr0, lr1), (l0, l1)) in GRIDS.items():
    lrs = np.logspace(lr0, lr1, args.n_lr).astype(np.float32)
    lams = np.logspace(l0, l1, args.n_lambda).astype(np.float32)
    start = time.perf_counter()
    loss, acc = jax.device_get(train(name, params, lrs, lams))
    secs = time.perf_counter() - start
    log_best, edge = best_lambda(lams, loss)
    log_lr = np.log10(lrs)
    inner = np.isfinite(log_best) & ~edge
    s_inner = slope(log_lr, log_best, inner)
    results[name] = dict(lrs=lrs, lams=lams, loss=loss, acc=acc, log_best=log_best)
    results[name]["slope"] = s_inner
    i, k = np.unravel_index(np.nanargmin(np.where(np.isfinite(loss), loss, np.nan)), loss.shape)
    print(
      f"\n{name}: {n} runs in {secs:.1f} s (compile included); best test loss "
      f"{loss[i, k]:.4f} (acc {acc[i, k]:.4f}) at lr={lrs[i]:.2g}, λ={lams[k]:.2g}; "
      f"best acc {np.nanmax(acc):.4f}"
    )
    print("  log10 lr : " + " ".join(f"{v:6.2f}" for v in log_lr))
    print(
      "  log10 λ* : "
      + " ".join(f"{v:6.2f}" + ("*" if e else " ") for v, e in zip(log_best, edge, strict=True))
    )
    print(
      f"  slope d log10 λ*/d log10 lr = {s_inner:+.2f} over the {int(inner.sum())} lrs whose "
      "best λ is inside the grid (* = at its edge)"
    )
    if "L2" not in name:
      print(
        "  in the ×lr convention of optax.adamw / PyTorch AdamW (weight_decay = λ/lr) "
        f"the slope is {s_inner - 1:+.2f}"
      )

  plot(results, args.output, steps)
  print(f"\nheatmaps written to {args.output}")
  return results


if __name__ == "__main__":
  main()
