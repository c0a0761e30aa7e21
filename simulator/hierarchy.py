"""Levels inside the buffer: per-PE scratchpads, per-row and per-unit local buffers.

A spec lists its memory levels outermost first: off-chip memory, the shared buffer (the two
levels every spec has, costed by :mod:`simulator.cost` and :mod:`simulator.buffer_rules`), then
any number of inner levels (``levels[2:]``), each shared or local to one unit (``per: unit``, one
per row of its PEs, ``per: pe``). A unit's *chain* is the shared inner levels and its own, outer
first. A spec without inner levels is costed exactly as before: nothing here runs.

For a tensor the buffer keeps, each read a consumer makes of it (the words the buffer would
deliver to the array, after rule R1) is routed through the consumer's chain. A level that keeps
the tensor serves the read (its words are read from that level instead) and is filled from the
next level outward that keeps it (or the buffer). Filling level ``L`` for consumer ``k``:

* the tile ``L`` holds is the tensor's tile under every loop above ``L`` (the off-chip loops,
  the buffer's, the loops of the inner levels before ``L``); one instance holds its share of it,
  the tile divided along each variable spread over the PE dimensions the level's instances span;
* it is fetched once per iteration of those loops that index the tensor, times the refetch of
  loops that do not index it but enclose one that does (:func:`simulator.counts.refetch`: a
  tile that stays while inner loops do not change it is not fetched again);
* the level writes every instance's copy; the parent reads each distinct word once when the
  level ``multicast``\\ s (the default: a word the PEs of a spread rank that does not index the
  tensor all need is delivered to them in one read), one copy per instance when it does not;
  a local parent (a row buffer feeding scratchpads) reads, per instance, the distinct words of
  its own children;
* the PEs read the innermost level that keeps the tensor, once per iteration of every loop (the
  inner levels' included), per instance for a local level (each PE reads its own copy).

What a level keeps is a mapping choice (``levels: {spad: {keep: [...]}}`` of a group); by
default every tensor read through it whose tile fits what is left of one instance's capacity,
in the order of the group's Einsums. An explicit keep that does not fit is refused. Outputs and
intermediates produced in the PEs accumulate in their registers as before; tensors streamed
from off-chip (``keep: DRAM``) or held in registers (``keep: PE``) bypass every on-chip level.

Every function takes a consumer's unit as a name or as an array of unit indices (one entry per
binding) and keep decisions as booleans or arrays, so the model and the mapper's vectorised
evaluator use these same formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .counts import refetch, tensor_vars, tile_words


BUFFER = ""  # the shared buffer as a source of fills
PSUMS = " psums"  # the cache entry of the partial-sum check (no tensor has this name)


@dataclass(frozen=True)
class Fill:
    """Filling one inner level with one consumer's tile of one tensor."""

    parent_reads: dict  # source level name (BUFFER: the buffer) -> words it delivers
    writes: float  # words written into the level's instances (every copy)
    footprint: float  # bytes one instance holds
    copies: int  # instances holding the same word (what it delivers to the PEs is per instance)


@dataclass(frozen=True)
class Route:
    """One consumer of a buffered tensor on one candidate unit: its chain and the fills."""

    tensor: str
    consumer: str
    unit: str
    code: object  # the unit as ``unit_of`` spells it (a name, or an index for the mapper)
    fills: tuple  # (Level, Fill) of every level of the chain, outer first
    reuse: float = 1.0  # uses per word of a PE's tile that only PE-local storage captures


def loops_above(arch, group, level) -> tuple:
    """The loops enclosing ``level``'s tile: the group's, the buffer's, earlier inner levels'."""
    out = group.loops + group.buffer_loops
    for lv in arch.inner:
        if lv.name == level.name:
            return out
        lm = group.levels.get(lv.name)
        if lm is not None:
            out += lm.loops
    return out


