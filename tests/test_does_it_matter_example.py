"""``examples/does_it_matter.py``: the docs page and the front door against the saved run.

The page's tables are not typed by hand: they are :func:`does_it_matter.markdown` of the run's
``results.json`` (saved as ``docs/does_it_matter_results.json``), which keeps each selection's
per-example test correctness, so every interval is recomputed here, including the two-way ones
that resample the test examples. The run itself is checked at ``--smoke`` size in
``tests/test_examples.py::test_does_it_matter_smoke``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "does_it_matter_results.json"
PAGE = ROOT / "docs" / "does_it_matter.md"

pytest.importorskip("scipy", reason="the study's intervals need scipy (the [examples] extra)")


@pytest.fixture(scope="module")
def dim():
  return importlib.import_module("does_it_matter")  # examples/ is on sys.path (tests/conftest.py)


@pytest.fixture(scope="module")
def results():
  return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def derived(dim, tmp_path_factory):
  """``--from``: the page's tables and figures re-derived from the saved run, nothing trained."""
  pytest.importorskip("matplotlib", reason="the figures need matplotlib (the [examples] extra)")
  out = tmp_path_factory.mktemp("does_it_matter")
  return dim.main(["--from", str(RESULTS), "--out", str(out)]), out


@pytest.fixture(scope="module")
def tables(derived):
  return (derived[1] / "tables.md").read_text()


def test_the_saved_run_is_the_full_protocol(results):
  assert results["args"] == {"seeds": 10, "grid_seeds": 3, "steps": 0, "smoke": False}
  assert list(results["setups"]) == ["mnist1d", "mnist1d_si", "mnist"]
  for setup in results["setups"].values():
    for r in setup["opt"].values():
      assert len(r["lrs"]) == 5 and len(r["lams"]) == 8 and r["lams"][0] == 0.0
      assert np.shape(r["val"]) == (5, 8, 3)


def test_the_saved_correctness_is_the_saved_accuracy(dim, results):
  for key, n_test in (("mnist1d", 1000), ("mnist1d_si", 1000), ("mnist", 3000)):
    for r in results["setups"][key]["opt"].values():
      for acc, correct in (("test", "correct"), ("test_lam0", "correct_lam0")):
        c = dim.unpack(r[correct])
        assert c.shape == (10, n_test)
        np.testing.assert_allclose(c.mean(1), r[acc], atol=1e-6)
      np.testing.assert_allclose(dim.unpack(r["correct_reversed"]).mean(1), r["test_reversed"])


def test_packing_round_trips_and_refuses_what_is_not_0_or_1(dim):
  c = (np.random.default_rng(0).random((3, 37)) > 0.4).astype(np.float32)
  np.testing.assert_array_equal(dim.unpack(dim._pack(c)), c)
  with pytest.raises(ValueError, match="0 or 1"):
    dim._pack(c * 0.5)


