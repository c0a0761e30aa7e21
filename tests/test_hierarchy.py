"""Memory hierarchies deeper than off-chip memory and one buffer (simulator.hierarchy): levels per
PE, per row, per unit; keep and bypass per level; multicast; capacity; a hand-derived GEMM; the
mapper's vectorised cost equals the model's; Timeloop designs keep their levels."""
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from einsum_ir import loads
from einsum_ir.errors import CascadeError
from mapper.builders import single_group
from simulator.arch import arch_from_dict, resolve_arch
from simulator.cost import simulate
from simulator.counts import Infeasible
from simulator.mapping import LevelMap
from simulator.mapping_check import check_mapping
from simulator.mapping_load import mapping_from_dict
from simulator.problem import problem_for

ROOT = Path(__file__).resolve().parents[1]

# A GEMM with no power-of-two size: M = 15 (5 tiles of 3 rows), N = 21 (3 tiles of 7 columns).
GEMM = loads("""
rank M = 15, N = 21, K = 10
input A[m,k], B[k,n]
output C[m,n]
C[m,n] = sum[k] A[m,k] * B[k,n]
""")


def _spec(multicast=1, capacity=64, extra=()):
    """3 x 7 PEs, clock 1 Hz; DRAM, a 4 KiB buffer, a scratchpad in every PE."""
    return {
        "name": "three", "clock_hz": 1, "word_bytes": 2, "actions": {"mac": 1.0},
        "units": [{"name": "pe", "dims": [3, 7], "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}}}],
        "levels": [{"name": "DRAM", "bandwidth": 8, "access_bytes": 2, "read_pJ": 100, "write_pJ": 100},
                   {"name": "GLB", "capacity": 4096, "access_bytes": 2, "read_pJ": 6, "write_pJ": 6},
                   {"name": "spad", "per": "pe", "unit": "pe", "capacity": capacity,
                    "access_bytes": 2, "read_pJ": 1, "write_pJ": 1, "multicast": multicast},
                   *extra],
    }


def _arch(**kw):
    return arch_from_dict(_spec(**kw), "three.yaml")


def _plain():
    """M0 down the 3 rows, N0 across the 7 columns; off-chip loop M1 (5) > buffer loop N1 (3)."""
    return single_group(["C"], {"C": "pe"}, {"pe": ["M0", "N0"]},
                        tiles={"M": {"M0": 3}, "N": {"N0": 7}}, loops=("M1",), buffer_loops=("N1",))


def _gemm_mapping(keep=("A", "B"), spad_loops=("K",)):
    """:func:`_plain`, and the scratchpad's own loop walks K (10)."""
    m = _plain()
    group = dataclasses.replace(m.groups[0], levels={"spad": LevelMap(keep, spad_loops)})
    return dataclasses.replace(m, groups=(group,))


def test_gemm_per_level_accesses_equal_the_hand_derived_formula():
    """Scratchpad tile = the tensor's tile under M1 > N1, one PE's share of it.

    A[m,k]: tile 3 x 10 = 30 words, fetched once per M1 (5; N1 does not index A and nothing
    inside it does, so A stays): buffer reads 30 x 5 = 150 (multicast: the 7 columns share a
    word). One PE holds 1 x 10 words; 21 PEs x 10 x 5 = 1050 scratchpad writes.
    B[k,n]: tile 10 x 7 = 70 words, fetched per N1 (3) and again per M1 (5, it encloses N1):
    15 fetches, buffer reads 70 x 15 = 1050; one PE holds 10 words, writes 21 x 10 x 15 = 3150.
    The PEs read their scratchpads once per K step of every tile: 5 x 3 x 10 iterations x 21
    PEs x (1 word of A + 1 of B) = 6300. Buffer writes: the off-chip fills, A once (150 words)
    and B once (210 words; M1 does not index it and nothing inside the off-chip loops does).
    """
    report = simulate(GEMM, _arch(), _gemm_mapping())
    g = report.groups[0]
    assert (g.glb_read, g.glb_write) == (150 + 1050, 150 + 210)
    spad = g.levels["spad"]
    assert (spad.read, spad.write, spad.footprint) == (6300, 1050 + 3150, (10 + 10) * 2)
    assert report.traffic == {"DRAM": (150 + 210 + 15 * 21) * 2, "GLB": (1200 + 360) * 2,
                              "spad": (6300 + 4200) * 2}
    assert report.energy_breakdown == {"compute": 15 * 21 * 10, "DRAM": (360 + 315) * 100,
                                       "GLB": 1560 * 6, "spad": 10500 * 1}
    assert json.loads(json.dumps(report.to_json()))["groups"][0]["levels"]["spad"]["read_words"] == 6300


def test_bypassing_a_level_moves_its_traffic_to_the_parent():
    kept = simulate(GEMM, _arch(), _gemm_mapping()).groups[0]
    bypassed = simulate(GEMM, _arch(), _gemm_mapping(keep=())).groups[0]
    # the PEs now read the buffer every K step of every tile: 150 iterations x (3 + 7) words
    assert bypassed.glb_read == 150 * (3 + 7) and bypassed.glb_write == kept.glb_write
    assert (bypassed.levels["spad"].read, bypassed.levels["spad"].write) == (0, 0)
    only_a = simulate(GEMM, _arch(), _gemm_mapping(keep=("A",))).groups[0]
    assert only_a.glb_read == 150 + 150 * 7  # A from its scratchpad copy, B from the buffer


def test_multicast_divides_parent_reads_by_the_fan_out():
    for keep, fan_out in ((("A",), 7), (("B",), 3)):  # A is shared along N0, B along M0
        with_mc = simulate(GEMM, _arch(), _gemm_mapping(keep=keep)).groups[0]
        without = simulate(GEMM, _arch(multicast=0), _gemm_mapping(keep=keep)).groups[0]
        rest = 150 * 7 if keep == ("A",) else 150 * 3  # the other tensor, read from the buffer
        assert without.glb_read - rest == fan_out * (with_mc.glb_read - rest)
        assert without.levels["spad"] == with_mc.levels["spad"]  # the PEs get the same copies


def test_a_tile_that_does_not_fit_is_refused_or_left_out():
    with pytest.raises(Infeasible, match="keeps more in spad than one instance holds"):
        simulate(GEMM, _arch(capacity=30), _gemm_mapping())  # 40 bytes asked, 30 held
    # the default keeps what fits, in the group's order: A (20 bytes), then B does not fit
    default = simulate(GEMM, _arch(capacity=30), _gemm_mapping(keep=None)).groups[0]
    only_a = simulate(GEMM, _arch(capacity=30), _gemm_mapping(keep=("A",))).groups[0]
    assert default.levels == only_a.levels and default.glb_read == only_a.glb_read
    assert default.levels["spad"].footprint == 20


def test_two_level_specs_report_no_inner_levels():
    two = arch_from_dict({**_spec(), "levels": _spec()["levels"][:2]}, "two.yaml")
    report = simulate(GEMM, two, _plain())
    assert set(report.traffic) == {"DRAM", "GLB"} and "levels" not in report.groups[0].to_json()
    assert report.groups[0].glb_read == 150 * (3 + 7)  # what bypassing the scratchpad gives


def test_per_row_level_and_a_chain_of_two():
    """A buffer per row (3 instances) between the GLB and the scratchpads: B (indexed by n, the
    columns) has one copy per row; the scratchpads fill from the row buffers."""
    row = {"name": "rowbuf", "per": "row", "unit": "pe", "capacity": 1024, "access_bytes": 2,
           "read_pJ": 3, "write_pJ": 3}
    spec = _spec()
    spec["levels"] = spec["levels"][:2] + [row] + spec["levels"][2:]
    arch = arch_from_dict(spec, "four.yaml")
    assert [lv.instances for lv in arch.levels] == [1, 1, 3, 21]
    m = _gemm_mapping(keep=("B",))
    levels = {"rowbuf": LevelMap(("B",)), **m.groups[0].levels}
    m = dataclasses.replace(m, groups=(dataclasses.replace(m.groups[0], levels=levels),))
    g = simulate(GEMM, arch, m).groups[0]
    rb, sp = g.levels["rowbuf"], g.levels["spad"]
    # B's tile (70 words a fetch, 15 fetches) is needed whole by each of the 3 rows
    assert rb.write == 70 * 3 * 15 and rb.footprint == 70 * 2
    assert g.glb_read == 150 * 3 + 70 * 15  # A bypasses both: the PEs read it from the buffer
    # each row buffer sends its 7 PEs their distinct 10 words: 70 a row, 3 rows, 15 fetches
    assert rb.read == 70 * 3 * 15 and sp.write == 21 * 10 * 15 and sp.read == 150 * 21
    # the default keeps A in the row buffers too (it fits): 10 words a row, 5 fetches
    default = dataclasses.replace(m, groups=(dataclasses.replace(m.groups[0], levels={
        "spad": m.groups[0].levels["spad"]}),))
    assert simulate(GEMM, arch, default).groups[0].levels["rowbuf"].write == rb.write + 10 * 3 * 5


@pytest.mark.parametrize("change, message", [
    (lambda s: s["levels"][1].update(per="pe", unit="pe"), "three.yaml: levels[1].per: only the levels inside"),
    (lambda s: s["levels"][2].update(per="core"), "levels[2].per: expected one of shared, unit, row, pe"),
    (lambda s: s["levels"][2].pop("unit"), "levels[2].unit: missing required field"),
    (lambda s: s["levels"][2].update(unit="vec"), "levels[2].unit: no unit 'vec'"),
    (lambda s: s["levels"][2].update(multicast=2), "levels[2].multicast: 2 is outside"),
    (lambda s: s["levels"].append({"name": "L1", "capacity": 64, "access_bytes": 2}),
     "levels[3].per: a shared level inside a local one"),
    (lambda s: s["levels"].append({"name": "ub", "per": "unit", "unit": "pe", "capacity": 64,
                                   "access_bytes": 2}), "levels[3].per: a level per unit inside spad"),
    (lambda s: s["levels"][2].update(ports=1), "levels[2].port_bytes: missing required field"),
])
def test_bad_hierarchies_are_located_errors(change, message):
    spec = _spec()
    change(spec)
    with pytest.raises(CascadeError) as exc:
        arch_from_dict(spec, "three.yaml")
    assert message in str(exc.value)


def test_inner_level_ports_bound_the_group():
    spec = _spec()
    spec["levels"][2].update(ports=1, port_bytes=2)  # one word a cycle per PE
    g = simulate(GEMM, arch_from_dict(spec, "x.yaml"), _gemm_mapping()).groups[0]
    assert g.bandwidth_level == "spad" and g.bandwidth_cycles == (6300 + 4200) / 21
    assert g.bound == "bandwidth" and g.cycles == 500


def test_mapping_levels_round_trip_and_are_checked():
    m = _gemm_mapping()
    data = m.to_dict()
    assert data["groups"][0]["levels"] == {"spad": {"keep": ["A", "B"], "loops": ["K"]}}
    back = mapping_from_dict(data, "m.yaml")
    assert back.groups[0].levels == m.groups[0].levels
    prob = problem_for(GEMM, {})
    check_mapping(back, prob, _arch())
    old = mapping_from_dict({k: v for k, v in data.items()} | {"groups": [
        {k: v for k, v in data["groups"][0].items() if k != "levels"}]}, "old.yaml")
    assert old.groups[0].levels == {}
    for levels, message in (({"rf": {}}, "groups[0].levels.rf: three has no level 'rf'"),
                            ({"spad": {"keep": ["Z"]}}, "groups[0].levels.spad.keep: the group's "
                             "Einsums read no tensor Z"),
                            ({"spad": {"loops": ["Q9"]}}, "groups[0].levels.spad.loops: no rank"),
                            ({"spad": {"kept": []}}, "groups[0].levels.spad.kept: unknown field")):
        bad = dict(data, groups=[dict(data["groups"][0], levels=levels)])
        with pytest.raises(CascadeError, match=re.escape(message)):
            check_mapping(mapping_from_dict(bad, "m.yaml"), prob, _arch())


def test_eyeriss_spad_builtin_is_three_levels():
    arch = resolve_arch("eyeriss_spad")
    assert [lv.name for lv in arch.levels] == ["DRAM", "GLB", "spad"]
    spad = arch.levels[2]
    assert (spad.per, spad.unit, spad.instances, spad.capacity) == ("pe", "pe_array", 168, 472)
    assert arch.chain("pe_array") == (spad,)


def _sampled_candidates(cascade, arch, sizes, step):
    """(candidate, binding row, its pipelined mapping) for a sample of the mapper's candidates."""
    from mapper.evaluate import candidate_mapping, evaluate_space
    from mapper.search import forms_for
    from mapper.space import batch_ranks, spatial_options, tilings

    forms, _ = forms_for(cascade, arch, sizes)
    units = [u.name for u in arch.units]
    for form in forms:
        casc, memo = form.prepared.cascade, {}
        for spatial, tile_sizes in spatial_options(casc, form.prob.sizes, arch):
            found = tilings(casc, form.prob, form.keys, tile_sizes, batch_ranks(casc), (0.0,))
            for cand in (evaluate_space(form, arch, spatial, found, memo, 1.0)[::step] if found else []):
                for r in range(0, len(cand.cycles), max(1, len(cand.cycles) // 2)):
                    yield form, cand, r, candidate_mapping(form, cand.bindings[r], units, cand.spatial,
                                                           cand.tiling, "pipelined", {})


@pytest.mark.parametrize("name, arch_name, sizes, step", [
    ("mha_1pass", "eyeriss_spad", {"P": 48, "M": 56, "E": 16, "F": 16, "M0": 14}, 2),
    ("gemm", "three", {}, 1), ("gemm", "ported", {}, 1)])
def test_mapper_searches_keeps_and_its_cost_is_the_models(name, arch_name, sizes, step):
    """The evaluator tries each scratchpad keeping whatever fits, nothing, or one input; every
    sampled candidate's latency and energy equal its re-simulation exactly."""
    from einsum_ir import load
    from simulator.cost import simulate_problem

    if arch_name == "ported":  # the ports bound both levels (the model's bound, in the mapper)
        spec = _spec(capacity=30)
        spec["levels"][1].update(ports=1, port_bytes=4)
        spec["levels"][2].update(ports=1, port_bytes=2)
        cascade, arch = GEMM, arch_from_dict(spec, "ported.yaml")
    elif name == "gemm":
        cascade, arch = GEMM, _arch(capacity=30)
    else:
        cascade, arch = load(ROOT / "examples" / "attention" / f"{name}.ein"), resolve_arch(arch_name)
    checked, keeps = 0, set()
    for form, cand, r, m in _sampled_candidates(cascade, arch, sizes, step):
        keeps.add(tuple((n, lm.keep) for n, lm in cand.tiling.levels.items()))
        try:
            rep = simulate_problem(form.prob, arch, m)
        except Infeasible:
            assert not np.isfinite(cand.cycles[r])
            continue
        assert (rep.cycles, rep.energy_pJ) == (cand.cycles[r], cand.energy[r])
        checked += 1
    assert checked >= 10
    assert {(), (("spad", ()),)} <= keeps  # whatever fits, and bypassing the scratchpads


def test_imported_timeloop_designs_keep_their_levels():
    """The Eyeriss-like sample's per-PE scratchpads (one !Parallel branch) are one per-PE level
    of 168 instances, and a mapping can keep tensors there."""
    import warnings

    from simulator.arch import load_arch
    from simulator.timeloop_import import ArchImportWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ArchImportWarning)
        arch = load_arch(ROOT / "examples" / "archs" / "timeloop" / "eyeriss_like.yaml")
    spad = "ifmap_spad+weights_spad+psum_spad"
    assert [lv.name for lv in arch.levels] == ["DRAM", "shared_glb", spad]
    assert arch.chain("mac") == (arch.levels[2],) and arch.levels[2].instances == 168
    m = single_group(["C"], {"C": "mac"}, {"mac": ["M0", "N0"]},
                     tiles={"M": {"M0": 12}, "N": {"N0": 14}}, loops=("M1",), buffer_loops=("N1",))
    gemm = loads("rank M = 36, N = 42, K = 10\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
                 "C[m,n] = sum[k] A[m,k] * B[k,n]\n")
    kept = dataclasses.replace(m.groups[0], levels={spad: LevelMap(("A",), ("K",))})
    report = simulate(gemm, arch, dataclasses.replace(m, groups=(kept,)))
    use = report.groups[0].levels[spad]
    # A: 12 x 10 words a fetch, once per M1 (3): 360 buffer reads, 14 columns of copies
    assert use.footprint == 10 * 2 and use.write == 168 * 10 * 3
    # B bypasses it: 3 x 3 tiles x 10 K steps, 14 words each, from the buffer
    assert report.groups[0].glb_read == 12 * 10 * 3 + 90 * 14
    assert report.energy_breakdown[spad] > 0 and report.traffic[spad] > 0


def test_one_pe_nest_matches_the_timeloop_style_nest_analysis():
    """With every rank in a loop (one element per step) the three-level counts are the nest
    analysis's (simulator.check.nest, checked against Timeloop's exercises): buffer fills, its
    reads = the scratchpad's fills, one scratchpad read per MAC."""
    from simulator.check.nest import NestLevel, analyze_nest

    gemm = loads("rank M = 6, N = 5, K = 4\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
                 "C[m,n] = sum[k] A[m,k] * B[k,n]\n")
    spec = _spec()
    spec["units"][0]["dims"] = [1]
    arch = arch_from_dict(spec, "one.yaml")
    m = single_group(["C"], {"C": "pe"}, {"pe": []}, tiles={"M": {"M0": 3}}, loops=("M1",),
                     buffer_loops=("N", "M0"))
    m = dataclasses.replace(m, groups=(dataclasses.replace(
        m.groups[0], levels={"spad": LevelMap(("A", "B"), ("K",))}),))
    check_mapping(m, problem_for(gemm, {}), arch)
    g = simulate(gemm, arch, m).groups[0]
    ref = analyze_nest({"m": 6, "n": 5, "k": 4}, {"A": [["m"], ["k"]], "B": [["k"], ["n"]]}, "C", [
        NestLevel("DRAM", {"A", "B"}, [("m", 2)]),
        NestLevel("GLB", {"A", "B"}, [("n", 5), ("m", 3)]),
        NestLevel("spad", {"A", "B"}, [("k", 4)])], 1.0).counts
    assert g.dram_read / 2 == ref["GLB"]["A"]["fills"] + ref["GLB"]["B"]["fills"] == 24 + 20
    assert g.glb_read == ref["GLB"]["A"]["reads"] + ref["GLB"]["B"]["reads"] == 120 + 40
    assert g.levels["spad"].write == ref["spad"]["A"]["fills"] + ref["spad"]["B"]["fills"]
    assert g.levels["spad"].read == ref["spad"]["A"]["reads"] + ref["spad"]["B"]["reads"] == 2 * 120


@pytest.mark.parametrize("per", ["shared", "unit"])
def test_a_single_instance_level_inside_the_buffer(per):
    """A shared level (or one local to the unit: one instance) holds A's whole tile: filled
    once per M1 (30 words x 5), read by the PEs as the buffer would be (3 words x 150 steps)."""
    level = {"name": "L1", "capacity": 256, "access_bytes": 2, "read_pJ": 2, "write_pJ": 2}
    if per == "unit":
        level.update(per="unit", unit="pe")
    spec = _spec()
    spec["levels"].insert(2, level)
    arch = arch_from_dict(spec, "l1.yaml")
    assert arch.levels[2].instances == 1 and arch.chain("pe") == arch.levels[2:]
    m = _gemm_mapping(keep=())
    levels = {"L1": LevelMap(("A",)), **m.groups[0].levels}
    m = dataclasses.replace(m, groups=(dataclasses.replace(m.groups[0], levels=levels),))
    g = simulate(GEMM, arch, m).groups[0]
    assert (g.levels["L1"].write, g.levels["L1"].read, g.levels["L1"].footprint) == (150, 450, 60)
    assert g.glb_read == 150 + 150 * 7  # A's fills, B for every K step of every tile


ROWS = """architecture:
  version: 0.4
  nodes:
  - !Component {name: DRAM, class: DRAM, attributes: {width: 64, datawidth: 16, shared_bandwidth: 4}}
  - !Component {name: GLB, class: SRAM, attributes: {depth: 4096, width: 64, datawidth: 16}}
  - !Container {name: row, spatial: {meshY: 3}}
  - !Component {name: row_buf, class: SRAM, attributes: {depth: 64, width: 16, datawidth: 16}}
  - !Container {name: PE, spatial: {meshX: 4}}
  - !Component {name: spad, class: regfile, attributes: {depth: 16, width: 16, datawidth: 16}}
  - !Component {name: mac, class: intmac, attributes: {datawidth: 16}}
ERT:
  tables:
  - {name: DRAM, actions: [{name: read, energy: 100}, {name: write, energy: 100}]}
  - {name: GLB, actions: [{name: read, energy: 6}, {name: write, energy: 6}]}
  - {name: mac, actions: [{name: compute, energy: 1}]}
"""


def test_imported_row_and_pe_storages_become_row_and_pe_levels(tmp_path):
    from simulator.timeloop_import import import_timeloop_file

    path = tmp_path / "rows.yaml"
    path.write_text(ROWS)
    imported = import_timeloop_file(path)
    arch = arch_from_dict(imported.spec, str(path))
    assert [(lv.name, lv.per, lv.instances, lv.capacity) for lv in arch.levels[2:]] == [
        ("row_buf", "row", 3, 128), ("spad", "pe", 12, 32)]
    assert arch.unit("mac").dims == (3, 4) and arch.unit("mac").register_file is None
    notes = "\n".join(imported.notes)
    assert "row_buf: a level per row of mac (3 instances)" in notes
    assert "spad: no ERT table: energies and area from its capacity and width" in notes
