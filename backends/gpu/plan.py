"""The plan of a lowering: roles of the index variables, tiles, loops and phases.

Shared by the Triton code generator (which renders the plan) and the GPU cost model (which prices
it); nothing here writes code. Roles: ranks that lead the inputs' layouts form the launch grid
(``batch``); the last axes of the inputs and outputs are *full* tiles; the rank the reductions and
recurrences walk is *streamed* by a loop; the remaining un-reduced rank is the *row* tile and the
remaining reduced one the *column* tile. The :class:`Planner` puts every recurrence group and every
reduction over the streamed rank into a loop level (a value needed after the reduction it depends
on is finished gets a later loop) and into a phase (reductions that do not involve the row rank go
to a first kernel whose results are written to scratch memory).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Callable

from einsum_ir.errors import CascadeError
from einsum_ir.exprs import rank_root
from einsum_ir.autodiff.online import rescaled_maxes
from einsum_ir.data_masks import reads_tensors
from einsum_ir.ir import Access, Cascade, Num, index_vars, walk
from einsum_ir.passes import Prepared
from einsum_ir.sizes import resolve_sizes
from einsum_ir.verifier import Analysis

from .layout import Limit

# the refusal that rows past the first on the grid avoid (Config.grid_rows, Limit.ROW_RANKS)
ROW_RANKS = "the Triton lowering tiles one rank per program besides the streamed one"


def _err(msg, node=None, hint=None, reason: Limit | None = None):
    return CascadeError(msg, getattr(node, "span", None), hint, reason=reason)


def pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class Config:
    """Tile sizes and launch parameters (the GPU mapping's choices)."""

    block_r: int = 64
    block_c: int = 64
    num_warps: int = 4
    num_stages: int = 2
    scan: bool = True  # running sums of independent increments: all steps in parallel
    row_grid: bool = False  # the row rank on the grid, one row per program (where a value
    # over the row tile would span three tile ranks: a top-k count, a block pooling)
    grid_rows: bool = False  # rows past the first on the grid: one program per combination
    # of their indices, each tiling the first row rank (where a cascade has several)
    stored: frozenset = frozenset()  # inputs an earlier kernel of a program wrote: in fp32
    # whatever the dtype of the other inputs (backends/triton/program.py)
    tile_ranks: int = 2  # the most tile ranks a value may span (3: see with_3d_tiles)

    def with_3d_tiles(self) -> "Config":
        """The mapping with values over three tile ranks: the row and streamed blocks at most
        16 (tl.dot's least), so a 3-D tile over them and a whole tile stays in registers."""
        return replace(self, tile_ranks=3, block_r=min(self.block_r, 16),
                       block_c=min(self.block_c, 16))


class Role(str, Enum):
    """What an index variable is to the kernel (compares equal to its value)."""

    BATCH = "batch"  # a grid axis: one value per program
    FULL = "full"  # a whole tile (the head dimensions)
    ROW = "row"  # the row tile of a program (queries)
    CHUNK_ROW = "chunk_row"  # the rows of a chunk of a streamed split
    COL = "col"  # a reduced tile within a step
    STREAM_PLAIN = "stream_plain"  # the streamed rank, tiled by the loop
    STREAM_OUTER = "stream_outer"  # the outer index of a streamed split, stepped by the loop
    RESHAPE = "reshape"  # the streamed rank seen whole (outer * inner + inner)

    __str__ = str.__str__
    __format__ = str.__format__


@dataclass(frozen=True)
class Roles:
    batch: list  # grid vars in order
    full: list  # full-tile vars
    stream_rank: str | None
    role: dict  # var -> role string
    block: dict  # var -> (block constexpr name, block size, extent code, extent is runtime)
    row: str | None


class Lowering:
    def __init__(self, cascade: Cascade, sizes: dict, config: Config, facts: Analysis,
                 block_name: Callable[[str], str] = lambda rank: f"BLOCK_{rank}"):
        self.c = cascade
        self.a: Analysis = facts
        self.sizes = dict(sizes)
        self.cfg = config
        self.defs = {}
        for e in cascade.einsums:
            self.defs.setdefault(e.name, []).append(e)
        self.inputs = {d.name: d for d in cascade.inputs}
        self.outputs = {d.name: d for d in cascade.outputs}
        self.block_name = block_name
        # the running maxes whose step difference is only an online softmax's rescale exponent
        self.rescaled = rescaled_maxes(cascade, facts.recurrences)
        self._roles()

    def sole_definition(self, name: str, node=None):
        """The one Einsum defining intermediate ``name``. A tensor of several definitions that
        the analysis did not take as a loop-carried recurrence (an initial value plus an update
        read at a reversed step, ``R[M1 - 1 - m1]``) is refused at ``node``: one kernel inlines
        or schedules a read through a single definition."""
        defs = self.defs[name]
        if len(defs) != 1:
            raise _err(f"{name} has {len(defs)} definitions (an initial value and an update) "
                       f"that the single-kernel Triton lowering does not run as a recurrence "
                       f"loop, so it cannot read {name} here",
                       node if node is not None else defs[0])
        return defs[0]

    # ----------------------------------------------------------------- sizes and ranks
    def split_outer_of(self, rank):
        return next((s for s in self.c.splits if s.outer == rank), None)

    def split_inner_of(self, rank):
        return next((s for s in self.c.splits if s.inner == rank), None)

    def all_vars(self):
        seen = {}
        for e in self.c.einsums:
            for v in e.iteration_space:
                seen.setdefault(v, e)
        return seen

    def _stream_rank(self, rec_vars, reduced, full, batch) -> str | None:
        """The rank the loops walk: the split of the recurrences' index, else the one rank the
        reductions share besides the grid and the full tiles."""
        if rec_vars:
            update = next(iter(self.a.recurrences.values())).update
            if len(rec_vars) > 1:
                raise _err("recurrences over more than one index (" + ", ".join(sorted(rec_vars))
                           + ") are outside the Triton lowering's reach", update)
            (rv,) = rec_vars
            split = self.split_outer_of(rv.upper())
            # a recurrence over a plain rank (tokens) steps that rank one index at a time
            return split.rank if split is not None else rv.upper()
        cands = {v.upper() for v in reduced if v not in full and v not in batch}
        cands = {r for r in cands if not self.split_inner_of(r)} or cands
        if len(cands) > 1:
            # located at the first reduction over a second of them (the one that conflicts)
            over = [(e, {v.upper() for v in e.reduced} & cands) for e in self.c.einsums]
            first = next(r for e, rs in over for r in sorted(rs))
            e = next((e for e, rs in over if rs - {first}), None) or \
                next(e for e in self.c.einsums if e.reduced)
            raise _err("reductions over several sequence ranks (" + ", ".join(sorted(cands))
                       + ") are outside the Triton lowering's reach", e)
        return next(iter(cands)) if cands else None

    def _roles(self):
        c = self.c
        inputs2 = [d for d in c.inputs if len(d.axes) >= 2]
        batch_ranks, full_ranks = set(), set()
        for d in inputs2:
            full_ranks.add(rank_root(self.c, d.ranks[-1]))
            batch_ranks.update(rank_root(self.c, r) for r in d.ranks[:-2])
        for d in c.outputs:
            full_ranks.add(rank_root(self.c, d.ranks[-1]))
        vars_ = self.all_vars()
        reduced = set()
        for e in c.einsums:
            reduced.update(e.reduced)
        rec_vars = {r.var for r in self.a.recurrences.values()}
        # the rank a recurrence steps is walked by its loop, even where it ends an input's layout
        stepped = {rank_root(self.c, v.upper()) for v in rec_vars}
        full_ranks -= stepped
        batch_ranks -= stepped
        # an alias of a whole-tile or grid rank is one too; an alias of the streamed rank is
        # its own loop dimension (keys m over P: p stays the row tile)
        full = [v for v in vars_ if rank_root(self.c, v.upper()) in full_ranks]
        # a summed rank is never a grid axis, even where it leads an input's layout: one value
        # per program cannot be reduced over (``sum[p] Q[p,g,cg] * K[p,g,c2]``)
        batch = [v for v in vars_ if rank_root(self.c, v.upper()) in batch_ranks
                 and v not in full and v not in reduced]
        gridded = list(vars_) if self.cfg.row_grid else _gather_rows(c)
        batch += [v for v in gridded if v in vars_ and v not in full + batch
                  and v not in reduced and v not in rec_vars]
        stream = self._stream_rank(rec_vars, reduced, full, batch)
        role, block = {}, {}
        rows = []
        for v in vars_:
            rank = v.upper()
            if v in batch:
                role[v] = Role.BATCH
            elif v in full:
                role[v] = Role.FULL
                ext = self.sizes[rank]
                block[v] = (self.block_name(rank), pow2(max(ext, 16)), str(ext), False)
            elif v in rec_vars:
                role[v] = Role.STREAM_OUTER
            elif rank == stream and not self.split_inner_of(rank):
                role[v] = Role.STREAM_PLAIN if v in reduced else Role.RESHAPE
                if v in reduced:
                    block[v] = (self.block_name(rank), self.cfg.block_c, rank, True)
            elif v in reduced:
                role[v] = Role.COL
                ext = self.sizes[rank]
                block[v] = (self.block_name(rank), pow2(max(ext, 16)), str(ext), False)
            else:
                role[v] = Role.ROW
                rows.append(v)
        row = self._one_row(rows, role, batch, vars_)
        if row is not None:
            rank = row.upper()
            s = self.split_inner_of(rank)
            if s is not None and s.rank == stream:
                role[row] = Role.CHUNK_ROW
                ext = self.sizes[rank]
                block[row] = (self.block_name(rank), pow2(max(ext, 16)), str(ext), False)
            else:
                block[row] = (self.block_name(rank), self.cfg.block_r, rank, True)
        self.roles = Roles(batch, full, stream, role, block, row)
        self._check_whole_rank_alone(role)
        # reductions over the streamed rank: loop-carried accumulators
        self.stream_reductions = tuple(e for e in c.einsums if e.reducer and any(
            role.get(v) == "stream_plain" for v in e.reduced))
        self.stream_red_names = frozenset(e.name for e in self.stream_reductions)

    def _check_whole_rank_alone(self, role: dict) -> None:
        """A streamed rank seen whole (``m`` as ``m1 * M0 + m0`` of the step's chunk) is a
        reshape of the split's parts; an Einsum that names ``m`` beside ``m1`` or ``m0`` iterates
        them independently, and the chunk would give it only the diagonal."""
        for e in self.c.einsums:
            space = set(e.iteration_space)
            for v in space:
                split = next((s for s in self.c.splits if s.rank == v.upper()), None) \
                    if role.get(v) == Role.RESHAPE else None
                parts = split and space & {split.outer.lower(), split.inner.lower()}
                if parts:
                    raise _err(f"{e.name} iterates {v} beside {', '.join(sorted(parts))} of its "
                               f"split: the Triton lowering walks {v} as "
                               f"{split.outer.lower()} * {split.inner} + {split.inner.lower()} "
                               f"within a step", e)

    def _one_row(self, rows: list, role: dict, batch: list, vars_: dict) -> str | None:
        """The row rank the programs tile. With ``Config.grid_rows`` the others go on the grid
        (``role`` and ``batch`` updated); without it, a second row rank is refused."""
        self.row_vars = tuple(rows)
        if len(rows) > 1 and not self.cfg.grid_rows:
            raise _err(f"more than one row rank ({', '.join(rows)}): {ROW_RANKS}",
                       vars_[rows[1]], reason=Limit.ROW_RANKS)
        for v in rows[1:]:
            role[v] = Role.BATCH
            batch.append(v)
        return rows[0] if rows else None

    def feeds_max(self, name: str, seen=None) -> bool:
        """Whether a max reduction reads ``name`` through element-wise Einsums."""
        seen = seen if seen is not None else set()
        if name in seen:
            return False
        seen.add(name)
        for e in self.c.einsums:
            if any(acc.tensor == name for acc in e.reads()):
                if e.reducer == "max":
                    return True
                if e.reducer is None and e.name not in self.a.recurrences and \
                        self.feeds_max(e.name, seen):
                    return True
        return False

    # axis ordering: row, column, full
    def axis_key(self, label):
        r = self.roles.role.get(label)
        order = {"row": 0, "chunk_row": 0, "col": 1, "stream_plain": 1, "full": 2}
        return (order.get(r, 3), label)

    def order(self, axes) -> tuple:
        return tuple(sorted(set(axes), key=self.axis_key))

    def is_baked(self, name: str) -> bool:
        """Sizes baked into the kernel: parameters, full dims, tile (split inner) sizes."""
        d = self.c.size_decl(name)
        if d is not None and not d.is_rank:
            return True
        if self.split_outer_of(name):
            return False
        if not any(rank_root(self.c, r) == rank_root(self.c, name) for t in self.c.inputs
                   for r in t.ranks) and (d is None or isinstance(d.default, Num)):
            return True  # a plain rank no input's shape gives (only inside a derived rank)
        vars_with = [v for v, r in self.roles.role.items() if v.upper() == name]
        if any(self.roles.role[v] in ("full", "col", "chunk_row") for v in vars_with):
            return True
        return bool(self.split_inner_of(name))


def stream_split_inner(prepared: Prepared, facts=None) -> str | None:
    """The tile rank of a split whose outer rank is stepped by a recurrence (``M0``, ``C``)."""
    cascade = prepared.cascade
    for rec in (facts or prepared.facts).recurrences.values():
        split = next((s for s in cascade.splits if s.outer == rec.var.upper()), None)
        if split is not None:
            return split.inner
    return None


def row_ranks(prepared: Prepared, sizes: dict, config: Config) -> int:
    """How many row ranks the roles give the prepared cascade at resolved ``sizes`` (the fact
    :meth:`backends.gpu.layout.RowLayout.up_front` decides from). Where the roles refuse the
    cascade for another reason, 1: tiled rows then refuse it the same way."""
    try:
        low = Lowering(prepared.cascade, sizes, replace(config, grid_rows=True), prepared.facts)
    except CascadeError:
        return 1
    return len(low.row_vars)


def lowering_sizes(prepared: Prepared, sizes: dict, block_c: int,
                   user_params: dict | None = None, facts=None) -> dict:
    """Every size of the prepared cascade for a mapping. The tile of a streamed split is the
    mapping's column tile, unless the user set it or the split is written in the cascade."""
    low_c = prepared.cascade
    overrides = {k: v for k, v in sizes.items() if low_c.size_decl(k) is not None}
    inner = stream_split_inner(prepared, facts)
    if inner is not None and inner not in (user_params or {}):
        made = prepared.changed and prepared.source.size_decl(inner) is None  # by the rewrite
        overrides[inner] = block_c if made else overrides.get(inner, block_c)
    return resolve_sizes(low_c, overrides)


def _gather_rows(cascade: Cascade) -> list:
    """Index variables that a gather's index reads outside the reduced ones (``p`` of
    ``K[Idx[p,j], e]``): one per program (a grid axis), so that the gathered rows (``j``) and
    the gathered tensor's own axes (``e``) make the 2-D tile."""
    found = {}
    for e in cascade.einsums:
        for node in (n for x in (e.body, e.where) if x is not None for n in walk(x)):
            if isinstance(node, Access):
                for index in node.indices:
                    if reads_tensors(index):
                        found.update(dict.fromkeys(v for v in index_vars(index)
                                                   if v not in e.reduced))
    return list(found)
