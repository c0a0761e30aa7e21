"""Timing choices a spec may set per unit and per level: pipeline fill and drain, loading the
stationary operand, and the bandwidth of an on-chip level.

All of them default to what the model always did (nothing charged), so a spec that does not set
them is costed exactly as before.

**Fill and drain** (``units[i].timing.fill_drain``). On a systolic array operands enter at one
edge and are passed from PE to PE, so a pass over a stationary assignment (the outputs a PE
accumulates, or the operand it holds) takes ``T + (R - 1) + (C - 1)`` cycles for ``T`` steps of
the stream on ``R x C`` PEs: the data is skewed by one cycle per row and per column.

* ``none``: no fill or drain (the steady state only, as the analytical model always did);
* ``per_group``: one fill and drain per Einsum per fusion group (the pipeline fills once and the
  passes follow each other back to back; ZigZag's charge of one fill/drain per layer);
* ``per_tile``: every pass pays it (SCALE-Sim's cycle-accurate arrays drain each fold before the
  next starts). A pass ends when the stationary data changes (a new fold of the spatial ranks,
  a new value of another rank of the stationary tensor) or at a tile boundary of the group's
  loops.

Only the array dimensions that carry one of the Einsum's ranks are charged (``R - 1`` for the
rows, ``C - 1`` for the columns), always at the unit's full size: a partly used fold still
travels the whole array.

**Loading the stationary operand** (``units[i].timing.weight_load``). When a reduced rank is
spread across PEs the binding is operand-stationary (weight-stationary: the operand indexed by
every spread rank stays in the PEs while the others stream). ``exposed`` (default): every fill
first loads that operand, one array row per cycle (``R`` cycles), as SCALE-Sim's weight- and
input-stationary arrays do; ``hidden``: it is double-buffered and loaded behind the previous pass.

**On-chip bandwidth** (``levels[i].ports`` and ``levels[i].port_bytes``, ``i >= 1``): an on-chip
level moves at most ``ports x port_bytes / word_bytes`` words a cycle (per instance, for a level
inside the buffer), so a group takes at least its words read and written there over that rate;
the report says ``bandwidth``-bound when this bound decides, and names the level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from einsum_ir.spec_fields import Quantity, join_path

FILL_DRAIN = ("none", "per_group", "per_tile")
WEIGHT_LOAD = ("exposed", "hidden")
PORTS = Quantity(1, 2 ** 16, "ports", integer=True)
PORT_BYTES = Quantity(1, 2 ** 20, "bytes per cycle", integer=True)

OUTPUT_STATIONARY = "output-stationary"
OPERAND_STATIONARY = "operand-stationary"
STREAMING = "streaming"


@dataclass(frozen=True)
class UnitTiming:
    """How a unit's passes are timed (see the module docstring)."""

    fill_drain: str = "none"
    weight_load: str = "exposed"

    @property
    def charged(self) -> bool:
        return self.fill_drain != "none"

    def to_json(self) -> dict:
        return {"fill_drain": self.fill_drain, "weight_load": self.weight_load}


# ------------------------------------------------------------------------------ the spec fields


def _choice(ctx, node: dict, key: str, path: str, allowed: tuple) -> str:
    value = node.get(key, allowed[0])
    if value not in allowed:
        raise ctx.err(join_path(path, key), f"expected one of {', '.join(allowed)}, got {value!r}",
                      hint=f"{key}: {allowed[0]} is the default")
    return value


def read_unit_timing(ctx, node, path: str) -> UnitTiming:
    """``units[i].timing`` of a spec (absent: nothing charged)."""
    if node is None:
        return UnitTiming()
    ctx.mapping(node, path, "{fill_drain: per_tile, weight_load: exposed}")
    ctx.keys(node, path, {"fill_drain", "weight_load"})
    return UnitTiming(_choice(ctx, node, "fill_drain", path, FILL_DRAIN),
                      _choice(ctx, node, "weight_load", path, WEIGHT_LOAD))


def read_level_ports(ctx, node: dict, path: str, index: int) -> tuple:
    """``(ports, port_bytes)`` of ``levels[index]`` (both absent: the level is not a bound)."""
    given = [k for k in ("ports", "port_bytes") if k in node]
    if not given:
        return None, None
    if index == 0:
        raise ctx.err(join_path(path, given[0]), "only the on-chip buffer and the levels inside "
                      "it have ports (the off-chip level is bounded by its bandwidth)", hint="declare ports and port_bytes on an on-chip level")
    if len(given) == 1:
        other = "port_bytes" if given[0] == "ports" else "ports"
        raise ctx.err(join_path(path, other), f"missing required field (with {given[0]}: the "
                      "level moves ports x port_bytes bytes a cycle)")
    return ctx.num(node, "ports", path, PORTS), ctx.num(node, "port_bytes", path, PORT_BYTES)


# ------------------------------------------------------------------------------ dataflow


@dataclass(frozen=True)
class Dataflow:
    """What stays in the PEs during one pass, and the index variables streamed through them."""

    kind: str  # OUTPUT_STATIONARY, OPERAND_STATIONARY or STREAMING
    stationary: str  # the tensor held in the PEs ("" when streaming)
    stream: frozenset


