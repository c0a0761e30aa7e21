"""Cascades that do not fuse into one kernel program: several, in order, through global memory.

:func:`build_program` cuts a cascade with :func:`backends.gpu.partition.partition` where the
single-kernel lowering refuses it, compiles every group with that lowering (each group is a
:class:`~backends.triton.api.CompiledCascade` of its own, so it gets its own mapping), and returns
a :class:`Program`: ``forward(**tensors)`` runs the groups in order, handing each the original
inputs and the intermediates earlier groups wrote (fp32 in memory, whatever the inputs' dtype).

Empty points: a tensor read from memory exists at every point, so an intermediate with empty
points (a ``where`` that removes some, a split's tail) would come back with values there and
change what the interpreter computes. Where a predicate over the tensor's own indices states
exactly which points exist (:func:`restorable`), the reading group applies it again
(``T = T_stored where predicate``); any other such intermediate carries its existence beside it
(``T_exists``, see :class:`backends.gpu.partition.StoredExistence`), and the reading group applies
that (``T = T_stored where T_exists > 0``). Which points exist is decided at the call's sizes by
the existence analysis. Emptiness that values make (a NaN of ``0 / 0``) is not modelled by it:
an intermediate that may hold such a NaN is declared ``empty nan`` (see
:func:`backends.gpu.partition.intermediate_decl`), so it stays NaN in memory and the reading
kernel takes it for an empty point, as the kernel that made it would have.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from backends.gpu.nans import may_make_nan
from backends.gpu.partition import STORED_EXISTENCE, Group, partition
from backends.gpu.views import PermuteView
from einsum_ir import Cascade
from einsum_ir.analysis.data_atoms import atoms_of, is_data_dependent, structural_cascade
from einsum_ir.analysis.existence import existence
from einsum_ir.data_masks import reads_tensors
from einsum_ir.errors import CascadeError
from einsum_ir.passes.rewrite import conjuncts
from einsum_ir.ir import Access, Binary, Einsum, Name, Num, TensorDecl, index_vars
from einsum_ir.verifier import analyze


@dataclass(frozen=True)
class ProgramPlan:
    """The mappings of a program's kernels, one per group."""

    plans: tuple
    predicted_s: float

    def describe(self) -> str:
        parts = [f"kernel {k + 1} of {len(self.plans)}: {p.describe()}"
                 for k, p in enumerate(self.plans)]
        return f"{len(self.plans)} kernel programs, predicted {self.predicted_s * 1e3:.4f} ms " \
               "in all\n" + "\n".join(parts)


@dataclass
class Program:
    """A cascade as a sequence of compiled groups; called like a generated module."""

    cascade: Cascade
    groups: list[Group]
    compiled: list  # one CompiledCascade per group
    sizes: dict
    dtype: str
    generated: list = field(default_factory=list)  # each group's Generated
    plans: list = field(default_factory=list)

    @property
    def source(self) -> str:
        """The standalone module: every group's kernels and one ``forward()`` launching them."""
        from .api import mapping_note
        from .program_module import program_source

        return program_source(self, [mapping_note(fn.prepared, p.describe())
                                     for fn, p in zip(self.compiled, self.plans, strict=True)])

    @property
    def plan(self) -> ProgramPlan:
        return ProgramPlan(tuple(self.plans), sum(p.predicted_s for p in self.plans))

    @property
    def config(self):
        return self.generated[-1].config

    def forward(self, config=None, /, **tensors):
        """Runs the groups in order on torch tensors given by name; returns the outputs.
        (``config`` is not used: each group runs with its own mapping.)"""
        env = dict(tensors)
        for group, fn in zip(self.groups, self.compiled, strict=True):
            results = fn(**{d.name: self._input(group, d.name, env) for d in group.cascade.inputs})
            for name, value in results.items():  # an output may be read by a later group too
                env[name] = _fp32(value) if name in group.writes else value
        first = _dtype_source(self.cascade, tensors)
        return {d.name: env[d.name] if first is None else env[d.name].to(first.dtype)
                for d in self.cascade.outputs}

    def _input(self, group: Group, name: str, env: dict):
        view = group.view_of(name)
        if view is None:
            return env[group.source_of(name)]
        t = env[view.tensor]  # a strided view of the intermediate's memory, no copy
        if isinstance(view, PermuteView):
            return t.permute(view.order)
        return t.unflatten(view.axis, (-1, self.sizes[view.size])).movedim(view.axis + 1, -1)


def _fp32(value):
    import torch

    return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value


def _dtype_source(cascade: Cascade, tensors: dict):
    """The input whose dtype the outputs take (as the single-kernel launcher chooses it)."""
    if not cascade.inputs:
        return None
    name = next((d.name for d in cascade.inputs if len(d.axes) >= 2), cascade.inputs[0].name)
    return tensors[name]


