"""The one table renderer of the diagnostics' reports (their ``__str__``)."""

from __future__ import annotations

from collections.abc import Sequence


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
  """``rows`` under ``headers`` in aligned columns; the columns in ``right`` right-aligned."""
  widths = [
    max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
  ]

  def line(cells: Sequence[str]) -> str:
    out = [
      c.rjust(w) if i in right else c.ljust(w)
      for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(out).rstrip()

  return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])
