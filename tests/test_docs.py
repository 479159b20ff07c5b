"""The documentation site builds offline with warnings as errors.

The build executes the code cells of the MyST notebooks (docs/theory.md,
docs/howto.md, ...), so a recipe or an ``assert`` in them that stops holding
fails here. It runs in a copy of docs/ so that nothing is written into the
checkout (autosummary stubs, executed notebooks).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import optaxdecay

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TEST_REF = re.compile(r"tests/(test_\w+\.py)(?:::(\w+)(?:\[([\w.-]+)\])?)?")


def _doc_pages() -> list[Path]:
  return sorted(p for p in DOCS.glob("*.md"))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
  for module in ("sphinx", "myst_nb", "sphinx_book_theme", "ipykernel"):
    pytest.importorskip(module, reason=f"building the docs needs {module} (extra: docs)")
  tmp = tmp_path_factory.mktemp("docs")
  src = tmp / "docs"
  shutil.copytree(
    DOCS, src, ignore=shutil.ignore_patterns("_build", "_autosummary", "jupyter_execute")
  )
  out = tmp / "html"
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
  cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
  cmd += ["-d", str(tmp / "doctrees"), str(src), str(out)]
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
  if proc.returncode != 0:
    pytest.fail(
      f"sphinx-build failed (exit {proc.returncode}):\n{proc.stderr[-8000:]}\n"
      f"--- stdout (tail) ---\n{proc.stdout[-3000:]}",
      pytrace=False,
    )
  return out


def _public_names(module) -> list[str]:
  names = getattr(module, "__all__", None)
  if names is not None:
    return list(names)
  return [
    n
    for n, o in vars(module).items()
    if not n.startswith("_")
    and (inspect.isfunction(o) or inspect.isclass(o))
    and o.__module__ == module.__name__
  ]


def test_site_builds_without_warnings(built_site):
  for page in ("index", "theory", "howto", "api"):
    assert (built_site / f"{page}.html").is_file(), page


def test_every_public_name_is_in_the_api_reference(built_site):
  from sphinx.util.inventory import InventoryFile

  with open(built_site / "objects.inv", "rb") as f:
    inventory = InventoryFile.load(f, "", os.path.join)
  documented = {name for entries in inventory.values() for name in entries}
  expected = {f"optaxdecay.{name}" for name in optaxdecay.__all__}
  for name in optaxdecay.__all__:
    module = getattr(optaxdecay, name)
    if inspect.ismodule(module):
      expected |= {f"{module.__name__}.{n}" for n in _public_names(module)}
  missing = sorted(expected - documented)
  assert not missing, f"not in the API reference: {missing}"


def _test_refs() -> dict[str, set[tuple[str | None, str | None]]]:
  refs: dict[str, set[tuple[str | None, str | None]]] = {}
  for page in _doc_pages():
    for m in TEST_REF.finditer(page.read_text(encoding="utf-8")):
      refs.setdefault(m.group(1), set()).add((m.group(2), m.group(3)))
  return refs


def test_docs_reference_tests():
  # The theory page links every claim to a test; this keeps the links real.
  assert "test_equivalence.py" in _test_refs()


@pytest.mark.parametrize("filename", sorted(_test_refs()))
def test_referenced_tests_exist(filename):
  path = ROOT / "tests" / filename
  if not path.is_file():
    pytest.skip(f"tests/{filename}, cited in docs/, is not in this checkout yet")
  text = path.read_text(encoding="utf-8")
  for name, param in sorted(_test_refs()[filename], key=str):
    if name is None:
      continue
    assert re.search(rf"^\s*def {name}\(", text, re.MULTILINE), (
      f"docs/ cite tests/{filename}::{name}, which does not exist"
    )
    if param is not None:
      assert re.search(rf"""["']{re.escape(param)}["']""", text), (
        f"docs/ cite tests/{filename}::{name}[{param}], but no parameter id {param!r} is there"
      )
