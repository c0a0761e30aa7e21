"""The sweep spec: a YAML file naming the cascades, the architectures, the axes and the analysis.

Every mistake is a :class:`CascadeError` whose message starts with the file and the field path
(``s.yaml: arch_set.pe_dim[2]: expected a number``), as for architecture specs. An axis is a
number, a list of numbers, ``{start, stop, step}`` (a linear range, ``stop`` included) or
``{start, stop, factor}`` (a log range); a string is an expression over the other inputs of the
point (``M: P``). See docs/sweeps.md for the fields.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from einsum_ir.errors import CascadeError
from einsum_ir.resources import BuiltinKind, resolve_spec
from einsum_ir.spec_fields import Quantity, SpecFile, join_path
from einsum_ir.yaml_io import load_yaml_mapping

OBJECTIVES = ("latency", "energy", "edp")
FUSION = ("searched", "full", "none")
MAX_AXIS = 100_000  # values on one axis
MAX_POINTS = 10 ** 8
SIZE = Quantity(1, 2 ** 62, "", integer=True)
VALUE = Quantity(-2.0 ** 100, 2.0 ** 100)
PARALLELISM = Quantity(0, 1, "(a fraction)")
TEXT_INPUTS = ("point_id", "cascade", "arch", "workload", "objective")
RESULT_NUMBERS = ("latency_s", "cycles", "energy_J", "area_mm2", "evaluated", "search_s")
_TOP = {"name", "description", "cascades", "archs", "arch_set", "sizes", "workloads",
        "objectives", "constraints", "derived", "mapper"}
_FUNCS = {"min", "max", "ceil", "floor", "log2"}


@dataclass(frozen=True)
class Axis:
    """One swept input: constant ``values``, or one ``expr`` over the point's other inputs."""

    name: str
    kind: str  # "arch" (an architecture variable) or "size" (a cascade size)
    values: tuple = ()
    expr: str = ""
    path: str = ""  # its field path, for errors at a point


@dataclass(frozen=True)
class Source:
    """A cascade or an architecture: how the spec names it, and the text or file it is."""

    label: str
    path: str
    text: str = ""  # a cascade's text (shipped to the workers); "" for an architecture
    declared: tuple = ()  # the sizes (cascade) or variables (arch) it declares


@dataclass(frozen=True)
class Constraint:
    column: str
    lo: float | None = None
    hi: float | None = None

    def violation(self, value: float) -> str:
        if self.lo is not None and value < self.lo:
            return f"{self.column} = {value:.6g} is below the minimum {self.lo:.6g}"
        if self.hi is not None and value > self.hi:
            return f"{self.column} = {value:.6g} is above the maximum {self.hi:.6g}"
        return ""


@dataclass(frozen=True)
class SweepSpec:
    name: str
    file: str
    cascades: tuple  # Source
    archs: tuple  # Source
    workloads: tuple  # ((name, (Axis with one value or expr, ...)), ...); () = no workload axis
    axes: tuple  # Axis: arch variables, then sizes, in the file's order
    objectives: tuple
    constraints: tuple  # Constraint
    derived: tuple  # ((column, expression), ...)
    fusion: str = "searched"
    min_parallelism: float = 1.0
    units: tuple = ()  # every unit name of the architectures (a utilization column each)
    levels: tuple = ()  # every memory level name (a traffic column each)

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)


def load_spec(path: str | Path) -> SweepSpec:
    """Reads and validates a sweep spec; cascades and architectures are loaded once to check them."""
    path = Path(path)
    data = load_yaml_mapping(path, "sweep spec", hint="a sweep spec is YAML: `cascades: [...]` ...")
    return spec_from_dict(data, str(path), path.parent)


