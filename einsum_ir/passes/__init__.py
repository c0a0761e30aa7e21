"""Rewrite passes over cascades, and the pipeline that runs them.

A pass is a frozen dataclass holding its options, with a ``name`` and ``__call__(cascade)``. A
pass that does not apply returns its input unchanged; a pass that can say why has
``explain(cascade) -> str | None``. Passes run in a :class:`Pipeline` (:func:`run_pipeline` and
:func:`run_named_pass` build one), which verifies the cascade after every pass. Passes are
registered by name in :data:`REGISTRY` for saved pipelines and the command line
(``cascade show --after PASS``, ``cascade rewrite --pass PASS``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..errors import CascadeError
from ..ir import Cascade
from .online_softmax import (NotApplicable, RewriteResult, online_softmax, online_softmax_reason,
                             rewrite_online_softmax)
from .pipeline import (PIPELINES, Pass, PassSpec, Pipeline, Prepared, digest, pipeline, prepare,
                       register_pipeline, replay)


@dataclass(frozen=True)
class OnlineSoftmax:
    """The online-softmax rewrite as a pass object (options: the rank and the tile size)."""

    tile_rank: str | None = None
    tile_size: int | None = None
    name = "online-softmax"

    def __call__(self, cascade: Cascade) -> Cascade:
        return online_softmax(cascade, self.tile_rank, self.tile_size)

    def explain(self, cascade: Cascade) -> str | None:
        return online_softmax_reason(cascade, self.tile_rank)


@dataclass(frozen=True)
class DeadEinsums:
    """Removes Einsums whose tensor no output depends on."""

    name = "dead-einsums"

    def __call__(self, cascade: Cascade) -> Cascade:
        live = {d.name for d in cascade.outputs}
        changed = True
        while changed:
            changed = False
            for einsum in cascade.einsums:
                if einsum.name in live:
                    for access in einsum.reads():
                        if access.tensor not in live:
                            live.add(access.tensor)
                            changed = True
        kept = tuple(e for e in cascade.einsums if e.name in live)
        return cascade if len(kept) == len(cascade.einsums) else cascade.replace_einsums(kept)

    def explain(self, cascade: Cascade) -> str | None:
        if self(cascade) is cascade:
            return "every Einsum contributes to an output"
        return None


# name -> factory taking the pass options as keyword arguments
REGISTRY: dict[str, Callable[..., Pass]] = {
    "online-softmax": OnlineSoftmax,
    "dead-einsums": DeadEinsums,
}


def get_pass(name: str, **options) -> Pass:
    if name not in REGISTRY:
        raise CascadeError(f"unknown pass {name!r}", hint="passes: " + ", ".join(sorted(REGISTRY)))
    try:
        return REGISTRY[name](**options)
    except TypeError as exc:
        raise CascadeError(f"pass {name}: bad options {options}: {exc}") from None


def run_pipeline(cascade: Cascade, passes: Sequence[Pass], *, verify: bool = True) -> Cascade:
    """Runs ``passes`` in order as one :class:`Pipeline` and returns the resulting cascade; with
    ``verify`` (the default) the verifier checks the result of every pass."""
    return Pipeline("custom", tuple(passes)).run(cascade, verify=verify).cascade


def run_named_pass(cascade: Cascade, name: str, sizes: Mapping[str, int] | None = None,
                   **options) -> Cascade:
    """Runs the registered pass ``name``; a CascadeError says why when it does not apply.

    ``sizes`` (the resolved sizes of the command line) are accepted for passes that need them;
    ``options`` go to the pass (``tile_rank``, ``tile_size`` for online-softmax).
    """
    prepared = Pipeline(name, (get_pass(name, **options),)).run(cascade)
    if not prepared.applied:
        reasons = [reason for _, reason in prepared.skipped if reason != "does not apply"]
        raise CascadeError(f"pass {name} does not apply to {cascade.name}"
                           + (f": {reasons[0]}" if reasons else ""),
                           hint=_HINTS.get(name))
    return prepared.cascade


register_pipeline("as-written", lambda **_: Pipeline("as-written"))
register_pipeline("one-pass", lambda tile_size=None, **_: Pipeline(
    "one-pass", (OnlineSoftmax(tile_size=tile_size),)))

_HINTS = {
    "online-softmax": "the pattern is GM = max[m] s; SN = exp(s - GM); SD = sum[m] SN; "
                      "A = SN / SD; Y = sum[m] A * V (or SNV = sum[m] SN * V; Y = SNV / SD)",
}

__all__ = ["DeadEinsums", "NotApplicable", "OnlineSoftmax", "PIPELINES", "Pass", "PassSpec",
           "Pipeline", "Prepared", "REGISTRY", "RewriteResult", "digest", "pipeline", "prepare",
           "register_pipeline", "replay",
           "get_pass", "online_softmax", "online_softmax_reason", "rewrite_online_softmax",
           "run_named_pass", "run_pipeline"]
