"""The state of one cascade while the strategy draws it: sizes, tensors, Einsums, and how to read.

Everything is built as IR (``einsum_ir.ir``) and printed with the project's printer at the end,
so the reproducer of any failure is a plain ``.ein`` file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from einsum_ir.ir import Access, Binary, Einsum, Expr, Name, Num, index_vars

from .intervals import INPUT, Iv

# Canonical axis order of every tensor the strategy declares or defines.
VAR_ORDER = ("h", "hk", "p", "m", "m1", "m0", "r", "e", "f")


def name(n: str) -> Name:
    return Name(n)


def num(v) -> Num:
    return Num(v)


def binary(op: str, a: Expr, b: Expr) -> Binary:
    return Binary(op, a, b)


def ordered(vars_) -> tuple[str, ...]:
    vs = set(vars_)
    return tuple(v for v in VAR_ORDER if v in vs)


@dataclass
class Tensor:
    axes: tuple[str, ...]
    iv: Iv
    is_input: bool = False
    consumable: bool = True  # False for values that may be -inf (read only as outputs)
    reads: int = 0
    partial: bool = False  # may have empty points (a mask, or a read past an extent, upstream)


@dataclass
class Ctx:
    sizes: dict  # base rank or parameter -> value
    derived: dict  # derived rank -> Expr of other sizes
    params: set  # names in sizes that are parameters, not ranks
    split: bool  # split M = M1 * M0
    tensors: dict = field(default_factory=dict)
    einsums: list = field(default_factory=list)
    counter: int = 0
    pending: bool = False  # a read since the last definition may meet an empty point

    # ------------------------------------------------------------------ sizes
    def extent(self, var: str) -> int:
        rank = var.upper()
        if rank in self.sizes:
            return self.sizes[rank]
        if rank == "HK":
            return self.sizes["H"] // self.sizes["G"]
        if rank == "R":
            return self.sizes["P"] + self.sizes["M"]
        if rank == "M1":
            return -(-self.sizes["M"] // self.sizes["M0"])
        raise KeyError(rank)

    def index_vars(self) -> tuple[str, ...]:
        ranks = set(self.sizes) - self.params | set(self.derived)
        if self.split:
            ranks.add("M1")
        return tuple(v for v in VAR_ORDER if v.upper() in ranks)

    def param(self, name_: str) -> Name:
        return Name(name_)

    # ------------------------------------------------------------------ tensors
    def fresh(self) -> str:
        self.counter += 1
        return f"T{self.counter}"

    def consumables(self) -> list[str]:
        return [t for t, info in self.tensors.items() if info.consumable]

    def define(self, axes, body: Expr, iv: Iv, *, reducer=None, reduced=(), where=None,
               implicit=False, consumable=True, partial: bool | None = None) -> str:
        out = self.fresh()
        self.einsums.append(Einsum(Access(out, tuple(Name(a) for a in axes)), body, reducer,
                                   tuple(reduced), where, implicit))
        if partial is None:
            partial = self.pending or where is not None
        self.pending = False
        self.tensors[out] = Tensor(tuple(axes), iv, consumable=consumable, partial=partial)
        return out

    def read_options(self, axis: str) -> list[tuple[Expr, bool]]:
        """Ways to read an axis: the plain index, or an affine expression of other indices
        (GQA's ``h / G``, a tile's ``m1*M0 + m0``, a relative position ``p - m + M``, a reversal
        ``M - 1 - m``, a shift ``m + 1`` that reads past the end). Each comes with whether it can
        read outside the tensor (an empty point)."""
        opts = [(Name(axis), False)]
        have = set(self.index_vars())
        if axis == "hk" and "h" in have:
            opts += [(binary("/", Name("h"), self.param("G")), False)] * 3
        if axis == "r" and {"p", "m"} <= have:
            opts += [(binary("+", binary("-", Name("p"), Name("m")), Name("M")), False)] * 4
        if axis == "m" and self.split:
            opts += [(self.tile_position(), self.sizes["M"] % self.sizes["M0"] != 0)] * 2
        if axis == "m":
            opts.append((binary("-", binary("-", Name("M"), num(1)), Name("m")), False))
            opts.append((binary("+", Name("m"), num(1)), True))
        if axis == "p":
            opts.append((binary("/", Name("p"), num(2)), False))
        return opts

    @staticmethod
    def tile_position() -> Expr:
        return binary("+", binary("*", Name("m1"), Name("M0")), Name("m0"))

    def read(self, draw, tensor: str, fixed: dict | None = None) -> tuple[Expr, Iv]:
        """An access of ``tensor`` (each axis plain or affine, or as ``fixed`` says), scaled
        into [-CAP, CAP]."""
        from .intervals import CAP

        info = self.tensors[tensor]
        info.reads += 1
        self.pending = self.pending or info.partial
        indices = []
        for axis in info.axes:
            if fixed and axis in fixed:
                expr, outside = fixed[axis]
            else:
                expr, outside = draw(st.sampled_from(self.read_options(axis)))
            self.pending = self.pending or outside
            indices.append(expr)
        access: Expr = Access(tensor, tuple(indices))
        iv = info.iv
        if iv.mag > CAP:
            k = 1
            while iv.mag / 2 ** k > CAP:
                k += 1
            access = binary("*", access, num(2.0 ** -k))
            iv = Iv(iv.lo / 2 ** k, iv.hi / 2 ** k)
        return access, iv

    def pick(self, draw, *, need=None) -> str | None:
        """A consumable tensor, preferring ones nobody has read yet (so the cascade stays
        connected); ``need`` filters by axes."""
        pool = [t for t in self.consumables() if need is None or need(self.tensors[t])]
        if not pool:
            return None
        fresh = [t for t in pool if self.tensors[t].reads == 0]
        return draw(st.sampled_from(fresh * 3 + pool if fresh else pool))

    def add_input(self, axes) -> str:
        n = f"I{sum(1 for t in self.tensors.values() if t.is_input) + 1}"
        self.tensors[n] = Tensor(tuple(axes), INPUT, is_input=True)
        return n


def body_vars(*exprs: Expr | None) -> tuple[str, ...]:
    seen: set = set()
    for e in exprs:
        seen.update(index_vars(e))
    return ordered(seen)
