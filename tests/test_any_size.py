"""Sizes that are not multiples of the array side: ragged spatial tiles, partial occupancy,
imperfect buffer tiling, PE utilization, and the error for a unit no rank can fill.

Scaling rule of the "within 1.1x" checks: the best mapping at size n must take at most
1.1 x cycles(1024) x (n / 1024)^k cycles, k being the exponent of the work in n (GEMM: n^3 MACs;
attention with P = M = n and fixed E, F: n^2 points per Einsum).
"""
import contextlib
import io
import math
from pathlib import Path

import pytest

from cascade_cli.main import main
from einsum_ir import load, loads
from einsum_ir.errors import CascadeError
from mapper.builders import pow2_divisors, single_group, tile_counts
from mapper.search import search
from mapper.space import spatial_candidates, spatial_options, tilings
from simulator.arch import resolve_arch
from simulator.check.eventsim import simulate_events
from simulator.cost import simulate
from simulator.problem import problem_for

ROOT = Path(__file__).resolve().parents[1]
MHA_1PASS = ROOT / "examples" / "attention" / "mha_1pass.ein"
GEMM_TEXT = """
rank M = 1024, N = 1024, K = 1024
input A[m,k], B[k,n]
output Z[m,n]
Z[m,n] = sum[k] A[m,k] * B[k,n]
"""
GEMM = loads(GEMM_TEXT)


def _best(cascade, arch, sizes):
    return search(cascade, arch, sizes, top=1).best[0]


def _scaled_bound(cycles_1024: float, n: int, k: int) -> float:
    return 1.1 * cycles_1024 * (n / 1024) ** k


def test_mha_1pass_at_1000_is_within_1p1_of_1024_scaled():
    arch = resolve_arch("fusemax")
    cascade = load(MHA_1PASS)
    at = {n: _best(cascade, arch, {"B": 1, "H": 1, "P": n, "M": n}) for n in (1000, 1024)}
    mapping, report = at[1000]
    assert report.cycles <= _scaled_bound(at[1024][1].cycles, 1000, 2)
    # the queries are spread across the array in ragged 256-wide tiles (4 tiles cover 1000)
    assert "P0" in mapping.einsums["QK"].spatial
    assert mapping.tiles["P"]["P0"] == 256 and 1000 % 256


def test_gemm_1000_cubed_is_within_1p1_of_1024_scaled():
    arch = resolve_arch("fusemax")
    at = {n: _best(GEMM, arch, {"M": n, "N": n, "K": n})[1] for n in (1000, 1024)}
    assert at[1000].cycles <= _scaled_bound(at[1024].cycles, 1000, 3)
    # lower bound: n^3 MACs on 256 x 256 PEs, one MAC per PE per cycle
    assert at[1000].cycles >= 1000 ** 3 / 256 ** 2
    assert at[1000].pe_utilization["2d"] == pytest.approx(1000 ** 3 / (256 ** 2 * at[1000].cycles))


def test_small_gemm_pe_utilization_counts_idle_pes():
    """An 84 x 84 output spread over a 256 x 256 array (K in time): every cycle the array is
    busy, but only the 84 x 84 PEs that hold an output do useful work."""
    arch = resolve_arch("fusemax")
    m_, n_, k_ = 84, 84, 256
    sizes = {"M": m_, "N": n_, "K": k_}
    mapping = single_group(["Z"], {"Z": "2d"}, {"2d": ["M", "N"]})
    r = simulate(GEMM, arch, mapping, sizes)
    assert r.cycles == pytest.approx(k_)  # compute-bound: the transfers take fewer cycles
    assert r.utilization["2d"] == 1.0  # busy time
    useful_macs = m_ * n_ * k_
    assert r.pe_utilization["2d"] == pytest.approx(useful_macs / (256 * 256 * r.cycles))
    assert r.pe_utilization["2d"] == pytest.approx(m_ * n_ / 256 ** 2)  # 0.1077
    assert r.groups[0].pe_utilization == {"2d": r.pe_utilization["2d"]}  # the units it uses
    assert r.einsums[0].work == useful_macs
    js = r.to_json()
    assert js["pe_utilization"]["2d"] == r.pe_utilization["2d"]
    assert js["groups"][0]["pe_utilization"]["2d"] == r.pe_utilization["2d"]
    assert "PE util" in str(r) and f"{r.pe_utilization['2d']:.4f}" in str(r)


