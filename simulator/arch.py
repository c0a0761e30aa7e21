"""Architecture specs: compute units, memory levels, clock, energy and area tables.

A spec is a YAML file (see ``examples/archs/fusemax.yaml``). Every numeric field may be an
arithmetic expression over the spec's ``variables``, which ``--arch-set NAME=VALUE`` overrides.
Every mistake is a :class:`CascadeError` whose message starts with the file and the path of the
field, e.g. ``examples/archs/x.yaml: levels[1].bandwidth: expected a positive number``. Values must
be finite and lie in generous physical ranges (the table below, printed in the message when a value
is outside it); integer fields refuse fractions.

Levels (:mod:`simulator.arch_levels`): off-chip, the shared buffer, then any levels inside it.
An on-chip level that gives no ``read_pJ``/``write_pJ``/``um2`` (its area) takes them from its
capacity and port width (:mod:`simulator.components`); one that gives both energies and no area
has area 0 (its areas are listed under ``area:``). A unit's ``register_file`` (words, read/write pJ)
is charged per access on every PE unless ``charge_register_files`` is 0 (the built-in specs say 0:
the FuseMax artifact in effect leaves register files out, see docs/accelerator.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from einsum_ir.analysis.opclasses import NAMED_FUNCTIONS, OP_CLASSES
from einsum_ir.assignments import parse_assignments
from einsum_ir.errors import CascadeError
from einsum_ir.resources import BuiltinKind, builtin_names, data_root, resolve_spec
from einsum_ir.spec_fields import Quantity, SpecFile, join_path
from einsum_ir.yaml_io import load_yaml_mapping

from .arch_levels import AREA_UM2, ENERGY_PJ, FLAG, Level, read_level
from .fused import FUSED_OPS
from .spec_expr import evaluate
from .timing import UnitTiming, read_unit_timing

FUSED_OP_NAMES = tuple(op.name for op in FUSED_OPS)


# Physical ranges: generous bounds on real designs, so nonsense and unit mistakes are refused.
# 1 Hz and a few bytes per second are allowed so hand-worked specs can count in cycles.
CLOCK_HZ = Quantity(1, 1e11, "Hz")
WORD_BYTES = Quantity(1, 64, "bytes", integer=True)
PE_DIM = Quantity(1, 2 ** 16, "PEs", integer=True)
CYCLES = Quantity(0, 1e6, "cycles", positive=True)
ACTIONS_PER_OP = Quantity(0, 1e6, "actions", positive=True)
HOP_CYCLES = Quantity(0, 1e6, "cycles")
RF_WORDS = Quantity(0, 2 ** 30, "words", integer=True)
AREA_COUNT = Quantity(0, 2 ** 40, "instances", integer=True)
VARIABLE = Quantity(-2.0 ** 100, 2.0 ** 100)


@dataclass(frozen=True)
class OpCost:
    """One operation class on a unit: cycles per PE, the actions it performs (for energy), and
    the latency per hop when it reduces across PEs (a comparator chain: ``hop_latency`` 1)."""

    cycles: float
    actions: dict
    hop_latency: float = 0.0


@dataclass(frozen=True)
class RegisterFile:
    """A PE's register file: its size and the energy of one access."""

    words: int
    read_pJ: float
    write_pJ: float


