"""Does it matter, part II: how should the decay change with the learning rate, the run's length
and the data? Measured on two MLPs, and on a byte-level transformer trained for one epoch.

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

(the N axis grows ``T ∝ N``: a fixed number of epochs).

**The MLPs** (MNIST-1D, a plain and a scale-invariant MLP; three optimizers). The base learning
rate is chosen on validation first, jointly with ``r``. Then at each of five points per axis
(the base among them), the best ``r`` on *validation*: 3 grid seeds on a log grid that grows
past a winning edge, ``r = 0`` always scored beside it, refined between grid points by a
parabola in ``log r``. The slope of log best ``r`` over the five points has a bootstrap
interval that resamples the grid seeds *and* the validation examples and selects again; a
quadratic term whose interval excludes 0 says the power law does not fit. On 10 fresh test seeds:
the re-tuned ``r``, ``r = 0`` and each rule's ``r`` (predicted from the base point), paired by
seed; a rule's loss against re-tuning has a two-way bootstrap interval (test seeds × test
examples) and a verdict against the equivalence margin :data:`MARGIN`.

**The transformer** (AdamW): one epoch over byte windows of the interpreter's standard library,
at five data sizes (random windows over all training files, seeded and nested), the learning
rate tuned on validation at ``r = 0``. At each size the validation grid over ``r`` (zero
included), then the test loss at the selected ``r``, at ``r = 0`` and at nanoGPT's habit
(``weight_decay = 0.1``), with two-way intervals; and the byte-unigram and bigram tables fitted
on the same training bytes.

Optimizers (``study.py``, cosine schedule, the decay masked to the kernels; on the transformer
to every matrix, embeddings included):

- ``AdamW``: ``chain(adam(lr·η_t), decoupled_weight_decay(r·η_t))``, that is
  ``optax.adamw(lr·η_t, weight_decay=r/lr)`` (``tests/test_study.py``);
- ``Adam + L2``: ``chain(add_l2_to_grad(λ), adam(lr·η_t))`` with the nominal ``r = lr·λ``;
- ``SGDm + L2``: ``chain(add_l2_to_grad(λ), sgd(lr·η_t, momentum=0.9))``, whose steady-state
  rate is ``r = lr·λ/(1−0.9)`` (``diagnostics.audit``).

Run ``python examples/decay_scaling.py`` (``results.json``, ``results.npz`` (every run's
per-example scores) and figures in ``out/decay_scaling``; about 45 minutes on 2 CPU cores) or
``--smoke`` (seconds; its numbers mean nothing). Needs the ``examples`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import study

import optaxdecay as od

TITLE = "# Does it matter, part II: how to set the decay as lr, T and N change"
AXES = ("lr", "T", "N")
#: Each rule's predicted log-log slope of the best r against each axis.
RULES = {
  "λ fixed": {"lr": 1.0, "T": 0.0, "N": 0.0},
  "r fixed": {"lr": 0.0, "T": 0.0, "N": 0.0},
  "timescale": {"lr": 0.0, "T": -1.0, "N": -1.0},
}
#: How the tables name the rules (the first is PyTorch's and Optax's ``weight_decay``; for L2
#: the coefficient λ itself).
RULE_TITLES = {"λ fixed": "`λ_torch` fixed", "r fixed": "`r` fixed", "timescale": "timescale"}
#: The five points of each MLP axis, as factors of the base point (a decade or more end to end;
#: the N axis stops at ×2: MNIST-1D's generator has 3,000 training sequences beside validation).
FACTORS = {
  "lr": tuple(float(f) for f in 10 ** np.linspace(-0.5, 0.5, 5)),
  "T": (0.25, 0.5, 1.0, 2.0, 4.0),
  "N": (0.125, 0.25, 0.5, 1.0, 2.0),
}
#: The transformer's data sizes (one epoch each), as factors of its base size.
TEXT_SIZES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: nanoGPT's and GPT-2 recipes' ``weight_decay`` (λ_torch): the habit the transformer is scored at.
HABIT = 0.1
#: The equivalence margin of a verdict, in the tables' units (accuracy points; nats/byte ×100):
#: a rule *holds* where the interval of its loss against re-tuning lies inside ±MARGIN, *lost*
#: where it lies below −MARGIN; otherwise the comparison is unresolved. Set before the run.
MARGIN = 1.0
#: The transformer's (r grid width, grid seeds, test seeds): smaller than the MLPs', set from a
#: timing that overestimated its cost (its full run took 5 minutes on two CPU cores).
TEXT_BUDGET = (5, 2, 4)
#: Replicates of the two-way bootstrap (test seeds × test examples) and of the slope bootstrap.
TEST_REPS, SLOPE_REPS = 2000, 1000


class Setup(NamedTuple):
  """One model and data set, at its base point."""

  key: str
  title: str
  optimizers: tuple[str, ...]
  lrs: dict[str, tuple[float, ...]]  # candidate base learning rates, chosen on validation
  r: dict[str, float]  # centre of the r grid at the base point, per optimizer
  n_train: int
  steps: int
  batch_size: int


def setups(smoke: bool) -> list[Setup]:
  """The MLP setups and the transformer (``--smoke``: AdamW only, tiny sizes)."""
  lrs = {"AdamW": (1e-3, 3e-3, 1e-2, 3e-2), "Adam + L2": (1e-3, 3e-3, 1e-2, 3e-2),
         "SGDm + L2": (0.03, 0.1, 0.3, 1.0)}  # fmt: skip
  r0 = {"AdamW": 1e-3, "Adam + L2": 3e-5, "SGDm + L2": 1e-3}
  mlp_opts: tuple[str, ...] = ("AdamW", "Adam + L2", "SGDm + L2")
  text_lrs = {"AdamW": (1.5e-3, 3e-3, 6e-3)}
  steps, n, text_n, text_bs = 800, 1500, 8192, 32
  if smoke:
    mlp_opts = ("AdamW",)
    lrs, text_lrs = {"AdamW": (3e-3, 1e-2)}, {"AdamW": (3e-3, 1e-2)}
    steps, n, text_n, text_bs = 16, 800, 256, 16
  text = Setup("text", "stdlib bytes, 2-layer transformer, one epoch", ("AdamW",), text_lrs,
               {"AdamW": 3e-4}, text_n, text_n // text_bs, text_bs)  # fmt: skip
  return [
    Setup("mnist1d", "MNIST-1D, MLP", mlp_opts, lrs, r0, n, steps, 100),
    Setup("mnist1d_si", "MNIST-1D, scale-invariant MLP", mlp_opts, lrs, r0, n, steps, 100),
    text,
  ]


def lam_of(name: str, r: float, lr: float) -> float:
  """The optimizer's own λ for the per-step rate ``r`` (see the module docstring)."""
  if name == "AdamW":
    return r
  if name == "Adam + L2":
    return r / lr
  return r * (1 - study.MOMENTUM) / lr


