"""The mapper: enumerate the mapspace, evaluate it vectorised, select, re-simulate the best.

``search`` runs four steps, each its own function: the cascade's forms come from the pipeline
registry (as written, and after the one-pass pipeline where it applies); every form's spatial
choices and tilings are enumerated (:mod:`mapper.space`) and evaluated over all bindings at once
(:mod:`mapper.evaluate`); candidates are ranked by the objective (:mod:`mapper.select`); the best
are re-simulated with :func:`simulator.cost.simulate_problem` in every pipelining mode.

The cost of one search is independent of the sequence length: sizes enter only as numbers.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from einsum_ir.errors import CascadeError
from einsum_ir.passes import prepare
from simulator.cost import simulate_problem
from simulator.counts import Infeasible
from simulator.problem import problem_for

from .evaluate import Form, candidate_mapping, evaluate_space
from .fusion import FUSION, cut_points, partitions, placed
from .levels import with_level_splits
from .select import front_points, pareto_front, rank, report_key
from .space import batch_ranks, capable_units, spatial_options, tilings

MODES = ("pipelined", "sequential")
SPILL_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
# candidates each evaluated pool keeps beside its Pareto front, the best by the objective: the
# re-simulation walks the global order until it has its reports (some candidates fail it)
KEEP_PER_POOL = 64


@dataclass(frozen=True)
class SearchResult:
    objective: str
    best: list  # [(Mapping, Report)] best first
    evaluated: int  # candidates evaluated vectorised, plus every re-simulation
    feasible: int
    seconds: float
    front: list  # [(latency_s, energy_J)] Pareto front
    forms_tried: list = field(default_factory=list)
    resimulated: int = 0  # re-simulations of the best candidates (counted in evaluated)

    @property
    def form(self) -> str:
        return self.best[0][1].form if self.best else ""

    @property
    def rate(self) -> float:
        return self.evaluated / self.seconds if self.seconds else float("inf")


def pipeline_forms(cascade, tile_size: int, allow_rewrite: bool = True) -> list:
    """The forms the mapper maps: as written, and after the one-pass pipeline where it applies
    (with the split tile one PE dimension long, recorded as the pass's option)."""
    forms = [prepare(cascade, "as-written")]
    if allow_rewrite and prepare(cascade, "one-pass").applied:
        forms.append(prepare(cascade, "one-pass", tile_size=tile_size))
    return forms


def mapper_split_tiles(prepared, sizes=None) -> list:
    """Inner ranks of the splits of ``prepared.cascade`` the mapper may size (one PE dimension):
    those a pipeline introduced. A split written in the cascade keeps its declared (or --set)
    tile: the chunk size of a chunked algorithm is part of the algorithm, not a mapping choice."""
    written = {s.inner for s in prepared.source.splits}
    sized = {d.name for d in prepared.source.sizes if d.default is not None} | set(sizes or {})
    return [s.inner for s in prepared.cascade.splits if not (s.inner in written and s.inner in sized)]


def forms_for(cascade, arch, sizes=None, allow_rewrite: bool = True):
    """(forms the arch can run, the first Einsum no unit can run and the classes it needs)."""
    max_dim = max(max(u.dims) for u in arch.units)
    forms, missing = [], None
    for prepared in pipeline_forms(cascade, max_dim, allow_rewrite):
        casc = prepared.cascade
        split_sizes = {r: max_dim for r in mapper_split_tiles(prepared, sizes)}
        try:
            prob = problem_for(casc, {**dict(sizes or {}), **split_sizes})
        except CascadeError:
            continue
        units_for = {k: capable_units(arch, prob.infos[k].einsum) for k in prob.order}
        lacking = [k for k in prob.order if not units_for[k]]
        if lacking:
            k = lacking[0]
            missing = missing or (k, sorted(op for op, n in prob.infos[k].per_point.items() if n))
            continue
        forms.append(Form(len(forms), prepared, prob, units_for, split_sizes))
    return forms, missing


def _no_unit(arch, missing) -> CascadeError:
    if missing:
        k, need = missing
        return CascadeError(f"no unit of {arch.name} can run {k}: it needs the operation classes "
                            f"{', '.join(need)}",
                            hint=f"add the missing classes under units[*].ops of {arch.path} "
                                 "('other' covers elu, log, sqrt, ...)")
    return CascadeError(f"no unit of {arch.name} can run this cascade")


def _evaluate(forms, arch, spill_levels, min_parallelism, progress, imperfect=True,
              objective: str = "latency", keep: int | None = KEEP_PER_POOL) -> tuple[list, int, int]:
    """Every candidate of every form, as a list of ``Candidates`` each reduced to what the search
    may still choose (:func:`_kept`; ``keep=None``: all), and the numbers evaluated and
    feasible."""
    spaces = [(form, spatial, tile_sizes) for form in forms
              for spatial, tile_sizes in spatial_options(form.prepared.cascade, form.prob.sizes, arch)]
    bar = None
    if progress and len(spaces) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(spaces), desc="mapping", unit="space", leave=False)
    pools, memo, evaluated, feasible = [], {}, 0, 0
    for form, spatial, tile_sizes in spaces:
        casc = form.prepared.cascade
        found = tilings(casc, form.prob, form.keys, tile_sizes, batch_ranks(casc), spill_levels)
        for group in with_level_splits(casc, form.prob, form.keys, arch, found, spatial,
                                       imperfect):
            for c in evaluate_space(form, arch, spatial, group, memo, min_parallelism):
                c = _placed_only(c, arch)
                evaluated += len(c.cycles)
                feasible += int(np.isfinite(c.cycles).sum())
                pools.append(c if keep is None else _kept(c, objective, keep))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return pools, evaluated, feasible


