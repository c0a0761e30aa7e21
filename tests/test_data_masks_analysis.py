"""Work and existence of data-dependent masks and gathers, and the simulator on them.

Counts with the data are compared with numpy (and with the interpreter's existence of every
tensor); counts without it are checked to be upper bounds on random data, and the top-k and gather
counts to be exact where the docs say they are."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from einsum_ir import analyze, parse, resolve_sizes
from einsum_ir.analysis.work import count_work
from einsum_ir.data_masks import evaluated
from einsum_ir.errors import CascadeError
from einsum_ir.inputs import random_inputs

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "data" / "catalogue"
sys.path.insert(0, str(ROOT / "tests"))

DATA_FAMILY = ("S1_block_gate", "S2_vertical_slash", "S4_biformer_routing", "S6_cluster_routing",
               "S7_topk", "S11_index_gather", "S12_snapkv", "M11_graph")
TOP_K = ("S1_block_gate", "S4_biformer_routing", "S7_topk", "S12_snapkv")


def _load(name: str, text: str | None = None):
    path = CATALOGUE / f"{name}.ein"
    return parse(text if text is not None else path.read_text(), str(path))


def _inputs(cascade, sizes: dict, seed: int, density: float = 0.3) -> dict:
    """Standard normals; index tensors hold positions, adjacency and selector tensors 0/1."""
    env = resolve_sizes(cascade, sizes)
    x = random_inputs(cascade, env, seed, np.dtype(np.float64))
    rng = np.random.default_rng(seed)
    if "Idx" in x:
        x["Idx"] = rng.integers(0, env["M"], x["Idx"].shape).astype(np.float64)
    for name in ("Adj", "Vert", "Slash"):
        if name in x:
            x[name] = (rng.random(x[name].shape) < density).astype(np.float64)
    return x


def _interpreter_points(cascade, sizes, x) -> dict:
    """Existing points of every tensor the interpreter computed."""
    ev = evaluated(analyze(cascade), resolve_sizes(cascade, sizes), x)
    out = {}
    for einsum in cascade.einsums:
        values, exists = ev.store[einsum.name]
        out[einsum.name] = int(values.size if exists is None else np.count_nonzero(exists))
    return out


# ------------------------------------------------------------------ with the data: exact


@pytest.mark.parametrize("name", DATA_FAMILY)
def test_counts_with_the_data_are_the_interpreters_existence(name):
    cascade = _load(name)
    for seed in (0, 1):
        x = _inputs(cascade, {}, seed)
        work = count_work(cascade, inputs=x)
        got = _interpreter_points(cascade, {}, x)
        for einsum in cascade.einsums:
            assert work.output_points[str(einsum.id)] == got[einsum.name], (name, einsum.name)
        assert set(work.kinds.values()) == {"exact"}


def test_graph_mask_with_the_data_counts_the_adjacency():
    cascade = _load("M11_graph")
    x = _inputs(cascade, {"P": 13}, seed=3)
    kept = np.count_nonzero((x["Adj"] > 0) | np.eye(13, dtype=bool))
    work = count_work(cascade, {"P": 13}, inputs=x)
    assert work.points["QK"] == kept * 4  # E = 4
    assert work.points["AV"] == kept * 3  # F = 3
    assert work.per_einsum["QK"]["cmp"] == 13 * 13  # Adj[p,m] > 0 once per (p, m)


# ------------------------------------------------------------------ without the data


@pytest.mark.parametrize("name", DATA_FAMILY)
def test_counts_without_the_data_bound_the_points_on_random_data(name):
    cascade = _load(name)
    bound = count_work(cascade)
    for seed in range(4):
        exact = count_work(cascade, inputs=_inputs(cascade, {}, seed, density=0.2 + 0.2 * seed))
        for key, points in exact.points.items():
            assert bound.upper[key] >= points, (key, seed)
            if bound.kinds[key] == "bound":
                assert bound.points[key] >= points


@pytest.mark.parametrize("name,sizes", [(n, {}) for n in TOP_K] + [
    ("S1_block_gate", {"P": 40, "BS": 5, "KB": 3}), ("S7_topk", {"M": 17, "TK": 5}),
    ("S12_snapkv", {"P": 23, "W": 4, "TK": 6}), ("S4_biformer_routing", {"P": 20, "RS": 5})])
def test_top_k_counts_are_exact_for_distinct_values(name, sizes):
    cascade = _load(name)
    estimate = count_work(cascade, sizes)
    exact = count_work(cascade, sizes, inputs=_inputs(cascade, sizes, seed=7))
    assert estimate.points == exact.points
    assert estimate.total == exact.total
    assert "top-k" in estimate.kinds.values()
    assert set(estimate.kinds.values()) <= {"exact", "top-k"}
    assert any(estimate.upper[k] > estimate.points[k] for k in estimate.points)


def test_top_k_with_ties_keeps_every_tied_entry():
    cascade = _load("S7_topk")
    x = _inputs(cascade, {}, seed=0)
    x["Q"][:] = 0.0  # every score 0: all tie, nothing beats anything, every entry is kept
    tied = count_work(cascade, inputs=x)
    assert tied.points["QK"] == count_work(cascade).upper["QK"] > count_work(cascade).points["QK"]


def test_gather_counts_are_exact_and_read_one_entry_per_index():
    cascade = _load("S11_index_gather")
    sizes = {"P": 9, "M": 30, "J": 6}
    work = count_work(cascade, sizes)
    assert work.points["QK"] == 9 * 6 * 4 and work.points["AV"] == 9 * 6 * 3
    assert work.kinds["QK"] == work.kinds["AV"] == "gather"
    assert work.points == count_work(cascade, sizes, inputs=_inputs(cascade, sizes, 2)).points


def test_top_k_with_a_correlated_condition_is_an_assumption():
    text = """rank P = 6, M = 8
