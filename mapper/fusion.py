"""Where to cut a cascade into fusion groups: a dynamic program over cut points.

A partition cuts the cascade's Einsums, in program order (a topological order of the dependence
graph), into contiguous segments; each segment is one fusion group with its own binding, loop
order and spill, run after the previous one. Tensors crossing a cut are written off-chip by their
producer's group and read back by each consumer's (:func:`simulator.counts.group_traffic`), so a
group's cost does not depend on how the rest of the cascade is cut: each segment is evaluated once
(the vectorised evaluator over its bindings and tilings), and the best partitions follow from a
dynamic program over the cut positions, keeping at each position the latency/energy Pareto front of
the partitions of the prefix (so every objective is served).

A cut is allowed where no dependence crosses it backwards and no recurrence is cut (a consumer
reading a recurrence's running value, not its final iterate, stays with it). The groups of one
partition share the mapping's tiles (one ``tiles`` per mapping), so the program runs once per
tiles choice of a form; within it each group may choose its spatial ranks.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.loops import Loops
from simulator.mapping import EinsumMap, Group, Mapping, outer_part
from simulator.schedule import dependence_graph

from .evaluate import Form, evaluate_space
from .select import pareto_front
from .space import Tiling, batch_ranks, spatial_options, spread, tilings

FUSION = ("searched", "full", "none")
FRONT_POINTS = 16  # partitions kept per prefix (the Pareto front's extremes and spread)
# Segments the search evaluates at most (each costs one vectorised evaluation of its mapspace).
# Every range between two cut points is c (c + 1) / 2 segments for c cut points; past the budget
# the widest groups are left out (the whole cascade, fully fused, is always a candidate).
MAX_SEGMENTS = 64


@dataclass(frozen=True)
class Piece:
    """One group of a partition: a segment's candidate (its binding row, spatial ranks, tiling)."""

    keys: tuple
    cycles: float
    energy: float
    row: tuple
    spatial: dict
    tiling: Tiling


@dataclass(frozen=True)
class Partition:
    form: Form
    pieces: tuple

    @property
    def cycles(self) -> float:
        return sum(p.cycles for p in self.pieces)

    @property
    def energy(self) -> float:
        return sum(p.energy for p in self.pieces)

    def mapping(self, unit_names: list, mode: str, record: dict) -> Mapping:
        """The partition as a mapping: one group per piece, in order, all in ``mode``."""
        maps, groups = {}, []
        for i, p in enumerate(self.pieces, 1):
            for k, u in zip(p.keys, p.row, strict=True):
                maps[k] = EinsumMap(unit_names[u], spread(p.spatial, unit_names[u], k))
            groups.append(Group(f"g{i}", p.keys, mode, p.tiling.loops, p.tiling.buffer_loops, {},
                                dict(p.tiling.spill), {}, levels=dict(p.tiling.levels)))
        tiles = dict(self.pieces[0].tiling.tiles)
        return Mapping(maps, tuple(groups), tiles, dict(self.form.mapping_sizes), **record)


def cut_points(prob, keys: tuple) -> tuple:
    """Positions ``c`` (between ``keys[c - 1]`` and ``keys[c]``) where the cascade may be cut."""
    pos = {k: i for i, k in enumerate(keys)}
    blocked = set()
    for x, y, carried, final in dependence_graph(prob, keys):
        px, py = pos[x], pos[y]
        if px > py:  # y reads a later Einsum (a carried edge of a recurrence): never cut between
            blocked.update(range(py + 1, px + 1))
        elif px < py and (carried or (prob.infos[x].einsum.name in prob.recurrences and not final)):
            blocked.update(range(px + 1, py + 1))
    return tuple(c for c in range(1, len(keys)) if c not in blocked)


def segments(n: int, cuts: tuple, fusion: str, budget: int = MAX_SEGMENTS) -> list:
    """The segments ``(start, stop)`` the program considers: every range between two boundaries
    (``searched``), or the finest partition's (``none``); the whole cascade is left out (it is
    the single fused group the mapper evaluates anyway). Past ``budget`` segments, only those
    spanning at most ``w`` cut intervals, the largest ``w`` that fits the budget (at least 1:
    the finest partition is always there)."""
    bounds = (0, *cuts, n)
    if fusion == "none":
        pairs = list(zip(bounds, bounds[1:], strict=False))
        return pairs if len(pairs) > 1 else []
    spans = [(i, j) for i in range(len(bounds)) for j in range(i + 1, len(bounds))
             if (bounds[i], bounds[j]) != (0, n)]
    width = max(j - i for i, j in spans) if spans else 0
    while width > 1 and sum(j - i <= width for i, j in spans) > budget:
        width -= 1
    return [(bounds[i], bounds[j]) for i, j in spans if j - i <= width]


def _used_vars(prob, keys: tuple) -> set:
    out: set = set()
    for k in keys:
        out |= set(prob.infos[k].vars)
    return out


