"""Applying a saved mapping to a cascade: the recorded pipeline replayed, every field checked.

A mapping file names Einsums, ranks, tile parts, units, buffer levels and tensors; each is checked
against the cascade (in the form the mapping's pipeline makes of it) and the architecture before
the model runs, and a mismatch is a :class:`CascadeError` naming the file and the field's path.
"""
from __future__ import annotations

from einsum_ir.errors import CascadeError
from einsum_ir.passes import digest, replay

from .arch import Arch
from .counts import op_counts
from .mapping import Group, Mapping, outer_part
from .problem import Problem


class _Checker:
    def __init__(self, mapping: Mapping, prob: Problem, arch: Arch):
        self.m, self.prob, self.arch = mapping, prob, arch
        self.file = mapping.source or "<mapping>"
        self.parts = {outer_part(r, p): r for r, p in mapping.tiles.items()}
        self.parts.update({part: r for r, p in mapping.tiles.items() for part in p})

    def err(self, path: str, message: str, hint: str | None = None) -> CascadeError:
        return CascadeError(f"{self.file}: {path}: {message}", hint=hint)

    def loop_name(self, path: str, name: str) -> None:
        if name not in self.parts and name not in self.prob.sizes:
            raise self.err(path, f"no rank or tile part named {name!r}",
                           hint="ranks: " + ", ".join(self.prob.cascade.rank_names())
                           + (("; tile parts: " + ", ".join(self.parts)) if self.parts else ""))

    def sizes(self) -> None:
        declared = [d.name for d in self.prob.cascade.sizes]
        for name in self.m.sizes:
            if name not in declared:
                raise self.err(f"sizes.{name}", f"the cascade declares no size {name}",
                               hint="sizes: " + ", ".join(declared))
        for rank in self.m.tiles:
            if rank not in self.prob.sizes:
                raise self.err(f"tiles.{rank}", f"the cascade has no rank {rank}",
                               hint="ranks: " + ", ".join(self.prob.cascade.rank_names()))

    def einsum(self, key: str) -> None:
        path = f"einsums.{key}"
        info = self.prob.infos.get(key)
        if info is None:
            raise self.err(path, f"the cascade has no Einsum {key}",
                           hint="Einsums: " + ", ".join(self.prob.order))
        em = self.m.einsums[key]
        units = [u.name for u in self.arch.units]
        if em.unit not in units:
            raise self.err(f"{path}.unit", f"{self.arch.name} has no unit {em.unit!r}",
                           hint="units: " + ", ".join(units))
        unit = self.arch.unit(em.unit)
        lacking = [op for op in op_counts(info, unit) if op not in unit.ops]
        if lacking:
            able = [u.name for u in self.arch.units
                    if all(op in u.ops for op in op_counts(info, u))]
            raise self.err(f"{path}.unit", f"unit {unit.name} cannot perform {', '.join(lacking)} "
                           f"(needed by {key})",
                           hint=f"units that can run {key}: {', '.join(able) or 'none'}")
        if len(em.spatial) > len(unit.dims):
            raise self.err(f"{path}.spatial", f"{len(em.spatial)} ranks for the "
                           f"{len(unit.dims)}-dimensional unit {unit.name}")
        for name in em.spatial:
            self.loop_name(f"{path}.spatial", name)

    def group(self, i: int, group: Group) -> None:
        path = f"groups[{i}]"
        names = group.loops + group.buffer_loops + group.inner_loops(self.arch)
        for key, value in (("loops", group.loops), ("buffer_loops", group.buffer_loops)):
            for name in value:
                self.loop_name(f"{path}.{key}", name)
        self.levels(path, group)
        dup = next((n for j, n in enumerate(names) if n in names[:j]), None)
        if dup is not None:
            raise self.err(f"{path}.loops", f"{dup} is a loop twice")
        self.tile_parts(path, group)
        touched = {t for k in group.einsums for t in self.prob.infos[k].reads}
        produced = {self.prob.infos[k].einsum.name for k in group.einsums}
        self.keep(path, group, touched | produced)
        for t in group.spill:
            if t not in produced:
                raise self.err(f"{path}.spill.{t}", f"{t} is not produced in the group",
                               hint="spill intermediates: " + ", ".join(sorted(produced)))
        units = [u.name for u in self.arch.units]
        for u in group.order:
            if u not in units:
                raise self.err(f"{path}.order.{u}", f"{self.arch.name} has no unit {u!r}",
                               hint="units: " + ", ".join(units))

    def tile_parts(self, path: str, group: Group) -> None:
        """Every part of a rank the group iterates is a loop or spread across PEs, except the
        innermost part of a rank whose outer parts all are and that no Einsum spreads: the PEs
        walk it inside the tile (a per-level tile factor, ``K = K1 x K0`` with ``K1`` a loop)."""
        used = {v.upper() for k in group.einsums for v in self.prob.infos[k].vars}
        placed = set(group.loops + group.buffer_loops + group.inner_loops(self.arch))
        spread = {s for k in group.einsums for s in self.m.einsums[k].spatial}
        placed |= spread
        for rank, parts in self.m.tiles.items():
            inner = list(parts)[-1] if parts else None
            rest = [p for p in self.parts if self.parts[p] == rank and p != inner]
            if inner is not None and rest and all(p in placed for p in rest) and not (
                    spread & {rank, inner, *rest}):
                placed.add(inner)
        for part, rank in self.parts.items():
            if rank in used and part not in placed:
                raise self.err(f"{path}.loops", f"tile part {part} of {rank} is neither a loop of "
                               "the group nor spread across PEs",
                               hint=f"add {part} to loops (off-chip) or buffer_loops")

    def levels(self, path: str, group: Group) -> None:
        """``levels:`` names inner levels of the spec, tensors of the group and loop names."""
        inner = [lv.name for lv in self.arch.inner]
        used = {t for k in group.einsums for t in self.prob.infos[k].reads}
        for name, lm in group.levels.items():
            where = f"{path}.levels.{name}"
            if name not in inner:
                raise self.err(where, f"{self.arch.name} has no level {name!r} inside its buffer",
                               hint="inner levels: " + (", ".join(inner) or "none (the spec has "
                                                        "only off-chip memory and one buffer)"))
            for t in lm.keep or ():
                if t not in used:
                    raise self.err(f"{where}.keep", f"the group's Einsums read no tensor {t}",
                                   hint="tensors read: " + ", ".join(sorted(used)))
            for loop in lm.loops:
                self.loop_name(f"{where}.loops", loop)

    def keep(self, path: str, group: Group, tensors: set) -> None:
        levels = ["PE", self.arch.offchip.name] + ([self.arch.buffer.name] if self.arch.buffer else [])
        for t, level in group.keep.items():
            if t not in tensors:
                raise self.err(f"{path}.keep.{t}", f"the group's Einsums do not use a tensor {t}",
                               hint="tensors: " + ", ".join(sorted(tensors)))
            if level not in levels:
                raise self.err(f"{path}.keep.{t}", f"{self.arch.name} has no level {level!r}",
                               hint="levels: " + ", ".join(levels))


