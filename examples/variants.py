"""Compare weight-decay variants on scikit-learn's digits with a small MLP (plain JAX + Optax).

Every variant uses the same Adam optimizer, the same cosine learning-rate schedule and the same
seeds; only how the decay is applied differs:

* ``adam``            no regularization.
* ``adam+l2``         ``add_l2_to_grad(lam)`` before Adam: the L2 term is preconditioned.
* ``adamw``           ``decoupled_weight_decay(lr_t * lam)`` after Adam (= ``optax.adamw``).
* ``adamw-cautious``  the same, ``cautious=True`` (Chen et al., 2025).
* ``adamw-proximal``  ``proximal_weight_decay(lr_t * lam)`` (Zhuang et al., 2022).
* ``adamc``           ``decoupled_weight_decay(corrected_decay_rate(lam, lr,
  max_learning_rate=lr_max))`` (Defazio et al., 2025; meant for normalized layers -- this MLP
  has none).

For the decoupled variants ``lam`` is set from a decay timescale in epochs (Wang & Aitchison,
2024): ``rate = od.rate_from_timescale(tau, dataset_size=N, batch_size=B)`` at the peak learning
rate, ``lam = rate / lr_max``; several timescales are swept. ``adam+l2`` sweeps its own coefficients
(``l2s``): an L2 coefficient through Adam is not comparable to a decoupled one. Biases are never
decayed (``od.bias_mask``).

Run ``python examples/variants.py`` (a few minutes on 2 CPU cores) or ``--smoke`` (seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxdecay as od

VARIANTS = ("adam", "adam+l2", "adamw", "adamw-cautious", "adamw-proximal", "adamc")


@dataclasses.dataclass(frozen=True)
class Config:
  seeds: int = 8
  epochs: int = 40
  batch_size: int = 64
  hidden: int = 256
  lr: float = 3e-3
  taus: tuple[float, ...] = (160.0, 40.0, 10.0, 2.5)  # decay timescales, in epochs
  l2s: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)  # adam+l2 coefficients (same count)
  train_fraction: float = 0.5


SMOKE = Config(seeds=1, epochs=3, taus=(0.5,), l2s=(1e-3,))


def load_data(train_fraction: float):
  """Digits, scaled to [0, 1], split in a fixed stratified way (seed 0)."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  xtr, xte, ytr, yte = train_test_split(x, y, train_size=train_fraction, random_state=0, stratify=y)
  return xtr, ytr.astype(np.int32), xte, yte.astype(np.int32)


def init_params(key, hidden: int):
  k1, k2 = jax.random.split(key)
  return {
    "Dense_0": {
      "kernel": jax.random.normal(k1, (64, hidden)) * math.sqrt(2.0 / 64),
      "bias": jnp.zeros(hidden),
    },
    "Dense_1": {
      "kernel": jax.random.normal(k2, (hidden, 10)) * math.sqrt(1.0 / hidden),
      "bias": jnp.zeros(10),
    },
  }


def logits_fn(params, x):
  h = jax.nn.relu(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
  return h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]