# --- training -----------------------------------------------------------------------------


class Point(NamedTuple):
  axis: str  # "base", "lr", "T", "N" (MLPs) or "size" (the transformer)
  factor: float
  lr: float
  steps: int
  n_train: int


def points(setup: Setup, lr: float) -> list[Point]:
  """The base point, then each axis's other points (MLPs), or each data size (text)."""
  base = Point("base", 1.0, lr, setup.steps, setup.n_train)
  if setup.key == "text":
    sizes = [f for f in TEXT_SIZES if f != 1.0]
    return [base] + [Point("size", f, lr, round(setup.steps * f), round(setup.n_train * f))
                     for f in sizes]  # fmt: skip
  out = [base]
  for axis in AXES:
    for f in FACTORS[axis]:
      if f == 1.0:
        continue
      steps = round(base.steps * f) if axis in ("T", "N") else base.steps
      n = round(base.n_train * f) if axis == "N" else base.n_train
      out.append(Point(axis, f, lr * f if axis == "lr" else lr, steps, n))
  return out


class Scores(NamedTuple):
  """Per run and example, higher is better: right (0/1) on the MLPs, minus the loss on text."""

  val: np.ndarray  # (runs, validation examples)
  test: np.ndarray  # (runs, test examples)


class Trainer:
  """Data and model of a setup, and :func:`study.train` with them."""

  def __init__(self, setup: Setup, smoke: bool):
    self.setup = setup
    self.info: Any = None
    if setup.key == "text":
      most = round(setup.n_train * max(TEXT_SIZES))
      self.data, self.info = study.load_stdlib_text(
        n_train=most, n_val=64 if smoke else 256, n_test=64 if smoke else 512
      )
      # A data size is a prefix of one seeded permutation of all the training windows: random
      # over files (the loader's windows follow the file list) and nested.
      order = np.random.default_rng(0).permutation(most)
      self.data = self.data._replace(x_train=self.data.x_train[order],
                                     y_train=self.data.y_train[order])  # fmt: skip
      width, depth = (8, 1) if smoke else (32, 2)
      self.model = study.transformer(width=width, depth=depth, context=32)
      self.mask = od.decay_mask(exclude=(), min_ndim=2)  # nanoGPT: every matrix decays
    else:
      self.data = study.load_mnist1d(n_train=2 * setup.n_train, n_val=1000)
      self.model = study.mlp((40, 128, 128, 10), scale_invariant=setup.key == "mnist1d_si")
      self.mask = od.bias_mask

  def train_split(self, n: int) -> study.Split:
    d = self.data
    return d._replace(x_train=d.x_train[:n], y_train=d.y_train[:n])

  def scores(self, name: str, point: Point, rs: Sequence[float], seeds: Sequence[int]) -> Scores:
    """Per-example validation and test scores of one run per ``(rs[i], seeds[i])``."""
    runs = study.train(
      name,
      self.train_split(point.n_train),
      [point.lr] * len(rs),
      [lam_of(name, r, point.lr) for r in rs],
      list(seeds),
      steps=point.steps,
      batch_size=self.setup.batch_size,
      model=self.model,
      mask=self.mask,
      chunk=math.gcd(*self.chunks()),  # divides every length: one compiled chunk
      train_metrics=False,
    )
    if self.setup.key == "text":
      return Scores(-runs.val_example_loss, -runs.test_example_loss)  # type: ignore[operator]
    return Scores(runs.val_correct, runs.test_correct)  # type: ignore[arg-type]

  def chunks(self) -> list[int]:
    s = self.setup.steps
    if self.setup.key == "text":
      return [round(s * f) for f in TEXT_SIZES]
    return [s] + [round(s * f) for axis in ("T", "N") for f in FACTORS[axis]]