def dataflow(info, spread: set, sizes: dict) -> Dataflow:
    """The dataflow of an Einsum whose variables ``spread`` lie across PEs. Without a reduced
    variable spread, the outputs stay while the reduced variables stream (output-stationary);
    with one, the operand indexed by every spread variable stays while the variables it lacks
    stream (the largest such stream, when several operands qualify). Nothing reused in time:
    streaming (one pass per tile)."""
    variables = set(info.vars)
    if not spread & set(info.reduced):
        stream = frozenset(set(info.reduced) - spread)
        kind = OUTPUT_STATIONARY if stream else STREAMING
        return Dataflow(kind, info.einsum.name if stream else "", stream)
    best = None
    for tensor in sorted(info.reads):
        held = set(info.reads[tensor])
        stream = frozenset(variables - held)
        if not spread <= held or not stream:
            continue
        size = math.prod(sizes[v.upper()] for v in stream)
        if best is None or size > best[0]:
            best = (size, tensor, stream)
    if best is None:
        return Dataflow(STREAMING, "", frozenset())
    return Dataflow(OPERAND_STATIONARY, best[1], best[2])


def _spread_dims(info, unit, spatial, loops, sizes: dict) -> list:
    """(PEs, variable, folds) of every unit dimension that carries one of the Einsum's variables;
    ``folds``: how many times the variable's extent fills that dimension (as in the counts)."""
    out = []
    for dim, name in zip(unit.dims, spatial, strict=False):
        var = loops.var(name)
        if var in info.vars:
            ext = sizes[var.upper()]
            used = min(ext, dim, loops.extent(name) if name in loops.parts else ext)
            out.append((dim, var, math.ceil(ext / used)))
    return out


def _tiles_along(loops, loop_names: tuple, var: str) -> int:
    """How many tiles of the group's loops ``var`` is cut into."""
    return math.prod(loops.extent(n) for n in loop_names if loops.var(n) == var)


def fill_per_pass(info, unit, spatial, loops, sizes: dict) -> tuple:
    """(cycles one pass adds to its stream, the dataflow, the spread dimensions) of an Einsum."""
    dims = _spread_dims(info, unit, spatial, loops, sizes)
    flow = dataflow(info, {v for _, v, _ in dims}, sizes)
    if not dims:
        return 0.0, flow, dims
    extra = float(sum(d - 1 for d, _, _ in dims))
    if flow.kind == OPERAND_STATIONARY and unit.timing.weight_load == "exposed":
        extra += unit.dims[0]  # the stationary operand enters one row per cycle
    return extra, flow, dims


def passes(info, loops, loop_names: tuple, dims: list, flow: Dataflow, sizes: dict) -> float:
    """Passes an Einsum makes over the whole problem: one per fold of the spread variables, per
    value of the other variables that are not streamed, and per tile along the streamed ones
    (scaled by the Einsum's density under masks); one per tile it runs in when nothing stays."""
    if flow.kind == STREAMING:
        return float(loops.iterations(info, loop_names))
    spread = {v for _, v, _ in dims}
    count = math.prod(f for _, _, f in dims)
    for v in info.vars:
        if v in flow.stream:
            count *= _tiles_along(loops, loop_names, v)
        elif v not in spread:
            count *= sizes[v.upper()]
    return count * info.density


def einsum_fill(prob, key: str, unit, spatial, loops, loop_names: tuple) -> float:
    """Cycles of fill and drain Einsum ``key`` adds on ``unit`` with the spatial ranks
    ``spatial``, in a group looping over ``loop_names`` (0 with ``none``). The one formula: the
    model charges it per Einsum, the mapper's evaluator per Einsum and capable unit."""
    mode = unit.timing.fill_drain
    if mode == "none":
        return 0.0
    info = prob.infos[key]
    extra, flow, dims = fill_per_pass(info, unit, spatial, loops, prob.sizes)
    count = 1.0 if mode == "per_group" else passes(info, loops, loop_names, dims, flow, prob.sizes)
    return extra * count


def fill_drain_cycles(prob, arch, mapping, loops, group, costs: dict) -> dict:
    """Cycles of fill and drain each Einsum of ``group`` adds on its unit (0 with ``none``, and
    for an Einsum that keeps its unit no cycle busy)."""
    names = group.loops + group.buffer_loops
    return {key: einsum_fill(prob, key, arch.unit(cost.unit), mapping.einsums[key].spatial, loops,
                             names) if cost.cycles else 0.0
            for key, cost in costs.items()}


def with_fill(costs: dict, fill: dict, n_iter: int) -> dict:
    """The Einsums' costs as their units are occupied: busy cycles plus fill and drain."""
    return {k: replace(c, cycles=c.cycles + fill[k], per_iteration=c.per_iteration + fill[k] / n_iter)
            if fill[k] else c for k, c in costs.items()}


def port_cycles(arch, glb_read, glb_write, inner: dict | None = None) -> list:
    """(cycles, level name) of every on-chip level that declares ports: its words over the
    ``ports x port_bytes`` bytes it moves a cycle (per instance for an inner level, whose words
    are spread evenly over its instances; ``inner``: name -> simulator.hierarchy.LevelUse).
    Numbers or arrays over bindings (the mapper's evaluator)."""
    out = []
    buf = arch.buffer
    if buf is not None and buf.ports is not None:
        out.append(((glb_read + glb_write) / (buf.ports * buf.port_bytes / arch.word_bytes),
                    buf.name))
    for lv in arch.inner:
        if lv.ports is not None and inner:
            use = inner[lv.name]
            out.append(((use.read + use.write) / lv.instances
                        / (lv.ports * lv.port_bytes / arch.word_bytes), lv.name))
    return out


def bandwidth_bound(arch, glb_read: float, glb_write: float, inner: dict | None = None) -> tuple:
    """(cycles the busiest ported level needs for its words, that level's name), or (0, "")
    when no on-chip level declares ports (:func:`port_cycles`)."""
    best = (0.0, "")
    for cycles, name in port_cycles(arch, glb_read, glb_write, inner):
        if cycles > best[0] or not best[1]:
            best = (cycles, name)
    return best
