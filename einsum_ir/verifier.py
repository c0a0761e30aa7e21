"""Static checks of a cascade, and the facts later stages derive from it.

``verify`` raises CascadeError (with the span of the offending text) for the first mistake it
finds. ``analyze`` returns the derived structure that the interpreter, the analyses and the
backends share (:class:`Analysis`: tensor shapes, recurrences and the evaluation order). The
checks live in :mod:`einsum_ir.checks`, the derivations in :mod:`einsum_ir.facts`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from . import checks, facts
from .errors import CascadeError
from .facts import Analysis, Axis, Recurrence, Step
from .ir import Cascade


def analyze(cascade: Cascade) -> Analysis:
    """Verifies ``cascade`` and returns its derived structure, computed once per cascade value.

    The cache is keyed by equality (plus the name and source text, which equality ignores and
    error messages use), least recently used first out: an equal cascade built elsewhere shares
    the facts, so consumers relate the facts' Einsums to theirs by :class:`~einsum_ir.ir.EinsumId`.
    """
    key = (cascade, cascade.name, cascade.source)
    hit = _FACTS.get(key)
    if hit is not None:
        _FACTS.move_to_end(key)
        if hit.cascade is not cascade:  # the caller's own cascade (its spans) in the facts
            hit = _FACTS[key] = replace(hit, cascade=cascade)
        return hit
    try:
        derived = _derive(cascade)
    except CascadeError as exc:
        raise exc.with_source(cascade.source) from None
    _FACTS[key] = derived
    if len(_FACTS) > _FACTS_LIMIT:
        _FACTS.popitem(last=False)
    return derived


_FACTS: OrderedDict[tuple[Cascade, str, str | None], Analysis] = OrderedDict()
_FACTS_LIMIT = 256


def verify(cascade: Cascade) -> Cascade:
    analyze(cascade)
    return cascade


def _derive(cascade: Cascade) -> Analysis:
    """The checks in order, each followed by the derivation the next one needs."""
    checks.check_declarations(cascade)
    checks.check_definitions(cascade)
    shapes, recurrences = facts.shapes_and_recurrences(cascade)
    for einsum in cascade.einsums:
        checks.check_einsum(cascade, shapes, einsum)
    checks.check_outputs(cascade, shapes)
    deps = facts.dependences(cascade, recurrences)
    checks.check_dependences(cascade, deps, recurrences)
    return Analysis(cascade, shapes, recurrences, facts.evaluation_steps(cascade, deps, recurrences))


__all__ = ["Analysis", "Axis", "Recurrence", "Step", "analyze", "verify"]
