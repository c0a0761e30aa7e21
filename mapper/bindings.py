"""Bindings of a group's Einsums to units, with memory bounded by construction.

The binding grid is the product of every Einsum's allowed units: it doubles with every Einsum two
units can run (two chained softmaxes after the online-softmax rewrite: 2^22 rows). Up to
``FULL_GRID`` rows the whole grid is enumerated, in its fixed order. Past that, the bindings are
built Einsum by Einsum (a dynamic program over the group's order) and a partial binding is dropped
when another one dominates it:

* the cost of a binding is monotone in the per-unit busy cycles, the compute energy, each
  recurrence cycle's work and result latency, and the set of intermediates kept in the buffer
  because producer and consumer lay them out differently; a partial binding no worse in all of
  these, with the same units for the Einsums still to be paired with later ones (the interface),
  can only be as good, so dropping the dominated one loses no optimum;
* the partial bindings kept per step are at most ``BEAM`` (the best by a latency proxy and the
  best by energy, half each), so rows, and memory, stay bounded whatever the number of Einsums.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_GRID = 1 << 14  # the most rows enumerated exhaustively
BEAM = 128  # partial bindings kept per Einsum past that


def grid_size(choices: list) -> int:
    n = 1
    for c in choices:
        n *= len(c)
    return n


def full_grid(choices: list) -> np.ndarray:
    """Every combination of ``choices`` (one list of unit indices per column), the last column
    varying fastest; no limit on the number of columns."""
    n = grid_size(choices)
    out = np.zeros((n, len(choices)), dtype=np.int16)
    if n == 0:
        return out
    idx = np.arange(n)
    for i in range(len(choices) - 1, -1, -1):
        c = np.asarray(choices[i], dtype=np.int16)
        out[:, i] = c[idx % len(c)]
        idx //= len(c)
    return out


@dataclass(frozen=True)
class Relayout:
    """Intermediate ``tensor`` produced by column ``producer`` and read by column ``consumer``
    changes layout when their units are ``(a, c)`` with ``conflict[a, c]``."""

    tensor: str
    producer: int
    consumer: int
    conflict: np.ndarray  # units x units, bool


@dataclass(frozen=True)
class BindingCosts:
    """What a binding's cost depends on, per column (Einsum) and unit."""

    cycles: np.ndarray  # Einsums x units: busy cycles
    energy: np.ndarray  # Einsums x units: compute energy
    latency: np.ndarray  # Einsums x units: result latency
    cycles_of_recurrences: tuple  # column indices of each recurrence cycle
    relayouts: tuple  # Relayout


def relayouts(prob, keys: tuple, spatial: dict, unit_names: list, loops) -> tuple:
    """Every (intermediate, producer, consumer) of the group whose layout differs between some
    two units (a rank spread across PEs on one is walked in time on the other)."""
    from .space import spread

    n = len(unit_names)

    def spatial_vars(k):
        return [{loops.var(x) for x in spread(spatial, u, k)} for u in unit_names]

    out = []
    for pi, k in enumerate(keys):
        t = prob.infos[k].einsum.name
        readers = [ci for ci, c in enumerate(keys) if t in prob.infos[c].reads]
        tv = set(prob.infos[k].out_vars)
        for ci in readers:
            tv |= prob.infos[keys[ci]].reads[t]
        pv = spatial_vars(k)
        for ci in readers:
            cv = spatial_vars(keys[ci])
            conflict = np.array([[a != c and bool((pv[a] ^ cv[c]) & tv)
                                  for c in range(n)] for a in range(n)])
            if conflict.any():
                out.append(Relayout(t, pi, ci, conflict))
    return tuple(out)


def binding_matrix(choices: list, costs: BindingCosts, full_grid_rows: int = FULL_GRID,
                   beam: int = BEAM) -> np.ndarray:
    """Bindings as a matrix (one row per binding, one column per Einsum, unit indices): the full
    grid when it has at most ``full_grid_rows`` rows, else the non-dominated bindings found with
    at most ``beam`` partial bindings per step (at most ``beam x units`` rows)."""
    if grid_size(choices) <= full_grid_rows:
        return full_grid(choices)
    return _pruned(choices, costs, beam)


@dataclass
class _States:
    units: np.ndarray  # S x assigned columns
    busy: np.ndarray  # S x units
    energy: np.ndarray  # S
    rec: np.ndarray  # S x (2 x recurrence cycles): work and latency of each
    held: np.ndarray  # S x relayouts, bool


