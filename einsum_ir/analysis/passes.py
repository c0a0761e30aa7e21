"""Former name of :mod:`einsum_ir.analysis.passcount` (the pass *count*, not rewrite passes)."""
from .passcount import PassCost, PassReport, count_passes, covering_ranks, default_rank  # noqa: F401
