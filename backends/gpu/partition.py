"""Cutting a cascade into groups of Einsums that each lower to one kernel program.

A cascade the single-kernel lowering refuses (two row ranks, reductions over several sequence
ranks, the dQ and dK/dV halves of a gradient) can still run as a sequence of kernels that pass
intermediates through global memory. :func:`partition` cuts the cascade into :class:`Group` s,
each an ordinary sub-:class:`~einsum_ir.Cascade` that writes some tensors (its *targets*: outputs,
or intermediates later groups read) and computes them from the original inputs and what earlier
groups wrote, recomputing whatever else it needs. Groups are grown greedily, as fused as the
lowering allows (the ``lowers`` callback decides); where nothing on the way to an output lowers,
the cascade is refused with the lowering's own located error for the first step that does not.

Nothing here knows about Triton: the callback is the lowering, so the partition is pure.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from einsum_ir import Cascade
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Access, Binary, Einsum, Expr, Name, Num, Role, TensorDecl

from .nans import empty_in_memory
from .steps import read_steps, step_store
from .views import permute_view, read_through, split_view


@dataclass(frozen=True)
class Unit:
    """Einsums that must stay in one group: one tensor's definition (initial value and update
    of a recurrence together)."""

    tensor: str
    einsums: tuple[Einsum, ...]

    def reads(self) -> frozenset[str]:
        return frozenset(a.tensor for e in self.einsums for a in e.reads()) - {self.tensor}

    @property
    def recurrent(self) -> bool:
        return any(e.role is not Role.DEF for e in self.einsums)


@dataclass(frozen=True)
class Group:
    """One kernel program's share of the cascade.

    ``cascade`` declares as inputs the original inputs it reads and the intermediates earlier
    groups write (``reads``), and as outputs the original outputs it defines and the intermediates
    later groups read (``writes``)."""

    cascade: Cascade
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    sources: tuple[tuple[str, str], ...] = ()  # (input of the group, tensor it is), where renamed
    views: tuple = ()  # inputs that are views of an intermediate (SplitView, PermuteView)
    steps: tuple = ()  # recurrences written or read through their stored steps (StepStore)

    def tensor_of(self, written: str) -> str:
        """The tensor of the cascade a write holds (``S`` for ``S_steps``)."""
        return next((st.tensor for st in self.steps if written in st.names()), written)

    def source_of(self, name: str) -> str:
        """The tensor of the program a group input holds (``AV`` for ``AV_stored``)."""
        return dict(self.sources).get(name, name)

    def view_of(self, name: str):
        return next((v for v in self.views if v.name == name), None)


def units_of(cascade: Cascade) -> list[Unit]:
    """The cascade's Einsums as units, in the cascade's (topological) order."""
    order: dict[str, list[Einsum]] = {}
    for e in cascade.einsums:
        order.setdefault(e.name, []).append(e)
    return [Unit(name, tuple(es)) for name, es in order.items()]


def intermediate_decl(cascade: Cascade, unit: Unit) -> TensorDecl:
    """The declaration of a unit's tensor as a group's input or output: its axes are the index
    variables of its definition. A recurrence has none: it passes as its steps
    (:func:`backends.gpu.steps.step_store`). A tensor that may hold a NaN an operation makes
    (:func:`backends.gpu.nans.may_make_nan`) is declared ``empty nan``: the writer stores its empty points as NaN
    and the reader takes a NaN it loads for an empty point, as within one kernel (a 0 in memory
    would be read as a value); an output is read as it is stored, with its declared empty value."""
    if unit.recurrent:
        raise CascadeError(f"{unit.tensor} is a recurrence: its steps cannot pass between kernels",
                           unit.einsums[-1].span, source=cascade.source)
    e = unit.einsums[0]
    axes = []
    for index in e.output.indices:
        if not isinstance(index, Name) or not index.is_index:
            raise CascadeError(f"{unit.tensor} is written at computed indices: it cannot pass "
                               "between kernels", e.span, source=cascade.source)
        axes.append(index.name)
    final = cascade.output(unit.tensor)  # an output is in memory as declared
    empty = final.empty if final is not None else empty_in_memory(cascade, unit.tensor)
    return TensorDecl(unit.tensor, tuple(axes), empty, e.span)


def fresh_name(cascade: Cascade, name: str) -> str:
    """``name``, or it with underscores appended, so that the cascade does not use it."""
    taken = set(cascade.tensor_names())
    while name in taken:
        name += "_"
    return name


@dataclass(frozen=True)
class StoredExistence:
    """How a reading group restores an intermediate's empty points where no predicate over its
    indices states them: the writing group also writes ``T_exists`` (1 where ``T`` has a point,
    its empty 0 elsewhere), and the reader defines ``T = T_stored where T_exists > 0``."""


STORED_EXISTENCE = StoredExistence()


def exists_name(cascade: Cascade, tensor: str) -> str:
    """The intermediate that holds where ``tensor`` has points (see :class:`StoredExistence`)."""
    return fresh_name(cascade, f"{tensor}_exists")


def _exists_einsum(cascade: Cascade, decl: TensorDecl, span) -> Einsum:
    """``T_exists[..] = 1 where T[..] == T[..]``: a comparison with an empty operand is false
    (and a NaN, which an operation makes only at an empty point, is unequal to itself)."""
    axes = tuple(Name(a) for a in decl.axes)
    read = Access(decl.name, axes)
    return Einsum(Access(exists_name(cascade, decl.name), axes), Num(1),
                  where=Binary("==", read, read), span=span)


def stored_name(cascade: Cascade, tensor: str) -> str:
    """The group input that holds ``tensor`` as written to memory, before its predicate is
    applied again (see :func:`sub_cascade`)."""
    return fresh_name(cascade, f"{tensor}_stored")


def closure(targets, available: set[str], units: dict[str, Unit]) -> list[Unit]:
    """The units that compute ``targets`` from the ``available`` tensors (inputs and what earlier
    groups wrote), in the cascade's order: a tensor not in memory is computed again."""
    need, todo = set(), list(targets)
    while todo:
        t = todo.pop()
        if t in need or t in available:
            continue
        need.add(t)
        todo += sorted(units[t].reads())
    return [u for u in units.values() if u.tensor in need]


