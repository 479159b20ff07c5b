"""Smoke tests for ``examples/`` (the demo included) and the Colab notebook.

Each example runs in a subprocess with ``--smoke`` (a few steps), on the CPU,
writing its files to a temporary directory; the tests check the numbers each
one prints, not just its exit status. The notebook is executed headless with 8
simulated CPU devices, as on a Colab TPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _subprocess import run_python

pytestmark = pytest.mark.slow  # subprocesses / builds: not in `pytest --quick`

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytest.importorskip("flax", reason="the examples need flax (pip install -e '.[examples]')")
pytest.importorskip("sklearn", reason="the examples need scikit-learn (the digits data)")


def _env(**extra: str) -> dict[str, str]:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  env["JAX_PLATFORMS"] = "cpu"
  env.update(extra)
  return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
  return run_python(args, cwd=cwd, env=_env(MPLBACKEND="Agg"))


# The smoke runs check that each script runs end to end and prints numbers of the right form and
# size; they are compile-bound (a few steps of many programs), so they compile with XLA's LLVM
# backend optimizations off (``jax_disable_most_optimizations``; HLO passes such as fusion still
# run). Measured on the 2-core VM: the does_it_matter smoke 72 s -> 24 s alone, this file
# 295 -> 218 worker-seconds in a full run. The numbers the library promises are tested
# in-process at full optimization, and must be: the whole suite at this setting fails 7 tests
# (the float64 SGD equivalences under a schedule drift by 2.6e-9 instead of < 1e-12, and one
# float32 bit-identity by 1 ulp), so only these subprocesses use it. Set
# JAX_DISABLE_MOST_OPTIMIZATIONS=0 to smoke-test at full optimization.
def _smoke_env() -> dict[str, str]:
  env = _env(MPLBACKEND="Agg")
  env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
  return env


# The smoke run of each test below: test name -> command line ({out}: its
# output directory). They are started together, two at a time (the CI machine
# has 2 cores), as soon as the first of them is needed.
SMOKE_RUNS = {
  # The demo runs with its default output, from a copy of examples/ (so that the repository's
  # out/ is left alone): the file goes to the copy's ../out/, not to the working directory.
  "test_demo_cli_smoke": ["{copy}/examples/demo.py", "--smoke"],
  "test_quickstart_smoke": [str(EXAMPLES / "quickstart.py"), "--smoke"],
  "test_flax_linen_smoke": [str(EXAMPLES / "flax_linen.py"), "--smoke"],
  "test_flax_nnx_smoke": [str(EXAMPLES / "flax_nnx.py"), "--smoke"],
  "test_finetune_anchor_smoke": [str(EXAMPLES / "finetune_anchor.py"), "--smoke"],
  "test_hparam_grid_smoke": [
    str(EXAMPLES / "hparam_grid.py"),
    "--smoke",
    "--n-lr=8",
    "--n-lambda=8",
    "--output={out}/grid.png",
  ],
  "test_does_it_matter_smoke": [
    str(EXAMPLES / "does_it_matter.py"),
    "--smoke",
    "--no-progress",
    "--out={out}",
  ],
  "test_decay_scaling_smoke": [str(EXAMPLES / "decay_scaling.py"), "--smoke", "--out={out}"],
  "test_rotation_smoke": [str(EXAMPLES / "rotation.py"), "--smoke", "--out={out}"],
}


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
  """``{test name: (output dir, repository copy, future of its CompletedProcess)}``."""
  selected = {item.name for item in request.session.items}
  runs = {}
  with ThreadPoolExecutor(max_workers=2) as pool:
    for name, argv in SMOKE_RUNS.items():
      if name in selected:
        out = tmp_path_factory.mktemp(name)
        copy = tmp_path_factory.mktemp(f"{name}-repo")
        if any("{copy}" in a for a in argv):
          (copy / "examples").mkdir()
          for script in ("demo.py", "study.py"):
            shutil.copy(EXAMPLES / script, copy / "examples" / script)
        argv = [a.replace("{out}", str(out)).replace("{copy}", str(copy)) for a in argv]
        runs[name] = (out, copy, pool.submit(run_python, argv, cwd=out, env=_smoke_env()))
    yield runs
    for *_, future in runs.values():
      future.cancel()


@pytest.fixture
def smoke(request, smoke_runs) -> tuple[Path, subprocess.CompletedProcess[str]]:
  """This test's smoke run: its output directory (its working directory) and finished process."""
  out, _, future = smoke_runs[request.node.name]
  return out, future.result()