# --- selection ------------------------------------------------------------------------------


def best_log_r(log_rs: np.ndarray, val: np.ndarray) -> float:
  """The maximizer of ``val`` over ``log r``: a parabola through the best point and its neighbours.

  At a grid edge (or on a curve with no interior maximum) it is the best grid point.
  """
  val = np.where(np.isfinite(val), val, -np.inf)  # a diverged run never wins
  i = int(np.argmax(val))
  if i == 0 or i == len(val) - 1 or not np.isfinite(val[i - 1 : i + 2]).all():
    return float(log_rs[i])
  (x0, x1, x2), (y0, y1, y2) = log_rs[i - 1 : i + 2], val[i - 1 : i + 2]
  a = ((y2 - y1) / (x2 - x1) - (y1 - y0) / (x1 - x0)) / (x2 - x0)  # the parabola's x² term
  if a >= 0:
    return float(log_rs[i])
  b = (y1 - y0) / (x1 - x0) - a * (x0 + x1)
  return float(np.clip(-b / (2 * a), log_rs[i - 1], log_rs[i + 1]))


def grid_rs(setup: Setup, name: str, point: Point, base_lr: float, width: int) -> np.ndarray:
  """Log-spaced r grid, centred between the rules' predictions for this point."""
  centre = setup.r[name] * math.sqrt(point.lr / base_lr) * math.sqrt(setup.steps / point.steps)
  offsets = np.linspace(-1.25, 1.25, width) if width > 2 else np.array([-0.5, 0.5])
  return centre * 10**offsets


#: The r grid grows past a winning edge by this many steps at a time, at most ``MAX_GROW`` times
#: (and never to ``r`` ≥ ``MAX_R``: a weight cannot lose more than itself in a step).
GROW, MAX_GROW, MAX_R = 2, 3, 0.5


def bracketed_grid(
  score: Callable[[np.ndarray, np.ndarray], Any],
  rs: np.ndarray,
  seeds: Sequence[int],
  *,
  zero: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray, bool]:
  """Validation scores ``(r, seed, ...)`` on the grid ``rs``, grown past an edge that wins.

  ``score(rs, seeds)`` gives one score per pair (or one row of per-example scores, averaged for
  the choice). Where the seed-mean's best is the smallest or the largest ``r``, the true best
  lies beyond it, so the grid grows there by :data:`GROW` points of its own log-spacing and is
  scored again, until the best is interior. It does not grow down where ``zero`` (the mean score
  of ``r = 0``) is at least the best: no decay won. Returns the grid, its scores and whether the
  best is still at an edge (grown :data:`MAX_GROW` times, capped at :data:`MAX_R`, or zero won).
  """

  def run(new: np.ndarray) -> np.ndarray:
    val = np.asarray(score(np.repeat(new, len(seeds)), np.tile(seeds, len(new))))
    return val.reshape(len(new), len(seeds), *val.shape[1:])

  val = run(rs)
  step = float(np.log10(rs[1] / rs[0])) if len(rs) > 1 else 0.5
  for _ in range(MAX_GROW + 1):
    mean = seed_means(val).mean(1)
    i = int(np.argmax(np.where(np.isfinite(mean), mean, -np.inf)))
    low, high = i == 0, i == len(rs) - 1
    if not (low or high):
      return rs, val, False
    if low and zero >= mean[i]:
      return rs, val, True
    k = np.arange(1, GROW + 1)
    new = rs[0] * 10 ** (-step * k[::-1]) if low else rs[-1] * 10 ** (step * k)
    new = new[new < MAX_R]
    if len(new) == 0 or _ == MAX_GROW:
      return rs, val, True
    more = run(new)
    rs, val = (np.concatenate([new, rs]), np.concatenate([more, val])) if low else (
      np.concatenate([rs, new]), np.concatenate([val, more]))  # fmt: skip
  raise AssertionError("unreachable")


