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
import peers_cascade  # noqa: E402
import peers_report  # noqa: E402
import peers_zigzag  # noqa: E402
from einsum_ir import loads  # noqa: E402


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
