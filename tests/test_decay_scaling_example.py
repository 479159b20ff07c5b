"""``examples/decay_scaling.py``: its selection rule, and the docs page against the saved run.

The page's tables are not typed by hand: they are :func:`decay_scaling.markdown` of the run's
``results.json`` (saved as ``docs/decay_scaling_results.json``, with every run's per-example
scores in ``docs/decay_scaling_results.npz``). Here every selection is made again from the saved
validation scores, every slope, interval and verdict is recomputed from the saved scores, and the
page's prose counts are counted, so a number on the page that the data do not give fails this
file. The run itself is checked at ``--smoke`` size in
``tests/test_examples.py::test_decay_scaling_smoke``.
"""

from __future__ import annotations

import copy
import importlib
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "decay_scaling_results.json"
PAGE = ROOT / "docs" / "decay_scaling.md"

pytest.importorskip("scipy", reason="the study's intervals need scipy (the [examples] extra)")


@pytest.fixture(scope="module")
def ds():
  return importlib.import_module("decay_scaling")  # examples/ is on sys.path (tests/conftest.py)


@pytest.fixture(scope="module")
def saved(ds):
  return ds.load(RESULTS)


@pytest.fixture(scope="module")
def results(saved):
  return saved[0]


# --- the selection rule -------------------------------------------------------------------------


@pytest.mark.parametrize("vertex", [-3.3, -2.71, -2.2])
def test_best_log_r_is_the_vertex_of_a_parabola_through_the_grid(ds, vertex):
  log_rs = np.linspace(-4.0, -1.5, 6)
  val = -((log_rs - vertex) ** 2)
  assert ds.best_log_r(log_rs, val) == pytest.approx(vertex, abs=1e-9)


def test_best_log_r_at_the_grid_edge_is_the_edge(ds):
  log_rs = np.linspace(-4.0, -1.5, 6)
  assert ds.best_log_r(log_rs, -log_rs) == log_rs[0]  # decreasing: the smallest r won
  assert ds.best_log_r(log_rs, log_rs) == log_rs[-1]


def test_a_diverged_run_never_wins(ds):
  log_rs = np.linspace(-4.0, -1.5, 6)
  assert ds.best_log_r(log_rs, np.array([0.1, 0.2, 0.3, 0.2, 0.1, np.nan])) == pytest.approx(-3.0)
  assert ds.best_log_r(log_rs, np.array([0.1, 0.2, 0.3, np.nan, 0.1, 0.0])) == log_rs[2]
  assert ds.best_log_r(log_rs, np.array([np.nan, 0.2, 0.3, 0.4, 0.1, 0.0])) == pytest.approx(
    -2.625,
    abs=1e-9,  # the vertex of the parabola through (-3, 0.3), (-2.5, 0.4), (-2, 0.1)
  )


def _scorer(peak_log_r: float, calls: list[int], examples: int = 0):
  """A validation score peaked at ``peak_log_r``, the same for every seed (and example)."""

  def score(rs, seeds):
    calls.append(len(rs))
    s = -((np.log10(rs) - peak_log_r) ** 2) + 0.0 * np.asarray(seeds)
    return np.repeat(s[:, None], examples, 1) if examples else s

  return score


@pytest.mark.parametrize("examples", [0, 4])
@pytest.mark.parametrize(("peak", "grows"), [(-5.9, 3), (-2.8, 0), (-0.9, 1)])
def test_the_grid_grows_until_the_best_r_is_inside_it(ds, peak, grows, examples):
  rs = 10 ** np.linspace(-4.0, -1.5, 6)
  calls: list[int] = []
  grid, val, edge = ds.bracketed_grid(_scorer(peak, calls, examples), rs, [0, 1, 2])
  assert not edge
  assert np.all(np.diff(np.log10(grid)) == pytest.approx(0.5))  # one spacing, sorted
  assert val.shape == (len(grid), 3, examples) if examples else (len(grid), 3)
  assert ds.best_log_r(np.log10(grid), ds.seed_means(val).mean(1)) == pytest.approx(peak, abs=1e-9)
  assert len(grid) == 6 + ds.GROW * grows
  assert calls == [18] + [3 * ds.GROW] * grows  # only the new points are trained


