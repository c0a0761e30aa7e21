"""The ways the Triton backend lowers a cascade, in the order it tries them, and what each gave.

First with tiled rows and 2-D tiles: one kernel, else a kernel program (several kernels through
global memory, backends/triton/program.py). Then both again as last resorts, each keeping what
lowered before its code: with rows on the grid where the plan's row layout says so
(backends/gpu/layout.py), then with values over three tile ranks (small blocks; rows on the grid
as the layout says). :data:`STRATEGIES` is that order; ``CompiledCascade.kernel`` walks it in one
place and records every attempt (:class:`Tried`).
"""
from __future__ import annotations

from dataclasses import dataclass

from backends.gpu.layout import Limit
from backends.gpu.plan import Config
from einsum_ir.errors import CascadeError

TILES_3D_NOTE = "values over three tile ranks (3-D tiles): row and streamed blocks of at most 16"


@dataclass(frozen=True)
class Resort:
    """A layout the lowering may take: rows on the grid where the plan's row layout decides so
    (else always tiled rows), and the most tile ranks a value may span."""

    name: str
    rows_on_grid: bool
    tile_ranks: int

    def config(self, config: Config) -> Config:
        return config.with_3d_tiles() if self.tile_ranks == 3 else config

    @property
    def note(self) -> str:
        """What the mapping note adds for this layout."""
        return f"\n{TILES_3D_NOTE}" if self.tile_ranks == 3 else ""


TILED = Resort("tiled rows, 2-D tiles", rows_on_grid=False, tile_ranks=2)
ROW_GRID = Resort("rows on the grid", rows_on_grid=True, tile_ranks=2)
TILES_3D = Resort("3-D tiles", rows_on_grid=True, tile_ranks=3)
# the last resorts by the names a harness reproducer asks for (``# lowering: tiles3d``)
LAST_RESORTS = {"row_grid": ROW_GRID, "tiles3d": TILES_3D}


@dataclass(frozen=True)
class Strategy:
    resort: Resort
    program: bool  # several kernels (a kernel program) rather than one

    @property
    def name(self) -> str:
        return f"{'a kernel program' if self.program else 'one kernel'} ({self.resort.name})"


STRATEGIES = tuple(Strategy(r, p) for r in (TILED, ROW_GRID, TILES_3D) for p in (False, True))


def strategies(resort: Resort | None, multi: bool) -> tuple[Strategy, ...]:
    """What to try, in order: every strategy; only those of ``resort`` where one is asked for (a
    reproducer, or a group of a kernel program, which lowers in its program's); no kernel
    program where ``multi`` is off (a group: one kernel, tiled unless its program's resort)."""
    if resort is None and not multi:
        resort = TILED
    return tuple(s for s in STRATEGIES
                 if (resort is None or s.resort == resort) and (multi or not s.program))


@dataclass(frozen=True)
class Attempt:
    strategy: Strategy
    refusal: CascadeError | None = None  # None: it lowered

    def describe(self) -> str:
        if self.refusal is None:
            return f"{self.strategy.name}: lowered"
        why = f", {self.refusal.reason.value}" if self.refusal.reason is not None else ""
        return f"{self.strategy.name}: refused{why} ({self.refusal.message})"


@dataclass(frozen=True)
class Tried:
    """The attempts of one compile, in order; the last one lowered, unless none did."""

    attempts: tuple[Attempt, ...] = ()

    @property
    def lowered(self) -> Strategy | None:
        last = self.attempts[-1] if self.attempts else None
        return last.strategy if last is not None and last.refusal is None else None

    def refusal_of(self, strategy: Strategy) -> CascadeError | None:
        return next((a.refusal for a in self.attempts if a.strategy == strategy), None)

    def then(self, attempt: Attempt) -> "Tried":
        return Tried(self.attempts + (attempt,))

    def describe(self) -> str:
        return "; ".join(a.describe() for a in self.attempts)

    def final_refusal(self) -> CascadeError:
        """What a cascade no strategy lowers is refused with: the first resort's last refusal,
        unless it was a tile-ranks limit, which the later resorts went past: then the last
        attempt's, which says what is left."""
        resort = self.attempts[0].strategy.resort
        first = [a for a in self.attempts if a.strategy.resort == resort][-1].refusal
        return self.attempts[-1].refusal if first.reason is Limit.TILE_RANKS else first
