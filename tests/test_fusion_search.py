"""The mapper searches where to cut a cascade into fusion groups (mapper/fusion.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade_cli.io import read_cascade
from einsum_ir.errors import CascadeError
from einsum_ir.loading import load_resolved
from einsum_ir.parser import parse
from mapper.fusion import cut_points, partitions, segments
from mapper.search import SPILL_LEVELS, forms_for, search
from simulator.arch import resolve_arch
from simulator.cost import simulate, simulate_problem

ROOT = Path(__file__).resolve().parent.parent
GEMMS = """rank M = {M}, K = {K}, N = {N}, J = {J}
input A[m,k], B[k,n], D[n,j]
output E[m,j]
C[m,n] = sum[k] A[m,k] * B[k,n]
E[m,j] = sum[n] C[m,n] * D[n,j]
"""
# C (4096 x 1024 words, 8 MiB) fits the 16 MiB buffer; K and J are small, so moving C off-chip
# and back (16 MiB) dominates the traffic of the layer-by-layer mapping
BIG_INTERMEDIATE = {"M": 4096, "K": 64, "N": 1024, "J": 64}
# C is small (256 x 1024: 512 KiB) but both weights are large (B, D: 32 MiB each). Fused, one
# loop nest serves both GEMMs: if the loop over K tiles encloses the loop over N tiles, D is
# re-read once per K tile; the other way round A is re-read once per N tile; walking K inside the
# buffer instead needs an A row block and a D column block (8 MiB each) on chip at once, more
# than the buffer holds beside the other tiles. Cut, each GEMM has its own loop order and reads
# every operand once, for 1 MiB of traffic through C.
BIG_WEIGHTS = {"M": 256, "K": 16384, "N": 1024, "J": 16384}


def _gemms(sizes: dict):
    return parse(GEMMS.format(**sizes), "gemms.ein")


def _three(cascade, sizes=None, objective="latency"):
    arch = resolve_arch("fusemax")
    return {f: search(cascade, arch, dict(sizes or {}), top=2, objective=objective, fusion=f)
            for f in ("searched", "full", "none")}


def test_two_gemm_chain_with_big_intermediate_is_fused():
    found = _three(_gemms(BIG_INTERMEDIATE))
    mapping, report = found["searched"].best[0]
    assert len(mapping.groups) == 1 and set(mapping.groups[0].einsums) == {"C", "E"}
    unfused = found["none"].best[0]
    assert len(unfused[0].groups) == 2
    assert report.cycles < unfused[1].cycles
    # the layer-by-layer mapping writes C and reads it back: 2 x 8 MiB more traffic
    assert unfused[1].traffic_bytes - report.traffic_bytes >= 2 * 4096 * 1024 * 2


def test_two_gemm_chain_with_big_weights_is_cut():
    found = _three(_gemms(BIG_WEIGHTS))
    mapping, report = found["searched"].best[0]
    assert [g.einsums for g in mapping.groups] == [("C",), ("E",)]
    fused = found["full"].best[0][1]
    assert report.cycles < fused.cycles and report.traffic_bytes < fused.traffic_bytes
    # each group reads its operands once: A, B, D and C (read back) plus E and C written
    words = 256 * 16384 + 16384 * 1024 + 1024 * 16384 + 2 * 256 * 1024 + 256 * 16384
    assert report.traffic_bytes == words * 2


@pytest.mark.parametrize("case, objective", [
    (case, objective) for case in ("big_intermediate", "big_weights", "softcap")
    for objective in ("latency", "energy")] + [("agent", "latency")])
def test_searched_never_worse_than_either_extreme(case, objective):
    if case.startswith("big"):
        cascade, sizes = _gemms(BIG_INTERMEDIATE if case == "big_intermediate" else BIG_WEIGHTS), {}
    else:
        path = ROOT / ("examples/attention/softcap.ein" if case == "softcap"
                       else "tests/data/agent_attention.ein")
        loaded = load_resolved(read_cascade(str(path)), ["P=256", "M=256"])
        cascade, sizes = loaded.cascade, dict(loaded.overrides)
    found = _three(cascade, sizes, objective)
    metric = (lambda r: r.cycles) if objective == "latency" else (lambda r: r.energy_pJ)
    best = metric(found["searched"].best[0][1])
    assert best <= metric(found["full"].best[0][1])
    assert best <= metric(found["none"].best[0][1])


def test_partition_simulates_as_estimated():
    """The chosen partition is an ordinary multi-group mapping: simulating the cascade with it
    gives the searched report, and the program's estimate is the model's cost."""
    cascade = _gemms(BIG_WEIGHTS)
    arch = resolve_arch("fusemax")
    r = search(cascade, arch, {}, top=1)
    mapping, report = r.best[0]
    again = simulate(cascade, arch, mapping)
    assert again.cycles == report.cycles and again.energy_pJ == report.energy_pJ
    assert [g.name for g in again.groups] == ["g1", "g2"]
    (form,), _ = forms_for(cascade, arch, {})
    found, evaluated = partitions(form, arch, "searched", SPILL_LEVELS, 1.0, {})
    assert found and evaluated > 0
    for part in found:
        model = simulate_problem(form.prob, arch, part.mapping([u.name for u in arch.units],
                                                               "pipelined", {}))
        assert model.cycles == pytest.approx(part.cycles, rel=1e-12)
        assert model.energy_pJ == pytest.approx(part.energy, rel=1e-12)


def test_softcap_one_group_spreads_each_einsums_ranks():
    """Softcap attention after the online-softmax rewrite: the final division AV has no key rank.
    Within one group each Einsum spreads its own ranks where its unit's miss it
    (:func:`mapper.space.per_einsum`), and ``tanh(QK / CAP)`` divides by a constant (a
    multiply, on the 2D array), so no Einsum is left on a fraction of the PEs and the single
    group (no intermediate written and read back) is the searched best."""
    loaded = load_resolved(read_cascade(str(ROOT / "examples/attention/softcap.ein")),
                           ["P=256", "M=256"])
    found = _three(loaded.cascade, dict(loaded.overrides))
    mapping, report = found["searched"].best[0]
    assert len(mapping.groups) == 1
    assert report.cycles == found["full"].best[0][1].cycles < found["none"].best[0][1].cycles
    spread = {k: m.spatial for k, m in mapping.einsums.items()}
    assert spread["AV"] == ("P0",) and "M0" not in spread["RNV"]


def test_cut_points_keep_recurrences_whole():
    arch = resolve_arch("fusemax")
    loaded = load_resolved(read_cascade(str(ROOT / "examples/attention/mha_1pass.ein")), [])
    (form,), _ = forms_for(loaded.cascade, arch, dict(loaded.overrides))
    keys = form.keys
    cuts = cut_points(form.prob, keys)
    groups = [keys[a:b] for a, b in segments(len(keys), cuts, "none")]
    # each recurrence (running max RM, denominator RD, numerator x V RNV) stays whole, with the
    # Einsums that read its running value (SLN, PRM read RM[m1+1] and RM[m1]); AV reads finals
    assert groups == [("QK",), ("LM",), ("RM", "SLN", "PRM"), ("SPD", "SLD", "RD"),
                      ("SPNV", "SLNV", "RNV"), ("AV",)]
    assert all(a < b for a, b in zip(cuts, cuts[1:], strict=False))


def test_unknown_fusion_is_refused():
    with pytest.raises(CascadeError, match="unknown fusion"):
        search(_gemms(BIG_INTERMEDIATE), resolve_arch("fusemax"), {}, fusion="some")


def test_cli_fusion_option_and_saved_partition(tmp_path):
    saved = tmp_path / "cut.yaml"
    src = tmp_path / "gemms.ein"
    src.write_text(GEMMS.format(**BIG_WEIGHTS))
    run = [sys.executable, "-m", "cascade_cli"]
    out = subprocess.run([*run, "map", str(src), "--arch", "fusemax", "--fusion", "full", "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    full = json.loads(out.stdout)
    assert full["fusion"] == "full" and len(full["best"][0]["mapping"]["groups"]) == 1
    out = subprocess.run([*run, "map", str(src), "--arch", "fusemax", "--save", str(saved), "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    cut = json.loads(out.stdout)
    assert len(cut["best"][0]["mapping"]["groups"]) == 2
    assert cut["best"][0]["cycles"] < full["best"][0]["cycles"]
    out = subprocess.run([*run, "simulate", str(src), "--arch", "fusemax", "--mapping", str(saved),
                          "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cycles"] == cut["best"][0]["cycles"]


def test_segments_past_the_budget_keep_the_narrow_groups():
    """Every range between cut points while they fit the budget; past it, the widest ranges go
    first, and the finest partition and every two-interval group stay candidates."""
    from mapper.fusion import MAX_SEGMENTS

    cuts = tuple(range(1, 6))  # 6 intervals: 20 segments, under the budget
    assert len(segments(6, cuts, "searched")) == 6 * 7 // 2 - 1
    cuts = tuple(range(1, 24))  # 24 intervals: 299 segments in all
    found = segments(24, cuts, "searched")
    assert len(found) <= MAX_SEGMENTS
    assert {(a, a + 1) for a in range(24)} <= set(found)
    assert {(a, a + 2) for a in range(23)} <= set(found)
    width = max(b - a for a, b in found)
    assert all((a, a + width) in found for a in range(24 - width + 1))
    assert len(segments(24, cuts, "searched", budget=1)) == 24  # never below the finest cut
