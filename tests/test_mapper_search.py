"""The mapper: finds FuseMax's mapping by itself, maps 3-pass cascades after the online-softmax
rewrite, is deterministic, and its vectorised cost equals the full model; mappings round-trip."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from einsum_ir.errors import CascadeError
from simulator.arch import resolve_arch
from simulator.mapping_load import load_mapping, mapping_from_dict
from mapper.select import pareto_front
from simulator.cost import simulate
from mapper.search import search
from studies.fusemax.workloads import cascade

ROOT = Path(__file__).resolve().parent.parent
BERT_1K = {"B": 64, "H": 12, "E": 64, "F": 64, "P": 1024, "M": 1024}
FUSEMAX_2D = {"QK", "LM", "SLN", "SLD", "SLNV"}


def _binding(mapping):
    return {k: m.unit for k, m in mapping.einsums.items()}


def test_finds_fusemax_mapping_from_mha_1pass():
    # the written split keeps its size: FuseMax's tile is one PE dimension, given as --set would
    r = search(cascade("mha_1pass"), resolve_arch("fusemax"), {**BERT_1K, "M0": 256}, top=3)
    mapping, report = r.best[0]
    # FuseMax's 2D Einsums, and SPNV too: it spreads its own ranks (F, P0) over the 2D array
    # (never B: the tiling loops over B in time, one value per tile)
    assert {k for k, u in _binding(mapping).items() if u == "2d"} == FUSEMAX_2D | {"SPNV"}
    assert "B" not in mapping.einsums["SPNV"].spatial
    assert mapping.einsums["QK"].spatial == ("M0", "P0") and mapping.einsums["RM"].spatial == ("P0",)
    assert mapping.tiles["P"] == {"P1": 4, "P0": 256} and mapping.sizes == {"M0": 256}
    assert mapping.groups[0].mode == "pipelined"
    assert report.cycles == 1_695_744 < 1_892_352 and report.traffic_bytes == 402_653_184
    assert r.rate > 20_000  # the benchmark measures the rate on its own; here only a sanity floor


def test_three_pass_is_mapped_after_online_softmax():
    r = search(cascade("mha_3pass"), resolve_arch("fusemax"), BERT_1K, top=1)
    mapping, report = r.best[0]
    assert "online-softmax" in report.form and "as written" in r.forms_tried
    assert report.cycles == 1_695_744  # the rewrite's own split: the mapper sizes its tile


def test_fusemax_64k_at_least_as_fast_as_paper_mapping():
    from studies.fusemax.study import attention_point

    sizes = {**BERT_1K, "P": 65536, "M": 65536, "M0": 256}  # the paper's tile, as --set gives it
    found = search(cascade("mha_1pass"), resolve_arch("fusemax"), sizes, top=1).best[0][1]
    paper = attention_point("BERT", 65536, "FuseMax")[1]
    assert found.cycles <= paper.cycles
    # latency is the objective: SPNV on the 2D array (its own ranks spread) is 0.18% faster than
    # the paper's binding for 1.2% more energy (RNV's rows cross between the arrays); the found
    # mapping is never worse on both
    assert found.cycles < paper.cycles or found.energy_pJ <= paper.energy_pJ


def test_relaxed_parallelism_finds_better_balance():
    """Letting low-parallelism Einsums onto the 2D array (one row of it) balances the arrays
    better than the paper's binding."""
    r = search(cascade("mha_1pass"), resolve_arch("fusemax"), {**BERT_1K, "M0": 256}, top=1,
               min_parallelism=0)
    assert r.best[0][1].cycles < 1_892_352


def test_deterministic_and_vectorised_cost_matches_model():
    arch = resolve_arch("fusemax")
    a = search(cascade("mha_1pass"), arch, BERT_1K, top=3, objective="energy")
    b = search(cascade("mha_1pass"), arch, BERT_1K, top=3, objective="energy")
    assert [m.to_dict() for m, _ in a.best] == [m.to_dict() for m, _ in b.best]
    assert [r.energy_pJ for _, r in a.best] == sorted(r.energy_pJ for _, r in a.best)
    assert a.front == b.front and len(a.front) >= 1


def test_pareto_front():
    import numpy as np

    lat = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    en = np.array([1.0, 5.0, 2.0, 3.0, 0.5])
    assert list(pareto_front(lat, en)) == [1, 2, 0, 4]


def test_mapping_yaml_round_trip(tmp_path):
    r = search(cascade("mha_1pass"), resolve_arch("fusemax"), BERT_1K, top=1)
    mapping, report = r.best[0]
    path = tmp_path / "m.yaml"
    mapping.save(path)
    again = load_mapping(path)
    assert again == mapping
    assert simulate(cascade("mha_1pass"), resolve_arch("fusemax"), again, BERT_1K).cycles == report.cycles
    assert "group fused [pipelined]" in again.describe()


@pytest.mark.parametrize("data, message", [
    ({"einsums": {}, "groups": []}, "groups: expected a non-empty list"),
    ({"einsums": {"QK": {"unit": "2d"}}, "groups": [{"einsums": ["QK"], "mode": "fast"}]}, "groups[0].mode: expected one of"),
    ({"einsums": {"QK": {"unit": "2d"}}, "groups": [{"einsums": ["QX"]}]}, "QX has no binding"),
    ({"einsums": {"QK": {"unit": "2d", "spatial": "M0"}}, "groups": [{"einsums": ["QK"]}]}, "einsums.QK.spatial"),
    ({"einsums": {"QK": {"unit": "2d"}}, "groups": [{"einsums": ["QK"], "spill": {"QK": 2}}]}, "spill.QK: expected a fraction"),
])
def test_bad_mappings(data, message):
    with pytest.raises(CascadeError) as exc:
        mapping_from_dict(data, "m.yaml")
    assert message in str(exc.value)