def _structural_existence(cascade: Cascade, sizes: dict, upper: bool) -> dict:
    """Existence masks without the data: a data-dependent predicate at its lower value (every
    atom false, so the fewest points) or its upper one (einsum_ir.analysis.data_atoms); a
    gather reads a position that exists (an index outside its axis is an error, see data.py)."""
    if not is_data_dependent(cascade):
        return existence(analyze(cascade), sizes).store
    truth = {str(e.id): {a.number: a.positive == upper for a in atoms_of(e)}
             for e in cascade.einsums}
    return existence(analyze(structural_cascade(cascade, truth)), sizes).store


def _has_holes(mask) -> bool:
    return mask is not None and not bool(np.all(mask))


def empty_points(cascade: Cascade, sizes: dict) -> set[str]:
    """The tensors that may have empty points at ``sizes`` (structurally: predicates and split
    tails; with data-dependent predicates, those that have some when the data removes most)."""
    store = _structural_existence(cascade, sizes, upper=False)
    return {name for name, mask in store.items() if _has_holes(mask)}


def data_decided(cascade: Cascade, sizes: dict) -> set[str]:
    """The tensors whose empty points the data decides (no predicate over indices restores
    them after a kernel boundary)."""
    if not is_data_dependent(cascade):
        return set()
    lower = _structural_existence(cascade, sizes, upper=False)
    upper = _structural_existence(cascade, sizes, upper=True)
    return {name for name, mask in lower.items() if _has_holes(mask) and (
        upper.get(name) is None or not np.array_equal(*np.broadcast_arrays(mask, upper[name])))}


def restorable(cascade: Cascade, sizes: dict, holes: set[str]) -> dict:
    """The intermediates with empty points whose existence a predicate over their own indices
    states exactly: tensor -> that predicate. The candidate is the conjunction of the ``where``
    terms of the tensor's definition and of the definitions it depends on that mention only the
    tensor's indices (``h < HH`` for a row maximum of heads masked by ``h < HH and ...``) and the
    bounds of their reads at computed indices (``m1 * M0 + m0 < M``, a split's tail); it is
    kept where the existence analysis of ``T = X where candidate`` gives the cascade's own mask
    at ``sizes``."""
    store = _structural_existence(cascade, sizes, upper=False)
    decided = data_decided(cascade, sizes)
    found = {}
    for name in sorted(holes - decided):
        defs = cascade.definitions(name)
        if cascade.input(name) is not None or len(defs) != 1 \
                or not all(isinstance(i, Name) and i.is_index for i in defs[0].output.indices):
            continue
        out = defs[0].output
        axes = tuple(i.name for i in out.indices)
        terms = [t for t in ancestor_terms(cascade, name) + eliminated(cascade, defs[0])
                 if set(index_vars(t)) <= set(axes) and not reads_tensors(t)]
        if not terms:
            continue
        candidate = terms[0]
        for t in terms[1:]:
            candidate = Binary("and", candidate, t)
        src = f"{name}_"  # any name but the tensor's own
        probe = Cascade(cascade.sizes, cascade.splits, (TensorDecl(src, axes),),
                        (TensorDecl(name, axes),),
                        (Einsum(out, Access(src, out.indices), where=candidate),))
        mine, theirs = existence(analyze(probe), sizes).store[name], store[name]
        if mine is not None and np.array_equal(*np.broadcast_arrays(mine, theirs)):
            found[name] = candidate
    return found


def ancestor_terms(cascade: Cascade, name: str) -> list:
    """The conjuncts of the ``where`` clauses of ``name``'s definition and its ancestors', and
    the bounds of their reads at computed indices (``n * C + d < M``: a split's tail)."""
    terms, seen, todo = [], set(), [name]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for e in cascade.definitions(t):
            terms += conjuncts(e.where)
            for access in e.reads():
                terms += _bounds(cascade, access)
                todo.append(access.tensor)
    return list(dict.fromkeys(terms))


def eliminated(cascade: Cascade, einsum: Einsum) -> list:
    """Terms over the output's indices that say a reduction has a point: for each reduced index
    ``r`` that the ``where`` bounds directly (``n2 > n``, ``r <= x``), every lower bound of ``r``
    (and 0) is at most every upper bound (and ``R - 1``): ``exists n2 < N2: n2 > n`` is ``n + 1 <=
    N2 - 1`` (one step of Fourier-Motzkin elimination). An index bounded in any other way gives
    nothing."""
    terms = conjuncts(einsum.where)
    out = []
    for r in einsum.reduced:
        rank = r.upper()
        if cascade.size_decl(rank) is None and cascade.split_for(rank) is None:
            continue
        lows, highs = [Num(0)], [Binary("-", Name(rank), Num(1))]
        for t in terms:
            if r not in index_vars(t):
                continue
            bound = _bound_of(t, r, einsum.reduced)
            if bound is None:
                break
            lows += bound[0]
            highs += bound[1]
        else:
            out += [Binary("<=", lo, hi) for lo in lows for hi in highs
                    if (lo, hi) != (lows[0], highs[0])]
    return out