@pytest.fixture
def repository_copy(request, smoke_runs) -> Path:
  """Where this test's smoke run found its script: a copy of the repository's examples/."""
  return smoke_runs[request.node.name][1]


def _text(pattern: str, text: str) -> str:
  m = re.search(pattern, text, re.M)
  assert m, f"{pattern!r} not found in:\n{text}"
  return m.group(1)


def _number(pattern: str, text: str) -> float:
  return float(_text(pattern, text))


def _assert_png(path: Path) -> None:
  assert path.is_file(), f"{path} was not written"
  assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"


def _needs_plotting() -> None:
  pytest.importorskip("matplotlib", reason="the example writes a PNG (pip install matplotlib)")


# --- examples/demo.py ----------------------------------------------------------


def test_demo_cli_smoke(smoke, repository_copy):
  _needs_plotting()
  pytest.importorskip("tqdm", reason="the demo shows a tqdm progress bar")
  pytest.importorskip("mnist1d", reason="the demo's part 2 trains on MNIST-1D (examples extra)")
  out, proc = smoke
  for name in ("SGD + L2", "SGD + decoupled", "Adam + L2", "Adam + decoupled"):
    row = rf"^{re.escape(name)}\s+0\.\d+\s+0\.\d+\s+\d+\.\d+\s+\d+\.\d+$"
    assert re.search(row, proc.stdout, re.M), proc.stdout
  assert re.search(r"^max \|SGD \+ L2 .* \(equivalent: \S+ of the distance", proc.stdout, re.M)
  assert re.search(r"^max \|Adam \+ L2 .* \(not equivalent: \S+x the distance", proc.stdout, re.M)
  sgd = _number(r"max \|SGD \+ L2 - SGD \+ decoupled\|\s+= (\S+)", proc.stdout)
  adam = _number(r"max \|Adam \+ L2 - Adam \+ decoupled\| = (\S+)", proc.stdout)
  assert sgd < 1e-5, proc.stdout
  assert adam > 1e3 * max(sgd, 1e-9), proc.stdout
  # Part 2: the four optimizers on MNIST-1D, with intervals and the paired differences.
  for name in ("SGDm + L2", "SGDW", "Adam + L2", "AdamW"):
    row = rf"^{re.escape(name)} +test acc +\d+\.\d % \[\d+\.\d, \d+\.\d\]  \(lr="
    assert re.search(row, proc.stdout, re.M), proc.stdout
  pair = r"^  .* − .*: [-+]\d+\.\d\d \[[-+]\d+\.\d\d, [-+]\d+\.\d\d\] points"
  assert len(re.findall(pair, proc.stdout, re.M)) == 3, proc.stdout  # two-way intervals
  assert "100%" in proc.stderr  # the progress bar ran to the end
  # By default the figure goes to the repository's git-ignored out/, never the cwd.
  written = Path(_text(r"^figure written to (.+)$", proc.stdout))
  assert written == repository_copy / "out" / "demo.png", proc.stdout
  _assert_png(written)
  assert not any(out.iterdir()), f"the demo wrote into its working directory: {list(out.iterdir())}"


# --- examples/*.py -------------------------------------------------------------


def test_quickstart_smoke(smoke):
  _, proc = smoke
  assert re.search(r"SGD .*equivalent at every step; max \|Δw\| = \S+", proc.stdout)
  assert _number(r"Adam .*differ from step (\d+)", proc.stdout) == 1
  assert _number(r"Adam .*max \|Δw\| = (\S+)", proc.stdout) > 1e-3


def test_finetune_anchor_smoke(smoke):
  """The fine-tuning study runs end to end: a table row per regime, accuracies in [0, 100]."""
  _, proc = smoke
  rows = re.findall(r"^(none|to zero|to pretrained)\s+(\S+)\s+(\S+) ±", proc.stdout, re.M)
  assert [r[0] for r in rows] == ["none", "to zero", "to pretrained"], proc.stdout
  assert all(0.0 <= float(acc) <= 100.0 for _, _, acc in rows)
  assert proc.stdout.count("±") >= 3 + 6  # the table and six paired differences