def test_the_grid_does_not_grow_down_where_no_decay_won(ds):
  rs = 10 ** np.linspace(-4.0, -1.5, 6)
  calls: list[int] = []
  grid, _, edge = ds.bracketed_grid(_scorer(-8.0, calls), rs, [0, 1], zero=0.0)
  assert edge and len(grid) == 6 and calls == [12]


def test_the_grid_stops_at_max_r_and_says_so(ds):
  rs = 10 ** np.linspace(-3.0, -0.5, 6)  # the best r = 10 is beyond any weight's size
  grid, _, edge = ds.bracketed_grid(_scorer(1.0, []), rs, [0])
  assert edge and grid.max() < ds.MAX_R


def _point(best_log_r: float, edge: bool) -> dict:
  return {"grid_r": [1e-4, 1e-3, 1e-2], "best_log_r": best_log_r, "at_grid_edge": edge}


@pytest.mark.parametrize(
  ("lo", "hi", "bound"),
  [
    ((-3.0, False), (-3.0, False), ""),
    ((-4.0, True), (-3.0, False), "≥"),  # lo's best lies below the grid: the slope is larger
    ((-3.0, False), (-2.0, True), "≥"),  # hi's best lies above it
    ((-2.0, True), (-3.0, False), "≤"),
    ((-3.0, False), (-4.0, True), "≤"),
    ((-4.0, True), (-4.0, True), "?"),  # one way at lo, the other at hi
  ],
)
def test_a_winning_edge_off_the_centre_makes_the_slope_a_bound(ds, lo, hi, bound):
  xs = [-1.0, -0.5, 0.0, 0.5, 1.0]
  pts = [_point(*lo), _point(-3.0, False), _point(-3.0, True), _point(-3.0, False), _point(*hi)]
  assert ds.slope_bound(xs, pts) == bound  # an edge at the centre (weight 0) moves no slope


def test_a_bound_moves_the_least_squares_slope_the_way_it_says(ds):
  """Push each edge point's best one decade beyond its edge: the slope moves as the bound says."""
  xs = np.log10([0.125, 0.25, 0.5, 1.0, 2.0])  # the N axis: not centred on the base
  rng = np.random.default_rng(0)
  for _ in range(50):
    best = rng.normal(-3, 0.5, 5)
    edges = rng.integers(-1, 2, 5)
    pts = [{"grid_r": [10 ** (b - 1 + (e < 0)), 10 ** (b + (e < 0))], "best_log_r": b,
            "at_grid_edge": bool(e)} for b, e in zip(best, edges, strict=True)]  # fmt: skip
    moved = np.polyfit(xs, best + edges, 1)[0] - np.polyfit(xs, best, 1)[0]
    bound = ds.slope_bound(xs, pts)
    if bound == "≥":
      assert moved > 0
    elif bound == "≤":
      assert moved < 0
    elif bound == "":
      assert moved == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
  ("low", "high", "want"),
  [(-0.9, 0.9, "holds"), (-1.1, 0.2, "unresolved"), (-3.0, -1.2, "lost"), (-1.5, -0.5,
   "unresolved"), (1.2, 2.0, "beat"), (-0.2, 1.4, "unresolved")],
)  # fmt: skip
def test_a_verdict_needs_the_interval_inside_or_outside_the_margin(ds, low, high, want):
  assert ds.MARGIN == 1.0
  assert ds.verdict(ds.study.Range((low + high) / 2, low, high)) == want


# --- the saved run ------------------------------------------------------------------------------


def _mlp_runs(results):
  for skey, entry in results["setups"].items():
    if skey != "text":
      for name, res in entry["optimizers"].items():
        yield skey, name, res


