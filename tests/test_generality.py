"""The generality harness, bounded: random cascades through Triton and the simulator, and every
failure the harness ever found as a regression (tests/harness/regressions/*.ein).

A random cascade may be refused (a located CascadeError for Triton; any CascadeError for the
simulator) but must never crash, disagree with the interpreter, be refused without a location or
break a report invariant, unless it fails in a way a regression file records as failing today
(``# xfail:`` with its ``# group:``); those regressions are strict xfails, so a fix flips them.
The long run is ``make fuzz`` (bench/generality.py).
"""
import math

import numpy as np
import pytest

from triton_lane import torch  # noqa: F401 (sets TRITON_INTERPRET before triton is imported)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from einsum_ir import analyze, format_cascade, parse  # noqa: E402
from einsum_ir.errors import CascadeError  # noqa: E402
from harness import compare, invariants, outcomes, regressions, targets  # noqa: E402
from harness.outcomes import Kind  # noqa: E402
from harness.runner import run_simulator, run_triton  # noqa: E402
from harness.strategy import cascades  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

REGRESSIONS = regressions.all_regressions()


def _family(target: str) -> str:
    """A simulator failure found on one architecture is known on every architecture."""
    return "simulator" if target.startswith("simulator/") else target


# (target, group) of failures known today: tolerated in the random run, pinned by a strict xfail
KNOWN = {(_family(r.target), r.group) for r in REGRESSIONS if r.xfail and r.group}
# No shrinking here: a failure prints its .ein at once (harness.minimize shrinks it offline).
_BOUNDED = dict(deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def _assert_no_new_failure(target: str, outcome, case) -> None:
    if outcome.failed and (_family(target), outcome.group) not in KNOWN:
        pytest.fail(f"{target}: {outcome.describe()}\n{case.text}")


@settings(max_examples=60, **_BOUNDED)
@given(cascades())
def test_generated_cascades_verify_and_round_trip(case):
    cascade = parse(case.text, "generated.ein")
    analyze(cascade)
    assert parse(format_cascade(cascade)) == cascade
    if "param CAP" in case.text or " empty " in case.text:
        # constructs only the interpreter evaluates today (Triton refuses them with a location):
        # values stay within the strategy's bounds, declared empty values included
        from einsum_ir import evaluate

        out = evaluate(cascade)
        assert all(np.isfinite(v).all() for v in out.values())


@settings(max_examples=50, **_BOUNDED)
@given(cascades(max_builders=3))
def test_triton_matches_or_refuses_with_a_location(case):
    _assert_no_new_failure("triton", run_triton(case), case)


@pytest.mark.parametrize("arch", ["fusemax", "edge"])
@settings(max_examples=30, **_BOUNDED)
@given(case=cascades(max_builders=3))
def test_simulator_maps_within_invariants_or_refuses(arch, case):
    _assert_no_new_failure(f"simulator/{arch}", run_simulator(case, arch), case)


def _regression_params():
    params = []
    for r in REGRESSIONS:
        marks = [pytest.mark.xfail(strict=True, reason=r.xfail)] if r.xfail else []
        params.append(pytest.param(r, id=r.name, marks=marks))
    return params


@pytest.mark.parametrize("regression", _regression_params())
def test_regression(regression, monkeypatch):
    if regression.memory_mib:
        monkeypatch.setattr(targets, "MEMORY_BYTES", regression.memory_mib << 20)
    case = regression.case
    outcome = (run_triton(case, regression.lowering) if regression.target == "triton"
               else run_simulator(case, regression.target.split("/")[1]))
    assert not outcome.failed, f"{regression.target}: {outcome.describe()}"


def test_every_known_failure_group_has_a_reproducer_that_shows_it():
    for r in REGRESSIONS:
        assert r.about and (r.xfail is None) == (r.group is None), r.name


# ---------------------------------------------------------------- the harness itself can fail


def test_comparison_flags_wrong_values_nan_and_missing_zeros():
    ref = np.array([1.0, 0.0, -2.0])
    assert compare.compare({"O": ref + 1e-7}, {"O": ref}, {"O": ref}).kind is Kind.MATCHED
    wrong = compare.compare({"O": ref * 1.01}, {"O": ref}, {"O": ref})
    assert wrong.kind is Kind.MISMATCH and wrong.group == "values differ"
    nan = compare.compare({"O": np.array([np.nan, 0.0, -2.0])}, {"O": ref}, {"O": ref})
    assert nan.group == "NaN where the interpreter has a value"
    empty = compare.compare({"O": np.array([1.0, 3.0, -2.0])}, {"O": ref}, {"O": ref})
    assert empty.group == "values where the interpreter has zeros (empty points)"
    assert compare.compare({}, {"O": ref}, {"O": ref}).group == "output missing"


def test_refusals_without_a_location_are_failures():
    located = parse("rank P = 3\ninput X[p]\noutput Y[p]\nY[p] = X[p]\n", "x.ein")
    span = located.einsums[0].span
    assert targets._refusal(CascadeError("no", span)).kind is Kind.REFUSED
    assert targets._refusal(CascadeError("no")).kind is Kind.UNLOCATED


def _facts(**changes):
    cascade = parse("rank P = 4\ninput X[p]\noutput Y[p]\nY[p] = exp(X[p])\n", "x.ein")
    unit = targets.UnitFacts(pes=2, cycles={"exp": 6}, energy_pJ={"exp": 10.0})
    base = dict(form="as written", cascade=cascade, sizes={"P": 4}, cycles=12.0, energy_pJ=40.0,
                compute_energy_pJ=40.0, numbers=(("cycles", 12.0),),
                einsums=(targets.EinsumFacts("Y", "u", 4, {"exp": 4}),), units={"u": unit})
    base.update(changes)
    return targets.SimFacts(**base)


def test_invariants_catch_each_violation():
    assert invariants.check(_facts(), None).kind is Kind.MAPPED_OK
    bad = {"finite": _facts(numbers=(("x", math.inf),)),
           "latency_bound": _facts(cycles=11.0),
           "energy_bound": _facts(energy_pJ=39.0),
           "exact_points": _facts(einsums=(targets.EinsumFacts("Y", "u", 5, {"exp": 5}),),
                                  cycles=100.0, energy_pJ=100.0)}
    for which, facts in bad.items():
        out = invariants.check(facts, None)
        assert out.kind is Kind.INVARIANT_VIOLATED and out.group.startswith(which), (which, out)
    dense = _facts(einsums=(targets.EinsumFacts("Y", "u", 3, {"exp": 3}),))
    assert invariants.check(_facts(), dense).group == "masked_work"


def test_outcome_groups_ignore_names_and_numbers():
    a = outcomes.refused("x.ein:3:4: error: the reduction over T12 of 13 points")
    b = outcomes.refused("y.ein:9:1: error: the reduction over T3 of 7 points")
    assert a.group == b.group


def test_minimize_keeps_the_failure_and_drops_the_rest():
    from harness.minimize import minimize
    from harness.strategy import Case

    text = ("rank P = 9\nrank E = 5\ninput X[p, e], Y[p]\noutput A[p, e], B[p]\n\n"
            "A[p, e] = exp(X[p, e]) * 2 where e <= p\nB[p] = sum[e] X[p, e] * Y[p]\n")

    def fails(case):
        return any(e.where is not None for e in case.cascade.einsums)

    small = minimize(Case(text), fails)
    assert fails(small)
    assert [e.name for e in small.cascade.einsums] == ["A"]
    assert "exp" not in small.text and "rank P = 1" in small.text
