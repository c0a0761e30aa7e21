"""The mapper's evaluator: the cost model in closed form, vectorised over bindings.

For one cascade form and one choice of spatial ranks, every Einsum's cost on every capable unit is
computed once with :func:`simulator.cost.einsum_cost` (busy cycles, energy, result latency). Over
all bindings at once (a matrix with one row per binding) numpy then sums unit busy times,
recurrence-cycle bounds and compute energy; for every tiling (resident tiles, off-chip loop order,
spill) the off-chip traffic and the buffer terms are added, capacity is checked, and latency and
energy follow. The formulas are the model's own (:func:`simulator.schedule.recurrence_bound`,
:func:`simulator.cost.buffer_footprint`, :func:`simulator.cost.offchip_energy`,
:func:`simulator.cost.buffer_energy`, :func:`simulator.timing.einsum_fill` and
:func:`simulator.timing.port_cycles`) applied to arrays, so a candidate's cost here is the one
:func:`simulator.cost.simulate_problem` gives its pipelined mapping.

On a spec with levels inside the buffer (:mod:`simulator.hierarchy`), what each inner level keeps
is searched: every tiling is tried with each level keeping whatever fits (the default), nothing,
or a subset of the inputs (:func:`mapper.levels.keep_options`); the routing of reads through the levels is
:func:`simulator.hierarchy.group_hierarchy`, the model's own, over all bindings at once.

The cost of one evaluation is independent of the sequence length: sizes enter only as numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulator.cost import buffer_energy, buffer_footprint, einsum_cost, offchip_energy
from simulator.buffer_rules import (buffer_read_words, buffered_tensor, fill_words, group_passes,
                                    paid_reads)
from simulator.hierarchy import group_hierarchy, level_energy
from simulator.counts import group_traffic, inplace_pairs, whole_along
from simulator.loops import Loops
from simulator.mapping import EinsumMap, Group, Mapping
from simulator.timing import einsum_fill, port_cycles
from simulator.schedule import recurrence_bound, recurrence_cycles, recurrence_distance, step_var

from .bindings import BindingCosts, binding_matrix, relayouts
from .levels import keep_options
from .space import Tiling, per_einsum, spread


@dataclass(frozen=True)
class Form:
    """One form of the cascade (a pipeline's result) at the search's sizes."""

    index: int
    prepared: object  # einsum_ir.passes.Prepared
    prob: object  # simulator.problem.Problem
    units_for: dict  # Einsum -> units that can run it
    split_sizes: dict  # split tile sizes the mapping fixes (one PE dimension)
    segment: tuple = ()  # the Einsums of one fusion group (default: all, in program order)

    @property
    def keys(self) -> tuple:
        return self.segment or self.prob.order

    @cached_property
    def mapping_sizes(self) -> dict:
        """Split tile sizes a mapping records: those of splits written in the cascade, as the
        search used them (a split the pipeline made has its tile size as the pass's option)."""
        declared = {d.name for d in self.prepared.source.sizes}
        return {s.inner: self.prob.sizes[s.inner] for s in self.prepared.cascade.splits
                if s.inner in declared and s.inner in self.prob.sizes}


@dataclass(frozen=True)
class Candidates:
    """Evaluated candidates: one row per binding of one tiling (``inf`` where it does not fit)."""

    cycles: np.ndarray
    energy: np.ndarray
    form: Form
    bindings: np.ndarray
    spatial: dict
    tiling: Tiling


def candidate_mapping(form: Form, row, unit_names, spatial: dict, tiling: Tiling, mode: str,
                      record: dict) -> Mapping:
    """The mapping of one candidate (one fusion group with all of the form's Einsums)."""
    keys = form.keys
    maps = {k: EinsumMap(unit_names[u], spread(spatial, unit_names[u], k))
            for k, u in zip(keys, row, strict=True)}
    group = Group("fused", tuple(keys), mode, tiling.loops, tiling.buffer_loops, {},
                  dict(tiling.spill), {}, levels=dict(tiling.levels))
    return Mapping(maps, (group,), dict(tiling.tiles), dict(form.mapping_sizes), **record)


@dataclass(frozen=True)
class _Tables:
    """Per-binding sums of one form and spatial choice (independent of the tiling)."""

    bindings: np.ndarray
    cycles: np.ndarray  # bindings x Einsums: busy cycles of each Einsum on its unit
    latency: np.ndarray  # bindings x Einsums: result latency
    busy: np.ndarray  # bindings: the busiest unit's cycles
    compute_energy: np.ndarray
    relayout: dict  # intermediate -> bindings where its producer and a consumer lay it out differently


def _unit_costs(form: Form, arch, spatial: dict, probe: Mapping, loops: Loops, min_parallelism):
    """(cycles, energy, latency) of every Einsum on every unit, and the units each may use."""
    unit_names = [u.name for u in arch.units]
    shape = (len(form.keys), len(unit_names))
    cyc, en, lat = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    allowed = {}
    for i, k in enumerate(form.keys):
        used = {}
        for u in form.units_for[k]:
            j = unit_names.index(u)
            m = Mapping({k: EinsumMap(u, spread(spatial, u, k))}, (), probe.tiles)
            c = einsum_cost(form.prob, arch, m, loops, k, "fused")
            cyc[i, j], en[i, j], lat[i, j] = c.cycles, c.energy_pJ, c.latency
            used[u] = c.pes_used
        allowed[k] = _parallel_enough(used, arch, min_parallelism)
    return cyc, en, lat, allowed


def _parallel_enough(used: dict, arch, min_parallelism: float) -> tuple:
    """Units (of ``used``: unit -> PEs an Einsum keeps busy there) an Einsum may be bound to:
    those it keeps at least ``min_parallelism`` busy, and those where it keeps more PEs busy
    than on every such unit (a large array partly filled beats a small one filled: a GEMM
    smaller than the 2D array still belongs on it). Where no unit qualifies, every unit does."""
    full = [u for u, n in used.items() if n >= min_parallelism * arch.unit(u).pes]
    most = max((used[u] for u in full), default=0)
    return tuple(u for u, n in used.items() if u in full or n > most)


def _relayout_masks(found: tuple, B: np.ndarray) -> dict:
    """Bindings where an intermediate changes layout between its producer's and a consumer's unit
    (it is then kept in the buffer); ``found``: :func:`mapper.bindings.relayouts`."""
    out = {}
    for r in found:
        mask = r.conflict[B[:, r.producer], B[:, r.consumer]]
        out[r.tensor] = out[r.tensor] | mask if r.tensor in out else mask
    return {t: m for t, m in out.items() if m.any()}


def _tables(form: Form, arch, spatial: dict, probe: Mapping, min_parallelism) -> _Tables:
    unit_names = [u.name for u in arch.units]
    loops = Loops(form.prob, probe)
    cyc, en, lat, allowed = _unit_costs(form, arch, spatial, probe, loops, min_parallelism)
    found = relayouts(form.prob, form.keys, spatial, unit_names, loops)
    col = {k: i for i, k in enumerate(form.keys)}
    rec = tuple(tuple(col[x] for x in c) for c, _ in recurrence_cycles(form.prob, form.keys))
    choices = [[unit_names.index(u) for u in allowed[k]] for k in form.keys]
    B = binding_matrix(choices, BindingCosts(cyc, en, lat, rec, found))
    cols = np.arange(len(form.keys))
    TB, EB = cyc[cols, B], en[cols, B]
    energy = 0.0
    for i in cols:  # in the model's order (Einsum by Einsum), so that both round alike
        energy = energy + EB[:, i]
    return _Tables(B, TB, lat[cols, B], _busiest(B, TB, len(unit_names)),
                   np.broadcast_to(energy, B.shape[:1]), _relayout_masks(found, B))


def _busiest(B: np.ndarray, TB: np.ndarray, n_units: int) -> np.ndarray:
    """The busiest unit's cycles of every binding, summed Einsum by Einsum as the model does."""
    busy = np.zeros((B.shape[0], n_units))
    for i in range(B.shape[1]):
        for j in range(n_units):
            busy[:, j] = busy[:, j] + np.where(B[:, i] == j, TB[:, i], 0.0)
    return busy.max(axis=1)


def _occupied(form: Form, arch, tables: _Tables, loops: Loops, names: tuple, spatial: dict):
    """(fill and drain of every binding's Einsums, the busiest unit's cycles with them) under one
    tiling: :func:`simulator.timing.einsum_fill` per Einsum and capable unit,
    picked by the binding (``tables`` as they are where no unit charges fill and drain)."""
    if not any(u.timing.charged for u in arch.units):
        return np.zeros_like(tables.cycles), tables.busy
    unit_names = [u.name for u in arch.units]
    fill = np.zeros((len(form.keys), len(unit_names)))
    for i, k in enumerate(form.keys):
        for u in form.units_for[k]:
            fill[i, unit_names.index(u)] = einsum_fill(form.prob, k, arch.unit(u),
                                                       spread(spatial, u, k), loops, names)
    cols = np.arange(len(form.keys))
    B = tables.bindings
    FB = np.where(tables.cycles != 0, fill[cols, B], 0.0)
    return FB, _busiest(B, tables.cycles + FB, len(unit_names))


@dataclass(frozen=True)
class _Memory:
    """Off-chip bytes and buffer terms of one tiling (independent of the binding)."""

    dram_read: float
    dram_write: float
    held: dict  # tensor -> bytes, for the tensors every binding keeps in the buffer
    reads: dict  # tensor -> its consumers' reads (simulator.buffer_rules), for those tensors
    glb_write: float
    optional: dict  # tensor -> (bytes, reads, words written) when a binding relays it out
    passes: dict  # Einsum -> its pass in the group


def _memory(form: Form, arch, loops: Loops, group: Group) -> _Memory:
    prob, keys = form.prob, form.keys
    wb = arch.word_bytes
    tr = group_traffic(prob, arch, loops, group, {k: "fused" for k in keys})
    forced = set(tr.boundary_in)
    loop_vars = {loops.var(n) for n in group.loops}
    for t in tr.produced:
        if t not in tr.boundary_out and (t in prob.recurrences or whole_along(prob, t, keys) & loop_vars):
            forced.add(t)
    passes = group_passes(prob, loops, group)
    held, reads = {}, {}
    glb_write = fill_words(tr, wb)
    for t in forced:
        held[t], reads[t], w = buffered_tensor(prob, loops, group, t, t in tr.produced, wb, passes)
        glb_write += w
    optional = {t: buffered_tensor(prob, loops, group, t, True, wb, passes)
                for t in tr.produced if t not in forced and t not in tr.boundary_out}
    return _Memory(tr.dram_read, tr.dram_write, held, reads, glb_write, optional, passes)


def _tiling_cost(form: Form, arch, tables: _Tables, mem: _Memory, loops: Loops, tiling: Tiling,
                 group: Group, spatial: dict, routes: dict):
    """(cycles, energy) of every binding under ``tiling``; ``inf`` where the buffer overflows."""
    keys = form.keys
    names = tiling.loops + tiling.buffer_loops
    n_iter = loops.product(names)
    distance = recurrence_distance(loops, names, step_var(form.prob, keys))
    cycles = recurrence_cycles(form.prob, keys)
    members = {x for cycle, _ in cycles for x in cycle}
    col = {k: i for i, k in enumerate(keys)}
    fill, busiest = _occupied(form, arch, tables, loops, names, spatial)
    per_iter = {x: tables.cycles[:, col[x]] / n_iter + fill[:, col[x]] / n_iter for x in members}
    latency = {x: tables.latency[:, col[x]] for x in members}
    rec = recurrence_bound(cycles, per_iter, latency, distance) * n_iter
    compute = np.maximum(busiest, rec)
    held, gr, gw = dict(mem.held), 0.0, mem.glb_write
    unit_of = {k: tables.bindings[:, col[k]] for k in keys}
    producer = form.prob.producer
    buffered = {}  # inner levels: tensor -> (reads, paid per read)
    for t, reads in mem.reads.items():
        owner = producer.get(t) if t in producer and producer[t] in col else None
        if arch.inner:
            buffered[t] = (reads, paid_reads(reads, owner, unit_of, mem.passes))
        else:
            gr = gr + buffer_read_words(reads, owner, unit_of, mem.passes)
    for t, (f, reads, w) in mem.optional.items():
        mask = tables.relayout.get(t)
        if mask is not None:
            held[t] = mask * f
            if arch.inner:
                buffered[t] = (reads, [np.logical_and(mask, p) for p in
                                       paid_reads(reads, producer[t], unit_of, mem.passes)])
            else:
                gr = gr + mask * buffer_read_words(reads, producer[t], unit_of, mem.passes)
            gw = gw + mask * w
    footprint = buffer_footprint(held, inplace_pairs(form.prob, tuple(keys)))
    cap = arch.buffer.capacity if arch.buffer else None
    ok = footprint <= cap if cap is not None else True  # per binding, or one for all
    cyc = np.maximum(compute, (mem.dram_read + mem.dram_write) / arch.offchip.bandwidth * arch.clock_hz)
    energy = tables.compute_energy + offchip_energy(mem.dram_read, mem.dram_write, arch)
    uses = {}
    if arch.inner:
        unit_names = [u.name for u in arch.units]
        candidates = {k: [(u, unit_names.index(u), spread(spatial, u, k))
                          for u in form.units_for[k]] for k in keys}
        reads, uses, fits = group_hierarchy(form.prob, arch, loops, group, buffered, unit_of,
                                            candidates, routes)
        gr = gr + reads
        ok = np.logical_and(ok, fits)
    for ports, _ in port_cycles(arch, gr, gw, uses):  # the model's bound (simulator.timing)
        cyc = np.maximum(cyc, ports)
    if arch.buffer:
        energy = energy + buffer_energy(gr, gw, arch)
    for lv in arch.inner:  # after the buffer, as the model's energy breakdown sums them
        energy = energy + level_energy(uses[lv.name].read, uses[lv.name].write, lv,
                                       arch.word_bytes)
    return np.where(ok, cyc, np.inf), np.where(ok, energy, np.inf)


def _own_choices(form: Form, arch, spatial: dict, loops: Loops, tilings: list) -> dict:
    """``spatial`` with every Einsum's own choice where the unit's misses it (a rank it does not
    index, or its recurrence rank): :func:`mapper.space.per_einsum`."""
    prob = form.prob
    recurrent = {k: prob.recurrences[prob.infos[k].einsum.name][1] for k in form.keys
                 if prob.infos[k].einsum.name in prob.recurrences}
    looped = frozenset(n for t in tilings for n in (*t.loops, *t.buffer_loops))
    looped |= {n for t in tilings for part in t.walked for n in (part, part[:-1])}  # split ranks
    return per_einsum(spatial, form.prepared.cascade, prob, form.keys, arch, loops, recurrent,
                      looped)


def evaluate_space(form: Form, arch, spatial: dict, tilings: list, memo: dict,
                   min_parallelism: float) -> list:
    """Evaluates every binding under every tiling of one spatial choice -> ``Candidates`` list."""
    unit_names = [u.name for u in arch.units]
    first = [unit_names.index(form.units_for[k][0]) for k in form.keys]
    probe = candidate_mapping(form, first, unit_names, spatial, tilings[0], "pipelined", {})
    spatial = _own_choices(form, arch, spatial, Loops(form.prob, probe), tilings)
    tables = _tables(form, arch, spatial, probe, min_parallelism)
    out = []
    for base in tilings:
        routes: dict = {}  # the inner levels' routes of this tiling, whatever they keep
        for tiling in keep_options(form, arch, base):
            mapping = candidate_mapping(form, tables.bindings[0], unit_names, spatial, tiling,
                                        "pipelined", {})
            loops = Loops(form.prob, mapping)
            key = (form.index, form.keys, tiling.signature[:2])  # the inner keeps do not change it
            mem = memo.get(key)
            if mem is None:
                mem = memo[key] = _memory(form, arch, loops, mapping.groups[0])
            cyc, energy = _tiling_cost(form, arch, tables, mem, loops, tiling, mapping.groups[0],
                                       spatial, routes)
            out.append(Candidates(cyc, energy, form, tables.bindings, spatial, tiling))
    return out
