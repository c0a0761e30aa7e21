"""The peers bench (bench/peers*.py) without the peers: case generation, the peers' generated
inputs, the ratio and markdown code on canned peer outputs, and the skipped-peer records. The one
test that runs a peer's venv is ``slow`` and skips when the venv is absent."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import peers  # noqa: E402
import peers_accelforge  # noqa: E402
import peers_cascade  # noqa: E402
import peers_report  # noqa: E402
import peers_stream  # noqa: E402
import peers_zigzag  # noqa: E402
import yaml  # noqa: E402
from einsum_ir import loads  # noqa: E402


class _TaggedLoader(yaml.SafeLoader):
    """Reads AccelForge's ``!Memory``-style node tags as plain mappings tagged ``_tag``."""


_TaggedLoader.add_multi_constructor(
    "!", lambda loader, tag, node: {"_tag": tag, **loader.construct_mapping(node, deep=True)})


def _af_arch(case: dict) -> list:
    return yaml.load(peers_accelforge.arch_text(case), Loader=_TaggedLoader)["arch"]["nodes"]


def _af_rec(cycles, energy, macs, dram, glb=0.0):
    return {"cycles": cycles, "energy": energy, "macs": macs, "dram_words": dram,
            "glb_words": glb, "einsum_cycles": {}}


def _zz_layer(cycles, ideal, energy, mac, words):
    rec = {"cycles": cycles, "ideal": ideal, "stall": 0.0, "onload": 2.0, "offload": 2.0,
           "energy": energy, "mac_energy": mac, "words": words, "mem_energy": {}}
    return {"latency": rec, "energy": rec}


def test_cases_cover_gemms_arrays_dataflows_and_the_chain():
    cases = peers.cases()
    gemms = [c for c in cases if c["kind"] == "gemm"]
    chains = [c for c in cases if c["kind"] == "chain"]
    assert len(gemms) == len(peers.GEMMS) * len(peers.ARRAYS) * len(peers.DATAFLOWS)
    assert len(chains) == len(peers.CHAIN_ARRAYS) * len(peers.DATAFLOWS)
    p, m, e, f = (peers.CHAIN[k] for k in "PMEF")
    assert all(c["layers"] == [(p, m, e), (p, f, m)] for c in chains)


def test_cascade_texts_parse_and_the_committed_chain_matches():
    loads(peers_cascade.cascade_text([(20, 12, 7), (9, 30, 13)]))
    text = peers_cascade.chain_text(*(peers.CHAIN[k] for k in "PMEF"))
    assert (BENCH / "peers_cases" / "chain_qk_av.ein").read_text() == text
    assert [x.name for x in loads(text).einsums] == ["S", "O"]


def test_cascade_cycles_and_energy_of_one_gemm():
    cycles, energy, parts = peers_cascade.run([(64, 64, 64)], 16, 16, "os", "per_group")
    assert cycles == 1024 + 15 + 15  # 16 folds x K, plus one skew of (R - 1) + (C - 1)
    assert parts["compute"] == 64 ** 3 * peers_cascade.MAC_PJ
    assert parts["DRAM"] == 3 * 64 * 64 * peers_cascade.WORD_PJ  # A, B read, C written once
    assert energy == pytest.approx(sum(parts.values()))


def test_zigzag_inputs_follow_the_case():
    hw = peers_zigzag.hardware(32, 16)
    assert hw["operational_array"]["sizes"] == [32, 16]
    ports = [p["name"] for m in hw["memories"].values() for p in m["ports"]]
    assert all(re.fullmatch(r"[r]?[w]?_port_\d+", n) for n in ports)  # ZigZag's validator
    glb = hw["memories"]["glb"]
    assert glb["r_cost"] * 16 / glb["ports"][0]["bandwidth_max"] == 1.0  # 1 pJ a 16-bit word
    m = peers_zigzag.mapping([(100, 3, 37)], 32, 16, "is")[0]["spatial_mapping"]
    assert m == {"D1": ["K, 32"], "D2": ["M, 16"]}
    m = peers_zigzag.mapping([(100, 3, 37)], 32, 16, "os")[0]["spatial_mapping"]
    assert m == {"D1": ["M, 32"], "D2": ["N, 3"]}  # never unrolled past the rank
    wl = peers_zigzag.workload([(20, 12, 7)])[0]
    assert wl["loop_sizes"] == [20, 12, 7] and wl["loop_dims"] == ["M", "N", "K"]