param K = 3
index m2 : M
input S[p,m]
output T[p,m]
C[p,m] = sum[m2] (S[p,m2] > S[p,m])
T[p,m] = S[p,m] where C[p,m] < K and m <= p + 2
"""
    cascade = parse(text, "topk.ein")
    work = count_work(cascade)
    assert work.kinds["T"] == "assumed"
    exact = count_work(cascade, inputs={"S": np.random.default_rng(0).standard_normal((6, 8))})
    assert work.upper["T"] >= exact.points["T"]


def test_a_given_density_is_an_assumption_and_a_param_gives_the_same():
    cascade = _load("M11_graph")
    p, e = 8, 4
    work = count_work(cascade, densities={"Adj": 0.25})
    assert work.points["QK"] == round(p * e + 0.25 * (p * p - p) * e)  # the diagonal is kept
    assert work.kinds["QK"] == "assumed"
    text = (CATALOGUE / "M11_graph.ein").read_text().replace(
        "rank P = 8, E = 4, F = 3", "rank P = 8, E = 4, F = 3\nparam DENSITY_Adj = 0.25")
    assert count_work(_load("M11_graph", text)).points == work.points
    with pytest.raises(CascadeError, match="must lie in"):
        count_work(cascade, densities={"Adj": 1.5})
    bound = count_work(cascade)
    assert bound.kinds["QK"] == "bound" and bound.points["QK"] == p * p * e


NEGATED = """rank P = 9, E = 3
index m : P
input Q[p,e], K[m,e], Adj[p,m]
output S[p,m]
S[p,m] = sum[e] Q[p,e] * K[m,e] where not (Adj[p,m] > 0 and m != p) and m <= p
"""


def test_a_negated_mask_is_bounded_by_taking_it_false_inside_the_not():
    cascade = parse(NEGATED, "negated.ein")
    bound = count_work(cascade)
    assert bound.kinds["S"] == "bound" and bound.points["S"] == 45 * 3  # m <= p only
    for seed in range(4):
        x = _inputs(cascade, {}, seed, density=0.25 * seed)
        exact = count_work(cascade, inputs=x)
        adj = (x["Adj"] > 0) & ~np.eye(9, dtype=bool)
        assert exact.points["S"] == np.count_nonzero(~adj & np.tri(9, dtype=bool)) * 3
        assert exact.points["S"] <= bound.points["S"]
    half = count_work(cascade, densities={"Adj": 0.5})  # the diagonal always, half the rest
    assert half.points["S"] == (9 + 0.5 * 36) * 3 and half.kinds["S"] == "assumed"


def test_a_mask_that_keeps_nothing_still_costs_its_evaluation():
    from simulator.arch import resolve_arch
    from mapper.search import search

    cascade = _load("M11_graph", (CATALOGUE / "M11_graph.ein").read_text().replace(
        "or p == m", "and p != m"))
    work = count_work(cascade, densities={"Adj": 0.0})
    assert work.points["QK"] == 0 and work.per_einsum["QK"]["cmp"] == 8 * 7
    from einsum_ir.analysis.data_selectivity import with_densities

    _, report = search(with_densities(cascade, {"Adj": 0.0}), resolve_arch("fusemax"), {},
                       top=1).best[0]
    qk = next(e for e in report.einsums if e.key == "QK")
    assert qk.ops.get("cmp", 0) == 8 * 7 and report.cycles > 0


def test_scatters_and_gathers_from_intermediates_are_refused_with_a_location():
    text = """rank P = 4, M = 6, J = 2, E = 3
