"""Reading a mapping from YAML: every field checked for its type, with the field's path.

The checks against a cascade and an architecture (names of Einsums, ranks, units, levels) are in
:mod:`simulator.mapping_check`: a mapping file alone does not say which cascade it is applied to.
"""
from __future__ import annotations

from pathlib import Path


from einsum_ir.errors import CascadeError
from einsum_ir.yaml_io import load_yaml_mapping
from einsum_ir.passes.pipeline import PassSpec

from .mapping import AS_WRITTEN, MODES, EinsumMap, Group, LevelMap, Mapping

TOP_FIELDS = ("cascade", "arch", "cascade_digest", "note", "pipeline", "sizes", "tiles", "einsums",
              "groups")
GROUP_FIELDS = ("name", "einsums", "mode", "loops", "buffer_loops", "keep", "spill", "order",
                "inplace", "levels")
OLD_FORM_HINT = ("'form:' is the old, free-text record of the cascade form; record the pipeline "
                 "instead: 'pipeline: {name: as-written}', or 'pipeline: {name: one-pass, passes: "
                 "[{pass: online-softmax, tile_size: 256}]}' for a cascade mapped after the "
                 "online-softmax rewrite (or save the mapping again with cascade map --save)")


class _Reader:
    """Path-addressed errors for one mapping file."""

    def __init__(self, file: str):
        self.file = file

    def err(self, path: str, message: str, hint: str | None = None) -> CascadeError:
        return CascadeError(f"{self.file}: {path}: {message}", hint=hint)

    def fields(self, node: dict, path: str, allowed) -> None:
        for key in node:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise self.err(where, "unknown field", "allowed: " + ", ".join(sorted(allowed)))

    def names(self, value, path: str, what: str, non_empty: bool = False) -> tuple:
        if value is None and not non_empty:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.err(path, f"expected a list of {what}")
        if non_empty and not value:
            raise self.err(path, f"expected a non-empty list of {what}")
        return tuple(value)

    def table(self, value, path: str, what: str) -> dict:
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise self.err(path, f"expected a mapping of {what}")
        return value


def _positive_ints(r: _Reader, value, path: str, what: str) -> dict:
    value = r.table(value, path, what)
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise r.err(f"{path}.{k}", f"expected a positive integer, got {v!r}")
    return {str(k): int(v) for k, v in value.items()}


def _tiles(r: _Reader, value) -> dict:
    tiles = {}
    for rank, parts in r.table(value, "tiles", "rank names to {part: size}").items():
        if not isinstance(parts, dict) or not parts:
            raise r.err(f"tiles.{rank}", "expected a mapping such as {P1: 4, P0: 256}")
        tiles[str(rank)] = _positive_ints(r, parts, f"tiles.{rank}", "part names to sizes")
    return tiles


def _einsums(r: _Reader, value) -> dict:
    einsums = {}
    for name, node in r.table(value, "einsums", "Einsum names to {unit, spatial}").items():
        path = f"einsums.{name}"
        if not isinstance(node, dict) or not isinstance(node.get("unit"), str):
            raise r.err(path, "expected {unit: NAME, spatial: [RANK, ...]}")
        r.fields(node, path, ("unit", "spatial"))
        spatial = r.names(node.get("spatial"), f"{path}.spatial", "rank names, one per PE dimension")
        dup = next((s for i, s in enumerate(spatial) if s in spatial[:i]), None)
        if dup is not None:
            raise r.err(f"{path}.spatial", f"{dup} is spread across two PE dimensions",
                        hint="name a different rank or tile part for each dimension")
        einsums[str(name)] = EinsumMap(node["unit"], spatial)
    return einsums


