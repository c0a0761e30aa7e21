"""The energy model: buffer energies and areas from the buffer's capacity and width, the buffer
counting rules (R1 registers first, R2 off-chip writes leave from the array), register files per
PE, and the FuseMax study's energy ratios against the paper's."""
import pytest

from simulator.arch import arch_from_dict, resolve_arch
from simulator.components import sram_cost, sram_table
from simulator.cost import simulate
from studies.fusemax.study import attention_point, flat_mapping, headline, run_study
from studies.fusemax.workloads import attention_sizes, cascade

MIB = 2 ** 20


# ------------------------------------------------------------------ the buffer model


def test_table_rows_come_back_exactly_and_interpolate_between():
    for row in sram_table():
        got = sram_cost(row.capacity_bytes, row.width_bits)
        assert (got.read_pJ, got.write_pJ, got.area_um2) == pytest.approx(
            (row.read_pJ, row.write_pJ, row.area_um2), rel=1e-12)
    mid = sram_cost(24 * MIB, 4096)
    assert 12512.7 < mid.read_pJ < 23854.6 and 84.2e6 < mid.area_um2 < 175.72e6
    # a narrower port moves fewer bits per access; the array's area does not change
    half = sram_cost(16 * MIB, 2048)
    assert half.read_pJ == pytest.approx(12512.7 / 2) and half.area_um2 == pytest.approx(84.2e6)


def test_builtin_buffers_take_cacti_values_for_the_capacity_they_declare():
    fusemax, flat = resolve_arch("fusemax"), resolve_arch("flat")
    assert (fusemax.buffer.read_pJ, fusemax.buffer.write_pJ) == pytest.approx((12512.7, 15751.4))
    assert (flat.buffer.read_pJ, flat.buffer.write_pJ) == pytest.approx((23854.6, 27097.5))
    assert fusemax.buffer.area_um2 == pytest.approx(84.2e6)
    assert flat.buffer.area_um2 == pytest.approx(175.72e6)
    assert fusemax.buffer.energy_source == "model"
    # the same spec with FLAT's buffer declared gets FLAT's buffer energy and area
    big = resolve_arch("fusemax", {"glb_bytes": 32 * MIB})
    assert big.buffer.read_pJ == pytest.approx(flat.buffer.read_pJ)
    assert big.area_um2 - fusemax.area_um2 == pytest.approx((175.72 - 84.2) * 1e6)


def test_buffer_energy_changes_with_declared_capacity():
    """Same problem, same mapping: the buffer's share of the energy scales with the energy of a
    row of the declared buffer; nothing else moves."""
    sizes = attention_sizes("BERT", 1024)
    reports = {}
    for cap in (4 * MIB, 16 * MIB, 64 * MIB):
        arch = resolve_arch("flat", {"glb_bytes": cap})
        m = flat_mapping(1024, 256, 1024, streamed=("Q", "K", "V"))
        reports[cap] = simulate(cascade("mha_3pass"), arch, m, sizes)
    glb = {cap: r.energy_breakdown["GLB"] for cap, r in reports.items()}
    assert glb[4 * MIB] < glb[16 * MIB] < glb[64 * MIB]
    assert glb[64 * MIB] / glb[4 * MIB] == pytest.approx(
        (32470.6 + 38958.6) / (4932.4 + 8837.6), rel=0.15)
    assert len({r.cycles for r in reports.values()}) == 1
    assert len({r.energy_breakdown["compute"] for r in reports.values()}) == 1


