"""Target-free analyses of a cascade: existence (masks), work, pass count, footprint."""
from .work import OP_CLASSES, WorkReport, count_work

__all__ = ["OP_CLASSES", "WorkReport", "count_work"]
