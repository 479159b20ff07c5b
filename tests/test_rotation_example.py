"""``docs/rotation.md``'s claims about the real models, against the run it shows.

The page prints its numbers from ``docs/rotation_results.json`` when it is built; what its prose
says about them is checked here on the same file: under AdamW the scale-invariant MLP's hidden
layers turn within a factor 1.5 of the predicted equilibrium angle (faster) and of one another,
the transformer's block matrices near the prediction and its head slowest; under Adam + L2 the
layers' angles spread further apart, on both models. The run itself is checked at ``--smoke``
size in ``tests/test_examples.py::test_rotation_smoke``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "docs" / "rotation_results.json").read_text())


def test_the_saved_run_is_the_full_one_and_its_figure_is_there():
  assert RESULTS["meta"]["smoke"] is False and RESULTS["meta"]["steps"] == 4000
  assert (ROOT / "docs" / "images" / "rotation.png").read_bytes()[:4] == b"\x89PNG"
  # The transformer's AdamW equilibrium is past the run's end, as the page says.
  assert RESULTS["transformer"]["AdamW"]["equilibrium"]["steps"] == 5000


@pytest.mark.parametrize("layer", ["dense_0/kernel", "dense_1/kernel"])
def test_adamw_s_scale_invariant_hidden_layers_turn_near_the_predicted_angle(layer):
  """Within a factor 1.5, and faster: real gradients are not the model's pure noise."""
  run = RESULTS["mlp"]["AdamW"]
  ratio = run["final"][layer]["angle"] / run["equilibrium"]["angular_update"]
  assert 1 < ratio < 1.5, ratio


def test_mlp_layers_within_1_5x_and_the_transformer_blocks_near_the_prediction():
  mlp = RESULTS["mlp"]["AdamW"]
  assert mlp["across_layers"] < 1.5
  run = RESULTS["transformer"]["AdamW"]
  predicted = run["equilibrium"]["angular_update"]
  blocks = {k: v["angle"] / predicted for k, v in run["final"].items() if k.startswith("block")}
  assert len(blocks) == 8 and all(0.75 < r < 1.5 for r in blocks.values()), blocks
  slowest = min(run["final"], key=lambda k: run["final"][k]["angle"])
  assert slowest == "head/kernel"


def test_adam_l2_s_spread_and_its_fastest_layer():
  assert RESULTS["mlp"]["Adam + L2"]["across_layers"] > 7.5  # "8x"
  run = RESULTS["transformer"]["Adam + L2"]
  assert 50 < run["across_layers"] < 60  # "55x"
  fastest = max(run["final"], key=lambda k: run["final"][k]["angle"])
  assert fastest == "block_1/attn/kernel" and 0.3 < run["final"][fastest]["angle"] < 0.4


@pytest.mark.parametrize("setup", ["mlp", "transformer"])
def test_adam_l2_spreads_the_layers_angles_further_than_adamw(setup):
  runs = RESULTS[setup]
  assert runs["Adam + L2"]["across_layers"] > runs["AdamW"]["across_layers"]
  for run in runs.values():  # the summary is the final angles' max over min
    angles = [v["angle"] for v in run["final"].values()]
    np.testing.assert_allclose(run["across_layers"], max(angles) / min(angles), rtol=1e-12)