def test_accelforge_arch_follows_the_case():
    case = {"kind": "gemm", "dataflow": "ws", "rows": 32, "cols": 16, "layers": [(9, 30, 13)] * 2}
    nodes = _af_arch(case)
    assert [n["_tag"] + n["name"] for n in nodes] == ["MemoryDRAM", "MemoryGLB", "ContainerArray",
                                                      "MemoryReg", "ComputeMAC"]
    dram, glb, array, reg, mac = nodes
    assert dram["tensors"] == {"keep": "All"}  # fusion none: every tensor goes off chip
    for mem, pj in ((dram, 1.0), (glb, 1.0), (reg, 0.0)):  # per 16-bit word, not per bit
        assert [(a["energy"], a["bits_per_action"]) for a in mem["actions"]] == [(pj, 16)] * 2
    assert reg["size"] == 3 * 16 and mac["actions"][0]["energy"] == 1.0
    rows, cols = array["spatial"]
    assert (rows["fanout"], cols["fanout"]) == (32, 16)
    assert rows["loop_bounds"] == [{"expression": "~(k0 | k1)", "operator": "==", "value": 1}]
    assert cols["loop_bounds"][0]["expression"] == "~(n0 | n1)"  # ws: K down, N across
    free = _af_arch({**case, "dataflow": None, "fusion": "searched"})
    assert all("loop_bounds" not in d for d in free[2]["spatial"])
    assert free[0]["tensors"] == {"keep": "~Intermediates", "may_keep": "All"}
    with pytest.raises(ValueError, match="fusion"):
        peers_accelforge.arch_text({**case, "fusion": "some"})


def test_accelforge_workloads_follow_the_case():
    wl = yaml.safe_load(peers_accelforge.workload_text(
        {"layers": [(20, 12, 7), (9, 30, 13)]}))["workload"]
    assert wl["rank_sizes"] == {"M0": 20, "N0": 12, "K0": 7, "M1": 9, "N1": 30, "K1": 13}
    assert wl["einsums"][1] == "C1[m1, n1] = A1[m1, k1] * B1[k1, n1]"
    assert wl["bits_per_value"] == {"All": 16}
    chain = next(iter(peers.fusion_cases().values()))
    wl = yaml.safe_load(peers_accelforge.workload_text(chain))["workload"]
    assert wl["rank_sizes"] == {"P": 256, "M": 256, "E": 64, "F": 64}
    assert wl["einsums"] == ["S[p, m] = Q[p, e] * K[m, e]", "O[p, f] = S[p, m] * V[m, f]"]
    with pytest.raises(ValueError, match="chain layers"):
        peers_accelforge.workload_text({"chain": True, "layers": [(256, 256, 64), (128, 64, 256)]})


def test_accelforge_record_reads_ffm_columns():
    row = {"Total<SEP>latency": 40, "Total<SEP>energy": 99.0,
           "C0<SEP>action<SEP>DRAM<SEP>A0<SEP>read": 7.0, "C0<SEP>action<SEP>DRAM<SEP>C0<SEP>write": 3,
           "C0<SEP>action<SEP>GLB<SEP>A0<SEP>read": 11, "C0<SEP>action<SEP>Reg<SEP>A0<SEP>read": 500,
           "C0<SEP>action<SEP>MAC<SEP>None<SEP>compute": 64, "C0<SEP>latency<SEP>MAC": 40,
           "C0<SEP>latency<SEP>GLB": 0, "C0<SEP>energy<SEP>DRAM<SEP>A0<SEP>read": 7.0}
    rec = peers_accelforge._record(row)
    assert rec == {"cycles": 40.0, "energy": 99.0, "macs": 64.0, "dram_words": 10.0,
                   "glb_words": 11.0, "einsum_cycles": {"C0": 40.0}}


