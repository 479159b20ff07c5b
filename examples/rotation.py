"""How fast each layer turns under AdamW and under Adam + L2, on the studies' models.

``od.diagnostics.track_rotation`` sits last in each optimizer's chain and records, per neuron,
the angle its weight vector turns per step; every ``--every`` steps this script reads
``rotation_report`` and keeps each layer's mean. Two models of the studies
(``examples/study.py``): the scale-invariant MLP on MNIST-1D (hidden kernels followed by a
LayerNorm without scale or offset) and the byte-level transformer on the standard library's
text. Each trains with a constant learning rate, so that the equilibrium
(``od.diagnostics.equilibrium``) is one number, under

* AdamW: ``chain(adam(lr), decoupled_weight_decay(rate, mask=bias_mask))``;
* Adam + L2: ``chain(add_l2_to_grad(l2, mask=bias_mask), adam(lr))``.

The MLP's hyperparameters are the ones ``docs/does_it_matter.md`` selected on validation for
each optimizer on this model (AdamW: lr 0.0316, per-step rate 0.00316; Adam + L2: lr 0.01, L2
0.001). The transformer's learning rate is set (3e-3 for both); its decay is selected here on
validation loss after ``--select-steps`` steps from three values per optimizer (AdamW: per-step
rate 1e-4, 3e-4, 1e-3; Adam + L2: L2 1e-4, 1e-3, 1e-2).

    python examples/rotation.py            # 14 min on 2 CPU cores; writes
                                           # docs/rotation_results.json, docs/images/rotation.png
    python examples/rotation.py --smoke    # seconds; its numbers mean nothing
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study

import optaxdecay as od

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
  "mlp": {
    "title": "MNIST-1D, scale-invariant MLP",
    "AdamW": {"lr": 0.0316, "rate": 0.00316},
    "Adam + L2": {"lr": 0.01, "l2": 0.001},
  },
  "transformer": {
    "title": "byte-level transformer, stdlib text",
    "AdamW": {"lr": 3e-3, "rate": [1e-4, 3e-4, 1e-3]},  # a list: selected on validation
    "Adam + L2": {"lr": 3e-3, "l2": [1e-4, 1e-3, 1e-2]},
  },
}


def optimizer(name: str, hp: dict[str, float]) -> optax.GradientTransformation:
  """The optimizer ``name`` with the tracker last in its chain."""
  if name == "AdamW":
    inner = optax.chain(
      optax.adam(hp["lr"]), od.decoupled_weight_decay(hp["rate"], mask=od.bias_mask)
    )
  else:
    inner = optax.chain(od.add_l2_to_grad(hp["l2"], mask=od.bias_mask), optax.adam(hp["lr"]))
  return optax.chain(inner, od.diagnostics.track_rotation())


def task(setup: str, smoke: bool) -> tuple[study.Model, study.Split, Any]:
  """The model, its data and its loss."""
  if setup == "mlp":
    data = study.load_mnist1d(n_train=256 if smoke else 3000, n_val=64 if smoke else 1000)
    net = study.mlp((40, 32, 32, 10) if smoke else (40, 256, 256, 10), scale_invariant=True)

    def loss(p: Any, x: Any, y: Any) -> Any:
      logits = net.apply(p, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return net, data, loss
  context = 16 if smoke else 64
  data, _ = study.load_stdlib_text(
    n_train=64 if smoke else 4096, n_val=32 if smoke else 512, n_test=32, context=context
  )
  net = study.transformer(width=16 if smoke else 64, depth=1 if smoke else 2, context=context)

  def loss(p: Any, x: Any, y: Any) -> Any:
    logits = net.apply(p, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  return net, data, loss


def kernels(params: Any) -> list[str]:
  """The paths of the 2-D weight matrices (the layers the figure shows; embeddings excluded)."""
  leaves, _ = od._tree.flatten_leaves(params)
  return [x.path for x in leaves if np.ndim(x.value) == 2 and "embed" not in x.path]


def run(
  setup: str, name: str, hp: dict[str, float], steps: int, args: argparse.Namespace
) -> dict[str, Any]:
  """Trains one model with one optimizer; the layers' angles every ``args.every`` steps."""
  net, data, loss = task(setup, args.smoke)
  tx = optimizer(name, hp)
  params = net.init(jax.random.key(args.seed))

  @jax.jit
  def chunk(params: Any, state: Any, xs: Any, ys: Any) -> tuple[Any, Any, Any]:
    def step(carry: Any, batch: Any) -> tuple[Any, Any]:
      p, s = carry
      value, grads = jax.value_and_grad(loss)(p, *batch)
      u, s = tx.update(grads, s, p)
      return (optax.apply_updates(p, u), s), value

    (params, state), values = jax.lax.scan(step, (params, state), (xs, ys))
    return params, state, values.mean()

  order = study.batch_indices(len(data.x_train), steps, args.batch_size, args.seed)
  x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
  state = tx.init(params)
  layers = kernels(params)
  trace: dict[str, Any] = {"step": [], "train_loss": [], "angle": {p: [] for p in layers}}
  for start in range(0, steps, args.every):
    idx = order[start : start + args.every]
    params, state, value = chunk(params, state, x[idx], y[idx])
    rows = {r.path: r for r in od.diagnostics.rotation_report(state).rows}
    trace["step"].append(start + len(idx))
    trace["train_loss"].append(float(value))
    for p in layers:
      trace["angle"][p].append(rows[p].angular_update)
  rows = {r.path: r for r in od.diagnostics.rotation_report(state).rows}
  val = float(loss(params, jnp.asarray(data.x_val), jnp.asarray(data.y_val)))
  final = {
    p: {"angle": rows[p].angular_update, "spread": rows[p].spread, "norm": rows[p].weight_norm}
    for p in layers
  }
  angles = [final[p]["angle"] for p in layers]
  out = {"hyperparameters": hp, "trace": trace, "final": final, "val_loss": val,
         "across_layers": max(angles) / min(angles)}  # fmt: skip
  if name == "AdamW":
    eq = od.diagnostics.equilibrium("adamw", learning_rate=hp["lr"], rate=hp["rate"])
    out["equilibrium"] = {"angular_update": eq.angular_update, "steps": eq.steps}
  return out


