"""Target-free analyses of a cascade: existence (masks), work, pass count, footprint, and the
operation classes they count in."""
from .footprint import Footprint, footprint
from .opclasses import OP_CLASSES, einsum_profile, expr_ops
from .passcount import PassReport, count_passes, default_rank
from .work import WorkReport, count_work

__all__ = ["OP_CLASSES", "Footprint", "PassReport", "WorkReport", "count_passes", "count_work",
           "default_rank", "einsum_profile", "expr_ops", "footprint"]
