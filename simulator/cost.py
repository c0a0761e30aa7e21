"""The analytical cost model: counts, then a schedule, then latency, energy, area.

Nothing here knows about attention. Given a problem (a cascade at fixed sizes), an architecture and
a mapping, every fusion group is costed from its counts (:mod:`simulator.counts`) and its schedule
(:mod:`simulator.schedule`):

* **Latency** of a group is its compute time overlapped with its off-chip transfer time
  (``max``); groups run one after another. Einsums that do not iterate the stepped rank (an
  epilogue such as a final division) are spread evenly over the iterations (amortised), as are
  all whole-problem totals.
* **Energy** is counts times the action/access energy table (register-file accesses per
  operation where the spec charges them; buffer accesses under the rules of
  :mod:`simulator.buffer_rules`), **area** the component table plus the memory levels' areas,
  **utilization** the busy fraction of each unit.

The energy and footprint formulas take numbers or numpy arrays (one entry per candidate), so the
mapper's vectorised evaluator uses these same functions.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from einsum_ir.errors import CascadeError

from .arch import Arch, Unit
from .buffer_rules import (buffer_read_words, buffered_tensor, fill_words, group_passes,
                           paid_reads)
from .counts import Infeasible, default_keep, einsum_counts, group_traffic, inplace_pairs
from .hierarchy import group_hierarchy, level_energy
from .loops import Loops
from .mapping import Group, Mapping
from .problem import Problem, problem_for
from .report import EinsumCost, GroupCost, Report, pe_utilization
from .schedule import (recurrence_bound, recurrence_cycles, recurrence_distance, sequential_window,
                       step_var)
from .timing import bandwidth_bound, fill_drain_cycles, with_fill

# ------------------------------------------------------------------------------ energy


# Register-file accesses of one operation (operands read, result written): a MAC reads its two
# factors and the partial sum; a binary operation two operands; a unary function one.
RF_ACCESSES = {"mac": (3, 1), "add": (2, 1), "mul": (2, 1), "max": (2, 1), "div": (2, 1),
               "cmp": (2, 1), "exp": (1, 1), "other": (1, 1), "exp_sub": (2, 1)}


def compute_energy(ops: dict, unit: Unit, arch: Arch) -> float:
    """pJ of ``ops`` (op class -> operations) on ``unit``: every action an op takes, priced, and
    the register-file accesses of every operation (:func:`register_file_energy`)."""
    energy = 0.0
    for op, n in ops.items():
        for act, k in unit.ops[op].actions.items():
            energy += n * k * arch.actions[act]
    return energy + register_file_energy(ops, unit, arch)


def register_file_energy(ops: dict, unit: Unit, arch: Arch) -> float:
    """pJ of the register-file accesses of ``ops`` on ``unit``, summed over every PE that performs
    them (0 when the spec does not charge register files or the unit declares none)."""
    rf = unit.register_file
    if not arch.charge_register_files or rf is None:
        return 0.0
    energy = 0.0
    for op, n in ops.items():
        reads, writes = RF_ACCESSES.get(op, (2, 1))
        energy += n * (reads * rf.read_pJ + writes * rf.write_pJ)
    return energy


def offchip_energy(dram_read, dram_write, arch: Arch):
    """pJ of the off-chip level for the bytes read and written (numbers or arrays)."""
    off = arch.offchip
    return (dram_read / off.access_bytes) * off.read_pJ + (dram_write / off.access_bytes) * off.write_pJ


def buffer_energy(glb_read, glb_write, arch: Arch):
    """pJ of the on-chip buffer for the words read and written (numbers or arrays)."""
    return level_energy(glb_read, glb_write, arch.buffer, arch.word_bytes)


def buffer_footprint(held: dict, pairs):
    """Bytes a group holds in the buffer: ``held`` maps tensors to their bytes (numbers, or arrays
    with 0 where a candidate does not hold the tensor); an element-wise map that overwrites the
    dead intermediate it reads (``pairs``, from :func:`simulator.counts.inplace_pairs`) shares
    its space."""
    footprint = 0.0
    for fp in held.values():
        footprint = footprint + fp
    for new, old in pairs:
        if new in held and old in held:
            footprint = footprint - np.minimum(held[new], held[old])
    return footprint


# ------------------------------------------------------------------------------ groups


def einsum_cost(prob: Problem, arch: Arch, mapping: Mapping, loops: Loops, key: str, group: str,
                n_iter: int = 1) -> EinsumCost:
    """An Einsum's counts with their energy; ``n_iter``: the iterations of its group."""
    c = einsum_counts(prob, arch, mapping, loops, key)
    work = sum(n * c.unit.ops[op].cycles for op, n in c.ops.items() if n)  # one PE, none idle
    return EinsumCost(key, c.unit.name, group, c.points, c.ops, c.cycles, c.cycles / n_iter,
                      c.latency, compute_energy(c.ops, c.unit, arch), c.pes_used, work=work)


