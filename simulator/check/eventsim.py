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
transfer overlaps the current tile), and a tile's instances wait for its transfer.

Pipeline fill and drain are simulated, which the analytical steady state leaves out; on problems
with many tiles the two agree closely (the tests require 1%). Cost grows with the number of tiles,
so this is for small problems only.
"""
from __future__ import annotations

import heapq
import itertools
import math

from ..arch import Arch
from ..mapping import Mapping

from ..cost import einsum_cost
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


def _simulate_group(prob, arch, mapping, loops, group, max_instances, group_of):
    keys = group.einsums
    all_loops = list(group.loops + group.buffer_loops)
    extents = [loops.extent(n) for n in all_loops]
    lvars = [loops.var(n) for n in all_loops]
    n_iter = math.prod(extents)
    costs = {k: einsum_cost(prob, arch, mapping, loops, k, group.name) for k in keys}
    iterates = {k: [v in prob.infos[k].vars for v in lvars] for k in keys}
    n_inst = {k: math.prod(e for e, it in zip(extents, iterates[k]) if it) for k in keys}
    dur = {k: costs[k].cycles / n_inst[k] for k in keys}
    # off-chip transfers: one load per tile on the off-chip channel, which runs ahead of compute
    # (prefetching, as the analytical overlap assumes); every instance of a tile waits for it
    dr, dw, *_ = group_traffic(prob, arch, loops, group, group_of)
    bw = arch.offchip.bandwidth
    per_tile_mem = (dr + dw) / bw * arch.clock_hz / n_iter if bw else 0.0
    if sum(n_inst.values()) > max_instances:
        raise ValueError("problem too large for the event-driven simulation")
    step = step_var(prob, keys)
    edges = dependence_graph(prob, keys)
    preds = {k: [] for k in keys}
    for x, y, carried, final in edges:
        preds[y].append((x, carried, final))

    def coords_of(k_index):
        out = []
        for e in reversed(extents):
            out.append(k_index % e)
            k_index //= e
        return out[::-1]

    def index_of(coords):
        k = 0
        for c, e in zip(coords, extents):
            k = k * e + c
        return k

    def runs_at(k, coords):
        return all(it or c == e - 1 for it, c, e in zip(iterates[k], coords, extents))

    def canon(k, coords):
        return tuple(c if it else e - 1 for it, c, e in zip(iterates[k], coords, extents))

    order = {k: i for i, k in enumerate(keys)}
    if group.mode == "sequential":
        return _sequential(prob, keys, costs, dur, n_iter, coords_of, runs_at, preds, group, step,
                           lvars, per_tile_mem)
    # instances: (einsum, canonical coords)
    insts = {}
    for it in range(n_iter):
        c = coords_of(it)
        for k in keys:
            if runs_at(k, c):
                insts[(k, tuple(c))] = it
    if per_tile_mem > 0:
        loads = {}
        for it in range(n_iter):
            c = tuple(coords_of(it))
            loads[("@offchip", c)] = it
        costs = dict(costs)
        dur = dict(dur)
        dur["@offchip"] = per_tile_mem

        class _Chan:
            unit = "@offchip"
            latency = 0.0

        costs["@offchip"] = _Chan()
        order = dict(order)
        order["@offchip"] = -1
    succ = {i: [] for i in insts}
    npred = {i: 0 for i in insts}
    if per_tile_mem > 0:
        for i in loads:
            succ[i] = []
            npred[i] = 0
        for (k, c), it in insts.items():
            full = tuple(coords_of(it))
            succ[("@offchip", full)].append((k, c))
            npred[(k, c)] += 1
        insts.update(loads)
        preds = dict(preds)
        preds["@offchip"] = []
    step_pos = [j for j, v in enumerate(lvars) if v == step]
    for (k, c), it in insts.items():
        for x, carried, final in preds[k]:
            pc = list(c)
            if carried:
                if not step_pos:
                    continue
                j = step_pos[-1]
                if pc[j] == 0:
                    continue
                pc[j] -= 1
            pinst = (x, canon(x, pc))
            if pinst not in insts or pinst == (k, c):
                continue
            succ[pinst].append((k, c))
            npred[(k, c)] += 1
    ready_at = {i: 0.0 for i in insts}
    units = sorted({costs[k].unit for k in keys} | ({"@offchip"} if per_tile_mem > 0 else set()))
    waiting = {u: [] for u in units}  # (ready time, key) not yet ready
    ready = {u: [] for u in units}  # (iteration, program order) ready
    counter = itertools.count()
    for i, n in npred.items():
        if n == 0:
            heapq.heappush(waiting[costs[i[0]].unit], (0.0, next(counter), i))
    free_at = {u: 0.0 for u in units}
    done_events = []
    t = 0.0
    remaining = len(insts)
    end_time = 0.0
    busy = {u: 0.0 for u in units}
    while remaining:
        for u in units:
            while waiting[u] and waiting[u][0][0] <= t:
                _, _, i = heapq.heappop(waiting[u])
                heapq.heappush(ready[u], (insts[i], order[i[0]], next(counter), i))
        for u in units:
            if free_at[u] <= t and ready[u]:
                _, _, _, i = heapq.heappop(ready[u])
                d = dur[i[0]]
                free_at[u] = t + d
                busy[u] += d
                heapq.heappush(done_events, (t + d, next(counter), i))
        candidates = []
        if done_events:
            candidates.append(done_events[0][0])
        for u in units:
            if waiting[u]:
                candidates.append(max(waiting[u][0][0], t))
            if ready[u] and free_at[u] > t:
                candidates.append(free_at[u])
        nxt = min(c for c in candidates if c > t) if any(c > t for c in candidates) else t
        if nxt == t and not any(free_at[u] <= t and ready[u] for u in units):
            nxt = min(candidates) if candidates else t
        t = nxt
        while done_events and done_events[0][0] <= t:
            te, _, i = heapq.heappop(done_events)
            remaining -= 1
            end_time = max(end_time, te)
            lat = costs[i[0]].latency
            for s in succ[i]:
                ready_at[s] = max(ready_at[s], te + lat)
                npred[s] -= 1
                if npred[s] == 0:
                    heapq.heappush(waiting[costs[s[0]].unit], (ready_at[s], next(counter), s))
    busy.pop("@offchip", None)
    return end_time, busy


def _sequential(prob, keys, costs, dur, n_iter, coords_of, runs_at, preds, group, step, lvars,
                per_tile_mem=0.0):
    """One tile at a time; within a tile each unit follows the mapping's order (X@prev runs the
    previous tile's X); epilogue Einsums run at full length in the tile where they fall."""
    units = sorted({costs[k].unit for k in keys})
    seqs = {}
    deferred = set()
    for u in units:
        names = group.order.get(u) or [k for k in keys if costs[k].unit == u]
        lst = []
        for entry in names:
            name, _, tag = entry.partition("@")
            if tag == "prev":
                deferred.add(name)
            lst.append(name)
        seqs[u] = lst
    total = 0.0
    busy = {u: 0.0 for u in units}
    for it in range(n_iter + 1):
        end = {}
        free = {u: 0.0 for u in units}
        pos = {u: 0 for u in units}
        active = {}
        for u in units:
            for k in seqs[u]:
                tile = it - 1 if k in deferred else it
                if 0 <= tile < n_iter and runs_at(k, coords_of(tile)):
                    active[k] = True
        todo = {u: [k for k in seqs[u] if k in active] for u in units}
        while any(pos[u] < len(todo[u]) for u in units):
            progressed = False
            for u in units:
                if pos[u] >= len(todo[u]):
                    continue
                k = todo[u][pos[u]]
                deps = []
                ok = True
                for x, carried, final in preds[k]:
                    if x not in active or final:
                        continue
                    xd, kd = x in deferred, k in deferred
                    same_window = (carried and xd and not kd) or (not carried and xd == kd)
                    if not same_window:
                        continue
                    if x not in end:
                        ok = False
                        break
                    deps.append(end[x] + costs[x].latency)
                if not ok:
                    continue
                start = max([free[u]] + deps)
                end[k] = start + dur[k]
                free[u] = end[k]
                busy[u] += dur[k]
                pos[u] += 1
                progressed = True
            if not progressed:
                raise ValueError("unit orders deadlock")
        window = max(end.values()) if end else 0.0
        # the next tile's transfer overlaps this tile (double buffering)
        total += max(window, per_tile_mem if it < n_iter else 0.0)
    return total, busy
