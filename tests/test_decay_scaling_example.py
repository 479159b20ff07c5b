"""``examples/decay_scaling.py``: its selection rule, and the docs page against the saved run.

The page's tables are not typed by hand: they are :func:`decay_scaling.markdown` of the run's
``results.json`` (saved as ``docs/decay_scaling_results.json``), and its slopes and losses are
recomputed here from the raw per-seed scores that run saved, so a number on the page that the
data do not give fails this file. The run itself is checked at ``--smoke`` size in
``tests/test_examples.py::test_decay_scaling_smoke``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
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
def results():
  return json.loads(RESULTS.read_text())


@pytest.mark.parametrize("vertex", [-3.3, -2.71, -2.2])
def test_best_log_r_is_the_vertex_of_a_parabola_through_the_grid(ds, vertex):
  log_rs = np.linspace(-4.0, -1.5, 6)
  val = -((log_rs - vertex) ** 2)
  assert ds.best_log_r(log_rs, val) == pytest.approx(vertex, abs=1e-9)


def test_best_log_r_at_the_grid_edge_is_the_edge(ds):
  log_rs = np.linspace(-4.0, -1.5, 6)
  assert ds.best_log_r(log_rs, -log_rs) == log_rs[0]  # decreasing: the smallest r won
  assert ds.best_log_r(log_rs, log_rs) == log_rs[-1]


def _scorer(peak_log_r: float, calls: list[int]):
  """A validation score peaked at ``peak_log_r``, the same for every seed; counts its calls."""

  def score(rs, seeds):
    calls.append(len(rs))
    return -((np.log10(rs) - peak_log_r) ** 2) + 0.0 * np.asarray(seeds)

  return score


@pytest.mark.parametrize(("peak", "grows"), [(-5.9, 3), (-2.8, 0), (-0.9, 1)])
def test_the_grid_grows_until_the_best_r_is_inside_it(ds, peak, grows):
  rs = 10 ** np.linspace(-4.0, -1.5, 6)
  calls: list[int] = []
  grid, val, edge = ds.bracketed_grid(_scorer(peak, calls), rs, [0, 1, 2])
  assert not edge
  assert np.all(np.diff(np.log10(grid)) == pytest.approx(0.5))  # one spacing, sorted
  assert val.shape == (len(grid), 3)
  assert ds.best_log_r(np.log10(grid), val.mean(1)) == pytest.approx(peak, abs=1e-9)
  assert len(grid) == 6 + ds.GROW * grows
  assert calls == [18] + [3 * ds.GROW] * grows  # only the new points are trained


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
def test_a_winning_edge_off_the_base_makes_the_slope_a_bound(ds, lo, hi, bound):
  assert ds.slope_bound(_point(*lo), _point(*hi)) == bound


def test_a_diverged_run_never_wins(ds):
  log_rs = np.linspace(-4.0, -1.5, 6)
  assert ds.best_log_r(log_rs, np.array([0.1, 0.2, 0.3, 0.2, 0.1, np.nan])) == pytest.approx(-3.0)
  assert ds.best_log_r(log_rs, np.array([0.1, 0.2, 0.3, np.nan, 0.1, 0.0])) == log_rs[2]
  assert ds.best_log_r(log_rs, np.array([np.nan, 0.2, 0.3, 0.4, 0.1, 0.0])) == pytest.approx(
    -2.625,
    abs=1e-9,  # the vertex of the parabola through (-3, 0.3), (-2.5, 0.4), (-2, 0.1)
  )


def test_the_rules_predict_from_the_base_point(ds, results):
  """At every off-base point each rule's r is the base best r times factor**slope."""
  for entry in results["setups"].values():
    for res in entry["optimizers"].values():
      base = res["points"][0]
      for p in res["points"][1:]:
        for rule, slope in ds.RULES.items():
          want = 10 ** base["best_log_r"] * p["factor"] ** slope[p["axis"]]
          assert p["final"][rule]["r"] == pytest.approx(want, rel=1e-9), (p["axis"], rule)


def test_saved_slopes_and_losses_follow_from_the_saved_scores(ds, results):
  """Reselect every best r from the per-seed validation grid and recompute what is reported."""
  for entry in results["setups"].values():
    for name, res in entry["optimizers"].items():
      for p in res["points"]:
        val = np.asarray(p["val"], np.float32)  # the run selected on its float32 scores
        log_rs = np.log10(p["grid_r"])
        assert ds.best_log_r(log_rs, val.mean(1)) == pytest.approx(p["best_log_r"], abs=1e-12)
        per_seed = [ds.best_log_r(log_rs, val[:, s]) for s in range(val.shape[1])]
        np.testing.assert_allclose(per_seed, p["best_log_r_per_seed"], atol=1e-12)
        assert math.isclose(p["final"]["re-tuned"]["r"], 10 ** p["best_log_r"], rel_tol=1e-9)
      assert ds.slopes(res) == res["slopes"], name
      np.testing.assert_allclose(
        [v for d in ds.losses(res, 100.0).values() for mh in d.values() for v in mh],
        [v for d in res["losses"].values() for mh in d.values() for v in mh],
        rtol=1e-12,
      )


