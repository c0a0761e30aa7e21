"""The tile IR's one spelling table: every node kind renders, and as the kernels spell it."""
import math

from backends.triton import tile_ir
from backends.triton.render import OPS, SPELL, expr, lines
from backends.triton.tile_ir import (Arange, Assign, BinOp, Blank, BroadcastTo, Call, Cast,
                                     Comment, Conj, Const, Disj, Dot, Expand, For, Full, If, Int,
                                     Load, Offset, Op, ProgramId, Reduce, Select, Shape, StoreStmt,
                                     Var, Where, Zeros, names_read)
from backends.triton.tiles import bound_node
from einsum_ir.affine import CDiv, CeilDiv, Linear, Max

X, Y, B = Var("x"), Var("y"), Var("BLOCK_P")


def test_every_node_kind_has_a_spelling():
    kinds = {c for c in vars(tile_ir).values()
             if isinstance(c, type) and issubclass(c, tile_ir.Node) and c is not tile_ir.Node}
    assert kinds == set(SPELL)


def test_expressions_render_as_triton_source():
    shape = Shape((B, Var("BLOCK_F")))
    cases = {
        Const(float("-inf")): "float('-inf')", Const(0.125): "0.125", Int(3): "3",
        Const(math.nan): "float('nan')",
        ProgramId(1): "tl.program_id(1)", Arange(B): "tl.arange(0, BLOCK_P)",
        Op("exp", (X,)): OPS["exp"].format(x="x"), Op("safe_sub", (X, Y)): OPS["safe_sub"].format(x="x", y="y"),
        BinOp("<", X, Y): "(x < y)", BinOp("*", X, Y, wrap=False): "x * y",
        Call("maximum", (X, Int(0))): "tl.maximum(x, 0)", Where(X, Y, Const(0.0)): "tl.where(x, y, 0.0)",
        Select(X, Const(1.0), Const(0.0)): "(1.0 if x else 0.0)",
        Offset(((X, Var("s0")), (Y, Var("s1")))): "x * s0 + y * s1",
        Conj((X, Y)): "x & y", Disj((X, Y)): "x | y",
        Load(Var("Q_ptr"), X): "tl.load(Q_ptr + x)",
        Load(Var("Q_ptr"), X, Y): "tl.load(Q_ptr + x, mask=y, other=0.0)",
        Dot(X, Y): "tl.dot(x, y)", Dot(X, Y, Var("acc")): "tl.dot(x, y, acc)",
        Reduce("max", X, 1): "tl.max(x, axis=1)",
        Full(shape, Const(0.0)): "tl.full([BLOCK_P, BLOCK_F], 0.0, tl.float32)",
        Zeros(shape, "int32"): "tl.zeros([BLOCK_P, BLOCK_F], tl.int32)",
        BroadcastTo(X, shape): "tl.broadcast_to(x, [BLOCK_P, BLOCK_F])",
        Cast(X): "x.to(tl.float32)", Cast(X, Var("O_ptr")): "x.to(O_ptr.dtype.element_ty)",
        Expand(X, "row"): "x[:, None]", Expand(X, "col"): "x[None, :]",
    }
    for node, text in cases.items():
        assert expr(node) == text, node


def test_statements_render_with_their_blocks_indented():
    body = (Assign("acc", Dot(X, Y, Var("acc"))),
            If(Var("c"), (Assign("s", Where(Var("m"), Var("s"), Const(float("-inf")))),), "why"))
    stmts = [Blank(), Comment("loop 0"), For(Var("lo_0"), Var("hi_0"), body),
             StoreStmt(Var("O_ptr"), X, Var("acc"), Y, atomic=True)]
    assert lines(stmts) == ["", "# loop 0", "for it in range(lo_0, hi_0):",
                            "    acc = tl.dot(x, y, acc)", "    if c:  # why",
                            "        s = tl.where(m, s, float('-inf'))",
                            "tl.atomic_add(O_ptr + x, acc, mask=y)"]
    assert sorted(set(names_read(stmts[2]))) == ["acc", "c", "hi_0", "lo_0", "m", "s", "x", "y"]


def test_loop_bounds_spell_as_written():
    sym = {"P": Var("P"), "B": B}.__getitem__
    assert expr(bound_node(Linear(((("P",), 1), (("B",), -2)), -1), sym)) == "P - 2 * BLOCK_P - 1"
    assert expr(bound_node(Linear(((("B",), -1),), 3), sym)) == "-BLOCK_P + 3"
    assert expr(bound_node(Linear(), sym)) == "0"
    assert expr(bound_node(Max((Linear((), 0), Linear(((("P",), 1),)))), sym)) == "tl.maximum(0, P)"
    assert expr(bound_node(CeilDiv(Linear(((("P",), 1),)), Linear(((("B",), 1),))), sym)) == \
        "((tl.maximum(P, 0) + BLOCK_P - 1) // BLOCK_P)"
    assert expr(bound_node(CDiv(Linear(((("P",), 1),)), Linear(((("B",), 1),))), sym)) == \
        "tl.cdiv(P, BLOCK_P)"