def _group(r: _Reader, node, i: int, einsums: dict, seen: set) -> Group:
    path = f"groups[{i}]"
    if not isinstance(node, dict):
        raise r.err(path, "expected a mapping")
    r.fields(node, path, GROUP_FIELDS)
    names = r.names(node.get("einsums"), f"{path}.einsums", "Einsum names", non_empty=True)
    for name in names:
        if name not in einsums:
            raise r.err(f"{path}.einsums", f"{name} has no binding under 'einsums:'")
        if name in seen:
            raise r.err(f"{path}.einsums", f"{name} is in two groups")
        seen.add(name)
    mode = node.get("mode", "pipelined")
    if mode not in MODES:
        raise r.err(f"{path}.mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    loops = r.names(node.get("loops"), f"{path}.loops", "loop names (ranks or tile parts), outer "
                    "to inner")
    buffer_loops = r.names(node.get("buffer_loops"), f"{path}.buffer_loops", "loop names")
    spill = r.table(node.get("spill"), f"{path}.spill", "tensor names to fractions")
    for t, v in spill.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise r.err(f"{path}.spill.{t}", f"expected a fraction in [0, 1], got {v!r}")
    keep = r.table(node.get("keep"), f"{path}.keep", "tensor names to level names")
    order = r.table(node.get("order"), f"{path}.order", "unit names to Einsum lists")
    order = {str(u): list(r.names(v, f"{path}.order.{u}", "Einsum names")) for u, v in order.items()}
    inplace = node.get("inplace", True)
    if not isinstance(inplace, bool):
        raise r.err(f"{path}.inplace", f"expected true or false, got {inplace!r}")
    return Group(str(node.get("name", f"g{i}")), names, mode, loops, buffer_loops,
                 {str(k): str(v) for k, v in keep.items()},
                 {str(k): float(v) for k, v in spill.items()}, order, inplace,
                 _levels(r, node.get("levels"), f"{path}.levels"))


def _levels(r: _Reader, value, path: str) -> dict:
    """``levels: {spad: {keep: [A, B], loops: [K1]}}`` of a group (the inner levels' choices)."""
    out = {}
    for name, node in r.table(value, path, "inner level names to {keep, loops}").items():
        where = f"{path}.{name}"
        if not isinstance(node, dict):
            raise r.err(where, "expected {keep: [TENSOR, ...], loops: [LOOP, ...]}")
        r.fields(node, where, ("keep", "loops"))
        keep = (r.names(node["keep"], f"{where}.keep", "tensor names") if "keep" in node
                and node["keep"] is not None else None)
        out[str(name)] = LevelMap(keep, r.names(node.get("loops"), f"{where}.loops", "loop names"))
    return out


def _pipeline(r: _Reader, value) -> tuple[str, tuple]:
    if value is None:
        return AS_WRITTEN, ()
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise r.err("pipeline", "expected {name: PIPELINE, passes: [{pass: NAME, OPTION: VALUE}]}")
    r.fields(value, "pipeline", ("name", "passes"))
    passes = value.get("passes") or []
    if not isinstance(passes, list):
        raise r.err("pipeline.passes", "expected a list of {pass: NAME, OPTION: VALUE}")
    specs = []
    for i, p in enumerate(passes):
        if not isinstance(p, dict) or not isinstance(p.get("pass"), str):
            raise r.err(f"pipeline.passes[{i}]", "expected {pass: NAME, OPTION: VALUE, ...}")
        specs.append(PassSpec.from_dict(p))
    return value["name"], tuple(specs)


def mapping_from_dict(data, file: str = "<mapping>") -> Mapping:
    r = _Reader(file)
    if not isinstance(data, dict):
        raise CascadeError(f"{file}: expected a mapping at the top level")
    if "form" in data:
        raise r.err("form", "no longer read", hint=OLD_FORM_HINT)
    r.fields(data, "", TOP_FIELDS)
    for key in ("einsums", "groups"):
        if key not in data:
            raise r.err(key, "missing required field")
    for key in ("cascade", "arch", "cascade_digest", "note"):
        if not isinstance(data.get(key, ""), str):
            raise r.err(key, f"expected text, got {data[key]!r}")
    einsums = _einsums(r, data["einsums"])
    if not isinstance(data["groups"], list) or not data["groups"]:
        raise r.err("groups", "expected a non-empty list of fusion groups")
    seen: set = set()
    groups = tuple(_group(r, node, i, einsums, seen) for i, node in enumerate(data["groups"]))
    pipeline, passes = _pipeline(r, data.get("pipeline"))
    return Mapping(einsums, groups, _tiles(r, data.get("tiles")),
                   _positive_ints(r, data.get("sizes"), "sizes", "size names to positive integers"),
                   data.get("cascade", ""), data.get("arch", ""), data.get("note", ""), pipeline,
                   passes, data.get("cascade_digest", ""), file)


def load_mapping(path: str | Path) -> Mapping:
    data = load_yaml_mapping(path, "mapping", hint="write one with `cascade map FILE --save M.yaml`")
    return mapping_from_dict(data, str(path))
