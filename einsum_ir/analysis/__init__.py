"""Target-free analyses of a cascade: existence (masks), work, pass count, footprint."""
from .footprint import Footprint, footprint
from .passcount import PassReport, count_passes, default_rank
from .work import OP_CLASSES, WorkReport, count_work

__all__ = ["OP_CLASSES", "Footprint", "PassReport", "WorkReport", "count_passes", "count_work",
           "default_rank", "footprint"]
