"""Pipeline fill and drain of systolic arrays (``units[i].timing``), against first principles and
SCALE-Sim 3.0.0.

First principles, on an R x C array. Output-stationary (outputs M x N spread, K streamed): row i
of the array receives its operands i cycles late and column j j cycles late (the skew that lets
each PE pass them on), so PE (R-1, C-1) does its last MAC at cycle (R - 1) + (C - 1) + K - 1:
one fold takes K + R + C - 2 cycles, and SCALE-Sim drains each fold before the next. Weight-
stationary (weights K x N spread, M streamed): the same skew, after loading the weights one row
per cycle (R cycles): M + 2R + C - 2 per fold (M + 3D - 2 on a D x D array).

SCALE-Sim reports the 0-based index of the cycle of the last output write (``total_cycles =
max(ofmap_serviced_cycles)`` in its double-buffered scratchpad), one less than the cycles
elapsed: ``folds x (K + 2D - 2) - 1`` for output-stationary and ``folds x (M + 3D - 2) - 1`` for
weight-stationary. ``SCALESIM`` below holds the numbers it printed (``bench/peers.py`` reruns it).
"""
import math

import pytest

from einsum_ir import loads
from einsum_ir.errors import CascadeError
from mapper.builders import single_group
from simulator.arch import arch_from_dict
from simulator.cost import simulate


def systolic(rows, cols, fill_drain="per_tile", weight_load="exposed"):
    """One R x C MAC array, 1 Hz (cycles), memory never the bound."""
    return arch_from_dict({
        "name": "sa", "clock_hz": 1, "word_bytes": 2, "actions": {"mac": 1},
        "units": [{"name": "array", "dims": [rows, cols],
                   "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}},
                           "mul": {"cycles": 1, "actions": {"mac": 1}}},
                   "timing": {"fill_drain": fill_drain, "weight_load": weight_load}}],
        "levels": [{"name": "DRAM", "bandwidth": 1e15, "access_bytes": 2, "read_pJ": 1, "write_pJ": 1},
                   {"name": "GLB", "capacity": 2 ** 40, "access_bytes": 4, "read_pJ": 1,
                    "write_pJ": 1}]}, "sa.yaml")


def gemm(m, n, k):
    return loads(f"rank M = {m}, N = {n}, K = {k}\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
                 "C[m,n] = sum[k] A[m,k] * B[k,n]\n")


OS = {"array": ["M", "N"]}  # outputs across the array, K in time
WS = {"array": ["K", "N"]}  # weights B[k,n] across the array, M in time


def exact(n):
    """Cycle counts are integers; the model's sums are floats (a 1-cycle error still fails)."""
    return pytest.approx(n, abs=1e-6)


def cycles(m, n, k, rows, cols, spatial, **timing):
    mapping = single_group(["C"], {"C": "array"}, spatial)
    return simulate(gemm(m, n, k), systolic(rows, cols, **timing), mapping)


# (dataflow, R, C, M, N, K) -> what SCALE-Sim 3.0.0 printed as "Total Cycles" (GEMM mode)
SCALESIM = {
    ("os", 8, 8, 20, 12, 7): 125, ("os", 8, 8, 9, 30, 13): 215, ("os", 4, 8, 20, 12, 7): 169,
    ("os", 8, 4, 9, 30, 13): 367, ("os", 5, 3, 16, 16, 16): 527,
    ("ws", 8, 8, 20, 12, 7): 83, ("ws", 8, 8, 9, 30, 13): 247, ("ws", 4, 8, 16, 16, 16): 239,
    ("ws", 8, 4, 20, 12, 7): 113, ("ws", 5, 3, 9, 30, 13): 599,
}

GEMMS = [(20, 12, 7), (9, 30, 13), (16, 16, 16), (100, 3, 37), (1, 64, 5)]
ARRAYS = [(8, 8), (4, 8), (8, 4), (5, 3), (16, 16)]


@pytest.mark.parametrize("m,n,k", GEMMS)
@pytest.mark.parametrize("rows,cols", ARRAYS)
def test_output_stationary_per_tile_is_one_fill_per_fold(m, n, k, rows, cols):
    folds = math.ceil(m / rows) * math.ceil(n / cols)
    r = cycles(m, n, k, rows, cols, OS)
    assert r.cycles == exact(folds * (k + rows + cols - 2))
    assert r.einsums[0].fill_cycles == folds * (rows + cols - 2)
    # the work itself is unchanged; the fill shows as lower utilization
    assert r.einsums[0].cycles == exact(folds * k)  # the counts' float folding factor
    assert r.utilization["array"] == pytest.approx(k / (k + rows + cols - 2))


