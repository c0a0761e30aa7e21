"""A cycle-level, event-driven simulation of a mapping's schedule, to check the analytical model.

Every tile of every Einsum is a separate instance with its own start and end cycle: an instance
starts when its unit is free and every instance it depends on has finished (plus that producer's
result latency, e.g. a comparator chain across PEs). Dependences are the cascade's: the same tile of
a producer, the previous step of a recurrence (``RM[m1]`` read at step m1 was written at step m1-1),
or the last step for a final iterate (``RNV[M1]``). Einsums that do not iterate every loop of their
group (an epilogue) run once, in the tile where their missing loops reach their last value, for
their whole per-tile work (not amortised). ``pipelined`` groups dispatch, whenever a unit is free,
the oldest ready instance (tiles overlap freely); ``sequential`` groups run one tile at a time,
each unit in the mapping's order, ``X@prev`` running X of the previous tile.

Off-chip transfers are events too: each tile's share of the group's traffic is a transfer on an
off-chip channel that runs ahead of compute (prefetch; in sequential groups the next tile's
transfer overlaps the current tile), and a tile's instances wait for its transfer. Where on-chip
levels declare ports (:mod:`simulator.timing`), each tile's share of the busiest level's port
cycles is a transfer on a second channel, scheduled alike.

The spec's timing options are the model's (:func:`simulator.cost.evaluate_group` gives each
Einsum's fill and drain, and the port cycles): ``per_tile`` fill and drain (stationary-operand
loading included) is spread over an Einsum's instances, ``per_group`` is paid by its first one.
The pipeline's own ramp (the first tile's producers before its consumers can start, the last
tile's drain) is simulated, which the analytical steady state leaves out; on problems with many
tiles the two agree closely (the tests require 1%). Cost grows with the number of tiles, so this
is for small problems only.
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass

from ..arch import Arch
from ..mapping import Mapping

from ..cost import evaluate_group
from ..counts import group_traffic
from ..loops import Loops
from ..schedule import dependence_graph, step_var
from ..problem import Problem


def simulate_events(prob: Problem, arch: Arch, mapping: Mapping, max_instances: int = 2_000_000) -> dict:
    """Cycle count (and per-unit busy cycles) of ``mapping`` by event-driven simulation."""
    loops = Loops(prob, mapping)
    group_of = {k: g.name for g in mapping.groups for k in g.einsums}
    total = 0.0
    busy: dict = {}
    for group in mapping.groups:
        cycles, b = _simulate_group(prob, arch, mapping, loops, group, max_instances, group_of)
        total += cycles
        for u, v in b.items():
            busy[u] = busy.get(u, 0.0) + v
    return {"cycles": total, "busy": busy}


OFFCHIP = "@offchip"  # the off-chip channel, scheduled like a unit
PORTS = "@ports"  # the busiest ported on-chip level, scheduled alike


@dataclass(frozen=True)
class _Channel:
    """A transfer channel as a unit: one transfer per tile, no result latency."""

    unit: str = OFFCHIP
    latency: float = 0.0


class _Grid:
    """Iteration coordinates of a group's loops, and which Einsum instance runs where."""

    def __init__(self, extents: list, iterates: dict):
        self.extents, self.iterates = extents, iterates

    def coords(self, index: int) -> list:
        out = []
        for e in reversed(self.extents):
            out.append(index % e)
            index //= e
        return out[::-1]

    def runs_at(self, k, coords) -> bool:
        """An Einsum that does not iterate a loop runs once, at that loop's last value."""
        return all(it or c == e - 1
                   for it, c, e in zip(self.iterates[k], coords, self.extents, strict=True))

    def canon(self, k, coords) -> tuple:
        return tuple(c if it else e - 1
                     for it, c, e in zip(self.iterates[k], coords, self.extents, strict=True))


@dataclass(frozen=True)
class _Group:
    """What the simulation of one group needs."""

    keys: tuple
    costs: dict  # Einsum (or OFFCHIP) -> its cost (unit, latency)
    dur: dict  # Einsum (or OFFCHIP) -> cycles per instance
    n_iter: int
    grid: _Grid
    preds: dict  # Einsum -> [(producer, carried, final)]
    step_pos: list  # positions of the loops walking the recurrence's step
    channels: dict  # OFFCHIP / PORTS -> cycles of one tile's transfer (where there are any)
    order: dict  # Einsum -> program order (ties among ready instances)
    first: dict  # Einsum -> cycles its first instance adds (per_group fill and drain)