def _kept(cand, objective: str, keep: int = KEEP_PER_POOL):
    """``cand`` without the candidates the search can no longer choose: the global Pareto
    front and best candidates by the objective are among each pool's front and best ``keep``
    (so the result is the same; a pool of millions of tilings and bindings stays small)."""
    if len(cand.cycles) <= keep:
        return cand
    fin = np.flatnonzero(np.isfinite(cand.cycles))
    front = fin[pareto_front(cand.cycles[fin], cand.energy[fin])]
    best = rank(cand.cycles, cand.energy, objective)[:keep]
    idx = np.union1d(front, best[np.isfinite(cand.cycles[best])])
    return dataclasses.replace(cand, cycles=cand.cycles[idx], energy=cand.energy[idx],
                               bindings=cand.bindings[idx])


def _placed_only(cand, arch):
    """``cand`` with the bindings that leave a tile part unplaced marked infeasible (a saved
    mapping must loop over or spread every part, see :func:`mapper.fusion.placed`)."""
    ok = placed(cand, [u.name for u in arch.units])
    if ok.all():
        return cand
    return dataclasses.replace(cand, cycles=np.where(ok, cand.cycles, np.inf),
                               energy=np.where(ok, cand.energy, np.inf))


def _record(form: Form, arch) -> dict:
    """What a saved mapping records of the form it was made for: the pipeline, as data."""
    p = form.prepared
    return {"cascade": p.source.name, "arch": arch.name, "pipeline": p.pipeline,
            "passes": p.applied, "cascade_digest": p.digest}


def _resimulate(pools: list, order: np.ndarray, arch, top: int, modes) -> tuple[list, int]:
    """Re-simulates the best distinct candidates in every mode until ``top`` per mode are found
    (and at least ``2 top`` reports); returns the reports and the number of re-simulations."""
    unit_names = [u.name for u in arch.units]
    sizes = np.array([len(p.cycles) for p in pools])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    lat = np.concatenate([p.cycles for p in pools])
    best, seen, runs = [], set(), 0
    for gi in order:
        if not np.isfinite(lat[gi]):
            break
        p = int(np.searchsorted(offsets, gi, side="right") - 1)
        cand = pools[p]
        row = cand.bindings[gi - offsets[p]]
        sig = (cand.form.index, tuple(row), tuple(sorted(cand.spatial.items(), key=str)), cand.tiling.signature)
        if sig in seen:
            continue
        seen.add(sig)
        record = _record(cand.form, arch)
        for mode in modes:
            mapping = candidate_mapping(cand.form, row, unit_names, cand.spatial, cand.tiling, mode,
                                        record)
            runs += 1
            try:
                best.append((mapping, simulate_problem(cand.form.prob, arch, mapping, mapping.form)))
            except (Infeasible, CascadeError):
                continue
        if len(best) >= max(2 * top, top * len(modes)):
            break
    return best, runs


