"""Terminal tables shared by the CLI subcommands.

Two ways to use a :class:`Table`:

* streaming — print :meth:`Table.header` once, then :meth:`Table.row` for each
  record as it completes (fixed column widths; a value wider than its column
  overflows rather than being cut, so no digit is ever lost);
* at once — :meth:`Table.render` fits each column to its widest cell.

Cells are produced from a record (a mapping) by each column's formatter;
``None`` is shown as ``-``. The formatters below are the project's number
conventions for terminals: 3 significant digits in scientific notation for
errors and bounds, ``%.3g`` for β, integers as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

MISSING = "-"


# ----------------------------------------------------------------------------- formatters
def fmt_auto(x: Any) -> str:
    """Generic cell: None → '-', bool → yes/no, float → %.3g, list → comma-joined."""
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return fmt_g(x)
    if isinstance(x, (list, tuple)):
        return ",".join(fmt_auto(v) for v in x) or MISSING
    return str(x)


def fmt_g(x: Any, digits: int = 3) -> str:
    """``%.{digits}g``; non-finite values as inf / -inf / nan."""
    if x is None:
        return MISSING
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def fmt_sci(x: Any, digits: int = 2) -> str:
    """Scientific notation with ``digits`` decimals (1.23e-03); 0 as 0."""
    if x is None:
        return MISSING
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.{digits}e}"


def fmt_int(x: Any) -> str:
    return MISSING if x is None else str(int(x))


def fmt_seconds(x: Any) -> str:
    return MISSING if x is None else f"{float(x):.1f}"


def fmt_list_g(xs: Any, digits: int = 3) -> str:
    """A per-layer list (e.g. β) as comma-joined %.3g; None entries as '-'."""
    if xs is None:
        return MISSING
    if not isinstance(xs, (list, tuple)):
        return fmt_g(xs, digits)
    return ",".join(fmt_g(v, digits) for v in xs) or MISSING


def fmt_pass(x: Any) -> str:
    return MISSING if x is None else ("PASS" if x else "FAIL")


# ----------------------------------------------------------------------------- table
@dataclass(frozen=True)
class Column:
    """One column: the header, a width (minimum, for streaming), alignment, and
    how to get the cell text from a record: ``fmt(record[key])``, or
    ``cell(record)`` when the cell combines several keys."""

    key: str
    header: str
    width: int = 8
    align: str = ">"  # ">" right (numbers), "<" left (names)
    fmt: Callable[[Any], str] = fmt_auto
    cell: Callable[[Mapping], str] | None = None

    def text(self, record: Mapping) -> str:
        if self.cell is not None:
            return self.cell(record)
        return self.fmt(record.get(self.key))


@dataclass
class Table:
    columns: Sequence[Column]
    sep: str = "  "
    widths: list[int] = field(default_factory=list)

    def __post_init__(self):
        if not self.widths:
            self.widths = [max(c.width, len(c.header)) for c in self.columns]

    def _line(self, cells: Iterable[str]) -> str:
        parts = []
        for cell, col, w in zip(cells, self.columns, self.widths):
            parts.append(f"{cell:{col.align}{w}}")
        return self.sep.join(parts).rstrip()

    def header(self) -> str:
        """Header line and a rule under it."""
        head = self._line(c.header for c in self.columns)
        rule = self.sep.join("-" * w for w in self.widths)
        return head + "\n" + rule

    def row(self, record: Mapping) -> str:
        return self._line(c.text(record) for c in self.columns)

    def render(self, records: Iterable[Mapping]) -> str:
        """The whole table, each column as wide as its widest cell."""
        records = list(records)
        cells = [[c.text(r) for c in self.columns] for r in records]
        widths = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.columns)]
        fitted = Table(self.columns, self.sep, widths)
        lines = [fitted.header()] + [fitted._line(row) for row in cells]
        return "\n".join(lines)
