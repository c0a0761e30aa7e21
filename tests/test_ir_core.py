"""The shared middle-end helpers: Einsum ids, product factors, rank aliases, size expressions,
NAME=VALUE options, load-verify-resolve, the check/derive split and the evaluation steps."""
import glob

import pytest
import sympy

from einsum_ir import CascadeError, EinsumId, Role, analyze, load, load_resolved, loads
from einsum_ir.analysis import default_rank
from einsum_ir.assignments import parse_assignments
from einsum_ir.checks import check_declarations, check_definitions
from einsum_ir.exprs import Factor, product_factors, rank_root
from einsum_ir.ir import Binary, Call, Name, Num, Unary
from einsum_ir.parser import parse
from einsum_ir.passes import online_softmax
from einsum_ir.size_exprs import to_code, to_int, to_sympy

EXAMPLES = sorted(glob.glob("examples/attention/*.ein"))


@pytest.mark.parametrize("path", EXAMPLES)
def test_einsum_ids_are_unique_and_name_the_roles(path):
    for cascade in (load(path), online_softmax(load(path))):
        ids = [e.id for e in cascade.einsums]
        assert len(set(ids)) == len(ids)
        facts = analyze(cascade)
        for rec in facts.recurrences.values():
            assert rec.init.id == EinsumId(rec.tensor, Role.INIT)
            assert rec.update.id == EinsumId(rec.tensor, Role.UPDATE)
            assert str(rec.init.id) == f"{rec.tensor}.init" and str(rec.update.id) == rec.tensor
        assert all(cascade.einsum(eid).id == eid for eid in ids)


def test_ids_survive_rebuilding_the_cascade():
    """An equal cascade built elsewhere has Einsums with the same ids (no object identity)."""
    a, b = load(EXAMPLES[0]), load(EXAMPLES[0])
    assert a == b and a.einsums[0] is not b.einsums[0]
    assert [e.id for e in a.einsums] == [e.id for e in b.einsums]
    assert a.positions() == b.positions()


def _x(name):
    return Name(name)


def test_product_factors_rules():
    a, b, c = _x("a"), _x("b"), _x("c")
    p = product_factors(Binary("*", Unary("-", a), Binary("/", b, c)))
    assert p.negated and p.factors == (Factor(a), Factor(b), Factor(c, True))
    p = product_factors(Unary("-", Binary("*", a, Unary("-", b))))
    assert not p.negated and p.factors == (Factor(a), Factor(b))
    nested = Binary("/", b, c)
    p = product_factors(Binary("/", a, nested))
    assert p.factors == (Factor(a), Factor(nested, True)) and p.multiplicands() == (a,)
    assert product_factors(Call("exp", (a,))).factors == (Factor(Call("exp", (a,))),)


def test_interpreter_evaluates_signed_products():
    text = """
rank I = 3, J = 4
input X[i, j], Y[j]
output Z[i]
Z[i] = sum[j] -X[i, j] * -(Y[j] / -X[i, j])
"""
    import numpy as np
    from einsum_ir import evaluate

    rng = np.random.default_rng(1)
    x, y = rng.random((3, 4)) + 0.5, rng.random(4)
    out = evaluate(loads(text), {"X": x, "Y": y})["Z"]
    assert np.allclose(out, -(y.sum()) * np.ones(3))


def test_rank_root_follows_aliases_and_stops_on_cycles():
    c = parse("rank A = 4, B = A, C = B\nparam W = C\ninput X[a]\noutput Y[a]\nY[a] = X[a]\n")
    assert rank_root(c, "C") == "A" and rank_root(c, "W") == "A" and rank_root(c, "A") == "A"
    cyc = parse("rank A = B, B = A\ninput X[a]\noutput Y[a]\nY[a] = X[a]\n")
    assert rank_root(cyc, "A") in ("A", "B")


