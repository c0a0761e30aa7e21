"""Choosing among evaluated mappings: by objective, and the latency/energy Pareto front."""
from __future__ import annotations

import numpy as np

OBJECTIVES = ("latency", "energy", "edp")


def pareto_front(latency: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both latency and energy (sorted by latency)."""
    order = np.lexsort((energy, latency))
    # a point joins only below the lowest energy before it: the tolerance below the best so far
    # is monotone in the best, and the best is at most any earlier point's energy
    sorted_energy = energy[order]
    before = np.concatenate([[np.inf], np.minimum.accumulate(sorted_energy)[:-1]])
    candidates = order[sorted_energy < before]
    front = []
    best = np.inf
    for i in candidates:
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


def report_key(objective: str):
    """Sort key of ``(mapping, report)`` pairs for the objective."""
    return {"latency": lambda mr: (mr[1].cycles, mr[1].energy_pJ),
            "energy": lambda mr: (mr[1].energy_pJ, mr[1].cycles),
            "edp": lambda mr: (mr[1].cycles * mr[1].energy_pJ, mr[1].cycles)}[objective]


def front_points(latency: np.ndarray, energy: np.ndarray, clock_hz: float) -> list:
    """The Pareto front of the feasible candidates as ``(seconds, joules)``."""
    fin = np.isfinite(latency)
    lat_f, en_f = latency[fin], energy[fin]
    return [(float(lat_f[i] / clock_hz), float(en_f[i] * 1e-12)) for i in pareto_front(lat_f, en_f)]