def test_the_saved_run_is_the_full_protocol(ds, results):
  assert {k: results["args"][k] for k in ("smoke", "grid", "grid_seeds", "seeds")} == {
    "smoke": "False",
    "grid": "6",
    "grid_seeds": "3",
    "seeds": "10",
  }
  assert set(results["setups"]) == {"mnist1d", "mnist1d_si", "text"}
  assert len(results["setups"]["text"]["text"]["sha256"]) == 64
  for _, _, res in _mlp_runs(results):
    for axis in ds.AXES:
      xs, _ = ds.axis_points(res, axis)
      assert len(xs) == 5 and xs[-1] - xs[0] >= 1.0  # five points, a decade or more
  sizes = [p["n_train"] for p in results["setups"]["text"]["optimizers"]["AdamW"]["points"]]
  assert sorted(sizes) == [round(8192 * f) for f in ds.TEXT_SIZES]


def test_every_selection_follows_from_the_saved_validation_scores(ds, saved):
  """Base lr, best r (mean curve and per seed), 'no decay won', and the re-tuned r tested."""
  results, arrays = saved
  for skey, entry in results["setups"].items():
    for name, res in entry["optimizers"].items():
      tuning = res["lr_tuning"]
      assert tuning["lr"] == tuning["candidates"][int(np.argmax([max(v) for v in tuning["val"]]))]
      assert res["points"][0]["lr"] == tuning["lr"]
      for i, p in enumerate(res["points"]):
        key = f"{skey}/{name}/{i}"
        assert ds.choose(p, arrays, key) == {
          k: p[k] for k in ("best_log_r", "best_log_r_per_seed", "zero_best")
        }
        want = 0.0 if p["zero_best"] else 10 ** p["best_log_r"]
        assert math.isclose(p["final"]["re-tuned"]["r"], want, rel_tol=1e-12)
        for label, f in p["final"].items():  # the per-seed test means are the saved examples'
          np.testing.assert_allclose(
            f["test"], ds.seed_means(arrays[f"{key}/test/{label}"][None])[0]
          )


def test_the_rules_predict_from_the_base_point(ds, results):
  """At every off-base point each rule's r is the base best r times factor**slope."""
  for _, _, res in _mlp_runs(results):
    base = res["points"][0]
    for p in res["points"][1:]:
      for rule, slope in ds.RULES.items():
        want = 10 ** base["best_log_r"] * p["factor"] ** slope[p["axis"]]
        assert p["final"][rule]["r"] == pytest.approx(want, rel=1e-9), (p["axis"], rule)


def test_slopes_intervals_and_verdicts_follow_from_the_saved_scores(ds, saved):
  results, arrays = saved
  again = copy.deepcopy(results)
  ds.analyse(again, arrays)
  assert again == results


def test_the_page_shows_the_tables_of_the_saved_run(ds, results):
  page = PAGE.read_text()
  for part in (ds.mlp_markdown, ds.text_markdown):
    assert part(results) in page, f"docs/decay_scaling.md: paste decay_scaling.{part.__name__}()"
  assert (ROOT / "docs" / "images" / "decay_scaling_best_r.png").read_bytes()[:4] == b"\x89PNG"


def test_from_re_derives_the_page_from_the_saved_run_without_training(ds, results, tmp_path):
  pytest.importorskip("matplotlib", reason="the figure needs matplotlib (the [examples] extra)")
  again = ds.main(["--from", str(RESULTS), "--out", str(tmp_path)])
  assert again == results
  assert (tmp_path / "tables.md").read_text() == ds.markdown(results)
  assert (tmp_path / "best_r.png").read_bytes()[:4] == b"\x89PNG"


def test_the_text_baselines_are_tables_fitted_on_the_same_bytes(ds, results):
  """Recomputed for the smallest and the base data size from the study's own data."""
  setup = next(s for s in ds.setups(False) if s.key == "text")
  data = ds.Trainer(setup, smoke=False).data  # every size is a prefix of its training windows
  for label, n in (("size×0.25", 2048), ("base", 8192)):
    got = ds.byte_baselines(data, n)
    assert got == pytest.approx(results["setups"]["text"]["baselines"][label], abs=1e-9), label


# --- the counts the page's prose states --------------------------------------------------------


