"""Fused operations: one unit operation that performs a pattern of several operation classes.

A unit that lists a fused operation among its ``ops`` runs every occurrence of the pattern as one
operation of that class instead of the classes it replaces: FLAT's exponent unit takes the
difference, so ``exp(a - b)`` costs one ``exp_sub`` there instead of an ``add`` and an ``exp``.
This table is the one place that knows the patterns; the problem counts them, the cost model
replaces the counts, and the mapper treats the covered classes as available.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from einsum_ir.ir import Binary, Call, walk


def _exp_of_sum(node) -> bool:
    return (isinstance(node, Call) and node.func == "exp" and len(node.args) == 1
            and isinstance(node.args[0], Binary) and node.args[0].op in ("+", "-"))


@dataclass(frozen=True)
class FusedOp:
    name: str  # the operation class a unit declares under ops
    replaces: tuple[str, ...]  # the classes one occurrence of the pattern otherwise costs
    covers: tuple[str, ...]  # classes a unit with this op counts as supporting
    matches: Callable[[object], bool]  # the pattern, on an expression node


FUSED_OPS = (FusedOp("exp_sub", ("exp", "add"), ("exp",), _exp_of_sum),)


def fused_patterns(expr) -> dict:
    """Occurrences per point of each fused operation's pattern in ``expr``."""
    out = {}
    for op in FUSED_OPS:
        n = sum(1 for node in walk(expr) if op.matches(node))
        if n:
            out[op.name] = n
    return out


def fuse(counts: dict, patterns: dict, unit_ops) -> dict:
    """Operation counts on a unit with ``unit_ops``: each pattern the unit fuses becomes one fused
    operation (as many as the replaced classes allow)."""
    counts = {k: v for k, v in counts.items() if v}
    for op in FUSED_OPS:
        n = patterns.get(op.name, 0)
        if not n or op.name not in unit_ops:
            continue
        k = min([n] + [counts.get(c, 0) for c in op.replaces])
        if k:
            for c in op.replaces:
                counts[c] -= k
            counts[op.name] = k
    return {k: v for k, v in counts.items() if v}


def missing_classes(need: set, unit_ops) -> set:
    """The operation classes of ``need`` a unit with ``unit_ops`` cannot perform."""
    missing = set(need) - set(unit_ops)
    for op in FUSED_OPS:
        if op.name in unit_ops:
            missing -= set(op.covers)
    return missing
