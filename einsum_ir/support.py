"""Constructs of the language that a back end cannot lower yet, refused at its entry point with
an error located at the construct (file:line:col), never a traceback deeper in."""
from __future__ import annotations

import math

from .errors import CascadeError
from .exprs import product_factors
from .ir import Access, Binary, Cascade, Num, walk
from .sizes import real_params


def refuse_data_dependent(cascade: Cascade, backend: str) -> None:
    """Predicates over tensor values (``where S[p,m] > 0``) and gathers through index tensors
    (``K[b,h,Idx[b,h,p,j],e]``): the interpreter evaluates them; ``backend`` refuses."""
    for einsum in cascade.einsums:
        for node in walk(einsum.where) if einsum.where is not None else ():
            if isinstance(node, Access):
                raise CascadeError(f"the {backend} does not support predicates over tensor "
                                   f"values (a data-dependent mask reading {node.tensor}) yet",
                                   node.span, "evaluate with the interpreter (cascade eval)",
                                   source=cascade.source)
        for access in (einsum.output, *einsum.reads()):
            for index in access.indices:
                inner = next((n for n in walk(index) if isinstance(n, Access)), None)
                if inner is not None:
                    raise CascadeError(f"the {backend} does not support gathers through index "
                                       f"tensors ({access.tensor}[..{inner.tensor}[..]..]) yet",
                                       inner.span, "evaluate with the interpreter (cascade eval)",
                                       source=cascade.source)


def refuse_unsupported(cascade: Cascade, backend: str, *, real: bool = True,
                       empty: bool = True, data: bool = True) -> None:
    """Raises for the first construct ``backend`` does not handle: a data-dependent mask or a
    gather (with ``data``), a real parameter (``param CAP = 30.0``, with ``real``) or an output's
    declared empty value (``empty -inf``, with ``empty``)."""
    if data:
        refuse_data_dependent(cascade, backend)
    if real:
        for decl in cascade.sizes:
            if decl.name in real_params(cascade):
                raise CascadeError(f"the {backend} does not support real parameters yet "
                                   f"(param {decl.name})", decl.span,
                                   "evaluate with the interpreter (cascade eval), or make the "
                                   "parameter an integer", source=cascade.source)
    if empty:
        for decl in cascade.outputs:
            if decl.empty != 0:
                raise CascadeError(f"the {backend} writes empty points as 0; an output's empty "
                                   f"value ({decl.name} ... empty) is not supported yet",
                                   decl.span, "evaluate with the interpreter (cascade eval), or "
                                   "drop the empty clause", source=cascade.source)


def refuse_infinite_factors(cascade: Cascade, backend: str) -> None:
    """``inf * X``: the language makes ``0 * inf`` 0 (a mask by infinity), IEEE code gives NaN."""
    for einsum in cascade.einsums:
        for node in walk(einsum.body):
            if not (isinstance(node, Binary) and node.op == "*"):
                continue
            for factor in product_factors(node).factors:
                if isinstance(factor.expr, Num) and isinstance(factor.expr.value, float) \
                        and math.isinf(factor.expr.value) and not factor.divisor:
                    raise CascadeError(f"the {backend} does not yet give 0 * inf = 0: a product "
                                       "with an infinite constant is not supported", node.span,
                                       "mask with a where clause instead (where Mask[p,m] == 0), "
                                       "or evaluate with the interpreter", source=cascade.source)
