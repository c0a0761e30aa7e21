"""Static checks of a cascade: each ``check_*`` raises CascadeError with the span of the first
offending text and a hint, or returns None.

:func:`einsum_ir.verifier.analyze` runs them in a fixed order (declarations, definitions,
Einsums, outputs, dependences), interleaved with the derivations of :mod:`einsum_ir.facts` that
later checks need (the shapes, the dependence graph).
"""
from __future__ import annotations

import math
from typing import Mapping


from .errors import CascadeError
from .graphs import find_cycle
from .sizes import real_params
from .exprs import rank_root
from .facts import Axis, Dependences, Recurrence, components, is_recurrent, out_indices, \
    step_vars_of
from .ir import (COMPARISONS, FUNCTIONS, LOGICAL, Access, Binary, Call, Cascade, Einsum, Name,
                 Num, SizeDecl, TensorDecl, Unary, index_vars, walk)

Shapes = Mapping[str, tuple[Axis, ...]]


def _err(message: str, node, hint: str | None = None) -> CascadeError:
    return CascadeError(message, getattr(node, "span", None), hint)


def _refuse_real(cascade: Cascade, node, what: str) -> None:
    """A real parameter (``param CAP = 30.0``) is a value: not a size, an index or a predicate."""
    if not isinstance(node, Name) or node.is_index:
        return
    decl = cascade.size_decl(node.name)
    if decl is not None and not decl.is_rank and node.name in real_params(cascade):
        raise _err(f"{node.name} is a real parameter and cannot be used in {what}", node,
                   "sizes, indices and predicates are integers; use it in values only")


# ------------------------------------------------------------------ declarations


def check_declarations(cascade: Cascade) -> None:
    sizes = {d.name: d for d in cascade.sizes}
    seen: dict[str, object] = {}
    for decl in cascade.sizes:
        _check_size_decl(cascade, sizes, seen, decl)
        seen[decl.name] = decl
    for split in cascade.splits:
        for part in (split.rank, split.inner):
            if part not in sizes or not sizes[part].is_rank:
                raise _err(f"split {split.rank} = {split.outer} * {split.inner}: {part} is not "
                           f"a declared rank", split, f"declare it first: rank {part} = ...")
        if split.outer in seen:
            raise _err(f"split: {split.outer} is already declared", split,
                       "the outer rank of a split is derived; do not declare it")
        seen[split.outer] = split
    _check_tensor_decls(cascade, sizes)


def _check_size_decl(cascade: Cascade, sizes, seen, decl: SizeDecl) -> None:
    if decl.name in seen:
        raise _err(f"size {decl.name} is declared twice", decl,
               "keep one declaration")
    if decl.is_rank and not decl.name[0].isupper():
        raise _err(f"rank {decl.name} must start with an upper-case letter", decl,
                   f"its index variable is the lower-case name ({decl.name.lower()})")
    outers = {s.outer for s in cascade.splits}
    for node in walk(decl.default):
        if isinstance(node, (Access, Call)) and not (
                isinstance(node, Call) and node.func in ("min", "max")):
            raise _err(f"the size of {decl.name} must be an integer expression of sizes", node,
               "use integers, sizes, + - * / % and min/max")
        if isinstance(node, Name) and node.name not in sizes and node.name not in outers:
            raise _err(f"unknown size {node.name!r} in the size of {decl.name}", node,
                       "declare it with 'rank' or 'param'")
        if decl.is_rank:
            _refuse_real(cascade, node, f"the size of rank {decl.name}")
    if decl.index_of and decl.default.name not in set(cascade.rank_names()):
        raise _err(f"index {decl.name.lower()} : {decl.default.name}: {decl.default.name} is not "
                   "a rank", decl.default, "an index ranges over a rank declared with 'rank'")


def _check_tensor_decls(cascade: Cascade, sizes) -> None:
    ranks = set(cascade.rank_names())
    tensors: dict[str, TensorDecl] = {}
    for decl in (*cascade.inputs, *cascade.outputs):
        if decl.name in tensors and decl in cascade.inputs:
            raise _err(f"tensor {decl.name} is declared twice", decl,
               "keep one declaration")
        tensors[decl.name] = decl
        if decl.name in sizes:
            raise _err(f"{decl.name} is both a size and a tensor", decl, "rename one of them")
        for axis in decl.axes:
            if not axis[0].islower():
                raise _err(f"axis {axis} of {decl.name} must be a lower-case index name", decl,
                           f"write the index of the rank: {axis.lower()}")
            if axis.upper() not in ranks:
                raise _err(f"index {axis} of {decl.name} has no extent", decl,
                           f"declare its rank: rank {axis.upper()} = ...")
    names_in = [d.name for d in cascade.inputs]
    names_out = [d.name for d in cascade.outputs]
    for name in set(names_in) & set(names_out):
        raise _err(f"{name} is declared both input and output", cascade.output(name),
               "an output is computed by an Einsum; rename one of them")
    for name in names_out:
        if names_out.count(name) > 1:
            raise _err(f"output {name} is declared twice", cascade.output(name),
               "keep one declaration")


