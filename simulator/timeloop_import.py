"""Importing a Timeloop v0.4 / Accelergy design as a Cascade architecture spec.

A Timeloop file (``architecture: {version: 0.4, nodes: [...]}``, with the energies of Accelergy's
ERT in an ``ERT:`` section or a separate file) becomes the plain data of a native spec (what
``examples/archs/*.yaml`` hold), which :func:`simulator.arch.arch_from_dict` then validates:

* the outermost storage (DRAM) is the off-chip level: bandwidth from ``shared_bandwidth`` or
  ``read_bandwidth`` (words per cycle), an access of ``width`` bits, read/write pJ from the ERT;
* the first storage outside every spatial fan-out (the global buffer) is the on-chip buffer,
  the storages after it outside every fan-out are shared levels inside it;
* each compute component (class ``*mac*``/``compute``) is a unit whose PE dims are the fan-outs
  above it (``meshY`` rows x ``meshX`` columns); its ERT ``compute`` energy prices a MAC, and the
  unit also performs ``mul`` and ``add`` at that price. Timeloop has no other operations; a
  component's ``cascade_ops`` attribute (Timeloop ignores attributes it does not use) adds them as
  a number of MACs each, e.g. ``{max: 1, exp: 6, div: 8}``;
* storages inside a fan-out are levels local to the compute component after them: one per PE
  (``per: pe``, as many instances as PEs) or one per row (``per: row``); the storages of one
  ``!Parallel`` branch (Eyeriss's ifmap, filter and psum scratchpads side by side) are one level
  with their capacities added (Cascade's tensors are not Timeloop's dataspaces, so which
  scratchpad holds which tensor is the mapping's choice). A storage with another instance count
  (one per group of PEs) is folded into the unit's ``register_file``;
* an on-chip storage's ``shared_bandwidth`` or ``read_bandwidth``/``write_bandwidth`` (words per
  cycle per instance) becomes its level's ``ports`` x ``port_bytes`` (:mod:`simulator.timing`),
  reads and writes pooled.

What Cascade's model does not have (keep/bypass constraints, networks, a missing clock or DRAM
bandwidth) is reported in :attr:`ImportedSpec.notes`, and by
:func:`load_timeloop_arch` as one :class:`ArchImportWarning`; a design that cannot be represented
at all is a :class:`CascadeError` naming the file and the field path.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from einsum_ir.analysis.opclasses import OP_CLASSES
from einsum_ir.errors import CascadeError
from einsum_ir.spec_fields import Quantity, SpecFile

from .fused import FUSED_OPS
from .spec_expr import evaluate
from .timeloop_ert import EnergyTable, read_art, read_ert
from .timeloop_levels import LevelBuilder, _whole
from .timeloop_tree import Leaf, TreeReader
from .timeloop_yaml import load_timeloop_yaml

TOP_KEYS = ("architecture", "ERT", "ART", "variables")
IGNORED_TOP = ("problem", "mapper", "mapping", "mapspace", "globals", "components", "constraints",
               "sparse_optimizations")
BITS = Quantity(1, 512, "bits", integer=True)
CYCLE_S = Quantity(1e-11, 1, "s", positive=True)
MACS_PER_OP = Quantity(0, 1e6, "MACs", positive=True)
DEFAULT_CYCLE_S = 1e-9  # Timeloop/Accelergy's default global_cycle_seconds
COMPUTE = ("compute", "mac_random", "mac_reused", "mac")


class ArchImportWarning(UserWarning):
    """What an import folded, dropped or assumed; the command line prints it as ``warning:``."""

    cli_plain = True


@dataclass(frozen=True)
class ImportedSpec:
    spec: dict  # a native spec: arch_from_dict(spec) reads it
    notes: tuple  # what the model does not represent, and what was assumed


def import_timeloop_file(path, *, ert: str | Path | None = None, art: str | Path | None = None,
                         overrides: Mapping[str, float] | None = None,
                         shown: str | None = None) -> ImportedSpec:
    """Reads a Timeloop file (and optional separate ERT/ART files) into a native spec."""
    shown = shown or str(path)
    data = load_timeloop_yaml(path, "architecture", shown)
    tables = {}
    for key, extra in (("ERT", ert), ("ART", art)):
        if extra is not None:
            other = load_timeloop_yaml(extra, key, str(extra))
            if key not in other:
                raise SpecFile(str(extra)).err(key, "missing required field",
                                               hint=f"an Accelergy {key} file starts with `{key}:`")
            tables[key] = (str(extra), other[key])
    return import_timeloop(data, shown, overrides, tables, Path(shown).stem)


def load_timeloop_arch(path, shown: str, overrides: Mapping[str, float] | None = None):
    """The :class:`simulator.arch.Arch` of a Timeloop file; the notes become a warning."""
    from .arch import arch_from_dict

    imported = import_timeloop_file(path, overrides=overrides, shown=shown)
    if imported.notes:
        warnings.warn(f"{shown}: imported from Timeloop v0.4; not modelled or assumed:\n  "
                      + "\n  ".join(imported.notes), ArchImportWarning, stacklevel=2)
    return arch_from_dict(imported.spec, shown)


def spec_yaml(imported: ImportedSpec, source: str) -> str:
    """The native spec as YAML text, the notes as a comment header."""
    lines = [f"# Imported from the Timeloop v0.4 design {source} by `cascade import-arch`."]
    if imported.notes:
        lines.append("# Not modelled, or assumed:")
        lines.extend(f"#   {note}" for note in imported.notes)
    body = yaml.safe_dump(imported.spec, sort_keys=False, width=100, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


def import_timeloop(data: dict, file: str, overrides: Mapping[str, float] | None = None,
                    tables: dict | None = None, name: str = "timeloop") -> ImportedSpec:
    """``data``: a Timeloop file's top level (tags as :class:`Tagged`); ``tables``: ERT/ART
    given in other files, ``{"ERT": (file, node)}``."""
    spec = SpecFile(file)
    notes: list = []
    _check_top(spec, data, notes)
    reader = TreeReader(file, _variables(spec, data.get("variables"), overrides))
    arch = spec.mapping(data["architecture"], "architecture", "{version: 0.4, nodes: [...]}")
    spec.keys(arch, "architecture", {"version", "nodes"}, ("version", "nodes"))
    if str(arch["version"]) not in ("0.4", "0.4.0"):
        raise spec.err("architecture.version", f"version {arch['version']!r} is not supported",
                       hint="Cascade imports Timeloop v0.4 trees (!Container/!Component nodes); "
                       "older subtree:/local: files can be converted with Timeloop's front end")
    reader.walk(arch["nodes"], "architecture.nodes")
    ert = _table(tables, "ERT", data, file, read_ert, EnergyTable({}, {}, ()))
    art = _table(tables, "ART", data, file, read_art, {})
    builder = _Builder(reader, ert, art, name)
    built = builder.build()
    return ImportedSpec(built, tuple(notes + reader.notes + builder.notes + list(ert.notes)))


def _check_top(spec: SpecFile, data: dict, notes: list) -> None:
    spec.keys(data, "", TOP_KEYS + IGNORED_TOP, ("architecture",))
    ignored = [k for k in IGNORED_TOP if k in data]
    if ignored:
        notes.append(f"top-level {', '.join(ignored)} not read (the workload is the cascade; "
                     "energies come from the ERT; the mapper chooses the mapping)")


def _table(tables: dict | None, key: str, data: dict, file: str, read, empty):
    if tables and key in tables:
        other, node = tables[key]
        return read(SpecFile(other), node, key)
    return read(SpecFile(file), data[key], key) if key in data else empty


def _variables(spec: SpecFile, node, overrides: Mapping[str, float] | None) -> dict:
    """Timeloop's numeric ``variables:`` (others, such as ``technology: 45nm``, are not used)."""
    env: dict = {}
    for key, value in spec.mapping(node or {}, "variables", "{glb_depth: 16384}").items():
        if not isinstance(key, str) or not key.isidentifier() or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            env[key] = value
        elif isinstance(value, str):
            try:
                env[key] = evaluate(value, env, spec.where(f"variables.{key}"))
            except CascadeError:
                continue  # not arithmetic (a technology name): an attribute using it will say so
    for key, value in (overrides or {}).items():
        if key not in env:
            raise CascadeError(f"--arch-set {key}: {spec.file} declares no numeric variable {key!r}",
                               hint="declared: " + (", ".join(sorted(env)) or "none"))
        env[key] = value
    return env


