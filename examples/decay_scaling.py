"""Does it matter, part II: how should the decay change with the learning rate, the run's length
and the data? Measured on an MLP, a scale-invariant MLP and a small byte-level transformer.

Two rules are in circulation, and PyTorch/Optax habit is a third. Stated in the per-step rate
``r`` (the fraction of a weight removed per step at the peak learning rate; PyTorch's
``AdamW(lr, weight_decay=λ)`` has ``r = lr·λ``), each predicts how the best ``r`` moves when the
learning rate, the number of steps ``T`` or the training-set size ``N`` grows (log-log slopes):

=====================================  ======  =====  =====
rule                                   lr      T      N
=====================================  ======  =====  =====
``λ`` fixed (the PyTorch/Optax habit)   +1      0      0
``r`` fixed (the AdamW paper)            0      0      0
timescale ``1/r ∝ T`` (Wang & Aitchison) 0     −1     −1
=====================================  ======  =====  =====

(the N axis grows ``T ∝ N``: a fixed number of epochs). The protocol is the first study's
(``examples/does_it_matter.py``): at each point of each axis, the best ``r`` on *validation*
(mean over 3 grid seeds on a grid that grows past a winning edge, refined between grid points
by a parabola in ``log r``), then the test metric on 10 fresh seeds at it, and — at the points
off the base — at what each rule predicts from the base point's best ``r`` instead, paired by
seed: the accuracy (or loss) lost by following the rule instead of re-tuning.

Optimizers (``study.py``, cosine schedule, the decay masked to the kernels):

- ``AdamW``: ``chain(adam(lr·η_t), decoupled_weight_decay(r·η_t))``. ``optax.adamw(lr·η_t,
  weight_decay=r/lr)`` is the same run (``tests/test_study.py`` checks it), so its numbers are
  these, read in its parametrization ``λ_torch = r / lr``.
- ``Adam + L2``: ``chain(add_l2_to_grad(λ), adam(lr·η_t))`` with the nominal ``r = lr·λ`` (L2
  inside Adam has no single rate: ``diagnostics.audit`` calls it coupled).
- ``SGDm + L2`` (MLPs only): ``chain(add_l2_to_grad(λ), sgd(lr·η_t, momentum=0.9))``, whose
  steady-state rate is ``r = lr·λ/(1−0.9)`` (``diagnostics.audit``).

Data: MNIST-1D (``mnist1d``'s generator) and byte windows of the running interpreter's standard
library ``.py`` files (``study.load_stdlib_text``: split by file; the file list's size and
checksum are printed and saved). Nothing is downloaded.

Run ``python examples/decay_scaling.py`` (results in ``out/decay_scaling``; about 22 minutes on
2 CPU cores) or ``--smoke`` (seconds; its numbers mean nothing). Needs the ``examples`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import study

import optaxdecay as od

AXES = ("lr", "T", "N")
#: Each rule's predicted log-log slope of the best r against each axis.
RULES = {
  "λ fixed": {"lr": 1.0, "T": 0.0, "N": 0.0},
  "r fixed": {"lr": 0.0, "T": 0.0, "N": 0.0},
  "timescale": {"lr": 0.0, "T": -1.0, "N": -1.0},
}
#: Factors of the three points of each axis (the middle one is the base point).
FACTORS = {"lr": (10**-0.5, 1.0, 10**0.5), "T": (0.25, 1.0, 4.0), "N": (0.5, 1.0, 2.0)}


class Setup(NamedTuple):
  """One model and data set, at its base point."""

  key: str
  title: str
  optimizers: tuple[str, ...]
  lr: dict[str, float]  # base learning rate per optimizer
  r: dict[str, float]  # centre of the r grid at the base point, per optimizer
  n_train: int
  steps: int
  batch_size: int
  higher_is_better: bool  # accuracy (MLPs) or minus the loss (the language model)


def setups(smoke: bool) -> list[Setup]:
  """The three setups at their base points (``--smoke``: AdamW only, tiny sizes)."""
  lr = {"AdamW": 3e-3, "Adam + L2": 3e-3, "SGDm + L2": 0.1}
  r0 = {"AdamW": 1e-3, "Adam + L2": 3e-5, "SGDm + L2": 1e-3}
  # The text base point overfits: 40 windows (1,320 bytes) for 200 steps of 16 is 80 epochs,
  # where decay is worth half a nat per byte (at 160 windows it was worth nothing).
  text_lr, text_r0 = {"AdamW": 3e-3, "Adam + L2": 3e-3}, {"AdamW": 2e-2, "Adam + L2": 1.5e-4}
  mlp_opts: tuple[str, ...] = ("AdamW", "Adam + L2", "SGDm + L2")
  text_opts: tuple[str, ...] = ("AdamW", "Adam + L2")
  steps, n, text_steps, text_n = 800, 1500, 200, 40
  if smoke:
    mlp_opts = text_opts = ("AdamW",)
    steps, n, text_steps, text_n = 24, 400, 8, 32
  return [
    Setup("mnist1d", "MNIST-1D, MLP", mlp_opts, lr, r0, n, steps, 100, True),
    Setup("mnist1d_si", "MNIST-1D, scale-invariant MLP", mlp_opts, lr, r0, n, steps, 100, True),
    Setup(
      "text",
      "stdlib bytes, 2-layer transformer",
      text_opts,
      text_lr,
      text_r0,
      text_n,
      text_steps,
      16,
      False,
    ),
  ]


def lam_of(name: str, r: float, lr: float) -> float:
  """The optimizer's own λ for the per-step rate ``r`` (see the module docstring)."""
  if name == "AdamW":
    return r
  if name == "Adam + L2":
    return r / lr
  return r * (1 - study.MOMENTUM) / lr


