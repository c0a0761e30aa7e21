"""What evaluates a cascade inside a native op: the Triton backend, or the reference interpreter.

:func:`engine_for` picks Triton when the backend lowers the cascade (tried once, at the cascade's
default sizes, when the op is made, so that nothing is generated inside a traced call), in one
kernel program or, where one refuses, in several (``backends/triton/program.py``: most gradient
cascades, whose dQ and dK/dV halves stream different ranks), else the reference interpreter
(numpy, on host copies of the tensors, in their dtype). Either way
:meth:`Engine.__call__` maps tensors by name to tensors by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from einsum_ir import Cascade, resolve_sizes
from einsum_ir.errors import CascadeError

TRITON = "triton"
REFERENCE = "reference"


def sizes_from(cascade: Cascade, tensors: dict, params: dict) -> dict[str, int]:
    """Every rank and parameter, the ranks read off the input tensors' shapes."""
    return resolve_sizes(cascade, overrides_from(cascade, tensors, params))


def overrides_from(cascade: Cascade, tensors: dict, params: dict) -> dict[str, int]:
    """The declared sizes the input tensors' shapes and ``params`` set."""
    sizes: dict[str, int] = {}
    for d in cascade.inputs:
        shape = tuple(tensors[d.name].shape)
        if len(shape) != len(d.axes):
            raise CascadeError(f"{d.name} must have {len(d.axes)} dimensions "
                               f"({', '.join(d.ranks)}), got shape {shape}")
        for rank, n in zip(d.ranks, shape, strict=True):
            if sizes.setdefault(rank, int(n)) != int(n):
                raise CascadeError(f"{d.name}: rank {rank} is {sizes[rank]} elsewhere, got {n}")
    sizes.update(params)
    return {k: v for k, v in sizes.items() if cascade.size_decl(k) is not None}


@dataclass
class Engine:
    """Evaluates one cascade; ``kind`` is TRITON or REFERENCE, ``why`` says why it was chosen."""

    cascade: Cascade
    params: dict
    kind: str
    why: str
    compiled: object = field(default=None, repr=False)

    def __call__(self, tensors: dict) -> dict:
        if self.kind == TRITON:
            try:
                return self.compiled(**tensors)
            except CascadeError as exc:  # these sizes do not lower: keep going, and say so
                self.kind, self.why = REFERENCE, f"the Triton lowering refused: {exc.message}"
        return self._reference(tensors)

    def _reference(self, tensors: dict) -> dict:
        import numpy as np
        import torch

        from einsum_ir import evaluate

        first = next(iter(tensors.values()))
        dtype = np.float64 if first.dtype == torch.float64 else np.float32
        arrays = {k: v.detach().cpu().numpy().astype(dtype) for k, v in tensors.items()}
        out = evaluate(self.cascade, arrays, overrides_from(self.cascade, tensors, self.params),
                       dtype=dtype)
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device=first.device,
                                                                dtype=first.dtype)
                for k, v in out.items()}

    def warm(self, tensors: dict) -> None:
        """Generates and loads the Triton kernels for these tensors' sizes and dtype now."""
        if self.kind != TRITON:
            return
        sizes = self.compiled.sizes_of(tensors)
        dtype = str(next(iter(tensors.values())).dtype).replace("torch.", "")
        try:
            self.compiled.kernel(sizes, dtype)
        except CascadeError as exc:
            self.kind, self.why = REFERENCE, f"the Triton lowering refused: {exc.message}"

    def describe(self) -> str:
        what = "Triton kernels" if self.kind == TRITON else "the reference interpreter (numpy)"
        return f"{what} ({self.why})"


def engine_for(cascade: Cascade, params: dict, backend: str) -> Engine:
    """An engine for ``cascade``: Triton where ``backend`` asks for it and the cascade lowers."""
    if backend not in (TRITON, REFERENCE):
        raise CascadeError(f"unknown backend {backend!r}", hint="use 'triton' or 'reference'")
    if backend == REFERENCE:
        return Engine(cascade, params, REFERENCE, "asked for")
    try:
        import triton  # noqa: F401

        from backends.triton import compile_cascade

        compiled = compile_cascade(cascade, **params)
        compiled.source()  # lowers at the default sizes: a refusal shows here, not in a trace
    except ImportError:
        return Engine(cascade, params, REFERENCE, "Triton is not installed")
    except CascadeError as exc:
        return Engine(cascade, params, REFERENCE, f"the Triton lowering refused: {exc.message}")
    return Engine(cascade, params, TRITON, _how_it_lowers(compiled), compiled)


def _how_it_lowers(compiled) -> str:
    groups = getattr(compiled.last, "groups", None)  # a multi-kernel Program
    if groups is None:
        return "the cascade lowers"
    return f"the cascade lowers as {len(groups)} kernel programs"
