"""The per-level part of the mapspace, on specs with levels inside the buffer.

Two decisions, searched only where a unit has such levels (a two-level spec's space is the one
:mod:`mapper.space` enumerates, unchanged):

* **per-level tile factors**: a rank no PE dimension and no loop covers is walked inside the PE
  (:func:`simulator.hierarchy.walk_reuse`); it may be split into ``R1`` (the innermost buffer
  loop, above every inner level, so the tiles those levels hold shrink) and ``R0`` (walked in
  the PE). ``R0`` takes every divisor of the rank and ``ceil(R / 2**i)`` (imperfect factors: the
  last tile is ragged, costed as the model costs ragged tiles), up to the words one instance of
  the largest per-PE level holds (a larger ``R0`` cannot make a tile fit there). One rank is
  split at a time.
* **keep or bypass per level and tensor**: each inner level keeps any subset of the inputs its
  consumers read (every subset of up to two inputs, else nothing or each input alone), or
  whatever fits (the model's default); a subset that does not fit one instance is infeasible
  and dropped by the evaluator's capacity check. Under a split (above) only whatever fits and
  nothing are tried: the split is there to make a tile fit, and the default keeps it.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import replace

from simulator.mapping import LevelMap

MAX_KEEP_OPTIONS = 16  # keep combinations over all inner levels; past it, whatever fits or nothing
MAX_SUBSET_INPUTS = 2  # every subset of at most this many inputs; with more, each one alone


def _pe_capacity_words(arch) -> int:
    """Words one instance of the largest per-PE level holds (0: no per-PE level)."""
    caps = [lv.capacity for lv in arch.inner if lv.per == "pe"]
    return int(max(caps) // arch.word_bytes) if caps else 0


def split_sizes(extent: int, limit: int, imperfect: bool = True) -> list:
    """``R0`` sizes of a rank of ``extent`` points, largest first: its divisors and (unless
    ``imperfect`` is false) ``ceil(extent / 2**i)``, below ``extent`` and at most ``limit``."""
    out = {d for d in range(1, math.isqrt(extent) + 1) if extent % d == 0}
    out |= {extent // d for d in out}
    d = 2
    while imperfect and d < extent:
        out.add(-(-extent // d))
        d *= 2
    return sorted((s for s in out if s < extent and s <= limit), reverse=True)


def walked_ranks(cascade, prob, keys, tiling, spatial: dict) -> list:
    """Ranks that no loop, tile part or PE dimension covers and that an Einsum walks together
    with another such rank: only in a walk of two ranks or more does a PE reuse a tile of
    several words (an input across the other rank, or its partial sums), which is what the
    per-PE levels hold and a split makes fit; splitting the only walked rank just adds loops."""
    split = {s.rank for s in cascade.splits} | {s.outer for s in cascade.splits} | {
        s.inner for s in cascade.splits}
    spread = {n for names in spatial.values() for n in names}
    covered = set(tiling.tiles) | set(tiling.loops) | set(tiling.buffer_loops) | spread
    walked = {r for r in cascade.rank_names()
              if r not in covered and r in prob.sizes and prob.sizes[r] > 1}
    out: set = set()
    for k in keys:
        walk = {v.upper() for v in prob.infos[k].vars} & walked
        if len(walk) > 1:
            out |= walk - split
    return [r for r in cascade.rank_names() if r in out]


def with_level_splits(cascade, prob, keys, arch, tilings: list, spatial: dict,
                      imperfect: bool = True) -> list:
    """Lists of tilings to evaluate (each list under one choice of per-Einsum spatial ranks):
    ``tilings``, and on a spec with per-PE levels, per walked rank, every tiling with that rank
    split into a buffer loop ``R1`` and a walked ``R0`` (:func:`split_sizes`)."""
    limit = _pe_capacity_words(arch)
    if not limit or not tilings:
        return [tilings] if tilings else []
    by_rank: dict = {}
    for t in tilings:
        for r in walked_ranks(cascade, prob, keys, t, spatial):
            by_rank.setdefault(r, []).extend(
                replace(t, tiles={**t.tiles, r: {f"{r}0": r0}},
                        buffer_loops=t.buffer_loops + (f"{r}1",), walked=t.walked + (f"{r}0",))
                for r0 in split_sizes(prob.sizes[r], limit, imperfect))
    return [tilings] + [found for found in by_rank.values() if found]


def keep_options(form, arch, tiling) -> list:
    """``tiling`` with every choice of what the inner levels keep (the module docstring)."""
    if not arch.inner:
        return [tiling]
    prob = form.prob
    inputs = sorted({t for k in form.keys for t in prob.infos[k].reads
                     if t not in prob.producer or prob.producer[t] not in form.keys})
    if len(inputs) <= MAX_SUBSET_INPUTS:  # an explicit keep first: ties record what is kept
        per_level = [tuple(c) for n in range(len(inputs) + 1)
                     for c in itertools.combinations(inputs, n)] + [None]
    else:
        per_level = [()] + [(t,) for t in inputs] + [None]
    if tiling.walked or len(per_level) ** len(arch.inner) > MAX_KEEP_OPTIONS:
        per_level = [(), None]  # a split tiling: whatever fits after the split, or nothing
    out = []
    for combo in itertools.product(per_level, repeat=len(arch.inner)):
        levels = {lv.name: LevelMap(keep) for lv, keep in zip(arch.inner, combo, strict=True)
                  if keep is not None}
        out.append(replace(tiling, levels=levels))
    return out