# --- one setup ----------------------------------------------------------------------------


class Point(NamedTuple):
  axis: str  # "base", "lr", "T" or "N"
  factor: float
  lr: float
  steps: int
  n_train: int


def points(setup: Setup, name: str) -> list[Point]:
  base = Point("base", 1.0, setup.lr[name], setup.steps, setup.n_train)
  out = [base]
  for axis in AXES:
    for f in (FACTORS[axis][0], FACTORS[axis][2]):
      lr = base.lr * f if axis == "lr" else base.lr
      steps = round(base.steps * f) if axis in ("T", "N") else base.steps
      n = round(base.n_train * f) if axis == "N" else base.n_train
      out.append(Point(axis, f, lr, steps, n))
  return out


class Trainer:
  """Data and model of a setup, and :func:`study.train` with them."""

  def __init__(self, setup: Setup, smoke: bool):
    self.setup = setup
    self.info: Any = None
    if setup.key == "text":
      self.data, self.info = study.load_stdlib_text(
        n_train=2 * setup.n_train, n_val=64 if smoke else 256, n_test=64 if smoke else 512
      )
      width, depth = (8, 1) if smoke else (32, 2)
      self.model = study.transformer(width=width, depth=depth, context=32)
      self.mask = od.decay_mask(exclude=(), min_ndim=2)  # nanoGPT: every matrix decays
    else:
      self.data = study.load_mnist1d(n_train=2 * setup.n_train, n_val=1000)
      self.model = study.mlp((40, 128, 128, 10), scale_invariant=setup.key == "mnist1d_si")
      self.mask = od.bias_mask

  def scores(self, name: str, point: Point, rs: Sequence[float], seeds: Sequence[int]) -> Any:
    """(validation, test) scores, higher is better, one per ``(rs[i], seeds[i])``."""
    d = self.data
    data = d._replace(x_train=d.x_train[: point.n_train], y_train=d.y_train[: point.n_train])
    lams = [lam_of(name, r, point.lr) for r in rs]
    runs = study.train(
      name,
      data,
      [point.lr] * len(rs),
      lams,
      list(seeds),
      steps=point.steps,
      batch_size=self.setup.batch_size,
      model=self.model,
      mask=self.mask,
      chunk=self.setup.steps // 4,  # divides every length on the axes: one compiled chunk
    )
    if self.setup.higher_is_better:
      return runs.val_accuracy, runs.test_accuracy
    return -runs.val_loss, -runs.test_loss


