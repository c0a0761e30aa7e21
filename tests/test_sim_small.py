"""Hand-worked small cases, Timeloop exercise cases, the cycle-level check, and invariants."""
import pytest
from hypothesis import given, settings, strategies as st

from einsum_ir import loads
from simulator.arch import arch_from_dict
from mapper.builders import single_group
from simulator.check.eventsim import simulate_events
from simulator.cost import simulate, simulate_problem
from simulator.check.nest import NestLevel, analyze_nest
from simulator.problem import problem_for


def tiny_arch(rows=2, cols=2, bandwidth=8, capacity=1024, exp_cycles=3):
    """Clock 1 Hz, so bandwidth is bytes per cycle; energies in round numbers."""
    return arch_from_dict({
        "name": "tiny", "clock_hz": 1, "word_bytes": 2,
        "actions": {"mac": 1.0, "add": 0.5, "exp": 4.0},
        "units": [
            {"name": "array", "dims": [rows, cols], "ops": {
                "mac": {"cycles": 1, "actions": {"mac": 1}}, "add": {"cycles": 1, "actions": {"add": 1}}}},
            {"name": "vec", "dims": [2], "ops": {
                "mac": {"cycles": 1, "actions": {"mac": 1}}, "add": {"cycles": 1, "actions": {"add": 1}},
                "exp": {"cycles": exp_cycles, "actions": {"exp": 1}}}},
        ],
        "levels": [{"name": "DRAM", "bandwidth": bandwidth, "access_bytes": 2, "read_pJ": 10, "write_pJ": 10},
                   {"name": "GLB", "capacity": capacity, "access_bytes": 4, "read_pJ": 2, "write_pJ": 2}],
        "area": [{"name": "pe", "count": rows * cols, "um2": 100}],
    }, "tiny.yaml")


GEMM = loads("""
rank I = 4, J = 4, K = 8
input A[i,k], B[k,j]
output C[i,j]
C[i,j] = sum[k] A[i,k] * B[k,j]
""")


def test_tiny_gemm_on_2x2_array():
    """C[i,j] = sum_k A[i,k] B[k,j], I = J = 4, K = 8: 128 MACs.

    Mapping: i0 (2) down the rows, j0 (2) across the columns, k in time inside each PE; off-chip
    loops I1 (2) > J1 (2). Compute: 128 MACs / 4 PEs = 32 cycles.
    Traffic (reuse rule): A[i,k] is indexed by I1 and J1 is innermost, so A is fetched once:
    4*8 words = 64 B. B[k,j] is not indexed by I1, which encloses J1 that indexes it: fetched
    I1 = 2 times: 2*32*2 = 128 B. C written once: 32 B. Total 224 B at 8 B/cycle = 28 cycles,
    under the 32 compute cycles, so latency = 32 cycles, utilization 1.
    Energy: 128 MACs x 1 pJ + 224 B / 2 B per access x 10 pJ = 128 + 1120 = 1248 pJ, plus the
    buffer (4-byte accesses = 2 words, 2 pJ each): 96 words filled (48 accesses, 96 pJ), and the
    array reads its tiles: A 2x8 words per (i1,j1) x 4 = 64 words, B 8x2 x 4 = 64 words -> 128
    words = 64 accesses, 128 pJ; C goes from the array to DRAM directly (no buffer write and
    drain read). Total 1248 + 96 + 128 = 1472.
    """
    arch = tiny_arch()
    m = single_group(["C"], {"C": "array"}, {"array": ["I0", "J0"]},
                     tiles={"I": {"I0": 2}, "J": {"J0": 2}}, loops=("I1", "J1"))
    r = simulate(GEMM, arch, m)
    assert r.cycles == 32 and r.utilization["array"] == 1.0
    assert r.traffic_bytes == 224
    g = r.groups[0]
    assert (g.dram_read, g.dram_write) == (192, 32)
    assert r.energy_breakdown["compute"] == 128
    assert r.energy_breakdown["DRAM"] == 1120
    assert r.energy_breakdown["GLB"] == 96 + 128
    assert r.energy_pJ == 1472
    # at 2 B/cycle the same mapping is memory-bound: 224 / 2 = 112 cycles
    slow = simulate(GEMM, tiny_arch(bandwidth=2), m)
    assert slow.cycles == 112 and slow.groups[0].bound == "memory"
    assert slow.utilization["array"] == pytest.approx(32 / 112)


CHAIN = loads("""
rank I = 8, K = 4
input A[i,k], B[i,k]
output Y[i]
S[i] = sum[k] A[i,k] * B[i,k]
Y[i] = exp(S[i])
""")