# ------------------------------------------------------------------ definitions


def check_definitions(cascade: Cascade) -> None:
    """Every tensor has one definition, or an initial value plus one update along one axis."""
    sizes = {d.name for d in cascade.sizes}
    for einsum in cascade.einsums:
        if cascade.input(einsum.name):
            raise _err(f"{einsum.name} is an input and cannot be defined here", einsum.output,
                       "rename the tensor this Einsum defines")
        if einsum.name in sizes:
            raise _err(f"{einsum.name} is both a size and a tensor", einsum.output,
               "rename one of them")
    for tensor in dict.fromkeys(e.name for e in cascade.einsums):
        defs = cascade.definitions(tensor)
        rows = [_out_row(cascade, e) for e in defs]
        _check_tensor_definitions(tensor, defs, rows)


def _out_row(cascade: Cascade, einsum: Einsum):
    ranks = set(cascade.rank_names())
    kinds = out_indices(einsum)
    for index, kind in zip(einsum.output.indices, kinds, strict=True):
        if kind is None:
            raise _err(f"output index of {einsum.name} must be an index variable, "
                       f"'var+1' (a recurrence) or an integer (its initial value)", index,
               "write expressions of indices on the right-hand side")
        if kind.kind in ("var", "next") and kind.value.upper() not in ranks:
            raise _err(f"index {kind.value} has no extent", index,
                       f"declare its rank: rank {kind.value.upper()} = ...")
    vars_ = [k.value for k in kinds if k.kind != "const"]
    for var in vars_:
        if vars_.count(var) > 1:
            raise _err(f"index {var} appears twice in the output of {einsum.name}", einsum.output,
               "each output axis needs its own index")
    return kinds


def _check_tensor_definitions(tensor: str, defs, rows) -> None:
    updates = [(e, r) for e, r in zip(defs, rows, strict=True) if any(k.kind == "next" for k in r)]
    inits = [(e, r) for e, r in zip(defs, rows, strict=True) if any(k.kind == "const" for k in r)]
    plain = [e for e, r in zip(defs, rows, strict=True) if all(k.kind == "var" for k in r)]
    if len(defs) == 1 and plain:
        return
    if plain or len(updates) > 1 or len(inits) > 1 or len(defs) > 2:
        raise _err(f"tensor {tensor} is defined twice", defs[1].output,
                   "a tensor has one definition, or an initial value plus a recurrence")
    if not updates:
        raise _err(f"{tensor} has an initial value but no recurrence", defs[0].output,
                   f"add the update: {tensor}[..., i+1] = f({tensor}[..., i], ...)")
    update, urow = updates[0]
    next_axes = [k for k, kind in enumerate(urow) if kind.kind == "next"]
    if len(next_axes) > 1:
        raise _err(f"{tensor} recurs along more than one axis", update.output,
               "step one axis with var+1; index the others plainly")
    axis = next_axes[0]
    if not inits:
        example = ", ".join("0" if k == axis else str(kind.value) for k, kind in enumerate(urow))
        raise _err(f"recurrence {tensor} has no initial value", update.output,
                   f"add a line such as {tensor}[{example}] = 0")
    init, irow = inits[0]
    if len(irow) != len(urow) or tuple(irow[axis]) != ("const", 0) or any(
            tuple(a) != tuple(b) for k, (a, b) in enumerate(zip(irow, urow, strict=True)) if k != axis):
        raise _err(f"the initial value of {tensor} must use the update's indices, with 0 "
                   f"on the iterative axis", init.output,
               f"for example {tensor}[..., 0] = ... for the update {tensor}[..., i+1]")


# ------------------------------------------------------------------ einsums


def check_einsum(cascade: Cascade, shapes: Shapes, einsum: Einsum) -> None:
    sizes = {d.name for d in cascade.sizes}
    out_vars = set(einsum.output_vars)
    body_vars = set(index_vars(einsum.body))
    for node in walk(einsum.output):
        _refuse_real(cascade, node, "an index")
        if isinstance(node, Name) and not node.is_index and node.name not in sizes:
            raise _err(f"unknown size {node.name!r}", node,
               "declare it with 'rank' or 'param'; index variables are lower case")
    check_value(cascade, shapes, einsum.body)
    if einsum.reducer is not None:
        _check_reduced(cascade, einsum, out_vars, body_vars)
    free = body_vars - out_vars - set(einsum.reduced)
    if free:
        var = sorted(free)[0]
        raise _err(f"index {var} is neither in the output of {einsum.name} nor reduced", einsum,
                   f"add it to the output or to the reducer ({einsum.reducer or 'sum'}[{var}])")
    if einsum.where is not None:
        check_predicate(cascade, shapes, einsum.where)
        extra = set(index_vars(einsum.where)) - out_vars - body_vars
        if extra:
            var = sorted(extra)[0]
            raise _err(f"the predicate uses index {var}, which the Einsum does not iterate",
                       einsum.where,
               "a predicate may use the Einsum's own indices only")


