"""The mapspace: which decisions the mapper enumerates, and how it picks among evaluated mappings.

Decisions (all enumerated, deterministically, in a fixed order):

* **binding**: each Einsum to a unit that can perform every operation class it needs;
* **spatial ranks** per unit: ranks (or the innermost tile of a rank) spread across its PE
  dimensions, from the ranks at least as large as the dimension;
* **tiling**: for each rank spread across PEs, how many PE-sized tiles stay resident in the buffer
  (``P1``: queries resident on chip), the rest being an off-chip loop;
* **loop order** of the off-chip loops that carry reuse (which operand is re-streamed);
* **spill** of intermediates that a later pass needs whole (fractions 0, 1/4, ..., 1);
* **pipelining**: ``pipelined`` or ``sequential``.

The cost of every combination comes from a vectorised evaluator (``simulator.search``); this module
only builds the space and selects: by objective (latency, energy, or energy-delay product, ties
broken by the other metrics, then by enumeration order), and the Pareto front of latency/energy.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from einsum_ir.analysis.work import einsum_profile

OBJECTIVES = ("latency", "energy", "edp")


@dataclass(frozen=True)
class Tiling:
    tiles: dict
    loops: tuple
    buffer_loops: tuple
    spill: dict = field(default_factory=dict)

    def describe(self) -> str:
        parts = ", ".join(f"{r}:{'x'.join(str(v) for v in p.values())}" for r, p in self.tiles.items())
        return f"tiles {parts}; loops {'>'.join(self.loops)} | {'>'.join(self.buffer_loops)}"


def capable_units(arch, einsum) -> tuple:
    """Units that can perform every operation class of ``einsum`` (an ``exp`` of a difference
    counts as supported where the unit has ``exp_sub``)."""
    per_point, _ = einsum_profile(einsum)
    need = {op for op, n in per_point.items() if n}
    out = []
    for unit in arch.units:
        ops = set(unit.ops)
        missing = need - ops
        if "exp" in missing and "exp_sub" in ops:
            missing.discard("exp")
        if not missing:
            out.append(unit.name)
    return tuple(out)


def bindings(einsums, units_for: dict, unit_names: list) -> np.ndarray:
    """Every binding as a matrix (one row per binding, one column per Einsum, unit indices)."""
    choices = [[unit_names.index(u) for u in units_for[k]] for k in einsums]
    n = 1
    for c in choices:
        n *= len(c)
    if n == 0:
        return np.zeros((0, len(einsums)), dtype=np.int16)
    grids = np.meshgrid(*[np.array(c, dtype=np.int16) for c in choices], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def pareto_front(latency: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both latency and energy (sorted by latency)."""
    order = np.lexsort((energy, latency))
    front = []
    best = np.inf
    for i in order:
        if energy[i] < best - 1e-12 * abs(best if np.isfinite(best) else 1):
            front.append(i)
            best = energy[i]
    return np.array(front, dtype=np.int64)


def rank(latency: np.ndarray, energy: np.ndarray, objective: str) -> np.ndarray:
    """Indices sorted by the objective (stable, ties by the other metric, then by index)."""
    if objective not in OBJECTIVES:
        raise ValueError(objective)
    idx = np.arange(len(latency))
    if objective == "latency":
        return np.lexsort((idx, energy, latency))
    if objective == "energy":
        return np.lexsort((idx, latency, energy))
    return np.lexsort((idx, latency, latency * energy))


def perms(items) -> list:
    return [tuple(p) for p in itertools.permutations(items)] or [()]