def _verdicts(ds, results, axis):
  """Per rule, the verdicts of an axis's 24 MLP comparisons (6 optimizer-setups × 4 points)."""
  out = {rule: [] for rule in ds.RULES}
  for _, _, res in _mlp_runs(results):
    for label, cells in res["losses"].items():
      if label.startswith(f"{axis}×"):
        for rule in ds.RULES:
          out[rule].append(cells[rule])
  return out


def _cells(ds, results, label):
  """Per rule, the six optimizer-setups' cells at one point (e.g. ``"T×0.25"``)."""
  return {rule: [res["losses"][label][rule] for *_, res in _mlp_runs(results)] for rule in ds.RULES}


def _page():
  return " ".join(PAGE.read_text().split())  # the prose, lines joined


def test_the_prose_counts_on_the_n_axis_are_the_tables(ds, results):
  text = _page()
  n = _verdicts(ds, results, "N")
  assert [c[3] for c in n["timescale"]].count("lost") == 0
  lost = [c[0] for c in n["r fixed"] if c[3] == "lost"]
  assert [c[3] for c in n["λ fixed"]].count("lost") == len(lost) == 9
  assert f"{-max(lost):.1f} to {-min(lost):.1f}" == "2.6 to 4.9"
  assert "lost in 9 of 24, by 2.6 to 4.9 points" in text
  n2 = _cells(ds, results, "N×2")["timescale"]
  assert all(c[3] == "unresolved" for c in n2) and "unresolved in all 6 setups" in text
  si_adamw = results["setups"]["mnist1d_si"]["optimizers"]["AdamW"]["losses"]["N×2"]["timescale"]
  phrase = f"({si_adamw[0]:.2f}, interval {si_adamw[1]:.2f} to {si_adamw[2]:.2f}"
  assert si_adamw[2] < 0 and phrase.replace("-", "−") in text
  p8 = next(p for p in results["setups"]["mnist1d"]["optimizers"]["AdamW"]["points"]
            if p["axis"] == "N" and p["factor"] == 0.125)  # fmt: skip
  rule = results["setups"]["mnist1d"]["optimizers"]["AdamW"]["losses"]["N×0.125"]["timescale"]
  assert p8["at_grid_edge"] and f"({p8['final']['re-tuned']['r']:.2f} per step)" in text
  p8_sgd = next(p for p in results["setups"]["mnist1d"]["optimizers"]["SGDm + L2"]["points"]
                if p["axis"] == "N" and p["factor"] == 0.125)  # fmt: skip
  assert p8_sgd["at_grid_edge"] and f"{p8_sgd['final']['re-tuned']['r']:.2f}" == "0.16"
  assert f"under AdamW the `1/N` rule tested {rule[0]:.1f} points better there" in text