def test_two_units_pipelined_vs_sequential():
    """S on the 2x2 array (i0 down the 2 rows, one column used: min-parallelism is not
    enforced here), Y on the 2-PE vector unit; I0 = 2, loop I1 (4 tiles); memory is fast
    (1000 B/cycle) so compute decides.

    Per tile: S = 2 outputs x 4 MACs / 2 PEs = 4 cycles; Y = 2 exps x 3 cycles / 2 PEs = 3.
    Sequential (a barrier per tile): 4 + 3 = 7 per tile, 28 cycles.
    Pipelined (the vector unit works on tile i while the array computes tile i+1): the steady
    state is the busiest unit, max(16, 12) = 16 cycles. The event-driven simulation also fills
    and drains the pipeline: 4 x 4 + 3 = 19 cycles, plus the first tile's transfer before any
    compute (144 B over 4 tiles at 1000 B/cycle: 0.036 cycles).
    """
    arch = tiny_arch(bandwidth=1000)
    base = dict(tiles={"I": {"I0": 2}}, loops=("I1",))
    binding = {"S": "array", "Y": "vec"}
    spatial = {"array": ["I0"], "vec": ["I0"]}
    pipe = single_group(["S", "Y"], binding, spatial, mode="pipelined", **base)
    seq = single_group(["S", "Y"], binding, spatial, mode="sequential", **base)
    rp, rs = simulate(CHAIN, arch, pipe), simulate(CHAIN, arch, seq)
    assert rp.cycles == 16 and rs.cycles == 28
    prob = problem_for(CHAIN, {})
    assert simulate_events(prob, arch, pipe)["cycles"] == pytest.approx(19.036)
    assert simulate_events(prob, arch, seq)["cycles"] == pytest.approx(28)


# --------------------------------------------------------------------- Timeloop exercise cases

RF = dict(block=1, read_pJ=0.42564, write_pJ=0.42564, leak_pJ=0.000861)
GLB = dict(block=8, read_pJ=43.353, write_pJ=30.878, leak_pJ=0.00797)
DRAM = dict(block=32, read_pJ=2048, write_pJ=2048)


def test_timeloop_case_a_one_level_conv1d():
    """ex00: R=3, P=16, loop nest for P in 16: for R in 3 on a 64x8b regfile (40 nm ERT)."""
    r = analyze_nest({"r": 3, "p": 16}, {"Weights": [["r"]], "Inputs": [["r", "p"]], "Outputs": [["p"]]},
                     "Outputs", [NestLevel("Buffer", {"Weights", "Inputs", "Outputs"},
                                           [("p", 16), ("r", 3)], **RF)], 0.845)
    c = r.counts["Buffer"]
    assert (c["Weights"]["reads"], c["Inputs"]["reads"]) == (48, 48)
    assert (c["Outputs"]["reads"], c["Outputs"]["updates"]) == (32, 48)
    assert r.cycles == 48
    f = r.fj_per_mac()
    assert f["MAC"] == pytest.approx(845.00) and f["Buffer"] == pytest.approx(1561.54, abs=0.01)
    assert f["total"] == pytest.approx(2406.54, abs=0.01)


def _case_b(glb_keeps, rf_keeps):
    t = {"Weights": [["k"], ["r"]], "Inputs": [["r", "p"]], "Outputs": [["k"], ["p"]]}
    levels = [NestLevel("DRAM", {"Weights", "Inputs", "Outputs"}, [], **DRAM),
              NestLevel("GlobalBuffer", glb_keeps, [("k", 16), ("p", 16)], **GLB),
              NestLevel("RegisterFile", rf_keeps, [("k", 2), ("r", 3)], **RF)]
    return analyze_nest({"k": 32, "r": 3, "p": 16}, t, "Outputs", levels, 0.845)


def test_timeloop_case_b_three_level_conv1d():
    """ex03: K=32, R=3, P=16 over DRAM -> GlobalBuffer (K16 > P16) -> RegisterFile (K2 > R3)."""
    everything = {"Weights", "Inputs", "Outputs"}
    r = _case_b(everything, everything)
    rf, glb, dram = r.counts["RegisterFile"], r.counts["GlobalBuffer"], r.counts["DRAM"]
    assert (rf["Weights"]["reads"], rf["Weights"]["fills"]) == (1536, 96)
    assert (rf["Inputs"]["reads"], rf["Inputs"]["fills"]) == (1536, 288)
    assert (rf["Outputs"]["reads"], rf["Outputs"]["updates"]) == (1024, 1536)
    assert (glb["Weights"]["reads"], glb["Weights"]["fills"]) == (96, 96)
    assert (glb["Inputs"]["reads"], glb["Inputs"]["fills"]) == (288, 18)
    assert glb["Outputs"]["updates"] == 512
    assert (dram["Weights"]["reads"], dram["Inputs"]["reads"], dram["Outputs"]["updates"]) == (96, 18, 512)
    f = r.fj_per_mac()
    assert f["RegisterFile"] == pytest.approx(1667.95, abs=0.01)
    assert f["GlobalBuffer"] == pytest.approx(2950.90, abs=0.05)
    assert f["DRAM"] == pytest.approx(26666.67, abs=0.01)
    assert f["total"] == pytest.approx(32130.51, abs=0.05)
    bypass = _case_b({"Weights", "Inputs"}, {"Outputs"}).fj_per_mac()
    assert bypass["total"] == pytest.approx(39369.71, abs=0.05)
    assert bypass["RegisterFile"] == pytest.approx(710.26, abs=0.01)
    assert bypass["GlobalBuffer"] == pytest.approx(11147.78, abs=0.05)