def test_small_gemm_is_mapped_on_the_partly_filled_2d_array():
    """Smaller than the array on two ranks: the 2D array, partly filled, beats the full 1D one
    (which needs at least M N K / 256 cycles)."""
    arch = resolve_arch("fusemax")
    sizes = {"M": 84, "N": 84, "K": 256}
    mapping, report = _best(GEMM, arch, sizes)
    assert mapping.einsums["Z"].unit == "2d"
    assert report.cycles < 84 * 84 * 256 / 256


def test_a_rank_smaller_than_the_array_is_a_fallback_candidate():
    sizes = {"M": 84, "N": 84, "K": 1000}
    assert [c[0] for c in spatial_candidates(GEMM, sizes, 256)] == ["K0"]
    assert {c[0] for c in spatial_candidates(GEMM, sizes, 256, fallback=True)} == {"K0", "M", "N"}
    # a ragged rank is a first choice: 1000 = 3 x 256 + 232
    assert ("K0", "K", 256) in spatial_candidates(GEMM, sizes, 256)


def test_imperfect_buffer_tiling_is_in_the_mapspace():
    assert tile_counts(13) == [13, 8, 4, 2, 1]
    for n in (1, 2, 4, 64):  # at powers of two the mapspace is what it was
        assert tile_counts(n) == pow2_divisors(n)
    arch = resolve_arch("fusemax", {"pe_dim": 16})
    sizes = {"M": 200, "N": 200, "K": 16}
    prob = problem_for(GEMM, sizes)
    counts = set()
    for _, tile_sizes in spatial_options(GEMM, prob.sizes, arch):
        if "M" in tile_sizes:
            for t in tilings(GEMM, prob, prob.order, tile_sizes, [], (0.0,)):
                counts.add(t.tiles["M"]["M1"])
    assert counts == {13, 8, 4, 2, 1}  # ceil(200 / 16) = 13 tiles


def test_ragged_tiles_agree_with_the_event_driven_simulation():
    """P = 200 queries in 16-wide tiles (the last one 8 wide), M = 777 keys in 16-key tiles (the
    last 9 keys): the mapper's best mapping, simulated event by event, within 1%."""
    arch = resolve_arch("fusemax", {"pe_dim": 16})
    cascade = load(MHA_1PASS)
    sizes = {"B": 1, "H": 1, "E": 16, "F": 16, "P": 200, "M": 777, "M0": 16}
    mapping, report = _best(cascade, arch, sizes)
    assert "P0" in mapping.einsums["QK"].spatial
    assert 200 % math.prod(mapping.tiles["P"].values())  # an imperfect factorisation
    prob = problem_for(cascade, {**sizes, **mapping.sizes})
    events = simulate_events(prob, arch, mapping)["cycles"]
    assert events == pytest.approx(report.cycles, rel=0.01)
    assert events >= report.cycles * (1 - 1e-9)


def test_vectorised_evaluation_matches_resimulation_at_ragged_sizes():
    arch = resolve_arch("fusemax")
    result = search(GEMM, arch, {"M": 1000, "N": 1000, "K": 1000}, top=1, modes=("pipelined",))
    fastest = min(lat for lat, _ in result.front)
    assert result.best[0][1].latency_s == pytest.approx(fastest, rel=1e-12)


def test_a_multi_pe_unit_with_no_rank_to_spread_is_an_error():
    arch = resolve_arch("fusemax")
    with pytest.raises(CascadeError) as err:
        search(GEMM, arch, {"M": 1, "N": 1, "K": 1})
    assert "2d" in str(err.value) and err.value.hint


def test_the_cli_reports_a_unit_with_no_rank_to_spread(tmp_path):
    path = tmp_path / "gemm.ein"
    path.write_text(GEMM_TEXT)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["map", str(path), "--arch", "fusemax", "--set", "M=1", "--set", "N=1",
                   "--set", "K=1", "--no-progress"])
    assert rc == 1
    assert "no rank of the cascade can be spread" in err.getvalue() and "hint:" in err.getvalue()


def test_attention_smaller_than_the_array_takes_no_longer_than_a_full_one():
    """P = M = 100 on a 256-PE side: no rank fills a PE dimension (the key tile M0 = 256 splits
    only 100 keys), so both units spread the ranks they have, partly filled; a problem smaller in
    every rank then costs at most what P = M = 256 does."""
    arch = resolve_arch("fusemax")
    cascade = load(MHA_1PASS)
    small, full = (_best(cascade, arch, {"P": n, "M": n})[1] for n in (100, 256))
    assert small.cycles <= full.cycles
    assert small.pe_utilization["1d"] > 1 / 256  # the 1D array spreads a rank too
