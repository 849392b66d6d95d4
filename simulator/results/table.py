"""One table renderer for every table the command prints or writes (compare, search, validate and its
ranking): aligned plain text for a terminal and Markdown for files, from the same cells."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def lookup(result: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path of a result JSON ("step.time_s"); None where the path is absent."""
    node: Any = result
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


@dataclass(frozen=True)
class Column:
    """A column of results: its header, the dotted key of the value, its format and an optional
    conversion (bytes -> GB, a fraction -> %) applied before formatting; absent values show as "-"."""

    header: str
    key: str
    fmt: str = "{}"
    convert: Callable[[Any], Any] | None = None

    def cell(self, result: dict[str, Any]) -> str:
        value = lookup(result, self.key)
        if value is None:
            return "-"
        return self.fmt.format(self.convert(value) if self.convert else value)


@dataclass(frozen=True)
class Table:
    """Rows of text cells under a header; columns in `left` are left-aligned (text), the others
    right-aligned (numbers)."""

    head: Sequence[str]
    rows: Sequence[Sequence[str]]
    left: frozenset[int] = field(default_factory=lambda: frozenset({0}))

    @classmethod
    def of(
        cls, columns: Sequence[Column], results: Sequence[dict[str, Any]], left: frozenset[int] | None = None
    ) -> "Table":
        rows = [[c.cell(r) for c in columns] for r in results]
        return cls([c.header for c in columns], rows, frozenset({0}) if left is None else left)

    def text(self) -> str:
        """Aligned columns two spaces apart, a rule of dashes under the header."""
        all_rows = [list(self.head), *map(list, self.rows)]
        widths = [max(len(row[i]) for row in all_rows) for i in range(len(self.head))]

        def line(row: Sequence[str]) -> str:
            cells = (
                c.ljust(w) if i in self.left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            return "  ".join(cells).rstrip()

        return "\n".join([line(self.head), "  ".join("-" * w for w in widths), *map(line, self.rows)])

    def markdown(self) -> str:
        rule = "|" + "|".join("---" if i in self.left else "---:" for i in range(len(self.head))) + "|"
        body = ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(["| " + " | ".join(self.head) + " |", rule, *body])
