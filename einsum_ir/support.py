"""Constructs of the language that a back end cannot lower yet, refused at its entry point with
an error located at the construct (file:line:col), never a traceback deeper in."""
from __future__ import annotations

import math

from .errors import CascadeError
from .exprs import product_factors
from .ir import Binary, Cascade, Num, walk


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
