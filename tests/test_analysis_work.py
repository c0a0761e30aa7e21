"""Work counts: hand-derived formulas, brute-force enumeration under masks, closed forms."""
import itertools
import json
import math
import time
from pathlib import Path

import pytest
import sympy

from cascade_cli.main import main
from einsum_ir import load, loads
from einsum_ir.analysis import OP_CLASSES, count_work

EX = "examples/attention/"


def nonzero(counts):
    return {op: n for op, n in counts.items() if n}


def test_dense_3pass_matches_hand_formulas():
    s = dict(B=2, H=3, P=40, M=24, E=8, F=5)
    r = count_work(load(EX + "mha_3pass.ein"), s)
    B, H, P, M, E, F = (s[k] for k in "BHPMEF")
    assert nonzero(r.per_einsum["QK"]) == {"mac": B * H * P * M * E, "mul": B * H * P * M}
    assert nonzero(r.per_einsum["GM"]) == {"max": B * H * P * M}
    assert nonzero(r.per_einsum["SN"]) == {"exp": B * H * P * M, "add": B * H * P * M}
    assert nonzero(r.per_einsum["SD"]) == {"add": B * H * P * M}
    assert nonzero(r.per_einsum["A"]) == {"div": B * H * P * M}
    assert nonzero(r.per_einsum["AV"]) == {"mac": B * H * P * M * F}
    assert r.points["QK"] == B * H * P * M * E
    assert r.total["mac"] == B * H * P * M * (E + F)
    assert set(r.total) == set(OP_CLASSES)


def test_1pass_divides_once_per_output_and_names_inits():
    s = dict(P=32, M=64, M0=16)
    r = count_work(load(EX + "mha_1pass.ein"), s)
    B, H, P, M, F, M1 = 1, 2, 32, 64, 64, 4
    assert r.per_einsum["AV"]["div"] == B * H * P * F
    assert nonzero(r.per_einsum["RM"]) == {"max": B * H * P * M1}
    assert nonzero(r.per_einsum["PRM"]) == {"exp": B * H * P * M1, "add": B * H * P * M1}
    assert nonzero(r.per_einsum["SLNV"]) == {"mac": B * H * P * M * F}
    assert r.per_einsum["RM.init"] == {op: 0 for op in OP_CLASSES}
    assert r.points["RM.init"] == B * H * P


def test_closed_forms_agree_with_exact_counts_for_every_example():
    for name in ("mha_3pass", "mha_2pass", "mha_2pass_deferred", "mha_1pass", "gqa", "linear",
                 "linear_causal_chunked"):
        cascade = load(EX + name + ".ein")
        r = count_work(cascade, {"P": 64, "M": 32} if "chunked" not in name else {"P": 128})
        assert r.symbolic, name
        env = {sympy.Symbol(k, positive=True, integer=True): v for k, v in r.sizes.items()}
        for key, forms in r.symbolic.items():
            for op, form in forms.items():
                assert int(form.subs(env)) == r.per_einsum[key][op], (name, key, op, form)
    forms = count_work(load(EX + "mha_3pass.ein")).symbolic
    B, H, P, M, E = sympy.symbols("B H P M E", positive=True, integer=True)
    assert forms["QK"]["mac"] == B * H * P * M * E


def test_ragged_tile_counts_only_real_keys():
    r = count_work(load(EX + "mha_1pass.ein"), {"P": 8, "M": 37, "M0": 8})
    assert r.per_einsum["QK"]["mac"] == 2 * 8 * 37 * 64
    assert r.per_einsum["RM"]["max"] == 2 * 8 * 5  # ceil(37 / 8) tiles
    assert "QK" not in r.symbolic and "RM" in r.symbolic
    assert str(r.symbolic["RM"]["max"]) == "B*H*P*ceiling(M/M0)"


# ---------------------------------------------------------------------- masks: brute force


def brute_points(sizes, pred):
    """Points (p, m) that exist, by plain enumeration."""
    return sum(1 for p, m in itertools.product(range(sizes["P"]), range(sizes["M"])) if pred(p, m))


