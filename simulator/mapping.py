"""Mappings: how a cascade is laid onto an architecture (YAML, printable, saveable).

A mapping says, per Einsum, the unit it is bound to and which ranks are spread across that unit's
PE dimensions; per cascade, how the ranks are tiled, which Einsums are fused into a group (sharing
loops, intermediates kept on chip), each group's temporal loops (the off-chip level's loops outer to
inner, then the buffer level's), what each level keeps, and how the group's units are pipelined:

* ``pipelined``: software-pipelined (modulo-scheduled) across tiles: one unit works on tile i+1 while
  another finishes tile i; the steady state is bounded by the busiest unit and by recurrences.
* ``sequential``: one tile at a time (a barrier between tiles); within a tile the units follow their
  ``order`` (an entry ``X@prev`` runs X of the previous tile at the start of this one).

``keep`` says where a tensor lives: the buffer level's name (``GLB``), ``PE`` (registers), or the off-chip
level's name (``DRAM``: not buffered, streamed into the array for every tile that uses it).
``inplace`` (default true) lets an element-wise map overwrite the dead intermediate it reads.

Levels inside the buffer (per-PE scratchpads, local buffers: ``levels[2:]`` of the spec) are
mapped under ``levels: {spad: {keep: [K, Q], loops: [E1]}}``: the tensors the level keeps (the
others bypass it; without ``keep`` it keeps every tensor read through it that fits, in the order
of the group's Einsums) and the level's own temporal loops, nested inside the buffer's loops in
the spec's level order (:mod:`simulator.hierarchy`). Mappings without ``levels`` load as before.

Tiling: ``tiles: {P: {P1: 4, P0: 256}}`` splits rank P into P2 x P1 x P0 (the outermost part, P2, is
derived: ceil(P / (P1 * P0))). Loop names are ranks of the cascade (``B``, ``M1``) or tile parts.

A mapping records the form of the cascade it maps as data: ``pipeline`` (the name of a pipeline
of :mod:`einsum_ir.passes` and the passes it applied, with their options) and ``cascade_digest``
(:func:`einsum_ir.passes.digest` of the cascade as written). ``cascade simulate --mapping``
replays the pipeline and refuses a mapping made for another cascade.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODES = ("pipelined", "sequential")
AS_WRITTEN = "as-written"


@dataclass(frozen=True)
class EinsumMap:
    unit: str
    spatial: tuple = ()  # rank (or tile part) per unit dimension, e.g. ("M0", "P") on a 2D array


@dataclass(frozen=True)
class LevelMap:
    """An inner level's choices in one group: what it keeps (None: whatever fits) and its loops."""

    keep: tuple | None = None
    loops: tuple = ()

    def to_dict(self) -> dict:
        out: dict = {}
        if self.keep is not None:
            out["keep"] = list(self.keep)
        if self.loops:
            out["loops"] = list(self.loops)
        return out


@dataclass(frozen=True)
class Group:
    name: str
    einsums: tuple
    mode: str = "pipelined"
    loops: tuple = ()  # off-chip level loops, outer to inner
    buffer_loops: tuple = ()  # on-chip buffer loops, outer to inner
    keep: dict = field(default_factory=dict)  # tensor -> level name (the buffer's, "PE", the off-chip one's)
    spill: dict = field(default_factory=dict)  # tensor -> fraction written to and read back from DRAM
    order: dict = field(default_factory=dict)  # unit -> [Einsum or Einsum@prev], sequential only
    inplace: bool = True  # an element-wise map may overwrite the dead intermediate it reads
    levels: dict = field(default_factory=dict)  # inner level name -> LevelMap

    def inner_loops(self, arch) -> tuple:
        """The loops of the levels inside the buffer, in the spec's level order."""
        out: tuple = ()
        for lv in arch.inner:
            lm = self.levels.get(lv.name)
            if lm is not None:
                out += lm.loops
        return out


@dataclass(frozen=True)
class Mapping:
    einsums: dict  # Einsum name -> EinsumMap
    groups: tuple
    tiles: dict = field(default_factory=dict)  # rank -> {part: size}, inner parts, outer derived
    sizes: dict = field(default_factory=dict)  # cascade size overrides the mapping needs (M0)
    cascade: str = ""
    arch: str = ""
    note: str = ""
    pipeline: str = AS_WRITTEN  # the pipeline that made the mapped form of the cascade
    passes: tuple = ()  # PassSpec of every pass it applied
    cascade_digest: str = ""  # digest of the cascade as written ("" = not recorded)
    source: str = field(default="", compare=False)  # the file it was loaded from

    @property
    def form(self) -> str:
        """The mapped form in words (``as written``, ``after online-softmax(tile_size=256)``)."""
        if not self.passes:
            return "as written"
        return "after " + ", ".join(str(p) for p in self.passes)

    def to_dict(self) -> dict:
        out = {}
        for key in ("cascade", "arch", "cascade_digest", "note"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["pipeline"] = {"name": self.pipeline, "passes": [p.to_dict() for p in self.passes]}
        if self.sizes:
            out["sizes"] = dict(self.sizes)
        if self.tiles:
            out["tiles"] = {r: dict(parts) for r, parts in self.tiles.items()}
        out["einsums"] = {name: {"unit": m.unit, "spatial": list(m.spatial)}
                          for name, m in self.einsums.items()}
        out["groups"] = [_group_dict(g) for g in self.groups]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    def describe(self) -> str:
        """A short human-readable rendering (one line per group and per binding)."""
        lines = []
        if self.tiles:
            lines.append("tiles: " + ", ".join(
                f"{r} = {outer_part(r, p)} x " + " x ".join(f"{k}({v})" for k, v in p.items())
                for r, p in self.tiles.items()))
        for g in self.groups:
            lines.append(f"group {g.name} [{g.mode}]: loops {' > '.join(g.loops) or '-'}"
                         f" | buffer {' > '.join(g.buffer_loops) or '-'}")
            by_unit: dict = {}
            for e in g.einsums:
                m = self.einsums[e]
                by_unit.setdefault(m.unit, []).append(
                    e + (f"<{','.join(m.spatial)}>" if m.spatial else ""))
            for unit, names in by_unit.items():
                lines.append(f"  {unit}: {' '.join(names)}")
            if g.spill:
                lines.append("  spill: " + ", ".join(f"{k} {v:.3g}" for k, v in g.spill.items()))
            for name, lm in g.levels.items():
                kept = "whatever fits" if lm.keep is None else (", ".join(lm.keep) or "nothing")
                lines.append(f"  {name}: keeps {kept}" + (f"; loops {' > '.join(lm.loops)}"
                                                          if lm.loops else ""))
        return "\n".join(lines)


def _group_dict(g: Group) -> dict:
    gd = {"name": g.name, "einsums": list(g.einsums), "mode": g.mode,
          "loops": list(g.loops), "buffer_loops": list(g.buffer_loops)}
    if g.keep:
        gd["keep"] = dict(g.keep)
    if g.spill:
        gd["spill"] = {k: float(v) for k, v in g.spill.items()}
    if g.order:
        gd["order"] = {u: list(v) for u, v in g.order.items()}
    if not g.inplace:
        gd["inplace"] = False
    if g.levels:
        gd["levels"] = {name: lm.to_dict() for name, lm in g.levels.items()}
    return gd


def outer_part(rank: str, parts: dict) -> str:
    """The derived outermost tile part of ``rank`` (``P2`` for ``{P1: .., P0: ..}``)."""
    return f"{rank}{len(parts)}"