def _resimulate_partitions(found: list, order: np.ndarray, arch, top: int, modes) -> tuple[list, int]:
    """Re-simulates the best ``top`` partitions (all groups in each mode); reports and runs."""
    unit_names = [u.name for u in arch.units]
    best, runs = [], 0
    for i in order[:top]:
        part = found[i]
        record = _record(part.form, arch)
        for mode in modes:
            mapping = part.mapping(unit_names, mode, record)
            runs += 1
            try:
                best.append((mapping, simulate_problem(part.form.prob, arch, mapping, mapping.form)))
            except (Infeasible, CascadeError):
                continue
    return best, runs


def _partitioned(forms, arch, fusion, spill_levels, min_parallelism) -> tuple[list, int]:
    """Partitions of every form into two or more groups, and the segment candidates evaluated."""
    found, evaluated, memo = [], 0, {}
    if fusion == "full":
        return found, evaluated
    for form in forms:
        parts, count = partitions(form, arch, fusion, spill_levels, min_parallelism, memo)
        found.extend(parts)
        evaluated += count
    return found, evaluated


def search(cascade, arch, sizes: dict | None = None, objective: str = "latency", top: int = 5,
           progress: bool = False, allow_rewrite: bool = True, modes=MODES,
           spill_levels=SPILL_LEVELS, min_parallelism: float = 1.0,
           fusion: str = "searched", imperfect_factors: bool = True) -> SearchResult:
    """Searches mappings of ``cascade`` on ``arch``; returns the best ``top`` (re-simulated).

    ``min_parallelism``: an Einsum may be bound to a unit only if it keeps at least this fraction
    of the unit's PEs busy (Timeloop's min-parallelism constraint; 1.0 = fill every PE dimension).
    Where no unit qualifies for an Einsum, every capable unit is allowed.

    ``fusion``: ``full`` maps the whole cascade as one fusion group; ``none`` cuts it wherever
    it may be cut (layer by layer; a recurrence stays in one group); ``searched`` (the default)
    chooses the cut points too (:mod:`mapper.fusion`), the single group being one candidate.

    ``imperfect_factors``: per-level tile factors (:mod:`mapper.levels`) include sizes that do
    not divide the rank (a ragged last tile); false: divisors only.
    """
    if fusion not in FUSION:
        raise CascadeError(f"unknown fusion {fusion!r}", hint="one of " + ", ".join(FUSION))
    t0 = time.perf_counter()
    forms, missing = forms_for(cascade, arch, sizes, allow_rewrite)
    if not forms:
        raise _no_unit(arch, missing)
    single = forms if fusion != "none" else [f for f in forms if not cut_points(f.prob, f.keys)]
    pools, evaluated, feasible = _evaluate(single, arch, spill_levels, min_parallelism, progress,
                                           imperfect_factors, objective)
    found, seg_evaluated = _partitioned(forms, arch, fusion, spill_levels, min_parallelism)
    p_lat = np.array([p.cycles for p in found])
    p_en = np.array([p.energy for p in found])
    lat = np.concatenate([p.cycles for p in pools] + [p_lat])
    en = np.concatenate([p.energy for p in pools] + [p_en])
    evaluated += seg_evaluated
    feasible += int(np.isfinite(p_lat).sum())
    if feasible == 0:
        raise CascadeError(f"no mapping of this cascade fits {arch.name}",
                           hint="every candidate exceeds the buffer capacity; try a larger buffer "
                                "(--arch-set) or the online-softmax form")
    best, runs = _resimulate(pools, rank(lat[:len(lat) - len(found)], en[:len(en) - len(found)],
                                         objective), arch, top, modes) if pools else ([], 0)
    parted, p_runs = _resimulate_partitions(found, rank(p_lat, p_en, objective), arch, top, modes)
    best += parted
    runs += p_runs
    best.sort(key=report_key(objective))
    return SearchResult(objective, best[:top], evaluated + runs, feasible,
                        time.perf_counter() - t0, front_points(lat, en, arch.clock_hz),
                        [f.prepared.describe() for f in forms], runs)
