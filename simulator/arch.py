"""Architecture specs: compute units, memory levels, clock, energy and area tables.

A spec is a YAML file (see ``examples/archs/fusemax.yaml``). Every numeric field may be an
arithmetic expression over the spec's ``variables``, which ``--arch-set NAME=VALUE`` overrides.
Every mistake is a :class:`CascadeError` whose message starts with the file and the path of the
field, e.g. ``examples/archs/x.yaml: levels[1].bandwidth: expected a positive number``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from einsum_ir.errors import CascadeError

from .spec_expr import evaluate

OP_CLASSES = ("mac", "add", "mul", "max", "exp", "div", "cmp", "other")


@dataclass(frozen=True)
class OpCost:
    """One operation class on a unit: cycles per PE, the actions it performs (for energy), and
    the latency per hop when it reduces across PEs (a comparator chain: ``hop_latency`` 1)."""

    cycles: float
    actions: dict
    hop_latency: float = 0.0


@dataclass(frozen=True)
class Unit:
    name: str
    dims: tuple  # PEs along each dimension (rows, cols) or (n,)
    ops: dict  # op class -> OpCost; may include fused patterns such as "exp_sub"
    register_words: int = 0
    rf_read_pJ: float = 0.0
    rf_write_pJ: float = 0.0

    @property
    def pes(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass(frozen=True)
class Level:
    name: str
    capacity: float | None  # bytes; None = unbounded (off-chip)
    bandwidth: float | None  # bytes per second; None = not a bottleneck
    access_bytes: int
    read_pJ: float
    write_pJ: float


@dataclass(frozen=True)
class Arch:
    name: str
    path: str
    variables: dict
    clock_hz: float
    word_bytes: int
    units: tuple
    levels: tuple  # outermost (off-chip) first
    actions: dict  # action -> pJ
    area: tuple  # (component, count, um2 each)
    description: str = ""
    provenance: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise CascadeError(f"architecture {self.name} has no unit {name!r}",
                           hint="units: " + ", ".join(u.name for u in self.units))

    @property
    def offchip(self) -> Level:
        return self.levels[0]

    @property
    def buffer(self) -> Level | None:
        return self.levels[1] if len(self.levels) > 1 else None

    @property
    def area_um2(self) -> float:
        return sum(count * um2 for _, count, um2 in self.area)

    def area_breakdown(self) -> dict:
        return {name: count * um2 for name, count, um2 in self.area}

    def to_json(self) -> dict:
        return {
            "name": self.name, "variables": dict(self.variables), "clock_hz": self.clock_hz,
            "word_bytes": self.word_bytes,
            "units": [{"name": u.name, "dims": list(u.dims), "pes": u.pes,
                       "ops": {k: {"cycles": v.cycles, "actions": v.actions,
                                   "hop_latency": v.hop_latency} for k, v in u.ops.items()}}
                      for u in self.units],
            "levels": [{"name": lv.name, "capacity": lv.capacity, "bandwidth": lv.bandwidth,
                        "access_bytes": lv.access_bytes, "read_pJ": lv.read_pJ,
                        "write_pJ": lv.write_pJ} for lv in self.levels],
            "actions": dict(self.actions), "area_mm2": self.area_um2 / 1e6,
        }


# ------------------------------------------------------------------------------------ loading


class _Ctx:
    def __init__(self, file: str, env: dict):
        self.file = file
        self.env = env

    def err(self, path: str, message: str, hint: str | None = None) -> CascadeError:
        return CascadeError(f"{self.file}: {path}: {message}", hint=hint)

    def num(self, node: Mapping, key: str, path: str, *, positive=True, allow_zero=False,
            default: Any = ...) -> float:
        if key not in node:
            if default is not ...:
                return default
            raise self.err(f"{path}.{key}" if path else key, "missing required field")
        where = f"{self.file}: {path}.{key}" if path else f"{self.file}: {key}"
        value = evaluate(node[key], self.env, where)
        if not isinstance(value, (int, float)) or value != value:
            raise self.err(f"{path}.{key}" if path else key, "expected a number")
        if positive and (value < 0 or (value == 0 and not allow_zero)):
            raise self.err(f"{path}.{key}" if path else key,
                           f"expected a positive number, got {node[key]!r}"
                           + (f" (= {value})" if isinstance(node[key], str) else ""))
        return value

    def mapping(self, node, path: str) -> dict:
        if not isinstance(node, dict):
            raise self.err(path, f"expected a mapping, got {type(node).__name__}")
        return node

    def keys(self, node: dict, path: str, allowed: set, required: set = frozenset()) -> None:
        for key in node:
            if key not in allowed:
                raise self.err(f"{path}.{key}" if path else str(key), "unknown field",
                               hint="allowed fields: " + ", ".join(sorted(allowed)))
        for key in required:
            if key not in node:
                raise self.err(f"{path}.{key}" if path else key, "missing required field")


_TOP = {"name", "description", "provenance", "variables", "clock_hz", "word_bytes", "actions",
        "units", "levels", "area"}


def load_arch(path: str | Path, overrides: Mapping[str, float] | None = None) -> Arch:
    """Loads and validates an architecture spec; ``overrides`` replace declared variables."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CascadeError(f"no such architecture file: {file}",
                           hint="built-ins live in examples/archs/ (fusemax, flat, unfused, edge)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise CascadeError(f"{file}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return arch_from_dict(data, file, overrides)