@pytest.mark.parametrize("m,n,k", GEMMS)
@pytest.mark.parametrize("rows,cols", ARRAYS)
def test_weight_stationary_per_tile_loads_the_weights(m, n, k, rows, cols):
    folds = math.ceil(k / rows) * math.ceil(n / cols)
    assert cycles(m, n, k, rows, cols, WS).cycles == exact(folds * (m + 2 * rows + cols - 2))
    hidden = cycles(m, n, k, rows, cols, WS, weight_load="hidden")
    assert hidden.cycles == exact(folds * (m + rows + cols - 2))


@pytest.mark.parametrize("key", sorted(SCALESIM))
def test_scalesim_numbers_are_the_same_schedule(key):
    """On a D x D array the formulas are the issue's folds x (K + 2D - 2) - 1 (OS) and
    folds x (M + 3D - 2) - 1 (WS): SCALE-Sim counts from cycle 0."""
    df, rows, cols, m, n, k = key
    r = cycles(m, n, k, rows, cols, OS if df == "os" else WS)
    assert r.cycles == exact(SCALESIM[key] + 1)
    if rows == cols:
        d = rows
        if df == "os":
            expected = math.ceil(m / d) * math.ceil(n / d) * (k + 2 * d - 2) - 1
        else:
            expected = math.ceil(k / d) * math.ceil(n / d) * (m + 3 * d - 2) - 1
        assert SCALESIM[key] == expected


def test_none_is_the_steady_state_and_per_group_fills_once():
    m, n, k, d = 20, 12, 7, 8
    folds = 3 * 2
    assert cycles(m, n, k, d, d, OS, fill_drain="none").cycles == exact(folds * k)
    assert cycles(m, n, k, d, d, OS, fill_drain="per_group").cycles == exact(folds * k + 2 * d - 2)
    ws = cycles(m, n, k, d, d, WS, fill_drain="per_group")
    # K = 7 fits one row fold, N = 12 takes two column folds: 2 x M steps, one fill
    assert ws.cycles == exact(1 * 2 * m + 3 * d - 2)


def test_batch_and_tiled_stream_start_new_passes():
    """C[b,m,n] with B = 3: every batch is a new set of outputs (3x the folds); with K split
    into 2 tiles of an off-chip loop, every tile restarts the stream (2x again)."""
    batched = loads("rank B = 3, M = 20, N = 12, K = 8\ninput A[b,m,k], W[k,n]\noutput C[b,m,n]\n"
                    "C[b,m,n] = sum[k] A[b,m,k] * W[k,n]\n")
    arch = systolic(8, 8)
    folds = 3 * 3 * 2
    r = simulate(batched, arch, single_group(["C"], {"C": "array"}, OS, loops=("B",)))
    assert r.cycles == exact(folds * (8 + 14))
    split = single_group(["C"], {"C": "array"}, OS, tiles={"K": {"K0": 4}}, loops=("B", "K1"))
    assert simulate(batched, arch, split).cycles == exact(2 * folds * (4 + 14))
    # weight-stationary: W[k,n] stays while b and m stream (one stream of 3 x 20 per fold)
    ws = simulate(batched, arch, single_group(["C"], {"C": "array"}, WS))
    assert ws.cycles == exact(1 * 2 * (3 * 20 + 3 * 8 - 2))


def test_elementwise_einsum_pays_one_fill_per_tile():
    """Nothing stays in the PEs of an element-wise map: its tile streams through once."""
    ew = loads("rank M = 16, N = 16\ninput X[m,n], Y[m]\noutput Z[m,n]\nZ[m,n] = X[m,n] * Y[m]\n")
    arch = systolic(8, 8)
    mapping = single_group(["Z"], {"Z": "array"}, {"array": ["M0", "N0"]},
                           tiles={"M": {"M0": 8}, "N": {"N0": 8}}, loops=("M1", "N1"))
    assert simulate(ew, arch, mapping).cycles == exact(4 * 1 + 4 * 14)


@pytest.mark.parametrize("timing,field,message", [
    ({"fill_drain": "always"}, "units[0].timing.fill_drain", "expected one of none, per_group"),
    ({"weight_load": "never"}, "units[0].timing.weight_load", "expected one of exposed, hidden"),
    ({"fill": "per_tile"}, "units[0].timing.fill", "unknown field"),
])
def test_bad_timing_is_a_located_error(timing, field, message):
    spec = {"name": "sa", "clock_hz": 1, "actions": {"mac": 1},
            "units": [{"name": "array", "dims": [4, 4], "timing": timing,
                       "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}}}],
            "levels": [{"name": "DRAM", "bandwidth": 1e9, "access_bytes": 2, "read_pJ": 1,
                        "write_pJ": 1}]}
    with pytest.raises(CascadeError) as e:
        arch_from_dict(spec, "sa.yaml")
    assert f"sa.yaml: {field}: {message}" in str(e.value)
