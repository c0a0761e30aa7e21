"""Footprint: the bytes of every tensor for a dtype, and the live set along the cascade.

Each tensor is counted at its full (dense) extent, as a buffer that holds it would be; an
iterative axis holds R + 1 iterates. The live set is taken at every step of the evaluation order
(``Analysis.steps``: a plain Einsum, or one recurrence stepped over its rank): a tensor is live from
the step that produces it (inputs: from the start) up to its last reader; outputs stay live to the
end. This is the storage of an unfused evaluation; a fused mapping keeps only tiles of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from ..dtypes import DTYPE_BYTES, dtype_bytes
from ..ir import Cascade
from ..sizes import resolve_sizes
from ..verifier import Analysis, analyze

__all__ = ["DTYPE_BYTES", "Footprint", "LiveStep", "dtype_bytes", "footprint", "tensor_bytes"]

@dataclass(frozen=True)
class LiveStep:
    """The tensors live after step ``index`` (which evaluates ``einsums``), and their bytes."""

    index: int
    einsums: tuple[str, ...]
    live: tuple[str, ...]
    bytes: int


@dataclass(frozen=True)
class Footprint:
    dtype_bytes: int
    tensor_bytes: dict[str, int]  # every tensor, inputs and outputs included
    steps: tuple[LiveStep, ...]
    peak_bytes: int
    peak_step: int

    def to_json(self) -> dict:
        return {
            "dtype_bytes": self.dtype_bytes,
            "tensor_bytes": dict(self.tensor_bytes),
            "steps": [{"step": s.index, "einsums": list(s.einsums), "live": list(s.live),
                       "bytes": s.bytes} for s in self.steps],
            "peak_bytes": self.peak_bytes,
            "peak_step": self.peak_step,
        }


def tensor_bytes(analysis: Analysis, sizes: Mapping[str, int], nbytes: int) -> dict[str, int]:
    return {name: math.prod(sizes[a.rank] + a.extra for a in axes) * nbytes
            for name, axes in analysis.shapes.items()}


def footprint(cascade: Cascade, sizes: Mapping[str, int] | None = None, dtype="float16", *,
              analysis: Analysis | None = None) -> Footprint:
    """Bytes per tensor and the live set during every step of the evaluation order.

    A tensor is live during a step when it exists by then and is read in that step or later (or
    is an output); the step's own output and operands are live during it.
    """
    analysis = analysis or analyze(cascade)
    known = {d.name for d in cascade.sizes}
    env = resolve_sizes(cascade, {k: v for k, v in (sizes or {}).items() if k in known})
    nbytes = dtype_bytes(dtype)
    sizes_of = tensor_bytes(analysis, env, nbytes)
    outputs = {d.name for d in cascade.outputs}
    born = {d.name: -1 for d in cascade.inputs}
    last_read: dict[str, int] = {}
    for k, step in enumerate(analysis.steps):
        for einsum in step.einsums:
            born.setdefault(einsum.name, k)
            for access in einsum.reads():
                last_read[access.tensor] = max(last_read.get(access.tensor, -1), k)
    steps = []
    for k, step in enumerate(analysis.steps):
        live = [t for t, b in born.items() if b <= k and (
            t in outputs or max(last_read.get(t, b), b) >= k)]
        steps.append(LiveStep(k, tuple(str(e.id) for e in step.einsums), tuple(live),
                              sum(sizes_of[t] for t in live)))
    peak = max(steps, key=lambda s: s.bytes) if steps else LiveStep(0, (), (), 0)
    return Footprint(nbytes, sizes_of, tuple(steps), peak.bytes, peak.index)
