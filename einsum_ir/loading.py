"""Load, verify and resolve sizes: what every command does first, in one place."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .assignments import SIZE_KIND, parse_assignments
from .facts import Analysis
from .ir import Cascade
from .parser import parse_file
from .sizes import resolve_sizes
from .verifier import analyze


@dataclass(frozen=True)
class Loaded:
    """A verified cascade with its facts, the size overrides as given, and every size."""

    cascade: Cascade
    facts: Analysis
    overrides: Mapping[str, int]  # the names set on the command line, as given
    sizes: Mapping[str, int]  # every rank and parameter (splits included)


def load_resolved(source: str | Path | Cascade,
                  assignments: Iterable[str] | Mapping[str, int] | None = None, *,
                  flag: str = "--set") -> Loaded:
    """Parses (``source`` is a path) and verifies a cascade, and resolves its sizes.

    ``assignments`` are ``NAME=VALUE`` strings (of the option ``flag``) or a mapping of
    overrides. Every mistake is a located CascadeError: in the file, or naming the option.
    """
    cascade = source if isinstance(source, Cascade) else parse_file(source)
    facts = analyze(cascade)
    if isinstance(assignments, Mapping):
        overrides = dict(assignments)
    else:
        overrides = parse_assignments(assignments, flag, floats=True, kind=SIZE_KIND)
    return Loaded(cascade, facts, overrides, resolve_sizes(cascade, overrides))
