"""The mapspace: which decisions the mapper enumerates.

Decisions (all enumerated, deterministically, in a fixed order):

* **binding**: each Einsum to a unit that can perform every operation class it needs;
* **spatial ranks** per unit: ranks (or the innermost tile of a rank) spread across its PE
  dimensions, from the ranks at least as large as the dimension (a ragged last tile where the
  dimension does not divide the rank), else from smaller ranks (partial occupancy);
* **tiling**: for each rank spread across PEs, how many PE-sized tiles stay resident in the buffer
  (``P1``: queries resident on chip; any count up to the rank's tiles, a ragged last outer tile
  where it does not divide them), the rest being an off-chip loop;
* **loop order** of the off-chip loops that carry reuse (which operand is re-streamed);
* **spill** of intermediates that a later pass needs whole (fractions 0, 1/4, ..., 1);
* **pipelining**: ``pipelined`` or ``sequential``.

The cost of every combination comes from :mod:`mapper.evaluate`; :mod:`mapper.select` picks.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from einsum_ir.analysis.opclasses import einsum_profile, resolve_named
from einsum_ir.errors import CascadeError
from simulator.counts import whole_along
from simulator.fused import missing_classes

from .bindings import full_grid
from .builders import tile_counts


@dataclass(frozen=True)
class Tiling:
    tiles: dict
    loops: tuple
    buffer_loops: tuple
    spill: dict = field(default_factory=dict)
    levels: dict = field(default_factory=dict)  # inner level -> LevelMap (what it keeps)
    walked: tuple = ()  # tile parts the PEs walk inside the tile (mapper.levels' splits)

    def describe(self) -> str:
        parts = ", ".join(f"{r}:{'x'.join(str(v) for v in p.values())}" for r, p in self.tiles.items())
        return f"tiles {parts}; loops {'>'.join(self.loops)} | {'>'.join(self.buffer_loops)}"

    @property
    def signature(self) -> tuple:
        """What tells two tilings apart (hashable)."""
        inner = tuple(sorted((n, lm.keep) for n, lm in self.levels.items()))
        return (self.describe(), tuple(sorted(self.spill.items()))) + ((inner,) if inner else ())


def capable_units(arch, einsum) -> tuple:
    """Units that can perform every operation class of ``einsum`` (a class covered by a fused
    operation the unit has counts as supported, see :mod:`simulator.fused`)."""
    per_point, per_output = einsum_profile(einsum, named=True, scale=False)
    need = {op for op, n in (per_point + per_output).items() if n}
    return tuple(u.name for u in arch.units
                 if not missing_classes(set(resolve_named(dict.fromkeys(need, 1), u.ops)), u.ops))


def bindings(einsums, units_for: dict, unit_names: list) -> np.ndarray:
    """Every binding as a matrix (one row per binding, one column per Einsum, unit indices); the
    mapper bounds it with :func:`mapper.bindings.binding_matrix`."""
    return full_grid([[unit_names.index(u) for u in units_for[k]] for k in einsums])


def batch_ranks(cascade) -> list:
    """Ranks of every input and output (nothing to reuse across them)."""
    decls = list(cascade.inputs) + list(cascade.outputs)
    if not decls:
        return []
    common = set(decls[0].ranks)
    for d in decls[1:]:
        common &= set(d.ranks)
    return [r for r in cascade.rank_names() if r in common]


def spatial_candidates(cascade, sizes, dim: int, fallback: bool = False) -> list:
    """Names that can be spread across ``dim`` PEs, as ``(name, rank, PE tile size or None)``.

    First choice: a split's inner rank of that size (splitting a rank at least that large), or
    the innermost tile (``R0``) of an unsplit rank at least that large (its last tile is ragged
    where ``dim`` does not divide the rank; the cost model charges the idle PEs). Batch ranks (in every input and output) are left
    to the outer loops: spreading them gives no reuse.

    ``fallback`` (where the first choices do not fill the unit's dimensions): also ranks smaller
    than ``dim`` (partial occupancy), split inner ranks of any size (a larger one is folded onto
    the PEs), and batch ranks."""
    batch = set(batch_ranks(cascade))
    split_src = {s.rank for s in cascade.splits}
    split_outer = {s.outer for s in cascade.splits}
    source_of = {s.inner: s.rank for s in cascade.splits}
    out = []
    for r in cascade.rank_names():
        ext = sizes[r]
        if r in split_src or r in split_outer or ext <= 1 or (r in batch and not fallback):
            continue
        if r in source_of:
            # a split tile fills the PEs only where the rank it splits has that many points
            if (ext == dim and sizes.get(source_of[r], ext) >= dim) or fallback:
                out.append((r, r, None))
        elif ext >= dim:
            out.append((r + "0", r, dim))
        elif fallback:
            out.append((r, r, None))
    return out


def _pairs(rows: list, cols: list) -> list:
    return [(a, b) for a in rows for b in cols if a[1] != b[1] and a[0] < b[0]]


def _unit_options(cascade, sizes, unit) -> list:
    """Spatial choices of one unit; ranks that fill it first, the fallback where none do."""
    first = [spatial_candidates(cascade, sizes, d) for d in unit.dims]
    if len(unit.dims) == 1:
        opts = [(c,) for c in first[0]]
        if not opts:
            opts = [(c,) for c in spatial_candidates(cascade, sizes, unit.dims[0], True)]
    else:
        opts = _pairs(first[0], first[1])
        if not opts:
            rows, cols = (spatial_candidates(cascade, sizes, d, True) for d in unit.dims[:2])
            opts = _pairs(rows, cols) or [(a,) for a in rows]
    return [(unit.name, o) for o in opts]


def _no_spatial_rank(cascade, unit) -> CascadeError:
    return CascadeError(
        f"no rank of the cascade can be spread across the {unit.pes:,} PEs of unit {unit.name} "
        f"(dims {'x'.join(str(d) for d in unit.dims)}): every rank has size 1 or is the outer "
        "rank of a split",
        hint="give a rank a size above 1 (--set), or bind the cascade to an arch whose units it "
             "can fill; the mapper does not map a multi-PE unit onto one PE")


def _runnable_units(cascade, arch) -> set:
    """Units that can run at least one Einsum of ``cascade`` that does work."""
    out: set = set()
    for e in cascade.einsums:
        per_point, _ = einsum_profile(e)
        if any(per_point.values()):
            out |= set(capable_units(arch, e))
    return out


def spatial_options(cascade, sizes, arch) -> list:
    """Every choice of spatial ranks per unit, as ``(unit -> names, rank -> PE tile size)``."""
    per_unit = []
    runnable = _runnable_units(cascade, arch)
    for u in arch.units:
        opts = _unit_options(cascade, sizes, u)
        if not opts and u.pes > 1 and u.name in runnable:
            raise _no_spatial_rank(cascade, u)
        per_unit.append(opts or [(u.name, ())])
    out = []
    for combo in itertools.product(*per_unit):
        spatial = {u: tuple(c[0] for c in o) for u, o in combo}
        tiles: dict = {}
        ok = True
        for _, o in combo:
            for _, rank_, size in o:
                if size is None:
                    continue
                if rank_ in tiles and tiles[rank_] != size:
                    ok = False
                tiles[rank_] = size
        if ok:
            out.append((spatial, tiles))
    return out


def tilings(cascade, prob, keys, tile_sizes: dict, batch: list, spill_levels) -> list:
    """Every tiling of the ranks spread across PEs: resident tiles, off-chip loop order, spill."""
    split_outer = [s.outer for s in cascade.splits if s.outer in prob.sizes]
    per_rank = [[(r, k, d) for k in tile_counts(-(-prob.sizes[r] // d))]
                for r, d in tile_sizes.items()]
    names = {prob.infos[k].einsum.name for k in keys}
    out = []
    for combo in itertools.product(*per_rank):
        tiles = {r: {f"{r}1": k, f"{r}0": d} for r, k, d in combo}
        reuse = [f"{r}2" for r, _, _ in combo] + split_outer
        buffer_loops = tuple(f"{r}1" for r, _, _ in combo)
        orders = (list(itertools.permutations(reuse)) if len(reuse) <= 3
                  else [tuple(reuse), tuple(reversed(reuse))])
        for order in orders:
            loops = tuple(batch) + tuple(order)
            # intermediates a later pass needs whole along an off-chip loop may be spilled
            loop_vars = {n[:-1].lower() if n[:-1] in tiles else n.lower() for n in loops}
            spillable = sorted(t for t in names if whole_along(prob, t, keys) & loop_vars)
            for s in (spill_levels if spillable else (0.0,)):
                spill = {t: s for t in spillable} if s else {}
                out.append(Tiling(tiles, loops, buffer_loops, spill))
    return out


def spread(spatial: dict, unit: str, key: str) -> tuple:
    """The names Einsum ``key`` spreads across ``unit``'s PEs: its own choice where
    :func:`per_einsum` made one, else the unit's."""
    return tuple(spatial.get((unit, key), spatial.get(unit, ())))


def per_einsum(spatial: dict, cascade, prob, keys, arch, loops, recurrent=frozenset(),
               looped=frozenset()) -> dict:
    """``spatial`` (unit -> names) with a choice per Einsum where the unit's names miss it: a PE
    dimension whose rank an Einsum does not index would leave that dimension idle (the state
    update of linear attention has no query rank to spread), so it takes the Einsum's own rank
    that fills most of the dimension (untiled ranks and tile parts already chosen only, so the
    tiling stays one); a recurrent Einsum never spreads its recurrence rank (``recurrent``:
    Einsum -> that rank's variable), which must run step after step; nor a name the tiling loops
    over in time (``looped``: B in ``B > H > P2 > M1`` holds one value per tile)."""
    out = dict(spatial)
    for u in arch.units:
        names = tuple(spatial.get(u.name, ()))
        if not names:
            continue
        for k in keys:
            info = prob.infos[k]
            mine = _own_names(names, u.dims, cascade, prob.sizes, loops, info.vars,
                              recurrent.get(k), looped)
            if mine != names:
                out[(u.name, k)] = mine
    return out


def _own_names(names: tuple, dims, cascade, sizes, loops, evars, step, looped) -> tuple:
    chosen = list(names)
    usable = [v for v in evars if v != step]
    for i, (dim, name) in enumerate(zip(dims, names, strict=False)):
        if loops.var(name) in usable:
            continue
        taken = {loops.var(n) for j, n in enumerate(chosen) if j != i}
        best, fill = name, 1
        for cand, _, size in spatial_candidates(cascade, sizes, dim, fallback=True):
            if cand in looped or not loops.known(cand) or (
                    size is not None and loops.extent(cand) != size):
                continue
            v = loops.var(cand)
            used = min(dim, loops.extent(cand))
            if v in usable and v not in taken and used > fill:
                best, fill = cand, used
        chosen[i] = best
    return tuple(chosen)