def _bound_of(term, r: str, reduced: tuple) -> tuple[list, list] | None:
    """``term`` as (lower bounds, upper bounds) of ``r``, where it compares ``r`` itself with an
    expression free of reduced indices; else None."""
    flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}
    if not isinstance(term, Binary) or term.op not in flip:
        return None
    op, lhs, rhs = term.op, term.lhs, term.rhs
    if not (isinstance(lhs, Name) and lhs.name == r):
        op, lhs, rhs = flip[op], rhs, lhs
    if not (isinstance(lhs, Name) and lhs.name == r) or set(index_vars(rhs)) & set(reduced):
        return None
    one = Num(1)
    return {"<": ([], [Binary("-", rhs, one)]), "<=": ([], [rhs]),
            ">": ([Binary("+", rhs, one)], []), ">=": ([rhs], []), "==": ([rhs], [rhs])}[op]


def _bounds(cascade: Cascade, access: Access) -> list:
    """``0 <= index < RANK`` for the computed indices of a read."""
    decl = cascade.input(access.tensor)
    if decl is not None:
        ranks = decl.ranks
    else:
        defs = cascade.definitions(access.tensor)
        if not defs or not all(isinstance(i, Name) for i in defs[0].output.indices):
            return []
        ranks = tuple(i.name.upper() for i in defs[0].output.indices)
    out = []
    for index, rank in zip(access.indices, ranks, strict=True):
        if not isinstance(index, Name):
            out += [Binary("<", index, Name(rank)), Binary(">=", index, Num(0))]
    return out


def build_program(cascade: Cascade, sizes: dict, dtype: str,
                  compile_group: Callable[[Cascade, frozenset], object],
                  probe: Callable[[object], None],
                  refusal: CascadeError) -> Program:
    """The program of ``cascade`` at ``sizes``. ``compile_group`` makes a group's
    CompiledCascade (given the group's inputs that earlier groups wrote, in fp32), ``probe`` lowers it at ``sizes`` (raising where it refuses); ``refusal`` is
    the single-kernel lowering's error, raised again (with the partition's reason as its hint)
    where no partition lowers either."""
    holes = empty_points(cascade, sizes)
    restore = restorable(cascade, sizes, holes)
    # the rest carry their existence through memory beside them; so does an output another
    # Einsum reads that has empty points or may hold a NaN an operation makes: memory holds its
    # declared empty value there, which a reader would take for a value
    read = {a.tensor for e in cascade.einsums for a in e.reads()}
    flagged = (holes - set(restore)) | {d.name for d in cascade.outputs if d.name not in restore
                                        and may_make_nan(cascade, d.name)}
    restore.update({t: STORED_EXISTENCE for t in sorted(flagged) if _plain_definition(cascade, t)
                    and (cascade.output(t) is None or t in read)})
    compiled: dict[int, object] = {}  # id(Group) -> its CompiledCascade

    def lowers(group: Group) -> None:
        written = [group.tensor_of(t) for t in group.writes]  # a recurrence's steps: itself
        lossy = next((t for t in written if t in holes and t not in restore), None)
        if lossy is not None:
            e = cascade.definitions(lossy)[-1]
            raise CascadeError(f"{lossy} has empty points, which a kernel boundary would turn "
                               "into values", e.span, source=cascade.source)
        stored = frozenset(d.name for d in group.cascade.inputs if cascade.input(d.name) is None)
        fn = compile_group(group.cascade, stored)
        probe(fn)
        compiled[id(group)] = fn

    try:
        groups = partition(cascade, lowers, restore, sizes)
    except CascadeError as exc:
        if exc.message == refusal.message:
            raise refusal from None
        hint = f"cut into several kernels, it still refuses: {exc.render()}"
        raise CascadeError(refusal.message, refusal.span,
                           f"{refusal.hint}; {hint}" if refusal.hint else hint,
                           source=refusal.source or cascade.source, reason=refusal.reason) from None
    fns = [compiled[id(g)] for g in groups]
    program = Program(cascade, groups, fns, sizes, dtype)
    for g, fn in zip(groups, fns, strict=True):
        gen, _ = fn.kernel(group_sizes(g.cascade, sizes), dtype)
        program.generated.append(gen)
        program.plans.append(fn.last_plan)
    return program


def _plain_definition(cascade: Cascade, name: str) -> bool:
    """Whether ``name`` has one definition, at plain indices (what a kernel writes whole)."""
    defs = cascade.definitions(name)
    return cascade.input(name) is None and len(defs) == 1 and all(
        isinstance(i, Name) and i.is_index for i in defs[0].output.indices)


def group_sizes(sub: Cascade, sizes: dict) -> dict:
    """The call's sizes restricted to what a group declares."""
    return {k: v for k, v in sizes.items() if sub.size_decl(k) is not None
            or any(sp.outer == k for sp in sub.splits)}
