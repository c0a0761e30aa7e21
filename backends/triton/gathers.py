"""The host's check of gather indices before a launch, as the interpreter checks them
(einsum_ir.data_masks.gather_index): an index tensor that is an input and indexes an axis on its
own (``K[Idx[p,j], e]``) must hold integers inside that axis, else the call raises a located
CascadeError. In the kernel every gather is masked to the axis anyway (backends/triton/data.py):
an index computed by the cascade, or one combined with index arithmetic (``Idx[p,j] * W + w``),
that falls outside reads an empty point there instead of raising."""
from __future__ import annotations

from functools import lru_cache

from einsum_ir.data_masks import reads_tensors
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Access, Cascade, walk


@lru_cache(maxsize=256)  # called before every launch: the cascade's walk is done once
def checked_gathers(cascade: Cascade) -> tuple:
    """``(index access, gathered tensor, axis, rank)`` for each gather whose index is an input's
    bare access and whose gathered tensor is an input."""
    out = {}
    for e in cascade.einsums:
        for node in (n for x in (e.body, e.where) if x is not None for n in walk(x)):
            decl = cascade.input(node.tensor) if isinstance(node, Access) else None
            if decl is None:
                continue
            for axis, index in enumerate(node.indices):
                if isinstance(index, Access) and cascade.input(index.tensor) is not None \
                        and reads_tensors(index):
                    out.setdefault((index.tensor, node.tensor, axis),
                                   (index, node.tensor, axis, decl.ranks[axis]))
    return tuple(out.values())


def check_gather_indices(cascade: Cascade, sizes: dict, tensors: dict) -> None:
    """Raises where an input index tensor holds a value that is not a position of its axis."""
    for index, tensor, axis, rank in checked_gathers(cascade):
        values = tensors[index.tensor]
        extent = int(sizes[rank])
        bad = (values < 0) | (values >= extent) | (values != values.round())
        if bool(bad.any()):
            value = float(values[bad].flatten()[0])
            raise CascadeError(f"{tensor}: index {value:g} from {index.tensor} is not a position "
                               f"of axis {axis + 1} (extent {extent})", index.span,
                               "a gather's positions must be integers within the axis it indexes",
                               source=cascade.source)
