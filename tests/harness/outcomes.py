"""What one target does with one cascade, as a typed value.

A Triton run is MATCHED, REFUSED (a located CascadeError), or a failure: UNLOCATED (a CascadeError
without a source location), MISMATCH (ran, disagrees with the float64 interpreter) or CRASH (any
other exception). A simulator run is MAPPED_OK, REFUSED (a CascadeError, Infeasible included), or a
failure: INVARIANT_VIOLATED (which invariant, with the numbers) or CRASH.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    MATCHED = "matched"
    MAPPED_OK = "mapped_ok"
    REFUSED = "refused"
    UNLOCATED = "unlocated_refusal"
    MISMATCH = "mismatch"
    INVARIANT_VIOLATED = "invariant_violated"
    CRASH = "crash"

    @property
    def is_failure(self) -> bool:
        return self in (Kind.UNLOCATED, Kind.MISMATCH, Kind.INVARIANT_VIOLATED, Kind.CRASH)


@dataclass(frozen=True)
class Outcome:
    """``detail`` is the refusal message, the mismatch, the violated invariant or the exception;
    ``group`` is a short key that buckets equal causes together (counts in the long run)."""

    kind: Kind
    detail: str = ""
    group: str = ""

    @property
    def failed(self) -> bool:
        return self.kind.is_failure

    def describe(self) -> str:
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value


def matched() -> Outcome:
    return Outcome(Kind.MATCHED)


def mapped_ok() -> Outcome:
    return Outcome(Kind.MAPPED_OK)


def refused(message: str) -> Outcome:
    return Outcome(Kind.REFUSED, message, group_key(message))


def unlocated(message: str) -> Outcome:
    return Outcome(Kind.UNLOCATED, message, group_key(message))


def mismatch(error: str, group: str = "values differ") -> Outcome:
    return Outcome(Kind.MISMATCH, error, group)


def violated(which: str, numbers: str) -> Outcome:
    """``numbers`` may start with ``cause | `` to refine the group beyond the invariant's name."""
    cause, _, _ = numbers.partition(" | ")
    group = f"{which}: {cause}" if " | " in numbers else which
    return Outcome(Kind.INVARIANT_VIOLATED, f"{which}: {numbers}", group)


def crash(exc: BaseException) -> Outcome:
    text = f"{type(exc).__name__}: {exc}"
    return Outcome(Kind.CRASH, text, f"{type(exc).__name__}: {group_key(str(exc))}")


def resource_limit(exc: BaseException) -> Outcome:
    """A call stopped for taking too long or growing too much: one group, since a loaded machine
    turns the one into the other."""
    return Outcome(Kind.CRASH, f"{type(exc).__name__}: {exc}", "resource limit (time or memory)")


def group_key(message: str) -> str:
    """The message with tensor names, numbers and quoted code replaced, so that one cause is one
    bucket however the random cascade spells it."""
    import re

    first = message.strip().splitlines()[0] if message.strip() else ""
    first = re.sub(r"^.*?:\d+:\d+: error: ", "", first)
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", first)
    first = re.sub(r"\b(T|I)\d+\b", "T", first)
    first = re.sub(r"\b\d+(\.\d+)?\b", "N", first)
    index = r"(?!(?:per|one|the|and|for|of|or|in|to|is|a)\b)[A-Za-z][A-Za-z0-9]{0,2}"
    first = re.sub(rf"\(({index}, )+{index}\)", "(..)", first)
    first = re.sub(rf"\b(over|index|rank|ranks|indices)( {index},)* {index}\b", r"\1 _", first)
    first = re.sub(r"\[[^\]]*\]", "[..]", first)
    return first[:160]