def check_mapping(mapping: Mapping, prob: Problem, arch: Arch) -> None:
    """Raises a located CascadeError for the first field of ``mapping`` that does not fit."""
    c = _Checker(mapping, prob, arch)
    c.sizes()
    for key in mapping.einsums:
        c.einsum(key)
    grouped = {k for g in mapping.groups for k in g.einsums}
    missing = [k for k in prob.order if k not in grouped]
    if missing:
        raise c.err("groups", f"the Einsums {', '.join(missing)} are in no group",
                    hint="every Einsum of the cascade belongs to one group")
    for i, group in enumerate(mapping.groups):
        c.group(i, group)


def replay_mapping(cascade, mapping: Mapping):
    """The form of ``cascade`` the mapping was made for (its pipeline replayed): refuses a
    mapping recorded for another cascade."""
    file = mapping.source or "<mapping>"
    if mapping.cascade_digest and mapping.cascade_digest != digest(cascade):
        made_for = mapping.cascade or "another cascade"
        raise CascadeError(f"{file}: cascade_digest: the mapping was made for {made_for} (digest "
                           f"{mapping.cascade_digest}), not for {cascade.name} (digest "
                           f"{digest(cascade)})",
                           hint=f"map {cascade.name} itself (cascade map ... --save M.yaml), or delete "
                                "cascade_digest from the mapping to apply it anyway")
    try:
        return replay(cascade, mapping.pipeline, mapping.passes)
    except CascadeError as exc:
        raise CascadeError(f"{file}: pipeline: {exc.message}", hint=exc.hint) from None


def simulate_saved(cascade, arch: Arch, mapping: Mapping, sizes: dict | None = None):
    """Simulates a saved mapping on ``cascade``: replays its pipeline, checks every field, runs
    the model (returns a :class:`simulator.report.Report`)."""
    from .cost import simulate_problem
    from .problem import problem_for

    prepared = replay_mapping(cascade, mapping)
    prob = problem_for(prepared.cascade, {**dict(sizes or {}), **mapping.sizes})
    check_mapping(mapping, prob, arch)
    return simulate_problem(prob, arch, mapping, prepared.describe())