def loss_fn(params, x, y):
  logp = jax.nn.log_softmax(logits_fn(params, x))
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def make_optimizer(variant: str, lam, lr, lr_max: float) -> optax.GradientTransformation:
  """The optimizer for one variant; ``lam`` may be traced (it is vmapped over)."""
  mask = od.bias_mask
  adam = optax.adam(lr)
  if variant == "adam":
    return adam
  if variant == "adam+l2":
    return optax.chain(od.add_l2_to_grad(lam, mask=mask), adam)
  rate = od.l2_to_decay_rate(lam, lr)
  if variant == "adamw":
    return optax.chain(adam, od.decoupled_weight_decay(rate, mask=mask))
  if variant == "adamw-cautious":
    return optax.chain(adam, od.decoupled_weight_decay(rate, mask=mask, cautious=True))
  if variant == "adamw-proximal":
    return optax.chain(adam, od.proximal_weight_decay(rate, mask=mask))
  if variant == "adamc":
    return optax.chain(
      adam,
      od.decoupled_weight_decay(
        od.corrected_decay_rate(lam, lr, max_learning_rate=lr_max), mask=mask
      ),
    )
  raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def train_all(cfg: Config, data, lams: dict[str, np.ndarray]):
  """Trains every variant for each of its coefficients and every seed: one compiled program.

  ``lams[variant]`` holds the variant's coefficients (the same number for every variant).
  Returns ``{variant: {metric: array [coefficient, seed]}}`` and
  ``{variant: (params, opt_state)}`` after training, with leading axes [coefficient, seed]. All
  variants go into one program because compiling it once costs far less than compiling six.
  """
  xtr, ytr, xte, yte = (jnp.asarray(a) for a in data)
  n = xtr.shape[0]
  steps_per_epoch = n // cfg.batch_size
  steps = steps_per_epoch * cfg.epochs
  lr = optax.cosine_decay_schedule(cfg.lr, decay_steps=steps)

  def one_run(variant, lam, seed):
    key = jax.random.key(seed)
    k_init, k_data = jax.random.split(key)
    params = init_params(k_init, cfg.hidden)
    tx = make_optimizer(variant, lam, lr, cfg.lr)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_data, cfg.epochs))
    batches = perms[:, : steps_per_epoch * cfg.batch_size].reshape(steps, cfg.batch_size)

    def step(carry, idx):
      params, state = carry
      grads = jax.grad(loss_fn)(params, xtr[idx], ytr[idx])
      updates, state = tx.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), None

    (params, state), _ = jax.lax.scan(step, (params, tx.init(params)), batches)
    acc = lambda x, y: jnp.mean(jnp.argmax(logits_fn(params, x), -1) == y)
    norm = jnp.sqrt(sum(jnp.sum(params[k]["kernel"] ** 2) for k in params))
    metrics = {"test_acc": acc(xte, yte), "train_acc": acc(xtr, ytr), "weight_norm": norm}
    return metrics, (params, state)

  def all_variants(lam, seed):
    return {v: one_run(v, lam[v], seed) for v in VARIANTS}

  program = jax.jit(jax.vmap(jax.vmap(all_variants, in_axes=(None, 0)), in_axes=(0, None)))
  lam_arrays = {v: jnp.asarray(lams[v], jnp.float32) for v in VARIANTS}
  out = program(lam_arrays, jnp.arange(cfg.seeds))
  metrics = {v: {k: np.asarray(a) for k, a in m.items()} for v, (m, _) in out.items()}
  finals = {v: final for v, (_, final) in out.items()}
  return metrics, finals


@dataclasses.dataclass(frozen=True)
class Result:
  rows: list[dict]  # one per (variant, coefficient): means and stds over seeds
  mask: od.diagnostics.MaskDescription
  l2_strength: od.diagnostics.L2StrengthReport
  precision: dict[str, od.diagnostics.PrecisionReport]