# --------------------------------------------------------------------- cycle level vs analytical


def _with_bandwidth(arch, bw):
    off = arch.levels[0].__class__(**{**arch.levels[0].__dict__, "bandwidth": bw})
    return arch.__class__(**{**arch.__dict__, "levels": (off,) + tuple(arch.levels[1:])})


@pytest.mark.parametrize("config, gib_per_s", [
    ("FuseMax", 400), ("FuseMax", 2), ("+Architecture", 400), ("+Cascade", 400),
    ("FLAT", 400), ("FLAT", 2), ("Unfused", 2)])
def test_event_driven_agrees_with_analytical(config, gib_per_s):
    """Every tile of every Einsum (and every tile's off-chip transfer) as a separate event, on
    small problems (thousands of tiles): within 1% of the analytical steady state, compute-bound
    (400 GiB/s) and memory-bound (2 GiB/s)."""
    from simulator.arch import resolve_arch
    from studies.fusemax.study import (ARCH_ORDER, CASCADE_2D, FUSEMAX_2D, flat_mapping,
                                         one_pass_mapping, unfused_mapping)
    from studies.fusemax.workloads import cascade

    arch_name = {"+Cascade": "cascade_ablation", "FLAT": "flat", "Unfused": "unfused"}.get(config, "fusemax")
    arch = _with_bandwidth(resolve_arch(arch_name, {"pe_dim": 16}), gib_per_s * 2 ** 30)
    sizes = {"B": 2, "H": 2, "E": 16, "F": 16, "P": 256, "M": 512}
    if config in ("FLAT", "Unfused"):
        m = flat_mapping(256, 16, 32) if config == "FLAT" else unfused_mapping(16, 2)
        prob = problem_for(cascade("mha_3pass"), sizes)
    else:
        m = one_pass_mapping(CASCADE_2D if config == "+Cascade" else FUSEMAX_2D, 16, 2,
                             "sequential" if config == "+Architecture" else "pipelined",
                             ARCH_ORDER if config == "+Architecture" else None)
        prob = problem_for(cascade("mha_1pass"), {**sizes, "M0": 16})
    report = simulate_problem(prob, arch, m)
    events = simulate_events(prob, arch, m)["cycles"]
    assert events == pytest.approx(report.cycles, rel=0.01)
    assert events >= report.cycles * (1 - 1e-9)  # the steady state leaves out fill and drain


# --------------------------------------------------------------------- invariants


@settings(max_examples=25, deadline=None)
@given(pe=st.sampled_from([4, 8, 16]), p_tiles=st.sampled_from([1, 2, 4, 8]),
       m_tiles=st.sampled_from([1, 2, 4, 8]), e=st.sampled_from([4, 16, 64]),
       bw=st.floats(1e9, 1e12), glb_kib=st.sampled_from([64, 1024, 16384]))
def test_invariants(pe, p_tiles, m_tiles, e, bw, glb_kib):
    from simulator.arch import resolve_arch
    from studies.fusemax.study import FUSEMAX_2D, one_pass_mapping
    from simulator.counts import Infeasible
    from studies.fusemax.workloads import cascade

    arch = resolve_arch("fusemax", {"pe_dim": pe, "glb_bytes": glb_kib * 1024})
    arch = arch.__class__(**{**arch.__dict__, "levels": (
        arch.levels[0].__class__(**{**arch.levels[0].__dict__, "bandwidth": bw}), arch.levels[1])})
    sizes = {"B": 2, "H": 2, "E": e, "F": e, "P": pe * p_tiles, "M": pe * m_tiles}
    results = []
    for p1 in (p_tiles, 1):
        try:
            r = simulate(cascade("mha_1pass"), arch, one_pass_mapping(FUSEMAX_2D, pe, p1), sizes)
        except Infeasible:
            continue
        busiest = max(e_.cycles for e_ in r.einsums)
        per_unit = {}
        for e_ in r.einsums:
            per_unit[e_.unit] = per_unit.get(e_.unit, 0) + e_.cycles
        assert r.cycles >= max(per_unit.values()) - 1e-6 >= busiest - 1e-6
        assert r.cycles >= r.traffic_bytes / bw * arch.clock_hz * (1 - 1e-12)
        assert all(0 <= u <= 1 + 1e-12 for u in r.utilization.values())
        results.append(r)
    if len(results) == 2:
        a, b = sorted(results, key=lambda r: r.traffic_bytes)
        assert b.energy_pJ >= a.energy_pJ