def test_size_expressions_one_visitor_three_outputs():
    expr = Binary("-", Binary("+", _x("P"), Binary("/", _x("M"), _x("M0"))),
                  Call("min", (_x("W"), Unary("-", Num(2)))))
    env = {"P": 10, "M": 64, "M0": 16, "W": 3}
    assert to_int(expr, env) == 10 + 4 - (-2)
    sym = to_sympy(expr, lambda n: sympy.Symbol(n, positive=True, integer=True))
    assert int(sym.subs({sympy.Symbol(k, positive=True, integer=True): v
                         for k, v in env.items()})) == 16
    code = to_code(expr, lambda n: f"s[{n!r}]")
    assert eval(code, {"s": env}) == 16 and "//" in code
    with pytest.raises(CascadeError, match="not divisible"):
        to_int(Binary("/", Num(5), Num(2)), {})
    with pytest.raises(CascadeError, match="unknown size 'Q'"):
        to_int(_x("Q"), {})


def test_assignments_union_of_both_option_parsers():
    assert parse_assignments(["P=4K", "M=1_024", "X=2g", "N=-3"]) == {
        "P": 4096, "M": 1024, "X": 2 * 1024 ** 3, "N": -3}
    assert parse_assignments(["f=0.25", "k=3M"], "--arch-set", floats=True) == {
        "f": 0.25, "k": 3 * 1024 ** 2}
    with pytest.raises(CascadeError, match="is not an integer"):
        parse_assignments(["P=0.5"])
    with pytest.raises(CascadeError, match="--arch-set x=abc: 'abc' is not a number"):
        parse_assignments(["x=abc"], "--arch-set", floats=True)
    with pytest.raises(CascadeError, match="expected NAME=VALUE"):
        parse_assignments(["=3"])


def test_load_resolved_gives_cascade_facts_and_sizes(tmp_path):
    loaded = load_resolved("examples/attention/causal.ein", ["P=32"])
    assert loaded.overrides == {"P": 32} and loaded.sizes["P"] == 32
    assert loaded.facts is analyze(loaded.cascade)
    assert load_resolved("examples/attention/causal.ein", {"M": 16}).sizes["M"] == 16
    with pytest.raises(CascadeError, match="no rank or parameter named 'Z'"):
        load_resolved("examples/attention/causal.ein", ["Z=3"])
    bad = tmp_path / "bad.ein"
    bad.write_text("rank M = 4\ninput X[m]\noutput Y[m]\nY[m] = X[n]\n")
    with pytest.raises(CascadeError) as info:
        load_resolved(str(bad))
    assert info.value.span is not None and info.value.span.line == 4


def test_checks_are_flat_functions_with_spans():
    c = parse("rank M = 4, M = 5\ninput X[m]\noutput Y[m]\nY[m] = X[m]\n")
    with pytest.raises(CascadeError, match="declared twice") as info:
        check_declarations(c)
    assert info.value.span.line == 1
    c = parse("rank M = 4\ninput X[m]\noutput Y[m]\nY[m] = X[m]\nY[m] = X[m]\n")
    check_declarations(c)
    with pytest.raises(CascadeError, match="defined twice") as info:
        check_definitions(c)
    assert info.value.span.line == 5


def test_steps_carry_the_recurrence_index():
    facts = analyze(load("examples/attention/mha_1pass.ein"))
    assert facts.order == tuple(s.einsums for s in facts.steps)
    assert facts.step_vars == tuple(s.var for s in facts.steps)
    stepped = [s for s in facts.steps if s.var is not None]
    assert stepped and all(s.var == "m1" for s in stepped)
    assert all(len(s.einsums) == 1 for s in facts.steps if s.var is None)


def test_default_rank_is_the_rank_a_later_einsum_rereads():
    """No max anywhere: the full reduction over E that a later Einsum reads while walking E
    again (a layer norm's mean) is the streamed rank, not the most reduced rank."""
    text = """
rank B = 2, E = 8, F = 4
input X[b, e], W[e, f]
output Y[b, f]
MU[b] = sum[e] X[b, e] / E
D[b, e] = X[b, e] - MU[b]
Y[b, f] = sum[e] D[b, e] * W[e, f]
Z[f] = sum[b] Y[b, f]
T[f] = sum[b] Y[b, f] * Y[b, f]
U[f] = sum[b] exp(Y[b, f])
"""
    cascade = loads(text.replace("output Y[b, f]", "output Y[b, f], Z[f], T[f], U[f]"))
    assert default_rank(cascade) == "E"