def sub_cascade(cascade: Cascade, targets: list[str], available: set[str],
                units: dict[str, Unit], restore: dict[str, Expr] | None = None,
                sizes: dict | None = None, permute: bool = False) -> Group:
    """The group that writes ``targets``: the Einsums that compute them from ``available``
    tensors, those tensors as inputs and the targets as outputs.

    ``restore`` maps an intermediate with empty points to the predicate that says which points
    exist: the group reads it as ``T_stored`` and defines ``T = T_stored where predicate`` first,
    so that its empty points are empty again. With ``sizes``, an intermediate read only at
    ``hk * G + g2`` on one axis is read through a view (:mod:`backends.gpu.views`); with
    ``permute`` the others through a permuted view where one exists. A recurrence passes as its
    stored steps (:mod:`backends.gpu.steps`): written by the group that runs it, in the forms
    the cascade's other Einsums read, and read in those forms."""
    chosen = closure(targets, available, units)
    einsums = [e for u in chosen for e in u.einsums]
    defined = {u.tensor for u in chosen}
    read = list(dict.fromkeys(t for u in chosen for t in sorted(u.reads()) if t not in defined))
    finals = {d.name: d for d in cascade.outputs}
    restore = restore or {}
    ins_mid, masked, sources, views, flags_read = [], [], [], {}, []
    # recurrences pass through their stored steps (each form any other Einsum reads): read
    # here, or written here for later kernels
    steps = {t: step_store(cascade, t, [e for e in cascade.einsums if e.name != t])
             for t in list(read) + list(targets) if t in units and units[t].recurrent}
    for t in read:
        if t in steps:
            ins_mid += steps[t].decls(_forms_read(steps[t], einsums))
            continue
        if cascade.input(t) is not None:
            continue
        decl = intermediate_decl(cascade, units[t])
        view = split_view(decl, einsums, sizes, fresh_name(cascade, f"{t}_by")) \
            if sizes is not None and t not in restore else None
        if view is None and permute and t not in restore:
            view = permute_view(decl, einsums, fresh_name(cascade, f"{t}_t"))
        if view is not None:
            views[t] = view
            decl = view.decl(decl)
        elif t in restore:
            axes = tuple(Name(a) for a in decl.axes)
            where = restore[t]
            if where is STORED_EXISTENCE:
                flag = TensorDecl(exists_name(cascade, t), decl.axes, span=decl.span)
                ins_mid.append(flag)
                flags_read.append(flag.name)
                where = Binary(">", Access(flag.name, axes), Num(0))
            masked.append(Einsum(Access(t, axes), Access(stored_name(cascade, t), axes),
                                 where=where, span=units[t].einsums[0].span))
            decl = replace(decl, name=stored_name(cascade, t))
            sources.append((decl.name, t))
        ins_mid.append(decl)
    ins_orig = [d for d in cascade.inputs if d.name in read]
    targets = sorted(targets, key=list(units).index)
    outs, copies = [], []
    for t in targets:
        if t in steps:
            outs += steps[t].decls()
            copies += steps[t].writers()
        else:
            outs.append(finals[t] if t in finals else intermediate_decl(cascade, units[t]))
            if restore.get(t) is STORED_EXISTENCE:
                flag = _exists_einsum(cascade, outs[-1], units[t].einsums[0].span)
                outs.append(TensorDecl(flag.output.tensor, outs[-1].axes, span=outs[-1].span))
                copies.append(flag)
    read_here = {t: st for t, st in steps.items() if t in read}
    einsums = tuple(masked) + tuple(read_steps(read_through(e, views), read_here)
                                    for e in einsums) + tuple(copies)
    # intermediates first: the launcher takes the dtype of what it allocates from the first input
    sub = Cascade(cascade.sizes, cascade.splits, tuple(ins_mid + ins_orig), tuple(outs), einsums,
                  name=f"{cascade.name}_to_{'_'.join(targets)}", source=cascade.source)
    return Group(sub, tuple(t for t in read if cascade.input(t) is None) + tuple(flags_read),
                 tuple(d.name for d in outs if d.name not in finals), tuple(sources),
                 tuple(views.values()), tuple(steps.values()))


