"""Helpers that assemble mappings from a few decisions (binding, spatial ranks, tiles, loops).

The mapper enumerates these decisions; the FuseMax study uses them to write the artifact's fixed
mappings. Nothing here is specific to attention: ranks and Einsums are named by the caller.
"""
from __future__ import annotations

from simulator.mapping import EinsumMap, Group, Mapping


def single_group(einsums, binding: dict, spatial: dict, *, tiles: dict | None = None,
                 loops=(), buffer_loops=(), mode: str = "pipelined", order: dict | None = None,
                 keep: dict | None = None, spill: dict | None = None, sizes: dict | None = None,
                 name: str = "fused", note: str = "", cascade: str = "", arch: str = "",
                 inplace: bool = True) -> Mapping:
    """One fusion group holding ``einsums``; ``spatial[unit]`` are the ranks across that unit's PEs."""
    maps = {k: EinsumMap(binding[k], tuple(spatial.get(binding[k], ()))) for k in einsums}
    group = Group(name, tuple(einsums), mode, tuple(loops), tuple(buffer_loops), dict(keep or {}),
                  dict(spill or {}), dict(order or {}), inplace)
    return Mapping(maps, (group,), dict(tiles or {}), dict(sizes or {}), cascade, arch, note)


def multi_group(groups: list, *, tiles: dict | None = None, sizes: dict | None = None,
                note: str = "", cascade: str = "", arch: str = "") -> Mapping:
    """Several groups run one after another: ``groups`` is a list of dicts with keys ``name``,
    ``einsums``, ``binding``, ``spatial``, and optionally ``loops``, ``buffer_loops``, ``mode``,
    ``keep``, ``spill``, ``order``."""
    maps = {}
    out = []
    for g in groups:
        for k in g["einsums"]:
            unit = g["binding"][k]
            maps[k] = EinsumMap(unit, tuple(g["spatial"].get(unit, ())))
        out.append(Group(g["name"], tuple(g["einsums"]), g.get("mode", "pipelined"),
                         tuple(g.get("loops", ())), tuple(g.get("buffer_loops", ())),
                         dict(g.get("keep", {})), dict(g.get("spill", {})), dict(g.get("order", {})),
                         g.get("inplace", True)))
    return Mapping(maps, tuple(out), dict(tiles or {}), dict(sizes or {}), cascade, arch, note)


def pow2_divisors(n: int, limit: int | None = None) -> list:
    """Powers of two dividing ``n`` (up to ``limit``), largest first."""
    out = []
    d = 1
    while n % d == 0 and (limit is None or d <= limit):
        out.append(d)
        d *= 2
    return out[::-1]


def tile_counts(n: int) -> list:
    """Resident tile counts for a rank of ``n`` tiles, largest first: ``n`` and the powers of two
    below it. A count that does not divide ``n`` leaves a ragged last outer tile (the outer loop
    runs ceil(n / count) times); for ``n`` a power of two these are its divisors."""
    out = [n] if n > 0 else [1]
    d = 1
    while d < n:
        out.append(d)
        d *= 2
    return sorted(set(out), reverse=True)