def test_accelforge_ratios_and_markdown_on_canned_output():
    todo = [{"kind": "gemm", "dataflow": "os", "rows": 16, "cols": 16, "layers": [(64, 64, 64)]}]
    raw = {"pareto": 2, "latency": _af_rec(1024.0, 400000.0, 262144.0, 12288.0),
           "energy": _af_rec(2048.0, 323584.0, 262144.0, 12288.0)}
    zz = [[_zz_layer(1028.0, 1024.0, 1.0, 262144.0, 61440.0)]]
    row = peers.compare(todo, None, zz, [raw])[0]
    a = row["accelforge"]
    assert a["cycles"] == 1024.0 and a["ratio_cycles_over_none"] == 1.0  # the latency-best's
    assert a["energy"] == 323584.0  # the energy-best's
    assert a["ratio_energy_over"] == pytest.approx(323584 / row["cascade"]["energy_pJ"])
    assert a["ratio_dram_words_over"] == 1.0 and a["ratio_mac_energy_over"] == 1.0
    assert a["ratio_energy_over_zigzag"] == pytest.approx(323584 / (262144 + 61440))
    summ = peers.summary([row])
    assert summ["accelforge"]["cycles_equal_none"] == 1
    mixed = peers.compare([peers.cases()[0], todo[0]], [[125], None], None, [None, raw])
    assert peers.summary(mixed)["scalesim"]["cases"] == 1  # rows without SCALE-Sim are skipped
    text = peers_report.markdown({"status": {}, "summary": summ, "rows": [row]})
    assert "| gemm | os | 16x16 | (64, 64, 64) | 1024 | 1024 | 1.000 |" in text
    failed = peers.compare(todo, None, None, [{"error": "TimeoutError: over 600 s"}])
    assert failed[0]["accelforge"] == {"error": "TimeoutError: over 600 s"}
    assert "error: TimeoutError" in peers_report.markdown(
        {"status": {}, "summary": peers.summary(failed), "rows": failed})


def test_peer_case_selection_and_reuse_without_running_a_peer(monkeypatch):
    extra = peers.extra_cases()
    assert {tuple(c["layers"][0]) for c in extra} == {(1024, 1024, 1024), (512, 512, 64)}
    fusion = peers.fusion_cases()
    assert [c["fusion"] for c in fusion.values()] == ["none", "searched"]
    assert all(peers.runs_on("accelforge", c) for c in extra + list(fusion.values()))
    assert not any(peers.runs_on("zigzag", c) for c in extra + list(fusion.values()))
    assert peers.case_key(fusion["none"]) != peers.case_key(fusion["searched"])
    todo = [c for c in peers.cases() if (c["rows"], c["cols"]) == (4, 8)][:2] + extra[:1]

    def no_venv():
        raise AssertionError("a reused peer must not be set up")
    monkeypatch.setattr(peers_accelforge, "ensure", no_venv)
    stored = {peers.case_key(c): {"error": "x"} for c in todo}
    status, got = peers.measure("accelforge", todo, stored)
    assert status.startswith("ran accelforge")
    assert got == [None, None, {"error": "x"}]  # 4 x 8 is not among ACCELFORGE_ARRAYS
    old = {"rows": [{**c, "accelforge": {"error": "x"}} for c in todo],
           "accelforge_chain_fusion": {"none": {"case": fusion["none"], "raw": {"error": "y"}}}}
    assert peers._stored("accelforge", old)[peers.case_key(fusion["none"])] == {"error": "y"}


