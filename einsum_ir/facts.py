"""The facts later stages derive from a checked cascade: shapes, recurrences, evaluation order.

Nothing here reports mistakes: :mod:`einsum_ir.checks` has rejected them first (see
:func:`einsum_ir.verifier.analyze`, which runs both in order). The functions here assume what the
checks guarantee: every tensor is defined once, or by an initial value plus one update along one
axis, and the Einsums that depend on each other without a recurrence carrying the value form no
cycle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, NamedTuple


from .graphs import smallest_first_order, strongly_connected
from .ir import Binary, Cascade, Einsum, Expr, Name, Num


@dataclass(frozen=True)
class Axis:
    """One axis of a tensor: the rank it ranges over, plus one for an iterative axis (0..R)."""

    rank: str
    extra: int = 0


@dataclass(frozen=True)
class Recurrence:
    """A tensor defined by an initial value and an update along one of its axes."""

    tensor: str
    axis: int  # position of the iterative axis
    var: str  # the index variable of the update (``m1`` in ``RM[p, m1+1] = ...``)
    init: Einsum
    update: Einsum


@dataclass(frozen=True)
class Step:
    """One step of the evaluation order: a plain Einsum (``var`` None), or the Einsums of a
    recurrence, evaluated together at every value of the index ``var`` they step over."""

    einsums: tuple[Einsum, ...]
    var: str | None = None


@dataclass(frozen=True)
class Analysis:
    """Derived facts of a verified cascade (computed once, never mutated)."""

    cascade: Cascade
    shapes: Mapping[str, tuple[Axis, ...]]  # every tensor, inputs included
    recurrences: Mapping[str, Recurrence]  # by tensor
    steps: tuple[Step, ...]

    @property
    def order(self) -> tuple[tuple[Einsum, ...], ...]:
        """The Einsums of every step (see :attr:`steps`)."""
        return tuple(step.einsums for step in self.steps)

    @property
    def step_vars(self) -> tuple[str | None, ...]:
        """The index every step is stepped over, or None for a plain step (see :attr:`steps`)."""
        return tuple(step.var for step in self.steps)

    def schedule(self, sizes: Mapping[str, int]) -> Iterator[tuple[Einsum, dict[str, int]]]:
        """The evaluation order, one Einsum at a time, each with the recurrence index it is
        stepped at (``{var: i}``; empty outside recurrences)."""
        for step in self.steps:
            if step.var is None:
                yield step.einsums[0], {}
                continue
            for i in range(sizes[step.var.upper()]):
                for einsum in step.einsums:
                    yield einsum, {step.var: i}

    @staticmethod
    def output_slots(einsum: Einsum, fixed, sizes) -> list:
        """Where ``einsum`` writes: per output axis, an index or a slice, with the index variable
        the slice walks (None for a fixed position: an initial value, or a stepped recurrence)."""
        slots = []
        for index in einsum.output.indices:
            if isinstance(index, Num):
                slots.append((int(index.value), None))
                continue
            var, offset = (index.name, 0) if isinstance(index, Name) else (index.lhs.name, 1)
            if var in fixed:
                slots.append((fixed[var] + offset, None))
            else:
                slots.append((slice(offset, sizes[var.upper()] + offset), var))
        return slots


# ------------------------------------------------------------------ output indices


class OutIndex(NamedTuple):
    """One output index, classified: ``var`` (plain), ``next`` (``v+1``) or ``const`` (``0``)."""

    kind: str
    value: str | int


def out_index(index: Expr) -> OutIndex | None:
    """Classifies one output index; None for anything else (an error the checks report)."""
    if isinstance(index, Name) and index.is_index:
        return OutIndex("var", index.name)
    if (isinstance(index, Binary) and index.op == "+" and isinstance(index.lhs, Name)
            and index.lhs.is_index and isinstance(index.rhs, Num) and index.rhs.value == 1):
        return OutIndex("next", index.lhs.name)
    if isinstance(index, Num) and isinstance(index.value, int):
        return OutIndex("const", index.value)
    return None


def out_indices(einsum: Einsum) -> tuple[OutIndex | None, ...]:
    return tuple(out_index(i) for i in einsum.output.indices)


# ------------------------------------------------------------------ shapes


def shapes_and_recurrences(cascade: Cascade) -> tuple[dict[str, tuple[Axis, ...]],
                                                       dict[str, Recurrence]]:
    """The shape of every tensor and the recurrences, from the definitions."""
    shapes = {d.name: tuple(Axis(r) for r in d.ranks) for d in cascade.inputs}
    recurrences: dict[str, Recurrence] = {}
    for tensor in dict.fromkeys(e.name for e in cascade.einsums):
        defs = cascade.definitions(tensor)
        update = next((e for e in defs if any(k.kind == "next" for k in out_indices(e))), None)
        if update is None:
            shapes[tensor] = tuple(Axis(str(k.value).upper()) for k in out_indices(defs[0]))
            continue
        init = next(e for e in defs if e.id != update.id)
        kinds = out_indices(update)
        axis = next(k for k, kind in enumerate(kinds) if kind.kind == "next")
        shapes[tensor] = tuple(Axis(str(k.value).upper(), 1 if k.kind == "next" else 0)
                               for k in kinds)
        recurrences[tensor] = Recurrence(tensor, axis, str(kinds[axis].value), init, update)
    return shapes, recurrences


# ------------------------------------------------------------------ order


@dataclass(frozen=True)
class Dependences:
    """Which Einsum (by position) reads what another writes: ``graph`` has every dependence,
    ``lag0`` only those within one step of a recurrence (not carried to the next iterate). Both
    map a position to its successors in insertion order (see :mod:`einsum_ir.graphs`)."""

    graph: dict[int, list[int]]
    lag0: dict[int, list[int]]


def dependences(cascade: Cascade, recurrences: Mapping[str, Recurrence]) -> Dependences:
    einsums = cascade.einsums
    graph: dict[int, dict[int, None]] = {k: {} for k in range(len(einsums))}
    lag0: dict[int, dict[int, None]] = {k: {} for k in range(len(einsums))}
    writer: dict[str, list[int]] = {}
    for k, einsum in enumerate(einsums):
        writer.setdefault(einsum.name, []).append(k)
    for k, einsum in enumerate(einsums):
        for access in einsum.reads():
            rec = recurrences.get(access.tensor)
            for j in writer.get(access.tensor, []):
                graph[j][k] = None
                # A read of the running iterate (``X[..., i]``) of the update is carried to the
                # next step; reads of the initial value and of anything else are not.
                carried = (rec is not None and einsums[j].id == rec.update.id
                           and _is_var(access.indices[rec.axis], rec.var))
                if not carried:
                    lag0[j][k] = None
    return Dependences({k: list(v) for k, v in graph.items()},
                       {k: list(v) for k, v in lag0.items()})


def components(deps: Dependences) -> list[tuple[int, ...]]:
    """The strongly connected groups of Einsums in evaluation order (by first position), each in
    the order its members are evaluated within one step."""
    graph = deps.graph
    groups = [tuple(sorted(c)) for c in strongly_connected(len(graph), graph)]
    group_of = {m: g for g in groups for m in g}

    def group_succ(group):
        return list({group_of[t]: None for m in group for t in graph[m] if group_of[t] != group})

    out = []
    for members in smallest_first_order(groups, group_succ, key=min):
        if not is_recurrent(deps, members):
            out.append(members)
            continue
        inside = set(members)
        out.append(tuple(smallest_first_order(
            list(members), lambda m, inside=inside: [t for t in deps.lag0[m] if t in inside],
            key=lambda m: m)))
    return out


def is_recurrent(deps: Dependences, members: tuple[int, ...]) -> bool:
    return len(members) > 1 or members[0] in deps.graph[members[0]]


def step_vars_of(cascade: Cascade, members: tuple[int, ...],
                 recurrences: Mapping[str, Recurrence]) -> set[str]:
    """The recurrence indices the updates among ``members`` step over."""
    ids = {cascade.einsums[m].id for m in members}
    return {rec.var for rec in recurrences.values() if rec.update.id in ids}


def evaluation_steps(cascade: Cascade, deps: Dependences,
                     recurrences: Mapping[str, Recurrence]) -> tuple[Step, ...]:
    steps = []
    for members in components(deps):
        einsums = tuple(cascade.einsums[m] for m in members)
        if not is_recurrent(deps, members):
            steps.append(Step(einsums))
            continue
        (var,) = step_vars_of(cascade, members, recurrences)
        steps.append(Step(einsums, var))
    return tuple(steps)


def _is_var(index: Expr, var: str) -> bool:
    return isinstance(index, Name) and index.name == var
