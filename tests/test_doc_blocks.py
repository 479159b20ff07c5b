"""Every Python code block of the README and of the docs runs as pasted, in page order.

A reader copies a page's blocks into a fresh interpreter one after another; a block that uses a
name the page never defines (or that a later block of the page breaks by rebinding) fails
here. Both fenced ```python blocks and MyST ``{code-cell}`` cells count (the docs build runs
the cells too, but in a kernel where a page could lean on hidden state). Each page runs in its
own fresh interpreter, in a temporary working directory.

A MyST notebook page (``file_format: mystnb``) is executed by the docs build, in a fresh kernel,
cell by cell in page order — the same check — so where the docs extra is installed
(``tests/test_docs.py`` builds the site) it is not run twice here; such a page must then have
no Python block the build would skip (a plain ```python fence).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(\S*)")
_OPTION = re.compile(r"^:[\w-]+:")


def code_blocks(text: str) -> list[tuple[int, str]]:
  """``(line, source)`` of each ```python block and ``{code-cell}`` cell, in order."""
  lines, out, i = text.splitlines(), [], 0
  while i < len(lines):
    m = _FENCE.match(lines[i])
    if not m:
      i += 1
      continue
    ticks, lang = m.groups()
    j = i + 1
    while j < len(lines) and lines[j].strip() != ticks:
      j += 1
    body = lines[i + 1 : j]
    if lang in ("python", "py") or lang.startswith("{code-cell}"):
      if body and body[0].strip() == "---":  # a MyST option block
        body = body[body.index("---", 1) + 1 :]
      while body and _OPTION.match(body[0]):
        body = body[1:]
      out.append((i + 1, "\n".join(body)))
    i = j + 1
  return out


def test_the_extractor_finds_fences_and_cells():
  page = "\n".join(
    [
      "```python", "a = 1", "```", "```text", "not code", "```",
      "```{code-cell} ipython3", ":tags: [hide-input]", "b = a", "```",
      "````{code-cell} ipython3", "---", "tags: [x]", "---", "c = b", "````",
    ]
  )  # fmt: skip
  assert code_blocks(page) == [(1, "a = 1"), (7, "b = a"), (11, "c = b")]


def _script(page: Path) -> str:
  parts = []
  for line, src in code_blocks(page.read_text()):
    parts.append(f"# --- {page.name}:{line}\n{src}\n")
  return "".join(parts)


def _is_notebook(page: Path) -> bool:
  return "file_format: mystnb" in page.read_text().split("\n---", 1)[0]


def _docs_build_runs_it(page: Path) -> bool:
  if not _is_notebook(page):
    return False
  try:
    import myst_nb  # noqa: F401
    import sphinx  # noqa: F401
  except ImportError:
    return False
  return True


@pytest.mark.parametrize("page", [p for p in PAGES if _is_notebook(p)], ids=lambda p: p.name)
def test_notebook_pages_have_no_python_block_the_build_skips(page):
  text = page.read_text()
  plain = [
    line for line, _ in code_blocks(text) if text.split("\n")[line - 1].strip().endswith("python")
  ]
  assert not plain, f"{page.name}: ```python blocks at lines {plain}: make them {{code-cell}}s"


@pytest.mark.parametrize(
  "page", [p for p in PAGES if code_blocks(p.read_text())], ids=lambda p: p.name
)
def test_every_block_of_the_page_runs_as_pasted(page, tmp_path):
  if _docs_build_runs_it(page):
    pytest.skip(f"{page.name} is a notebook page: tests/test_docs.py executes it, in order")
  script = tmp_path / f"{page.stem}_blocks.py"
  script.write_text(_script(page))
  proc = subprocess.run(
    [sys.executable, str(script)],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert proc.returncode == 0, (
    f"{page.name}: a code block fails when the page's blocks are run in order in a fresh "
    f"interpreter (the '# --- page:line' comment above the failing line names the block):\n"
    f"{proc.stderr[-4000:]}"
  )