def _setup(prob, arch, mapping, loops, group, max_instances, group_of) -> _Group:
    keys = group.einsums
    all_loops = list(group.loops + group.buffer_loops)
    extents = [loops.extent(n) for n in all_loops]
    lvars = [loops.var(n) for n in all_loops]
    n_iter = math.prod(extents)
    gc, costs = evaluate_group(prob, arch, mapping, loops, group, group_of)  # the model's terms
    iterates = {k: [v in prob.infos[k].vars for v in lvars] for k in keys}
    n_inst = {k: math.prod(e for e, it in zip(extents, iterates[k], strict=True) if it) for k in keys}
    once = {k: arch.unit(costs[k].unit).timing.fill_drain == "per_group" for k in keys}
    dur = {k: (costs[k].cycles + (0.0 if once[k] else costs[k].fill_cycles)) / n_inst[k]
           for k in keys}
    first = {k: costs[k].fill_cycles for k in keys if once[k] and costs[k].fill_cycles}
    # off-chip transfers: one load per tile on the off-chip channel, which runs ahead of compute
    # (prefetching, as the analytical overlap assumes); every instance of a tile waits for it
    traffic = group_traffic(prob, arch, loops, group, group_of)
    bw = arch.offchip.bandwidth
    per_tile = {OFFCHIP: ((traffic.dram_read + traffic.dram_write) / bw * arch.clock_hz / n_iter
                          if bw else 0.0),
                PORTS: gc.bandwidth_cycles / n_iter}
    channels = {c: v for c, v in per_tile.items() if v > 0}
    if sum(n_inst.values()) > max_instances:
        raise ValueError("problem too large for the event-driven simulation")
    step = step_var(prob, keys)
    preds = {k: [] for k in keys}
    for x, y, carried, final in dependence_graph(prob, keys):
        preds[y].append((x, carried, final))
    order = {k: i for i, k in enumerate(keys)}
    for c, cycles in channels.items():
        costs[c], dur[c], order[c], preds[c] = _Channel(c), cycles, -1, []
    return _Group(keys, costs, dur, n_iter, _Grid(extents, iterates), preds,
                  [j for j, v in enumerate(lvars) if v == step], channels, order, first)


def _instances(g: _Group):
    """Instances ``(einsum, canonical coords) -> tile index``, their successors and the number
    of producers each waits for."""
    insts = {}
    for it in range(g.n_iter):
        c = g.grid.coords(it)
        for k in g.keys:
            if g.grid.runs_at(k, c):
                insts[(k, tuple(c))] = it
    succ = {i: [] for i in insts}
    npred = {i: 0 for i in insts}
    for channel in g.channels:
        loads = {(channel, tuple(g.grid.coords(it))): it for it in range(g.n_iter)}
        for i in loads:
            succ[i] = []
            npred[i] = 0
        for (k, c), it in insts.items():
            if k in g.keys:
                succ[(channel, tuple(g.grid.coords(it)))].append((k, c))
                npred[(k, c)] += 1
        insts.update(loads)
    for (k, c), _ in insts.items():
        for x, carried, _final in g.preds[k]:
            pc = list(c)
            if carried:
                if not g.step_pos or pc[g.step_pos[-1]] == 0:
                    continue
                pc[g.step_pos[-1]] -= 1
            pinst = (x, g.grid.canon(x, pc))
            if pinst not in insts or pinst == (k, c):
                continue
            succ[pinst].append((k, c))
            npred[(k, c)] += 1
    return insts, succ, npred


class _Dispatcher:
    """The event loop of a pipelined group: whenever a unit is free, the oldest ready instance."""

    def __init__(self, g: _Group, insts: dict, succ: dict, npred: dict):
        self.g, self.insts, self.succ, self.npred = g, insts, succ, npred
        self.units = sorted({g.costs[k].unit for k in g.keys} | set(g.channels))
        self.waiting = {u: [] for u in self.units}  # (ready time, key) not yet ready
        self.ready = {u: [] for u in self.units}  # (iteration, program order) ready
        self.counter = itertools.count()
        self.ready_at = {i: 0.0 for i in insts}
        self.free_at = {u: 0.0 for u in self.units}
        self.busy = {u: 0.0 for u in self.units}
        self.done: list = []
        self.first = dict(g.first)  # per_group fill and drain, paid by an Einsum's first instance
        for i, n in npred.items():
            if n == 0:
                heapq.heappush(self.waiting[self.unit(i)], (0.0, next(self.counter), i))

    def unit(self, inst) -> str:
        return self.g.costs[inst[0]].unit

    def start(self, t: float) -> None:
        for u in self.units:
            while self.waiting[u] and self.waiting[u][0][0] <= t:
                _, _, i = heapq.heappop(self.waiting[u])
                heapq.heappush(self.ready[u], (self.insts[i], self.g.order[i[0]], next(self.counter), i))
        for u in self.units:
            if self.free_at[u] <= t and self.ready[u]:
                _, _, _, i = heapq.heappop(self.ready[u])
                d = self.g.dur[i[0]] + self.first.pop(i[0], 0.0)
                self.free_at[u] = t + d
                self.busy[u] += d
                heapq.heappush(self.done, (t + d, next(self.counter), i))

    def next_time(self, t: float) -> float:
        candidates = [self.done[0][0]] if self.done else []
        for u in self.units:
            if self.waiting[u]:
                candidates.append(max(self.waiting[u][0][0], t))
            if self.ready[u] and self.free_at[u] > t:
                candidates.append(self.free_at[u])
        later = [c for c in candidates if c > t]
        nxt = min(later) if later else t
        if nxt == t and not any(self.free_at[u] <= t and self.ready[u] for u in self.units):
            nxt = min(candidates) if candidates else t
        return nxt

    def finish(self, t: float) -> tuple[int, float]:
        """Retires the instances done by ``t``: (how many, the last end time)."""
        n, end = 0, 0.0
        while self.done and self.done[0][0] <= t:
            te, _, i = heapq.heappop(self.done)
            n += 1
            end = max(end, te)
            lat = self.g.costs[i[0]].latency
            for s in self.succ[i]:
                self.ready_at[s] = max(self.ready_at[s], te + lat)
                self.npred[s] -= 1
                if self.npred[s] == 0:
                    heapq.heappush(self.waiting[self.unit(s)], (self.ready_at[s], next(self.counter), s))
        return n, end

    def run(self) -> tuple[float, dict]:
        t, end_time, remaining = 0.0, 0.0, len(self.insts)
        while remaining:
            self.start(t)
            t = self.next_time(t)
            n, end = self.finish(t)
            remaining -= n
            end_time = max(end_time, end)
        busy = dict(self.busy)
        for c in self.g.channels:
            busy.pop(c, None)
        return end_time, busy