def _compute_cycles(prob, arch, group: Group, loops: Loops, costs: dict, n_iter: int):
    """(compute cycles, sequential window, recurrence cycles) of a group."""
    keys = group.einsums
    busy = _busy(costs)
    per_iter = {k: c.per_iteration for k, c in costs.items()}
    step = step_var(prob, keys)
    distance = recurrence_distance(loops, group.loops + group.buffer_loops, step)
    latency = {k: c.latency for k, c in costs.items()}
    rec = float(recurrence_bound(recurrence_cycles(prob, keys), per_iter, latency, distance)) * n_iter
    if group.mode == "pipelined":
        return max([rec] + list(busy.values())), 0.0, rec
    epilogue = {k for k in keys if step is not None and step not in prob.infos[k].vars}
    units = [u.name for u in arch.units if u.name in busy]
    window = sequential_window(prob, keys, costs, per_iter, group.order, units, epilogue)
    return window * n_iter, window, rec


def _busy(costs: dict) -> dict:
    busy: dict = {}
    for c in costs.values():
        busy[c.unit] = busy.get(c.unit, 0.0) + c.cycles
    return busy


def _buffer(prob, arch, mapping, loops, group: Group, traffic):
    """(footprint bytes, words read, words written, inner level name -> LevelUse) of the on-chip
    buffer (rules R1 and R2 of :mod:`simulator.buffer_rules`) and the levels inside it."""
    wb = arch.word_bytes
    buffer = arch.buffer.name if arch.buffer else "GLB"
    keep = default_keep(prob, mapping, loops, group, traffic.boundary_in, traffic.boundary_out,
                        buffer)
    keep.update(group.keep)
    passes = group_passes(prob, loops, group)
    unit_of = {k: mapping.einsums[k].unit for k in group.einsums}
    inner_loops = group.inner_loops(arch)
    glb_read, glb_write = 0.0, fill_words(traffic, wb)
    held, buffered = {}, {}
    for t, level in keep.items():
        if level != buffer:
            continue
        fp, reads, w = buffered_tensor(prob, loops, group, t, t in traffic.produced, wb, passes,
                                       inner_loops)
        held[t] = fp
        producer = prob.producer.get(t) if t in traffic.produced else None
        if arch.inner:
            buffered[t] = (reads, paid_reads(reads, producer, unit_of, passes))
        else:
            glb_read += float(buffer_read_words(reads, producer, unit_of, passes))
        glb_write += w
    pairs = inplace_pairs(prob, group.einsums) if group.inplace else ()
    footprint = float(buffer_footprint(held, pairs))
    if arch.buffer and arch.buffer.capacity is not None and footprint > arch.buffer.capacity:
        raise Infeasible(f"mapping: group {group.name} needs {footprint / 2**20:.2f} MiB in "
                         f"{arch.buffer.name} but it holds {arch.buffer.capacity / 2**20:.2f} MiB",
                         hint="use smaller buffer tiles (e.g. fewer resident query tiles) or spill")
    inner = {}
    if arch.inner:
        candidates = {k: [(m.unit, m.unit, m.spatial)] for k, m in mapping.einsums.items()
                      if k in group.einsums}
        reads, inner, fits = group_hierarchy(prob, arch, loops, group, buffered, unit_of,
                                             candidates)
        if not fits:
            raise _too_big(arch, group, inner)
        glb_read = float(reads)
        inner = {name: type(u)(float(u.read), float(u.write), float(u.footprint))
                 for name, u in inner.items()}
    return footprint, glb_read + _drained(prob, group, traffic, buffer), glb_write, inner


def _drained(prob, group: Group, traffic, buffer: str) -> float:
    """Words read out of the buffer to drain the off-chip outputs a mapping keeps there (R2's
    direct write from the array holds only for outputs the buffer does not keep)."""
    return float(sum(prob.tensor_words(t) for t in traffic.boundary_out
                     if group.keep.get(t) == buffer))


def _too_big(arch, group: Group, inner: dict) -> Infeasible:
    over = next((lv for lv in arch.inner if float(inner[lv.name].footprint) > lv.capacity), None)
    if over is None:  # every level fits: the partial sums do not (simulator.hierarchy.psum_fits)
        return Infeasible(f"mapping: group {group.name} holds more partial sums in a PE than "
                          "its register file", hint="make the loops over a reduced rank "
                          "innermost, or split an output rank walked in the PEs")
    return Infeasible(f"mapping: group {group.name} keeps more in {over.name} than one instance "
                      f"holds ({over.capacity:,.0f} bytes)",
                      hint=f"keep fewer tensors there (groups[].levels.{over.name}.keep), or "
                           "give the levels above it loops that make its tiles smaller")


