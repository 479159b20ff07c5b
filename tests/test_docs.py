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

pytestmark = pytest.mark.slow  # subprocesses / builds: not in `pytest --quick`

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
  modules = [getattr(optaxdecay, name) for name in optaxdecay.__all__]
  for module in filter(inspect.ismodule, modules):
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
  assert path.is_file(), f"docs/ cite tests/{filename}, which does not exist"
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


# --------------------------------------------------------------------------------------------
# The site as a reader meets it: headless Chromium on the built pages, no network.

BROWSER_PAGES = ("index", "theory", "does_it_matter", "decay_scaling", "api")
SCREENSHOTS = ROOT / "docs" / "_build" / "screenshots"


@pytest.fixture(scope="module")
def browser():
  webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the [docs] extra")
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  driver_path = shutil.which("chromedriver")
  if not (chromium and driver_path):
    pytest.skip(
      "headless Chromium needs Debian's chromium and chromium-driver (.ci/run installs them)"
    )
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(flag)
  service = webdriver.ChromeService(executable_path=driver_path)
  driver = webdriver.Chrome(options=options, service=service)
  yield driver
  driver.quit()


def _open(browser, site: Path, page: str) -> None:
  browser.get((site / f"{page}.html").as_uri())
  # MathJax typesets asynchronously: wait for it (the page has no network to wait on).
  browser.execute_async_script(
    "const done = arguments[arguments.length - 1];"
    "if (window.MathJax && MathJax.startup) { MathJax.startup.promise.then(() => done(true)); }"
    "else { done(false); }"
  )


@pytest.mark.parametrize("page", BROWSER_PAGES)
def test_pages_render_in_a_browser(browser, built_site, page):
  _open(browser, built_site, page)
  SCREENSHOTS.mkdir(parents=True, exist_ok=True)
  browser.save_screenshot(str(SCREENSHOTS / f"{page}.png"))
  text = browser.find_element("tag name", "body").text
  raw = [marker for marker in ("\\(", "\\)", "\\[", "\\]") if marker in text]
  assert not raw, f"{page}: untypeset math source {raw} in the rendered text"
  math = browser.execute_script("return document.querySelectorAll('.math').length")
  typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length")
  assert typeset >= math, (page, math, typeset)
  broken = browser.execute_script(
    "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
  )
  assert not broken, f"{page}: images that did not load: {broken}"


def test_theory_page_has_typeset_math(browser, built_site):
  _open(browser, built_site, "theory")
  assert browser.execute_script("return document.querySelectorAll('mjx-container').length") > 10


def test_landing_page_code_fits_at_1280px(browser, built_site):
  _open(browser, built_site, "index")
  wide = browser.execute_script(
    "return [...document.querySelectorAll('div.highlight pre')]"
    ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.slice(0, 60))"
  )
  assert not wide, f"code blocks that scroll horizontally at 1280 px: {wide}"
  assert browser.execute_script("return document.querySelectorAll('div.highlight pre').length") >= 2
  assert browser.execute_script("return document.images.length") >= 1  # the headline figure


def test_no_internal_link_is_broken(built_site):
  """A crawl of the built tree: every relative href/src points at a file that exists."""
  link = re.compile(r"""(?:href|src)=["']([^"'#?]+)(?:[#?][^"']*)?["']""")
  broken = []
  pages = [p for p in built_site.rglob("*.html") if "_static" not in p.parts]
  for html in pages:
    for target in link.findall(html.read_text(encoding="utf-8", errors="replace")):
      if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//") or "{{" in target:
        continue  # external (https:, mailto:, data:): not part of the offline site
      if not (html.parent / target).resolve().exists():
        broken.append(f"{html.relative_to(built_site)} -> {target}")
  assert len(pages) > 20 and not broken, broken[:20]
