"""The hypothesis strategy: random well-formed cascades at small sizes.

``cascades()`` draws a :class:`Case`: sizes (ranks 1..13, not powers of two; GQA heads
``HK = H / G``, a relative-position rank ``R = P + M``, ``split M = M1 * M0`` with ragged tails),
one to three inputs, and one to five builders (maps, contractions, reductions, softmax chains,
recurrences) whose sinks become the outputs. The cascade is built as IR and printed with the
project's printer; the text, parsed back, is what every target sees, so every failure has a
readable ``.ein`` reproducer and every error a source location.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from hypothesis import strategies as st

from einsum_ir import Cascade, analyze, format_cascade, parse
from einsum_ir.ir import Name, Num, SizeDecl, Split, TensorDecl, walk

from .builders import BUILDERS
from .context import Ctx, binary, ordered

FILE = "generated.ein"
_PARAMS = ("G", "W", "D", "CAP")


@dataclass(frozen=True)
class Case:
    """One generated cascade: its text, and the factor the simulator scales the sequence ranks by
    (its arrays are 32 and 256 PEs wide; the interpreter and Triton run at the file's sizes)."""

    text: str
    sim_scale: int = 1

    @cached_property
    def cascade(self) -> Cascade:
        cascade = parse(self.text, FILE)
        analyze(cascade)
        return cascade

    def sim_sizes(self) -> dict:
        if self.sim_scale == 1:
            return {}
        decls = {d.name: d for d in self.cascade.sizes}
        out = {}
        for rank in ("P", "M"):
            decl = decls.get(rank)
            if decl is not None and decl.is_rank:
                out[rank] = int(decl.default.value) * self.sim_scale
        return out


def _draw_sizes(draw) -> Ctx:
    sizes = {"P": draw(st.integers(1, 13)), "E": draw(st.integers(1, 6))}
    params: set = set()
    derived: dict = {}
    if draw(st.integers(0, 6)):
        sizes["M"] = draw(st.integers(1, 13))
    if draw(st.booleans()):
        sizes["F"] = draw(st.integers(1, 6))
    heads = draw(st.sampled_from(["none", "none", "plain", "gqa"]))
    if heads == "plain":
        sizes["H"] = draw(st.integers(1, 3))
    elif heads == "gqa":
        sizes["G"] = draw(st.integers(1, 3))
        sizes["H"] = sizes["G"] * draw(st.integers(1, 2))
        derived["HK"] = binary("/", Name("H"), Name("G"))
        params.add("G")
    sizes["W"] = draw(st.integers(1, 5))
    sizes["D"] = draw(st.integers(2, 3))
    params |= {"W", "D"}
    split = "M" in sizes and draw(st.integers(0, 2)) == 0
    if split:
        # Triton tiles only powers of two >= 16: a 16-wide tile, with one to three of them
        sizes["M0"] = draw(st.sampled_from([1, 2, 3, 4, 5, 16, 16]))
        if sizes["M0"] == 16:
            sizes["M"] = draw(st.integers(1, 40))
    if "M" in sizes and draw(st.integers(0, 4)) == 0:
        derived["R"] = binary("+", Name("P"), Name("M"))
    return Ctx(sizes, derived, params, split)


def _draw_inputs(draw, ctx: Ctx) -> None:
    base = [v for v in ctx.index_vars() if v not in ("m1", "m0")]
    for special in ("hk", "r"):
        if special in base:
            others = [v for v in base if v not in ("hk", "r", "h")]
            extra = draw(st.lists(st.sampled_from(others), max_size=2, unique=True)) if others else []
            ctx.add_input(ordered([special, *extra]))
    for _ in range(draw(st.integers(1, 3))):
        plain = [v for v in base if v not in ("hk", "r")]
        axes = draw(st.lists(st.sampled_from(plain), min_size=min(2, len(plain)), max_size=3,
                             unique=True))
        ctx.add_input(ordered(axes))


def _declarations(ctx: Ctx) -> tuple:
    used = {n.name for e in ctx.einsums for x in (e.body, e.where, *e.output.indices, *e.reads())
            if x is not None for n in walk(x) if isinstance(n, Name)}
    decls = [SizeDecl(p, Num(ctx.sizes[p]), False) for p in _PARAMS if p in ctx.sizes and (p in used or (p == "G" and "HK" in ctx.derived))]
    for rank in ("P", "M", "E", "F", "H", "M0"):
        if rank in ctx.sizes:
            decls.append(SizeDecl(rank, Num(ctx.sizes[rank])))
    for rank, expr in ctx.derived.items():
        decls.append(SizeDecl(rank, expr))
    return tuple(decls)


def _finish(ctx: Ctx, sim_scale: int, empty: float = 0.0) -> Case:
    defined = [t for t, info in ctx.tensors.items() if not info.is_input]
    # Tensors nobody reads are the outputs (at most three; the rest stay as dead code).
    sinks = [t for t in defined if ctx.tensors[t].reads == 0][-3:] or [defined[-1]]
    inputs = tuple(TensorDecl(t, info.axes) for t, info in ctx.tensors.items() if info.is_input)
    # A partial output may declare the value of its empty points (interpreter only today).
    outputs = tuple(TensorDecl(t, ctx.tensors[t].axes, empty if ctx.tensors[t].partial else 0.0)
                    for t in sinks)
    splits = (Split("M", "M1", "M0"),) if ctx.split else ()
    cascade = Cascade(_declarations(ctx), splits, inputs, outputs, tuple(ctx.einsums), "generated")
    return Case(format_cascade(cascade), sim_scale)


@st.composite
def cascades(draw, max_builders: int = 5) -> Case:
    ctx = _draw_sizes(draw)
    _draw_inputs(draw, ctx)
    count = draw(st.integers(1, max_builders))
    for i in range(count + 3):
        unread = any(t.is_input and not t.reads for t in ctx.tensors.values())
        if i >= count and not unread:
            break
        draw(st.sampled_from(BUILDERS))(draw, ctx)
    empty = draw(st.sampled_from([0.0] * 7 + [-1.5]))
    return _finish(ctx, draw(st.sampled_from([1, 1, 16, 64])), empty)