def evaluate_group(prob: Problem, arch: Arch, mapping: Mapping, loops: Loops, group: Group,
                   group_of: dict) -> tuple[GroupCost, dict]:
    """A group's cost and its Einsums' costs."""
    n_iter = loops.product(group.loops + group.buffer_loops)
    costs = {k: einsum_cost(prob, arch, mapping, loops, k, group.name, n_iter) for k in group.einsums}
    fill = fill_drain_cycles(prob, arch, mapping, loops, group, costs)  # timing options
    occupied = with_fill(costs, fill, n_iter)
    compute, window, rec = _compute_cycles(prob, arch, group, loops, occupied, n_iter)
    traffic = group_traffic(prob, arch, loops, group, group_of)
    bw = arch.offchip.bandwidth
    memory = (traffic.dram_read + traffic.dram_write) / bw * arch.clock_hz if bw else 0.0
    footprint, glb_read, glb_write, inner = _buffer(prob, arch, mapping, loops, group, traffic)
    ports_cycles, ports_level = bandwidth_bound(arch, glb_read, glb_write, inner)
    costs = {k: replace(c, fill_cycles=fill[k]) if fill[k] else c for k, c in costs.items()}
    pes = {u: arch.unit(u).pes for u in _busy(costs)}
    span = max(compute, memory, ports_cycles)
    return GroupCost(group.name, group.mode, n_iter, compute, memory, _busy(costs),
                     traffic.dram_read, traffic.dram_write, glb_read, glb_write, footprint,
                     window, rec, ports_cycles, ports_level,
                     pe_utilization(costs.values(), pes, span), inner), costs


# ------------------------------------------------------------------------------ the model


def _check_grouping(prob: Problem, mapping: Mapping) -> None:
    grouped = [k for g in mapping.groups for k in g.einsums]
    missing = [k for k in prob.order if k not in grouped]
    if missing:
        raise CascadeError(f"mapping: Einsums {', '.join(missing)} are in no group")
    unknown = [k for k in grouped if k not in prob.infos]
    if unknown:
        raise CascadeError(f"mapping: the cascade has no Einsum {unknown[0]}",
                           hint="Einsums: " + ", ".join(prob.order))


def simulate_problem(prob: Problem, arch: Arch, mapping: Mapping, form: str = "") -> Report:
    """Costs ``mapping`` of the problem ``prob`` on ``arch``."""
    _check_grouping(prob, mapping)
    loops = Loops(prob, mapping)
    wb = arch.word_bytes
    group_of = {k: g.name for g in mapping.groups for k in g.einsums}
    all_costs: dict = {}
    groups = []
    energy = {"compute": 0.0, arch.offchip.name: 0.0}
    if arch.buffer:
        energy[arch.buffer.name] = 0.0
    inner_bytes = {lv.name: 0.0 for lv in arch.inner}
    energy.update({lv.name: 0.0 for lv in arch.inner})
    busy_total = {u.name: 0.0 for u in arch.units}
    total_cycles = dram_total = glb_total = 0.0
    for group in mapping.groups:
        gc, costs = evaluate_group(prob, arch, mapping, loops, group, group_of)
        all_costs.update(costs)
        groups.append(gc)
        total_cycles += gc.cycles
        for u, b in gc.busy.items():
            busy_total[u] += b
        for c in costs.values():
            rf = register_file_energy(c.ops, arch.unit(c.unit), arch)
            energy["compute"] += c.energy_pJ - rf
            if rf:
                energy["register_files"] = energy.get("register_files", 0.0) + rf
        energy[arch.offchip.name] += offchip_energy(gc.dram_read, gc.dram_write, arch)
        if arch.buffer:
            energy[arch.buffer.name] += float(buffer_energy(gc.glb_read, gc.glb_write, arch))
        for lv in arch.inner:
            use = gc.levels[lv.name]
            energy[lv.name] += float(level_energy(use.read, use.write, lv, wb))
            inner_bytes[lv.name] += (use.read + use.write) * wb
        dram_total += gc.dram_read + gc.dram_write
        glb_total += (gc.glb_read + gc.glb_write) * wb
    util = {u: (b / total_cycles if total_cycles else 0.0) for u, b in busy_total.items()}
    pe_util = pe_utilization(all_costs.values(), {u.name: u.pes for u in arch.units}, total_cycles)
    traffic = {arch.offchip.name: dram_total}
    if arch.buffer:
        traffic[arch.buffer.name] = glb_total
    traffic.update(inner_bytes)
    return Report(arch.name, total_cycles, total_cycles / arch.clock_hz, sum(energy.values()), energy,
                  dram_total, traffic, arch.area_um2 / 1e6, util,
                  [all_costs[k] for k in prob.order if k in all_costs], groups, form, mapping,
                  dict(prob.sizes), pe_util)


def simulate(cascade, arch: Arch, mapping: Mapping, sizes: dict | None = None, form: str = "") -> Report:
    """Simulates ``cascade`` (with size overrides ``sizes`` and the mapping's own sizes)."""
    overrides = dict(sizes or {})
    overrides.update(mapping.sizes)
    prob = problem_for(cascade, overrides)
    return simulate_problem(prob, arch, mapping, form or mapping.form)
