"""What the reference interpreter will allocate, checked before it allocates anything.

The interpreter keeps every tensor of the cascade (inputs, intermediates, outputs) and, for a
``max``/``min``/``prod`` reduction or a map, materialises the Einsum's iteration space. Each of these
arrays, and all tensors together, must fit in ``labelled.max_memory`` bytes (``--max-memory``).
numpy also limits arrays to 64 axes.
"""
from __future__ import annotations

import math
from typing import Mapping

from .errors import CascadeError
from .labelled import format_bytes, max_memory
from .verifier import Analysis

MAX_AXES = 64


def tensor_shape(analysis: Analysis, tensor: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(sizes[axis.rank] + axis.extra for axis in analysis.shapes[tensor])


def _refuse(what: str, need: int, shape, itemsize: int, span, limit: int) -> CascadeError:
    dims = " x ".join(map(str, shape)) or "1"
    return CascadeError(f"{what} needs {format_bytes(need)} ({dims} x {itemsize} B), more than "
                        f"the limit of {format_bytes(limit)}", span,
                        "use smaller sizes (--set P=...) or raise --max-memory")


def _span_of(analysis: Analysis, tensor: str):
    cascade = analysis.cascade
    decl = cascade.input(tensor) or cascade.output(tensor)
    if decl is not None:
        return decl.span
    definitions = cascade.definitions(tensor)
    return definitions[0].span if definitions else None


def check_budget(analysis: Analysis, sizes: Mapping[str, int], itemsize: int) -> int:
    """Raises CascadeError when evaluating at ``sizes`` would exceed the memory limit; returns
    the bytes the tensors take."""
    try:
        return _check(analysis, sizes, itemsize)
    except CascadeError as exc:
        raise exc.with_source(analysis.cascade.source) from None


def _check(analysis: Analysis, sizes: Mapping[str, int], itemsize: int) -> int:
    limit = max_memory.get()
    total = 0
    for tensor in analysis.shapes:
        shape = tensor_shape(analysis, tensor, sizes)
        if len(shape) > MAX_AXES:
            raise CascadeError(f"tensor {tensor} has {len(shape)} axes; the interpreter supports "
                               f"at most {MAX_AXES}", _span_of(analysis, tensor),
                               "use fewer ranks per tensor")
        need = math.prod(shape) * itemsize
        if need > limit:
            raise _refuse(f"tensor {tensor}", need, shape, itemsize, _span_of(analysis, tensor),
                          limit)
        total += need
    if total > limit:
        raise CascadeError(f"the tensors of the cascade need {format_bytes(total)} together, more "
                           f"than the limit of {format_bytes(limit)}",
                           hint="use smaller sizes (--set P=...) or raise --max-memory")
    for einsum in analysis.cascade.einsums:
        space = einsum.iteration_space
        if len(space) > MAX_AXES:
            raise CascadeError(f"{einsum.name}: {len(space)} index variables; the interpreter "
                               f"supports at most {MAX_AXES}", einsum.span,
                               "split it into Einsums over fewer index variables")
        if einsum.reducer in (None, "sum"):
            continue  # contractions go through np.einsum without the iteration space
        shape = tuple(sizes[var.upper()] for var in space)
        need = math.prod(shape) * itemsize
        if need > limit:
            raise _refuse(f"the iteration space of {einsum.name}", need, shape, itemsize,
                          einsum.span, limit)
    return total
