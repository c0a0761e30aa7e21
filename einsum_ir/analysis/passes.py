"""The pass count: FuseMax's lower bound on the traversals of a streamed rank (fusemax.md 2.4).

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
from ..ir import Cascade, Name, index_vars
from ..verifier import Analysis, analyze
from .existence import einsum_key


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


def _root(cascade: Cascade, rank: str) -> str:
    """Follows aliases (``rank M = P``) to the rank they name."""
    seen = set()
    while True:
        decl = cascade.size_decl(rank)
        if decl is None or not isinstance(decl.default, Name) or rank in seen:
            return rank
        seen.add(rank)
        rank = decl.default.name


def covering_ranks(cascade: Cascade, rank: str) -> set[str]:
    """Ranks whose index walks over ``rank``: itself, the ranks it was split from, and the outer
    ranks of its own splits (walking the tiles of M walks M); aliases of all of these."""
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
    roots = {_root(cascade, r) for r in cover}
    for decl in cascade.sizes:
        if decl.is_rank and _root(cascade, decl.name) in roots:
            cover.add(decl.name)
    return cover


def default_rank(cascade: Cascade) -> str:
    """The rank the softmax reduces over (a max reduction), as its outer rank after a split.

    Without a max reduction: the iterative rank of a recurrence, else the most reduced rank.
    """
    candidates: list[str] = []
    for einsum in cascade.einsums:
        if einsum.reducer == "max":
            candidates.extend(v.upper() for v in einsum.reduced)
    if not candidates:
        analysis = analyze(cascade)
        candidates = [r.var.upper() for r in analysis.recurrences.values()]
    if not candidates:
        counts: dict[str, int] = {}
        for einsum in cascade.einsums:
            for v in einsum.reduced:
                counts[v.upper()] = counts.get(v.upper(), 0) + 1
        if not counts:
            raise CascadeError("the cascade reduces no rank, so no rank is streamed",
                               hint="choose one with --rank")
        best = max(counts.values())
        candidates = [r for r, n in counts.items() if n == best]
    rank = candidates[0]
    split = cascade.split_for(rank) or next(
        (s for s in cascade.splits if s.inner == rank), None)
    return split.outer if split is not None else rank


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
    for group, step in zip(analysis.order, analysis.step_vars):
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
        group_iterates = {id(e): any(_var_covers(v, cover) for v in e.iteration_space)
                          for e in group}
        # A group that iterates S waits for every full reduction it consumes; a group that does
        # not iterate S runs at the end of its producers' pass and hands the wait on.
        p = needed if any(group_iterates.values()) else floor
        for einsum in group:
            key = einsum_key(analysis, einsum)
            per_einsum[key] = p
            iterates[key] = group_iterates[id(einsum)]
            if group_iterates[id(einsum)]:
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


def _costs(analysis: Analysis, rank: str, per_einsum, sizes, dtype_bytes) -> list[PassCost]:
    cascade = analysis.cascade
    env = _sizes(cascade, sizes)
    cover = covering_ranks(cascade, rank)
    inputs = {d.name for d in cascade.inputs}

    def s_indexed(tensor: str) -> bool:
        return any(a.rank in cover for a in analysis.shapes[tensor])

    def streamed_read(access) -> bool:
        """Whether the read walks S (``QK[.., m]``), not one final value (``RM[.., M1]``)."""
        return any(a.rank in cover and any(_var_covers(v, cover) for v in index_vars(i))
                   for a, i in zip(analysis.shapes[access.tensor], access.indices))

    # the axes of one row: S and every part of it (M1 and M0 for S = M1)
    family = cover | {sp.inner for sp in cascade.splits if sp.rank in cover}

    def nbytes(tensor: str, streamed_only: bool = False) -> int:
        return math.prod(env[a.rank] + a.extra for a in analysis.shapes[tensor]
                         if not streamed_only or a.rank in family) * dtype_bytes

    def sources(tensor: str, seen: set[str]) -> set[str]:
        """S-indexed inputs that ``tensor`` is computed from."""
        if tensor in seen:
            return set()
        seen.add(tensor)
        if tensor in inputs:
            return {tensor} if s_indexed(tensor) else set()
        out: set[str] = set()
        for einsum in cascade.definitions(tensor):
            for access in einsum.reads():
                out |= sources(access.tensor, seen)
        return out

    passes = max(per_einsum.values(), default=1)
    costs = []
    for k in range(2, passes + 1):
        crossing: dict[str, None] = {}
        for einsum in cascade.einsums:
            if per_einsum.get(einsum_key(analysis, einsum)) != k:
                continue
            for access in einsum.reads():
                t = access.tensor
                if t in inputs or not s_indexed(t) or not streamed_read(access):
                    continue
                if per_einsum.get(t, k) < k:
                    crossing.setdefault(t)
        reread: set[str] = set()
        for t in crossing:
            reread |= sources(t, set())
        costs.append(PassCost(k, tuple(crossing), sum(nbytes(t) for t in crossing),
                              sum(nbytes(t, True) for t in crossing),
                              tuple(sorted(reread)), sum(nbytes(t) for t in reread)))
    return costs