def spec_from_dict(data: dict, file: str, base: Path) -> SweepSpec:
    ctx = SpecFile(file)
    ctx.keys(data, "", _TOP, ("cascades", "archs"))
    name = ctx.text(data, "name", "", required=False, max_len=200) or Path(file).stem
    ctx.text(data, "description", "", required=False)
    cascades = tuple(_cascade(ctx, s, p, base) for s, p in _names(ctx, data["cascades"], "cascades"))
    loaded = [_arch(ctx, s, p, base) for s, p in _names(ctx, data["archs"], "archs")]
    archs = tuple(a for a, _, _ in loaded)
    arch_axes = _axes(ctx, data.get("arch_set"), "arch_set", "arch", VALUE)
    size_axes = _axes(ctx, data.get("sizes"), "sizes", "size", SIZE)
    workloads = _workloads(ctx, data.get("workloads"))
    _check_declared(ctx, arch_axes, archs, "architecture variable")
    sized = list(size_axes) + [a for _, axes in workloads for a in axes]
    _check_declared(ctx, sized, cascades, "size")
    _check_expressions(ctx, list(arch_axes) + sized)
    objectives = _objectives(ctx, data.get("objectives", "latency"))
    units = tuple(dict.fromkeys(u for _, names, _ in loaded for u in names))
    levels = tuple(dict.fromkeys(lv for _, _, names in loaded for lv in names))
    inputs = set(_input_names(ctx, arch_axes, size_axes, workloads)) - set(TEXT_INPUTS)
    numeric = inputs | set(RESULT_NUMBERS) | set(unit_columns(units)) | set(traffic_columns(levels))
    derived = _derived(ctx, data.get("derived"), numeric)
    numeric |= {n for n, _ in derived}
    constraints = _constraints(ctx, data.get("constraints"), numeric)
    fusion, min_par = _mapper(ctx, data.get("mapper"))
    spec = SweepSpec(name, file, cascades, archs, workloads, arch_axes + size_axes, objectives,
                     constraints, derived, fusion, min_par, units, levels)
    from .points import count_points

    if count_points(spec) > MAX_POINTS:
        raise ctx.err("", f"{count_points(spec):,} points (at most {MAX_POINTS:,})",
                      hint="split the sweep into several specs")
    return spec


def unit_columns(units) -> list:
    return [f"{prefix}_{u}" for u in units for prefix in ("util", "pe_util")]


def traffic_columns(levels) -> list:
    return [f"traffic_{lv}_bytes" for lv in levels]


def _names(ctx: SpecFile, node, path: str) -> list:
    """(name, field path) of a string or a non-empty list of strings."""
    items = [node] if isinstance(node, str) else node
    if not isinstance(items, list) or not items:
        raise ctx.err(path, "expected a name or path, or a non-empty list of them")
    out = []
    for i, item in enumerate(items):
        where = path if isinstance(node, str) else f"{path}[{i}]"
        if not isinstance(item, str) or not item.strip():
            raise ctx.err(where, f"expected a name or a path, got {item!r}")
        if any(item == seen for seen, _ in out):
            raise ctx.err(where, f"{item!r} is listed twice")
        out.append((item, where))
    return out


def _located(spec: str, kind: BuiltinKind, base: Path) -> Path:
    path = resolve_spec(kind, spec)
    if not path.exists() and not path.is_absolute() and (base / spec).exists():
        return base / spec  # relative to the sweep spec's folder
    return path


def _cascade(ctx: SpecFile, spec: str, where: str, base: Path) -> Source:
    from einsum_ir.loading import load_resolved
    from einsum_ir.parser import parse

    path = _located(spec, BuiltinKind.CASCADE, base)
    if not path.is_file():
        raise ctx.err(where, f"no cascade file {spec!r} (a path, relative to the spec's folder, "
                      "or a built-in name)")
    text = path.read_text(encoding="utf-8")
    loaded = load_resolved(parse(text, str(path)))  # a located error in the cascade file
    return Source(spec, str(path), text, tuple(loaded.sizes))


def _arch(ctx: SpecFile, spec: str, where: str, base: Path) -> tuple:
    """(the architecture, its unit names, its level names)."""
    from simulator.arch import load_arch

    path = _located(spec, BuiltinKind.ARCH, base)
    if not path.is_file():
        raise ctx.err(where, f"no architecture {spec!r} (a path, relative to the spec's folder, "
                      "or a built-in name)")
    arch = load_arch(path)
    return (Source(spec, str(path.resolve()), declared=tuple(arch.variables)),
            tuple(u.name for u in arch.units), tuple(lv.name for lv in arch.levels))


def _axes(ctx: SpecFile, node, path: str, kind: str, q: Quantity) -> tuple:
    if node is None:
        return ()
    ctx.mapping(node, path, "{pe_dim: [64, 128, 256]}")
    return tuple(_axis(ctx, str(k), v, join_path(path, k), kind, q) for k, v in node.items())


