"""The mapper's evaluator: the cost model in closed form, vectorised over bindings.

For one cascade form and one choice of spatial ranks, every Einsum's cost on every capable unit is
computed once (busy cycles, energy, result latency). Over all bindings at once (a matrix with one
row per binding) numpy then sums unit busy times, recurrence-cycle bounds and compute energy; for
every tiling (resident tiles, off-chip loop order, spill) the off-chip traffic and the buffer terms
are added, capacity is checked, and latency and energy follow. The few best mappings are then
re-simulated with :func:`simulator.model.simulate_problem` (which the tests check agrees).

The cost of one search is independent of the sequence length: sizes enter only as numbers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from einsum_ir import analyze
from einsum_ir.errors import CascadeError
from mapper.builders import pow2_divisors
from simulator.mapping import EinsumMap, Group, Mapping
from mapper.space import (Tiling, bindings, capable_units, pareto_front, perms, rank)

from .model import (Infeasible, Loops, _dependence_graph, _step_var, recurrence_distance, _whole_along, buffer_terms,
                    einsum_cost, group_traffic, inplace_pairs, simulate_problem)
from .problem import problem_for


@dataclass
class SearchResult:
    form: str
    objective: str
    best: list  # [(Mapping, Report)] best first
    evaluated: int
    feasible: int
    seconds: float
    front: list  # [(latency_s, energy_J)] Pareto front
    forms_tried: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.evaluated / self.seconds if self.seconds else float("inf")


def _forms(cascade, allow_rewrite: bool):
    out = [("as written", cascade)]
    if allow_rewrite:
        try:
            from einsum_ir.passes import online_softmax

            rewritten = online_softmax(cascade)
            if rewritten is not cascade and rewritten != cascade:
                out.append(("1-pass after online-softmax", rewritten))
        except Exception:  # the rewrite does not apply to this cascade
            pass
    return out


def _batch_ranks(cascade) -> list:
    decls = list(cascade.inputs) + list(cascade.outputs)
    if not decls:
        return []
    common = set(decls[0].ranks)
    for d in decls[1:]:
        common &= set(d.ranks)
    return [r for r in cascade.rank_names() if r in common]


def _spatial_candidates(cascade, sizes, dim: int) -> list:
    """Names that can be spread across ``dim`` PEs: a split's inner rank of that size, or the
    innermost tile (``R0``) of an unsplit rank at least that large. Batch ranks (in every input
    and output) are left to the outer loops: spreading them gives no reuse."""
    batch = set(_batch_ranks(cascade))
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


def _spatial_options(cascade, sizes, arch) -> list:
    per_unit = []
    for unit in arch.units:
        cands = _spatial_candidates(cascade, sizes, unit.dims[-1])
        if len(unit.dims) == 1:
            opts = [(c,) for c in cands] or [()]
        else:
            rows = _spatial_candidates(cascade, sizes, unit.dims[0])
            opts = [(a, b) for a in rows for b in cands if a[1] != b[1] and a[0] < b[0]]
            opts = opts or [(a,) for a in rows] or [()]
        per_unit.append([(unit.name, o) for o in opts])
    out = []
    for combo in _product(per_unit):
        spatial = {u: tuple(c[0] for c in o) for u, o in combo}
        tiles = {}
        ok = True
        for u, o in combo:
            for name, rank_, size in o:
                if size is None:
                    continue
                if rank_ in tiles and tiles[rank_] != size:
                    ok = False
                tiles[rank_] = size
        if ok:
            out.append((spatial, tiles))
    return out


def _product(lists):
    if not lists:
        return [()]
    out = [()]
    for lst in lists:
        out = [a + (b,) for a in out for b in lst]
    return out


def _tilings(cascade, prob, keys, tile_sizes: dict, batch: list, spill_levels) -> list:
    split_outer = [s.outer for s in cascade.splits if s.outer in prob.sizes]
    per_rank = []
    for r, d in tile_sizes.items():
        ks = pow2_divisors(max(1, prob.sizes[r] // d))
        per_rank.append([(r, k, d) for k in ks])
    names = {prob.infos[k].einsum.name for k in keys}
    out = []
    for combo in _product(per_rank):
        tiles = {r: {f"{r}1": k, f"{r}0": d} for r, k, d in combo}
        reuse = [f"{r}2" for r, _, _ in combo] + split_outer
        buffer_loops = tuple(f"{r}1" for r, _, _ in combo)
        orders = perms(reuse) if len(reuse) <= 3 else [tuple(reuse), tuple(reversed(reuse))]
        for order in orders:
            loops = tuple(batch) + order
            # intermediates a later pass needs whole along an off-chip loop may be spilled
            loop_vars = {n[:-1].lower() if n[:-1] in tiles else n.lower() for n in loops}
            spillable = sorted(t for t in names if _whole_along(prob, t, keys) & loop_vars)
            levels = spill_levels if spillable else (0.0,)
            for s in levels:
                spill = {t: s for t in spillable} if s else {}
                out.append(Tiling(tiles, loops, buffer_loops, spill))
    return out


def _mapping_for(keys, binding_row, unit_names, spatial, tiling: Tiling, mode, sizes, form,
                 cascade_name, arch_name) -> Mapping:
    maps = {k: EinsumMap(unit_names[u], tuple(spatial.get(unit_names[u], ())))
            for k, u in zip(keys, binding_row)}
    group = Group("fused", tuple(keys), mode, tiling.loops, tiling.buffer_loops, {},
                  dict(tiling.spill), {})
    return Mapping(maps, (group,), dict(tiling.tiles), dict(sizes), cascade_name, arch_name, form)


def search(cascade, arch, sizes: dict | None = None, objective: str = "latency", top: int = 5,
           progress: bool = False, allow_rewrite: bool = True, modes=("pipelined", "sequential"),
           spill_levels=(0.0, 0.25, 0.5, 0.75, 1.0), min_parallelism: float = 1.0) -> SearchResult:
    """Searches mappings of ``cascade`` on ``arch``; returns the best ``top`` (re-simulated).

    ``min_parallelism``: an Einsum may be bound to a unit only if it keeps at least this fraction
    of the unit's PEs busy (Timeloop's min-parallelism constraint; 1.0 = fill every PE dimension).
    Where no unit qualifies for an Einsum, every capable unit is allowed.
    """
    t0 = time.perf_counter()
    unit_names = [u.name for u in arch.units]
    nu = len(unit_names)
    pools = []  # (latency_cycles array, energy array, decoder)
    evaluated = 0
    feasible_total = 0
    forms_tried = []
    bar = None
    work_items = []
    missing_ops = None
    for form, casc in _forms(cascade, allow_rewrite):
        analyze(casc)
        base = dict(sizes or {})
        split_sizes = {}
        max_dim = max(max(u.dims) for u in arch.units)
        for s in casc.splits:
            split_sizes[s.inner] = max_dim
        overrides = {**base, **split_sizes}
        try:
            prob = problem_for(casc, overrides)
        except CascadeError:
            continue
        keys = prob.order
        units_for = {}
        for k in keys:
            units_for[k] = capable_units(arch, prob.infos[k].einsum)
            if not units_for[k]:
                need = sorted(op for op, n in prob.infos[k].per_point.items() if n)
                missing_ops = missing_ops or (k, need)
                break
        else:
            forms_tried.append(form)
            for spatial, tile_sizes in _spatial_options(casc, prob.sizes, arch):
                work_items.append((form, casc, prob, keys, units_for, spatial, tile_sizes, split_sizes))
    if not work_items:
        if missing_ops:
            k, need = missing_ops
            raise CascadeError(f"no unit of {arch.name} can run {k}: it needs the operation classes "
                               f"{', '.join(need)}",
                               hint=f"add the missing classes under units[*].ops of {arch.path} "
                                    "('other' covers elu, log, sqrt, ...)")
        raise CascadeError(f"no unit of {arch.name} can run this cascade")
    if progress and len(work_items) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(work_items), desc="mapping", unit="space", leave=False)
    memo: dict = {}
    for form, casc, prob, keys, units_for, spatial, tile_sizes, split_sizes in work_items:
        batch = _batch_ranks(casc)
        tilings = _tilings(casc, prob, keys, tile_sizes, batch, spill_levels)
        if not tilings:
            continue
        probe = _mapping_for(keys, [unit_names.index(units_for[k][0]) for k in keys], unit_names,
                             spatial, tilings[0], "pipelined", split_sizes, form, casc.name, arch.name)
        loops0 = Loops(prob, probe)
        ne = len(keys)
        T = np.zeros((ne, nu))
        EN = np.zeros((ne, nu))
        LAT = np.zeros((ne, nu))
        allowed = {}
        for i, k in enumerate(keys):
            ok_units = []
            for u in units_for[k]:
                j = unit_names.index(u)
                m = Mapping({k: EinsumMap(u, tuple(spatial.get(u, ())))}, (), probe.tiles)
                c = einsum_cost(prob, arch, m, loops0, k, "fused")
                T[i, j], EN[i, j], LAT[i, j] = c.cycles, c.energy_pJ, c.latency
                if c.pes_used >= min_parallelism * arch.unit(u).pes:
                    ok_units.append(u)
            allowed[k] = tuple(ok_units) or units_for[k]
        B = bindings(keys, allowed, unit_names)
        nb = B.shape[0]
        cols = np.arange(ne)
        TB = T[cols, B]  # nb x ne
        busy = np.zeros((nb, nu))
        for j in range(nu):
            busy[:, j] = np.where(B == j, TB, 0.0).sum(axis=1)
        e_compute = EN[cols, B].sum(axis=1)
        lat_b = LAT[cols, B]
        # recurrence cycles of the dependence graph
        g = nx.DiGraph()
        for x, y, carried, final in _dependence_graph(prob, keys):
            if not final:
                g.add_edge(x, y, carried=carried)
        cycles = []
        for cyc in nx.simple_cycles(g):
            tok = sum(1 for i, x in enumerate(cyc) if g.edges[x, cyc[(i + 1) % len(cyc)]]["carried"])
            if tok:
                idx = [keys.index(x) for x in cyc]
                cycles.append((idx, tok))
        step = _step_var(prob, keys)
        # relayout intermediates (kept in the buffer only when their units' layouts differ)
        produced = {prob.infos[k].einsum.name: i for i, k in enumerate(keys)}
        spatial_vars = {u: set() for u in unit_names}
        for u in unit_names:
            for name in spatial.get(u, ()):
                spatial_vars[u].add(loops0.var(name))
        wb = arch.word_bytes
        relayout = {}
        for t, pi in produced.items():
            tv = set(prob.infos[keys[pi]].out_vars)
            for k in keys:
                if t in prob.infos[k].reads:
                    tv |= prob.infos[k].reads[t]
            mask = np.zeros(nb, dtype=bool)
            for ci, k in enumerate(keys):
                if t not in prob.infos[k].reads:
                    continue
                for a in range(nu):
                    for c in range(nu):
                        if a == c or not ((spatial_vars[unit_names[a]] ^ spatial_vars[unit_names[c]]) & tv):
                            continue
                        mask |= (B[:, pi] == a) & (B[:, ci] == c)
            if mask.any():
                relayout[t] = mask
        for tiling in tilings:
            mapping = _mapping_for(keys, B[0], unit_names, spatial, tiling, "pipelined",
                                   split_sizes, form, casc.name, arch.name)
            loops = Loops(prob, mapping)
            group = mapping.groups[0]
            n_iter = 1
            for name in tiling.loops + tiling.buffer_loops:
                n_iter *= loops.extent(name)
            distance = recurrence_distance(loops, tiling.loops + tiling.buffer_loops, step)
            rec = np.zeros(nb)
            for idx, tok in cycles:
                val = (TB[:, idx].sum(axis=1) + n_iter * lat_b[:, idx].sum(axis=1)) / (tok * distance)
                rec = np.maximum(rec, val)
            compute = np.maximum(busy.max(axis=1), rec)
            tkey = (id(prob), tiling.describe(), tuple(sorted(tiling.spill.items())))
            hit = memo.get(tkey)
            if hit is None:
                dr, dw, b_in, b_out, prod_set, byp = group_traffic(prob, arch, loops, group,
                                                                   {k: "fused" for k in keys})
                forced = set(b_in)
                loop_vars = {loops.var(n) for n in tiling.loops}
                for t in prod_set:
                    if t not in b_out and (t in prob.recurrences or _whole_along(prob, t, keys) & loop_vars):
                        forced.add(t)
                held = {}
                base = [0.0, dw / wb, (dr - byp) / wb]
                for t in forced:
                    f, r, w = buffer_terms(prob, loops, group, t, t in prod_set, wb)
                    held[t] = f
                    base[0] += f
                    base[1] += r
                    base[2] += w
                for new, old in inplace_pairs(prob, tuple(keys)):
                    if new in held and old in held:
                        base[0] -= min(held[new], held[old])
                optional = {t: buffer_terms(prob, loops, group, t, True, wb)
                            for t in prod_set if t not in forced and t not in b_out}
                hit = (dr, dw, base, optional)
                memo[tkey] = hit
            dr, dw, base, optional = hit
            mem = (dr + dw) / arch.offchip.bandwidth * arch.clock_hz
            fp = np.full(nb, base[0])
            gr = np.full(nb, base[1])
            gw = np.full(nb, base[2])
            for t, (f, r, w) in optional.items():
                mask = relayout.get(t)
                if mask is None:
                    continue
                fp += mask * f
                gr += mask * r
                gw += mask * w
            cap = arch.buffer.capacity if arch.buffer else None
            ok = fp <= cap if cap is not None else np.ones(nb, dtype=bool)
            cyc = np.maximum(compute, mem)
            off = arch.offchip
            energy = e_compute + dr / off.access_bytes * off.read_pJ + dw / off.access_bytes * off.write_pJ
            if arch.buffer:
                per = arch.buffer.access_bytes / wb
                energy = energy + np.ceil(gr / per) * arch.buffer.read_pJ + np.ceil(gw / per) * arch.buffer.write_pJ
            cyc = np.where(ok, cyc, np.inf)
            energy = np.where(ok, energy, np.inf)
            evaluated += nb
            feasible_total += int(ok.sum())
            pools.append((cyc, energy, (form, casc, prob, keys, B, spatial, tiling, split_sizes)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not pools or feasible_total == 0:
        raise CascadeError(f"no mapping of this cascade fits {arch.name}",
                           hint="every candidate exceeds the buffer capacity; try a larger buffer "
                                "(--arch-set) or the online-softmax form")
    lat = np.concatenate([p[0] for p in pools])
    en = np.concatenate([p[1] for p in pools])
    offsets = np.cumsum([0] + [len(p[0]) for p in pools])
    order = rank(lat, en, objective)
    clock = arch.clock_hz
    fin = np.isfinite(lat)
    front_idx = pareto_front(lat[fin], en[fin])
    lat_f, en_f = lat[fin], en[fin]
    front = [(float(lat_f[i] / clock), float(en_f[i] * 1e-12)) for i in front_idx]
    best = []
    seen = set()
    for gi in order:
        if not np.isfinite(lat[gi]):
            break
        p = int(np.searchsorted(offsets, gi, side="right") - 1)
        form, casc, prob, keys, B, spatial, tiling, split_sizes = pools[p][2]
        row = B[gi - offsets[p]]
        sig = (form, tuple(row), tuple(sorted(spatial.items())), tiling.describe(),
               tuple(sorted(tiling.spill.items())))
        if sig in seen:
            continue
        seen.add(sig)
        for mode in modes:
            mapping = _mapping_for(keys, row, unit_names, spatial, tiling, mode, split_sizes,
                                   f"{form} ({casc.name})" if form != "as written" else form,
                                   casc.name, arch.name)
            try:
                report = simulate_problem(prob, arch, mapping, mapping.form)
            except (Infeasible, CascadeError):
                continue
            evaluated += 1 if mode != "pipelined" else 0
            best.append((mapping, report))
        if len({id(b[0].groups) for b in best}) >= 2 * top and len(best) >= top * len(modes):
            break
    key = {"latency": lambda mr: (mr[1].cycles, mr[1].energy_pJ),
           "energy": lambda mr: (mr[1].energy_pJ, mr[1].cycles),
           "edp": lambda mr: (mr[1].cycles * mr[1].energy_pJ, mr[1].cycles)}[objective]
    best.sort(key=key)
    seconds = time.perf_counter() - t0
    return SearchResult(best[0][0].form if best else "", objective, best[:top], evaluated,
                        feasible_total, seconds, front, forms_tried)
