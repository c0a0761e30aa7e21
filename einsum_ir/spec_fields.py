"""Typed fields of YAML specs: path-addressed errors, unknown-field hints, physical ranges.

Every message starts with the file and the path of the field (``fusemax.yaml: levels[1].bandwidth:
...``), as the architecture and GPU loaders promise. A :class:`Quantity` is the range a physical
field may take; values outside it (non-finite, non-integer where an integer is needed, nonsense such
as a GPU with one register) are refused with the range in the message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import CascadeError

MAX_TEXT = 2000  # characters in a free-text field (a name, a description)


@dataclass(frozen=True)
class Quantity:
    """The allowed values of a numeric field: ``lo <= value <= hi`` (``lo`` excluded when
    ``positive``), an integer when ``integer``; ``unit`` is printed with the range."""

    lo: float
    hi: float
    unit: str = ""
    integer: bool = False
    positive: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        low = f"> {_fmt(self.lo)}" if self.positive else f">= {_fmt(self.lo)}"
        unit = f" {self.unit}" if self.unit else ""
        return f"{kind} {low} and <= {_fmt(self.hi)}{unit}"


def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e10:
        return str(int(x))
    return f"{x:.4g}"


class SpecFile:
    """Error construction for one spec file: ``spec.err("levels[1].capacity", "...")``."""

    def __init__(self, file: str):
        self.file = file

    def err(self, path: str, message: str, hint: str | None = None) -> CascadeError:
        return CascadeError(f"{self.file}: {path or '(top level)'}: {message}", hint=hint)

    def where(self, path: str) -> str:
        return f"{self.file}: {path}"

    def check(self, value, q: Quantity, path: str, written=None, *, word: str = "expected"):
        """``value`` (already evaluated) checked against ``q``; returns it as int when integer.
        ``written`` is what the file says (an expression), shown next to its value."""
        shown = f"{written!r} (= {value!r})" if isinstance(written, str) else repr(value)
        allowed = f"allowed: {q.describe()}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.err(path, f"{word} a number, got {shown}", allowed)
        if not math.isfinite(value):
            raise self.err(path, f"{word} a finite number, got {shown}", allowed)
        if q.integer and value != int(value):
            raise self.err(path, f"{word} an integer, got {shown}", allowed)
        if (q.positive or q.lo > 0) and value <= 0:
            noun = "positive integer" if q.integer else "positive number"
            raise self.err(path, f"{word} a {noun}, got {shown}", allowed)
        if value < q.lo or (q.positive and value <= q.lo) or value > q.hi:
            raise self.err(path, f"{shown} is outside the physical range: {q.describe()}",
                           "ranges are generous bounds on real hardware; check the unit")
        return int(value) if q.integer else value

    def mapping(self, node, path: str, example: str = "") -> dict:
        if not isinstance(node, dict):
            raise self.err(path, f"expected a mapping, got {_kind(node)}",
                           f"for example {example}" if example else None)
        return node

    def keys(self, node: dict, path: str, allowed, required=()) -> None:
        for key in node:
            if key not in allowed:
                raise self.err(join_path(path, key), "unknown field",
                               hint="allowed fields: " + ", ".join(sorted(allowed)))
        for key in required:
            if key not in node:
                raise self.err(join_path(path, key), "missing required field")

    def text(self, node: dict, key: str, path: str, *, required: bool = True,
             max_len: int = MAX_TEXT) -> str:
        """A free-text field: a non-empty single-line string (a name) or, with ``max_len`` >
        one line, a description."""
        where = join_path(path, key)
        if key not in node:
            if required:
                raise self.err(where, "missing required field")
            return ""
        value = node[key]
        if not isinstance(value, str) or not value.strip():
            raise self.err(where, f"expected a non-empty string, got {_kind(value)}")
        if len(value) > max_len:
            raise self.err(where, f"a text of {len(value)} characters (at most {max_len})")
        return value


def join_path(path: str, key) -> str:
    """``levels[1]`` + ``bandwidth`` -> ``levels[1].bandwidth``; the top level has no prefix."""
    return f"{path}.{key}" if path else str(key)


def _kind(value) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"