def test_ratios_summary_and_markdown_on_canned_peer_outputs():
    todo = [{"kind": "gemm", "dataflow": "os", "rows": 16, "cols": 16, "layers": [(64, 64, 64)]}]
    zz = [[_zz_layer(1028.0, 1024.0, 1.0, 262144.0, 61440.0)]]
    rows = peers.compare(todo, [[1503]], zz)
    s, z = rows[0]["scalesim"], rows[0]["zigzag"]
    assert s["per_tile_minus"] == 1 and s["ratio_over"]["per_tile"] == pytest.approx(1503 / 1504)
    assert z["ratio_ideal_over_none"] == 1.0
    assert z["ratio_cycles_over_per_group"] == pytest.approx(1028 / 1054)
    assert z["ratio_mac_energy_over"] == 1.0
    assert z["ratio_energy_over"] == pytest.approx((262144 + 61440) / (262144 + 12288 + 16384))
    summ = peers.summary(rows)
    assert summ["scalesim"]["per_tile_equals_scalesim_plus_one_per_layer"] is True
    fusion = {"none": {"cycles": 10.0, "energy_pJ": 9.0, "offchip_words": 7.0,
                       "groups": [["S"], ["O"]]},
              "searched": {"cycles": 10.0, "energy_pJ": 8.0, "offchip_words": 3.0,
                           "groups": [["S", "O"]]}}
    text = peers_report.markdown({"status": {"scalesim": "ran", **peers.SKIPPED},
                                  "summary": summ, "rows": rows, "cascade_chain_fusion": fusion})
    assert "| none | S ; O | 10 | 9 | 7 |" in text and "| searched | S,O | 10 | 8 | 3 |" in text
    assert "| gemm | os | 16x16 | (64, 64, 64) | 1503 | 1024 | 1054 | 1504 | 1024 | 1028 |" in text
    assert "Where the models differ" in text


def test_a_failed_zigzag_layer_is_recorded_not_fatal():
    todo = [{"kind": "gemm", "dataflow": "ws", "rows": 8, "cols": 8, "layers": [(20, 12, 7)]}]
    rows = peers.compare(todo, None, [[{"error": "ValueError: bad"}]])
    assert rows[0]["zigzag"] == {"error": "ValueError: bad"}
    assert peers.summary(rows) == {"cases": 1}
    assert "error" in peers_report.markdown({"status": {}, "summary": {}, "rows": rows})


def test_skipped_peers_carry_a_reason(tmp_path, monkeypatch):
    for why in peers.SKIPPED.values():
        assert why.startswith("skipped: ") and len(why) > len("skipped: ") + 10
    monkeypatch.setattr(peers_zigzag, "VENV", tmp_path / "none")
    monkeypatch.setattr(peers_zigzag, "find_python312", lambda: None)
    python, why = peers_zigzag.ensure()
    assert python is None and why.startswith("skipped: needs Python >= 3.12")


@pytest.mark.slow
def test_zigzag_driver_on_one_gemm(tmp_path):
    python = peers_zigzag.VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("bench/.venv-zigzag absent (python bench/peers.py creates it)")
    case = {"kind": "gemm", "dataflow": "os", "rows": 16, "cols": 16, "layers": [(64, 64, 64)]}
    (tmp_path / "c.json").write_text(json.dumps([case]))
    out = subprocess.run([str(python), str(BENCH / "peers_zigzag.py"), "--driver",
                          str(tmp_path / "c.json")], capture_output=True, text=True, check=True)
    layer = json.loads(out.stdout.strip().splitlines()[-1])[0][0]
    assert layer["latency"]["ideal"] == 1024.0  # Cascade's `none`: 16 folds x K
    assert layer["energy"]["mac_energy"] == 64 ** 3


@pytest.mark.slow
def test_accelforge_driver_on_one_gemm(tmp_path):
    python = peers_accelforge.VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("bench/.venv-accelforge absent (python bench/peers.py creates it)")
    case = {"kind": "gemm", "dataflow": "os", "rows": 8, "cols": 8, "layers": [(64, 64, 64)]}
    (tmp_path / "c.json").write_text(json.dumps([case]))
    out = subprocess.run([str(python), str(BENCH / "peers_accelforge.py"), "--driver",
                          str(tmp_path / "c.json")], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])[0]
    assert got["latency"]["cycles"] == 4096.0  # Cascade's `none`: 64 folds x K
    assert got["energy"]["macs"] == 64 ** 3 and got["energy"]["dram_words"] == 3 * 64 * 64


