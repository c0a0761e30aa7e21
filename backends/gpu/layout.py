"""How a lowering lays its rows out, and the typed reasons a layout is refused.

The tiled layout gives each program a tile of one row rank. Two limits of the Triton lowering
are layout limits, avoidable by putting rows on the launch grid; a refusal for one carries it as
``CascadeError.reason`` (:class:`Limit`), so that the fallback reads data, not the message:

* several row ranks (``O[p,q,f] = sum[m] A[p,m] * B[q,m] * V[m,f]``): known from the roles before
  anything is emitted, so :meth:`RowLayout.up_front` puts the rows past the first on the grid
  (``Config.grid_rows``) from the count of row ranks;
* a value spanning more tile ranks than the mapping allows (a top-k count
  ``sum[m2] S[p,m2] > S[p,m]``, a block pooling): known only once the value is built (a
  contraction that lowers to ``tl.dot`` spans fewer), so the emitter refuses it with
  ``Limit.TILE_RANKS`` and :meth:`RowLayout.avoiding` puts every row on the grid, one per program
  (``Config.row_grid``).

The steps taken are the layout's reason, recorded in order; the mapping note shows the widest.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Callable, TypeVar

from einsum_ir.errors import CascadeError

T = TypeVar("T")


class Limit(Enum):
    """What a refusal says the lowering cannot lay out (``CascadeError.reason``)."""

    TILE_RANKS = "a value spans more tile ranks than the mapping allows"
    ROW_RANKS = "more than one row rank"


class RowStep(Enum):
    """A step away from tiled rows, with the mapping note's words for it."""

    PAST_FIRST = " (rows past the first on the grid)"  # Config.grid_rows
    ALL = " (rows on the grid: one per program)"  # Config.row_grid


@dataclass(frozen=True)
class RowLayout:
    """The rows' layout: the steps away from tiled rows, in the order they were decided."""

    steps: tuple[RowStep, ...] = ()

    @staticmethod
    def up_front(row_ranks: int) -> "RowLayout":
        """The layout the roles decide: rows past the first on the grid where there are several."""
        return RowLayout((RowStep.PAST_FIRST,) if row_ranks > 1 else ())

    def avoiding(self, reason: Limit | None) -> "RowLayout | None":
        """The layout with more rows on the grid that a refusal for ``reason`` asks for, or None
        where none would avoid it."""
        if reason is Limit.TILE_RANKS and RowStep.ALL not in self.steps:
            return RowLayout(self.steps + (RowStep.ALL,))
        return None

    def config(self, config):
        """``config`` (a backends.gpu.plan.Config) with these rows on the grid."""
        return replace(config, grid_rows=config.grid_rows or RowStep.PAST_FIRST in self.steps,
                       row_grid=config.row_grid or RowStep.ALL in self.steps)

    @property
    def note(self) -> str:
        """The mapping note's words: the widest step (every row on the grid covers those past
        the first)."""
        return self.steps[-1].value if self.steps else ""


def lay_out(lower: Callable[[RowLayout], T], layout: RowLayout) -> T:
    """``lower`` at ``layout`` (the plan's, decided up front), then at each layout the typed
    reason of a refusal asks for; where none lowers, the first refusal."""
    first = None
    while layout is not None:
        try:
            return lower(layout)
        except CascadeError as refusal:
            first = first or refusal
            layout = layout.avoiding(refusal.reason)
    raise first
