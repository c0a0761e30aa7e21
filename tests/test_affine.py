"""einsum_ir.affine: linear forms of index expressions, predicates as constraints, bounds."""
from einsum_ir.affine import (Affine, CDiv, CeilDiv, FloorDiv, Linear, Max, Min, affine_of,
                              constraints_of, evaluate, symbols)
from einsum_ir.parser import parse

BAKED = {"M0": 64}.get


def parse_pred(text: str):
    """A predicate of the language (parsed, not verified)."""
    return parse(f"rank P = 8\ninput A[p]\noutput X[p]\nX[p] = A[p] where {text}").einsums[0].where


def parse_index(text: str):
    return parse_pred(f"{text} <= 0").lhs


def test_linear_forms_fold_baked_sizes_and_keep_runtime_ones():
    f = affine_of(parse_index("m1 * M0 + m0 - 2 * p + W"), BAKED)
    assert f == Affine((("m1", 64), ("m0", 1), ("p", -2)), (("W", 1),), 0)
    assert affine_of(parse_index("m * p"), BAKED) is None  # not linear
    assert affine_of(parse_index("-(m - 3)"), BAKED) == Affine((("m", -1),), (), 3)


def test_predicates_become_disjunctions_of_conjunctions_of_form_le_0():
    (conj,) = constraints_of(parse_pred("m <= p"), BAKED)
    assert conj == (Affine((("m", 1), ("p", -1))),)
    (conj,) = constraints_of(parse_pred("p - 8 < m and m <= p"), BAKED)
    assert conj == (Affine((("p", 1), ("m", -1)), (), -7), Affine((("m", 1), ("p", -1))))
    assert len(constraints_of(parse_pred("m < 2 or m > 5"), BAKED)) == 2
    (conj,) = constraints_of(parse_pred("abs(p - m) <= 3"), BAKED)
    assert len(conj) == 2
    assert constraints_of(parse_pred("m * m <= p"), BAKED) is None
    # one linear side of an 'and' is kept (a necessary condition)
    assert constraints_of(parse_pred("m * m <= p and m <= p"), BAKED) == \
        ((Affine((("m", 1), ("p", -1))),),)


def test_bound_expressions_evaluate_with_floor_and_ceiling_division():
    row = Linear.of(((("pid",), ("block", "p")), 1), const=63)
    hi = Min((FloorDiv(row, Linear(const=64)), CDiv(Linear.of(((("size", "M"),), 1)),
                                                    Linear(const=64))))
    env = {("pid",): 1, ("block", "p"): 64, ("size", "M"): 100}
    assert evaluate(hi, env) == min((64 + 63) // 64, 2)
    assert evaluate(CeilDiv(Linear(const=65), Linear(const=64)), {}) == 2
    assert evaluate(FloorDiv(Linear(const=-5), Linear(const=4)), {}) == 0  # clamped at 0
    assert evaluate(Max((Linear(const=3), Linear(const=7))), {}) == 7
    assert symbols(hi) == {("pid",), ("block", "p"), ("size", "M")}
    assert Linear.of(((("a",), 2)), ((("a",), -2))) == Linear()  # terms merge, zeros drop
