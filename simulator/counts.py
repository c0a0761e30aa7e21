"""Counts of the cost model: operations and busy cycles per Einsum, words moved per tensor.

Nothing here knows energies: :mod:`simulator.cost` turns counts into energy and latency.

* Each Einsum's existing points times its operations per point (from the IR) give the operations
  it performs; the unit's cost table turns them into busy cycles
  ``T_X = points x cycles/point x spatial-folding / PEs``.
* Tensors crossing a group's boundary are fetched from off-chip once per iteration of every
  off-chip loop that does not index them but encloses one that does (the classic reuse rule);
  spilled intermediates are written and read back. A tensor read through a gather
  (``K[Idx[p,j],e]``) is fetched row by row as the gather reads it: each tile fetches the rows
  its index values name, a row named by several tiles (or several times) once per naming, but
  a tile never more than the whole tensor (``_gather_words``). Buffer accesses count the tile each iteration
  reads or writes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import networkx as nx

from einsum_ir.analysis.opclasses import resolve_named
from einsum_ir.errors import CascadeError

from .arch import Arch, Unit
from .fused import fuse
from .loops import Loops
from .mapping import Group, Mapping
from .problem import EinsumInfo, Problem


class Infeasible(CascadeError):
    """A mapping that breaks a capacity or binding constraint."""


# ------------------------------------------------------------------------------ per Einsum


def op_counts(info: EinsumInfo, unit: Unit) -> dict:
    """Operations per point of ``info`` on ``unit``: fused patterns counted as one operation,
    functions the unit does not price by name as ``other``, and work done once per output point
    spread over the points."""
    counts = resolve_named(fuse(info.per_point, info.fused, unit.ops), unit.ops)
    if info.points and any(info.per_output.values()):
        share = info.out_points / info.points
        for op, n in resolve_named(info.per_output, unit.ops).items():
            if n:
                counts[op] = counts.get(op, 0) + n * share
    if info.points and any(info.predicate.values()):  # a data-dependent mask, evaluated
        for op, n in resolve_named(info.predicate, unit.ops).items():
            if n:
                counts[op] = counts.get(op, 0) + n / info.points
    return counts


def cycles_per_point(info: EinsumInfo, unit: Unit, counts: dict) -> float:
    total = 0.0
    for op, n in counts.items():
        cost = unit.ops.get(op)
        if cost is None:
            raise Infeasible(f"unit {unit.name} cannot perform {op} (needed by {info.key})",
                             hint=f"bind {info.key} to a unit whose ops include {op}")
        total += n * cost.cycles
    return total


@dataclass(frozen=True)
class EinsumCounts:
    """An Einsum on its unit: operations over the whole problem, busy cycles, PEs used."""

    key: str
    unit: Unit
    points: int
    ops: dict  # op class -> operations over the whole problem
    cycles: float  # busy cycles of the unit (whole problem)
    latency: float  # exposed result latency (reduction across PEs), cycles
    pes_used: int


def _reduction_op(info: EinsumInfo) -> str:
    if info.reducer in ("max", "min"):
        return "max"
    return "mac" if info.per_point.get("mac") else "add"


def einsum_counts(prob: Problem, arch: Arch, mapping: Mapping, loops: Loops, key: str) -> EinsumCounts:
    info = prob.infos[key]
    em = mapping.einsums.get(key)
    if em is None:
        raise CascadeError(f"mapping: Einsum {key} has no binding", hint="add it under einsums:")
    unit = arch.unit(em.unit)
    if len(em.spatial) > len(unit.dims):
        raise CascadeError(f"mapping: einsums.{key}.spatial: {len(em.spatial)} ranks for the "
                           f"{len(unit.dims)}-dimensional unit {unit.name}")
    counts = op_counts(info, unit)
    cpp = cycles_per_point(info, unit, counts)
    factor = 1.0
    used_pes = 1
    latency = 0.0
    for dim, name in zip(unit.dims, em.spatial, strict=False):
        if not loops.known(name):
            raise CascadeError(f"mapping: einsums.{key}.spatial: no rank or tile part named {name!r}",
                               hint="spread a rank of the cascade (M0) or a tile part declared "
                                    "under tiles: (P0)")
        var = loops.var(name)
        used = 1
        if var in info.vars:
            ext = prob.sizes[var.upper()]
            used = min(ext, dim, loops.extent(name) if name in loops.parts else ext)
            factor *= math.ceil(ext / used) / ext
            cost = unit.ops.get(_reduction_op(info)) if var in info.reduced else None
            if cost is not None:
                latency += cost.hop_latency * used
        used_pes *= used
    full_ops = {op: n * info.points for op, n in counts.items()}
    cycles = cpp * info.points * factor
    if not info.points and any(info.predicate.values()):  # a mask that keeps nothing: evaluated
        masking = resolve_named(info.predicate, unit.ops)
        for op, n in masking.items():
            full_ops[op] = full_ops.get(op, 0) + n
        cycles += cycles_per_point(info, unit, masking) * factor
    return EinsumCounts(key, unit, info.points, full_ops, cycles, latency, used_pes)


# ------------------------------------------------------------------------------ memory


def tensor_vars(prob: Problem, tensor: str, keys) -> frozenset:
    """Index variables a tensor is indexed by in the Einsums ``keys`` (its recurrence axis left out)."""
    return _tensor_vars(prob, tensor, tuple(keys))


@lru_cache(maxsize=16384)
def _tensor_vars(prob: Problem, tensor: str, keys: tuple) -> frozenset:
    vs: set = set()
    for k in keys:
        info = prob.infos[k]
        if tensor in info.reads:
            vs |= info.reads[tensor]
        if info.einsum.name == tensor:
            vs |= set(info.out_vars)
    rec = prob.recurrences.get(tensor)
    if rec is not None:
        vs.discard(rec[1])
    return frozenset(vs)


def whole_along(prob: Problem, tensor: str, keys: tuple) -> set:
    """Variables along which an intermediate must be kept whole: a consumer of it needs a full
    reduction over that variable of something computed from it (the pass structure)."""
    return set(_whole_along(prob, tensor, tuple(keys)))


@lru_cache(maxsize=4096)
def _whole_along(prob: Problem, tensor: str, keys: tuple) -> frozenset:
    g = nx.DiGraph()
    g.add_nodes_from(keys)
    names = {prob.infos[k].einsum.name: k for k in keys}
    for k in keys:
        for t in prob.infos[k].reads:
            if t in names and names[t] != k:
                g.add_edge(names[t], k)
    prod = names.get(tensor)
    if prod is None:
        return frozenset()
    out = set()
    consumers = [k for k in keys if tensor in prob.infos[k].reads]
    for x in nx.descendants(g, prod):
        for v in prob.infos[x].reduced:
            for y in consumers:
                if y != x and y in nx.descendants(g, x):
                    out.add(v)
    return frozenset(out)


def refetch(loops: Loops, names: tuple, tvars: set) -> int:
    """How often a tensor indexed by ``tvars`` is fetched under the loops ``names`` (outer to
    inner): once per iteration of every loop that does not index it but encloses one that does."""
    factor = 1
    for i, name in enumerate(names):
        if loops.var(name) in tvars:
            continue
        if any(loops.var(inner) in tvars for inner in names[i + 1:]):
            factor *= loops.extent(name)
    return factor


def tile_words(prob: Problem, loops: Loops, tvars: set, loop_names: tuple,
               whole: set = frozenset()) -> float:
    outer: dict = {}  # variable -> product of the extents of the loops over it
    for name in loop_names:
        v = loops.var(name)
        outer[v] = outer.get(v, 1) * loops.extent(name)
    words = 1.0
    for v in tvars:
        ext = prob.sizes[v.upper()]
        words *= ext if v in whole else math.ceil(ext / outer.get(v, 1))
    return words


def _relayout(prob: Problem, mapping: Mapping, loops: Loops, keys: tuple, tensor: str,
              producer: str) -> bool:
    """Whether a consumer on another unit spreads other ranks of ``tensor`` than its producer."""
    pm = mapping.einsums[producer]
    pspatial = {loops.var(s) for s in pm.spatial}
    tv = tensor_vars(prob, tensor, keys)
    for c in keys:
        cm = mapping.einsums[c]
        if tensor not in prob.infos[c].reads or cm.unit == pm.unit:
            continue
        if (pspatial ^ {loops.var(s) for s in cm.spatial}) & tv:
            return True
    return False


def default_keep(prob: Problem, mapping: Mapping, loops: Loops, group: Group, boundary_in: set,
                 boundary_out: set, buffer: str = "GLB") -> dict:
    """What the buffer keeps when the mapping does not say: the tensors read from outside the
    group, the recurrences' running values, and intermediates that change layout between units
    (a rank spread across PEs on one unit is walked in time on the other) or that a later pass
    needs whole. ``buffer``: the name of the buffer level."""
    keep = {t: buffer for t in boundary_in}
    keys = group.einsums
    loop_vars = {loops.var(n) for n in group.loops}
    for k in keys:
        t = prob.infos[k].einsum.name
        if t in prob.recurrences:
            keep[t] = buffer
        elif t not in boundary_out:
            held = (_relayout(prob, mapping, loops, keys, t, k)
                    or whole_along(prob, t, keys) & loop_vars)
            keep[t] = buffer if held else "PE"
    return keep


def buffer_terms(prob: Problem, loops: Loops, group: Group, t: str, produced: bool, wb: int):
    """(bytes held in the buffer, words read from it, words written to it) for tensor ``t``."""
    keys = group.einsums
    all_loops = group.loops + group.buffer_loops
    tv = tensor_vars(prob, t, keys)
    whole = whole_along(prob, t, keys) if produced else set()
    if whole:
        # kept whole along v: every off-chip loop nested inside v's outermost loop also runs
        # while the tensor is held, so it is kept whole along that loop's variable too
        names = list(group.loops)
        first = min((i for i, n in enumerate(names) if loops.var(n) in whole), default=None)
        if first is not None:
            whole = set(whole) | {loops.var(n) for n in names[first + 1:] if loops.var(n) in tv}
    tile = tile_words(prob, loops, tv, group.loops, whole)
    footprint = tile * (1 - group.spill.get(t, 0.0)) * wb
    per_iter_tile = tile_words(prob, loops, tv, all_loops)
    reads = writes = 0.0
    for k in keys:
        info = prob.infos[k]
        if t not in info.reads and info.einsum.name != t:
            continue
        n_k = loops.iterations(info, all_loops)
        if t in info.reads:
            reads += n_k * per_iter_tile * info.density
        if info.einsum.name == t:
            writes += n_k * per_iter_tile * info.density
    return footprint, reads, writes


class Traffic(NamedTuple):
    """Off-chip bytes of a group and its boundary tensors."""

    dram_read: float
    dram_write: float
    boundary_in: set
    boundary_out: set
    produced: set
    bypass: float  # bytes streamed from off-chip straight into the array (not through the buffer)


def _boundary(prob: Problem, group: Group, group_of: dict):
    keys = group.einsums
    produced = {prob.infos[k].einsum.name for k in keys}
    reads = set()
    for k in keys:
        reads |= set(prob.infos[k].reads)
    boundary_out = {t for t in produced if prob.is_output(t) or any(
        group_of.get(c) != group.name for c in prob.consumers.get(t, []))}
    return produced, {t for t in reads if t not in produced}, boundary_out


def _gather_words(prob: Problem, loops: Loops, group: Group, t: str) -> float:
    """Words of the gathered tensor ``t`` one pass of the group's tiles fetches: the rows the
    gather names (one per use), at most the whole tensor per tile over the choosing variables."""
    words, drivers = prob.gathered[t]
    tiles = 1
    for name in group.loops:
        if loops.var(name) in drivers:
            tiles *= loops.extent(name)
    return min(words, prob.tensor_words(t) * tiles)


def group_traffic(prob: Problem, arch: Arch, loops: Loops, group: Group, group_of: dict) -> Traffic:
    """Off-chip bytes (read, written) of a group, and its boundary tensors (in, out)."""
    wb = arch.word_bytes
    keys = group.einsums
    produced, boundary_in, boundary_out = _boundary(prob, group, group_of)
    dram_read = dram_write = bypass = 0.0
    all_loops = group.loops + group.buffer_loops
    for t in boundary_in:
        tv = tensor_vars(prob, t, keys)
        if group.keep.get(t) == arch.offchip.name:
            # not kept in the buffer: streamed from off-chip into the array for every tile that
            # uses it (every loop that does not index it repeats the stream)
            factor = 1
            for name in all_loops:
                if loops.var(name) not in tv:
                    factor *= loops.extent(name)
            words = prob.gathered[t][0] if t in prob.gathered else prob.tensor_words(t)
            moved = words * wb * factor
            bypass += moved
            dram_read += moved
            continue
        words = _gather_words(prob, loops, group, t) if t in prob.gathered else prob.tensor_words(t)
        dram_read += words * wb * refetch(loops, group.loops, tv)
    for t in boundary_out:
        dram_write += prob.tensor_words(t) * wb
    for t, s in group.spill.items():
        if t not in produced:
            raise CascadeError(f"mapping: group {group.name}: spill.{t}: {t} is not produced in the group")
        words = prob.tensor_words(t)
        density = prob.infos[prob.producer[t]].density
        dram_write += s * words * density * wb
        dram_read += s * words * density * wb
    return Traffic(dram_read, dram_write, boundary_in, boundary_out, produced, bypass)


@lru_cache(maxsize=4096)
def inplace_pairs(prob: Problem, keys: tuple) -> tuple:
    """(new, old) intermediates where ``new`` may take ``old``'s buffer space: ``new`` is an
    element-wise map (no reduction) over exactly ``old``'s indices and the last reader of ``old``
    in the group (the softmax numerator overwriting the scores, the probabilities the numerator)."""
    names = {prob.infos[k].einsum.name: k for k in keys}
    out = []
    for k in keys:
        info = prob.infos[k]
        if info.reduced or info.einsum.name in prob.recurrences:
            continue
        for old, vs in info.reads.items():
            if old not in names or old in prob.recurrences or prob.is_output(old):
                continue
            if set(vs) != set(info.out_vars) or set(prob.infos[names[old]].out_vars) != set(vs):
                continue
            readers = [r for r in keys if old in prob.infos[r].reads]
            if readers and readers[-1] == k:
                out.append((info.einsum.name, old))
    return tuple(out)