def seed_means(val: Any) -> np.ndarray:
  """``(r, seed)`` means of per-example scores ``(r, seed, examples)`` (float64); as is if 2-D."""
  v = np.asarray(val, np.float64)
  return v.mean(-1) if v.ndim == 3 else v


def choose(point: dict[str, Any], arrays: dict[str, np.ndarray], key: str) -> dict[str, Any]:
  """What the validation scores select at a point: best ``log r`` (mean curve and per seed), and
  whether ``r = 0`` scored at least as well as every ``r`` of the grid."""
  curve = seed_means(arrays[f"{key}/val"])
  zero = seed_means(arrays[f"{key}/zero"]).mean()
  log_rs = np.log10(point["grid_r"])
  return {
    "best_log_r": best_log_r(log_rs, curve.mean(1)),
    "best_log_r_per_seed": [best_log_r(log_rs, curve[:, s]) for s in range(curve.shape[1])],
    "zero_best": bool(zero >= np.nanmax(curve.mean(1))),
  }


def tune_lr(tr: Trainer, name: str, grid_seeds: list[int], width: int) -> dict[str, Any]:
  """The base learning rate: best validation score over candidates × the base r grid (with
  ``r = 0``) on the MLPs, at ``r = 0`` on the transformer (where no decay was best in a trial)."""
  setup = tr.setup
  lrs = setup.lrs[name]
  means = []
  for lr in lrs:
    p = points(setup, lr)[0]
    rs = [0.0] if setup.key == "text" else [0.0, *grid_rs(setup, name, p, lr, width)]
    val = tr.scores(name, p, np.repeat(rs, len(grid_seeds)), np.tile(grid_seeds, len(rs))).val
    means.append(np.asarray(val, np.float64).mean(-1).reshape(len(rs), -1).mean(1).tolist())
  best = int(np.argmax([np.nanmax(m) for m in means]))
  return {"candidates": list(lrs), "val": means, "lr": lrs[best]}


def run_optimizer(tr: Trainer, name: str, args: argparse.Namespace, arrays: dict) -> dict:
  """Every point's validation grid and test runs; per-example scores go to ``arrays``."""
  setup = tr.setup
  grid, n_grid_seeds, n_seeds = args.grid, args.grid_seeds, args.seeds
  if setup.key == "text" and not args.smoke:
    grid, n_grid_seeds, n_seeds = TEXT_BUDGET
  grid_seeds = list(range(n_grid_seeds))
  final_seeds = [100 + s for s in range(n_seeds)]
  tuned = tune_lr(tr, name, grid_seeds, grid)
  out: dict[str, Any] = {"lr_tuning": tuned, "points": []}
  base_lr = tuned["lr"]
  base: dict[str, Any] = {}
  for i, point in enumerate(points(setup, base_lr)):
    key = f"{setup.key}/{name}/{i}"

    def score(r: np.ndarray, s: np.ndarray, point: Point = point) -> np.ndarray:
      return tr.scores(name, point, r, s).val

    zero = score(np.zeros(len(grid_seeds)), np.asarray(grid_seeds))
    rs0 = grid_rs(setup, name, point, base_lr, grid)
    rs, val, edge = bracketed_grid(score, rs0, grid_seeds, zero=float(seed_means(zero).mean()))
    arrays[f"{key}/val"] = val
    arrays[f"{key}/zero"] = zero
    entry: dict[str, Any] = {"axis": point.axis, "factor": point.factor, "lr": point.lr,
                             "steps": point.steps, "n_train": point.n_train,
                             "grid_r": rs.tolist(), "at_grid_edge": edge}  # fmt: skip
    entry.update(choose(entry, arrays, key))
    if i == 0:
      base = entry
    final = {"re-tuned": 0.0 if entry["zero_best"] else 10 ** entry["best_log_r"], "λ = 0": 0.0}
    if setup.key == "text":
      final[f"weight_decay {HABIT}"] = HABIT * point.lr
    elif i > 0:
      for rule, slopes_ in RULES.items():
        final[rule] = 10 ** (base["best_log_r"] + slopes_[point.axis] * math.log10(point.factor))
    distinct = sorted(set(final.values()))
    test = tr.scores(name, point, np.repeat(distinct, len(final_seeds)),
                     np.tile(final_seeds, len(distinct))).test  # fmt: skip
    test = np.asarray(test).reshape(len(distinct), len(final_seeds), -1)
    entry["final"] = {}
    for label, r in final.items():
      arrays[f"{key}/test/{label}"] = test[distinct.index(r)]
      per_seed = seed_means(test[distinct.index(r)][None])[0]
      entry["final"][label] = {"r": r, "test": per_seed.tolist()}
    out["points"].append(entry)
  return out