class _Builder(LevelBuilder):
    """Maps the flattened leaves onto units, two levels, actions and areas."""

    def __init__(self, reader: TreeReader, ert: EnergyTable, art: dict, name: str):
        self.r = reader
        self.ert = ert
        self.art = art
        self.name = name
        self.notes: list = []

    def build(self) -> dict:
        leaves = self.r.leaves
        storages = [lf for lf in leaves if lf.kind == "storage"]
        computes = [lf for lf in leaves if lf.kind == "compute"]
        if not computes:
            raise self.r.err("architecture.nodes", "no compute component (a class containing "
                             "'mac' or 'compute')", hint="the innermost node is usually the MAC")
        if not storages:
            raise self.r.err("architecture.nodes", "no storage component: the outermost one "
                             "(DRAM) is the off-chip level")
        offchip, shared, per_pe = storages[0], [], []
        for s in storages[1:]:
            (shared if s.instances == 1 else per_pe).append(s)
        self.clock_hz = self._clock()
        self.word_bits = self._word_bits(offchip, shared, computes)
        levels = [self._offchip(offchip)] + [self._buffer(s, i == 0) for i, s in enumerate(shared)]
        self._note_dropped(leaves)
        actions = {c.name: self.ert.energy(self.r, c.name, c.path, COMPUTE) for c in computes}
        units = []
        for c in computes:
            mine = [s for s in per_pe if _owner(s, computes, leaves) is c]
            local, folded = self._local_levels(c, mine) if shared else ([], mine)
            levels += local
            units.append(self._unit(c, folded))
        return {"name": self.name, "kind": "accelerator",
                "description": f"{self.name}: imported from a Timeloop v0.4 design",
                "provenance": f"Timeloop v0.4 architecture {self.r.file} with its Accelergy ERT"
                              + (" and ART" if self.art else ""),
                "clock_hz": _whole(self.clock_hz), "word_bytes": math.ceil(self.word_bits / 8),
                "actions": actions, "units": units, "levels": levels,
                "area": self._area(leaves)}

    # -- global quantities

    def _clock(self) -> float:
        for leaf in self.r.leaves:
            seconds = self.r.leaf_number(leaf, "global_cycle_seconds", CYCLE_S)
            if seconds is not None:
                return _hz(seconds)
        if "global_cycle_seconds" in self.r.env:
            return _hz(self.r.check(self.r.env["global_cycle_seconds"], CYCLE_S,
                                    "variables.global_cycle_seconds"))
        self.notes.append("no global_cycle_seconds: the clock is Timeloop's default 1 GHz")
        return _hz(DEFAULT_CYCLE_S)

    def _bits(self, leaf: Leaf) -> int | None:
        return self.r.leaf_number(leaf, "datawidth", BITS)

    def _word_bits(self, offchip: Leaf, shared: list, computes: list) -> int:
        candidates = [lf for lf in shared[:1] + [offchip] + computes if self._bits(lf) is not None]
        if not candidates:
            self.notes.append("no datawidth anywhere: words are 16 bits")
            return 16
        bits = self._bits(candidates[0])
        others = sorted({self._bits(lf) for lf in self.r.leaves if lf.kind == "storage"
                         and self._bits(lf) not in (None, bits)})
        if others or bits % 8:
            self.notes.append(f"one word size for every tensor: {bits} bits (from "
                              f"{candidates[0].name}; others declare {others or 'none'}), "
                              f"{math.ceil(bits / 8)} bytes")
        return bits

    def _note_dropped(self, leaves: list) -> None:
        constrained = [lf.name for lf in leaves if lf.constrained]
        if constrained:
            self.notes.append("constraints of " + ", ".join(constrained) + " (keep/bypass, loop "
                              "factors) not imported: Cascade's mapper decides what each level keeps")
        networks = [lf.name for lf in leaves if lf.kind == "network" or lf.networks]
        if networks:
            self.notes.append("networks of/at " + ", ".join(networks) + " not modelled (no NoC "
                              "energy or latency; local levels' fills are multicast)")

    # -- units and area

    def _unit(self, leaf: Leaf, spads: list) -> dict:
        x, y = leaf.mesh
        dims = [y, x] if x > 1 and y > 1 else [x * y]
        along_x = [f for f in leaf.fanouts if f[1] > 1]
        along_y = [f for f in leaf.fanouts if f[2] > 1]
        if len(along_x) > 1 or len(along_y) > 1 or (along_x and along_x == along_y and len(dims) == 1):
            self.notes.append(f"{leaf.name}: fan-outs " + " x ".join(f"{n} ({fx * fy})" for n, fx, fy
                              in leaf.fanouts) + f" flattened into one array of dims {dims} (the "
                              "model has one level of PEs)")
        act = leaf.name
        ops = {op: {"cycles": 1, "actions": {act: 1}} for op in ("mac", "mul", "add")}
        extra = self._cascade_ops(leaf)
        ops.update({op: {"cycles": n, "actions": {act: n}} for op, n in extra.items()})
        self.notes.append(f"{leaf.name}: Timeloop models MACs only; mul and add cost one MAC"
                          + ("; " + ", ".join(f"{op} {n:g} MACs" for op, n in extra.items())
                             + " (cascade_ops)" if extra else
                             "; no other operations (add them with attributes.cascade_ops)"))
        unit = {"name": leaf.name, "dims": dims, "ops": ops}
        if spads:
            unit["register_file"] = self._register_file(leaf, spads)
        return unit

    def _cascade_ops(self, leaf: Leaf) -> dict:
        node = leaf.attributes.get("cascade_ops")
        if node is None:
            return {}
        path = f"{leaf.path}.attributes.cascade_ops"
        self.r.mapping(node, path, "{max: 1, exp: 6, div: 8}")
        known = OP_CLASSES + tuple(op.name for op in FUSED_OPS)
        for op in node:
            if op not in known:
                raise self.r.err(f"{path}.{op}", f"unknown operation class {op!r}",
                                 hint="classes: " + ", ".join(known))
        return {op: self.r.number(node, op, path, MACS_PER_OP) for op in node}

    def _register_file(self, unit: Leaf, spads: list) -> dict:
        total = sum(self._capacity(s) for s in spads)
        words = int(total // max(1, math.ceil(self.word_bits / 8)))
        rf = {"words": words}
        tabled = [s for s in spads if s.name in self.ert.actions]
        if tabled:
            rf["read_pJ"] = max(self._energies(s)[0] for s in tabled)
            rf["write_pJ"] = max(self._energies(s)[1] for s in tabled)
        self.notes.append(f"per-PE storages {', '.join(s.name for s in spads)} folded into "
                          f"{unit.name}'s register_file ({words} words), charged per PE access "
                          "(charge_register_files: 0 in the written spec switches that off)")
        return rf

    def _area(self, leaves: list) -> list:
        if not self.art:
            self.notes.append("no ART: area is 0")
            return []
        area = [{"name": lf.name, "count": lf.instances, "um2": self.art[lf.name]}
                for lf in leaves if lf.name in self.art and lf.kind != "container"]
        missing = [lf.name for lf in leaves if lf.kind in ("storage", "compute")
                   and lf.name not in self.art]
        if missing:
            self.notes.append("no ART entry (no area) for " + ", ".join(missing))
        return area


def _owner(spad: Leaf, computes: list, leaves: list) -> Leaf:
    """The compute component a per-PE storage feeds: the first one after it in the tree."""
    after = leaves[leaves.index(spad):]
    return next((c for c in after if c in computes), computes[-1])


def _hz(cycle_seconds: float) -> float:
    """1 / the cycle time, to 12 digits (1 / 1e-9 is 999999999.9999999 in floating point)."""
    return float(f"{1.0 / cycle_seconds:.12g}")
