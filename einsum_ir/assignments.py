"""``NAME=VALUE`` options (``--set P=4096``, ``--arch-set pe_dim=128``): one parser.

A value is an integer (``4096``, ``4_096``), an integer with a binary suffix (``4K`` = 4096,
``1M``, ``1G``; either case), or, where the caller allows floats, any float (``0.5``, ``1e-3``).
"""
from __future__ import annotations

from typing import Iterable

from .errors import CascadeError

_SCALES = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
# What a --set value must be: sizes are integers; a real parameter takes any number.
SIZE_KIND = "an integer (or a number, for a real parameter)"


def parse_value(text: str, *, floats: bool = False) -> int | float | None:
    """The number ``text`` spells (see the module docstring), or None."""
    text = text.strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        pass
    scale = _SCALES.get(text[-1:].upper())
    if scale and text[:-1].lstrip("+-").isdigit():
        return int(text[:-1]) * scale
    if floats:
        try:
            return float(text)
        except ValueError:
            return None
    return None


def parse_assignments(items: Iterable[str] | None, flag: str = "--set", *, floats: bool = False,
                      example: str = "P=1024", kind: str | None = None) -> dict[str, int | float]:
    """``NAME=VALUE`` pairs from a repeatable option; a bad item is a CascadeError naming
    ``flag`` with an example (``flag example``) as the hint."""
    out: dict[str, int | float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CascadeError(f"{flag} {item}: expected NAME=VALUE",
                               hint=f"for example {flag} {example}")
        number = parse_value(value, floats=floats)
        if number is None:
            kind = kind or ("a number" if floats else "an integer")
            raise CascadeError(f"{flag} {item}: {value!r} is not {kind}",
                               hint=f"for example {flag} {example}")
        out[name.strip()] = number
    return out