input KV[m,e], Idx[p,j]
output G[p,j,e]
W[m,e] = KV[m,e] * 2
G[p,j,e] = W[Idx[p,j], e]
"""
    with pytest.raises(CascadeError, match="gathers from inputs only") as info:
        count_work(parse(text, "g.ein"))
    assert info.value.span.line == 5


# ------------------------------------------------------------------ the simulator


SIM_CASES = [("S1_block_gate", {"P": 60, "BS": 6}, {}), ("S7_topk", {"P": 64, "M": 40}, {}),
             ("S11_index_gather", {"P": 32, "M": 96, "J": 8}, {}),
             ("M11_graph", {"P": 48}, {"Adj": 0.1}), ("M11_graph", {"P": 48}, {})]


@pytest.mark.parametrize("name,sizes,densities", SIM_CASES)
def test_simulate_is_plausible_and_never_costlier_than_dense_on_its_mapping(name, sizes, densities):
    from harness.invariants import check
    from harness.targets import simulate, strip_masks
    from mapper.search import search
    from simulator.arch import resolve_arch
    from simulator.mapping_check import simulate_saved
    from einsum_ir.analysis.data_selectivity import with_densities

    cascade = with_densities(_load(name), densities)
    dense_cascade = strip_masks(cascade)
    facts = simulate(cascade, "fusemax", sizes)
    dense = simulate(dense_cascade, "fusemax", sizes) if dense_cascade != cascade else None
    assert check(facts, dense).kind.value == "mapped_ok", check(facts, dense)
    work = count_work(cascade, sizes)
    for e in facts.einsums:  # the simulator costs the analysis's counts
        assert e.points == work.points[e.key]
    if dense is None:
        return
    arch = resolve_arch("fusemax")
    mapping, dense_report = search(dense_cascade, arch, sizes, top=1).best[0]
    mapping = replace(mapping, cascade_digest="")  # made for the dense form: applied to ours
    masked = simulate_saved(cascade, arch, mapping, sizes)
    if work.kinds["QK"] == "bound":  # the same points, plus evaluating the mask
        assert masked.cycles >= dense_report.cycles
    else:
        assert masked.cycles <= dense_report.cycles
        assert masked.energy_pJ <= dense_report.energy_pJ


def test_gathered_rows_are_fetched_per_use_at_most_the_whole_tensor():
    from simulator.counts import _gather_words
    from simulator.problem import problem_for

    cascade = _load("S11_index_gather")
    prob = problem_for(cascade, {"P": 32, "M": 96, "J": 8})
    assert prob.gathered["K"] == (32 * 8 * 4, frozenset({"p", "j"}))
    assert prob.gathered["V"] == (32 * 8 * 3, frozenset({"p", "j"}))

    class Loops:  # the two methods _gather_words asks of simulator.loops.Loops
        def __init__(self, extents):
            self.extents = extents

        def var(self, name):
            return name[0].lower()

        def extent(self, name):
            return self.extents[name]

    class Group:
        def __init__(self, loops):
            self.loops = loops

    one_tile = _gather_words(prob, Loops({}), Group(()), "K")
    assert one_tile == 96 * 4  # 256 rows named, 96 exist: a tile holding K fetches each once
    four = _gather_words(prob, Loops({"P2": 4}), Group(("P2",)), "K")
    assert four == 32 * 8 * 4  # 4 tiles may fetch 4 x 96 rows; they name 256: once per use
    keys = _gather_words(prob, Loops({"M1": 4}), Group(("M1",)), "K")
    assert keys == one_tile  # a loop over the keys themselves does not choose rows


# ------------------------------------------------------------------ the command line


def test_cli_work_and_simulate_state_the_bound_and_the_assumption(capsys, tmp_path):
    from cascade_cli.main import main

    path = str(CATALOGUE / "M11_graph.ein")
    assert main(["work", path]) == 0
    out = capsys.readouterr().out
    assert "QK: bound" in out and "upper bound" in out
    assert main(["work", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["QK"]["kind"] == "bound" and data["QK"]["upper_bound"] == 256
    assert main(["work", path, "--density", "Adj=0.1"]) == 0
    out = capsys.readouterr().out
    assert "QK: assumed (upper bound 256); density 0.1 of Adj (given)" in out
    assert main(["simulate", str(CATALOGUE / "S7_topk.ein"), "--arch", "fusemax"]) == 0
    out = capsys.readouterr().out
    assert "QK: top-k (upper bound 140)" in out and "exact when the ranked values are distinct" in out
    cascade = _load("M11_graph")
    x = _inputs(cascade, {}, seed=1)
    np.savez(tmp_path / "in.npz", **x)
    assert main(["work", path, "--inputs", str(tmp_path / "in.npz")]) == 0
    out = capsys.readouterr().out
    kept = np.count_nonzero((x["Adj"] > 0) | np.eye(8, dtype=bool))
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["QK"])
    assert row[1] == f"{kept * 4:,}"
    assert "QK: exact" in out and "decided on the given inputs" in out
    assert main(["work", path, "--density", "Nope=0.1"]) == 1
    assert "no data-dependent mask reads or masks Nope" in capsys.readouterr().err
