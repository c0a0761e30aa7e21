"""Named clean-up rules over a kernel's emitted statements.

``dead_assignments`` removes ``name = expr`` statements whose name no other statement reads (the
lowering materialises some values that its peepholes then bypass: a score scaled for a consumer
that uses the unscaled dot and the scale instead, a dot that a later ``acc + dot`` accumulates in
place). Triton would drop them too; removing them keeps the generated kernel readable. The
statements are the lowering's own lines (one statement per line, the loop body indented).
"""
from __future__ import annotations

import io
import tokenize


def _names(line: str) -> list[str]:
    return [tok.string for tok in tokenize.generate_tokens(io.StringIO(line.strip()).readline)
            if tok.type == tokenize.NAME]


def _target(line: str) -> str | None:
    """The name a plain ``name = expr`` statement assigns (None for other statements)."""
    text = line.strip()
    head, sep, _ = text.partition(" = ")
    return head if sep and head.isidentifier() and not text.startswith(("if ", "for ")) else None


def dead_assignments(lines: list[str]) -> list[str]:
    """``lines`` without the assignments nothing reads (to a fixed point)."""
    lines = list(lines)
    while True:
        reads: dict[str, int] = {}
        for line in lines:
            names = _names(line)
            target = _target(line)
            for n in names[1:] if target is not None else names:
                reads[n] = reads.get(n, 0) + 1
        # the first statement of a block stays (an if or a loop keeps a body)
        dead = {k for k, line in enumerate(lines)
                if (t := _target(line)) is not None and not reads.get(t)
                and not (k and lines[k - 1].rstrip().split("#")[0].rstrip().endswith(":"))}
        if not dead:
            return lines
        lines = [line for k, line in enumerate(lines) if k not in dead]