def best_log_r(log_rs: np.ndarray, val: np.ndarray) -> float:
  """The maximizer of ``val`` over ``log r``: a parabola through the best point and its neighbours.

  At a grid edge (or on a curve with no interior maximum) it is the best grid point.
  """
  val = np.where(np.isfinite(val), val, -np.inf)  # a diverged run never wins
  i = int(np.argmax(val))
  if i == 0 or i == len(val) - 1 or not np.isfinite(val[i - 1 : i + 2]).all():
    return float(log_rs[i])
  a, b, _ = np.polyfit(log_rs[i - 1 : i + 2], val[i - 1 : i + 2], 2)
  if a >= 0:
    return float(log_rs[i])
  return float(np.clip(-b / (2 * a), log_rs[i - 1], log_rs[i + 1]))


def grid_rs(setup: Setup, name: str, point: Point, width: int) -> np.ndarray:
  """Log-spaced r grid, centred between the rules' predictions for this point."""
  base_lr, base_t = setup.lr[name], setup.steps
  centre = setup.r[name] * math.sqrt(point.lr / base_lr) * math.sqrt(base_t / point.steps)
  offsets = np.linspace(-1.25, 1.25, width) if width > 2 else np.array([-0.5, 0.5])
  return centre * 10**offsets


#: The r grid grows past a winning edge by this many steps at a time, at most ``MAX_GROW`` times
#: (and never to ``r`` ≥ ``MAX_R``: a weight cannot lose more than itself in a step).
GROW, MAX_GROW, MAX_R = 2, 3, 0.5


def bracketed_grid(
  score: Any, rs: np.ndarray, seeds: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, bool]:
  """Validation scores ``(r, seed)`` on the grid ``rs``, grown past an edge that wins.

  ``score(rs, seeds)`` gives one score per pair. Where the seed-mean's best is the smallest or
  the largest ``r``, the true best lies beyond it, so the grid grows there by :data:`GROW`
  points of its own log-spacing and is scored again, until the best is interior. Returns the
  grid, its scores and whether the best is still at an edge (grown :data:`MAX_GROW` times, or
  capped at :data:`MAX_R`).
  """

  def run(new: np.ndarray) -> np.ndarray:
    val = score(np.repeat(new, len(seeds)), np.tile(seeds, len(new)))
    return np.asarray(val).reshape(len(new), len(seeds))

  val = run(rs)
  step = float(np.log10(rs[1] / rs[0])) if len(rs) > 1 else 0.5
  for _ in range(MAX_GROW + 1):
    i = int(np.argmax(np.where(np.isfinite(val), val, -np.inf).mean(1)))
    low, high = i == 0, i == len(rs) - 1
    if not (low or high):
      return rs, val, False
    k = np.arange(1, GROW + 1)
    new = rs[0] * 10 ** (-step * k[::-1]) if low else rs[-1] * 10 ** (step * k)
    new = new[new < MAX_R]
    if len(new) == 0 or _ == MAX_GROW:
      return rs, val, True
    more = run(new)
    rs, val = (np.concatenate([new, rs]), np.concatenate([more, val])) if low else (
      np.concatenate([rs, new]), np.concatenate([val, more]))  # fmt: skip
  raise AssertionError("unreachable")