def _forms_read(store, einsums) -> set[str]:
    """The stored forms of a recurrence that ``einsums`` read."""
    return {f for f, name in store.forms
            if any(a.tensor == name for e in einsums
                   for a in read_steps(e, {store.tensor: store}).reads())}


Lowers = Callable[[Group], None]  # raises CascadeError where the group does not lower


def partition(cascade: Cascade, lowers: Lowers, restore: dict[str, Expr] | None = None,
              sizes: dict | None = None) -> list[Group]:
    """The cascade as a sequence of groups, each as fused as the greedy growth allows
    (``restore``, ``sizes``: see :func:`sub_cascade`).

    Each group is named by the tensors it writes (its *targets*) and computes them from the
    inputs and from what earlier groups wrote, recomputing anything else it needs (the scores of
    a gradient are recomputed by the dQ and the dK/dV kernels, never written). The next group
    takes the first pending output; where its computation does not lower, the latest tensor on
    the way to it whose computation does is written first. Pending outputs then join the group
    while it still lowers. Last, adjacent groups are fused where their union lowers, and writes
    no later group reads are dropped where the group lowers without them."""
    state = _State(cascade, lowers, restore or {}, sizes)
    pending = [d.name for d in cascade.outputs]
    while pending:
        targets = state.attempt(pending) and list(pending) or state.grow(pending)
        state.commit(targets)
        pending = [t for t in pending if t not in targets]
    return state.merged()


