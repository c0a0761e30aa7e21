"""Pareto fronts over the columns of a results table (every column minimised)."""
from __future__ import annotations

import math

from einsum_ir.errors import CascadeError

ALIASES = {"latency": "latency_s", "energy": "energy_J", "area": "area_mm2"}


def pareto_columns(text: str, available, option: str = "--pareto") -> list:
    """``latency,area`` -> ``["latency_s", "area_mm2"]``, each a numeric column of the table."""
    names = [ALIASES.get(t.strip(), t.strip()) for t in text.split(",") if t.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise CascadeError(f"{option} {text}: expected two or more distinct columns, e.g. latency,area")
    for name in names:
        if name not in available:
            raise CascadeError(f"{option} {text}: no numeric column {name!r}",
                               hint="columns: " + ", ".join(sorted(available))
                               + " (latency, energy and area are short for latency_s, energy_J, area_mm2)")
    return names


def pareto_front(rows: list, columns: list, group: str | None = None) -> list:
    """The rows (with ``status`` ok and a value in every column) that no other row of their
    ``group`` beats in every column; sorted by group, then by the first column."""
    usable = [r for r in rows if r.get("status") == "ok"
              and all(_number(r.get(c)) for c in columns)]
    groups: dict = {}
    for r in usable:
        groups.setdefault(r.get(group) if group else None, []).append(r)
    out = []
    for key in sorted(groups, key=lambda k: (k is None, str(k))):
        members = sorted(groups[key], key=lambda r: tuple(r[c] for c in columns) + (r["point_id"],))
        front: list = []
        for r in members:  # sorted by the first column: a row is dominated only by an earlier one
            if not any(_dominates(f, r, columns) for f in front):
                front.append(r)
        out.extend(front)
    return out


def _dominates(a: dict, b: dict, columns: list) -> bool:
    return all(a[c] <= b[c] for c in columns) and any(a[c] < b[c] for c in columns)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def numeric_columns(table) -> list:
    import pyarrow as pa

    return [f.name for f in table.schema
            if (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)) and f.name != "point_id"]
