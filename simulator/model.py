"""The analytical cost model: counts, then a schedule, then latency, energy, area.

Nothing here knows about attention. Given a problem (a cascade at fixed sizes), an architecture and
a mapping, for every fusion group:

1. **Counts.** Each Einsum's existing points times its operations per point (from the IR) give the
   operations it performs; the unit's cost table turns them into busy cycles
   ``T_X = points x cycles/point x spatial-folding / PEs``. Tensors crossing the group boundary are
   fetched from off-chip once per iteration of every off-chip loop that does not index them but
   encloses one that does (the classic reuse rule); spilled intermediates are written and read back.
   Buffer accesses count the tile each iteration reads or writes.
2. **Schedule.** A group runs ``N`` iterations (the product of its loops). ``pipelined``: tiles are
   software-pipelined (modulo-scheduled), so the steady state is bounded by the busiest unit
   (``max_U sum_{X on U} T_X``) and by every recurrence cycle (its per-iteration latency over the
   number of iterations between dependent steps). ``sequential``: a barrier between tiles; one
   tile is list-scheduled on the units in the mapping's order, with the latency of reductions that
   cross PEs (``hop_latency`` per PE) exposed, and the group takes ``N`` times that window.
   Einsums that do not iterate the stepped rank (an epilogue such as a final division) are spread
   evenly over the iterations (amortised), as are all whole-problem totals.
3. **Latency** of a group is its compute time overlapped with its off-chip transfer time
   (``max``); groups run one after another. **Energy** is counts times the action/access energy
   table, **area** the component table, **utilization** the busy fraction of each unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from einsum_ir.errors import CascadeError

from .arch import Arch, Unit
from .mapping import Group, Mapping, outer_part

from .problem import EinsumInfo, Problem


class Infeasible(CascadeError):
    """A mapping that breaks a capacity or binding constraint."""


@dataclass
class EinsumCost:
    key: str
    unit: str
    group: str
    points: int
    ops: dict
    cycles: float  # busy cycles of the unit (whole problem)
    per_iteration: float
    latency: float  # exposed result latency (reduction across PEs), cycles
    energy_pJ: float
    pes_used: int

    def to_json(self) -> dict:
        return {"einsum": self.key, "unit": self.unit, "group": self.group, "points": self.points,
                "ops": {k: v for k, v in self.ops.items() if v}, "cycles": self.cycles,
                "per_iteration_cycles": self.per_iteration, "result_latency": self.latency,
                "energy_J": self.energy_pJ * 1e-12, "pes_used": self.pes_used}


@dataclass
class GroupCost:
    name: str
    mode: str
    iterations: int
    compute_cycles: float
    memory_cycles: float
    cycles: float
    bound: str
    busy: dict  # unit -> cycles
    dram_read: float  # bytes
    dram_write: float
    glb_read: float  # words
    glb_write: float
    footprint: float  # bytes in the on-chip buffer
    window: float = 0.0  # sequential: cycles per tile window
    recurrence_cycles: float = 0.0

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in (
            "name", "mode", "iterations", "compute_cycles", "memory_cycles", "cycles", "bound",
            "busy", "dram_read", "dram_write", "glb_read", "glb_write", "footprint", "window",
            "recurrence_cycles")}


@dataclass
class Report:
    arch: str
    cycles: float
    latency_s: float
    energy_pJ: float
    energy_breakdown: dict
    traffic_bytes: float
    traffic: dict
    area_mm2: float
    utilization: dict
    einsums: list
    groups: list
    form: str = ""
    mapping: Mapping | None = None
    sizes: dict = field(default_factory=dict)

    @property
    def energy_J(self) -> float:
        return self.energy_pJ * 1e-12

    def to_json(self) -> dict:
        return {
            "arch": self.arch, "form": self.form, "cycles": self.cycles,
            "latency_s": self.latency_s, "energy_J": self.energy_J,
            "energy_breakdown_J": {k: v * 1e-12 for k, v in self.energy_breakdown.items()},
            "traffic_bytes": self.traffic_bytes, "traffic": self.traffic,
            "area_mm2": self.area_mm2, "utilization": self.utilization,
            "per_einsum": [e.to_json() for e in self.einsums],
            "groups": [g.to_json() for g in self.groups],
            "sizes": self.sizes,
            "mapping": self.mapping.to_dict() if self.mapping else None,
        }


# ------------------------------------------------------------------------------ loop structure


class Loops:
    """Extents and index variables of loop names (cascade ranks or tile parts)."""

    def __init__(self, prob: Problem, mapping: Mapping):
        self.prob = prob
        self.parts: dict = {}  # part name -> (rank, size)
        for rank, parts in mapping.tiles.items():
            if rank not in prob.sizes:
                raise CascadeError(f"mapping: tiles.{rank}: the cascade has no rank {rank}")
            inner = 1
            for size in parts.values():
                inner *= size
            outer = outer_part(rank, parts)
            self.parts[outer] = (rank, math.ceil(prob.sizes[rank] / inner))
            for part, size in parts.items():
                self.parts[part] = (rank, size)
        self._var: dict = {}
        self._iters: dict = {}

    def iterations(self, info, loop_names: tuple) -> int:
        """Tiles an Einsum runs: the product of the loops over its iteration space (memoised)."""
        key = (info.key, loop_names)
        n = self._iters.get(key)
        if n is None:
            n = 1
            for name in loop_names:
                if self.var(name) in info.vars:
                    n *= self.extent(name)
            self._iters[key] = n
        return n

    def extent(self, name: str) -> int:
        if name in self.parts:
            return self.parts[name][1]
        if name in self.prob.sizes:
            return self.prob.sizes[name]
        raise CascadeError(f"mapping: no rank or tile part named {name!r}",
                           hint="loops name cascade ranks (B, M1) or tile parts declared under tiles:")

    def var(self, name: str) -> str:
        v = self._var.get(name)
        if v is None:
            v = self.parts[name][0].lower() if name in self.parts else name.lower()
            self._var[name] = v
        return v


# ------------------------------------------------------------------------------ per Einsum


def op_counts(info: EinsumInfo, unit: Unit) -> dict:
    counts = {k: v for k, v in info.per_point.items() if v}
    if "exp_sub" in unit.ops and info.exp_sub:
        k = min(info.exp_sub, counts.get("exp", 0), counts.get("add", 0))
        if k:
            counts["exp"] -= k
            counts["add"] -= k
            counts["exp_sub"] = k
    return {k: v for k, v in counts.items() if v}


def cycles_per_point(info: EinsumInfo, unit: Unit, counts: dict) -> float:
    total = 0.0
    for op, n in counts.items():
        cost = unit.ops.get(op)
        if cost is None:
            raise Infeasible(f"unit {unit.name} cannot perform {op} (needed by {info.key})",
                             hint=f"bind {info.key} to a unit whose ops include {op}")
        total += n * cost.cycles
    return total


def einsum_cost(prob: Problem, arch: Arch, mapping: Mapping, loops: Loops, key: str,
                group: str) -> EinsumCost:
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
    for dim, name in zip(unit.dims, em.spatial):
        if name not in loops.parts and name not in prob.sizes:
            raise CascadeError(f"mapping: einsums.{key}.spatial: no rank or tile part named {name!r}",
                               hint="spread a rank of the cascade (M0) or a tile part declared "
                                    "under tiles: (P0)")
        var = loops.var(name)
        if var in info.vars:
            ext = prob.sizes[var.upper()]
            used = min(ext, dim, loops.extent(name) if name in loops.parts else ext)
            factor *= math.ceil(ext / used) / ext
            if var in info.reduced:
                op = "max" if info.reducer in ("max", "min") else (
                    "mac" if info.per_point.get("mac") else "add")
                cost = unit.ops.get(op)
                if cost is not None:
                    latency += cost.hop_latency * used
        else:
            used = 1
        used_pes *= used
    cycles = cpp * info.points * factor
    energy = 0.0
    for op, n in counts.items():
        for act, k in unit.ops[op].actions.items():
            energy += info.points * n * k * arch.actions[act]
    full_ops = {op: n * info.points for op, n in counts.items()}
    return EinsumCost(key, unit.name, group, info.points, full_ops, cycles, 0.0, latency, energy,
                      used_pes)


# ------------------------------------------------------------------------------ memory


def _tensor_vars(prob: Problem, tensor: str, keys) -> set:
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
    return vs


def _whole_along(prob: Problem, tensor: str, keys: tuple) -> set:
    """Variables along which an intermediate must be kept whole: a consumer of it needs a full
    reduction over that variable of something computed from it (the pass structure)."""
    cache = prob.__dict__.setdefault("_whole_cache", {})
    key = (tensor, tuple(keys))
    if key not in cache:
        cache[key] = frozenset(_whole_along_uncached(prob, tensor, tuple(keys)))
    return set(cache[key])


def _whole_along_uncached(prob: Problem, tensor: str, keys: tuple) -> set:
    g = nx.DiGraph()
    g.add_nodes_from(keys)
    names = {prob.infos[k].einsum.name: k for k in keys}
    for k in keys:
        for t in prob.infos[k].reads:
            if t in names and names[t] != k:
                g.add_edge(names[t], k)
    prod = names.get(tensor)
    if prod is None:
        return set()
    out = set()
    after = nx.descendants(g, prod)
    consumers = [k for k in keys if tensor in prob.infos[k].reads]
    for x in after:
        for v in prob.infos[x].reduced:
            for y in consumers:
                if y != x and y in nx.descendants(g, x):
                    out.add(v)
    return out


def _refetch(loops: Loops, names: tuple, tvars: set) -> int:
    factor = 1
    for i, name in enumerate(names):
        if loops.var(name) in tvars:
            continue
        if any(loops.var(inner) in tvars for inner in names[i + 1:]):
            factor *= loops.extent(name)
    return factor


def _tile_words(prob: Problem, loops: Loops, tvars: set, loop_names: tuple, whole: set = frozenset()) -> float:
    words = 1.0
    for v in tvars:
        ext = prob.sizes[v.upper()]
        if v in whole:
            words *= ext
            continue
        outer = 1
        for name in loop_names:
            if loops.var(name) == v:
                outer *= loops.extent(name)
        words *= math.ceil(ext / outer)
    return words


# ------------------------------------------------------------------------------ schedule


def _dependence_graph(prob: Problem, keys: tuple):
    """Edges X -> Y (Y reads X's output) with ``carried`` when Y reads the previous step."""
    names = {prob.infos[k].einsum.name: k for k in keys}
    edges = []
    for y in keys:
        info = prob.infos[y]
        for t in info.reads:
            x = names.get(t)
            if x is None:
                continue
            carried = bool(info.carried.get(t))
            if x == y and not carried:
                continue
            edges.append((x, y, carried, t in info.final))
    return edges


def _step_var(prob: Problem, keys: tuple):
    for k in keys:
        t = prob.infos[k].einsum.name
        if t in prob.recurrences:
            return prob.recurrences[t][1]
    return None


def recurrence_distance(loops: Loops, loop_names, step) -> int:
    """Iterations between two dependent steps of a recurrence over index ``step``: the product of
    the extents of the loops inside the innermost loop that walks ``step`` (1 if none does)."""
    distance = 1
    if step is None:
        return distance
    positions = [i for i, name in enumerate(loop_names) if loops.var(name) == step]
    if positions:
        for name in loop_names[positions[-1] + 1:]:
            distance *= loops.extent(name)
    return distance


def recurrence_bound(prob, keys, costs: dict, per_iter: dict, distance: int) -> float:
    g = nx.DiGraph()
    for x, y, carried, final in _dependence_graph(prob, keys):
        if final:
            continue
        g.add_edge(x, y, carried=carried)
    best = 0.0
    for cycle in nx.simple_cycles(g):
        tokens = sum(1 for i, x in enumerate(cycle)
                     if g.edges[x, cycle[(i + 1) % len(cycle)]]["carried"])
        if not tokens:
            continue
        work = sum(per_iter[x] + costs[x].latency for x in cycle)
        best = max(best, work / (tokens * distance))
    return best


def sequential_window(prob, keys, costs: dict, per_iter: dict, order: dict, units: list,
                      epilogue: set) -> float:
    """List-schedules one tile: each unit runs its ops in ``order``; returns the window length."""
    deferred = set()
    seq: dict = {}
    for unit in units:
        names = order.get(unit)
        if names is None:
            names = [k for k in keys if costs[k].unit == unit]
        lst = []
        for entry in names:
            name, _, tag = entry.partition("@")
            if name not in costs or costs[name].unit != unit:
                raise CascadeError(f"mapping: order.{unit}: {name} is not bound to {unit} in this group")
            if tag == "prev":
                deferred.add(name)
            elif tag:
                raise CascadeError(f"mapping: order.{unit}: unknown marker @{tag} (only @prev)")
            lst.append(name)
        missing = [k for k in keys if costs[k].unit == unit and k not in lst]
        if missing:
            raise CascadeError(f"mapping: order.{unit} leaves out {', '.join(missing)}")
        seq[unit] = lst
    preds: dict = {k: [] for k in keys}
    for x, y, carried, final in _dependence_graph(prob, keys):
        if final or x in epilogue or y in epilogue:
            continue
        xd, yd = x in deferred, y in deferred
        if carried:
            if xd and not yd:
                preds[y].append(x)
        elif xd == yd:
            preds[y].append(x)
        elif xd and not yd:
            raise CascadeError(f"mapping: {y} needs {x} of the same tile, but {x} is deferred (@prev)")
    end: dict = {}
    free = {u: 0.0 for u in seq}
    pos = {u: 0 for u in seq}
    remaining = sum(len(v) for v in seq.values())
    while remaining:
        best = None
        for u, lst in seq.items():
            if pos[u] >= len(lst):
                continue
            k = lst[pos[u]]
            if any(p not in end for p in preds[k]):
                continue
            start = max([free[u]] + [end[p] + costs[p].latency for p in preds[k]])
            if best is None or start < best[0]:
                best = (start, u, k)
        if best is None:
            stuck = [seq[u][pos[u]] for u in seq if pos[u] < len(seq[u])]
            raise CascadeError(f"mapping: the unit orders deadlock at {', '.join(stuck)}",
                               hint="order each unit's Einsums consistently with their dependences")
        start, u, k = best
        end[k] = start + per_iter[k]
        free[u] = end[k]
        pos[u] += 1
        remaining -= 1
    return max(end.values()) if end else 0.0


# ------------------------------------------------------------------------------ the model


def default_keep(prob: Problem, mapping: Mapping, loops: Loops, group: Group, boundary_in: set,
                 boundary_out: set) -> dict:
    """What the buffer keeps when the mapping does not say: the tensors read from outside the
    group, the recurrences' running values, and intermediates that change layout between units
    (a rank spread across PEs on one unit is walked in time on the other) or that a later pass
    needs whole."""
    keep = {}
    keys = group.einsums
    for t in boundary_in:
        keep[t] = "GLB"
    produced = {prob.infos[k].einsum.name: k for k in keys}
    for t, k in produced.items():
        if t in prob.recurrences:
            keep[t] = "GLB"
            continue
        if t in boundary_out:
            continue
        consumers = [c for c in keys if t in prob.infos[c].reads]
        pm = mapping.einsums[k]
        pspatial = {loops.var(s) for s in pm.spatial}
        tv = _tensor_vars(prob, t, keys)
        relayout = False
        for c in consumers:
            cm = mapping.einsums[c]
            if cm.unit == pm.unit:
                continue
            cspatial = {loops.var(s) for s in cm.spatial}
            if (pspatial ^ cspatial) & tv:
                relayout = True
        whole = _whole_along(prob, t, keys) & {loops.var(n) for n in group.loops}
        keep[t] = "GLB" if relayout or whole else "PE"
    return keep


def buffer_terms(prob: Problem, loops: Loops, group: Group, t: str, produced: bool, wb: int):
    """(bytes held in the buffer, words read from it, words written to it) for tensor ``t``."""
    keys = group.einsums
    all_loops = group.loops + group.buffer_loops
    tv = _tensor_vars(prob, t, keys)
    whole = _whole_along(prob, t, keys) if produced else set()
    if whole:
        # kept whole along v: every off-chip loop nested inside v's outermost loop also runs
        # while the tensor is held, so it is kept whole along that loop's variable too
        names = list(group.loops)
        first = min((i for i, n in enumerate(names) if loops.var(n) in whole), default=None)
        if first is not None:
            whole = set(whole) | {loops.var(n) for n in names[first + 1:] if loops.var(n) in tv}
    tile = _tile_words(prob, loops, tv, group.loops, whole)
    footprint = tile * (1 - group.spill.get(t, 0.0)) * wb
    per_iter_tile = _tile_words(prob, loops, tv, all_loops)
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


def group_traffic(prob: Problem, arch: Arch, loops: Loops, group: Group, group_of: dict):
    """Off-chip bytes (read, written) of a group, and its boundary tensors (in, out)."""
    wb = arch.word_bytes
    keys = group.einsums
    produced = {prob.infos[k].einsum.name for k in keys}
    reads = set()
    for k in keys:
        reads |= set(prob.infos[k].reads)
    boundary_in = {t for t in reads if t not in produced}
    boundary_out = set()
    for t in produced:
        if prob.is_output(t) or any(group_of.get(c) != group.name for c in prob.consumers.get(t, [])):
            boundary_out.add(t)
    dram_read = dram_write = bypass = 0.0
    all_loops = group.loops + group.buffer_loops
    for t in boundary_in:
        tv = _tensor_vars(prob, t, keys)
        if group.keep.get(t) == arch.offchip.name:
            # not kept in the buffer: streamed from off-chip into the array for every tile that
            # uses it (every loop that does not index it repeats the stream)
            factor = 1
            for name in all_loops:
                if loops.var(name) not in tv:
                    factor *= loops.extent(name)
            moved = prob.tensor_words(t) * wb * factor
            bypass += moved
            dram_read += moved
            continue
        dram_read += prob.tensor_words(t) * wb * _refetch(loops, group.loops, tv)
    for t in boundary_out:
        dram_write += prob.tensor_words(t) * wb
    for t, s in group.spill.items():
        if t not in produced:
            raise CascadeError(f"mapping: group {group.name}: spill.{t}: {t} is not produced in the group")
        words = prob.tensor_words(t)
        density = prob.infos[prob.producer[t]].density
        dram_write += s * words * density * wb
        dram_read += s * words * density * wb
    return dram_read, dram_write, boundary_in, boundary_out, produced, bypass


def inplace_pairs(prob: Problem, keys: tuple) -> list:
    """(new, old) intermediates where ``new`` may take ``old``'s buffer space: ``new`` is an
    element-wise map (no reduction) over exactly ``old``'s indices and the last reader of ``old``
    in the group (the softmax numerator overwriting the scores, the probabilities the numerator)."""
    cache = prob.__dict__.setdefault("_inplace_cache", {})
    if keys in cache:
        return cache[keys]
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
    cache[keys] = out
    return out


def simulate_problem(prob: Problem, arch: Arch, mapping: Mapping, form: str = "") -> Report:
    loops = Loops(prob, mapping)
    grouped = [k for g in mapping.groups for k in g.einsums]
    missing = [k for k in prob.order if k not in grouped]
    if missing:
        raise CascadeError(f"mapping: Einsums {', '.join(missing)} are in no group")
    unknown = [k for k in grouped if k not in prob.infos]
    if unknown:
        raise CascadeError(f"mapping: the cascade has no Einsum {unknown[0]}",
                           hint="Einsums: " + ", ".join(prob.order))
    wb = arch.word_bytes
    group_of = {k: g.name for g in mapping.groups for k in g.einsums}
    all_costs: dict = {}
    group_costs = []
    energy = {"compute": 0.0, arch.offchip.name: 0.0}
    if arch.buffer:
        energy[arch.buffer.name] = 0.0
    busy_total = {u.name: 0.0 for u in arch.units}
    total_cycles = 0.0
    dram_total = 0.0
    glb_total = 0.0
    for group in mapping.groups:
        keys = group.einsums
        costs = {k: einsum_cost(prob, arch, mapping, loops, k, group.name) for k in keys}
        all_costs.update(costs)
        n_iter = 1
        for name in group.loops + group.buffer_loops:
            n_iter *= loops.extent(name)
        per_iter = {k: c.cycles / n_iter for k, c in costs.items()}
        for k, c in costs.items():
            c.per_iteration = per_iter[k]
        busy = {}
        for k, c in costs.items():
            busy[c.unit] = busy.get(c.unit, 0.0) + c.cycles
        # recurrences: iterations between dependent steps
        step = _step_var(prob, keys)
        distance = recurrence_distance(loops, group.loops + group.buffer_loops, step)
        rec = recurrence_bound(prob, keys, costs, per_iter, distance) * n_iter
        window = 0.0
        if group.mode == "pipelined":
            compute = max([rec] + list(busy.values()))
        else:
            epilogue = {k for k in keys if step is not None and step not in prob.infos[k].vars}
            units = [u.name for u in arch.units if u.name in busy]
            window = sequential_window(prob, keys, costs, per_iter, group.order, units, epilogue)
            compute = window * n_iter
        # off-chip traffic
        dram_read, dram_write, boundary_in, boundary_out, produced, bypass = group_traffic(
            prob, arch, loops, group, group_of)
        bw = arch.offchip.bandwidth
        memory = (dram_read + dram_write) / bw * arch.clock_hz if bw else 0.0
        # on-chip buffer: capacity and accesses
        keep = default_keep(prob, mapping, loops, group, boundary_in, boundary_out)
        keep.update(group.keep)
        footprint = 0.0
        glb_read = (dram_write) / wb  # drained to off-chip through the buffer
        glb_write = (dram_read - bypass) / wb  # filled from off-chip
        held = {}
        for t, level in keep.items():
            if level != "GLB":
                continue
            fp, r, w = buffer_terms(prob, loops, group, t, t in produced, wb)
            held[t] = fp
            footprint += fp
            glb_read += r
            glb_write += w
        for new, old in (inplace_pairs(prob, group.einsums) if group.inplace else ()):
            if new in held and old in held:
                footprint -= min(held[new], held[old])
        if arch.buffer and arch.buffer.capacity is not None and footprint > arch.buffer.capacity:
            raise Infeasible(f"mapping: group {group.name} needs {footprint / 2**20:.2f} MiB in "
                             f"{arch.buffer.name} but it holds {arch.buffer.capacity / 2**20:.2f} MiB",
                             hint="use smaller buffer tiles (e.g. fewer resident query tiles) or spill")
        cycles = max(compute, memory)
        bound = "memory" if memory > compute else (
            "recurrence" if group.mode == "pipelined" and rec >= max(busy.values()) and rec > 0 else "compute")
        group_costs.append(GroupCost(group.name, group.mode, n_iter, compute, memory, cycles, bound,
                                     busy, dram_read, dram_write, glb_read, glb_write, footprint,
                                     window, rec))
        total_cycles += cycles
        for u, b in busy.items():
            busy_total[u] += b
        for c in costs.values():
            energy["compute"] += c.energy_pJ
        off = arch.offchip
        energy[off.name] += (dram_read / off.access_bytes) * off.read_pJ \
            + (dram_write / off.access_bytes) * off.write_pJ
        if arch.buffer:
            per_access = arch.buffer.access_bytes / wb
            energy[arch.buffer.name] += math.ceil(glb_read / per_access) * arch.buffer.read_pJ \
                + math.ceil(glb_write / per_access) * arch.buffer.write_pJ
        dram_total += dram_read + dram_write
        glb_total += (glb_read + glb_write) * wb
    latency = total_cycles / arch.clock_hz
    util = {u: (b / total_cycles if total_cycles else 0.0) for u, b in busy_total.items()}
    traffic = {arch.offchip.name: dram_total}
    if arch.buffer:
        traffic[arch.buffer.name] = glb_total
    return Report(arch.name, total_cycles, latency, sum(energy.values()), energy, dram_total,
                  traffic, arch.area_um2 / 1e6, util, [all_costs[k] for k in prob.order if k in all_costs],
                  group_costs, form, mapping, {k: v for k, v in prob.sizes.items()})


def simulate(cascade, arch: Arch, mapping: Mapping, sizes: dict | None = None, form: str = "") -> Report:
    """Simulates ``cascade`` (with size overrides ``sizes`` and the mapping's own sizes)."""
    from .problem import problem_for

    overrides = dict(sizes or {})
    overrides.update(mapping.sizes)
    prob = problem_for(cascade, overrides)
    return simulate_problem(prob, arch, mapping, form or mapping.form)