def _axis(ctx: SpecFile, name: str, node, path: str, kind: str, q: Quantity) -> Axis:

    if not name.isidentifier():
        raise ctx.err(path, "a name must be an identifier")
    if isinstance(node, str):
        _expr_names(ctx, node, path)
        return Axis(name, kind, expr=node, path=path)
    if isinstance(node, dict):
        values = _range(ctx, node, path, q)
    elif isinstance(node, list):
        if not node:
            raise ctx.err(path, "an empty list of values")
        values = [ctx.check(_constant(ctx, v, f"{path}[{i}]"), q, f"{path}[{i}]", v)
                  for i, v in enumerate(node)]
    else:
        values = [ctx.check(_constant(ctx, node, path), q, path, node)]
    if len(set(values)) != len(values):
        raise ctx.err(path, "a value is listed twice")
    return Axis(name, kind, tuple(values), path=path)


def _constant(ctx: SpecFile, value, path: str):
    """A number or a constant expression (``16 * 2**20``): the values of a list or a range."""
    from simulator.spec_expr import evaluate

    try:
        return evaluate(value, {}, ctx.where(path))
    except CascadeError as exc:
        if "unknown variable" not in exc.message:
            raise
        raise CascadeError(exc.message, hint="the values of a list or a range are numbers or constant "
                           "expressions; an axis given as one string is an expression over the "
                           "point's other inputs (M: P)") from None


def _range(ctx: SpecFile, node: dict, path: str, q: Quantity) -> list:
    step = "factor" if "factor" in node else "step"
    ctx.keys(node, path, {"start", "stop", step}, ("start", "stop", step))
    start, stop, by = (_constant(ctx, node[k], join_path(path, k)) for k in ("start", "stop", step))
    start, stop = (ctx.check(v, q, join_path(path, k), node[k]) for v, k in ((start, "start"), (stop, "stop")))
    if stop < start:
        raise ctx.err(join_path(path, "stop"), f"stop {stop} is below start {start}")
    if step == "factor" and (by <= 1 or start <= 0):
        raise ctx.err(join_path(path, "factor"), "a log range needs a factor > 1 and a positive start")
    if step == "step" and by <= 0:
        raise ctx.err(join_path(path, "step"), "a range needs a positive step")
    values, v = [], start
    while v <= stop * (1 + 1e-12):
        values.append(ctx.check(round(v) if q.integer else v, q, path, node))
        if len(values) > MAX_AXIS:
            raise ctx.err(path, f"more than {MAX_AXIS:,} values on one axis")
        v = v * by if step == "factor" else start + len(values) * by
    return values