def segment_tilings(form: Form, keys: tuple, tile_sizes: dict, spill_levels) -> list:
    """The tilings of one segment: the cascade's, without the loops over index variables none of
    its Einsums has (they would only repeat its work and re-fetch its inputs), deduplicated."""
    casc, prob = form.prepared.cascade, form.prob
    found = tilings(casc, prob, keys, tile_sizes, batch_ranks(casc), spill_levels)
    used = _used_vars(prob, keys)
    out, seen = [], set()
    for t in found:
        loops = Loops(prob, Mapping({}, (), t.tiles))
        kept = Tiling(t.tiles, tuple(n for n in t.loops if loops.var(n) in used),
                      tuple(n for n in t.buffer_loops if loops.var(n) in used), t.spill)
        if kept.signature not in seen:
            seen.add(kept.signature)
            out.append(kept)
    return out


def _tiles_key(tiles: dict) -> tuple:
    return tuple(sorted((r, tuple(sorted(p.items()))) for r, p in tiles.items()))


def _front(points: list, limit: int) -> list:
    """The Pareto front of ``(cycles, energy, payload)`` points, at most ``limit`` of them (the
    two extremes always)."""
    if not points:
        return []
    lat = np.array([p[0] for p in points])
    en = np.array([p[1] for p in points])
    idx = pareto_front(lat, en)
    if len(idx) > limit:
        keep = np.unique(np.round(np.linspace(0, len(idx) - 1, limit)).astype(int))
        idx = idx[keep]
    return [points[i] for i in idx]


def placed(cand, unit_names: list) -> np.ndarray:
    """Bindings of ``cand`` (``Candidates``) under which every tile part of a rank its Einsums
    iterate is a loop of the group or spread across the PEs of a unit one of them is bound to
    (the model walks an unplaced part inside the tile; a saved mapping must say so)."""
    prob, keys, tiling = cand.form.prob, cand.form.keys, cand.tiling
    used = {v.upper() for v in _used_vars(prob, keys)}
    looped = set(tiling.loops + tiling.buffer_loops)
    ok = np.ones(len(cand.cycles), dtype=bool)
    for rank, parts in tiling.tiles.items():
        if rank not in used:
            continue
        for part in (*parts, outer_part(rank, parts)):
            if part not in looped and part not in tiling.walked:
                spread = np.array([part in cand.spatial.get(u, ()) for u in unit_names])
                ok &= spread[cand.bindings].any(axis=1)
    return ok


def segment_fronts(form: Form, arch, keys: tuple, spill_levels, min_parallelism: float,
                   memo: dict) -> tuple[dict, int]:
    """For one segment: tiles choice -> Pareto front of its pieces; and the candidates evaluated."""
    seg = dataclasses.replace(form, segment=keys)
    casc = form.prepared.cascade
    unit_names = [u.name for u in arch.units]
    by_tiles: dict = {}
    evaluated = 0
    for spatial, tile_sizes in spatial_options(casc, form.prob.sizes, arch):
        found = segment_tilings(form, keys, tile_sizes, spill_levels)
        if not found:
            continue
        for cand in evaluate_space(seg, arch, spatial, found, memo, min_parallelism):
            evaluated += len(cand.cycles)
            ok = np.flatnonzero(np.isfinite(cand.cycles) & placed(cand, unit_names))
            if not len(ok):
                continue
            points = by_tiles.setdefault(_tiles_key(cand.tiling.tiles), [])
            for i in pareto_front(cand.cycles[ok], cand.energy[ok]):
                j = ok[i]
                points.append((float(cand.cycles[j]), float(cand.energy[j]),
                               Piece(keys, float(cand.cycles[j]), float(cand.energy[j]),
                                     tuple(int(u) for u in cand.bindings[j]), cand.spatial, cand.tiling)))
    return {t: _front(p, FRONT_POINTS) for t, p in by_tiles.items()}, evaluated


def partitions(form: Form, arch, fusion: str, spill_levels, min_parallelism: float,
               memo: dict) -> tuple[list, int]:
    """The best partitions of ``form`` into two or more groups (a Pareto front per tiles choice),
    and the number of segment candidates evaluated."""
    keys = form.keys
    n = len(keys)
    spans = segments(n, cut_points(form.prob, keys), fusion)
    fronts, evaluated = {}, 0
    for a, b in spans:
        fronts[a, b], count = segment_fronts(form, arch, keys[a:b], spill_levels,
                                             min_parallelism, memo)
        evaluated += count
    tiles_choices = sorted({t for f in fronts.values() for t in f})
    out = []
    for tiles in tiles_choices:
        best = {0: [(0.0, 0.0, ())]}  # boundary -> front of (cycles, energy, pieces) of the prefix
        for b in sorted({b for _, b in spans}):
            points = [(c + p.cycles, e + p.energy, pieces + (p,))
                      for a, bb in spans if bb == b and a in best
                      for c, e, pieces in best[a]
                      for _, _, p in fronts[a, b].get(tiles, [])]
            if points:
                best[b] = _front(points, FRONT_POINTS)
        out.extend(Partition(form, pieces) for _, _, pieces in best.get(n, []) if len(pieces) > 1)
    return out, evaluated