# --- analysis -------------------------------------------------------------------------------


def edge_side(point: dict[str, Any]) -> int:
  """−1 where the grid's smallest r still won (the true best is smaller), +1 the largest, 0 none."""
  if not point["at_grid_edge"]:
    return 0
  return -1 if point["best_log_r"] <= math.log10(min(point["grid_r"])) + 1e-9 else 1


def slope_bound(xs: Sequence[float], pts: Sequence[dict[str, Any]]) -> str:
  """What the edges make of a least-squares slope: ``"≥"``, ``"≤"``, ``"?"`` or ``""`` (exact).

  A point's weight in the slope is ``x − mean(x)``; a best beyond the grid's low edge (the true
  ``log r`` smaller) at a point of positive weight makes the true slope smaller, and so on.
  """
  centred = np.asarray(xs) - np.mean(xs)
  ways = {int(np.sign(c * edge_side(p))) for c, p in zip(centred, pts, strict=True)} - {0}
  return {frozenset(): "", frozenset({1}): "≥", frozenset({-1}): "≤"}.get(frozenset(ways), "?")


def axis_points(res: dict[str, Any], axis: str) -> tuple[np.ndarray, list[int]]:
  """log10 factors of an axis's five points (the base included) and their indices, sorted."""
  idx = [0] + [i for i, p in enumerate(res["points"]) if p["axis"] == axis]
  idx.sort(key=lambda i: res["points"][i]["factor"])
  return np.log10([res["points"][i]["factor"] for i in idx]), idx


def slopes(res: dict[str, Any], arrays: dict[str, np.ndarray], key: str) -> dict[str, Any]:
  """Per axis: the slope of log best r (least squares over the five points) and a 95 % bootstrap
  interval of it and of a quadratic term: each replicate resamples the grid seeds and the
  validation examples (the same draw at every point: they are shared) and selects again."""
  pts = res["points"]
  val = [np.asarray(arrays[f"{key}/{i}/val"], np.float64) for i in range(len(pts))]
  s, e = val[0].shape[1:]
  seed_w, ex_w = study.resample_counts(s, e, reps=SLOPE_REPS, seed=0)
  out = {}
  for axis in AXES:
    xs, idx = axis_points(res, axis)
    best = np.array([pts[i]["best_log_r"] for i in idx])
    boot = np.empty((SLOPE_REPS, len(idx)))
    for j, i in enumerate(idx):
      curves = np.einsum("nrs,ns->nr", np.tensordot(ex_w, val[i], ([1], [2])), seed_w) / (s * e)
      log_rs = np.log10(pts[i]["grid_r"])
      boot[:, j] = [best_log_r(log_rs, c) for c in curves]
    fit1 = np.polyfit(xs, boot.T, 1)[0]
    fit2 = np.polyfit(xs, boot.T, 2)[0]
    out[axis] = {
      "slope": float(np.polyfit(xs, best, 1)[0]),
      "interval": np.percentile(fit1, [2.5, 97.5]).tolist(),
      "curvature": float(np.polyfit(xs, best, 2)[0]),
      "curvature_interval": np.percentile(fit2, [2.5, 97.5]).tolist(),
      "edge": any(pts[i]["at_grid_edge"] for i in idx),
      "bound": slope_bound(xs, [pts[i] for i in idx]),
    }
  return out


def verdict(r: study.Range) -> str:
  """``holds``, ``lost`` or ``unresolved`` against :data:`MARGIN` (``beat`` if above it)."""
  if r.low > -MARGIN and r.high < MARGIN:
    return "holds"
  if r.high < -MARGIN:
    return "lost"
  if r.low > MARGIN:
    return "beat"
  return "unresolved"


def compare(arrays: dict[str, np.ndarray], key: str, a: str, b: str) -> study.Range:
  """Test score of ``a`` minus ``b`` at a point, its two-way interval (×100: points, nats ×100)."""
  diff = np.asarray(arrays[f"{key}/test/{a}"], np.float64) - np.asarray(arrays[f"{key}/test/{b}"])
  return study.two_way(diff, scale=100.0, reps=TEST_REPS)


def losses(res: dict[str, Any], arrays: dict[str, np.ndarray], key: str) -> dict[str, Any]:
  """Per point: each other setting − re-tuned on test, ``[mean, low, high, verdict]``."""
  out: dict[str, Any] = {}
  for i, p in enumerate(res["points"]):
    others = [k for k in p["final"] if k != "re-tuned"]
    cells = {}
    for k in others:
      rng = compare(arrays, f"{key}/{i}", k, "re-tuned")
      cells[k] = [rng.mean, rng.low, rng.high, verdict(rng)]
    out[point_label(p)] = cells
  return out


def point_label(p: dict[str, Any]) -> str:
  return "base" if p["axis"] == "base" else f"{p['axis']}×{p['factor']:.3g}"


