"""The package as it is published: one version, the public API re-exported, typed."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import optaxdecay as od

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_in_one_place_and_the_metadata_agree():
  assert importlib.metadata.version("optaxdecay") == od.__version__
  assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()


def test_changelog_names_this_version():
  text = (ROOT / "CHANGELOG.md").read_text()
  assert re.search(rf"^## \[{re.escape(od.__version__)}\]", text, re.M), od.__version__
  assert "## [Unreleased]" in text


def test_license_and_typed_marker_ship():
  assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
  assert (Path(od.__file__).parent / "py.typed").exists()
  files = importlib.metadata.files("optaxdecay") or []
  assert any(str(f).endswith("LICENSE") for f in files)


def test_every_public_name_is_exported_and_documented():
  for name in od.__all__:
    obj = getattr(od, name)
    assert obj.__doc__, name
  private_modules = [n for n in dir(od) if n.startswith("_") and not n.startswith("__")]
  assert not set(od.__all__) & set(private_modules)
  api = (ROOT / "docs" / "api.md").read_text()
  for name in od.__all__:
    modules = ("compat", "diagnostics", "testing")
    entry = f"optaxdecay.{name}" if name in modules else f"   {name}\n"
    assert entry in api or f".. data:: {name}" in api, name


def test_every_public_module_declares_all_and_it_is_complete():
  """``__all__`` of the package and of each public module names every public function and class
  defined under it, and every name in it resolves."""
  import inspect

  for module in (od, od.compat, od.diagnostics, od.testing):
    assert hasattr(module, "__all__"), module.__name__
    for name in module.__all__:
      assert hasattr(module, name), f"{module.__name__}.{name}"
    defined = {
      n
      for n, o in vars(module).items()
      if not n.startswith("_")
      and (inspect.isfunction(o) or inspect.isclass(o))
      and o.__module__.startswith(module.__name__)
    }
    assert defined <= set(module.__all__), (module.__name__, sorted(defined - set(module.__all__)))