def _simulate_group(prob, arch, mapping, loops, group, max_instances, group_of):
    g = _setup(prob, arch, mapping, loops, group, max_instances, group_of)
    if group.mode == "sequential":
        return _sequential(g, group)
    return _Dispatcher(g, *_instances(g)).run()


def _sequences(g: _Group, group) -> tuple[dict, set]:
    """Each unit's Einsums in the mapping's order, and those run a tile late (``@prev``)."""
    units = sorted({g.costs[k].unit for k in g.keys})
    seqs, deferred = {}, set()
    for u in units:
        names = group.order.get(u) or [k for k in g.keys if g.costs[k].unit == u]
        lst = []
        for entry in names:
            name, _, tag = entry.partition("@")
            if tag == "prev":
                deferred.add(name)
            lst.append(name)
        seqs[u] = lst
    return seqs, deferred


def _ready_deps(g: _Group, k, active: dict, deferred: set, end: dict):
    """End times (plus latency) of ``k``'s producers in this window; None if one has not run."""
    deps = []
    for x, carried, final in g.preds[k]:
        if x not in active or final:
            continue
        xd, kd = x in deferred, k in deferred
        if not ((carried and xd and not kd) or (not carried and xd == kd)):
            continue
        if x not in end:
            return None
        deps.append(end[x] + g.costs[x].latency)
    return deps


def _window(g: _Group, todo: dict, active: dict, deferred: set, busy: dict, first: dict) -> float:
    """List-schedules one window (each unit in order); returns its length. ``first``: the
    per_group fill and drain not paid yet (taken by an Einsum's first instance)."""
    end: dict = {}
    free = {u: 0.0 for u in todo}
    pos = {u: 0 for u in todo}
    while any(pos[u] < len(todo[u]) for u in todo):
        progressed = False
        for u in todo:
            if pos[u] >= len(todo[u]):
                continue
            k = todo[u][pos[u]]
            deps = _ready_deps(g, k, active, deferred, end)
            if deps is None:
                continue
            d = g.dur[k] + first.pop(k, 0.0)
            end[k] = max([free[u]] + deps) + d
            free[u] = end[k]
            busy[u] += d
            pos[u] += 1
            progressed = True
        if not progressed:
            raise ValueError("unit orders deadlock")
    return max(end.values()) if end else 0.0


def _sequential(g: _Group, group):
    """One tile at a time; within a tile each unit follows the mapping's order (X@prev runs the
    previous tile's X); epilogue Einsums run at full length in the tile where they fall."""
    seqs, deferred = _sequences(g, group)
    total = 0.0
    busy = {u: 0.0 for u in seqs}
    first = dict(g.first)
    for it in range(g.n_iter + 1):
        active = {}
        for u in seqs:
            for k in seqs[u]:
                tile = it - 1 if k in deferred else it
                if 0 <= tile < g.n_iter and g.grid.runs_at(k, g.grid.coords(tile)):
                    active[k] = True
        todo = {u: [k for k in seqs[u] if k in active] for u in seqs}
        window = _window(g, todo, active, deferred, busy, first)
        # the next tile's transfers overlap this tile (double buffering)
        total += max([window] + (list(g.channels.values()) if it < g.n_iter else []))
    return total, busy