def byte_baselines(data: study.Split, n: int) -> dict[str, float]:
  """Test nats/byte of add-α unigram and bigram tables fitted on the first ``n`` training windows
  (α from 0.01 to 1 chosen on validation)."""
  x, y = data.x_train[:n].ravel(), data.y_train[:n].ravel()

  def unigram(a: float) -> Callable[[np.ndarray, np.ndarray], float]:
    p = np.bincount(y, minlength=256) + a
    return lambda xs, ys: float(-np.mean(np.log(p[ys] / p.sum())))

  def bigram(a: float) -> Callable[[np.ndarray, np.ndarray], float]:
    counts = np.full((256, 256), a)
    np.add.at(counts, (x, y), 1)
    p = counts / counts.sum(1, keepdims=True)
    return lambda xs, ys: float(-np.mean(np.log(p[xs, ys])))

  out = {}
  for name, fit in (("unigram", unigram), ("bigram", bigram)):
    best = min((0.01, 0.03, 0.1, 0.3, 1.0),
               key=lambda a: fit(a)(data.x_val.ravel(), data.y_val.ravel()))  # fmt: skip
    out[name] = fit(best)(data.x_test.ravel(), data.y_test.ravel())
  return out


def analyse(results: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
  """Adds every optimizer's ``slopes`` (MLPs) and ``losses`` to ``results``, from the scores."""
  for skey, entry in results["setups"].items():
    for name, res in entry["optimizers"].items():
      key = f"{skey}/{name}"
      if skey != "text":
        res["slopes"] = slopes(res, arrays, key)
      res["losses"] = losses(res, arrays, key)


# --- report ---------------------------------------------------------------------------------


def _range(cell: Sequence[Any]) -> str:
  return f"{cell[0]:+.2f} [{cell[1]:+.2f}, {cell[2]:+.2f}]"


def _slope(s: dict[str, Any]) -> str:
  """A slope with its interval; † an edge won on the axis; ∩ or ∪ a resolved quadratic term.

  A bound (≥, ≤) has no interval: its bootstrap selected on a grid the best lay beyond.
  """
  if s["bound"]:
    return f"{s['bound']} {s['slope']:+.2f} †"
  lo, hi = s["interval"]
  cell = f"{s['slope']:+.2f}"
  clo, chi = s["curvature_interval"]
  bend = " ∩" if chi < 0 else " ∪" if clo > 0 else ""
  return f"{cell} [{lo:+.2f}, {hi:+.2f}]{bend}" + (" †" if s["edge"] else "")


def _verdict_cell(cell: Sequence[Any]) -> str:
  text = _range(cell)
  return {"holds": f"**{text}** ✓", "lost": f"{text} ✗", "beat": f"{text} ↑"}.get(cell[3], text)


def verdict_counts(results: dict[str, Any]) -> dict[str, dict[str, int]]:
  """Per rule: how many MLP comparisons (off-base points) held, lost or stayed unresolved."""
  counts = {rule: {"holds": 0, "lost": 0, "unresolved": 0, "beat": 0} for rule in RULES}
  for skey, entry in results["setups"].items():
    if skey == "text":
      continue
    for res in entry["optimizers"].values():
      for label, cells in res["losses"].items():
        if label != "base":
          for rule in RULES:
            counts[rule][cells[rule][3]] += 1
  return counts


def markdown(results: dict[str, Any]) -> str:
  """The docs page's tables (``docs/decay_scaling.md``): :func:`mlp_markdown`, then
  :func:`text_markdown`."""
  return mlp_markdown(results) + "\n" + text_markdown(results)


def mlp_markdown(results: dict[str, Any]) -> str:
  """The MLPs' tables: slopes, then what each rule lost against re-tuning, with verdicts."""
  return "\n".join(_mlp_tables(results)) + "\n"


def text_markdown(results: dict[str, Any]) -> str:
  """The transformer's table: baselines, selected r and what no decay and the habit change."""
  return "\n".join(_text_table(results)) + "\n"


def _mlp_tables(results: dict[str, Any]) -> list[str]:
  out = [
    "Slopes of log best r over each axis's five points, with a 95 % bootstrap interval (grid "
    "seeds × validation examples, selected again); ∩ or ∪: a quadratic term resolved from 0 (not "
    "a power law); †: the grid's edge won at a point of the axis; ≥ or ≤: so the slope is a bound"
    " (no interval)."
    " Gain over λ = 0: the base point, test accuracy points, two-way interval.",
    "",
    "| setup | optimizer | base lr | best r | gain over λ = 0 | lr | T | N |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for skey, entry in results["setups"].items():
    if skey == "text":
      continue
    for name, res in entry["optimizers"].items():
      base = res["points"][0]
      gain = res["losses"]["base"]["λ = 0"]
      gain_cell = _range([-gain[0], -gain[2], -gain[1]])
      cells = [entry["title"], name, f"{res['lr_tuning']['lr']:.3g}",
               f"{10 ** base['best_log_r']:.3g}" + (" (0 won)" if base["zero_best"] else ""),
               gain_cell] + [_slope(res["slopes"][a]) for a in AXES]  # fmt: skip
      out.append("| " + " | ".join(cells) + " |")
  seeds = len(next(iter(results["setups"].values()))["optimizers"]["AdamW"]["points"][0]["final"]
              ["re-tuned"]["test"])  # fmt: skip
  out += ["", f"Lost by following a rule instead of re-tuning (test accuracy points, {seeds} "
          f"seeds × the test set, two-way 95 % interval). **Bold ✓**: holds (the interval inside "
          f"±{MARGIN:g}); ✗: lost (below −{MARGIN:g}); ↑: beat re-tuning (above +{MARGIN:g}); "
          "plain: unresolved.", "",
          "| setup | optimizer | point | " + " | ".join(RULE_TITLES.values()) + " |",
          "|---|---|---|" + "---|" * len(RULES)]  # fmt: skip
  for skey, entry in results["setups"].items():
    if skey == "text":
      continue
    for name, res in entry["optimizers"].items():
      for label, cells in res["losses"].items():
        if label != "base":
          row = [_verdict_cell(cells[rule]) for rule in RULES]
          out.append(f"| {entry['title']} | {name} | {label} | " + " | ".join(row) + " |")
  return out


def _text_table(results: dict[str, Any]) -> list[str]:
  entry = results["setups"].get("text")
  if entry is None:
    return []
  res = entry["optimizers"]["AdamW"]
  habit = f"weight_decay {HABIT}"
  seeds = len(res["points"][0]["final"]["re-tuned"]["test"])
  out = [f"The transformer, one epoch, lr {res['lr_tuning']['lr']:.3g} (tuned at r = 0): test "
         "nats/byte; then each setting's test loss *below* that at the selected r (positive: "
         f"better), in nats/byte ×100, with a two-way 95 % interval ({seeds} test seeds × the "
         "test windows).", "",
         "| training bytes | steps | unigram | bigram | selected r | test loss | λ = 0 | "
         f"{habit} |",
         "|---|---|---|---|---|---|---|---|"]  # fmt: skip
  for p in sorted(res["points"], key=lambda p: p["factor"]):
    cells = res["losses"][point_label(p)]
    base = entry["baselines"][point_label(p)]
    chosen = "0" if p["zero_best"] else f"{10 ** p['best_log_r']:.3g}"
    loss = -np.mean(p["final"]["re-tuned"]["test"])
    same = p["final"]["λ = 0"]["r"] == p["final"]["re-tuned"]["r"]
    zero = "(selected)" if same else _range(cells["λ = 0"])
    out.append(f"| {p['n_train'] * 33:,} | {p['steps']} | {base['unigram']:.3f} | "
               f"{base['bigram']:.3f} | {chosen} | {loss:.3f} | {zero} | "
               f"{_range(cells[habit])} |")  # fmt: skip
  return out


def report(results: dict[str, Any]) -> list[str]:
  """What the run prints: the tables, in plain text."""
  return [TITLE, markdown(results)]


def plot(results: dict[str, Any], path: Path) -> None:
  """Best r against each MLP axis (black; hollow where the grid's edge won), the rules drawn."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import NullLocator

  rows = [(s, n) for s in results["setups"] if s != "text"
          for n in results["setups"][s]["optimizers"]]  # fmt: skip
  if not rows:
    return
  plt.rcParams.update({"font.size": 13, "axes.labelsize": 13, "xtick.labelsize": 11})
  plt.rcParams.update({"ytick.labelsize": 12})  # readable at a page's width (the figure shrinks)
  fig, axes = plt.subplots(len(rows), 3, figsize=(11, 2.9 * len(rows) + 1.0), squeeze=False)
  titles = {"lr": "learning rate / base", "T": "steps T / base", "N": "train set N / base (T ∝ N)"}
  for i, (skey, name) in enumerate(rows):
    res = results["setups"][skey]["optimizers"][name]
    pts = res["points"]
    for j, axis in enumerate(AXES):
      ax = axes[i][j]
      xs, idx = axis_points(res, axis)
      f = 10**xs
      best = np.array([pts[k]["best_log_r"] for k in idx])
      grey = np.array([pts[k]["best_log_r_per_seed"] for k in idx])
      ax.plot(np.repeat(f, grey.shape[1]), 10 ** grey.ravel(), "o", color="0.75", ms=3)
      ax.plot(f, 10**best, "k-", label="measured: best on validation")
      edge = np.array([pts[k]["at_grid_edge"] for k in idx])
      ax.plot(f[~edge], 10 ** best[~edge], "ko")
      ax.plot(f[edge], 10 ** best[edge], "o", mfc="white", mec="k", label="(at the grid's edge)")
      base = pts[0]["best_log_r"]
      for rule, style in zip(RULES, ("--", ":", "-."), strict=True):
        ax.plot(f, 10 ** (base + RULES[rule][axis] * xs), style, label=rule)
      ax.set_xscale("log")
      ax.set_yscale("log")
      ax.xaxis.set_minor_locator(NullLocator())
      ax.set_xticks(f, [f"×{v:.2g}" for v in f])
      if i == len(rows) - 1:
        ax.set_xlabel(titles[axis])
      if j == 0:
        ax.set_ylabel(f"{results['setups'][skey]['title']}\n{name}\nbest r per step", fontsize=12)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=12, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / fig.get_figheight()))
  fig.savefig(path, dpi=110)
  plt.close(fig)


# --- running ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--smoke", action="store_true", help="tiny sizes, for the tests")
  p.add_argument(
    "--out", type=Path, default=study.OUT / "decay_scaling", help="results and figures"
  )
  p.add_argument("--only", default=None, help="comma-separated setup keys (default: all)")
  p.add_argument("--grid", type=int, default=None, help="r values per grid (default 6)")
  p.add_argument("--grid-seeds", type=int, default=None, help="seeds per grid point (default 3)")
  p.add_argument("--seeds", type=int, default=None, help="test seeds (default 10)")
  p.add_argument(
    "--from", dest="saved", type=Path, default=None,
    help="re-derive the tables from a results.json (and the .npz beside it)",
  )  # fmt: skip
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


def load(saved: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """A run's ``results.json`` and the per-example scores saved beside it (same name, ``.npz``)."""
  with np.load(saved.with_suffix(".npz")) as z:
    arrays = {k: z[k] for k in z.files}
  return json.loads(saved.read_text()), arrays


def write(results: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.json").write_text(json.dumps(results, indent=1))
  np.savez_compressed(out / "results.npz", **arrays)
  (out / "tables.md").write_text(markdown(results))
  plot(results, out / "best_r.png")


def rederive(saved: Path, out: Path | None) -> dict[str, Any]:
  """``--from``: the analysis again on a run's saved scores (nothing is trained)."""
  results, arrays = load(saved)
  analyse(results, arrays)
  print("\n".join(report(results)))
  if out is not None:
    write(results, arrays, out)
  return results


def compact(arrays: dict[str, np.ndarray], setup: Setup) -> None:
  """Stores the MLPs' 0/1 scores as booleans and the text losses as float32 (exact either way)."""
  for k, v in arrays.items():
    if k.startswith(f"{setup.key}/"):
      arrays[k] = v.astype(np.float32) if setup.key == "text" else v.astype(bool)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  if args.saved is not None:
    return rederive(args.saved, args.out)
  _share_compilations()
  start = time.perf_counter()
  results: dict[str, Any] = {"setups": {}, "args": {k: str(v) for k, v in vars(args).items()}}
  arrays: dict[str, np.ndarray] = {}
  only = None if args.only is None else set(args.only.split(","))
  if args.smoke and only is None:
    only = {"mnist1d", "text"}
  for setup in setups(args.smoke):
    if only is not None and setup.key not in only:
      continue
    tr = Trainer(setup, args.smoke)
    entry: dict[str, Any] = {"title": setup.title, "optimizers": {}}
    if tr.info is not None:
      entry["text"] = {"root": tr.info.root, "files": len(tr.info.files), "bytes": tr.info.bytes,
                       "sha256": tr.info.sha256}  # fmt: skip
      print(f"text: {len(tr.info.files)} files, {tr.info.bytes:,} bytes, sha256 "
            f"{tr.info.sha256[:16]}… from {tr.info.root}", flush=True)  # fmt: skip
      entry["baselines"] = {}
      for f in TEXT_SIZES:
        label = point_label({"axis": "base" if f == 1.0 else "size", "factor": f})
        entry["baselines"][label] = byte_baselines(tr.data, round(setup.n_train * f))
    for name in setup.optimizers:
      t0 = time.perf_counter()
      entry["optimizers"][name] = run_optimizer(tr, name, args, arrays)
      entry["optimizers"][name]["seconds"] = time.perf_counter() - t0
      print(f"{setup.key} {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    compact(arrays, setup)
    results["setups"][setup.key] = entry
    results["seconds"] = time.perf_counter() - start
    analyse(results, arrays)
    if args.out is not None:  # after each setup: a long run keeps what it finished
      write(results, arrays, args.out)
  print("\n".join(report(results)))
  print(f"\ntotal: {results['seconds']:.0f} s")
  return results


if __name__ == "__main__":
  main()
