"""The inputs of a cascade: their shapes at given sizes, seeded random values, checked arrays.

Random inputs are standard normals, unless ``domains`` asks for values from the domain an
input's use needs (:func:`input_domains`): a decay rate raised to a varying power, or a value
under ``log``, is drawn from (0, 1]; a value under ``sqrt`` from |N(0, 1)|; a divisor from [0.5, 1.5].
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping

import numpy as np

from .errors import CascadeError
from .ir import Access, Binary, Call, Cascade, Expr, Num, Unary
from .labelled import ensure_fits


class Domain(Enum):
    REAL = "real"  # N(0, 1)
    UNIT = "(0, 1]"  # pow bases (decay rates), log arguments
    NONNEGATIVE = "[0, inf)"  # sqrt arguments
    AWAY_FROM_ZERO = "[0.5, 1.5]"  # divisors

    def draw(self, rng: np.random.Generator, shape) -> np.ndarray:
        if self is Domain.UNIT:
            return 1.0 - rng.uniform(0.0, 0.95, shape)  # (0.05, 1]: no rate underflows
        if self is Domain.NONNEGATIVE:
            return np.abs(rng.standard_normal(shape))
        if self is Domain.AWAY_FROM_ZERO:
            return rng.uniform(0.5, 1.5, shape)
        return rng.standard_normal(shape)


_NARROWEST = (Domain.UNIT, Domain.NONNEGATIVE, Domain.AWAY_FROM_ZERO, Domain.REAL)


def _uses(expr: Expr, found: dict, inputs: set) -> None:
    """Records the domain each input read directly by ``expr``'s operators needs."""
    def need(arg: Expr, domain: Domain):
        if isinstance(arg, Access) and arg.tensor in inputs:
            old = found.get(arg.tensor, Domain.REAL)
            found[arg.tensor] = min(old, domain, key=_NARROWEST.index)

    if isinstance(expr, Call):
        if expr.func == "pow" and not isinstance(expr.args[1], Num) or expr.func == "log":
            need(expr.args[0], Domain.UNIT)  # a rate to a varying power; x ** 2 takes any x
        elif expr.func == "sqrt":
            need(expr.args[0], Domain.NONNEGATIVE)
        elif expr.func == "recip":
            need(expr.args[0], Domain.AWAY_FROM_ZERO)
        for a in expr.args:
            _uses(a, found, inputs)
    elif isinstance(expr, Binary):
        if expr.op == "/":
            need(expr.rhs, Domain.AWAY_FROM_ZERO)
        _uses(expr.lhs, found, inputs)
        _uses(expr.rhs, found, inputs)
    elif isinstance(expr, Unary):
        _uses(expr.operand, found, inputs)


def input_domains(cascade: Cascade) -> dict[str, Domain]:
    """The domain each input's uses need (REAL when nothing narrows it)."""
    inputs = {d.name for d in cascade.inputs}
    found: dict = {}
    for e in cascade.einsums:
        _uses(e.body, found, inputs)
    return {d.name: found.get(d.name, Domain.REAL) for d in cascade.inputs}


def input_shapes(cascade: Cascade, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    return {d.name: tuple(sizes[r] for r in d.ranks) for d in cascade.inputs}


def random_inputs(cascade: Cascade, sizes: Mapping[str, int], seed: int = 0,
                  dtype=np.float64, domains: bool = False) -> dict[str, np.ndarray]:
    """Seeded random inputs: standard normals, or with ``domains`` each from the domain its
    uses need (:func:`input_domains`)."""
    if seed < 0:
        raise CascadeError(f"the seed must be a non-negative integer, got {seed}",
                           hint="use --seed 0 or any positive integer")
    rng = np.random.default_rng(seed)
    shapes = input_shapes(cascade, sizes)
    for name, shape in shapes.items():
        ensure_fits(shape, np.dtype(dtype).itemsize, f"input {name}", cascade.input(name).span)
    kinds = input_domains(cascade) if domains else {}
    return {name: kinds.get(name, Domain.REAL).draw(rng, shape).astype(dtype)
            for name, shape in shapes.items()}


def input_array(cascade: Cascade, name: str, shape, inputs, dtype) -> np.ndarray:
    decl = cascade.input(name)
    if name not in inputs:
        raise CascadeError(f"input {name} is missing", decl.span,
                           f"provide an array of shape {shape}")
    arr = np.asarray(inputs[name])
    if arr.dtype.kind not in "biuf":
        raise CascadeError(f"input {name} holds {arr.dtype} values, not real numbers", decl.span,
                           "give an array of floats (or integers)")
    if arr.shape != shape:
        raise CascadeError(f"input {name} has shape {arr.shape}, expected {shape} "
                           f"({name}[{', '.join(decl.axes)}])", decl.span,
                           "give an array of the declared shape at these sizes")
    return arr.astype(dtype, copy=False)


def sizes_from_arrays(cascade: Cascade, arrays: Mapping[str, np.ndarray], where: str,
                      fixed: Mapping[str, int]) -> dict[str, int]:
    """The plain ranks the input arrays' shapes give (not those in ``fixed``); inconsistent or
    wrongly shaped arrays are an error naming ``where`` (the option and the file)."""
    plain = {d.name for d in cascade.sizes if d.is_rank and isinstance(d.default, Num)}
    out: dict[str, int] = {}
    seen: dict[str, str] = {}
    for decl in cascade.inputs:
        if decl.name not in arrays:
            continue
        arr = np.asarray(arrays[decl.name])
        if arr.ndim != len(decl.ranks):
            raise CascadeError(f"input {decl.name} has {arr.ndim} dimensions, expected "
                               f"{len(decl.ranks)} ({decl.name}[{', '.join(decl.axes)}])",
                               file=where, hint="give an array of the declared rank")
        for rank, n in zip(decl.ranks, arr.shape, strict=True):
            if rank in out and out[rank] != n:
                raise CascadeError(f"rank {rank} is {out[rank]} in {seen[rank]} but {n} in "
                                   f"{decl.name}", file=where,
                                   hint="arrays that share a rank must agree on its size")
            if rank in plain and rank not in fixed:
                out[rank], seen[rank] = int(n), decl.name
    return out


def checked_inputs(cascade: Cascade, sizes: Mapping[str, int], arrays: Mapping[str, np.ndarray],
                   where: str, dtype=np.float64) -> dict[str, np.ndarray]:
    """The arrays of every input, checked against the declaration at these sizes. Other names
    are an error (outputs, as `cascade eval --out` writes them, are ignored)."""
    known = {d.name for d in cascade.inputs} | {d.name for d in cascade.outputs}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise CascadeError(f"{unknown[0]} is not an input of {cascade.name}", file=where,
                           hint="inputs: " + ", ".join(d.name for d in cascade.inputs))
    shapes = input_shapes(cascade, sizes)
    out = {}
    for name, shape in shapes.items():
        try:
            out[name] = input_array(cascade, name, shape, arrays, dtype)
        except CascadeError as exc:
            raise CascadeError(exc.message, hint=exc.hint, file=where) from None
    return out
