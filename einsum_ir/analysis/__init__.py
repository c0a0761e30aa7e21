"""Target-free analyses of a cascade: existence (masks), work, pass count, footprint, and the
operation classes they count in.

The names below are imported on first use, so that importing one analysis module does not import
the others (``work`` needs sympy).
"""
import importlib

# Imported now: the function shares its module's name, which a lazy lookup could not tell apart.
from .footprint import Footprint as Footprint, footprint as footprint

_WHERE = {"PassReport": "passcount", "count_passes": "passcount", "default_rank": "passcount",
          "OP_CLASSES": "opclasses", "einsum_profile": "opclasses", "expr_ops": "opclasses",
          "WorkReport": "work", "count_work": "work"}

__all__ = sorted([*_WHERE, "Footprint", "footprint"])


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
