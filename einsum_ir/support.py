"""Constructs of the language that a back end cannot lower yet, refused at its entry point with
an error located at the construct (file:line:col), never a traceback deeper in."""
from __future__ import annotations

from .errors import CascadeError
from .ir import Cascade
from .sizes import real_params


def refuse_unsupported(cascade: Cascade, backend: str, *, real: bool = True,
                       empty: bool = True) -> None:
    """Raises for the first construct ``backend`` does not handle: a real parameter
    (``param CAP = 30.0``, with ``real``) or an output's declared empty value (``empty -inf``,
    with ``empty``)."""
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