def _check_reduced(cascade: Cascade, einsum: Einsum, out_vars, body_vars) -> None:
    ranks = set(cascade.rank_names())
    for var in einsum.reduced:
        if var in out_vars:
            raise _err(f"index {var} is both kept in the output and reduced", einsum,
                       f"remove {var} from the reducer or from {einsum.name}[...]")
        if var not in body_vars:
            raise _err(f"{einsum.reducer}[{var}] reduces over {var}, which the expression "
                       f"does not use", einsum,
                       f"remove {var} from the reducer, or use it in the expression")
        if var.upper() not in ranks:
            raise _err(f"index {var} has no extent", einsum,
                       f"declare its rank: rank {var.upper()} = ...")


def check_name(cascade: Cascade, shapes: Shapes, node: Name) -> None:
    ranks = set(cascade.rank_names())
    if node.is_index:
        if node.name.upper() not in ranks:
            raise _err(f"index {node.name} has no extent", node,
                       f"declare its rank: rank {node.name.upper()} = ...")
    elif cascade.size_decl(node.name) is None and node.name not in ranks:
        hint = None
        if node.name in shapes:
            hint = f"{node.name} is a tensor: index it, e.g. {node.name}[...]"
        raise _err(f"unknown name {node.name!r}", node, hint or "declare it with 'rank' or 'param'")


def check_value(cascade: Cascade, shapes: Shapes, expr) -> None:
    for node in walk(expr):
        if isinstance(node, Name):
            check_name(cascade, shapes, node)
        elif isinstance(node, Call):
            if node.func not in FUNCTIONS:
                raise _err(f"unknown function {node.func!r}", node,
                           "known functions: " + ", ".join(sorted(FUNCTIONS)))
            if len(node.args) != FUNCTIONS[node.func]:
                raise _err(f"{node.func} takes {FUNCTIONS[node.func]} argument(s), "
                           f"got {len(node.args)}", node,
                           "max and min take two arguments; for a reduction write max[i] X[..., i]")
        elif isinstance(node, Access):
            check_access(cascade, shapes, node)


def check_access(cascade: Cascade, shapes: Shapes, access: Access) -> None:
    if access.tensor not in shapes:
        close = [t for t in shapes if t.lower() == access.tensor.lower()]
        raise _err(f"unknown tensor {access.tensor!r}", access,
                   f"did you mean {close[0]}?" if close else
                   "declare it as an input or define it with an Einsum")
    axes = shapes[access.tensor]
    if len(access.indices) != len(axes):
        raise _err(f"{access.tensor} has {len(axes)} indices, but {len(access.indices)} are "
                   f"given", access,
                   f"write {access.tensor}[{', '.join(a.rank.lower() for a in axes)}]")
    for position, (axis, index) in enumerate(zip(axes, access.indices, strict=True), start=1):
        _check_index(cascade, shapes, index)
        if isinstance(index, Name) and index.is_index and (
                rank_root(cascade, index.name.upper()) != rank_root(cascade, axis.rank)):
            raise _err(f"index {index.name} ranges over {index.name.upper()}, but axis "
                       f"{position} of {access.tensor} has rank {axis.rank}",
                       index, f"use the index {axis.rank.lower()} here, or an affine "
                              f"expression that maps into {axis.rank}")


def _check_index(cascade: Cascade, shapes: Shapes, index) -> None:
    gathers = [node for node in walk(index) if isinstance(node, Access)]
    for access in gathers:  # a gather through an index tensor (data_masks.gather_index)
        check_access(cascade, shapes, access)
    inner = {id(n) for a in gathers for i in a.indices for n in walk(i)}
    for node in walk(index):
        if id(node) in inner or isinstance(node, Access):
            continue
        if isinstance(node, Call):
            raise _err("an index must be integer arithmetic of indices and sizes", node,
                       "indices use + - * / %, index variables, sizes, integers and reads of "
                       "index tensors (gathers)")
        if isinstance(node, Name):
            check_name(cascade, shapes, node)
            _refuse_real(cascade, node, "an index")
        if isinstance(node, Num) and not isinstance(node.value, int):
            raise _err("an index must be an integer expression", node,
               "indices use index variables, sizes, integers and + - * / %")
        if isinstance(node, Binary) and node.op not in ("+", "-", "*", "/", "%"):
            raise _err(f"operator {node.op!r} cannot be used in an index", node,
               "indices use + - * / % only")
        check_divisor(node)


