"""The package's layers: every module sits below the modules that import it.

Read from the source with ``ast`` (every ``import``, at module level or inside a function, counts:
a function-level import is a dependency the module's header does not show), so a cycle fails
here before it fails at import time in some order of imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "optaxdecay"

#: What the library may import besides itself and the standard library: its dependencies, and
#: the frameworks it reads trees of (imported inside functions, only when such a tree is there).
ALLOWED = {"jax", "jaxlib", "optax", "chex", "numpy", "flax"}


def _module_name(path: Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
  """Every module ``path`` imports, at any depth of its code (absolute names)."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out: set[str] = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      out |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
      for alias in node.names:  # `from pkg import submodule` imports the submodule
        sub = f"{base}.{alias.name}"
        out.add(sub if sub in modules else base)
  return out


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  return {
    name: {m for m in _imports(path, name, modules) if m in modules}
    for name, path in modules.items()
  }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle of ``graph`` as a list of modules, or ``None``."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  path: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 1:
        return [*path[path.index(nxt) :], nxt]
      if nxt not in state and (found := visit(nxt)):
        return found
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state and (found := visit(node)):
      return found
  return None


def test_the_package_imports_acyclically_counting_function_level_imports():
  graph = _graph()
  assert len(graph) > 20, sorted(graph)  # the walk found the package
  cycle = _cycle(graph)
  assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
  """The oracle above is no stub: a planted function-level cycle is found."""
  graph = _graph()
  graph["optaxdecay._tree"] = graph["optaxdecay._tree"] | {"optaxdecay._transforms"}
  cycle = _cycle(graph)
  assert cycle is not None and cycle[0] == cycle[-1], cycle
  source = tmp_path / "m.py"
  source.write_text("def f():\n  from optaxdecay import _transforms\n")
  assert "optaxdecay._transforms" in _imports(source, "optaxdecay._tree", _modules())


def test_the_package_imports_only_its_dependencies_and_itself():
  """Nothing outside ``optaxdecay/`` (the examples, the tests) is imported by the library."""
  modules = _modules()
  for name, path in modules.items():
    roots = {m.split(".")[0] for m in _imports(path, name, modules)}
    foreign = roots - ALLOWED - {"optaxdecay", "__future__"} - set(sys.stdlib_module_names)
    assert not foreign, f"{name} imports {sorted(foreign)}"


def _layout_map() -> list[str]:
  """The modules of CONTRIBUTING.md's "Where things go" table, in its order (bottom first)."""
  text = (PACKAGE.parent / "CONTRIBUTING.md").read_text()
  section = text.split("## Where things go", 1)[1].split("\n## ", 1)[0]
  paths = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `optaxdecay/")]
  return [_module_name(PACKAGE.parent / p) for p in paths]


def test_the_layout_map_lists_every_module_each_below_the_modules_that_import_it():
  """CONTRIBUTING.md's table is the one map of the layout: exactly the package's modules, and a
  module imports only modules listed above it (the table is the layering, checked)."""
  order = _layout_map()
  graph = _graph()
  assert sorted(order) == sorted(graph), (
    f"missing from the map: {sorted(set(graph) - set(order))}; "
    f"in the map but not in the package: {sorted(set(order) - set(graph))}"
  )
  rank = {name: i for i, name in enumerate(order)}
  for name, imported in graph.items():
    above = sorted(m for m in imported if rank[m] >= rank[name])
    assert not above, f"{name} imports {above}, listed at or below it in CONTRIBUTING.md"
