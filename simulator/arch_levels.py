"""Memory levels of an architecture spec: what each declares and where it sits.

``levels`` lists them outermost first: ``levels[0]`` off-chip, ``levels[1]`` the shared buffer,
then any levels inside it (:mod:`simulator.hierarchy`), shared or local to one unit (one
instance, one per row of its PEs, one per PE). An on-chip level that gives no
``read_pJ``/``write_pJ``/``um2`` takes them from its capacity and port width
(:mod:`simulator.components`).
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir.spec_fields import Quantity, join_path

from .components import sram_cost
from .timing import read_level_ports

ENERGY_PJ = Quantity(0, 1e9, "pJ")
CAPACITY = Quantity(1, 2 ** 60, "bytes")
BANDWIDTH = Quantity(1, 1e16, "bytes/s")
ACCESS_BYTES = Quantity(1, 2 ** 20, "bytes", integer=True)
AREA_UM2 = Quantity(0, 1e12, "um^2")
FLAG = Quantity(0, 1, "(0 or 1)", integer=True)

_LEVEL = {"name", "capacity", "bandwidth", "access_bytes", "read_pJ", "write_pJ", "um2",
          "description", "ports", "port_bytes", "per", "unit", "multicast"}
PLACEMENTS = ("shared", "unit", "row", "pe")


@dataclass(frozen=True)
class Level:
    name: str
    capacity: float | None  # bytes; None = unbounded (off-chip)
    bandwidth: float | None  # bytes per second; None = not a bottleneck
    access_bytes: int
    read_pJ: float
    write_pJ: float
    area_um2: float = 0.0
    energy_source: str = "spec"  # where read_pJ/write_pJ/area_um2 came from
    ports: int | None = None  # on-chip: ports x port_bytes bytes a cycle bound the group (simulator.timing)
    port_bytes: int | None = None
    # where an inner level (levels[2:]) sits: one shared instance, or one per unit, per row of
    # the unit's PEs, or per PE of ``unit`` (simulator.hierarchy)
    per: str = "shared"
    unit: str = ""
    instances: int = 1
    multicast: bool = True  # a word several instances need is read once from the parent

    def fan_dims(self, unit) -> tuple:
        """The unit's PE dimensions the level's instances are spread over."""
        return {"row": (0,), "pe": tuple(range(len(unit.dims)))}.get(self.per, ())



def read_level(ctx, node, i: int, units: list, earlier: list) -> Level:
    """``levels[i]`` of a spec (``ctx``: the spec's reader; ``units``: its units)."""
    path = f"levels[{i}]"
    ctx.mapping(node, path, "{name: GLB, capacity: 2**20, access_bytes: 64, read_pJ: 1, write_pJ: 1}")
    required = ("name", "access_bytes") + (("read_pJ", "write_pJ") if i == 0 else ())
    ctx.keys(node, path, _LEVEL, required)
    name = ctx.text(node, "name", path, max_len=100)
    capacity = ctx.num(node, "capacity", path, CAPACITY, default=None)
    if i > 0 and capacity is None:
        raise ctx.err(f"{path}.capacity", "missing required field (on-chip levels have a capacity)")
    bandwidth = ctx.num(node, "bandwidth", path, BANDWIDTH, default=None)
    if i == 0 and bandwidth is None:
        raise ctx.err(f"{path}.bandwidth", "missing required field (the off-chip bandwidth, bytes/s)")
    ctx.text(node, "description", path, required=False)
    ports, port_bytes = read_level_ports(ctx, node, path, i)
    access = ctx.num(node, "access_bytes", path, ACCESS_BYTES)
    per, unit, instances = _placement(ctx, node, path, i, units, earlier)
    multicast = ctx.num(node, "multicast", path, FLAG, default=1) == 1
    return Level(name, capacity, bandwidth, access, *_level_costs(ctx, node, path, capacity, access),
                 ports=ports, port_bytes=port_bytes, per=per, unit=unit, instances=instances,
                 multicast=multicast)


def _placement(ctx, node, path: str, i: int, units: list, earlier: list) -> tuple:
    """(per, unit, instances) of a level: where it sits. Only the levels inside the buffer
    (levels[2:]) may be local; each unit's chain of levels gets finer inward."""
    given = [k for k in ("per", "unit", "multicast") if k in node]
    if i < 2 and given:
        raise ctx.err(join_path(path, given[0]), "only the levels inside the buffer (levels[2:]) "
                      "may be local to a unit or its PEs", hint="levels[0] is off-chip, levels[1] "
                      "the shared buffer; add a level after it")
    per = node.get("per", "shared")
    if per not in PLACEMENTS:
        raise ctx.err(join_path(path, "per"), f"expected one of {', '.join(PLACEMENTS)}, got "
                      f"{per!r}", hint="per: pe (a scratchpad in every PE), row, unit or shared")
    if per == "shared":
        if "unit" in node:
            raise ctx.err(join_path(path, "unit"), "a shared level serves every unit",
                          hint="give per: unit, row or pe for a level local to one unit")
        if any(lv.per != "shared" for lv in earlier):
            raise ctx.err(join_path(path, "per"), "a shared level inside a local one",
                          hint="list the shared levels first, then each unit's local levels")
        return per, "", 1
    if "unit" not in node:
        raise ctx.err(join_path(path, "unit"), f"missing required field (a level per {per} "
                      "serves one unit)", hint="units: " + ", ".join(u.name for u in units))
    name = ctx.text(node, "unit", path, max_len=100)
    unit = next((u for u in units if u.name == name), None)
    if unit is None:
        raise ctx.err(join_path(path, "unit"), f"no unit {name!r}",
                      hint="units: " + ", ".join(u.name for u in units))
    finer = PLACEMENTS.index(per)
    coarser = [lv for lv in earlier if lv.unit == name and PLACEMENTS.index(lv.per) > finer]
    if coarser:
        raise ctx.err(join_path(path, "per"), f"a level per {per} inside {coarser[0].name} "
                      f"(per {coarser[0].per}) of the same unit",
                      hint="list a unit's local levels outer first: unit, row, pe")
    instances = {"unit": 1, "row": unit.dims[0], "pe": unit.pes}[per]
    return per, name, instances


def _level_costs(ctx, node, path: str, capacity, access: int) -> tuple:
    """(read pJ, write pJ, area um^2, source) of a level: what the spec gives, the rest from the
    buffer model for an on-chip level (the off-chip level gives its energies and has no area)."""
    given = {key: ctx.num(node, key, path, q, default=None)
             for key, q in (("read_pJ", ENERGY_PJ), ("write_pJ", ENERGY_PJ), ("um2", AREA_UM2))}
    if given["read_pJ"] is not None and given["write_pJ"] is not None and given["um2"] is None:
        given["um2"] = 0.0  # a spec with its own energies lists its areas under `area:`
    if capacity is None or all(v is not None for v in given.values()):
        return given["read_pJ"], given["write_pJ"], given["um2"] or 0.0, "spec"
    model = sram_cost(capacity, access * 8)
    modelled = (model.read_pJ, model.write_pJ, model.area_um2)
    values = tuple(m if v is None else v for v, m in zip(given.values(), modelled, strict=True))
    source = "model" if all(v is None for v in given.values()) else "spec + model"
    return (*values, source)
