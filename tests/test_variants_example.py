"""examples/variants.py runs end to end in its --smoke mode and its numbers are sane."""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import pytest

pytestmark = pytest.mark.slow  # the example runs in a subprocess: not in `pytest --quick`

pytest.importorskip("sklearn", reason="examples/variants.py loads scikit-learn's digits")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "variants.py"


@pytest.fixture(scope="module")
def smoke():
  spec = importlib.util.spec_from_file_location("variants_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up there
  try:
    spec.loader.exec_module(module)
    yield module, module.main(["--smoke"])
  finally:
    sys.modules.pop(spec.name, None)


def test_smoke_covers_every_variant(smoke):
  module, result = smoke
  assert [r["variant"] for r in result.rows] == list(module.VARIANTS)
  for r in result.rows:
    for k in ("test_acc", "train_acc", "weight_norm"):
      assert math.isfinite(r[k]), (r["variant"], k)


def test_smoke_learns(smoke):
  # 3 epochs of Adam on digits are far above chance (10%) without decay and with mild L2.
  _, result = smoke
  rows = {r["variant"]: r for r in result.rows}
  assert rows["adam"]["test_acc"] > 0.6
  assert rows["adam+l2"]["test_acc"] > 0.6


def test_smoke_decay_shrinks_weights(smoke):
  # The smoke timescale is half an epoch: every decoupled variant must end with smaller
  # kernels than plain Adam, and cautious decay (which skips coordinates) with larger ones than
  # AdamW.
  _, result = smoke
  rows = {r["variant"]: r for r in result.rows}
  for v in ("adamw", "adamw-cautious", "adamw-proximal", "adamc"):
    assert rows[v]["weight_norm"] < rows["adam"]["weight_norm"], v
  assert rows["adamw-cautious"]["weight_norm"] > rows["adamw"]["weight_norm"]


def test_smoke_diagnostics(smoke, capsys):
  module, result = smoke
  assert result.mask.decayed == 64 * module.SMOKE.hidden + module.SMOKE.hidden * 10
  assert {r.path for r in result.l2_strength.rows} == {"Dense_0/kernel", "Dense_1/kernel"}
  fractions = {
    name.split(",")[0] + name.split(",")[1]: r.fraction for name, r in result.precision.items()
  }
  assert fractions["bfloat16 rate 1e-05 (lr 1e-4 x wd 0.1)"] == 1.0
  assert fractions["float32 rate 1e-05 (lr 1e-4 x wd 0.1)"] == 0.0
  text = module.format_diagnostics(result, module.SMOKE)
  assert "What bias_mask decays" in text and "round to no change" in text