def check_divisor(node) -> None:
    """A literal zero divisor in an index or a predicate (others are found when evaluating)."""
    if (isinstance(node, Binary) and node.op in ("/", "%") and isinstance(node.rhs, Num)
            and node.rhs.value == 0):
        raise _err(f"{'division' if node.op == '/' else 'modulo'} by zero", node,
                   "the divisor of an index or predicate must be non-zero")


def check_predicate(cascade: Cascade, shapes: Shapes, expr) -> None:
    if not (isinstance(expr, Binary) and expr.op in COMPARISONS + LOGICAL) and not (
            isinstance(expr, Unary) and expr.op == "not"):
        raise _err("a 'where' predicate must be a comparison (combine with and/or/not)", expr,
                   "for example: where m <= p")
    _check_truth(cascade, shapes, expr)


def _check_truth(cascade: Cascade, shapes: Shapes, expr) -> None:
    """and/or/not of comparisons: one that reads a tensor compares values (data_masks.py), the
    others integer index arithmetic."""
    if isinstance(expr, Binary) and expr.op in LOGICAL:
        _check_truth(cascade, shapes, expr.lhs)
        _check_truth(cascade, shapes, expr.rhs)
    elif isinstance(expr, Unary) and expr.op == "not":
        _check_truth(cascade, shapes, expr.operand)
    elif any(isinstance(node, Access) for node in walk(expr)):
        check_value(cascade, shapes, expr)
    else:
        _check_integer_predicate(cascade, shapes, expr)


def _check_integer_predicate(cascade: Cascade, shapes: Shapes, expr) -> None:
    for node in walk(expr):
        if isinstance(node, Call) and node.func not in ("abs", "min", "max"):
            raise _err(f"function {node.func!r} cannot be used in a predicate", node,
                       "predicates use integer arithmetic, abs, min and max (or compare "
                       "tensor values: where S[p,m] > 0)")
        if isinstance(node, Name):
            check_name(cascade, shapes, node)
            _refuse_real(cascade, node, "a predicate")
        if isinstance(node, Num) and isinstance(node.value, float) and not (
                math.isfinite(node.value) and node.value.is_integer()):
            raise _err(f"a predicate compares integers, not {node.value!r}", node,
                       "index and predicate arithmetic is on integers")
        check_divisor(node)


# ------------------------------------------------------------------ outputs and order


def check_outputs(cascade: Cascade, shapes: Shapes) -> None:
    for decl in cascade.outputs:
        defs = cascade.definitions(decl.name)
        if not defs:
            raise _err(f"output {decl.name} is never defined", decl,
                       f"add an Einsum {decl.name}[{', '.join(decl.axes)}] = ...")
        shape = shapes[decl.name]
        if tuple(a.rank for a in shape) != decl.ranks or any(a.extra for a in shape):
            raise _err(f"output {decl.name} is declared as {decl.name}[{', '.join(decl.axes)}] "
                       f"but defined with other indices", defs[-1].output,
               "use the declared indices on the left-hand side")
    if not cascade.outputs:
        raise CascadeError("the cascade declares no output",
                           hint="add a line such as: output AV[b, h, p, f]")


def check_dependences(cascade: Cascade, deps: Dependences,
                      recurrences: Mapping[str, Recurrence]) -> None:
    """No cycle except through a recurrence's previous iterate; each recurrent group steps over
    one index, which all its Einsums iterate."""
    einsums = cascade.einsums
    cycle = find_cycle(len(einsums), deps.lag0)
    if cycle:
        names = [einsums[a].name for a in cycle]
        raise _err("dependency cycle: " + " -> ".join(names + [names[0]]), einsums[cycle[0]],
                   "a tensor may read its own previous iterate only, as in "
                   "X[..., i+1] = f(X[..., i])")
    for members in components(deps):
        if not is_recurrent(deps, members):
            continue
        group = sorted(members)
        vars_ = step_vars_of(cascade, members, recurrences)
        if len(vars_) != 1:
            raise _err("these Einsums depend on each other through more than one recurrence "
                       "index: " + ", ".join(einsums[m].name for m in group), einsums[group[0]],
               "each loop of dependencies must step one recurrence index")
        (var,) = vars_
        for m in group:
            if var not in einsums[m].iteration_space:
                raise _err(f"{einsums[m].name} takes part in the recurrence over {var} but does "
                           f"not iterate {var}", einsums[m],
               f"index its tensors by {var} too")