def run_optimizer(tr: Trainer, name: str, args: argparse.Namespace) -> dict[str, Any]:
  setup = tr.setup
  grid_seeds = list(range(args.grid_seeds))
  final_seeds = [100 + s for s in range(args.seeds)]
  out: dict[str, Any] = {"points": []}
  base_best = None
  for point in points(setup, name):

    def score(r: np.ndarray, s: np.ndarray, point: Point = point) -> Any:
      return tr.scores(name, point, r, s)[0]

    rs, val, edge = bracketed_grid(score, grid_rs(setup, name, point, args.grid), grid_seeds)
    log_rs = np.log10(rs)
    per_seed = [best_log_r(log_rs, val[:, s]) for s in range(len(grid_seeds))]
    best = best_log_r(log_rs, val.mean(1))
    if point.axis == "base":
      base_best = best
      final = {"re-tuned": 10**best, "λ = 0": 0.0}
    else:
      assert base_best is not None
      final = {"re-tuned": 10**best}
      for rule, slopes in RULES.items():
        final[rule] = 10 ** (base_best + slopes[point.axis] * math.log10(point.factor))
    labels = list(final)
    rs_f = np.repeat([final[k] for k in labels], len(final_seeds))
    seeds_f = np.tile(final_seeds, len(labels))
    _, test = tr.scores(name, point, rs_f, seeds_f)
    test = np.asarray(test).reshape(len(labels), len(final_seeds))
    out["points"].append(
      {
        "axis": point.axis,
        "factor": point.factor,
        "lr": point.lr,
        "steps": point.steps,
        "n_train": point.n_train,
        "grid_r": rs.tolist(),
        "val": val.tolist(),
        "best_log_r": best,
        "best_log_r_per_seed": per_seed,
        "at_grid_edge": edge,
        "final": {
          k: {"r": float(final[k]), "test": test[i].tolist()} for i, k in enumerate(labels)
        },
      }
    )
  return out


def edge_side(point: dict[str, Any]) -> int:
  """−1 where the grid's smallest r still won (the true best is smaller), +1 the largest, 0 none."""
  if not point["at_grid_edge"]:
    return 0
  return -1 if point["best_log_r"] <= math.log10(min(point["grid_r"])) + 1e-9 else 1


def slope_bound(lo: dict[str, Any], hi: dict[str, Any]) -> str:
  """What an edge makes of the slope: ``"≥"``, ``"≤"``, ``"?"`` (both ways) or ``""`` (exact).

  The three points sit at ``−x, 0, +x`` in log factor, so the fitted slope is
  ``(best_hi − best_lo)/2x``: a best below the grid at ``lo`` (or above it at ``hi``) only makes
  the true slope larger.
  """
  ways = {-edge_side(lo), edge_side(hi)} - {0}
  return {frozenset(): "", frozenset({1}): "≥", frozenset({-1}): "≤"}.get(frozenset(ways), "?")


def slopes(res: dict[str, Any]) -> dict[str, Any]:
  """Per axis: the log-log slope of the best r (per grid seed, and its t-interval).

  ``bound`` says whether an edge makes the slope a bound (:func:`slope_bound`).
  """
  pts = res["points"]
  base = pts[0]
  out = {}
  for axis in AXES:
    lo, hi = [p for p in pts if p["axis"] == axis]
    xs = np.log10([lo["factor"], 1.0, hi["factor"]])
    per_seed = np.array(
      [
        np.polyfit(xs, [lo["best_log_r_per_seed"][s], b, hi["best_log_r_per_seed"][s]], 1)[0]
        for s, b in enumerate(base["best_log_r_per_seed"])
      ]
    )
    mean_curve = float(
      np.polyfit(xs, [lo["best_log_r"], base["best_log_r"], hi["best_log_r"]], 1)[0]
    )
    iv = study.t_interval(per_seed) if len(per_seed) > 1 else None
    out[axis] = {
      "slope": mean_curve,
      "per_seed": per_seed.tolist(),
      "interval": None if iv is None else [iv.mean - iv.half, iv.mean + iv.half],
      "edge": bool(lo["at_grid_edge"] or hi["at_grid_edge"] or base["at_grid_edge"]),
      "bound": slope_bound(lo, hi),
    }
  return out


