"""Mappings: how a cascade is laid onto an architecture (YAML, printable, saveable).

A mapping says, per Einsum, the unit it is bound to and which ranks are spread across that unit's
PE dimensions; per cascade, how the ranks are tiled, which Einsums are fused into a group (sharing
loops, intermediates kept on chip), each group's temporal loops (the off-chip level's loops outer to
inner, then the buffer level's), what each level keeps, and how the group's units are pipelined:

* ``pipelined``: software-pipelined (modulo-scheduled) across tiles: one unit works on tile i+1 while
  another finishes tile i; the steady state is bounded by the busiest unit and by recurrences.
* ``sequential``: one tile at a time (a barrier between tiles); within a tile the units follow their
  ``order`` (an entry ``X@prev`` runs X of the previous tile at the start of this one).

``keep`` says where a tensor lives: ``GLB`` (the buffer), ``PE`` (registers), or the off-chip
level's name (``DRAM``: not buffered, streamed into the array for every tile that uses it).
``inplace`` (default true) lets an element-wise map overwrite the dead intermediate it reads.

Tiling: ``tiles: {P: {P1: 4, P0: 256}}`` splits rank P into P2 x P1 x P0 (the outermost part, P2, is
derived: ceil(P / (P1 * P0))). Loop names are ranks of the cascade (``B``, ``M1``) or tile parts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from einsum_ir.errors import CascadeError

MODES = ("pipelined", "sequential")


@dataclass(frozen=True)
class EinsumMap:
    unit: str
    spatial: tuple = ()  # rank (or tile part) per unit dimension, e.g. ("M0", "P") on a 2D array


@dataclass(frozen=True)
class Group:
    name: str
    einsums: tuple
    mode: str = "pipelined"
    loops: tuple = ()  # off-chip level loops, outer to inner
    buffer_loops: tuple = ()  # on-chip buffer loops, outer to inner
    keep: dict = field(default_factory=dict)  # tensor -> level name ("GLB", "PE")
    spill: dict = field(default_factory=dict)  # tensor -> fraction written to and read back from DRAM
    order: dict = field(default_factory=dict)  # unit -> [Einsum or Einsum@prev], sequential only
    inplace: bool = True  # an element-wise map may overwrite the dead intermediate it reads


@dataclass(frozen=True)
class Mapping:
    einsums: dict  # Einsum name -> EinsumMap
    groups: tuple
    tiles: dict = field(default_factory=dict)  # rank -> {part: size}, inner parts, outer derived
    sizes: dict = field(default_factory=dict)  # cascade size overrides the mapping needs (M0)
    cascade: str = ""
    arch: str = ""
    form: str = ""  # which cascade form was mapped (e.g. "1-pass after online-softmax")
    note: str = ""

    def to_dict(self) -> dict:
        out = {}
        if self.cascade:
            out["cascade"] = self.cascade
        if self.arch:
            out["arch"] = self.arch
        if self.form:
            out["form"] = self.form
        if self.note:
            out["note"] = self.note
        if self.sizes:
            out["sizes"] = dict(self.sizes)
        if self.tiles:
            out["tiles"] = {r: dict(parts) for r, parts in self.tiles.items()}
        out["einsums"] = {name: {"unit": m.unit, "spatial": list(m.spatial)}
                          for name, m in self.einsums.items()}
        groups = []
        for g in self.groups:
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
            groups.append(gd)
        out["groups"] = groups
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
                f"{r} = {_outer(r, p)} x " + " x ".join(f"{k}({v})" for k, v in p.items())
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
        return "\n".join(lines)


def _outer(rank: str, parts: dict) -> str:
    return f"{rank}{len(parts)}"


def outer_part(rank: str, parts: dict) -> str:
    return _outer(rank, parts)


def _err(file: str, path: str, message: str, hint: str | None = None) -> CascadeError:
    return CascadeError(f"{file}: {path}: {message}", hint=hint)


def mapping_from_dict(data, file: str = "<mapping>") -> Mapping:
    if not isinstance(data, dict):
        raise CascadeError(f"{file}: expected a mapping at the top level")
    allowed = {"cascade", "arch", "form", "note", "sizes", "tiles", "einsums", "groups"}
    for key in data:
        if key not in allowed:
            raise _err(file, str(key), "unknown field", "allowed: " + ", ".join(sorted(allowed)))
    for key in ("einsums", "groups"):
        if key not in data:
            raise _err(file, key, "missing required field")
    sizes = data.get("sizes") or {}
    if not isinstance(sizes, dict) or not all(isinstance(v, int) and v > 0 for v in sizes.values()):
        raise _err(file, "sizes", "expected a mapping of rank names to positive integers")
    tiles = {}
    for rank, parts in (data.get("tiles") or {}).items():
        if not isinstance(parts, dict) or not parts:
            raise _err(file, f"tiles.{rank}", "expected a mapping such as {P1: 4, P0: 256}")
        for part, size in parts.items():
            if not isinstance(size, int) or size <= 0:
                raise _err(file, f"tiles.{rank}.{part}", f"expected a positive integer, got {size!r}")
        tiles[str(rank)] = {str(k): int(v) for k, v in parts.items()}
    einsums = {}
    if not isinstance(data["einsums"], dict):
        raise _err(file, "einsums", "expected a mapping of Einsum names to {unit, spatial}")
    for name, node in data["einsums"].items():
        path = f"einsums.{name}"
        if not isinstance(node, dict) or "unit" not in node:
            raise _err(file, path, "expected {unit: NAME, spatial: [RANK, ...]}")
        for key in node:
            if key not in ("unit", "spatial"):
                raise _err(file, f"{path}.{key}", "unknown field", "allowed: spatial, unit")
        spatial = node.get("spatial") or []
        if not isinstance(spatial, list) or not all(isinstance(s, str) for s in spatial):
            raise _err(file, f"{path}.spatial", "expected a list of rank names, one per PE dimension")
        einsums[str(name)] = EinsumMap(str(node["unit"]), tuple(spatial))
    groups = []
    if not isinstance(data["groups"], list) or not data["groups"]:
        raise _err(file, "groups", "expected a non-empty list of fusion groups")
    seen = set()
    for i, node in enumerate(data["groups"]):
        path = f"groups[{i}]"
        if not isinstance(node, dict):
            raise _err(file, path, "expected a mapping")
        gallowed = {"name", "einsums", "mode", "loops", "buffer_loops", "keep", "spill", "order",
                    "inplace"}
        for key in node:
            if key not in gallowed:
                raise _err(file, f"{path}.{key}", "unknown field", "allowed: " + ", ".join(sorted(gallowed)))
        names = node.get("einsums")
        if not isinstance(names, list) or not names:
            raise _err(file, f"{path}.einsums", "expected a non-empty list of Einsum names")
        for name in names:
            if name not in einsums:
                raise _err(file, f"{path}.einsums", f"{name} has no binding under 'einsums:'")
            if name in seen:
                raise _err(file, f"{path}.einsums", f"{name} is in two groups")
            seen.add(name)
        mode = node.get("mode", "pipelined")
        if mode not in MODES:
            raise _err(file, f"{path}.mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
        for key in ("loops", "buffer_loops"):
            value = node.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _err(file, f"{path}.{key}", "expected a list of loop names (ranks or tile parts)")
        spill = node.get("spill") or {}
        for t, v in spill.items():
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise _err(file, f"{path}.spill.{t}", f"expected a fraction in [0, 1], got {v!r}")
        keep = node.get("keep") or {}
        if not isinstance(keep, dict):
            raise _err(file, f"{path}.keep", "expected a mapping of tensor names to level names")
        inplace = node.get("inplace", True)
        if not isinstance(inplace, bool):
            raise _err(file, f"{path}.inplace", f"expected true or false, got {inplace!r}")
        order = node.get("order") or {}
        if not isinstance(order, dict):
            raise _err(file, f"{path}.order", "expected a mapping of unit names to Einsum lists")
        groups.append(Group(str(node.get("name", f"g{i}")), tuple(names), mode,
                            tuple(node.get("loops") or ()), tuple(node.get("buffer_loops") or ()),
                            {str(k): str(v) for k, v in keep.items()},
                            {str(k): float(v) for k, v in spill.items()},
                            {str(k): list(v) for k, v in order.items()}, inplace))
    return Mapping(einsums, tuple(groups), tiles, dict(sizes), str(data.get("cascade", "")),
                   str(data.get("arch", "")), str(data.get("form", "")), str(data.get("note", "")))


def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CascadeError(f"no such mapping file: {path}") from None
    except yaml.YAMLError as exc:
        raise CascadeError(f"{path}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return mapping_from_dict(data, str(path))
