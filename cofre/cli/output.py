"""How results look: human sizes and times, aligned tables, JSON for scripts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from pydantic import BaseModel

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float) -> str:
    """Binary units with one decimal: 0 B, 1023 B, 1.0 KiB, 3.5 MiB."""
    if n < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def human_time(unix: float | None) -> str:
    if unix is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))


def display_name(name: str) -> str:
    """A name as one printable line: control characters are escaped, the rest kept as typed."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] | None = None
) -> str:
    """Columns padded to their widest cell; columns in ``right`` are right-aligned."""
    right = right or set()
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def print_json(
    value: BaseModel | Sequence[BaseModel] | object, *, stream: TextIO | None = None
) -> None:
    """``value`` as indented JSON: a wire model (or a list of them) as it travels."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list) and all(isinstance(v, BaseModel) for v in value):
        value = [v.model_dump(mode="json") for v in value]
    out = stream if stream is not None else sys.stdout
    json.dump(value, out, indent=2, ensure_ascii=False)
    out.write("\n")
    out.flush()