def _stream_rec(cycles, energy, words, groups):
    return {"cycles": cycles, "group_cycles": [cycles], "groups": groups, "energy": energy,
            "node_energy": energy - 2 * words, "transfer_energy": 2 * words, "iterations": [8.0],
            "offchip_words": words, "status": ["OPTIMAL"], "splits": {}, "tiles": {}}


def _cascade_best(cycles, energy, words, groups):
    return {"cycles": cycles, "energy_pJ": energy, "offchip_words": words, "groups": groups}


def test_stream_inputs_follow_the_case():
    acc = peers_stream.accelerator(32, 16)
    array, off = acc["cores"][0], acc["cores"][1]
    assert (array["type"], off["type"], acc["offchip_core_id"]) == ("zigzag.compute",
                                                                    "zigzag.offchip", 1)
    assert array["operational_array"]["sizes"] == [32, 16]
    assert "dram" not in array["memories"] and list(off["memories"]) == ["dram"]
    for mem in (array["memories"]["glb"], off["memories"]["dram"]):  # 1 pJ a 16-bit word
        assert mem["r_cost"] * 16 / mem["ports"][0]["bandwidth_max"] == 1.0
    link, = acc["core_connectivity"]
    assert link["cores"] == [0, 1] and link["unit_energy_cost"] == 0
    assert link["bandwidth"] == off["memories"]["dram"]["ports"][0]["bandwidth_max"]
    chain = next(c for c in peers_stream.cases() if c["kind"] == "chain")
    g = peers_stream.graph(chain)
    assert g["inputs"] == {"Q": [256, 64], "Kt": [64, 256], "V": [256, 64]}
    assert [n[2] for n in g["nodes"]] == ["S", "O"] and g["outputs"] == {"O": [256, 64]}
    tensors = {*g["inputs"], *g["outputs"], *(n[2] for n in g["nodes"])}
    assert not tensors & {n[0] for n in g["nodes"]}  # Stream overwrites a node named as a tensor
    gemm = peers_stream.graph({"kind": "gemm", "layers": [(20, 12, 7)]})
    assert gemm["inputs"] == {"A0": [20, 7], "B0": [7, 12]} and gemm["outputs"] == {"C0": [20, 12]}
    with pytest.raises(ValueError, match="chain layers"):
        peers_stream.graph({"kind": "chain", "layers": [(256, 256, 64), (128, 64, 256)]})
    loads(peers_stream.cascade_text(chain))
    assert peers_stream.cascade_arch(16, 16)["units"][0]["dims"] == [16, 16]