def fetches(loops, names: tuple, tvars) -> int:
    """Times a tile indexed by ``tvars`` is brought in under the loops ``names``."""
    n = refetch(loops, names, tvars)
    for name in names:
        if loops.var(name) in tvars:
            n *= loops.extent(name)
    return n


def _share(prob, loops, info, unit, spatial: tuple, level, tvars, above: tuple) -> tuple:
    """(words one instance holds, instances used, instances holding each word) of a tile under
    ``above``: the spread variables that index the tensor divide it, the others copy it."""
    div: dict = {}
    copies = used_instances = 1
    fan = level.fan_dims(unit)
    for d, name in enumerate(spatial[:len(unit.dims)]):
        var = loops.var(name)
        if d not in fan or var not in info.vars:
            continue
        ext = prob.sizes[var.upper()]
        used = min(ext, unit.dims[d], loops.extent(name) if name in loops.parts else ext)
        used_instances *= used
        if var in tvars:
            div[var] = div.get(var, 1) * used
        else:
            copies *= used
    outer: dict = {}
    for name in above:
        v = loops.var(name)
        outer[v] = outer.get(v, 1) * loops.extent(name)
    words = 1.0
    for v in tvars:
        words *= math.ceil(math.ceil(prob.sizes[v.upper()] / outer.get(v, 1)) / div.get(v, 1))
    return words, used_instances, copies


def level_fill(prob, arch, loops, group, level, unit, spatial: tuple, t: str, consumer: str,
               sources: tuple) -> Fill:
    """What filling ``level`` with ``consumer``'s tile of ``t`` costs (the module docstring), from
    each of ``sources`` (the buffer and the levels of the chain before it)."""
    info = prob.infos[consumer]
    tv = tensor_vars(prob, t, group.einsums)
    above = loops_above(arch, group, level)
    own = tuple(n for n in above if loops.var(n) in info.vars)  # loops that rerun the consumer
    n = fetches(loops, own, tv) * info.density
    per_instance, used, copies = _share(prob, loops, info, unit, spatial, level, tv, above)
    parent = {}
    for src in sources:
        if not level.multicast:
            parent[src] = per_instance * used * n
        elif src == BUFFER:
            parent[src] = tile_words(prob, loops, tv, above) * n
        else:  # each instance of the source delivers the distinct words its children need
            words, src_used, _ = _share(prob, loops, info, unit, spatial, arch_level(arch, src),
                                        tv, above)
            parent[src] = words * src_used * n
    return Fill(parent, per_instance * used * n, per_instance * arch.word_bytes, copies)


def walk_reuse(prob, loops, arch, group, unit, spatial: tuple, t: str, consumer: str) -> float:
    """Uses per word of one PE's tile of ``t`` inside one iteration of every loop (the walk of
    the ranks no loop and no PE dimension covers) that need PE-local storage: 1 where the unit
    has no per-PE level (its registers are unbounded, as in a two-level spec), where the tile is
    one word (the operand register), or where nothing is reused; else the walk's points over the
    tile's words (each use a read from outside the PE unless a per-PE level keeps the tile).
    The unit's register file holds the partial sums (outputs accumulate in the PE's registers,
    as everywhere in the model), not inputs."""
    pe_level = next((lv for lv in arch.chain(unit.name) if lv.per == "pe"), None)
    if pe_level is None:
        return 1.0
    info = prob.infos[consumer]
    every = group.loops + group.buffer_loops + group.inner_loops(arch)
    tv = tensor_vars(prob, t, group.einsums)
    share, _, _ = _share(prob, loops, info, unit, spatial, pe_level, tv, every)
    if share <= 1:
        return 1.0
    points, _, _ = _share(prob, loops, info, unit, spatial, pe_level, frozenset(info.vars), every)
    return max(1.0, points / share)