def test_flax_linen_smoke(smoke):
  _, proc = smoke
  accs = re.findall(r"train acc (\S+)\s+test acc (\S+)", proc.stdout)
  assert len(accs) == 2 and accs[0] == accs[1], proc.stdout
  assert _number(r"SGD \+ decoupled\)\| = (\S+)", proc.stdout) < 1e-5


def test_flax_nnx_smoke(smoke):
  _, proc = smoke
  assert len(re.findall(r"train acc \S+\s+test acc \S+", proc.stdout)) == 3, proc.stdout
  assert _number(r"max \|Adam \+ decoupled - optax\.adamw\| = (\S+)", proc.stdout) < 1e-5
  assert _number(r"max \|Adam \+ L2 - Adam \+ decoupled\|\s+= (\S+)", proc.stdout) > 1e-4


def test_hparam_grid_smoke(smoke):
  _needs_plotting()
  out, proc = smoke
  assert "8 lr x 8 λ = 64 runs per optimizer" in proc.stdout
  for name in ("Adam + L2", "AdamW", "SGD + L2", "SGDW"):
    assert re.search(rf"^{re.escape(name)}: 64 runs in", proc.stdout, re.M), proc.stdout
  assert len(re.findall(r"slope d log10 λ\*/d log10 lr", proc.stdout)) == 4
  _assert_png(out / "grid.png")


def test_does_it_matter_smoke(smoke):
  _needs_plotting()
  pytest.importorskip("mnist1d", reason="the study's data: pip install -e '.[examples]'")
  out, proc = smoke
  text = proc.stdout
  tables = (out / "tables.md").read_text()
  assert tables in text
  assert "**MNIST-1D, MLP**" in tables
  for name in ("SGDm + L2", "SGDW", "Adam + L2", "AdamW"):
    assert re.search(rf"^\| {re.escape(name)} \| \S+ \| \S+ \| ", tables, re.M), tables
  # The four paired differences, each a mean and a two-way interval.
  assert len(re.findall(r"^\| \S.* − .* \| \**[-+]\d+\.\d\d \[", tables, re.M)) == 4, tables
  results = json.loads((out / "results.json").read_text())
  setup = results["setups"]["mnist1d"]
  assert results["args"]["seeds"] == 3 and set(setup["opt"]) == {
    "SGDm + L2",
    "SGDW",
    "Adam + L2",
    "AdamW",
  }
  adamw = setup["opt"]["AdamW"]
  # The noise floor's twins differ by rounding only: nonzero, tiny.
  assert all(0 < r["twin_max_diff"] < 1e-3 for r in setup["opt"].values()), setup
  # The saved per-example correctness is the saved accuracy (3 seeds × 1,000 test sequences).
  assert adamw["correct"]["shape"] == [3, 1000]
  # The mechanism on even 30 steps: L2 through Adam shrinks high-gradient weights less.
  slopes = {n: np.nanmean(m["slopes"]) for n, m in setup["mechanism"].items()}
  assert slopes["Adam + L2"] < -0.5 < slopes["AdamW"], slopes
  for png in ("accuracy", "grids", "mechanism"):
    _assert_png(out / f"does_it_matter_{png}.png")


def test_decay_scaling_smoke(smoke):
  _needs_plotting()
  out, proc = smoke
  text = proc.stdout
  assert re.search(r"^text: \d+ files, [\d,]+ bytes, sha256 [0-9a-f]{16}", text, re.M), text
  assert "| MNIST-1D, MLP | AdamW | T×4 |" in text  # the verdict table, printed
  results = json.loads((out / "results.json").read_text())
  res = results["setups"]["mnist1d"]["optimizers"]["AdamW"]
  axes = [p["axis"] for p in res["points"]]
  assert axes == ["base", *(a for a in ("lr", "T", "N") for _ in range(4))]
  assert set(res["slopes"]) == {"lr", "T", "N"}
  assert set(res["losses"]["T×4"]) == {"λ = 0", "λ fixed", "r fixed", "timescale"}
  assert {c[3] for cells in res["losses"].values() for c in cells.values()} <= {
    "holds", "lost", "unresolved", "beat"}  # fmt: skip
  # The rules' predictions at T×4 from the base point's best r: same r for the first two,
  # a quarter of it for the timescale rule.
  base = res["points"][0]
  t4 = next(p for p in res["points"] if p["axis"] == "T" and p["factor"] == 4.0)
  np.testing.assert_allclose(t4["final"]["r fixed"]["r"], 10 ** base["best_log_r"], rtol=1e-9)
  np.testing.assert_allclose(t4["final"]["timescale"]["r"], 10 ** base["best_log_r"] / 4, rtol=1e-9)
  assert t4["steps"] == 4 * base["steps"]
  n2 = next(p for p in res["points"] if p["axis"] == "N" and p["factor"] == 2.0)
  assert (n2["steps"], n2["n_train"]) == (2 * base["steps"], 2 * base["n_train"])  # T ∝ N
  lm = results["setups"]["text"]
  assert len(lm["text"]["sha256"]) == 64
  sizes = sorted(p["n_train"] for p in lm["optimizers"]["AdamW"]["points"])
  assert sizes == [64, 128, 256, 512, 1024]
  assert set(lm["baselines"]["base"]) == {"unigram", "bigram"}
  with np.load(out / "results.npz") as arrays:  # every run's per-example scores
    assert arrays["mnist1d/AdamW/0/test/re-tuned"].shape == (2, 1000)
    assert arrays["text/AdamW/0/val"].shape[1:] == (2, 64)
  _assert_png(out / "best_r.png")


