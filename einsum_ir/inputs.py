"""The inputs of a cascade: their shapes at given sizes, seeded random values, checked arrays."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import CascadeError
from .ir import Cascade
from .labelled import ensure_fits


def input_shapes(cascade: Cascade, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    return {d.name: tuple(sizes[r] for r in d.ranks) for d in cascade.inputs}


def random_inputs(cascade: Cascade, sizes: Mapping[str, int], seed: int = 0,
                  dtype=np.float64) -> dict[str, np.ndarray]:
    if seed < 0:
        raise CascadeError(f"the seed must be a non-negative integer, got {seed}",
                           hint="use --seed 0 or any positive integer")
    rng = np.random.default_rng(seed)
    shapes = input_shapes(cascade, sizes)
    for name, shape in shapes.items():
        ensure_fits(shape, np.dtype(dtype).itemsize, f"input {name}", cascade.input(name).span)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}


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