def _pruned(choices: list, costs: BindingCosts, beam: int) -> np.ndarray:
    n_units = costs.cycles.shape[1]
    cycles = costs.cycles_of_recurrences
    relayouts = costs.relayouts
    s = _States(np.zeros((1, 0), np.int16), np.zeros((1, n_units)), np.zeros(1),
                np.zeros((1, 2 * len(cycles))), np.zeros((1, len(relayouts)), bool))
    for i, options in enumerate(choices):
        s = _extend(s, i, np.asarray(options, dtype=np.int16), costs)
        live = sorted({x for r in relayouts for x in (r.producer, r.consumer)
                       if min(r.producer, r.consumer) <= i < max(r.producer, r.consumer)
                       and x <= i})
        s = _keep_best(_non_dominated(s, live), beam)
    order = np.lexsort(s.units.T[::-1])  # rows in the grid's order
    return s.units[order]


def _extend(s: _States, i: int, options: np.ndarray, costs: BindingCosts) -> _States:
    """Every state with column ``i`` bound to each of ``options``."""
    n, k = len(s.energy), len(options)
    unit = np.tile(options, n)
    rep = np.repeat(np.arange(n), k)
    units = np.concatenate([s.units[rep], unit[:, None]], axis=1)
    busy = s.busy[rep].copy()
    busy[np.arange(n * k), unit] += costs.cycles[i, unit]
    energy = s.energy[rep] + costs.energy[i, unit]
    rec = s.rec[rep].copy()
    for c, members in enumerate(costs.cycles_of_recurrences):
        if i in members:
            rec[:, 2 * c] += costs.cycles[i, unit]
            rec[:, 2 * c + 1] += costs.latency[i, unit]
    held = s.held[rep].copy()
    for j, r in enumerate(costs.relayouts):
        if max(r.producer, r.consumer) == i:
            held[:, j] |= r.conflict[units[:, r.producer], units[:, r.consumer]]
    return _States(units, busy, energy, rec, held)


def _non_dominated(s: _States, live: list) -> _States:
    """Drops every state another one with the same interface (units of ``live`` columns) is no
    worse than in every cost term; of equal states the first is kept."""
    metrics = np.concatenate([s.busy, s.energy[:, None], s.rec, s.held.astype(float)], axis=1)
    keep = np.ones(len(metrics), dtype=bool)
    _, group = np.unique(s.units[:, live], axis=0, return_inverse=True) if live else (
        None, np.zeros(len(metrics), dtype=np.int64))
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        keep[members] = _undominated(metrics[members])
    return _States(s.units[keep], s.busy[keep], s.energy[keep], s.rec[keep], s.held[keep])


def _undominated(m: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``m`` that no other row is <= in every column (an equal earlier row
    counts as dominating). A dominating row has the smaller column sum, so in the order of the
    sums (stable: equal rows keep their order) a row is compared with those before it only."""
    order = np.argsort(m.sum(axis=1), kind="stable")
    ms = m[order]
    keep = np.ones(len(ms), dtype=bool)
    for start in range(0, len(ms), 256):
        stop = min(start + 256, len(ms))
        block, prefix = ms[start:stop], ms[:stop]
        le = (prefix[None, :, :] <= block[:, None, :]).all(axis=2)  # le[b, j]: row j <= row b
        lt = (prefix[None, :, :] < block[:, None, :]).any(axis=2)
        earlier = np.arange(stop)[None, :] < np.arange(start, stop)[:, None]
        keep[start:stop] = ~(le & (lt | earlier)).any(axis=1)
    out = np.empty(len(ms), dtype=bool)
    out[order] = keep
    return out


def _keep_best(s: _States, beam: int) -> _States:
    """At most ``beam`` states: half the best by a latency proxy (the busiest unit or the longest
    recurrence), half the best by energy, ties by binding order."""
    n = len(s.energy)
    if n <= beam:
        return s
    proxy = np.max(np.concatenate([s.busy, s.rec[:, 0::2] + s.rec[:, 1::2]], axis=1), axis=1)
    by_latency = np.lexsort((s.energy, proxy))[: beam // 2]
    taken = set(by_latency.tolist())
    by_energy = [i for i in np.lexsort((proxy, s.energy)) if i not in taken]
    chosen = np.sort(np.concatenate([by_latency, by_energy[: beam - len(by_latency)]]))
    return _States(s.units[chosen], s.busy[chosen], s.energy[chosen], s.rec[chosen], s.held[chosen])