def _expr_names(ctx: SpecFile, text: str, path: str) -> set:
    """The variable names of an expression (a syntax error is reported here, at load time)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise ctx.err(path, f"cannot parse {text!r} as an arithmetic expression") from None
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls}


def _workloads(ctx: SpecFile, node) -> tuple:
    """``{BERT: {H: 12, E: 64}, ...}``: one axis whose values set several sizes together."""
    if node is None:
        return ()
    ctx.mapping(node, "workloads", "{BERT: {H: 12, E: 64, F: 64}}")
    if not node:
        raise ctx.err("workloads", "an empty mapping of workloads")
    out = []
    for name, sizes in node.items():
        path = join_path("workloads", name)
        ctx.mapping(sizes, path, "{H: 12, E: 64}")
        axes = tuple(_axis(ctx, str(k), v, join_path(path, k), "size", SIZE) for k, v in sizes.items())
        for a in axes:
            if len(a.values) > 1:
                raise ctx.err(a.path, "a workload gives one value per size (sweep it under sizes:)")
        out.append((str(name), axes))
    return tuple(out)


def _check_declared(ctx: SpecFile, axes, sources, what: str) -> None:
    for a in axes:
        if not any(a.name in s.declared for s in sources):
            known = sorted({n for s in sources for n in s.declared})
            raise ctx.err(a.path, f"no {'cascade' if what == 'size' else 'architecture'} of the "
                          f"sweep declares the {what} {a.name!r}", hint="declared: " + ", ".join(known))


def _check_expressions(ctx: SpecFile, axes) -> None:
    """An input expression (``M: P``) may name only other inputs of the point."""
    names = {a.name for a in axes}
    for a in axes:
        if a.expr:
            for var in sorted(_expr_names(ctx, a.expr, a.path) - _FUNCS - names):
                raise ctx.err(a.path, f"unknown input {var!r} in {a.expr!r}",
                              hint="an expression names the sweep's variables and sizes: "
                                   + ", ".join(sorted(names)))


def _input_names(ctx: SpecFile, arch_axes, size_axes, workloads) -> list:
    names = list(TEXT_INPUTS)
    sized = {a.name for _, axes in workloads for a in axes}
    for a in list(arch_axes) + list(size_axes):
        if a.name in names or a.name in RESULT_NUMBERS:
            raise ctx.err(a.path, f"{a.name!r} is already a column of the results",
                          hint="an architecture variable and a size cannot share a name")
        if a.kind == "size" and a.name in sized:
            raise ctx.err(a.path, f"{a.name!r} is also set by the workloads")
        names.append(a.name)
    return names + sorted(sized - set(names))


def _objectives(ctx: SpecFile, node) -> tuple:
    items = [node] if isinstance(node, str) else node
    if not isinstance(items, list) or not items:
        raise ctx.err("objectives", "expected an objective or a list of them",
                      hint="objectives: " + ", ".join(OBJECTIVES))
    for i, item in enumerate(items):
        if item not in OBJECTIVES:
            where = "objectives" if isinstance(node, str) else f"objectives[{i}]"
            raise ctx.err(where, f"unknown objective {item!r}", hint="one of " + ", ".join(OBJECTIVES))
    if len(set(items)) != len(items):
        raise ctx.err("objectives", "an objective is listed twice")
    return tuple(items)


def _derived(ctx: SpecFile, node, known: set) -> tuple:
    if node is None:
        return ()
    ctx.mapping(node, "derived", "{edp: latency_s * energy_J}")
    out = []
    for name, text in node.items():
        path = join_path("derived", name)
        if not str(name).isidentifier():
            raise ctx.err(path, "a column name must be an identifier")
        if name in known or any(name == n for n, _ in out):
            raise ctx.err(path, f"{name!r} is already a column of the results")
        if not isinstance(text, str) and not isinstance(text, (int, float)):
            raise ctx.err(path, f"expected an expression over the columns, got {text!r}")
        for var in _expr_names(ctx, str(text), path) - _FUNCS:
            if var not in known and not any(var == n for n, _ in out):
                raise ctx.err(path, f"unknown column {var!r} in {text!r}",
                              hint="numeric columns: " + ", ".join(sorted(known)))
        out.append((str(name), str(text)))
    return tuple(out)


def _constraints(ctx: SpecFile, node, numeric: set) -> tuple:
    if node is None:
        return ()
    ctx.mapping(node, "constraints", "{area_mm2: {max: 500}}")
    out = []
    for column, bounds in node.items():
        path = join_path("constraints", column)
        if column not in numeric:
            raise ctx.err(path, f"no numeric column {column!r}",
                          hint="numeric columns: " + ", ".join(sorted(numeric)))
        ctx.mapping(bounds, path, "{max: 500}")
        ctx.keys(bounds, path, {"min", "max"})
        lo, hi = (ctx.check(bounds[k], VALUE, join_path(path, k)) if k in bounds else None
                  for k in ("min", "max"))
        if lo is None and hi is None:
            raise ctx.err(path, "give min, max or both")
        out.append(Constraint(str(column), lo, hi))
    return tuple(out)


def _mapper(ctx: SpecFile, node) -> tuple:
    node = ctx.mapping(node if node is not None else {}, "mapper", "{fusion: searched}")
    ctx.keys(node, "mapper", {"fusion", "min_parallelism"})
    fusion = node.get("fusion", "searched")
    if fusion not in FUSION:
        raise ctx.err("mapper.fusion", f"unknown fusion {fusion!r}", hint="one of " + ", ".join(FUSION))
    min_par = ctx.check(node.get("min_parallelism", 1.0), PARALLELISM, "mapper.min_parallelism")
    return fusion, float(min_par)