def test_keep_names_the_architectures_buffer_level():
    """``keep`` and the default placement use the buffer level's own name: a spec that calls its
    buffer SRAM gives the numbers of the same spec calling it GLB, and keep: {T: SRAM} is honoured."""
    from simulator.arch import resolve_arch
    from studies.fusemax.study import FUSEMAX_2D, one_pass_mapping
    from studies.fusemax.workloads import cascade

    arch = resolve_arch("fusemax", {"pe_dim": 16})
    buf = arch.levels[1].__class__(**{**arch.levels[1].__dict__, "name": "SRAM"})
    sram = arch.__class__(**{**arch.__dict__, "levels": (arch.levels[0], buf) + tuple(arch.levels[2:])})
    assert sram.buffer.name == "SRAM"
    sizes = {"B": 2, "H": 2, "E": 16, "F": 16, "P": 256, "M": 512, "M0": 16}
    m = one_pass_mapping(FUSEMAX_2D, 16, 2)
    glb, named = simulate(cascade("mha_1pass"), arch, m, sizes), simulate(cascade("mha_1pass"), sram, m, sizes)
    assert named.cycles == glb.cycles and named.groups[0].footprint == glb.groups[0].footprint > 0
    assert named.energy_breakdown["SRAM"] == glb.energy_breakdown["GLB"]
    from dataclasses import replace

    def keeping(level):
        return replace(m, groups=(replace(m.groups[0], keep={"SLN": level}),))
    kept = simulate(cascade("mha_1pass"), sram, keeping("SRAM"), sizes)
    assert kept.groups[0].footprint > named.groups[0].footprint
    assert kept.groups[0].footprint == simulate(cascade("mha_1pass"), arch, keeping("GLB"), sizes).groups[0].footprint


def _timed(arch, fill_drain, ports=None):
    """``arch`` with every unit's fill/drain set and, with ``ports``, the buffer's ports."""
    import dataclasses

    from simulator.timing import UnitTiming
    units = tuple(dataclasses.replace(u, timing=UnitTiming(fill_drain)) for u in arch.units)
    levels = list(arch.levels)
    if ports:
        levels[1] = dataclasses.replace(levels[1], ports=ports[0], port_bytes=ports[1])
    return dataclasses.replace(arch, units=units, levels=tuple(levels))


@pytest.mark.parametrize("config", ["FuseMax", "+Architecture", "FLAT"])
@pytest.mark.parametrize("fill_drain", ["per_group", "per_tile"])
@pytest.mark.parametrize("ports", [None, (1, 8)])
def test_event_driven_honours_the_timing_options(config, fill_drain, ports):
    """With fill and drain charged (per_tile: 3 to 5 times the steady state here) and the
    buffer's ports the bound (one 8-byte port), the events still agree with the model within 1%
    (the fills are the model's, :func:`simulator.cost.evaluate_group`; the ports a second
    channel every tile waits for)."""
    from simulator.arch import resolve_arch
    from studies.fusemax.study import ARCH_ORDER, FUSEMAX_2D, flat_mapping, one_pass_mapping
    from studies.fusemax.workloads import cascade

    sizes = {"B": 2, "H": 2, "E": 16, "F": 16, "P": 256, "M": 512}
    base = resolve_arch("flat" if config == "FLAT" else "fusemax", {"pe_dim": 16})
    if config == "FLAT":
        m, prob = flat_mapping(256, 16, 32), problem_for(cascade("mha_3pass"), sizes)
    else:
        seq = config == "+Architecture"
        m = one_pass_mapping(FUSEMAX_2D, 16, 2, "sequential" if seq else "pipelined",
                             ARCH_ORDER if seq else None)
        prob = problem_for(cascade("mha_1pass"), {**sizes, "M0": 16})
    arch = _timed(base, fill_drain, ports)
    report = simulate_problem(prob, arch, m)
    steady = simulate_problem(prob, base, m)
    assert report.cycles > steady.cycles  # the options are charged
    assert (report.groups[0].bound == "bandwidth") == bool(ports)
    events = simulate_events(prob, arch, m)["cycles"]
    assert events == pytest.approx(report.cycles, rel=0.01)
    assert events >= report.cycles * (1 - 1e-9)
