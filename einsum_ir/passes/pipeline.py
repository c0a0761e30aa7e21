"""One pipeline of named passes, and the ``Prepared`` cascade every consumer takes.

The mapper, the simulator, the GPU mapping and the Triton lowering never run a rewrite on their
own: they receive a :class:`Prepared` from :meth:`Pipeline.run` (or :func:`prepare` with a
pipeline name). A ``Prepared`` records, as data, which passes ran with which options and which
were skipped and why; a saved mapping stores that record and the :func:`digest` of the cascade
it was made for, so that it can refuse to be applied to another cascade.

Passes are run in their declared order; a pass may declare ``requires`` (names of passes that
must come earlier in the same pipeline), which :class:`Pipeline` checks when it is built. The
verifier runs after every pass (its facts are cached per cascade, so this costs one analysis per
new cascade).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from ..errors import CascadeError
from ..ir import Cascade
from ..printer import format_cascade
from ..verifier import Analysis, analyze


class Pass(Protocol):
    """A rewrite ``Cascade -> Cascade``; returns its input itself when it does not apply."""

    name: str

    def __call__(self, cascade: Cascade) -> Cascade: ...


@dataclass(frozen=True)
class PassSpec:
    """A pass as data: its registered name and its options (sorted ``(key, value)`` pairs)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(p: Pass) -> PassSpec:
        fields = getattr(p, "__dataclass_fields__", {})
        options = tuple(sorted((k, getattr(p, k)) for k in fields if getattr(p, k) is not None))
        return PassSpec(p.name, options)

    def to_dict(self) -> dict:
        return {"pass": self.name, **dict(self.options)}

    @staticmethod
    def from_dict(data: Mapping) -> PassSpec:
        options = tuple(sorted((str(k), v) for k, v in data.items() if k != "pass"))
        return PassSpec(str(data["pass"]), options)

    def __str__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}({opts})" if opts else self.name


def digest(cascade: Cascade) -> str:
    """A short digest of what a cascade computes (its printed form, without its name)."""
    lines = format_cascade(cascade).splitlines()
    if lines and lines[0].startswith("# cascade"):
        lines = lines[1:]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Prepared:
    """A cascade after a pipeline, with the record of what the pipeline did."""

    source: Cascade  # as written: for headers, error spans and the digest
    cascade: Cascade  # after the pipeline
    pipeline: str  # the pipeline's name
    applied: tuple[PassSpec, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (pass name, why it did not apply)

    @property
    def facts(self) -> Analysis:
        return analyze(self.cascade)

    @property
    def changed(self) -> bool:
        return bool(self.applied)

    @property
    def digest(self) -> str:
        return digest(self.source)

    def describe(self) -> str:
        """``as written`` or ``after online-softmax(tile_size=64)``."""
        if not self.applied:
            return "as written"
        return "after " + ", ".join(str(s) for s in self.applied)

    def notes(self) -> tuple[str, ...]:
        return tuple(f"{name}: {reason}" for name, reason in self.skipped)


@dataclass(frozen=True)
class Pipeline:
    """Named passes run in the declared order."""

    name: str
    passes: tuple[Pass, ...] = field(default=())

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for p in self.passes:
            missing = [r for r in getattr(p, "requires", ()) if r not in seen]
            if missing:
                raise CascadeError(f"pipeline {self.name}: pass {p.name} must run after "
                                   + ", ".join(missing))
            seen.add(p.name)

    def run(self, cascade: Cascade, *, verify: bool = True) -> Prepared:
        """Runs the passes in order; with ``verify`` (the default) the verifier checks the input
        and the result of every pass that changed it."""
        if verify:
            analyze(cascade)
        current, applied, skipped = cascade, [], []
        for p in self.passes:
            out = p(current)
            if out is current or out == current:
                explain = getattr(p, "explain", None)
                skipped.append((p.name, (explain(current) if explain else None)
                                or "does not apply"))
                continue
            if verify:
                analyze(out)  # every pass leaves a valid cascade
            applied.append(PassSpec.of(p))
            current = out
        return Prepared(cascade, current, self.name, tuple(applied), tuple(skipped))


# name -> factory of the pipeline, taking the options of its passes (e.g. ``tile_size``)
PIPELINES: dict[str, Callable[..., Pipeline]] = {}


def register_pipeline(name: str, factory: Callable[..., Pipeline]) -> None:
    PIPELINES[name] = factory


def pipeline(name: str, **options) -> Pipeline:
    if name not in PIPELINES:
        raise CascadeError(f"unknown pipeline {name!r}",
                           hint="pipelines: " + ", ".join(sorted(PIPELINES)))
    return PIPELINES[name](**options)


def prepare(cascade: Cascade, name: str = "one-pass", **options) -> Prepared:
    """Runs the named pipeline on ``cascade``."""
    return pipeline(name, **options).run(cascade)


def replay(cascade: Cascade, name: str, applied: tuple[PassSpec, ...]) -> Prepared:
    """Re-runs a recorded pipeline (a saved mapping's) and checks it did the same passes."""
    from . import get_pass  # the registry lives in the package

    passes = tuple(get_pass(s.name, **dict(s.options)) for s in applied)
    prepared = Pipeline(name, passes).run(cascade)
    if prepared.applied != tuple(applied):
        raise CascadeError(f"the recorded pipeline {name} ({', '.join(map(str, applied))}) does "
                           f"not apply to {cascade.name}: {'; '.join(prepared.notes())}")
    return prepared