def _spec(**glb):
    return {"name": "t", "clock_hz": 1e9, "actions": {"mac": 1.0},
            "units": [{"name": "a", "dims": [4], "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}}}],
            "levels": [{"name": "DRAM", "bandwidth": 1e9, "access_bytes": 8, "read_pJ": 1, "write_pJ": 1},
                       {"name": "GLB", "capacity": MIB, "access_bytes": 64, **glb}]}


def test_given_energies_win_over_the_model():
    given = arch_from_dict(_spec(read_pJ=5, write_pJ=6), "t.yaml").buffer
    assert (given.read_pJ, given.write_pJ, given.area_um2, given.energy_source) == (5, 6, 0, "spec")
    mixed = arch_from_dict(_spec(read_pJ=5), "t.yaml").buffer
    model = sram_cost(MIB, 512)
    assert mixed.read_pJ == 5 and mixed.write_pJ == pytest.approx(model.write_pJ)
    assert mixed.area_um2 == pytest.approx(model.area_um2) and mixed.energy_source == "spec + model"
    assert arch_from_dict(_spec(), "t.yaml").buffer.read_pJ == pytest.approx(1893.9 / 8)


# ------------------------------------------------------------------ R1 and R2


def _flat_1k(**kw):
    sizes = attention_sizes("BERT", 1024)
    m = flat_mapping(1024, 256, 1024, streamed=("Q", "K", "V"), **kw)
    return m, simulate(cascade("mha_3pass"), resolve_arch("flat"), m, sizes)


def test_r1_a_same_unit_same_pass_consumer_reads_registers():
    """FLAT at BERT 1K: QK, SN and A written once; read back 4 times (GM and SN read QK on the 1D
    array; A reads SN in the pass after SD; AV reads A on the 2D array). SD reads SN in SN's pass
    on SN's unit: from registers. Moved to the 2D array, SD reads SN from the buffer."""
    scores = 64 * 12 * 1024 * 1024
    m, r = _flat_1k()
    g = r.groups[0]
    assert g.glb_write == 3 * scores and g.glb_read == 4 * scores
    einsums = dict(m.einsums)
    einsums["SD"] = einsums["QK"]
    moved = simulate(cascade("mha_3pass"), resolve_arch("flat"), m.__class__(
        **{**m.__dict__, "einsums": einsums}), attention_sizes("BERT", 1024))
    assert moved.groups[0].glb_read == 5 * scores


def test_r1_consumers_on_one_unit_share_a_fetch():
    """FuseMax: RM and PRM read the previous running max on the 1D array in the same pass: one
    fetch. SLN (2D) reads the new one from the buffer; PRM reads it from RM's registers."""
    _, r = attention_point("BERT", 1024, "FuseMax")
    rows = 64 * 12 * 1024 * 4  # (b, h, p, m1)
    q_k_v = 3 * 64 * 12 * 1024 * 64 * 4  # Q once per key tile; K, V once per query tile
    rnv = 64 * 12 * 1024 * 64 * 4 + 64 * 12 * 1024 * 64  # SPNV's previous iterates + AV's final
    rd = rows + 64 * 12 * 1024  # SPD's previous iterates + AV's final
    assert r.groups[0].glb_read == q_k_v + 2 * rows + rd + rnv


def test_r2_spills_and_outputs_leave_from_the_array():
    """Spilling half the score rows moves the buffer writes of that half to the read-back (a fill)
    and adds no drain read: the buffer counts are the ones of the unspilled mapping."""
    _, whole = _flat_1k()
    _, half = _flat_1k(spill=0.5)
    a, b = whole.groups[0], half.groups[0]
    assert b.dram_write > a.dram_write
    assert (b.glb_read, b.glb_write) == (a.glb_read, a.glb_write)
    assert a.dram_write == 64 * 12 * 1024 * 64 * 2  # AV, written from the array


# ------------------------------------------------------------------ register files


def test_register_files_charged_per_pe_when_switched_on():
    _, off = attention_point("BERT", 1024, "FuseMax")
    _, on = attention_point("BERT", 1024, "FuseMax", arch_overrides={"register_files": 1})
    assert "register_files" not in off.energy_breakdown
    rf = on.energy_breakdown["register_files"]
    # QK and SLNV: a MAC reads two factors and the partial sum and writes the sum, on every PE
    macs = 2 * 64 * 12 * 1024 * 1024 * 64
    assert rf > macs * (3 * 2.19 + 1.91)
    assert on.energy_pJ == pytest.approx(off.energy_pJ + rf)
    assert on.energy_breakdown["compute"] == pytest.approx(off.energy_breakdown["compute"])


# ------------------------------------------------------------------ the FuseMax study


# The paper's values (the FuseMax artifact's results, as in docs/accelerator.md): BERT 1K
# attention energies, and the means over the 24 (model, length) points of FuseMax/FLAT.
PAPER_BERT_1K_J = {"FuseMax": 1.951, "FLAT": 2.485}
PAPER_MEANS = {"attention": 0.787, "end2end": 0.833}


def test_bert_1k_energies_and_ratio_match_the_paper_per_point():
    got = {c: attention_point("BERT", 1024, c)[1].energy_J for c in PAPER_BERT_1K_J}
    for config, joules in PAPER_BERT_1K_J.items():
        assert got[config] == pytest.approx(joules, rel=0.01)
    paper_ratio = PAPER_BERT_1K_J["FuseMax"] / PAPER_BERT_1K_J["FLAT"]
    assert got["FuseMax"] / got["FLAT"] == pytest.approx(paper_ratio, rel=0.01)


def test_energy_ratio_means_match_the_paper():
    h = headline(run_study(pareto_seq=0))
    for scope, paper in PAPER_MEANS.items():
        assert h[scope]["energy_vs_FLAT"] == pytest.approx(paper, rel=0.015)
        assert h[scope]["speedup_vs_FLAT"] == pytest.approx({"attention": 6.72, "end2end": 5.30}[scope],
                                                            rel=0.01)