@dataclass(frozen=True)
class Unit:
    name: str
    dims: tuple  # PEs along each dimension (rows, cols) or (n,)
    ops: dict  # op class -> OpCost; may include fused patterns such as "exp_sub"
    timing: UnitTiming = UnitTiming()  # fill/drain and stationary-operand loading (simulator.timing)
    register_file: RegisterFile | None = None

    @property
    def pes(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


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
    charge_register_files: bool = True

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
    def inner(self) -> tuple:
        """The on-chip levels inside the buffer (per-PE scratchpads, local buffers), outer first."""
        return self.levels[2:]

    def chain(self, unit: str) -> tuple:
        """The inner levels between the buffer and the PEs of ``unit``, outer first."""
        return tuple(lv for lv in self.inner if lv.per == "shared" or lv.unit == unit)

    @property
    def area_um2(self) -> float:
        return (sum(count * um2 for _, count, um2 in self.area)
                + sum(level.area_um2 * level.instances for level in self.levels))

    def to_json(self) -> dict:
        return {
            "name": self.name, "variables": dict(self.variables), "clock_hz": self.clock_hz,
            "word_bytes": self.word_bytes,
            "units": [{"name": u.name, "dims": list(u.dims), "pes": u.pes,
                       "ops": {k: {"cycles": v.cycles, "actions": v.actions,
                                   "hop_latency": v.hop_latency} for k, v in u.ops.items()},
                       **({"timing": u.timing.to_json()} if u.timing != UnitTiming() else {})}
                      for u in self.units],
            "levels": [{"name": lv.name, "capacity": lv.capacity, "bandwidth": lv.bandwidth,
                        "access_bytes": lv.access_bytes, "read_pJ": lv.read_pJ,
                        "write_pJ": lv.write_pJ, "area_um2": lv.area_um2,
                        "energy_source": lv.energy_source,
                        **({"ports": lv.ports, "port_bytes": lv.port_bytes} if lv.ports else {}),
                        **({"per": lv.per, "unit": lv.unit, "instances": lv.instances,
                            "multicast": lv.multicast} if lv.per != "shared" or i > 1 else {})}
                       for i, lv in enumerate(self.levels)],
            "actions": dict(self.actions), "area_mm2": self.area_um2 / 1e6,
        }


# ------------------------------------------------------------------------------------ loading


class _Reader(SpecFile):
    """Reads the fields of one spec, evaluating expressions over its variables."""

    def __init__(self, file: str, env: dict):
        super().__init__(file)
        self.env = env

    def num(self, node: Mapping, key: str, path: str, q: Quantity, default=...):
        where = join_path(path, key)
        if key not in node:
            if default is not ...:
                return default
            raise self.err(where, "missing required field")
        value = evaluate(node[key], self.env, self.where(where))
        return self.check(value, q, where, node[key])

    def nonempty_list(self, node, path: str, what: str) -> list:
        if not isinstance(node, list) or not node:
            raise self.err(path, f"expected a non-empty list of {what}")
        return node


_TOP = {"name", "kind", "description", "provenance", "variables", "clock_hz", "word_bytes",
        "actions", "units", "levels", "area", "charge_register_files"}
_UNIT = {"name", "dims", "ops", "register_file", "description", "timing"}
_OP = {"cycles", "actions", "hop_latency"}
_AREA = {"name", "count", "um2"}


def _builtin_hint() -> str:
    return "built-in architectures: " + ", ".join(_builtin_names()) + " (or a YAML path)"


def _builtin_names() -> list:
    return list(builtin_names(BuiltinKind.ARCH))


def load_arch(path: str | Path, overrides: Mapping[str, float] | None = None,
              label: str | None = None) -> Arch:
    """Loads and validates an architecture spec; ``overrides`` replace declared variables.
    ``label`` is how the user named it (``h100``) in the message for a GPU target."""
    path = Path(path)
    shown = str(path)
    root = data_root().parent
    if path.is_absolute() and path.is_relative_to(root):  # built-ins: examples/archs/fusemax.yaml
        shown = str(path.relative_to(root))
    hint = None if path.is_file() else _builtin_hint()  # the hint reads the built-ins: only if needed
    if path.is_file():
        from .timeloop_yaml import looks_like_timeloop

        if looks_like_timeloop(path):  # a Timeloop v0.4 design (`architecture:`): imported
            from .timeloop_import import load_timeloop_arch

            return load_timeloop_arch(path, shown, overrides)
    data = load_yaml_mapping(path, "architecture", file=shown, hint=hint)
    return arch_from_dict(data, shown, overrides, label)


def arch_from_dict(data, file: str = "<arch>", overrides: Mapping[str, float] | None = None,
                   label: str | None = None) -> Arch:
    ctx = _Reader(file, {})
    if not isinstance(data, dict):
        raise CascadeError(f"{file}: expected a mapping at the top level")
    _check_kind(ctx, data, label or Path(file).stem)
    ctx.keys(data, "", _TOP, ("name", "clock_hz", "units", "levels", "actions"))
    ctx.env = _variables(ctx, data.get("variables"), overrides)
    name = ctx.text(data, "name", "", max_len=200)
    for key in ("description", "provenance"):
        ctx.text(data, key, "", required=False)
    clock = ctx.num(data, "clock_hz", "", CLOCK_HZ)
    word_bytes = ctx.num(data, "word_bytes", "", WORD_BYTES, default=2)
    actions_node = ctx.mapping(data["actions"], "actions", "{mac: 17.2, add: 8.3}")
    actions = {str(k): ctx.num(actions_node, k, "actions", ENERGY_PJ) for k in actions_node}
    units: list = []
    for i, unode in enumerate(ctx.nonempty_list(data["units"], "units", "compute units")):
        units.append(_unit(ctx, unode, f"units[{i}]", actions, units))
    levels_node = ctx.nonempty_list(data["levels"], "levels", "memory levels, off-chip first")
    levels: list = []
    for i, lnode in enumerate(levels_node):
        levels.append(read_level(ctx, lnode, i, units, levels))
    levels = tuple(levels)
    for i, level in enumerate(levels):  # mappings name levels in `keep`: one name, one level
        if any(other.name == level.name for other in levels[:i]):
            raise ctx.err(f"levels[{i}].name", f"level {level.name!r} is declared twice")
    area_node = data.get("area") or []
    if not isinstance(area_node, list):
        raise ctx.err("area", "expected a list of {name, count, um2}")
    area = tuple(_area(ctx, anode, f"area[{i}]") for i, anode in enumerate(area_node))
    charge_rf = ctx.num(data, "charge_register_files", "", FLAG, default=1) == 1
    return Arch(name, file, ctx.env, clock, word_bytes, tuple(units), levels, actions, area,
                charge_rf)


def _check_kind(ctx: _Reader, data: dict, label: str) -> None:
    kind = data.get("kind", "accelerator")
    if kind == "gpu":
        raise CascadeError(f"{ctx.file}: {label} is a GPU target: use it with `cascade compile "
                           f"--arch`", hint="architectures for `cascade simulate` and `cascade map`: "
                           + ", ".join(_builtin_names()))
    if kind != "accelerator":
        raise ctx.err("kind", f"expected 'accelerator' (or leave it out), got {kind!r}",
                      hint="GPU targets (kind: gpu) go to `cascade compile --arch`")


def _variables(ctx: _Reader, node, overrides: Mapping[str, float] | None) -> dict:
    env: dict = {}
    for key, value in ctx.mapping(node or {}, "variables", "{pe_dim: 256}").items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ctx.err(f"variables.{key}", "a variable name must be an identifier")
        env[key] = ctx.check(evaluate(value, env, ctx.where(f"variables.{key}")), VARIABLE,
                             f"variables.{key}", value)
    for key, value in (overrides or {}).items():
        if key not in env:
            raise CascadeError(f"--arch-set {key}: {ctx.file} declares no variable {key!r}",
                               hint="declared: " + (", ".join(sorted(env)) or "none"))
        env[key] = SpecFile("--arch-set").check(value, VARIABLE, key)
    return env


def _unit(ctx: _Reader, node, path: str, actions: dict, earlier: list) -> Unit:
    ctx.mapping(node, path, "{name: 2d, dims: [256, 256], ops: {...}}")
    ctx.keys(node, path, _UNIT, ("name", "dims", "ops"))
    name = ctx.text(node, "name", path, max_len=100)
    if any(u.name == name for u in earlier):
        raise ctx.err(f"{path}.name", f"unit {name!r} is declared twice")
    dims_node = node["dims"]
    if not isinstance(dims_node, list) or not 1 <= len(dims_node) <= 2:
        raise ctx.err(f"{path}.dims", "expected a list of one or two PE counts, e.g. [256, 256]")
    dims = tuple(ctx.check(evaluate(d, ctx.env, ctx.where(f"{path}.dims[{j}]")), PE_DIM,
                           f"{path}.dims[{j}]", d) for j, d in enumerate(dims_node))
    ops = {}
    for op, onode in ctx.mapping(node["ops"], f"{path}.ops", "{mac: {cycles: 1, actions: {mac: 1}}}").items():
        ops[op] = _op(ctx, op, onode, f"{path}.ops.{op}", actions)
    rf_path = f"{path}.register_file"
    rf = ctx.mapping(node.get("register_file") or {}, rf_path, "{words: 16}")
    ctx.keys(rf, rf_path, {"words", "read_pJ", "write_pJ"})
    register_file = RegisterFile(ctx.num(rf, "words", rf_path, RF_WORDS, default=0),
                                 *(ctx.num(rf, key, rf_path, ENERGY_PJ, default=0.0)
                                   for key in ("read_pJ", "write_pJ")))
    ctx.text(node, "description", path, required=False)
    return Unit(name, dims, ops, read_unit_timing(ctx, node.get("timing"), f"{path}.timing"),
                register_file if rf else None)


def _op(ctx: _Reader, op, node, path: str, actions: dict) -> OpCost:
    if op not in OP_CLASSES and op not in FUSED_OP_NAMES and op not in NAMED_FUNCTIONS:
        raise ctx.err(path, f"unknown operation class {op!r}",
                      hint="classes: " + ", ".join(OP_CLASSES + FUSED_OP_NAMES)
                      + "; or a function priced by name (falls back to other): "
                      + ", ".join(NAMED_FUNCTIONS))
    ctx.mapping(node, path, "{cycles: 1, actions: {mac: 1}}")
    ctx.keys(node, path, _OP, ("cycles", "actions"))
    cycles = ctx.num(node, "cycles", path, CYCLES)
    acts_node = ctx.mapping(node["actions"], f"{path}.actions", "{mac: 1}")
    acts = {}
    for act in acts_node:
        if act not in actions:
            raise ctx.err(f"{path}.actions.{act}", f"no energy for action {act!r}",
                          hint="declare it under 'actions:' (pJ per action)")
        acts[act] = ctx.num(acts_node, act, f"{path}.actions", ACTIONS_PER_OP)
    return OpCost(cycles, acts, ctx.num(node, "hop_latency", path, HOP_CYCLES, default=0))


def _area(ctx: _Reader, node, path: str) -> tuple:
    ctx.mapping(node, path, "{name: global_buffer, count: 1, um2: 94176256}")
    ctx.keys(node, path, _AREA, _AREA)
    return (ctx.text(node, "name", path, max_len=200), ctx.num(node, "count", path, AREA_COUNT),
            ctx.num(node, "um2", path, AREA_UM2))


def resolve_arch(spec: str, overrides: Mapping[str, float] | None = None) -> Arch:
    """A path, or the name of a built-in spec (``fusemax``); a GPU target's name is refused
    with the command that takes it."""
    path = resolve_spec(BuiltinKind.ARCH, spec)
    if not path.exists() and spec == path.name and not path.suffix:
        raise CascadeError(f"--arch {spec}: no such file and no built-in architecture of that "
                           "name", hint=_builtin_hint())
    return load_arch(path, overrides, label=spec if spec.isidentifier() else None)


def parse_arch_sets(items) -> dict:
    """``--arch-set NAME=VALUE`` items: integers (with ``_`` and a K/M/G binary suffix) or
    finite floats, each within the range of a spec variable."""
    values = parse_assignments(items, "--arch-set", floats=True, example="pe_dim=128")
    check = SpecFile("--arch-set").check
    return {name: check(value, VARIABLE, name, value) for name, value in values.items()}