def test_the_prose_counts_on_the_t_and_lr_axes_are_the_tables(ds, results):
  text = _page()
  t = _verdicts(ds, results, "T")
  quarter = _cells(ds, results, "T×0.25")["timescale"]
  t_lost = [c for c in quarter if c[3] == "lost"]
  assert [c[3] for c in t["timescale"]].count("lost") == len(t_lost) == 5  # all at T×¼
  assert f"{-max(c[0] for c in t_lost):.1f} to {-min(c[0] for c in t_lost):.1f}" == "4.2 to 14.6"
  assert "lost in 5 of its 6 comparisons there (by 4.2 to 14.6 points)" in text
  assert not any(c[3] == "lost" for c in t["r fixed"] + t["λ fixed"])
  longer = [c for label in ("T×2", "T×4") for rule in ("r fixed", "timescale")
            for c in _cells(ds, results, label)[rule]]  # fmt: skip
  assert len(longer) == 24 and not any(c[3] == "lost" for c in longer)  # "neither ... any of 12"
  lr = _verdicts(ds, results, "lr")
  assert all([c[3] for c in lr[rule]].count("lost") == 1 for rule in ds.RULES)
  assert sum(c[2] < 0 for c in lr["λ fixed"]) == 7 and sum(c[2] < 0 for c in lr["r fixed"]) == 1
  l2 = [cells["λ fixed"] for _, name, res in _mlp_runs(results) if name != "AdamW"
        for k, cells in res["losses"].items() if k.startswith("lr×")]  # fmt: skip
  assert len(l2) == 16 and sum(c[2] < 0 for c in l2) == 5
  assert "re-tuning in 7 of 24 comparisons, 5 of them under the L2 optimizers" in text
  assert "resolved worse than re-tuning in 5 of 16 comparisons, keeping `r` fixed in none" in text
  si_t4 = results["setups"]["mnist1d_si"]["optimizers"]["AdamW"]["losses"]["T×4"]["r fixed"]
  assert si_t4[3] == "unresolved" and si_t4[2] < 0
  assert f"{si_t4[0]:.2f}, interval {si_t4[1]:.2f} to {si_t4[2]:.2f}".replace("-", "−") in text
  counts = ds.verdict_counts(results)
  assert sum(c["unresolved"] for c in counts.values()) == 181
  assert sum(sum(c.values()) for c in counts.values()) == 216
  assert sum(c["beat"] for c in counts.values()) == 2
  assert "181 of its 216 cells" in text and "in one comparison (2 cells)" in text
  widths = [c[2] - c[1] for rule in ds.RULES for axis in ds.AXES
            for c in _verdicts(ds, results, axis)[rule]]  # fmt: skip
  assert f"(median {np.median(widths):.1f} points)" in text


def test_the_prose_slopes_are_the_tables(ds, results):
  text = _page()
  slopes = {(s, name): res["slopes"] for s, name, res in _mlp_runs(results)}
  assert all(s["T"]["interval"][0] <= 0 <= s["T"]["interval"][1] for s in slopes.values())
  si = [s for (setup, _), s in slopes.items() if setup == "mnist1d_si"]
  assert all(s["T"]["interval"][0] <= -1 for s in si)  # "the scale-invariant MLP's include −1"
  ns = [s["N"] for s in slopes.values()]
  est = [s["slope"] for s in ns if not s["bound"]]
  with_interval = [s["interval"] for s in ns if not s["bound"]]
  assert f"{max(est):.2f} to {min(est):.2f}".replace("-", "−") == "−0.96 to −1.33"
  assert len(with_interval) == 4 and all(lo < -1 < hi for lo, hi in with_interval)
  assert sum(hi < 0 for _, hi in with_interval) == 2
  bounds = sorted((s["slope"], s["bound"]) for s in ns if s["bound"])
  assert [f"{b} {v:.2f}" for v, b in bounds] == ["≤ -1.43", "≤ -1.32"]
  assert "all four intervals include −1 (two exclude 0)" in text
  assert "bounds at a grid edge, ≤ −1.32 and ≤ −1.43" in text
  for name in ("AdamW", "Adam + L2"):
    lo, hi = slopes["mnist1d", name]["lr"]["interval"]
    assert lo > 0 and hi < 1, name  # excludes both rules' slopes
  for name in ("AdamW", "Adam + L2"):  # "the largest candidate learning rate (0.03) won"
    tuning = results["setups"]["mnist1d_si"]["optimizers"][name]["lr_tuning"]
    assert tuning["lr"] == max(tuning["candidates"]) == 0.03
  si_lr = [s["lr"]["interval"] for s in si]
  assert all(lo < 0 < hi for lo, hi in si_lr)  # "include 0 in all three optimizers"
  assert sum(lo < 1 < hi for lo, hi in si_lr) == 2  # "and +1 in two"
  adamw = [results["setups"][k]["optimizers"]["AdamW"] for k in ("mnist1d", "mnist1d_si")]
  rs = [10 ** res["points"][0]["best_log_r"] for res in adamw]
  wd = [r / res["lr_tuning"]["lr"] for r, res in zip(rs, adamw, strict=True)]
  assert f"`r` = {rs[0]:.3f} and {rs[1]:.3f} per step, `weight_decay = r/lr` ≈ {wd[0]:.1f} and " \
    f"{wd[1]:.1f}" in text  # fmt: skip