def psum_words(prob, loops, arch, group, unit, spatial: tuple, consumer: str) -> float:
    """Partial sums one PE of ``unit`` holds for Einsum ``consumer`` (0 where the unit has no
    per-PE level or the Einsum reduces nothing): its output tile under the loops enclosing the
    outermost loop over a reduced rank that encloses a loop over an output rank (the partial
    sums of every inner iteration live across it), one PE's share."""
    pe_level = next((lv for lv in arch.chain(unit.name) if lv.per == "pe"), None)
    info = prob.infos[consumer]
    if pe_level is None or not info.reduced:
        return 0.0
    every = group.loops + group.buffer_loops + group.inner_loops(arch)
    out = frozenset(info.out_vars)
    cut = len(every)
    for i, name in enumerate(every):
        if loops.var(name) in info.reduced and any(loops.var(n) in out for n in every[i + 1:]):
            cut = i
            break
    words, _, _ = _share(prob, loops, info, unit, spatial, pe_level, out, every[:cut])
    return words


def psum_fits(prob, arch, loops, group, unit_of, candidates: dict):
    """Whether every Einsum's partial sums fit its PEs' register file (one word where the unit
    declares none), on units with a per-PE level (a boolean or an array over bindings)."""
    fits = True
    for k in group.einsums:
        for name, code, spatial in candidates.get(k, ()):
            unit = arch.unit(name)
            held = unit.register_file.words if unit.register_file is not None else 1
            if psum_words(prob, loops, arch, group, unit, spatial, k) > max(held, 1):
                fits = np.logical_and(fits, np.logical_not(np.equal(unit_of[k], code)))
    return fits


def arch_level(arch, name: str):
    return next(lv for lv in arch.levels if lv.name == name)


def routes(prob, arch, loops, group, t: str, reads: tuple, candidates: dict) -> list:
    """Per read, the :class:`Route` of every unit its consumer may be on; ``candidates``:
    Einsum -> [(unit name, code in ``unit_of``, spatial names)]."""
    out = []
    for r in reads:
        per_unit = []
        for name, code, spatial in candidates[r.consumer]:
            unit = arch.unit(name)
            chain = arch.chain(name)
            fills = tuple((lv, level_fill(prob, arch, loops, group, lv, unit, spatial, t,
                                          r.consumer, (BUFFER,) + tuple(p.name for p in chain[:j])))
                          for j, lv in enumerate(chain))
            per_unit.append(Route(t, r.consumer, name, code, fills,
                                  walk_reuse(prob, loops, arch, group, unit, spatial, t, r.consumer)))
        out.append(per_unit)
    return out


def choose_keep(arch, group, order: list, all_routes: dict, pays: dict, unit_of) -> tuple:
    """(kept, footprint, fits): per inner level, tensor -> whether it keeps it, the bytes one
    instance holds, and whether explicit keeps fit (booleans or arrays over bindings).
    ``order``: the buffered tensors in the group's order; ``pays``: tensor -> [paid per read]."""
    kept: dict = {}
    footprint: dict = {}
    fits = True
    for lv in arch.inner:
        explicit = group.levels.get(lv.name)
        explicit = None if explicit is None else explicit.keep
        used = 0.0
        kept[lv.name] = {}
        for t in order:
            fp, present = 0.0, False
            for per_unit, pay in zip(all_routes[t], pays[t], strict=True):
                for route in per_unit:
                    fill = dict((level.name, f) for level, f in route.fills).get(lv.name)
                    if fill is None:
                        continue
                    on = np.logical_and(pay, np.equal(unit_of[route.consumer], route.code))
                    fp = np.maximum(fp, np.where(on, fill.footprint, 0.0))
                    present = np.logical_or(present, on)
            if explicit is not None:
                keep = np.logical_and(present, t in explicit)
                fits = np.logical_and(fits, np.logical_or(np.logical_not(keep),
                                                          used + fp <= lv.capacity))
            else:
                keep = np.logical_and(present, used + fp <= lv.capacity)
            used = used + np.where(keep, fp, 0.0)
            kept[lv.name][t] = keep
        footprint[lv.name] = used
    return kept, footprint, fits


