"""The sweep's points: the cross product of its axes, numbered in a fixed order.

The order is cascades, architectures, workloads, architecture variables, sizes (in the spec's
order), objectives, the last varying fastest; a point's id is its index in that order, so the
same spec numbers its points the same way on every run and every worker count. Points are
generated lazily (a sweep of a million points is not held in memory).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator

from einsum_ir.errors import CascadeError

from .spec import SweepSpec


@dataclass(frozen=True)
class Point:
    id: int
    cascade: str  # the spec's label of the cascade
    arch: str
    workload: str  # "" when the spec has no workloads
    arch_set: tuple  # ((variable, value), ...): the swept architecture variables
    sizes: tuple  # ((size, value), ...): the swept and workload sizes
    objective: str
    error: str = ""  # an input expression that has no valid value at this point

    def inputs(self, spec: SweepSpec) -> dict:
        """The input columns of this point's row."""
        row = {"point_id": self.id, "cascade": self.cascade, "arch": self.arch}
        if spec.workloads:
            row["workload"] = self.workload
        row["objective"] = self.objective
        row.update(self.arch_set)
        row.update(self.sizes)
        return row


def _lists(spec: SweepSpec) -> list:
    constants = [a.values for a in spec.axes if not a.expr]
    workloads = [w for w, _ in spec.workloads] or [""]
    return [list(range(len(spec.cascades))), list(range(len(spec.archs))), workloads,
            *constants, list(spec.objectives)]


def count_points(spec: SweepSpec) -> int:
    return math.prod(len(values) for values in _lists(spec))


def iter_points(spec: SweepSpec, start: int = 0) -> Iterator[Point]:
    """Every point from id ``start`` on, in id order."""
    constant_axes = [a for a in spec.axes if not a.expr]
    workloads = dict(spec.workloads)
    combos = itertools.product(*_lists(spec))
    for pid, combo in enumerate(itertools.islice(combos, start, None), start):
        ci, ai, workload, *values, objective = combo
        values_of = {a.name: v for a, v in zip(constant_axes, values, strict=True)}
        yield _point(spec, pid, ci, ai, workload, values_of, workloads.get(workload, ()), objective)


def _point(spec: SweepSpec, pid: int, ci: int, ai: int, workload: str, values: dict,
           workload_axes: tuple, objective: str) -> Point:
    """One point with its expressions evaluated, in the spec's order (each sees the earlier)."""
    from simulator.spec_expr import evaluate

    env = dict(values)
    error = ""
    ordered = list(workload_axes) + [a for a in spec.axes if a.expr]
    for axis in ordered:
        value = axis.values[0] if axis.values else axis.expr
        try:
            v = evaluate(value, env, f"{spec.file}: {axis.path}")
            if axis.kind == "size" and (v != int(v) or v < 1):
                raise CascadeError(f"{spec.file}: {axis.path}: {axis.expr or value!r} = {v!r} "
                                   "is not a positive integer")
        except CascadeError as exc:
            error = error or exc.message
            v = math.nan
        env[axis.name] = int(v) if axis.kind == "size" and not error else v
    arch_set = tuple((a.name, env[a.name]) for a in spec.axes if a.kind == "arch")
    size_names = [a.name for a in workload_axes] + [a.name for a in spec.axes if a.kind == "size"]
    sizes = tuple((n, env[n]) for n in dict.fromkeys(size_names))
    return Point(pid, spec.cascades[ci].label, spec.archs[ai].label, workload, arch_set, sizes,
                 objective, error)