@pytest.mark.parametrize("name, sizes, pred", [
    ("causal", dict(P=13, M=13), lambda p, m: m <= p),
    ("causal", dict(P=9, M=14), lambda p, m: m <= p),  # cross-attention shape, P < M
    ("sliding_window", dict(P=17, M=17, W=5), lambda p, m: p - 5 < m <= p),
    ("sliding_window", dict(P=12, M=20, W=30), lambda p, m: p - 30 < m <= p),
])
def test_masked_counts_match_brute_force(name, sizes, pred):
    r = count_work(load(EX + name + ".ein"), sizes)
    B, H, E, F = 1, 2, 64, 64
    n = brute_points(sizes, pred)
    rows = sum(1 for p in range(sizes["P"]) if any(pred(p, m) for m in range(sizes["M"])))
    assert r.points["QK"] == B * H * n * E
    assert nonzero(r.per_einsum["QK"]) == {"mac": B * H * n * E, "mul": B * H * n}
    assert nonzero(r.per_einsum["GM"]) == {"max": B * H * n}
    assert nonzero(r.per_einsum["SN"]) == {"exp": B * H * n, "add": B * H * n}
    assert nonzero(r.per_einsum["A"]) == {"div": B * H * n}
    assert nonzero(r.per_einsum["AV"]) == {"mac": B * H * n * F}
    assert r.output_points["GM"] == B * H * rows
    assert r.symbolic is None  # every Einsum is reached by the mask


def test_chunked_linear_masks_brute_force():
    r = count_work(load(EX + "linear_causal_chunked.ein"), {"P": 24, "C": 8})
    n = sum(1 for _ in range(3) for c in range(8) for d in range(8) if d <= c)
    assert r.per_einsum["SC"]["mac"] == 2 * n * 64
    assert r.per_einsum["IDEN"]["add"] == 2 * n
    assert "XNUM" in r.symbolic and "SC" not in r.symbolic


def test_split_1pass_with_causal_mask_brute_force():
    text = Path(EX + "mha_1pass.ein").read_text().replace(
        "/ sqrt(E)\n", "/ sqrt(E) where m1*M0 + m0 <= p\n", 1)
    cascade = loads(text)
    sizes = dict(P=11, M=19, M0=4)
    r = count_work(cascade, sizes)
    pts = sum(1 for p in range(11) for m1 in range(5) for m0 in range(4)
              if m1 * 4 + m0 < 19 and m1 * 4 + m0 <= p)
    tiles = sum(1 for p in range(11) for m1 in range(5)
                if any(m1 * 4 + m0 < 19 and m1 * 4 + m0 <= p for m0 in range(4)))
    assert r.per_einsum["QK"]["mac"] == 2 * pts * 64
    assert r.per_einsum["SLN"]["exp"] == 2 * pts
    assert r.output_points["LM"] == 2 * tiles
    assert r.per_einsum["RM"]["max"] == 2 * 11 * 5  # the running max exists for every tile


