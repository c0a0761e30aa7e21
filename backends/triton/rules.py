"""Named clean-up rules over a kernel's statements (tile_ir).

``dead_assignments`` removes ``name = value`` statements whose name no other statement reads (the
lowering materialises some values that its rewrites then bypass: a score scaled for a consumer
that uses the unscaled dot and the scale instead, a dot that a later ``acc + dot`` accumulates in
place, an accumulator whose finished value nothing reads). Triton would drop them too; removing
them keeps the generated kernel readable.
"""
from __future__ import annotations

from collections import Counter

from .tile_ir import Assign, For, If, names_read


def _statements(stmts):
    """Every statement, those in loop and if bodies included."""
    for s in stmts:
        yield s
        if isinstance(s, (For, If)):
            yield from _statements(s.body)


def _own_reads(s) -> list[str]:
    """The names a statement itself reads (a block: its header, not its body)."""
    if isinstance(s, Assign):  # (``x = f(x)`` alone keeps no x alive: an unread accumulator)
        return [n for n in names_read(s.value) if n != s.target]
    if isinstance(s, For):
        return names_read(s.lo) + names_read(s.hi)
    if isinstance(s, If):
        return names_read(s.cond)
    return names_read(s)


def _without(stmts, dead: set, block: bool) -> list:
    """``stmts`` without the dead assignments; the first statement of a block stays (an if or a
    loop keeps a body)."""
    out = []
    for k, s in enumerate(stmts):
        if isinstance(s, Assign) and s.target in dead and not (block and k == 0):
            continue
        if isinstance(s, For):
            s = For(s.lo, s.hi, tuple(_without(s.body, dead, True)))
        elif isinstance(s, If):
            s = If(s.cond, tuple(_without(s.body, dead, True)), s.note)
        out.append(s)
    return out


def dead_assignments(stmts) -> list:
    """``stmts`` without the assignments nothing reads (to a fixed point)."""
    stmts = list(stmts)
    while True:
        reads = Counter(n for s in _statements(stmts) for n in _own_reads(s))
        new = _without(stmts, {s.target for s in _statements(stmts)
                               if isinstance(s, Assign) and not reads[s.target]}, False)
        if new == stmts:
            return stmts
        stmts = new
