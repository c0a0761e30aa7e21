"""What the cost model reports: per Einsum, per fusion group, and for the whole mapping.

Reports are plain values (``to_json()`` for machines, ``str()`` for people); the cost model in
:mod:`simulator.cost` builds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .mapping import Mapping


@dataclass(frozen=True)
class EinsumCost:
    key: str
    unit: str
    group: str
    points: int
    ops: dict  # op class -> operations over the whole problem
    cycles: float  # busy cycles of the unit (whole problem)
    per_iteration: float
    latency: float  # exposed result latency (reduction across PEs), cycles
    energy_pJ: float
    pes_used: int
    fill_cycles: float = 0.0  # pipeline fill and drain on top of ``cycles`` (simulator.timing)
    # PE-cycles of useful work: every operation of the existing points at its cycles on the unit
    # (the busy cycles of one PE doing it all); ``cycles`` exceeds work / PEs by the idle PEs
    work: float = 0.0

    def to_json(self) -> dict:
        out = {"einsum": self.key, "unit": self.unit, "group": self.group, "points": self.points,
               "ops": {k: v for k, v in self.ops.items() if v}, "cycles": self.cycles,
               "per_iteration_cycles": self.per_iteration, "result_latency": self.latency,
               "energy_J": self.energy_pJ * 1e-12, "pes_used": self.pes_used,
               "useful_pe_cycles": self.work}
        if self.fill_cycles:  # only where the spec charges fill and drain
            out["fill_drain_cycles"] = self.fill_cycles
        return out


def pe_utilization(costs, pes: dict, cycles: float) -> dict:
    """Per unit, the fraction of its PE-cycles doing useful work: the Einsums' ``work`` on that
    unit over (PEs x ``cycles``). For one-cycle operations, useful ops / (PEs x cycles). Unlike
    the busy fraction it counts the PEs a unit leaves idle (a rank smaller than the array, a
    ragged last tile, a unit spreading no rank of an Einsum). ``pes``: unit -> PEs."""
    work = {u: 0.0 for u in pes}
    for c in costs:
        work[c.unit] = work.get(c.unit, 0.0) + c.work
    return {u: (w / (pes[u] * cycles) if cycles else 0.0) for u, w in work.items()}


@dataclass(frozen=True)
class GroupCost:
    name: str
    mode: str
    iterations: int
    compute_cycles: float
    memory_cycles: float
    busy: dict  # unit -> cycles
    dram_read: float  # bytes
    dram_write: float
    glb_read: float  # words
    glb_write: float
    footprint: float  # bytes in the on-chip buffer
    window: float = 0.0  # sequential: cycles per tile window
    recurrence_cycles: float = 0.0
    bandwidth_cycles: float = 0.0  # words through the buffer over its ports (simulator.timing)
    bandwidth_level: str = ""  # the level with ports ("" = none declared)
    pe_utilization: dict = field(default_factory=dict)  # unit -> useful PE-cycles / (PEs x cycles)
    levels: dict = field(default_factory=dict)  # inner level -> simulator.hierarchy.LevelUse

    @property
    def cycles(self) -> float:
        """Compute overlapped with the off-chip transfers and the buffer's ports."""
        return max(self.compute_cycles, self.memory_cycles, self.bandwidth_cycles)

    @property
    def bound(self) -> str:
        if self.bandwidth_cycles > max(self.compute_cycles, self.memory_cycles):
            return "bandwidth"
        if self.memory_cycles > self.compute_cycles:
            return "memory"
        rec = self.recurrence_cycles
        if self.mode == "pipelined" and rec > 0 and rec >= max(self.busy.values()):
            return "recurrence"
        return "compute"

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "name", "mode", "iterations", "compute_cycles", "memory_cycles", "cycles", "bound",
            "busy", "dram_read", "dram_write", "glb_read", "glb_write", "footprint", "window",
            "recurrence_cycles", "pe_utilization")}
        if self.bandwidth_level:  # only where the spec gives the buffer ports
            out["bandwidth_cycles"] = self.bandwidth_cycles
            out["bandwidth_level"] = self.bandwidth_level
        if self.levels:  # only where the spec has levels inside the buffer
            out["levels"] = {name: {"read_words": u.read, "write_words": u.write,
                                    "footprint_bytes": u.footprint}
                             for name, u in self.levels.items()}
        return out


@dataclass(frozen=True)
class Report:
    arch: str
    cycles: float
    latency_s: float
    energy_pJ: float
    energy_breakdown: dict
    traffic_bytes: float
    traffic: dict
    area_mm2: float
    utilization: dict  # unit -> busy cycles / cycles (busy time, however many PEs hold work)
    einsums: list
    groups: list
    form: str = ""  # which form of the cascade was simulated ("as written", "after online-softmax(...)")
    mapping: Mapping | None = None
    sizes: dict = field(default_factory=dict)
    pe_utilization: dict = field(default_factory=dict)  # unit -> useful PE-cycles / (PEs x cycles)

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
            "pe_utilization": self.pe_utilization,
            "per_einsum": [e.to_json() for e in self.einsums],
            "groups": [g.to_json() for g in self.groups],
            "sizes": self.sizes,
            "mapping": self.mapping.to_dict() if self.mapping else None,
        }

    def __str__(self) -> str:
        lines = [f"arch {self.arch}; simulated form: {self.form or 'as written'}",
                 f"latency   {self.latency_s:.6g} s ({self.cycles:,.0f} cycles)",
                 f"energy    {self.energy_J:.6g} J  (" + ", ".join(
                     f"{k} {v * 1e-12:.4g} J" for k, v in self.energy_breakdown.items()) + ")",
                 "traffic   " + ", ".join(f"{k} {v:,.0f} B" for k, v in self.traffic.items()),
                 f"area      {self.area_mm2:.2f} mm^2",
                 "utilization " + ", ".join(f"{u} {v:.4f}" for u, v in self.utilization.items())
                 + " (busy time)",
                 "PE util   " + ", ".join(f"{u} {v:.4f}" for u, v in self.pe_utilization.items())
                 + " (useful ops / (PEs x cycles))"]
        for g in self.groups:
            pe = ", ".join(f"{u} {v:.4f}" for u, v in g.pe_utilization.items())
            lines.append(f"group {g.name} [{g.mode}]: {g.iterations:,} tiles, compute "
                         f"{g.compute_cycles:,.0f} / memory {g.memory_cycles:,.0f} cycles "
                         f"({g.bound}-bound), buffer {g.footprint / 2**20:.3f} MiB"
                         + "".join(f", {n} {u.footprint:,.0f} B each" for n, u in g.levels.items())
                         + (f", PE util {pe}" if pe else ""))
        lines.append(f"{'einsum':8} {'unit':5} {'points':>18} {'busy cycles':>16} {'cyc/tile':>9} "
                     f"{'energy J':>10}")
        for e in self.einsums:
            lines.append(f"{e.key:8} {e.unit:5} {e.points:18,} {e.cycles:16,.0f} "
                         f"{e.per_iteration:9.4g} {e.energy_pJ * 1e-12:10.4g}")
        return "\n".join(lines)