class _State:
    """The partition under way: what is in memory, the groups so far, the probes' verdicts."""

    def __init__(self, cascade: Cascade, lowers: Lowers, restore: dict, sizes: dict | None):
        self.cascade, self.lowers, self.restore, self.sizes = cascade, lowers, restore, sizes
        self.units = {u.tensor: u for u in units_of(cascade)}
        self.available = {d.name for d in cascade.inputs}
        self.plans: list[tuple[list[str], frozenset]] = []  # each group: targets, memory before
        self.verdicts: dict = {}  # (targets, available) -> Group or the CascadeError

    def probe(self, targets, extra: frozenset = frozenset(),
              base: frozenset | None = None) -> Group | CascadeError:
        """The group writing ``targets`` (with ``extra`` tensors in memory too, or with only
        ``base`` in memory), or its refusal."""
        available = (frozenset(self.available) if base is None else base) | extra
        key = (frozenset(targets), available)
        if key not in self.verdicts:
            self.verdicts[key] = self._lower(list(targets), set(available))
        return self.verdicts[key]

    def _lower(self, targets: list[str], available: set[str]) -> Group | CascadeError:
        """The group as declared, else with its intermediates read through permuted views."""
        refusal = None
        for permute in (False, True):
            try:
                group = sub_cascade(self.cascade, targets, available, self.units, self.restore,
                                    self.sizes, permute)
                if permute and not group.views:
                    break
                self.lowers(group)
                return group
            except CascadeError as exc:
                refusal = refusal or exc
        return refusal

    def attempt(self, targets, extra: frozenset = frozenset()) -> bool:
        return isinstance(self.probe(targets, extra), Group)

    def grow(self, pending: list[str]) -> list[str]:
        """Targets of the next group: the first pending output, or a tensor on its way that
        lowers, plus the pending outputs that still lower with it."""
        targets = [self.reachable(pending[0])]
        for t in pending:
            if t in targets or self.refused_as_is(targets, t):
                continue
            if self.attempt(targets + [t]):
                targets.append(t)
        return targets

    def refused_as_is(self, targets: list[str], t, base: frozenset | None = None) -> bool:
        """Whether ``t`` (a tensor or a list) was refused alone and would join without cutting
        anything: the same Einsums, only more of them written (a lowering that then accepts it
        is not trusted)."""
        alone = [t] if isinstance(t, str) else list(t)
        memory = set(self.available if base is None else base)
        same = {u.tensor for u in closure(targets + alone, memory, self.units)} == \
            {u.tensor for u in closure(alone, memory, self.units)}
        return same and not isinstance(self.probe(alone, base=base), Group)

    def reachable(self, target: str) -> str:
        """``target`` where it lowers; else the latest tensor on its way that lowers and, once
        in memory, lets the target lower (a cut that finishes the job), else the latest one
        that lowers at all."""
        if self.attempt([target]):
            return target
        way = closure([target], self.available, self.units)
        lowering = [u.tensor for u in reversed(way[:-1]) if self.attempt([u.tensor])]
        for t in lowering:
            if self.attempt([target], frozenset([t])):
                return t
        if lowering:
            return lowering[0]
        raise self.probe([target])  # nothing on the way lowers: the target's own refusal

    def commit(self, targets: list[str]) -> None:
        self.plans.append((list(targets), frozenset(self.available)))
        self.available |= set(targets)

    def merged(self) -> list[Group]:
        """The groups, adjacent ones fused where the union lowers writing only what is used
        (an output, or read by a later group: a union that lowers only because it writes more
        is not trusted), and each writing only what is used where it lowers so."""
        plans, k = list(self.plans), 0
        while k + 1 < len(plans):
            (first, base), (second, _) = plans[k], plans[k + 1]
            union = self.used(first + [t for t in second if t not in first], plans[k + 2:])
            if not self.refused_as_is(first, second, base) \
                    and isinstance(self.probe(union, base=base), Group):
                plans[k:k + 2] = [(union, base)]
            else:
                k += 1
        groups = []
        for n, (targets, base) in enumerate(plans):
            used = self.used(targets, plans[n + 1:])
            verdict = self.probe(used, base=base)
            groups.append(verdict if isinstance(verdict, Group) else self.probe(targets, base=base))
        return groups

    def used(self, targets: list[str], later) -> list[str]:
        """The targets that are outputs or that the ``later`` groups read."""
        finals = {d.name for d in self.cascade.outputs}
        read = set()
        for targets_after, base in later:
            group = self.probe(targets_after, base=base)
            read |= set(group.reads) if isinstance(group, Group) else set()
        return [t for t in targets if t in finals or t in read]
