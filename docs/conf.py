"""Sphinx configuration for the optaxdecay documentation.

Build (offline, warnings are errors)::

  sphinx-build -W --keep-going -b html docs docs/_build/html

Pages are MyST markdown. Pages with executable code are myst-nb text notebooks
(``file_format: mystnb`` front matter): every code cell runs at each build
(``nb_execution_mode = "force"``) and a cell that raises fails the build, so the
examples and the ``assert`` lines in them are checked like tests. Pass
``-D nb_execution_mode=off`` for a quick draft build that runs nothing.
Docstring examples are doctested by pytest (``--doctest-modules``), not here.
No network is used: no intersphinx inventories are fetched.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Document, and execute the notebooks against, *this* checkout's package (when
# the docs sit in one; otherwise the installed package): the kernels that
# myst-nb starts inherit PYTHONPATH.
if (ROOT / "optaxdecay" / "__init__.py").is_file():
  sys.path.insert(0, str(ROOT))
  os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
  )
# Executed cells run on the CPU: same output on every machine, no accelerator
# probing messages in the rendered pages.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import optaxdecay  # noqa: E402

project = "optaxdecay"
author = "optaxdecay developers"
copyright = "optaxdecay developers"
release = optaxdecay.__version__
version = release

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  # MathJax 3 bundled into _static/mathjax: equations render without a network (a CDN is
  # out of reach offline), and online all the same.
  "sphinx-mathjax-offline",
  "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Pages that index.md's toctree lists but that may not exist yet in a given
# checkout (they are written by separate changes). An entry for a missing page
# is dropped from the toctree when index.md is read, instead of failing the -W
# build; every page that does exist is listed, in index.md's order.
OPTIONAL_PAGES = ("conventions", "variants", "diagnostics", "examples", "benchmarks")

# -- MyST / myst-nb ------------------------------------------------------------
myst_enable_extensions = ["amsmath", "dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 180
nb_merge_streams = True

# -- autodoc / autosummary / napoleon ------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "signature"
# Show the aliases by name in signatures instead of expanding them.
autodoc_type_aliases = {
  "optax.ScalarOrSchedule": "optax.ScalarOrSchedule",
}
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- HTML ----------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "optaxdecay"
html_theme_options = {
  "show_toc_level": 2,
  "home_page_in_toc": True,
}
html_static_path = ["_static"]
# Readable in a browser at any width: long code lines and wide tables scroll instead of being
# cut at the column's edge, sidebar names wrap only between words, long titles wrap.
html_css_files = ["optaxdecay.css"]


# -- API completeness -----------------------------------------------------------
# api.md groups the public names by topic. A name in ``optaxdecay.__all__`` that
# api.md does not list yet (one that a later change added) is appended to the
# page under "Other public names", so the reference never silently misses one.


def _listed_in(text: str, name: str) -> bool:
  directive = r"(?:```\{automodule\}\s+|\.\. (?:automodule|data|autodata)::\s+)?"
  pattern = rf"^\s*{directive}(?:optaxdecay\.)?{name}\s*$"
  return re.search(pattern, text, re.MULTILINE) is not None


def unlisted_api_names(text: str) -> list[str]:
  """The names of ``optaxdecay.__all__`` that the api page does not list."""
  return [n for n in optaxdecay.__all__ if not _listed_in(text, n)]


def _public(module) -> list[str]:
  """A module's public names: its ``__all__``, or what it defines."""
  names = getattr(module, "__all__", None)
  if names is None:
    names = [
      n
      for n, o in vars(module).items()
      if not n.startswith("_")
      and (inspect.isfunction(o) or inspect.isclass(o))
      and o.__module__ == module.__name__
    ]
  return list(names)


def _autodoc(fullname: str, obj) -> str:
  kind = "autoclass" if inspect.isclass(obj) else "autofunction" if callable(obj) else "autodata"
  return f"```{{eval-rst}}\n.. {kind}:: {fullname}\n```\n"


def _append_unlisted(app, docname: str, source: list[str]) -> None:
  if docname != "api":
    return
  missing = unlisted_api_names(source[0])
  if not missing:
    return
  # Documented in place (autosummary stubs are generated before this hook runs).
  # Classes without :members: (their fields are in the docstring's Attributes
  # section, as with the autosummary class template).
  extra = ["", "## Other public names", ""]
  for name in missing:
    obj = getattr(optaxdecay, name)
    if inspect.ismodule(obj):
      extra += ["```{eval-rst}", f".. automodule:: optaxdecay.{name}", "```", ""]
      extra += [_autodoc(f"optaxdecay.{name}.{n}", getattr(obj, n)) for n in _public(obj)]
    else:
      extra.append(_autodoc(f"optaxdecay.{name}", obj))
  source[0] = source[0].rstrip("\n") + "\n" + "\n".join(extra)


def _page_exists(name: str) -> bool:
  return any((DOCS / f"{name}{suffix}").is_file() for suffix in source_suffix)


def _drop_missing_optional_pages(app, docname: str, source: list[str]) -> None:
  if docname != root_doc:
    return
  for name in OPTIONAL_PAGES:
    if not _page_exists(name):
      source[0] = re.sub(rf"^{re.escape(name)}[ \t]*\n", "", source[0], flags=re.MULTILINE)


def _reread_root_doc(app, env, added, changed, removed) -> list[str]:
  # index.md's toctree depends on which optional pages exist, and api.md's
  # content on optaxdecay.__all__; Sphinx's incremental build tracks neither,
  # so both are read again on every build.
  return [root_doc, "api"]


def setup(app):
  app.connect("env-get-outdated", _reread_root_doc)
  app.connect("source-read", _drop_missing_optional_pages)
  app.connect("source-read", _append_unlisted)
  return {"parallel_read_safe": True}
