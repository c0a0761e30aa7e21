"""Static checks of a cascade, and the facts later stages derive from it.

``verify`` raises CascadeError (with the span of the offending text) for the first mistake it
finds. ``analyze`` returns the derived structure that the interpreter, the analyses and the
backends share: tensor shapes, recurrences and the evaluation order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from .errors import CascadeError
from .graphs import find_cycle, smallest_first_order, strongly_connected
from .ir import (COMPARISONS, FUNCTIONS, LOGICAL, Access, Binary, Call, Cascade, Einsum, Expr,
                 Name, Num, Unary, index_vars, walk)


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
class Analysis:
    """Derived facts of a verified cascade (computed once, never mutated)."""

    cascade: Cascade
    shapes: dict  # tensor -> tuple[Axis, ...]
    recurrences: dict  # tensor -> Recurrence
    order: tuple  # tuple of groups; each group is a tuple of Einsums evaluated together
    step_vars: tuple  # per group: the index variable stepped over, or None for a plain group

    def rank_of(self, var: str) -> str:
        return var.upper()

    def schedule(self, sizes):
        """The evaluation order, one Einsum at a time, each with the recurrence index it is
        stepped at (``{var: i}``; empty outside recurrences)."""
        for group, var in zip(self.order, self.step_vars):
            if var is None:
                yield group[0], {}
                continue
            for i in range(sizes[var.upper()]):
                for einsum in group:
                    yield einsum, {var: i}

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

    @cached_property
    def producers(self) -> dict:
        out: dict[str, list[Einsum]] = {}
        for einsum in self.cascade.einsums:
            out.setdefault(einsum.name, []).append(einsum)
        return out


def _err(message: str, node, hint: str | None = None) -> CascadeError:
    return CascadeError(message, getattr(node, "span", None), hint)


def _lhs_kind(index: Expr):
    """Classifies one output index: ('var', v), ('next', v) for ``v+1``, or ('const', n)."""
    if isinstance(index, Name) and index.is_index:
        return ("var", index.name)
    if (isinstance(index, Binary) and index.op == "+" and isinstance(index.lhs, Name)
            and index.lhs.is_index and isinstance(index.rhs, Num) and index.rhs.value == 1):
        return ("next", index.lhs.name)
    if isinstance(index, Num) and isinstance(index.value, int):
        return ("const", index.value)
    return None


def analyze(cascade: Cascade) -> Analysis:
    """Verifies ``cascade`` and returns its derived structure."""
    try:
        return _Checker(cascade).run()
    except CascadeError as exc:
        raise exc.with_source(cascade.source)


def verify(cascade: Cascade) -> Cascade:
    analyze(cascade)
    return cascade


class _Checker:
    def __init__(self, cascade: Cascade):
        self.c = cascade
        self.sizes = {d.name: d for d in cascade.sizes}
        self.ranks = set(cascade.rank_names())

    # ------------------------------------------------------------------ top level
    def run(self) -> Analysis:
        self._check_declarations()
        shapes, recurrences = self._infer_shapes()
        self.shapes = shapes
        for einsum in self.c.einsums:
            self._check_einsum(einsum)
        self._check_outputs()
        order, step_vars = self._evaluation_order(recurrences)
        return Analysis(self.c, shapes, recurrences, order, step_vars)

    def _check_declarations(self) -> None:
        seen: dict[str, object] = {}
        for decl in self.c.sizes:
            if decl.name in seen:
                raise _err(f"size {decl.name} is declared twice", decl, "keep one declaration")
            if decl.is_rank and not decl.name[0].isupper():
                raise _err(f"rank {decl.name} must start with an upper-case letter", decl,
                           f"its index variable is the lower-case name ({decl.name.lower()})")
            seen[decl.name] = decl
            for node in walk(decl.default):
                if isinstance(node, (Access, Call)) and not (
                        isinstance(node, Call) and node.func in ("min", "max")):
                    raise _err(f"the size of {decl.name} must be an integer expression of sizes", node,
                               "use integers, sizes, + - * / % and min/max")
                if isinstance(node, Name) and node.name not in self.sizes and node.name not in {
                        s.outer for s in self.c.splits}:
                    raise _err(f"unknown size {node.name!r} in the size of {decl.name}", node,
                               "declare it with 'rank' or 'param'")
        for split in self.c.splits:
            for part in (split.rank, split.inner):
                if part not in self.sizes or not self.sizes[part].is_rank:
                    raise _err(f"split {split.rank} = {split.outer} * {split.inner}: {part} is not "
                               f"a declared rank", split, f"declare it first: rank {part} = ...")
            if split.outer in seen:
                raise _err(f"split: {split.outer} is already declared", split,
                           "the outer rank of a split is derived; do not declare it")
            seen[split.outer] = split
        tensors: dict[str, object] = {}
        for decl in (*self.c.inputs, *self.c.outputs):
            if decl.name in tensors and decl in self.c.inputs:
                raise _err(f"tensor {decl.name} is declared twice", decl, "keep one declaration")
            tensors[decl.name] = decl
            if decl.name in self.sizes:
                raise _err(f"{decl.name} is both a size and a tensor", decl, "rename one of them")
            for axis in decl.axes:
                if not axis[0].islower():
                    raise _err(f"axis {axis} of {decl.name} must be a lower-case index name", decl,
                               f"write the index of the rank: {axis.lower()}")
                if axis.upper() not in self.ranks:
                    raise _err(f"index {axis} of {decl.name} has no extent", decl,
                               f"declare its rank: rank {axis.upper()} = ...")
        names_in = [d.name for d in self.c.inputs]
        names_out = [d.name for d in self.c.outputs]
        for name in set(names_in) & set(names_out):
            raise _err(f"{name} is declared both input and output", self.c.output(name),
                       "an output is computed by an Einsum; rename one of them")
        for name in names_out:
            if names_out.count(name) > 1:
                raise _err(f"output {name} is declared twice", self.c.output(name),
                           "keep one declaration")

    # ------------------------------------------------------------------ shapes
    def _infer_shapes(self):
        shapes = {d.name: tuple(Axis(r) for r in d.ranks) for d in self.c.inputs}
        recurrences: dict[str, Recurrence] = {}
        by_tensor: dict[str, list[Einsum]] = {}
        for einsum in self.c.einsums:
            if self.c.input(einsum.name):
                raise _err(f"{einsum.name} is an input and cannot be defined here", einsum.output,
                           "rename the tensor this Einsum defines")
            if einsum.name in self.sizes:
                raise _err(f"{einsum.name} is both a size and a tensor", einsum.output,
                           "rename one of them")
            by_tensor.setdefault(einsum.name, []).append(einsum)

        for tensor, defs in by_tensor.items():
            kinds = []
            for einsum in defs:
                row = []
                for index in einsum.output.indices:
                    kind = _lhs_kind(index)
                    if kind is None:
                        raise _err(f"output index of {tensor} must be an index variable, "
                                   f"'var+1' (a recurrence) or an integer (its initial value)", index,
                                   "write expressions of indices on the right-hand side")
                    if kind[0] in ("var", "next") and kind[1].upper() not in self.ranks:
                        raise _err(f"index {kind[1]} has no extent", index,
                                   f"declare its rank: rank {kind[1].upper()} = ...")
                    row.append(kind)
                vars_ = [k[1] for k in row if k[0] != "const"]
                for var in vars_:
                    if vars_.count(var) > 1:
                        raise _err(f"index {var} appears twice in the output of {tensor}",
                                   einsum.output, "each output axis needs its own index")
                kinds.append(row)
            updates = [(e, row) for e, row in zip(defs, kinds) if any(k[0] == "next" for k in row)]
            inits = [(e, row) for e, row in zip(defs, kinds) if any(k[0] == "const" for k in row)]
            plain = [(e, row) for e, row in zip(defs, kinds) if all(k[0] == "var" for k in row)]
            if len(defs) == 1 and plain:
                shapes[tensor] = tuple(Axis(k[1].upper()) for k in plain[0][1])
                continue
            if plain or len(updates) > 1 or len(inits) > 1 or len(defs) > 2:
                second = defs[1]
                raise _err(f"tensor {tensor} is defined twice", second.output,
                           "a tensor has one definition, or an initial value plus a recurrence")
            if not updates:
                raise _err(f"{tensor} has an initial value but no recurrence", defs[0].output,
                           f"add the update: {tensor}[..., i+1] = f({tensor}[..., i], ...)")
            update, urow = updates[0]
            next_axes = [k for k, kind in enumerate(urow) if kind[0] == "next"]
            if len(next_axes) > 1:
                raise _err(f"{tensor} recurs along more than one axis", update.output,
                           "step one axis with var+1; index the others plainly")
            axis = next_axes[0]
            if not inits:
                var = urow[axis][1]
                raise _err(f"recurrence {tensor} has no initial value", update.output,
                           f"add a line such as {tensor}[{', '.join('0' if k == axis else str(i) for k, i in enumerate(_plain_names(urow)))}] = 0")
            init, irow = inits[0]
            if len(irow) != len(urow) or irow[axis] != ("const", 0) or any(
                    a != b for k, (a, b) in enumerate(zip(irow, urow)) if k != axis):
                raise _err(f"the initial value of {tensor} must use the update's indices, with 0 "
                           f"on the iterative axis", init.output,
                           f"for example {tensor}[..., 0] = ... for the update {tensor}[..., i+1]")
            shapes[tensor] = tuple(
                Axis(kind[1].upper(), 1 if kind[0] == "next" else 0) for kind in urow)
            recurrences[tensor] = Recurrence(tensor, axis, urow[axis][1], init, update)
        return shapes, recurrences

    # ------------------------------------------------------------------ einsums
    def _check_einsum(self, einsum: Einsum) -> None:
        out_vars = set(einsum.output_vars)
        body_vars = set(index_vars(einsum.body))
        for node in walk(einsum.output):
            if isinstance(node, Name) and not node.is_index and node.name not in self.sizes:
                raise _err(f"unknown size {node.name!r}", node,
                           "declare it with 'rank' or 'param'; index variables are lower case")
        self._check_value(einsum.body)
        if einsum.reducer is not None:
            for var in einsum.reduced:
                if var in out_vars:
                    raise _err(f"index {var} is both kept in the output and reduced", einsum,
                               f"remove {var} from the reducer or from {einsum.name}[...]")
                if var not in body_vars:
                    raise _err(f"{einsum.reducer}[{var}] reduces over {var}, which the expression "
                               f"does not use", einsum,
                               f"remove {var} from the reducer, or use it in the expression")
                if var.upper() not in self.ranks:
                    raise _err(f"index {var} has no extent", einsum,
                               f"declare its rank: rank {var.upper()} = ...")
        free = body_vars - out_vars - set(einsum.reduced)
        if free:
            var = sorted(free)[0]
            raise _err(f"index {var} is neither in the output of {einsum.name} nor reduced", einsum,
                       f"add it to the output or to the reducer ({einsum.reducer or 'sum'}[{var}])")
        if einsum.where is not None:
            self._check_predicate(einsum.where)
            extra = set(index_vars(einsum.where)) - out_vars - body_vars
            if extra:
                var = sorted(extra)[0]
                raise _err(f"the predicate uses index {var}, which the Einsum does not iterate",
                           einsum.where, "a predicate may use the Einsum's own indices only")

    def _check_var(self, node: Name) -> None:
        if node.is_index:
            if node.name.upper() not in self.ranks:
                raise _err(f"index {node.name} has no extent", node,
                           f"declare its rank: rank {node.name.upper()} = ...")
        elif node.name not in self.sizes and node.name not in self.ranks:
            hint = None
            if node.name in self.shapes:
                hint = f"{node.name} is a tensor: index it, e.g. {node.name}[...]"
            raise _err(f"unknown name {node.name!r}", node, hint or "declare it with 'rank' or 'param'")

    def _check_value(self, expr: Expr) -> None:
        for node in walk(expr):
            if isinstance(node, Name):
                self._check_var(node)
            elif isinstance(node, Call):
                if node.func not in FUNCTIONS:
                    raise _err(f"unknown function {node.func!r}", node,
                               "known functions: " + ", ".join(sorted(FUNCTIONS)))
                if len(node.args) != FUNCTIONS[node.func]:
                    raise _err(f"{node.func} takes {FUNCTIONS[node.func]} argument(s), "
                               f"got {len(node.args)}", node,
                               "max and min take two arguments; for a reduction write max[i] X[..., i]")
            elif isinstance(node, Access):
                self._check_access(node)

    def _check_access(self, access: Access) -> None:
        if access.tensor not in self.shapes:
            close = [t for t in self.shapes if t.lower() == access.tensor.lower()]
            raise _err(f"unknown tensor {access.tensor!r}", access,
                       f"did you mean {close[0]}?" if close else
                       "declare it as an input or define it with an Einsum")
        axes = self.shapes[access.tensor]
        if len(access.indices) != len(axes):
            raise _err(f"{access.tensor} has {len(axes)} indices, but {len(access.indices)} are "
                       f"given", access,
                       f"write {access.tensor}[{', '.join(a.rank.lower() for a in axes)}]")
        for axis, index in zip(axes, access.indices):
            for node in walk(index):
                if isinstance(node, (Access, Call)):
                    raise _err("an index must be integer arithmetic of indices and sizes", node,
                               "reading through index tensors (gathers) is not supported yet")
                if isinstance(node, Name):
                    self._check_var(node)
                if isinstance(node, Num) and not isinstance(node.value, int):
                    raise _err("an index must be an integer expression", node,
                               "indices use index variables, sizes, integers and + - * / %")
                if isinstance(node, Binary) and node.op not in ("+", "-", "*", "/", "%"):
                    raise _err(f"operator {node.op!r} cannot be used in an index", node,
                               "indices use + - * / % only")
                _check_divisor(node)
            if isinstance(index, Name) and index.is_index:
                if self._root(index.name.upper()) != self._root(axis.rank):
                    raise _err(f"index {index.name} ranges over {index.name.upper()}, but axis "
                               f"{axes.index(axis) + 1} of {access.tensor} has rank {axis.rank}",
                               index, f"use the index {axis.rank.lower()} here, or an affine "
                                      f"expression that maps into {axis.rank}")

    def _root(self, rank: str) -> str:
        """Follows aliases (``rank D = C``) so that equal ranks compare equal."""
        seen = set()
        while rank in self.sizes and isinstance(self.sizes[rank].default, Name) and rank not in seen:
            seen.add(rank)
            rank = self.sizes[rank].default.name
        return rank

    def _check_predicate(self, expr: Expr) -> None:
        if not (isinstance(expr, Binary) and expr.op in COMPARISONS + LOGICAL) and not (
                isinstance(expr, Unary) and expr.op == "not"):
            raise _err("a 'where' predicate must be a comparison (combine with and/or/not)", expr,
                       "for example: where m <= p")
        for node in walk(expr):
            if isinstance(node, Access):
                raise _err("a 'where' predicate is over indices only; it cannot read tensors", node,
                           "masks that depend on data (top-k, routing) are not supported yet")
            if isinstance(node, Call) and node.func not in ("abs", "min", "max"):
                raise _err(f"function {node.func!r} cannot be used in a predicate", node,
                           "predicates use integer arithmetic, abs, min and max")
            if isinstance(node, Name):
                self._check_var(node)
            if isinstance(node, Num) and isinstance(node.value, float) and not (
                    math.isfinite(node.value) and node.value.is_integer()):
                raise _err(f"a predicate compares integers, not {node.value!r}", node,
                           "index and predicate arithmetic is on integers")
            _check_divisor(node)

    def _check_outputs(self) -> None:
        for decl in self.c.outputs:
            defs = self.c.definitions(decl.name)
            if not defs:
                raise _err(f"output {decl.name} is never defined", decl,
                           f"add an Einsum {decl.name}[{', '.join(decl.axes)}] = ...")
            shape = self.shapes[decl.name]
            if tuple(a.rank for a in shape) != decl.ranks or any(a.extra for a in shape):
                raise _err(f"output {decl.name} is declared as {decl.name}[{', '.join(decl.axes)}] "
                           f"but defined with other indices", defs[-1].output,
                           "use the declared indices on the left-hand side")
        if not self.c.outputs:
            raise CascadeError("the cascade declares no output",
                               hint="add a line such as: output AV[b, h, p, f]")

    # ------------------------------------------------------------------ order
    def _evaluation_order(self, recurrences):
        einsums = list(self.c.einsums)
        graph: dict[int, dict[int, None]] = {k: {} for k in range(len(einsums))}
        lag0: dict[int, dict[int, None]] = {k: {} for k in range(len(einsums))}
        writer: dict[str, list[int]] = {}
        for k, einsum in enumerate(einsums):
            writer.setdefault(einsum.name, []).append(k)
        for k, einsum in enumerate(einsums):
            for access in einsum.reads():
                for j in writer.get(access.tensor, []):
                    rec = recurrences.get(access.tensor)
                    graph[j][k] = None
                    if rec is not None and einsums[j] is rec.init and k != j:
                        # Reads of the initial value depend on the init Einsum only.
                        lag0[j][k] = None
                        continue
                    carried = (rec is not None and einsums[j] is rec.update
                               and _is_var(access.indices[rec.axis], rec.var))
                    if not carried:
                        lag0[j][k] = None
        succ = {k: list(v) for k, v in graph.items()}
        succ0 = {k: list(v) for k, v in lag0.items()}
        cycle = find_cycle(len(einsums), succ0)
        if cycle:
            names = [einsums[a].name for a in cycle]
            raise _err("dependency cycle: " + " -> ".join(names + [names[0]]), einsums[cycle[0]],
                       "a tensor may read its own previous iterate only, as in "
                       "X[..., i+1] = f(X[..., i])")
        components = [tuple(sorted(c)) for c in strongly_connected(len(einsums), succ)]
        component_of = {m: c for c in components for m in c}

        def component_succ(component):
            return list({component_of[t]: None for m in component for t in succ[m]
                         if component_of[t] != component})

        order, step_vars = [], []
        for members in smallest_first_order(components, component_succ, key=min):
            recurrent = len(members) > 1 or members[0] in graph[members[0]]
            if not recurrent:
                order.append((einsums[members[0]],))
                step_vars.append(None)
                continue
            inside = set(members)
            ordered = smallest_first_order(
                list(members), lambda m, inside=inside: [t for t in succ0[m] if t in inside],
                key=lambda m: m)
            vars_ = {recurrences[einsums[m].name].var for m in members
                     if einsums[m].name in recurrences and recurrences[einsums[m].name].update is einsums[m]}
            if len(vars_) != 1:
                raise _err("these Einsums depend on each other through more than one recurrence "
                           "index: " + ", ".join(einsums[m].name for m in members), einsums[members[0]],
                           "each loop of dependencies must step one recurrence index")
            (var,) = vars_
            for m in members:
                if var not in einsums[m].iteration_space:
                    raise _err(f"{einsums[m].name} takes part in the recurrence over {var} but does "
                               f"not iterate {var}", einsums[m],
                               f"index its tensors by {var} too")
            order.append(tuple(einsums[m] for m in ordered))
            step_vars.append(var)
        return tuple(order), tuple(step_vars)


def _check_divisor(node: Expr) -> None:
    """A literal zero divisor in an index or a predicate (others are found when evaluating)."""
    if (isinstance(node, Binary) and node.op in ("/", "%") and isinstance(node.rhs, Num)
            and node.rhs.value == 0):
        raise _err(f"{'division' if node.op == '/' else 'modulo'} by zero", node,
                   "the divisor of an index or predicate must be non-zero")


def _plain_names(row):
    return [k[1] if k[0] != "const" else str(k[1]) for k in row]


def _is_var(index: Expr, var: str) -> bool:
    return isinstance(index, Name) and index.name == var