def test_causal_is_about_half_and_window_about_p_times_w():
    P = 1024
    dense = count_work(load(EX + "mha_3pass.ein"), {"P": P, "M": P}).total["exp"]
    causal = count_work(load(EX + "causal.ein"), {"P": P, "M": P}).total["exp"]
    assert causal == 2 * P * (P + 1) // 2
    assert abs(causal / dense - 0.5) < 0.001
    W = 64
    window = count_work(load(EX + "sliding_window.ein"), {"P": P, "M": P, "W": W}).total["exp"]
    assert window == 2 * (P * W - W * (W - 1) // 2)


def test_large_masked_sizes_are_vectorised():
    start = time.perf_counter()
    r = count_work(load(EX + "causal.ein"), {"P": 4096, "M": 4096})
    assert r.per_einsum["AV"]["mac"] == 2 * 64 * 4096 * 4097 // 2
    assert time.perf_counter() - start < 10


def test_value_ops_other_cmp_and_index_values():
    text = """
rank P = 6, M = 5
param W = 2
input X[p,m], S[p]
output Y[p]
Z[p,m] = relu(X[p,m]) * (p - m) + (X[p,m] > S[p]) where abs(p - m) <= W
Y[p]   = min[m] Z[p,m] % 3
"""
    r = count_work(loads(text))
    n = sum(1 for p in range(6) for m in range(5) if abs(p - m) <= 2)
    assert nonzero(r.per_einsum["Z"]) == {"other": n, "mul": n, "add": 2 * n, "cmp": n}
    assert nonzero(r.per_einsum["Y"]) == {"other": n, "max": n}


def test_cli_work_table_and_json(capsys):
    assert main(["work", EX + "causal.ein", "--set", "P=64", "--set", "M=64"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and f"{2 * 64 * 65 // 2 * 64:,}" in out
    assert main(["work", EX + "mha_3pass.ein", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["symbolic"]["QK"]["mac"] == "B*E*H*M*P"
    assert info["per_einsum"]["AV"]["mac"] == math.prod([1, 2, 256, 256, 64])
    assert main(["work", EX + "mha_3pass.ein"]) == 0
    assert "closed forms:" in capsys.readouterr().out


# ---------------------------------------------------------------------- generic brute force


def _int(expr, point, env):
    """Integer/boolean value of an index expression or predicate at one point (plain Python)."""
    from einsum_ir.ir import Call, Name, Num, Unary

    if isinstance(expr, Num):
        return int(expr.value)
    if isinstance(expr, Name):
        return point[expr.name] if expr.is_index else env[expr.name]
    if isinstance(expr, Unary):
        v = _int(expr.operand, point, env)
        return -v if expr.op == "-" else (not v)
    if isinstance(expr, Call):
        args = [_int(a, point, env) for a in expr.args]
        return {"abs": lambda x: abs(x), "min": min, "max": max}[expr.func](*args)
    a, b = _int(expr.lhs, point, env), _int(expr.rhs, point, env)
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a // b,
            "%": lambda: a % b, "<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b,
            ">=": lambda: a >= b, "==": lambda: a == b, "!=": lambda: a != b,
            "and": lambda: a and b, "or": lambda: a or b}[expr.op]()


def _brute_exists(expr, point, env, shape, inputs, exists):
    """Whether ``expr`` exists at ``point`` by the union/intersection rules."""
    from einsum_ir.ir import Access, Binary, Name, Num, Unary, index_vars

    def ex(e):
        return _brute_exists(e, point, env, shape, inputs, exists)

    if isinstance(expr, (Num, Name)):
        return True
    if isinstance(expr, Access):
        idx = tuple(_int(i, point, env) for i in expr.indices)
        if not all(0 <= i < n for i, n in zip(idx, shape(expr.tensor), strict=True)):
            return False
        return expr.tensor in inputs or idx in exists.get(expr.tensor, set())
    if isinstance(expr, Unary):
        return ex(expr.operand)
    if isinstance(expr, Binary):
        if expr.op in ("and", "or"):
            return True
        a, b = ex(expr.lhs), ex(expr.rhs)
        if expr.op in ("+", "-"):  # an operand lacking the other's indices adds no points
            va, vb = set(index_vars(expr.lhs)), set(index_vars(expr.rhs))
            return (a or b) if va == vb else a if va > vb else b if vb > va else (a and b)
        return (a or b) if expr.op in ("max", "min") else (a and b)
    parts = [ex(a) for a in expr.args]
    if len(parts) == 2 and expr.func in ("max", "min"):
        return any(parts)
    return all(parts)


def brute_force_points(cascade, sizes):
    """Existing points of every Einsum by enumerating every point with the union/intersection
    rules (independent of the vectorised analysis)."""
    from einsum_ir import analyze, resolve_sizes

    analysis = analyze(cascade)
    env = resolve_sizes(cascade, sizes)
    inputs = {d.name for d in cascade.inputs}
    exists = {}

    def shape(t):
        return [env[a.rank] + a.extra for a in analysis.shapes[t]]

    def ex(expr, point):
        return _brute_exists(expr, point, env, shape, inputs, exists)

    points = {}
    for group, var in zip(analysis.order, analysis.step_vars, strict=True):
        for step in ([None] if var is None else range(env[var.upper()])):
            for e in group:
                rec = analysis.recurrences.get(e.name)
                key = e.name + (".init" if rec is not None and e == rec.init else "")
                names = [v for v in e.iteration_space if v != var]
                for values in itertools.product(*(range(env[v.upper()]) for v in names)):
                    point = dict(zip(names, values, strict=True))
                    if var is not None:
                        point[var] = step
                    if ex(e.body, point) and (e.where is None or _int(e.where, point, env)):
                        points[key] = points.get(key, 0) + 1
                        out = tuple(_int(i, point, env) for i in e.output.indices)
                        exists.setdefault(e.name, set()).add(out)
                points.setdefault(key, 0)
    return points


SMALL = dict(B=1, H=2, P=5, M=7, E=2, F=2)


@pytest.mark.parametrize("name, sizes", [
    ("mha_3pass", SMALL), ("causal", SMALL), ("causal", {**SMALL, "P": 9, "M": 4}),
    ("sliding_window", {**SMALL, "W": 2}), ("gqa", {**SMALL, "H": 4, "G": 2}),
    ("mha_1pass", {**SMALL, "M0": 3}), ("mha_2pass", {**SMALL, "M0": 3}),
    ("mha_2pass_deferred", SMALL), ("linear_causal_chunked", dict(P=6, C=2, E=2, F=2)),
])
def test_points_match_generic_brute_force(name, sizes):
    cascade = load(EX + name + ".ein")
    assert count_work(cascade, sizes).points == brute_force_points(cascade, sizes)


def test_points_match_brute_force_after_the_rewrite_with_a_ragged_tile():
    from einsum_ir.passes import online_softmax

    cascade = online_softmax(load(EX + "sliding_window.ein"), tile_size=3)
    sizes = {**SMALL, "M": 8, "W": 3}
    assert count_work(cascade, sizes).points == brute_force_points(cascade, sizes)


# ---------------------------------------------------------------------- hypothesis

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ATOMS = ["{m} <= p", "{m} < p + W", "p - W < {m}", "(p + {m}) % 3 != 0", "abs(p - {m}) <= W",
          "{m} * 2 >= p", "max(p, {m}) < W + 3", "p != 2"]


@st.composite
def masked_cascades(draw):
    atoms = draw(st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=3))
    joins = [draw(st.sampled_from([" and ", " or "])) for _ in atoms[1:]]
    split = draw(st.booleans())
    pred = atoms[0] + "".join(j + a for j, a in zip(joins, atoms[1:], strict=True))
    pred = pred.replace("{m}", "(m1*M0 + m0)" if split else "m")
    where_on = draw(st.sampled_from(["score", "max", "both"]))
    union = draw(st.booleans())
    text = f"""
rank P = 4, M = 5, E = 2
param W = 1
{"rank M0 = 2" if split else ""}
{"split M = M1 * M0" if split else ""}
input Q[p,e], K[m,e], B[p]
output Y[p], Z[p]
S[{'p,m1,m0' if split else 'p,m'}] = sum[e] Q[p,e] * K[{'m1*M0 + m0' if split else 'm'},e]"""
    text += f" where {pred}\n" if where_on != "max" else "\n"
    idx = "p,m1,m0" if split else "p,m"
    red = "m1,m0" if split else "m"
    text += f"Y[p] = max[{red}] S[{idx}]" + (f" where {pred}\n" if where_on != "score" else "\n")
    text += f"Z[p] = sum[{red}] exp(S[{idx}] - Y[p])" + (" + B[p]\n" if union else "\n")
    sizes = {"P": draw(st.integers(1, 6)), "M": draw(st.integers(1, 7)),
             "W": draw(st.integers(0, 3))}
    if split:
        sizes["M0"] = draw(st.integers(1, 4))
    return loads(text), sizes


@settings(max_examples=40, deadline=None)
@given(masked_cascades())
def test_random_masks_match_brute_force(case):
    cascade, sizes = case
    report = count_work(cascade, sizes)
    assert report.points == brute_force_points(cascade, sizes)
    for key, forms in (report.symbolic or {}).items():
        env = {sympy.Symbol(k, positive=True, integer=True): v for k, v in report.sizes.items()}
        assert all(int(f.subs(env)) == report.per_einsum[key][op] for op, f in forms.items())