def test_the_page_shows_the_tables_of_the_saved_run(ds, results):
  page = PAGE.read_text()
  tables = ds.markdown(results)
  assert tables in page, "docs/decay_scaling.md: paste the output of decay_scaling.markdown()"
  assert (ROOT / "docs" / "images" / "decay_scaling_best_r.png").read_bytes()[:4] == b"\x89PNG"


def test_the_saved_run_is_the_full_protocol(results):
  assert {k: results["args"][k] for k in ("smoke", "grid", "grid_seeds", "seeds")} == {
    "smoke": "False",
    "grid": "6",
    "grid_seeds": "3",
    "seeds": "10",
  }
  assert set(results["setups"]) == {"mnist1d", "mnist1d_si", "text"}
  assert len(results["setups"]["text"]["text"]["sha256"]) == 64


def test_from_re_derives_the_page_from_the_saved_run_without_training(ds, results, tmp_path):
  pytest.importorskip("matplotlib", reason="the figure needs matplotlib (the [examples] extra)")
  again = ds.main(["--from", str(RESULTS), "--out", str(tmp_path)])
  assert again == results
  assert (tmp_path / "tables.md").read_text() == ds.markdown(results)
  assert (tmp_path / "best_r.png").read_bytes()[:4] == b"\x89PNG"


# --- the counts and baselines the page's prose states ------------------------------------------


def _count(results, axis_keys, predicate):
  hits = total = 0
  for setup in ("mnist1d", "mnist1d_si"):
    for res in results["setups"][setup]["optimizers"].values():
      for key in axis_keys:
        losses = res["losses"][key]
        total += 1
        hits += bool(predicate(losses))
  return hits, total


def test_the_prose_counts_are_the_tables(results):
  """ "lost least in 10 of the 12 MLP rows" (N), "lost most in 9 of the 12 MLP rows (8 of them
  resolved)" (T), and not resolved from 0 in 3 of the transformer's 4 N rows (r fixed)."""
  text = PAGE.read_text()

  def least(ls):
    return ls["timescale"][0] >= max(m for m, _ in ls.values())

  def most(ls):
    return ls["timescale"][0] <= min(m for m, _ in ls.values())

  def resolved_most(ls):
    return most(ls) and abs(ls["timescale"][0]) > ls["timescale"][1]

  assert _count(results, ("N×0.5", "N×2"), least) == (10, 12)
  assert "lost least of\n  the three rules in 10 of the 12 MLP rows" in text
  assert _count(results, ("T×0.25", "T×4"), most) == (9, 12)
  assert _count(results, ("T×0.25", "T×4"), resolved_most) == (8, 12)
  assert "lost most in 9 of the 12 MLP rows (8 of them resolved" in text
  text_rows = results["setups"]["text"]["optimizers"].values()
  unresolved = [abs(r["losses"][k]["r fixed"][0]) <= r["losses"][k]["r fixed"][1]
                for r in text_rows for k in ("N×0.5", "N×2")]  # fmt: skip
  assert sum(unresolved) == 3


def test_the_transformer_barely_beats_byte_count_baselines(results):
  """The page's baseline table: add-α unigram and bigram tables fitted on the base point's 40
  training windows, α chosen on validation, scored on the 512 test windows."""
  sys.path.insert(0, str(ROOT / "examples"))
  import study

  data, _ = study.load_stdlib_text(n_train=80, n_val=256, n_test=512)
  n = results["setups"]["text"]["optimizers"]["AdamW"]["points"][0]["n_train"]
  x, y = data.x_train[:n].ravel(), data.y_train[:n].ravel()

  def unigram(a):
    p = np.bincount(y, minlength=256) + a
    return lambda xs, ys: -np.mean(np.log(p[ys] / p.sum()))

  def bigram(a):
    counts = np.full((256, 256), a)
    np.add.at(counts, (x, y), 1)
    p = counts / counts.sum(1, keepdims=True)
    return lambda xs, ys: -np.mean(np.log(p[xs, ys]))

  scores = {}
  for name, fit in (("unigram", unigram), ("bigram", bigram)):
    best = min((0.01, 0.03, 0.1, 0.3, 1.0),
               key=lambda a: fit(a)(data.x_val.ravel(), data.y_val.ravel()))  # fmt: skip
    scores[name] = fit(best)(data.x_test.ravel(), data.y_test.ravel())
  base = {k: r["points"][0]["final"] for k, r in results["setups"]["text"]["optimizers"].items()}
  transformer = {k: -np.mean(b["re-tuned"]["test"]) for k, b in base.items()}
  no_decay = -np.mean(base["AdamW"]["λ = 0"]["test"])
  table = PAGE.read_text()
  for label, value in (("byte frequencies (unigram)", scores["unigram"]),
                       ("bigram: frequencies given the previous byte", scores["bigram"]),
                       ("the transformer, AdamW at the selected `r`", transformer["AdamW"]),
                       ("the transformer, Adam + L2 at the selected λ", transformer["Adam + L2"]),
                       ("the transformer with no decay", no_decay)):  # fmt: skip
    assert f"| {label} | {value:.2f} |" in table, (label, value)
  assert transformer["AdamW"] - scores["bigram"] < 0.01  # no better than a bigram table