def select(setup: str, name: str, args: argparse.Namespace) -> tuple[dict[str, float], dict]:
  """The hyperparameters, a listed decay chosen on validation loss after ``--select-steps``."""
  hp = SETUPS[setup][name]
  key = "rate" if name == "AdamW" else "l2"
  if not isinstance(hp[key], list):
    return dict(hp), {}
  scores = {}
  for value in hp[key][:2] if args.smoke else hp[key]:
    trial = {**hp, key: value}
    scores[value] = run(setup, name, trial, args.select_steps, args)["val_loss"]
  best = min(scores, key=scores.__getitem__)
  return {**hp, key: best}, {"decay": key, "steps": args.select_steps, "val_loss": scores}


def figure(results: dict[str, Any], path: Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey="row", constrained_layout=True)
  for i, setup in enumerate(SETUPS):
    for j, name in enumerate(("AdamW", "Adam + L2")):
      ax, r = axes[i, j], results[setup][name]
      for layer, values in r["trace"]["angle"].items():
        ax.plot(r["trace"]["step"], values, lw=1.6, label=layer)
      if "equilibrium" in r:
        ax.axhline(r["equilibrium"]["angular_update"], color="k", ls="--", lw=1.2,
                   label="predicted equilibrium")  # fmt: skip
      ax.set_yscale("log")
      ax.set_title(f"{SETUPS[setup]['title']}: {name}", fontsize=12)
      ax.set_xlabel("step", fontsize=11)
      if j == 0:
        ax.set_ylabel("angle per step (rad)", fontsize=11)
      ax.tick_params(labelsize=10)
      ax.legend(fontsize=8, loc="upper right", ncol=2)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
    description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
  )
  p.add_argument("--smoke", action="store_true", help="tiny sizes, for the tests")
  p.add_argument("--steps", type=int, default=None, help="steps per run (default 4000; smoke 20)")
  p.add_argument("--every", type=int, default=None, help="steps between readings (100; smoke 10)")
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--select-steps", type=int, default=None,
                 help="steps of each selection run (default 1000; smoke 10)")  # fmt: skip
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", type=Path, default=None,
                 help="where to write results.json and rotation.png (default: docs/)")  # fmt: skip
  args = p.parse_args(argv)
  args.steps = args.steps or (20 if args.smoke else 4000)
  args.every = args.every or (10 if args.smoke else 100)
  args.select_steps = args.select_steps or (10 if args.smoke else 1000)
  if args.steps <= 0 or args.every <= 0 or args.steps % args.every:
    p.error("--steps and --every must be positive, --steps a multiple of --every")
  if args.select_steps <= 0 or args.select_steps % args.every:
    p.error("--select-steps must be positive and a multiple of --every")
  if args.batch_size <= 0:
    p.error("--batch-size must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  t0 = time.perf_counter()
  results: dict[str, Any] = {}
  for setup in SETUPS:
    results[setup] = {}
    for name in ("AdamW", "Adam + L2"):
      hp, selection = select(setup, name, args)
      results[setup][name] = {**run(setup, name, hp, args.steps, args), "selection": selection}
    for name, r in results[setup].items():
      print(f"{setup:12s} {name:10s} val loss {r['val_loss']:.3f}; angle per step across "
            f"layers: max/min {r['across_layers']:.2f}")  # fmt: skip
  results["meta"] = {
    "steps": args.steps, "every": args.every, "batch_size": args.batch_size, "seed": args.seed,
    "smoke": args.smoke, "seconds": round(time.perf_counter() - t0, 1),
    "machine": f"{platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s)",
    "jax": jax.__version__, "optax": optax.__version__,
  }  # fmt: skip
  if args.out is None:
    json_path, png_path = ROOT / "docs" / "rotation_results.json", ROOT / "docs" / "images"
    png_path = png_path / "rotation.png"
  else:
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / "results.json", args.out / "rotation.png"
  json_path.write_text(json.dumps(results, indent=1) + "\n")
  figure(results, png_path)
  print(f"wrote {json_path} and {png_path} in {results['meta']['seconds']} s")
  return results


if __name__ == "__main__":
  main()