def losses(res: dict[str, Any], scale: float) -> dict[str, dict[str, list[float]]]:
  """Per off-base point and rule: the paired test difference rule − re-tuned (mean, half)."""
  out: dict[str, dict[str, list[float]]] = {}
  for p in res["points"][1:]:
    key = f"{p['axis']}×{p['factor']:.3g}"
    tuned = np.asarray(p["final"]["re-tuned"]["test"])
    out[key] = {}
    for rule in RULES:
      iv = study.paired(p["final"][rule]["test"], tuned, scale)
      out[key][rule] = [iv.mean, iv.half]
  return out


# --- report -------------------------------------------------------------------------------


def report(setup: Setup, name: str, res: dict[str, Any]) -> list[str]:
  unit = "accuracy points" if setup.higher_is_better else "nats/byte ×100"
  lines = [f"\n## {setup.title}: {name}"]
  base = res["points"][0]
  seeds = len(base["final"]["re-tuned"]["test"])
  gain = study.paired(base["final"]["re-tuned"]["test"], base["final"]["λ = 0"]["test"], 100)
  lines.append(f"best r at the base point: {10 ** base['best_log_r']:.3g} per step; "
               f"its gain over λ = 0 ({unit}, {seeds} seeds): {gain}")  # fmt: skip
  lines.append(f"{'axis':<5} {'slope of log best r':>20} {'95 % CI (per seed)':>20}   "
               + "  ".join(f"{k:>10}" for k in RULES))  # fmt: skip
  for axis, s in res["slopes"].items():
    ci = "n/a" if s["interval"] is None else f"[{s['interval'][0]:+.2f}, {s['interval'][1]:+.2f}]"
    pred = "  ".join(f"{RULES[k][axis]:>+10.0f}" for k in RULES)
    slope = f"{s['bound']}{s['slope']:+.2f}"
    lines.append(f"{axis:<5} {slope:>20} {ci:>20}   {pred}{'  (grid edge)' if s['edge'] else ''}")
  lines.append(f"lost by following a rule instead of re-tuning ({unit}, paired, {seeds} seeds):")
  for key, rules in res["losses"].items():
    cells = "  ".join(f"{r}: {m:+.2f} ± {h:.2f}" for r, (m, h) in rules.items())
    lines.append(f"  {key:<8} {cells}")
  return lines


def _ci(s: dict[str, Any]) -> str:
  """A slope with its interval; a bound (an edge won off the base) has no interval."""
  iv = s["interval"]
  if s["bound"]:
    return f"{s['bound']} {s['slope']:+.2f} †"
  cell = f"{s['slope']:+.2f}" + ("" if iv is None else f" [{iv[0]:+.2f}, {iv[1]:+.2f}]")
  return cell + (" †" if s["edge"] else "")