def route_reads(reads: tuple, per_read: list, pays: list, unit_of, kept: dict, inner: dict):
    """Words the buffer still delivers for ``reads``; the inner levels' words are added to
    ``inner`` (level name -> [read, written]). Each level that keeps the tensor is filled from
    the nearest keeping level outward (or the buffer); the array reads from the innermost."""
    total = 0.0
    for r, per_unit, pay in zip(reads, per_read, pays, strict=True):
        for route in per_unit:
            on = np.where(np.logical_and(pay, np.equal(unit_of[r.consumer], route.code)), 1.0, 0.0)
            nearest = {BUFFER: 1.0}  # source -> 1 where it is the nearest keeper outward
            # the array's reads of a local level are per instance; a source outside the PEs
            # serves every use of the walk that no PE-local storage captures
            copies = {BUFFER: route.reuse}
            for lv, fill in route.fills:
                copies[lv.name] = fill.copies * (1.0 if lv.per == "pe" else route.reuse)
                k = np.where(kept[lv.name][route.tensor], 1.0, 0.0)
                for src, w in nearest.items():
                    _add(inner, src, on * k * w * fill.parent_reads[src], 0.0)
                _add(inner, lv.name, 0.0, on * k * fill.writes)
                nearest = {src: w * (1.0 - k) for src, w in nearest.items()}
                nearest[lv.name] = k
            for src, w in nearest.items():
                _add(inner, src, on * w * r.words * copies[src], 0.0)
        total = total + inner.pop(BUFFER, [0.0, 0.0])[0]
    return total


def _add(inner: dict, name: str, read, write) -> None:
    acc = inner.setdefault(name, [0.0, 0.0])
    acc[0] = acc[0] + read
    acc[1] = acc[1] + write


@dataclass(frozen=True)
class LevelUse:
    """An inner level in one group: words read from it and written into it (over all its
    instances), and the bytes one instance holds (numbers, or arrays over bindings)."""

    read: object
    write: object
    footprint: object


def group_hierarchy(prob, arch, loops, group, buffered: dict, unit_of, candidates: dict,
                    cache: dict | None = None) -> tuple:
    """(words the buffer delivers, level name -> :class:`LevelUse`, whether the explicit keeps
    fit) for the tensors the buffer keeps; ``buffered``: tensor -> (consumer reads, paid per
    read) from :mod:`simulator.buffer_rules`; ``candidates``: as for :func:`routes`. ``cache``
    keeps the routes of one tiling and spatial choice across keep choices (they do not depend
    on what the levels keep)."""
    first = {}
    for i, k in enumerate(group.einsums):
        for t in prob.infos[k].reads:
            first.setdefault(t, i)
    order = sorted(buffered, key=lambda t: (first.get(t, len(first)), t))
    cache = {} if cache is None else cache
    all_routes = {}
    for t, (reads, _) in buffered.items():
        if t not in cache:
            cache[t] = routes(prob, arch, loops, group, t, reads, candidates)
        all_routes[t] = cache[t]
    pays = {t: p for t, (_, p) in buffered.items()}
    kept, footprint, fits = choose_keep(arch, group, order, all_routes, pays, unit_of)
    if PSUMS not in cache:  # nor do the partial sums
        cache[PSUMS] = psum_fits(prob, arch, loops, group, unit_of, candidates)
    fits = np.logical_and(fits, cache[PSUMS])
    inner: dict = {}
    glb = 0.0
    for t in order:
        glb = glb + route_reads(buffered[t][0], all_routes[t], pays[t], unit_of, kept, inner)
    uses = {lv.name: LevelUse(*inner.get(lv.name, (0.0, 0.0)), footprint[lv.name])
            for lv in arch.inner}
    return glb, uses, fits


def level_energy(read_words, write_words, level, word_bytes: int):
    """pJ of an on-chip level for the words read and written (numbers or arrays): whole
    accesses of ``access_bytes``."""
    per_access = level.access_bytes / word_bytes
    return (np.ceil(read_words / per_access) * level.read_pJ
            + np.ceil(write_words / per_access) * level.write_pJ)