def test_stream_ratios_cut_and_markdown_on_canned_output(monkeypatch):
    case = {"kind": "chain", "rows": 16, "cols": 16, "layers": [(256, 256, 64), (256, 64, 256)]}
    macs = 2 * 256 * 256 * 64
    raw = {"none": _stream_rec(32852.0, macs + 1e6, 425984.0, [["QK"], ["AV"]]),
           "fused": _stream_rec(32820.0, macs + 8e5, 294912.0, [["QK", "AV"]]),
           "stream": _stream_rec(32820.0, macs + 8e5, 294912.0, [["QK", "AV"]])}
    ours = {f: {"energy": _cascade_best(524334.0, macs + w + 1e5, w, groups),
                "latency": _cascade_best(32844.0, macs + w + 9e5, w, groups)}
            for f, w, groups in (("none", 196608.0, [["S"], ["O"]]),
                                 ("searched", 65536.0, [["S", "O"]]))}
    row = peers_stream.compare(case, raw, ours)
    assert row["stream_cut"] == [["S", "O"]] and row["same_cut"] is True
    side = row["none"]
    assert side["ratio_cycles_over_latency_best"] == pytest.approx(32852 / 32844)
    assert side["ratio_offchip_words_over"] == pytest.approx(425984 / 196608)
    assert side["stream_terms"] == {"mac": macs, "dram": 425984.0, "buffer": 1e6 - 425984.0}
    assert side["cascade_terms"]["buffer"] == pytest.approx(1e5)
    assert row["fused"]["ratio_energy_over_energy_best"] == pytest.approx(
        (macs + 8e5) / (macs + 65536 + 1e5))
    text = peers_report.markdown({"status": {}, "summary": {}, "rows": [],
                                  "stream": {"rows": [row]}})
    assert "| chain | 16x16 | (256, 256, 64) (256, 64, 256) | fused | searched | QK,AV | 32820 |" in text
    assert "Stream [['S', 'O']], Cascade [['S', 'O']] (same; the fewest cycles: stream)" in text
    assert row["stream_fastest"] == "stream"  # fused ties it: Stream's own cut is named
    zz = {**case, "dataflow": "is", "layers": [list(x) for x in case["layers"]],
          "zigzag": {"layers": [_zz_layer(1.0, 1.0, 7.0, 1.0, 1.0)] * 2}}
    peers_stream.zigzag_reference([row], [{**zz, "dataflow": "os"}, zz])
    assert row["zigzag_is_latency_best_pJ"] == 14.0  # the input-stationary row's layers summed
    text = peers_report.markdown({"status": {}, "summary": {}, "rows": [],
                                  "stream": {"rows": [row]}})
    assert f"{macs + 1e6:.0f} / 14 = " in text
    failed = peers_stream.compare(case, {**raw, "fused": {"error": "ValueError: x"}}, ours)
    assert failed["fused"] == {"error": "ValueError: x"}
    assert "error: ValueError: x" in peers_report.markdown(
        {"status": {}, "summary": {}, "rows": [], "stream": {"rows": [failed]}})
    gemm = {"kind": "gemm", "rows": 16, "cols": 16, "layers": [(64, 64, 64)]}
    one = peers_stream.compare(gemm, {"none": raw["none"]}, {"none": ours["none"]})
    assert "stream_cut" not in one and "fused" not in one  # one layer: no cut to choose

    def no_venv():
        raise AssertionError("stored Stream results must not set up the venv")
    monkeypatch.setattr(peers_stream, "ensure", no_venv)
    monkeypatch.setattr(peers_stream, "cases", lambda: [case])
    monkeypatch.setattr(peers_stream, "cascade_side", lambda c: ours)
    status, rows = peers_stream.measure({"rows": [row]})
    assert status.startswith("ran stream-dse") and rows[0]["same_cut"] is True


def test_stream_skipped_without_python312(tmp_path, monkeypatch):
    monkeypatch.setattr(peers_stream, "VENV", tmp_path / "none")
    monkeypatch.setattr(peers_stream, "find_python312", lambda: None)
    python, why = peers_stream.ensure()
    assert python is None and why.startswith("skipped: needs Python >= 3.12")
    status, rows = peers_stream.measure()
    assert status == why and rows == []


def test_stream_cascade_side_of_one_gemm():
    got = peers_stream.cascade_side({"kind": "gemm", "rows": 16, "cols": 16,
                                     "layers": [(64, 64, 64)]})
    assert list(got) == ["none"] and set(got["none"]) == {"energy", "latency"}
    best = got["none"]["energy"]
    assert best["offchip_words"] == 3 * 64 * 64 and best["groups"] == [["C0"]]
    assert best["energy_pJ"] >= 64 ** 3 * peers_cascade.MAC_PJ + 3 * 64 * 64
    assert got["none"]["latency"]["cycles"] >= 64 ** 3 / 256


@pytest.mark.slow
def test_stream_driver_on_one_gemm(tmp_path):
    python = peers_stream.VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("bench/.venv-stream absent (python bench/peers.py creates it)")
    case = {"kind": "gemm", "rows": 16, "cols": 16, "layers": [(64, 64, 64)]}
    (tmp_path / "c.json").write_text(json.dumps([case]))
    out = subprocess.run([str(python), str(BENCH / "peers_stream.py"), "--driver",
                          str(tmp_path / "c.json")], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])[0]
    assert list(got) == ["none"] and "error" not in got["none"]
    rec = got["none"]
    assert rec["groups"] == [["MM"]] and rec["cycles"] >= 64 ** 3 / 256
    assert rec["node_energy"] >= 64 ** 3 * peers_cascade.MAC_PJ  # its MACs at 1 pJ, and more
    assert rec["offchip_words"] >= 3 * 64 * 64  # every input read and the output written once
