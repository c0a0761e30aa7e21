"""The named rewrites of the Triton lowering, one at a time, on small node graphs."""
from backends.triton.peepholes import (dot_accumulate, fold_exp2_scale, safe_running_max,
                                       scaled_product)
from backends.triton.render import expr
from backends.triton.tile_ir import Assign, BinOp, Call, Const, Dot, Expand, Op, Var, Where
from backends.triton.tiles import LOG2E, Term, Tile, const_tile

ROW = ("p", "m0")
QK, M = Var("qk"), Var("m")


class _Gen:
    """The services the rewrites use: the fp32 value, a broadcast and a named statement."""

    def __init__(self):
        self.stmts = []

    def f32(self, t):
        return t.value

    def bcast(self, value, axes, target):
        return Expand(value, "row") if axes != target else value

    def emit(self, hint, value, variant):
        self.stmts.append(Assign(hint, value))
        return Var(hint)


def test_scaled_product_records_the_scale_and_keeps_the_minus_inf_set():
    qk = Tile(QK, ROW, ninf_terms=frozenset({Term(Var("mask"), ROW, True)}))
    out = scaled_product(qk, const_tile(0.125), Op("*", (QK, Const(0.125))), ROW, frozenset(),
                         False)
    assert out.lin == (QK, 0.125) and out.ninf_terms == qk.ninf_terms
    assert out.value == Op("*", (QK, Const(0.125)))
    negative = scaled_product(qk, const_tile(-1.0), Op("*", (QK, Const(-1.0))), ROW,
                              frozenset(), False)
    assert negative.ninf_terms == frozenset()  # -inf * -1 is not -inf
    other = Tile(Var("k"), ROW)
    assert scaled_product(qk, other, Op("*", (QK, Var("k"))), ROW, frozenset(), False).lin is None


def test_exp_of_a_scaled_difference_is_one_exp2_with_the_scale_folded():
    scaled = Tile(Op("*", (QK, Const(0.125))), ROW, lin=(QK, 0.125))
    diff = Tile(Op("-", (Var("qk_1"), Expand(M, "row"))), ROW, diff=(scaled, Tile(M, ("p",))))
    out = fold_exp2_scale(_Gen(), "exp", diff)
    m_log2 = Expand(BinOp("*", M, Const(LOG2E)), "row")
    scaled_qk = BinOp("*", QK, Const(0.125 * LOG2E), wrap=False)
    assert out.value == Call("exp2", (BinOp("-", scaled_qk, m_log2, wrap=False),))
    assert expr(out.value) == f"tl.exp2(qk * {0.125 * LOG2E!r} - (m * {LOG2E})[:, None])"
    assert fold_exp2_scale(_Gen(), "log", diff) is None
    assert fold_exp2_scale(_Gen(), "exp", Tile(Var("x"), ROW)) is None


def test_the_running_max_of_a_row_is_made_safe_only_when_it_bounds_the_row():
    ninf = frozenset({Term(Var("mask"), ROW, True)})
    s = Tile(Var("s"), ROW, ninf_terms=ninf)
    m = Tile(M, ("p",), may_inf=True, max_of=frozenset({Var("s")}))
    gen = _Gen()
    safe, out_ninf = safe_running_max(gen, s, m, frozenset())
    assert safe.value == Var("m_safe") and not safe.may_inf and out_ninf == ninf
    is_empty = BinOp("==", M, Const(float("-inf")), wrap=False)
    assert gen.stmts == [Assign("m_safe", Where(is_empty, Const(0.0), M))]
    other = Tile(Var("o"), ("p",), may_inf=True)  # not the max of s: unchanged
    assert safe_running_max(_Gen(), s, other, frozenset()) == (other, frozenset())


def test_acc_plus_dot_accumulates_in_the_dot():
    a, b, acc_v = Var("a"), Var("b"), Var("acc")
    acc = Tile(acc_v, ROW)
    dot = Tile(Var("d"), ROW, dot=(a, b))
    assert dot_accumulate(acc, dot, acc_v, Var("d"), ROW) == Dot(a, b, acc_v)
    assert dot_accumulate(dot, acc, Var("d"), acc_v, ROW) == Dot(a, b, acc_v)
    assert dot_accumulate(acc, Tile(Var("e"), ROW), acc_v, Var("e"), ROW) is None
    assert expr(Dot(a, b, acc_v)) == "tl.dot(a, b, acc)"
