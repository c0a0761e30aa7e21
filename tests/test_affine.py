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


def _holds(form, env):
    return sum(c * env[v] for v, c in form.indices) + form.const <= 0


def test_floor_division_and_modulo_relax_to_necessary_linear_conditions():
    # every point of the predicate satisfies the relaxed forms (a superset), and the forms are
    # not trivial: the neighbourhood's rows bound |p - m| < (R + 1) * X
    texts = ["abs(p / 4 - m / 4) <= 1 and abs(p % 4 - m % 4) <= 1", "p / 3 == m / 3",
             "m / 5 < p / 5", "2 * (m / 3) - p % 4 >= 1"]
    for text in texts:
        pred = parse_pred(text)
        assert constraints_of(pred, BAKED) is None  # not linear as written
        (conj,) = constraints_of(pred, BAKED, relax=True)
        points = [(p, m) for p in range(40) for m in range(40)
                  if eval(text.replace("/", "//").replace("abs", "abs"), {}, {"p": p, "m": m})]
        assert points and all(_holds(f, {"p": p, "m": m}) for p, m in points for f in conj)
        assert not all(_holds(f, {"p": p, "m": m}) for p in range(40) for m in range(40)
                       for f in conj) or text.startswith("2 *")
    (conj,) = constraints_of(parse_pred("abs(p / 4 - m / 4) <= 1"), BAKED, relax=True)
    assert not all(_holds(f, {"p": 0, "m": 8}) for f in conj)  # two rows apart: outside
    assert constraints_of(parse_pred("p / W <= m"), BAKED, relax=True) is None  # W not baked