def test_the_page_shows_the_tables_of_the_saved_run(tables):
  page, at = PAGE.read_text(), 0
  for part in tables.rstrip("\n").split("\n\n"):  # in order, with the page's prose between
    at = page.find(part, at)
    assert at >= 0, f"docs/does_it_matter.md: paste this part of markdown():\n{part}"
  for png in ("accuracy", "grids", "mechanism"):
    assert (ROOT / "docs" / "images" / f"does_it_matter_{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_from_re_derives_the_page_from_the_saved_run_without_training(derived, results):
  again, out = derived
  assert again == results
  for png in ("accuracy", "grids", "mechanism"):
    assert (out / f"does_it_matter_{png}.png").read_bytes()[:4] == b"\x89PNG"


# --- the prose and the front door, against the saved run ---------------------------------------


def _words(path: Path) -> str:
  return " ".join(path.read_text().split())


def _span(iv) -> str:
  return f"{iv.low:+.2f} to {iv.high:+.2f}".replace("-", "−")


def test_the_headline_numbers_on_the_page_and_the_front_door_are_the_saved_run(dim, results):
  mlp = results["setups"]["mnist1d"]
  adamw, sgdm = dim.paired(mlp, "AdamW", "Adam + L2"), dim.paired(mlp, "SGDm + L2", "Adam + L2")
  behind = dim.paired(mlp, "SGDm + L2", "AdamW")
  si = dim.paired(results["setups"]["mnist1d_si"], "AdamW", "Adam + L2")
  page, readme, index = (_words(p) for p in (PAGE, ROOT / "README.md", ROOT / "docs/index.md"))
  assert f"by {adamw.mean:.2f} points (95 % interval {_span(adamw)} over 10 seeds" in page
  stayed = f"while AdamW stayed {behind.mean:.2f} points ({_span(behind)}) behind"
  assert f"by {sgdm.mean:.2f} ({_span(sgdm)}), {stayed}" in page
  assert f"shrank to {si.mean:.2f} points and was not resolved ({_span(si)})" in page
  assert not si.resolved
  assert (
    f"{adamw.mean:.1f} test-accuracy points (95 % interval {_span(adamw)} over 10 seeds" in readme
  )
  assert f"by {sgdm.mean:.1f} ({_span(sgdm)}); on 1,000" in readme
  assert f"measured {adamw.mean:.1f} ({_span(adamw)}) and {sgdm.mean:.1f} ({_span(sgdm)})" in index


def test_the_prose_counts_are_the_tables(dim, results):
  setups = results["setups"]
  floors = [
    dim.paired(s, n, n, key_b="correct_reversed") for s in setups.values() for n in s["opt"]
  ]
  assert len(floors) == 12 and not any(iv.resolved for iv in floors)  # "all 12 ... include 0"
  resolved = {
    key: {f"{a} − {b}" for a, b in dim.PAIRS if dim.paired(s, a, b).resolved}
    for key, s in setups.items()
  }
  assert resolved == {
    "mnist1d": {"AdamW − Adam + L2", "SGDm + L2 − Adam + L2", "AdamW − SGDm + L2"},
    "mnist1d_si": {"SGDm + L2 − Adam + L2"},  # "the second barely"
    "mnist": set(),  # "no difference between the four was resolved"
  }
  unresolved_gains = {
    (key, n)
    for key, s in setups.items()
    for n in s["opt"]
    if not dim.paired(s, n, n, key_b="correct_lam0").resolved
  }
  assert unresolved_gains == {("mnist", "Adam + L2"), ("mnist", "AdamW")}
  barely = dim.paired(setups["mnist1d_si"], "Adam + L2", "Adam + L2", key_b="correct_lam0")
  assert f"(+{barely.mean:.2f}) is borderline ({_span(barely)})" in _words(PAGE)
  # "no difference in test accuracy between the four optimizers was resolved" on MNIST: all six.
  names = list(setups["mnist"]["opt"])
  pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
  assert len(pairs) == 6 and not any(dim.paired(setups["mnist"], a, b).resolved for a, b in pairs)


def test_the_coupling_caveat_counts_edge_and_diverged_rows(results):
  edge, diverged = 0, []
  for key, s in results["setups"].items():
    for name, r in s["opt"].items():
      val = np.asarray(r["val"]).mean(-1)  # (lr, λ)
      best = np.argmax(val[:, 1:], 1) + 1
      edge += bool(np.any((best == 1) | (best == val.shape[1] - 1)))
      diverged += [(key, name, r["lrs"][i]) for i in range(len(val)) if val[i].max() < 0.15]
  assert edge == 6  # "6 of the 12 optimizer × setup grids have one"
  si = np.asarray(results["setups"]["mnist1d_si"]["opt"]["Adam + L2"]["val"]).mean(-1)
  assert sum(np.argmax(si[:, 1:], 1) == 0) == 2  # "two of its five rows sit at the lower edge"
  assert diverged == [("mnist1d", "SGDm + L2", 1.0)]
  assert "6 of the 12 optimizer × setup grids have one" in _words(PAGE)


def test_the_mechanism_bins_span_what_the_page_says(results):
  """ "On MNIST-1D the eight bins span less than half a decade of gradient RMS ... on MNIST they
  span 2.6 decades", and the never-lit pixels' Adam + L2 shrinkage "log 4.4"."""
  for key, setup in results["setups"].items():
    for name, m in setup["mechanism"].items():
      g = np.exp(np.mean([np.log(c[0]) for c in m["curves"]], 0))
      decades = np.log10(g.max() / g.min())
      assert (decades < 0.5) if key != "mnist" else (round(decades, 1) == 2.6), (key, name)
  lowest = np.mean(
    [c[1][0] for c in results["setups"]["mnist"]["mechanism"]["Adam + L2"]["curves"]]
  )
  assert round(lowest, 1) == 4.4 and round(np.exp(lowest), -1) == 80