def test_rotation_smoke(smoke):
  _needs_plotting()
  out, proc = smoke
  for setup in ("mlp", "transformer"):
    for name in ("AdamW", "Adam + L2"):
      assert re.search(rf"^{setup} +{re.escape(name)} +val loss \d", proc.stdout, re.M), proc.stdout
  results = json.loads((out / "results.json").read_text())
  run = results["mlp"]["AdamW"]
  assert len(run["trace"]["step"]) == 20 // 10 and run["trace"]["step"][-1] == 20
  assert set(run["final"]) == set(run["trace"]["angle"]) == {
    "dense_0/kernel", "dense_1/kernel", "dense_2/kernel",
  }  # fmt: skip
  assert (
    run["equilibrium"]["angular_update"] > 0 and "equilibrium" not in results["mlp"]["Adam + L2"]
  )
  _assert_png(out / "rotation.png")


# --- examples/colab_tpu.ipynb ---------------------------------------------------


def _cells(nb) -> list[tuple[str, str]]:
  return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_colab_notebook_matches_its_jupytext_source():
  jupytext = pytest.importorskip("jupytext", reason="pairing check needs jupytext")
  ipynb = jupytext.read(EXAMPLES / "colab_tpu.ipynb")
  py = jupytext.read(EXAMPLES / "colab_tpu.py")
  assert _cells(ipynb) == _cells(py), (
    "examples/colab_tpu.ipynb and colab_tpu.py are out of sync: run "
    "`jupytext --sync examples/colab_tpu.py`"
  )
  assert any("install_optaxdecay(OPTAXDECAY_SPEC)" in src for kind, src in _cells(ipynb))


@pytest.mark.parametrize("spec", ["missing", "not-a-project"])
def test_colab_install_cell_raises_and_says_what_to_set_when_it_cannot_install(tmp_path, spec):
  """On Colab the first cell installs the package; when pip cannot (no checkout there, or not a
  project), the cell raises instead of printing and carrying on to a failing import."""
  jupytext = pytest.importorskip("jupytext", reason="reading the notebook needs jupytext")
  cell = next(c.source for c in jupytext.read(EXAMPLES / "colab_tpu.py").cells
              if "def install_optaxdecay" in c.source)  # fmt: skip
  target = tmp_path / spec
  if spec == "not-a-project":
    target.mkdir()  # a folder pip cannot install
  script = (
    "import os, sys, types\n"
    "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    f"os.environ['OPTAXDECAY_SPEC'] = {str(target)!r}\n"
    f"exec(compile({cell!r}, 'cell', 'exec'))\n"
  )
  proc = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), check=False
  )
  assert proc.returncode != 0, proc.stdout
  error = {"missing": "FileNotFoundError: No optaxdecay checkout at", "not-a-project": (
    "RuntimeError: pip could not install optaxdecay from")}[spec]  # fmt: skip
  assert error in proc.stderr and "OPTAXDECAY_SPEC" in proc.stderr, proc.stderr[-2000:]