def markdown(results: dict[str, Any]) -> str:
  """The docs page's tables (``docs/decay_scaling.md``): slopes, then what each rule lost.

  A loss is bold where its interval holds 0: following the rule was as good as re-tuning.
  """
  rules = "  ".join(f"{k}: {RULES[k]['lr']:+.0f}, {RULES[k]['T']:+.0f}, {RULES[k]['N']:+.0f}"
                    for k in RULES)  # fmt: skip
  out = [
    f"Slopes of log best r (95 % CI over grid seeds; † the grid's edge won somewhere on the axis;"
    f" ≥ or ≤: an edge won off the base even after the grid grew, so the slope is a bound)."
    f" The rules predict (lr, T, N) = {rules}.",
    "",
    "| setup | optimizer | best r | gain over λ = 0 | lr | T | N |",
    "|---|---|---|---|---|---|---|",
  ]
  for skey, entry in results["setups"].items():
    unit = "nats/byte ×100" if skey == "text" else "points"
    for name, res in entry["optimizers"].items():
      base = res["points"][0]
      gain = study.paired(base["final"]["re-tuned"]["test"], base["final"]["λ = 0"]["test"], 100)
      cells = [entry["title"], name, f"{10 ** base['best_log_r']:.3g}", f"{gain} {unit}"]
      out.append("| " + " | ".join(cells + [_ci(res["slopes"][a]) for a in AXES]) + " |")
  out += ["", "Lost by following a rule instead of re-tuning (test, paired over 10 seeds; "
          "points, or nats/byte ×100 on text; **bold**: not resolved from 0 — not evidence that "
          "the rule equals re-tuning: no equivalence margin is set).", "",
          "| setup | optimizer | point | " + " | ".join(RULES) + " |",
          "|---|---|---|" + "---|" * len(RULES)]  # fmt: skip
  for entry in results["setups"].values():
    for name, res in entry["optimizers"].items():
      for key, by_rule in res["losses"].items():
        cells = [f"**{m:+.2f} ± {h:.2f}**" if abs(m) <= h else f"{m:+.2f} ± {h:.2f}"
                 for m, h in by_rule.values()]  # fmt: skip
        out.append(f"| {entry['title']} | {name} | {key} | " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
  """Best r against each axis (black; hollow where the grid's edge won), both rules drawn."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import NullLocator

  rows = [(s, n) for s in results["setups"] for n in results["setups"][s]["optimizers"]]
  plt.rcParams.update({"font.size": 13, "axes.labelsize": 13, "xtick.labelsize": 12})
  plt.rcParams.update({"ytick.labelsize": 12})  # readable at a page's width (the figure shrinks)
  fig, axes = plt.subplots(len(rows), 3, figsize=(11, 2.9 * len(rows) + 1.0), squeeze=False)
  titles = {"lr": "learning rate / base", "T": "steps T / base", "N": "train set N / base (T ∝ N)"}
  for i, (skey, name) in enumerate(rows):
    pts = results["setups"][skey]["optimizers"][name]["points"]
    base = pts[0]
    for j, axis in enumerate(AXES):
      ax = axes[i][j]
      lo, hi = [p for p in pts if p["axis"] == axis]
      trio = (lo, base, hi)
      f = np.array([lo["factor"], 1.0, hi["factor"]])
      best = np.array([p["best_log_r"] for p in trio])
      ax.plot(f, 10 ** np.array([p["best_log_r_per_seed"] for p in trio]), "o", color="0.75", ms=3)
      ax.plot(f, 10**best, "k-", label="measured: best on validation")
      edge = np.array([p["at_grid_edge"] for p in trio])
      ax.plot(f[~edge], 10 ** best[~edge], "ko")
      ax.plot(f[edge], 10 ** best[edge], "o", mfc="white", mec="k", label="(at the grid's edge)")
      for rule, style in zip(RULES, ("--", ":", "-."), strict=True):
        ax.plot(f, 10 ** (base["best_log_r"] + RULES[rule][axis] * np.log10(f)), style, label=rule)
      ax.set_xscale("log")
      ax.set_yscale("log")
      ax.xaxis.set_minor_locator(NullLocator())
      ax.set_xticks(f, [f"×{v:.2g}" for v in f])
      if i == len(rows) - 1:
        ax.set_xlabel(titles[axis])
      if j == 0:
        title = results["setups"][skey]["title"]
        ax.set_ylabel(f"{title}\n{name}\nbest r per step", fontsize=12)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=12, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / fig.get_figheight()))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--smoke", action="store_true", help="tiny sizes, for the tests")
  p.add_argument(
    "--out", type=Path, default=study.OUT / "decay_scaling", help="results.json and figures"
  )
  p.add_argument("--only", default=None, help="comma-separated setup keys (default: all)")
  p.add_argument("--grid", type=int, default=None, help="r values per grid (default 6)")
  p.add_argument("--grid-seeds", type=int, default=None, help="seeds per grid point (default 3)")
  p.add_argument("--seeds", type=int, default=None, help="test seeds (default 10)")
  p.add_argument(
    "--from", dest="saved", type=Path, default=None, help="re-derive the tables from a results.json"
  )
  args = p.parse_args(argv)
  defaults = (3, 2, 2) if args.smoke else (6, 3, 10)
  for attr, d in zip(("grid", "grid_seeds", "seeds"), defaults, strict=True):
    if getattr(args, attr) is None:
      setattr(args, attr, d)
  return args


def _share_compilations() -> None:
  """A persistent XLA cache for this run (removed at exit): each grid and each axis point is a
  separate :func:`study.train` call, and calls with the same shapes compile the same program."""
  import atexit
  import shutil
  import tempfile

  import jax

  if jax.config.jax_compilation_cache_dir:  # the user's (or the test suite's) cache
    return
  path = tempfile.mkdtemp(prefix="decay-scaling-xla-")
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def write(results: dict[str, Any], out: Path, lines: list[str]) -> None:
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.json").write_text(json.dumps(results, indent=1))
  (out / "report.txt").write_text("\n".join(lines) + "\n")
  (out / "tables.md").write_text(markdown(results))
  plot(results, out / "best_r.png")


def rederive(saved: Path, out: Path | None) -> dict[str, Any]:
  """``--from``: the analysis again on a run's saved scores (nothing is trained)."""
  results = json.loads(saved.read_text())
  lines = []
  for key, entry in results["setups"].items():
    setup = next(s for s in setups(results["args"]["smoke"] == "True") if s.key == key)
    for name, res in entry["optimizers"].items():
      res["slopes"] = slopes(res)
      res["losses"] = losses(res, 100.0)
      lines += report(setup, name, res)
  print("\n".join(lines))
  if out is not None:
    write(results, out, lines)
  return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  if args.saved is not None:
    return rederive(args.saved, args.out)
  _share_compilations()
  start = time.perf_counter()
  results: dict[str, Any] = {"setups": {}, "args": {k: str(v) for k, v in vars(args).items()}}
  only = None if args.only is None else set(args.only.split(","))
  if args.smoke and only is None:
    only = {"text"}  # the new model; the MLP path is the first study's (tests/test_study.py)
  lines = ["# Does it matter, part II: how to set the decay as lr, T and N change"]
  print(lines[0], flush=True)
  for setup in setups(args.smoke):
    if only is not None and setup.key not in only:
      continue
    tr = Trainer(setup, args.smoke)
    entry: dict[str, Any] = {"title": setup.title, "optimizers": {}}
    if tr.info is not None:
      entry["text"] = {"root": tr.info.root, "files": len(tr.info.files), "bytes": tr.info.bytes,
                       "sha256": tr.info.sha256}  # fmt: skip
      lines.append(f"text: {len(tr.info.files)} files, {tr.info.bytes:,} bytes, sha256 "
                   f"{tr.info.sha256[:16]}… from {tr.info.root}")  # fmt: skip
      print(lines[-1], flush=True)
    for name in setup.optimizers:
      t0 = time.perf_counter()
      res = run_optimizer(tr, name, args)
      res["slopes"] = slopes(res)
      res["losses"] = losses(res, 100.0)
      res["seconds"] = time.perf_counter() - t0
      entry["optimizers"][name] = res
      block = report(setup, name, res)
      lines += block
      print("\n".join(block), flush=True)
    results["setups"][setup.key] = entry
  results["seconds"] = time.perf_counter() - start
  lines.append(f"\ntotal: {results['seconds']:.0f} s")
  print(lines[-1])
  if args.out is not None:
    write(results, args.out, lines)
  return results


if __name__ == "__main__":
  main()
