"""The named peepholes of the Triton lowering, one at a time, on hand-made tiles."""
from backends.triton.peepholes import (dot_accumulate, fold_exp2_scale, safe_running_max,
                                       scaled_product)
from backends.triton.tiles import LOG2E, Tile, const_tile

ROW = ("p", "m0")


class _Gen:
    """The two services the peepholes use: f32 code and a named statement."""

    def __init__(self):
        self.lines = []

    def f32(self, t):
        return t.code

    def bcast(self, code, axes, target):
        return f"{code}[:, None]" if axes != target else code

    def emit(self, hint, code, variant):
        self.lines.append(f"{hint} = {code}")
        return hint


def test_scaled_product_records_the_scale_and_keeps_the_minus_inf_set():
    qk = Tile("qk", ROW, ninf_terms=frozenset({("mask", ROW, True)}))
    out = scaled_product(qk, const_tile(0.125), "(qk * 0.125)", ROW, frozenset(), False)
    assert out.lin == ("qk", 0.125) and out.ninf_terms == qk.ninf_terms
    negative = scaled_product(qk, const_tile(-1.0), "(qk * -1.0)", ROW, frozenset(), False)
    assert negative.ninf_terms == frozenset()  # -inf * -1 is not -inf
    assert scaled_product(qk, Tile("k", ROW), "(qk * k)", ROW, frozenset(), False).lin is None


def test_exp_of_a_scaled_difference_is_one_exp2_with_the_scale_folded():
    scaled = Tile("(qk * 0.125)", ROW, lin=("qk", 0.125))
    diff = Tile("(qk_1 - m[:, None])", ROW, diff=(scaled, Tile("m", ("p",))))
    out = fold_exp2_scale(_Gen(), "exp", diff)
    assert out.code == f"tl.exp2(qk * {0.125 * LOG2E!r} - (m * {LOG2E})[:, None])"
    assert fold_exp2_scale(_Gen(), "log", diff) is None
    assert fold_exp2_scale(_Gen(), "exp", Tile("x", ROW)) is None


def test_the_running_max_of_a_row_is_made_safe_only_when_it_bounds_the_row():
    ninf = frozenset({("mask", ROW, True)})
    s = Tile("s", ROW, ninf_terms=ninf)
    m = Tile("m", ("p",), may_inf=True, max_of=frozenset({"s"}))
    gen = _Gen()
    safe, out_ninf = safe_running_max(gen, s, m, frozenset())
    assert safe.code == "m_safe" and not safe.may_inf and out_ninf == ninf
    assert gen.lines == ["m_safe = tl.where(m == float('-inf'), 0.0, m)"]
    other = Tile("o", ("p",), may_inf=True)  # not the max of s: unchanged
    assert safe_running_max(_Gen(), s, other, frozenset()) == (other, frozenset())


def test_acc_plus_dot_accumulates_in_the_dot():
    acc = Tile("acc", ROW)
    dot = Tile("d", ROW, dot=("a", "b"))
    assert dot_accumulate(acc, dot, "acc", "d", ROW) == "tl.dot(a, b, acc)"
    assert dot_accumulate(dot, acc, "d", "acc", ROW) == "tl.dot(a, b, acc)"
    assert dot_accumulate(acc, Tile("e", ROW), "acc", "e", ROW) is None
