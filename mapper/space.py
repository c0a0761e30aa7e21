"""The mapspace: which decisions the mapper enumerates.

Decisions (all enumerated, deterministically, in a fixed order):

* **binding**: each Einsum to a unit that can perform every operation class it needs;
* **spatial ranks** per unit: ranks (or the innermost tile of a rank) spread across its PE
  dimensions, from the ranks at least as large as the dimension;
* **tiling**: for each rank spread across PEs, how many PE-sized tiles stay resident in the buffer
  (``P1``: queries resident on chip), the rest being an off-chip loop;
* **loop order** of the off-chip loops that carry reuse (which operand is re-streamed);
* **spill** of intermediates that a later pass needs whole (fractions 0, 1/4, ..., 1);
* **pipelining**: ``pipelined`` or ``sequential``.

The cost of every combination comes from :mod:`mapper.evaluate`; :mod:`mapper.select` picks.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from einsum_ir.analysis.opclasses import einsum_profile
from simulator.counts import whole_along
from simulator.fused import missing_classes

from .bindings import full_grid
from .builders import pow2_divisors


@dataclass(frozen=True)
class Tiling:
    tiles: dict
    loops: tuple
    buffer_loops: tuple
    spill: dict = field(default_factory=dict)

    def describe(self) -> str:
        parts = ", ".join(f"{r}:{'x'.join(str(v) for v in p.values())}" for r, p in self.tiles.items())
        return f"tiles {parts}; loops {'>'.join(self.loops)} | {'>'.join(self.buffer_loops)}"

    @property
    def signature(self) -> tuple:
        """What tells two tilings apart (hashable)."""
        return (self.describe(), tuple(sorted(self.spill.items())))


def capable_units(arch, einsum) -> tuple:
    """Units that can perform every operation class of ``einsum`` (a class covered by a fused
    operation the unit has counts as supported, see :mod:`simulator.fused`)."""
    per_point, _ = einsum_profile(einsum)
    need = {op for op, n in per_point.items() if n}
    return tuple(u.name for u in arch.units if not missing_classes(need, u.ops))


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


def spatial_candidates(cascade, sizes, dim: int) -> list:
    """Names that can be spread across ``dim`` PEs: a split's inner rank of that size, or the
    innermost tile (``R0``) of an unsplit rank at least that large. Batch ranks (in every input
    and output) are left to the outer loops: spreading them gives no reuse."""
    batch = set(batch_ranks(cascade))
    split_src = {s.rank for s in cascade.splits}
    split_outer = {s.outer for s in cascade.splits}
    split_inner = {s.inner for s in cascade.splits}
    out = []
    for r in cascade.rank_names():
        ext = sizes[r]
        if r in batch:
            continue
        if r in split_inner:
            if ext == dim:
                out.append((r, r, None))
        elif r not in split_src and r not in split_outer and ext >= dim and ext % dim == 0:
            out.append((r + "0", r, dim))
    return out


def _unit_options(cascade, sizes, unit) -> list:
    cands = spatial_candidates(cascade, sizes, unit.dims[-1])
    if len(unit.dims) == 1:
        opts = [(c,) for c in cands] or [()]
    else:
        rows = spatial_candidates(cascade, sizes, unit.dims[0])
        opts = [(a, b) for a in rows for b in cands if a[1] != b[1] and a[0] < b[0]]
        opts = opts or [(a,) for a in rows] or [()]
    return [(unit.name, o) for o in opts]


def spatial_options(cascade, sizes, arch) -> list:
    """Every choice of spatial ranks per unit, as ``(unit -> names, rank -> PE tile size)``."""
    out = []
    for combo in itertools.product(*[_unit_options(cascade, sizes, u) for u in arch.units]):
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
    per_rank = [[(r, k, d) for k in pow2_divisors(max(1, prob.sizes[r] // d))]
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