def arch_from_dict(data, file: str = "<arch>", overrides: Mapping[str, float] | None = None) -> Arch:
    ctx = _Ctx(file, {})
    if not isinstance(data, dict):
        raise CascadeError(f"{file}: expected a mapping at the top level")
    ctx.keys(data, "", _TOP, {"name", "clock_hz", "units", "levels", "actions"})
    variables = data.get("variables") or {}
    ctx.mapping(variables, "variables")
    env: dict = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ctx.err(f"variables.{key}", "a variable name must be an identifier")
        env[key] = evaluate(value, env, f"{file}: variables.{key}")
    for key, value in (overrides or {}).items():
        if key not in env:
            raise CascadeError(f"--arch-set {key}: {file} declares no variable {key!r}",
                               hint="declared: " + (", ".join(sorted(env)) or "none"))
        env[key] = value
    ctx.env = env

    name = data["name"]
    if not isinstance(name, str) or not name:
        raise ctx.err("name", "expected a non-empty string")
    clock = ctx.num(data, "clock_hz", "")
    word_bytes = int(ctx.num(data, "word_bytes", "", default=2))

    actions_node = ctx.mapping(data["actions"], "actions")
    actions = {str(k): ctx.num(actions_node, k, "actions", allow_zero=True) for k in actions_node}

    units_node = data["units"]
    if not isinstance(units_node, list) or not units_node:
        raise ctx.err("units", "expected a non-empty list of compute units")
    units = []
    for i, unode in enumerate(units_node):
        upath = f"units[{i}]"
        ctx.mapping(unode, upath)
        ctx.keys(unode, upath, {"name", "dims", "ops", "register_file", "description"},
                 {"name", "dims", "ops"})
        uname = unode["name"]
        if not isinstance(uname, str) or not uname:
            raise ctx.err(f"{upath}.name", "expected a non-empty string")
        if any(u.name == uname for u in units):
            raise ctx.err(f"{upath}.name", f"unit {uname!r} is declared twice")
        dims_node = unode["dims"]
        if not isinstance(dims_node, list) or not 1 <= len(dims_node) <= 2:
            raise ctx.err(f"{upath}.dims", "expected a list of one or two PE counts, e.g. [256, 256]")
        dims = []
        for j, d in enumerate(dims_node):
            v = evaluate(d, env, f"{file}: {upath}.dims[{j}]")
            if not isinstance(v, int) or v <= 0:
                raise ctx.err(f"{upath}.dims[{j}]", f"expected a positive integer, got {d!r}")
            dims.append(v)
        ops_node = ctx.mapping(unode["ops"], f"{upath}.ops")
        ops = {}
        for op, onode in ops_node.items():
            opath = f"{upath}.ops.{op}"
            if op not in OP_CLASSES and op != "exp_sub":
                raise ctx.err(opath, f"unknown operation class {op!r}",
                              hint="classes: " + ", ".join(OP_CLASSES) + ", exp_sub")
            ctx.mapping(onode, opath)
            ctx.keys(onode, opath, {"cycles", "actions", "hop_latency"}, {"cycles", "actions"})
            cycles = ctx.num(onode, "cycles", opath)
            acts_node = ctx.mapping(onode["actions"], f"{opath}.actions")
            acts = {}
            for act, count in acts_node.items():
                if act not in actions:
                    raise ctx.err(f"{opath}.actions.{act}", f"no energy for action {act!r}",
                                  hint="declare it under 'actions:' (pJ per action)")
                acts[act] = ctx.num(acts_node, act, f"{opath}.actions")
            hop = ctx.num(onode, "hop_latency", opath, allow_zero=True, default=0)
            ops[op] = OpCost(cycles, acts, hop)
        rf = unode.get("register_file") or {}
        ctx.mapping(rf, f"{upath}.register_file")
        ctx.keys(rf, f"{upath}.register_file", {"words", "read_pJ", "write_pJ"})
        units.append(Unit(uname, tuple(dims), ops,
                          int(ctx.num(rf, "words", f"{upath}.register_file", allow_zero=True, default=0)),
                          ctx.num(rf, "read_pJ", f"{upath}.register_file", allow_zero=True, default=0.0),
                          ctx.num(rf, "write_pJ", f"{upath}.register_file", allow_zero=True, default=0.0)))

    levels_node = data["levels"]
    if not isinstance(levels_node, list) or not levels_node:
        raise ctx.err("levels", "expected a list of memory levels, off-chip first")
    levels = []
    for i, lnode in enumerate(levels_node):
        lpath = f"levels[{i}]"
        ctx.mapping(lnode, lpath)
        ctx.keys(lnode, lpath, {"name", "capacity", "bandwidth", "access_bytes", "read_pJ",
                                "write_pJ", "description"}, {"name", "access_bytes", "read_pJ", "write_pJ"})
        lname = lnode["name"]
        if not isinstance(lname, str) or not lname:
            raise ctx.err(f"{lpath}.name", "expected a non-empty string")
        capacity = ctx.num(lnode, "capacity", lpath, default=None)
        if i > 0 and capacity is None:
            raise ctx.err(f"{lpath}.capacity", "missing required field (on-chip levels have a capacity)")
        bandwidth = ctx.num(lnode, "bandwidth", lpath, default=None)
        if i == 0 and bandwidth is None:
            raise ctx.err(f"{lpath}.bandwidth", "missing required field (the off-chip bandwidth, bytes/s)")
        levels.append(Level(lname, capacity, bandwidth, int(ctx.num(lnode, "access_bytes", lpath)),
                            ctx.num(lnode, "read_pJ", lpath, allow_zero=True),
                            ctx.num(lnode, "write_pJ", lpath, allow_zero=True)))

    area = []
    area_node = data.get("area") or []
    if not isinstance(area_node, list):
        raise ctx.err("area", "expected a list of {name, count, um2}")
    for i, anode in enumerate(area_node):
        apath = f"area[{i}]"
        ctx.mapping(anode, apath)
        ctx.keys(anode, apath, {"name", "count", "um2"}, {"name", "count", "um2"})
        area.append((str(anode["name"]), ctx.num(anode, "count", apath, allow_zero=True),
                     ctx.num(anode, "um2", apath, allow_zero=True)))
    return Arch(name, file, env, clock, word_bytes, tuple(units), tuple(levels), actions,
                tuple(area), str(data.get("description", "")), str(data.get("provenance", "")), data)


def builtin_arch_path(name: str) -> Path:
    root = Path(__file__).resolve().parent.parent / "examples" / "archs"
    return root / f"{name}.yaml"


def resolve_arch(spec: str, overrides: Mapping[str, float] | None = None) -> Arch:
    """A path, or the name of a built-in spec (``fusemax``)."""
    path = Path(spec)
    if not path.exists() and not spec.endswith((".yaml", ".yml")):
        path = builtin_arch_path(spec)
    return load_arch(path, overrides)


def parse_arch_sets(items) -> dict:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CascadeError(f"--arch-set {item}: expected NAME=VALUE",
                               hint="for example --arch-set pe_dim=128")
        text = value.strip().replace("_", "")
        try:
            out[name.strip()] = int(text)
        except ValueError:
            scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:].upper())
            try:
                out[name.strip()] = int(text[:-1]) * scale if scale else float(text)
            except ValueError:
                raise CascadeError(f"--arch-set {item}: {value!r} is not a number") from None
    return out
