"""Timeloop-style nest analysis of one Einsum on a memory hierarchy (the counting model's base rules).

This is the per-level access counting the fused-cascade model builds on, written out in full for a
single Einsum so that it can be checked against Timeloop's reference outputs (the Timeloop
tutorial exercises ex00 and ex03). Rules:

* The tile a level holds is spanned by the loops of that level and of the levels below it; a tensor
  dimension indexed by ``p + r`` spans ``(extent_p - 1) + (extent_r - 1) + 1`` elements.
* **Fills** of a level's tile: the loops above the level, outer to inner; loops below the innermost
  one that indexes the tensor leave the tile resident (reuse). Stepping that innermost indexing loop
  brings only the elements the shifted tile does not share with the previous one (sliding windows);
  every loop further out repeats the whole sequence.
* **Reads** a level serves = the fills of the next level below that keeps the tensor (or one per
  MAC for the innermost); **updates** of an output = the drains of the level below (one per MAC at
  the innermost); output reads = updates minus the distinct output elements first written there.
* Energy per level and tensor = ceil(count / block) x the vector-access energy (reads at the read
  energy, fills and updates at the write energy), plus leakage per cycle and instance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class NestLevel:
    name: str
    keeps: set
    loops: list  # [(dim, extent)], outer to inner
    block: int = 1
    read_pJ: float = 0.0
    write_pJ: float = 0.0
    leak_pJ: float = 0.0  # per cycle per instance
    instances: int = 1


@dataclass
class NestCounts:
    macs: int
    cycles: int
    counts: dict  # level -> tensor -> {"reads", "fills", "updates"}
    energy_pJ: dict  # level -> pJ (with "MAC")

    def fj_per_mac(self) -> dict:
        out = {k: v / self.macs * 1000 for k, v in self.energy_pJ.items()}
        out["total"] = sum(self.energy_pJ.values()) / self.macs * 1000
        return out


def _extents_inside(levels, li: int, dims) -> dict:
    ext = {d: 1 for d in dims}
    for lv in levels[li:]:
        for d, e in lv.loops:
            ext[d] *= e
    return ext


def _tile(tensor_dims, ext: dict) -> list:
    return [sum(ext[d] - 1 for d in expr) + 1 for expr in tensor_dims]


def _fills(levels, li: int, tensor_dims, dims) -> int:
    """Elements brought into level ``li``'s tile of a tensor over the whole nest."""
    inside = _extents_inside(levels, li, dims)
    tile = _tile(tensor_dims, inside)
    size = math.prod(tile)
    outside = [(d, e) for lv in levels[:li] for d, e in lv.loops if e > 1]
    used = {d for expr in tensor_dims for d in expr}
    j = max((i for i, (d, _) in enumerate(outside) if d in used), default=None)
    if j is None:
        return size
    dj, ej = outside[j]
    shifted = [max(0, t - inside[dj]) if dj in expr else t for t, expr in zip(tile, tensor_dims, strict=True)]
    delta = size - math.prod(shifted)
    repeat = math.prod(e for _, e in outside[:j])
    return repeat * (size + (ej - 1) * delta)


def analyze_nest(dims: dict, tensors: dict, output: str, levels: list, mac_pJ: float,
                 spatial_pes: int = 1) -> NestCounts:
    """``tensors``: name -> list of tensor dimensions, each a list of problem dims summed
    (``[["r", "p"]]`` for Inputs[r + p]); ``levels`` outermost first; the MAC is below the last."""
    macs = math.prod(dims.values())
    for lv in levels:
        for d, _e in lv.loops:
            if d not in dims:
                raise ValueError(f"level {lv.name}: unknown dimension {d}")
    covered = _extents_inside(levels, 0, dims)
    for d, e in dims.items():
        if covered[d] != e:
            raise ValueError(f"the loops cover {covered[d]} of dimension {d}, not {e}")
    cycles = macs // spatial_pes
    counts = {lv.name: {} for lv in levels}
    for t, tdims in tensors.items():
        holders = [i for i, lv in enumerate(levels) if t in lv.keeps]
        fills = {i: _fills(levels, i, tdims, dims) for i in holders}
        for n, i in enumerate(holders):
            below = holders[n + 1] if n + 1 < len(holders) else None
            served = fills[below] if below is not None else macs
            c = {"reads": 0, "fills": 0, "updates": 0}
            if t == output:
                c["updates"] = served
                c["reads"] = served - fills[i]
            else:
                c["reads"] = served
                c["fills"] = fills[i] if n > 0 else 0
            counts[levels[i].name][t] = c
    energy = {"MAC": macs * mac_pJ}
    for lv in levels:
        e = 0.0
        for c in counts[lv.name].values():
            e += math.ceil(c["reads"] / lv.block) * lv.read_pJ
            e += math.ceil(c["fills"] / lv.block) * lv.write_pJ
            e += math.ceil(c["updates"] / lv.block) * lv.write_pJ
        e += lv.leak_pJ * cycles * lv.instances
        energy[lv.name] = e
    return NestCounts(macs, cycles, counts, energy)
