"""The pass count: a lower bound on the traversals of a streamed rank (FuseMax's pass analysis).

Fix the streamed rank S (the key rank M, or its outer rank M1 after a split). An Einsum *iterates*
S when one of its index variables ranges over S or over a rank that covers S (``m`` over M covers
M1 = the tiles of M; ``m1`` over M1 covers M). It *fully reduces* S when it iterates S and no
output index covers S. Reading the *final iterate* of a recurrence along S (``RM[b,h,p,M1]``)
consumes a full reduction too.

An Einsum that iterates S and consumes a full reduction over S, directly or through intermediates
that do not iterate S, cannot start before that reduction has seen all of S: it runs in the next
pass. Otherwise it shares the pass of its producers. The cascade's count is the largest pass.

Each extra pass is paid for in one of two ways, and the report names both: the S-indexed tensors
that cross from an earlier pass into a later one stay on chip (storage that grows with the length
of S), or they are recomputed, which re-reads the S-indexed inputs they come from (traffic that
grows with S). When S is the outer rank of a split, the analysis also counts the traversals of
the inner rank inside one tile: those revisit bounded storage (one tile), independent of S.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import CascadeError
from ..ir import Cascade, index_vars
from ..verifier import Analysis, analyze


@dataclass(frozen=True)
class PassCost:
    """What it costs to start pass ``index`` (2, 3, ...)."""

    index: int
    crossing: tuple[str, ...]  # S-indexed tensors produced earlier and read in this pass
    keep_bytes: int  # on-chip storage to keep them (grows with S)
    keep_bytes_per_row: int  # the same per row (per point of their axes that do not cover S)
    reread: tuple[str, ...]  # S-indexed inputs re-read to recompute them instead
    reread_bytes: int  # memory traffic of that re-reading (grows with S)


@dataclass(frozen=True)
class PassReport:
    """Pass count over ``rank``: per Einsum (key as in the work report) the pass it runs in."""

    rank: str
    passes: int
    per_einsum: dict[str, int]
    iterates: dict[str, bool]
    costs: tuple[PassCost, ...] = ()
    inner_rank: str | None = None  # the inner rank of S's split, when S is an outer rank
    inner_passes: int | None = None  # traversals of the inner rank within one tile
    inner_tile: int | None = None  # its size
    notes: tuple[str, ...] = field(default=())
    sequence_rank: str = ""  # the rank whose length the costs grow with (M for S = M1)

    def to_json(self) -> dict:
        return {
            "rank": self.rank,
            "passes": self.passes,
            "per_einsum": dict(self.per_einsum),
            "iterates": dict(self.iterates),
            "sequence_rank": self.sequence_rank,
            "costs": [{"pass": c.index, "crossing": list(c.crossing), "keep_bytes": c.keep_bytes,
                       "keep_bytes_per_row": c.keep_bytes_per_row,
                       "reread": list(c.reread), "reread_bytes": c.reread_bytes}
                      for c in self.costs],
            "inner": None if self.inner_rank is None else {
                "rank": self.inner_rank, "passes": self.inner_passes, "tile": self.inner_tile},
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------- ranks


def covering_ranks(cascade: Cascade, rank: str) -> set[str]:
    """Ranks whose index walks over ``rank``: itself, the ranks it was split from, and the outer
    ranks of its own splits (walking the tiles of M walks M)."""
    cover = {rank}
    up = [rank]
    while up:
        r = up.pop()
        for split in cascade.splits:
            if r in (split.outer, split.inner) and split.rank not in cover:
                cover.add(split.rank)
                up.append(split.rank)
    down = [rank]
    while down:
        r = down.pop()
        for split in cascade.splits:
            if split.rank == r and split.outer not in cover:
                cover.add(split.outer)
                down.append(split.outer)
    # Not its aliases: ``rank M = P`` (or ``index m : P``) gives M the extent of P, but m is a
    # traversal of its own (the keys of self-attention, while p walks the queries); counting p
    # as walking M would make max[m] over QK[b,h,p,m] a partial reduction and causal attention
    # one pass.
    return cover


def default_rank(cascade: Cascade) -> str:
    """The rank whose traversals limit the cascade, as its outer rank when it is split.

    In order of preference: the rank of the first full reduction whose result a later Einsum
    reads while iterating that rank again (the dependence that forces another pass, whatever the
    reducer); else the iterative rank of the first recurrence; else the most reduced rank.
    """
    analysis = analyze(cascade)
    candidates = _reread_reductions(cascade) or [
        r.var.upper() for r in analysis.recurrences.values()] or _most_reduced(cascade)
    if not candidates:
        raise CascadeError("the cascade reduces no rank, so no rank is streamed",
                           hint="choose one with --rank")
    rank = candidates[0]
    split = cascade.split_for(rank) or next(
        (s for s in cascade.splits if s.inner == rank), None)
    return split.outer if split is not None else rank


def _reread_reductions(cascade: Cascade) -> list[str]:
    """Ranks of full reductions read by a later Einsum that iterates the reduced rank again."""
    out = []
    for k, einsum in enumerate(cascade.einsums):
        for var in einsum.reduced:
            if any(var in later.iteration_space and any(a.tensor == einsum.name
                                                        for a in later.reads())
                   for later in cascade.einsums[k + 1:]):
                out.append(var.upper())
    return out


def _most_reduced(cascade: Cascade) -> list[str]:
    counts: dict[str, int] = {}
    for einsum in cascade.einsums:
        for v in einsum.reduced:
            counts[v.upper()] = counts.get(v.upper(), 0) + 1
    best = max(counts.values(), default=0)
    return [r for r, n in counts.items() if n == best]


# ---------------------------------------------------------------------- the count


def count_passes(cascade: Cascade, rank: str | None = None, sizes: Mapping[str, int] | None = None,
                 *, dtype_bytes: int = 2, analysis: Analysis | None = None) -> PassReport:
    """Counts the passes over ``rank`` (default: :func:`default_rank`)."""
    analysis = analysis or analyze(cascade)
    rank = rank or default_rank(cascade)
    known = set(cascade.rank_names())
    if rank not in known:
        raise CascadeError(f"--rank {rank}: no rank named {rank!r}",
                           hint="ranks: " + ", ".join(sorted(known)))
    per_einsum, iterates, ready = _passes(analysis, covering_ranks(cascade, rank))
    passes = max(per_einsum.values(), default=1)
    notes = []
    costs = _costs(analysis, rank, per_einsum, sizes, dtype_bytes)
    inner_rank = inner_passes = inner_tile = None
    outer_split = next((s for s in cascade.splits if s.outer == rank), None)
    if outer_split is not None:
        inner_rank = outer_split.inner
        inner_per, inner_it, _ = _passes(analysis, {inner_rank})
        inner_passes = max((p for k, p in inner_per.items() if inner_it[k]), default=0)
        env = _sizes(cascade, sizes)
        inner_tile = env.get(inner_rank)
        if inner_passes > 1:
            notes.append(f"{inner_rank} (the inner rank of {outer_split.rank} = {rank} x "
                         f"{inner_rank}) is revisited {inner_passes} times within each {rank} "
                         f"tile: bounded storage of one tile ({inner_tile} points per row), "
                         f"independent of {outer_split.rank}")
    sequence = outer_split.rank if outer_split is not None else rank
    if passes == 1:
        notes.append(f"1 pass over {rank}: on-chip state per row does not grow with {sequence}")
    return PassReport(rank, passes, per_einsum, iterates, tuple(costs), inner_rank, inner_passes,
                      inner_tile, tuple(notes), sequence)


def _sizes(cascade: Cascade, sizes) -> dict[str, int]:
    from ..sizes import resolve_sizes

    known = {d.name for d in cascade.sizes}
    if sizes and set(sizes) >= known:
        return dict(sizes)
    return resolve_sizes(cascade, {k: v for k, v in (sizes or {}).items() if k in known})


def _passes(analysis: Analysis, cover: set[str]):
    """Pass per Einsum key, whether it iterates S, and per tensor the pass its S-consumers need."""
    per_einsum: dict[str, int] = {}
    iterates: dict[str, bool] = {}
    tensor_pass: dict[str, int] = {}  # tensor -> pass of the group that finished it
    ready: dict[str, int] = {}  # tensor -> earliest pass of an S-iterating consumer
    recs = analysis.recurrences
    for step_ in analysis.steps:
        group, step = step_.einsums, step_.var
        names = {e.name for e in group}
        needed = floor = 1
        for einsum in group:
            for access in einsum.reads():
                tensor = access.tensor
                if tensor in names and step is not None:
                    continue  # the recurrence reads its own running value
                rec = recs.get(tensor)
                if rec is not None and _final_read(access, rec, cover):
                    needed = max(needed, tensor_pass.get(tensor, 1) + 1)
                else:
                    needed = max(needed, ready.get(tensor, 1))
                floor = max(floor, tensor_pass.get(tensor, 1))
        group_iterates = {e.id: any(_var_covers(v, cover) for v in e.iteration_space)
                          for e in group}
        # A group that iterates S waits for every full reduction it consumes; a group that does
        # not iterate S runs at the end of its producers' pass and hands the wait on.
        p = needed if any(group_iterates.values()) else floor
        for einsum in group:
            key = str(einsum.id)
            per_einsum[key] = p
            iterates[key] = group_iterates[einsum.id]
            if group_iterates[einsum.id]:
                full = not any(_var_covers(v, cover) for v in einsum.output_vars)
                r = p + 1 if full else p
            else:
                r = max(needed, p)
            ready[einsum.name] = max(ready.get(einsum.name, 0), r)
            tensor_pass[einsum.name] = max(tensor_pass.get(einsum.name, 0), p)
    return per_einsum, iterates, ready


def _var_covers(var: str, cover: set[str]) -> bool:
    return var.upper() in cover


def _final_read(access, rec, cover) -> bool:
    """A read of a recurrence along S at an index that is not a running one (``RM[.., M1]``)."""
    if not _var_covers(rec.var, cover):
        return False
    index = access.indices[rec.axis]
    return not any(_var_covers(v, cover) for v in index_vars(index))


# ---------------------------------------------------------------------- costs


@dataclass(frozen=True)
class _Streamed:
    """What the costs of a pass need to know about the streamed rank S."""

    analysis: Analysis
    cover: frozenset[str]  # the ranks whose index walks S
    env: Mapping[str, int]
    dtype_bytes: int

    @property
    def family(self) -> set[str]:
        """The axes of one row: S and every part of it (M1 and M0 for S = M1)."""
        splits = self.analysis.cascade.splits
        return set(self.cover) | {sp.inner for sp in splits if sp.rank in self.cover}

    def s_indexed(self, tensor: str) -> bool:
        return any(a.rank in self.cover for a in self.analysis.shapes[tensor])

    def streamed_read(self, access) -> bool:
        """Whether the read walks S (``QK[.., m]``), not one final value (``RM[.., M1]``)."""
        return any(a.rank in self.cover and any(_var_covers(v, self.cover) for v in index_vars(i))
                   for a, i in zip(self.analysis.shapes[access.tensor], access.indices, strict=True))

    def nbytes(self, tensor: str, streamed_only: bool = False) -> int:
        family = self.family
        return math.prod(self.env[a.rank] + a.extra for a in self.analysis.shapes[tensor]
                         if not streamed_only or a.rank in family) * self.dtype_bytes

    def sources(self, tensor: str, seen: set[str]) -> set[str]:
        """S-indexed inputs that ``tensor`` is computed from."""
        cascade = self.analysis.cascade
        if tensor in seen:
            return set()
        seen.add(tensor)
        if cascade.input(tensor) is not None:
            return {tensor} if self.s_indexed(tensor) else set()
        out: set[str] = set()
        for einsum in cascade.definitions(tensor):
            for access in einsum.reads():
                out |= self.sources(access.tensor, seen)
        return out

    def crossing(self, per_einsum: Mapping[str, int], k: int) -> tuple[str, ...]:
        """S-indexed tensors made before pass ``k`` that pass ``k`` streams."""
        cascade = self.analysis.cascade
        out: dict[str, None] = {}
        for einsum in cascade.einsums:
            if per_einsum.get(str(einsum.id)) != k:
                continue
            for access in einsum.reads():
                t = access.tensor
                if (cascade.input(t) is None and self.s_indexed(t) and self.streamed_read(access)
                        and per_einsum.get(t, k) < k):
                    out.setdefault(t)
        return tuple(out)


def _costs(analysis: Analysis, rank: str, per_einsum, sizes, dtype_bytes) -> list[PassCost]:
    cascade = analysis.cascade
    streamed = _Streamed(analysis, frozenset(covering_ranks(cascade, rank)),
                         _sizes(cascade, sizes), dtype_bytes)
    costs = []
    for k in range(2, max(per_einsum.values(), default=1) + 1):
        crossing = streamed.crossing(per_einsum, k)
        reread: set[str] = set()
        for t in crossing:
            reread |= streamed.sources(t, set())
        costs.append(PassCost(k, crossing, sum(streamed.nbytes(t) for t in crossing),
                              sum(streamed.nbytes(t, True) for t in crossing),
                              tuple(sorted(reread)), sum(streamed.nbytes(t) for t in reread)))
    return costs