def test_colab_notebook_runs_on_8_simulated_devices(tmp_path):
  pytest.importorskip("ipykernel", reason="executing the notebook needs ipykernel")
  nbformat = pytest.importorskip("nbformat", reason="executing the notebook needs nbformat")
  nbclient = pytest.importorskip("nbclient", reason="executing the notebook needs nbclient")
  _needs_plotting()
  nb = nbformat.read(EXAMPLES / "colab_tpu.ipynb", as_version=4)
  client = nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  )
  env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=8", OPTAXDECAY_SMOKE="1")
  env.pop("MPLBACKEND", None)  # keep the kernel's inline backend: the plot must be an output
  client.execute(env=env)  # raises CellExecutionError on any failing cell
  text = "".join(
    out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []) if "text" in out
  )
  assert "8 device(s)" in text, text
  assert re.search(r"8 x \d+ per device", text), text
  assert "checks passed" in text, text
  images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
  assert images, "the plot cell produced no image"


def test_demo_cli_refuses_bad_flags_before_training_and_shows_defaults(tmp_path):
  """Every flag is checked by argparse (exit 2, one line naming the flag), before any training;
  ``--help`` shows the defaults. One interpreter runs the script's entry point per argv."""
  cases = {
    "--adam-lr 0": "argument --adam-lr: must be finite and > 0, got 0",
    "--sgd-lr nan": "argument --sgd-lr: must be finite and > 0, got nan",
    "--seed -1": "argument --seed: must be finite and >= 0, got -1",
    "--steps 1.5": "argument --steps: expected int, got '1.5'",
    "--seeds 1": "argument --seeds: must be finite and >= 2, got 1",
    "--batch-size 100000": "argument --batch-size: must be at most the 1347 training digits",
    f"--output {tmp_path}": f"argument --output: expected a .png file path, got '{tmp_path}'",
    "--output out.txt": "argument --output: expected a .png file path, got 'out.txt'",
  }
  script = (
    "import contextlib, io, runpy, sys\n"
    f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
    f"cases = {list(cases)!r}\n"
    "for case in [['--help']] + [c.split() for c in cases]:\n"
    f"  sys.argv = [{str(EXAMPLES / 'demo.py')!r}, *case]\n"
    "  out, err = io.StringIO(), io.StringIO()\n"
    "  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
    "    try:\n"
    f"      runpy.run_path({str(EXAMPLES / 'demo.py')!r}, run_name='__main__')\n"
    "      code = 0\n"
    "    except SystemExit as e:\n"
    "      code = e.code\n"
    "  lines = (out.getvalue() + err.getvalue()).strip().splitlines()\n"
    "  print(repr((' '.join(case), code, lines[-1] if case[0] != '--help' else out.getvalue())))\n"
  )
  proc = _run(["-c", script], tmp_path)
  results = [eval(line) for line in proc.stdout.splitlines()]
  (_, help_code, help_text), *errors = results
  assert help_code == 0
  assert "(default: 3000)" in help_text and "(default: 0.001)" in help_text, help_text
  assert len(errors) == len(cases)
  for (case, code, last), (want_case, message) in zip(errors, cases.items(), strict=True):
    assert case == want_case and code == 2, (case, code, last)
    assert last == f"python examples/demo.py: error: {message}", last
  assert not any(tmp_path.iterdir())  # nothing was written


def test_demo_verdicts_come_from_the_numbers():
  """A diverged run or one that did not move gets no verdict; the rest are read against how far
  training moved the weights, at the dtype's tolerance (the labels were fixed strings)."""
  import numpy as np

  demo = pytest.importorskip("demo")
  init = {"w": np.zeros(3, np.float32)}
  run = lambda w: demo.RunResult({"w": np.asarray(w, np.float32)}, 0.0, 0.0, None, None, 0.0)
  f32 = np.dtype(np.float32)
  assert demo._verdict(float("nan"), run([1.0, 1, 1]), init, f32).startswith("diverged")
  assert demo._verdict(1.0, run([np.inf, 1, 1]), init, f32).startswith("diverged")
  assert demo._verdict(0.0, run([0.0, 0, 0]), init, f32).startswith("the weights did not move")
  assert demo._verdict(1e-4, run([2.0, 0, 0]), init, f32).startswith("equivalent")
  assert demo._verdict(0.5, run([2.0, 0, 0]), init, f32).startswith("not equivalent")
  assert demo._verdict(1e-4, run([2.0, 0, 0]), init, np.dtype(np.float64)).startswith("not")