def test_cli_map_and_simulate(tmp_path):
    saved = tmp_path / "best.yaml"
    common = ["examples/attention/mha_1pass.ein", "--arch", "fusemax", "--set", "B=64", "--set", "H=12",
              "--set", "P=1K", "--set", "M=1K", "--set", "M0=256"]
    out = subprocess.run([sys.executable, "-m", "cascade_cli", "map", *common, "--save", str(saved),
                          "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["best"][0]["cycles"] == 1_695_744 and saved.exists()
    out = subprocess.run([sys.executable, "-m", "cascade_cli", "simulate", *common, "--mapping", str(saved),
                          "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    for key in ("latency_s", "cycles", "energy_J", "traffic_bytes", "area_mm2", "utilization", "per_einsum", "form"):
        assert key in rep
    assert rep["cycles"] == 1_695_744 and rep["sizes"] == data["best"][0]["sizes"]
    out = subprocess.run([sys.executable, "-m", "cascade_cli", "simulate", *common, "--mapping",
                          str(tmp_path / "none.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "no such mapping file" in out.stderr


@pytest.mark.parametrize("name", ["mha_3pass", "causal", "gqa", "linear", "softcap"])
def test_every_example_maps_on_the_edge_design(name):
    """Small arrays have more candidate spatial ranks; every shipped example maps and re-simulates."""
    path = ROOT / "examples" / "attention" / f"{name}.ein"
    if not path.exists():
        pytest.skip(f"{name}.ein is not shipped")
    from einsum_ir import load

    r = search(load(path), resolve_arch("edge"), {"P": 128, "M": 128}, top=1, spill_levels=(0.0, 1.0))
    mapping, report = r.best[0]
    assert report.cycles > 0 and all(0 <= u <= 1 + 1e-12 for u in report.utilization.values())


@pytest.mark.parametrize("name, arch_name", [("mha_3pass", "fusemax"), ("causal", "edge"),
                                             ("softcap", "flat"), ("linear_causal_chunked", "edge")])
def test_vectorised_cost_is_the_models_to_the_last_bit(name, arch_name):
    """The evaluator uses the model's formulas on arrays: every sampled candidate's latency,
    energy and feasibility equal its pipelined re-simulation exactly."""
    import numpy as np

    from einsum_ir import load
    from mapper.evaluate import candidate_mapping, evaluate_space
    from mapper.search import forms_for
    from mapper.space import batch_ranks, spatial_options, tilings
    from simulator.cost import simulate_problem
    from simulator.counts import Infeasible

    arch = resolve_arch(arch_name)
    sizes = {"P": 256} if name == "linear_causal_chunked" else {"P": 256, "M": 256}
    forms, _ = forms_for(load(ROOT / "examples" / "attention" / f"{name}.ein"), arch, sizes)
    units = [u.name for u in arch.units]
    checked = 0
    for form in forms:
        casc, memo = form.prepared.cascade, {}
        for spatial, tile_sizes in spatial_options(casc, form.prob.sizes, arch):
            found = tilings(casc, form.prob, form.keys, tile_sizes, batch_ranks(casc), (0.0, 0.5))
            for cand in (evaluate_space(form, arch, spatial, found, memo, 1.0)[::3] if found else []):
                fit = np.flatnonzero(np.isfinite(cand.cycles))[:1].tolist()  # one that fits too
                for r in sorted({*range(0, len(cand.cycles), max(1, len(cand.cycles) // 2)), *fit}):
                    m = candidate_mapping(form, cand.bindings[r], units, cand.spatial, cand.tiling,
                                          "pipelined", {})
                    try:
                        rep = simulate_problem(form.prob, arch, m)
                    except Infeasible:
                        assert not np.isfinite(cand.cycles[r])
                        continue
                    assert (rep.cycles, rep.energy_pJ) == (cand.cycles[r], cand.energy[r])
                    checked += 1
    assert checked >= 10


def test_pools_keep_only_what_the_search_may_choose(monkeypatch):
    """Each evaluated pool keeps its Pareto front and its best candidates by the objective: the
    best mappings, the front and the counts are those of keeping every candidate, and no pool
    keeps more than the front and KEEP_PER_POOL (the edge mapper held 17M candidates, 1.4 GB,
    for a 14-Einsum harness cascade)."""
    import mapper.search as ms
    from einsum_ir import load
    from simulator.arch import resolve_arch

    cascade, arch = load("examples/attention/mha_1pass.ein"), resolve_arch("edge")

    def summary():
        r = ms.search(cascade, arch, {"P": 200, "M": 200}, top=3)
        return [(m[1].cycles, m[1].energy_pJ) for m in r.best], r.front, r.evaluated, r.feasible

    kept = summary()
    forms, _ = ms.forms_for(cascade, arch, {"P": 200, "M": 200})
    pools, evaluated, _ = ms._evaluate(forms, arch, ms.SPILL_LEVELS, 1.0, False)
    assert sum(len(p.cycles) for p in pools) < evaluated
    monkeypatch.setattr(ms, "_kept", lambda cand, objective, keep: cand)
    assert summary() == kept