def run(cfg: Config) -> Result:
  """All variants at each coefficient, then diagnostics of seed 0's trained models."""
  if len(cfg.l2s) != len(cfg.taus):
    raise ValueError("Config: `l2s` and `taus` must have the same length (one program).")
  data = load_data(cfg.train_fraction)
  n = data[0].shape[0]
  rates = [od.rate_from_timescale(t, dataset_size=n, batch_size=cfg.batch_size) for t in cfg.taus]
  decoupled = np.asarray(rates) / cfg.lr
  lams = {v: decoupled for v in VARIANTS}
  lams["adam+l2"] = np.asarray(cfg.l2s)
  lams["adam"] = np.zeros(len(cfg.taus))  # unused
  results, finals = train_all(cfg, data, lams)
  rows = []
  for variant in VARIANTS:
    count = 1 if variant == "adam" else len(cfg.taus)  # plain Adam has no coefficient
    for i in range(count):
      tau = cfg.taus[i] if variant not in ("adam", "adam+l2") else math.inf
      row = {"variant": variant, "tau_epochs": tau, "lam": float(lams[variant][i])}
      for k, v in results[variant].items():
        row[k] = float(v[i].mean())
        row[k + "_std"] = float(v[i].std(ddof=1)) if v.shape[1] > 1 else 0.0
      rows.append(row)

  # Diagnostics on seed 0: the L2 run with the second coefficient (1e-3 by default), and the
  # AdamW run at the second timescale, its weights cast to bfloat16.
  i = min(1, len(cfg.taus) - 1)
  pick = lambda tree: jax.tree.map(lambda x: x[i, 0], tree)
  l2_params, l2_state = pick(finals["adam+l2"])
  w_params, _ = pick(finals["adamw"])
  bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), w_params)
  precision = {
    f"bfloat16, rate {rates[i]:.3g} (peak lr x lam, tau={cfg.taus[i]:g})": (
      od.diagnostics.decay_precision_report(bf16, rates[i], mask=od.bias_mask)
    ),
    "bfloat16, rate 1e-05 (lr 1e-4 x wd 0.1)": (
      od.diagnostics.decay_precision_report(bf16, 1e-5, mask=od.bias_mask)
    ),
    "float32, rate 1e-05 (lr 1e-4 x wd 0.1)": (
      od.diagnostics.decay_precision_report(w_params, 1e-5, mask=od.bias_mask)
    ),
  }
  return Result(
    rows=rows,
    mask=od.diagnostics.describe_mask(l2_params, mask=od.bias_mask),
    l2_strength=od.diagnostics.effective_l2_strength(
      l2_state, float(cfg.l2s[i]), weight_decay=float(decoupled[i]), mask=od.bias_mask
    ),
    precision=precision,
  )


def format_table(rows: list[dict], cfg: Config) -> str:
  lines = [
    f"digits, MLP 64-{cfg.hidden}-10, Adam peak lr {cfg.lr} (cosine), {cfg.epochs} epochs, "
    f"batch {cfg.batch_size}, {cfg.seeds} seed(s); mean +- std (ddof=1) over seeds",
    "",
    "| variant | tau (epochs) | lam or l2 | test acc (%) | train acc (%) | kernel norm |",
    "|---|---|---|---|---|---|",
  ]
  for r in rows:
    tau = "-" if math.isinf(r["tau_epochs"]) else f"{r['tau_epochs']:g}"
    lam = "-" if r["variant"] == "adam" else f"{r['lam']:.3g}"
    test = f"{100 * r['test_acc']:.2f} +- {100 * r['test_acc_std']:.2f}"
    train = f"{100 * r['train_acc']:.2f} +- {100 * r['train_acc_std']:.2f}"
    norm = f"{r['weight_norm']:.2f} +- {r['weight_norm_std']:.2f}"
    lines.append(f"| {r['variant']} | {tau} | {lam} | {test} | {train} | {norm} |")
  return "\n".join(lines)


def format_diagnostics(result: Result, cfg: Config) -> str:
  i = min(1, len(cfg.taus) - 1)
  parts = [
    "What bias_mask decays in this MLP:",
    str(result.mask),
    "",
    f"adam+l2 (l2={cfg.l2s[i]:g}) after training, seed 0: the L2 term through Adam, compared"
    f" with AdamW's lam={result.l2_strength.weight_decay:.3g} (tau={cfg.taus[i]:g} epochs):",
    str(result.l2_strength),
  ]
  for name, report in result.precision.items():
    parts += ["", f"Decay steps lost to rounding, adamw weights (tau={cfg.taus[i]:g}), {name}:"]
    parts.append(str(report))
  return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> Result:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true", help="1 seed, 3 epochs: a few seconds")
  parser.add_argument("--seeds", type=int, default=None, help="override the number of seeds")
  args = parser.parse_args(argv)
  cfg = SMOKE if args.smoke else Config()
  if args.seeds is not None:
    cfg = dataclasses.replace(cfg, seeds=args.seeds)
  t0 = time.perf_counter()
  result = run(cfg)
  print(format_table(result.rows, cfg))
  print()
  print(format_diagnostics(result, cfg))
  print(f"\ntotal {time.perf_counter() - t0:.1f} s on {jax.devices()[0].platform}")
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