def _text_points(results):
  lm = results["setups"]["text"]
  pts = sorted(lm["optimizers"]["AdamW"]["points"], key=lambda p: p["factor"])
  labels = ["base" if p["axis"] == "base" else f"size×{p['factor']:.3g}" for p in pts]
  return lm, pts, labels


def test_the_prose_about_the_transformer_is_the_table(ds, saved):
  results, arrays = saved
  text = _page()
  lm, pts, labels = _text_points(results)
  loss = np.array([-np.mean(p["final"]["re-tuned"]["test"]) for p in pts])
  over_unigram = np.array([lm["baselines"][k]["unigram"] for k in labels]) - loss
  over_bigram = np.array([lm["baselines"][k]["bigram"] for k in labels]) - loss
  assert f"by {over_unigram.min():.2f} to {over_unigram.max():.2f} nats/byte" in text
  assert (over_bigram[:2] < 0).all() and (over_bigram[2:] > 0).all()
  assert "from 270 KB up (by {:.2f}, {:.2f} and {:.2f} nats/byte)".format(*over_bigram[2:]) in text
  assert [p["n_train"] * 33 for p in pts][2] == 270_336 and 270_336 // 1_320 == 204
  assert sum(p["zero_best"] for p in pts) == 4
  base = lm["optimizers"]["AdamW"]["losses"]["base"]["λ = 0"]
  assert base[1] > 0
  got = f"by {base[0] / 100:.4f} nats/byte, interval {base[1] / 100:.4f} to {base[2] / 100:.4f}"
  assert got in text
  costs = []
  for i, _ in enumerate(lm["optimizers"]["AdamW"]["points"]):
    key = f"text/AdamW/{i}"
    costs.append(ds.seed_means(arrays[f"{key}/zero"]).mean() - ds.seed_means(arrays[f"{key}/val"])
                 .mean(1)[-1])  # fmt: skip
  assert f"{min(costs):.3f} to {max(costs):.2f} nats/byte on validation" in text
  habit = [lm["optimizers"]["AdamW"]["losses"][k]["weight_decay 0.1"] for k in labels]
  assert max(abs(c[0]) for c in habit) < 1.0  # "less than 0.01 nats/byte" (×100 in the table)
  assert sum(c[2] < 0 for c in habit) == 3 and not any(c[1] > 0 for c in habit)
  assert f"{max(c[2] for c in habit) / 100:.2f} gain" == "0.03 gain"
  assert (
    "by less than 0.01 nats/byte at every size (a resolved cost at 3 sizes, unresolved at 2" in text
  )
  lr = lm["optimizers"]["AdamW"]["lr_tuning"]["lr"]
  assert f"`r = {ds.HABIT * lr:.0e}`".replace("e-04", "e-4") in text
  assert 1 / (ds.HABIT * lr) > max(p["steps"] for p in pts)  # a timescale longer than every run
  assert "205 times the text" in text  # 270,336 bytes at the base against the old 1,320


def test_the_front_door_numbers_are_the_saved_run(ds, results):
  readme = " ".join((ROOT / "README.md").read_text().split())
  n = _verdicts(ds, results, "N")
  assert [c[3] for c in n["timescale"]].count("lost") == 0
  assert f"keeping it fixed lost {[c[3] for c in n['r fixed']].count('lost')} of 24" in readme
  t = _verdicts(ds, results, "T")
  assert not any(c[3] == "lost" for c in t["r fixed"]), "keeping r fixed ... never lost"
  lm, pts, labels = _text_points(results)
  gaps = [lm["baselines"][k]["bigram"] + np.mean(p["final"]["re-tuned"]["test"])
          for k, p in zip(labels, pts, strict=True)]  # fmt: skip
  assert gaps[0] < 0 and gaps[1] < 0 and min(gaps[2:]) > 0 and max(gaps) == gaps[-1]
  assert f"better by up to {gaps[-1]:.2f} nats/byte at 1 MB" in readme
  assert "worse than a bigram table below 270 KB" in readme
  assert f"chose no decay at {sum(p['zero_best'] for p in pts)} of 5 data sizes" in readme
