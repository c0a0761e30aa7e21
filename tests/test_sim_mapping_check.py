"""Saved mappings record their pipeline as data, are replayed, refused on another cascade, and
every field is checked against the cascade and the architecture (file and field path named)."""
import contextlib
import io
import json

import pytest
import yaml

from cascade_cli.main import main
from einsum_ir import load
from einsum_ir.errors import CascadeError
from einsum_ir.passes import digest
from mapper.search import search
from simulator.arch import resolve_arch
from simulator.mapping_check import simulate_saved
from simulator.mapping_load import load_mapping, mapping_from_dict

from test_golden import EXAMPLES, ROOT

SIZES = ["--set", "P=256", "--set", "M=256"]


def _cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def saved_3pass(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "mha_3pass.yaml"
    rc, _, err = _cli(["map", str(ROOT / "examples/attention/mha_3pass.ein"), "--arch", "fusemax",
                       *SIZES, "--save", str(path), "--no-progress"])
    assert rc == 0, err
    return path


def test_saved_mapping_records_the_pipeline(saved_3pass):
    data = yaml.safe_load(saved_3pass.read_text())
    assert "form" not in data
    assert data["pipeline"] == {"name": "one-pass",
                                "passes": [{"pass": "online-softmax", "tile_size": 256}]}
    assert data["cascade_digest"] == digest(load(ROOT / "examples/attention/mha_3pass.ein"))
    assert "M0" not in data.get("sizes", {})  # the tile size is the pass's option


def test_replayed_mapping_gives_the_searched_report(saved_3pass):
    casc = load(ROOT / "examples/attention/mha_3pass.ein")
    arch = resolve_arch("fusemax")
    found = search(casc, arch, {"P": 256, "M": 256}, top=1).best[0][1]
    again = simulate_saved(casc, arch, load_mapping(saved_3pass), {"P": 256, "M": 256})
    assert again.cycles == found.cycles and again.energy_pJ == found.energy_pJ
    assert again.form == "after online-softmax(tile_size=256)"


def test_mapping_for_another_cascade_is_refused(saved_3pass):
    rc, _, err = _cli(["simulate", str(ROOT / "examples/attention/causal.ein"), "--arch", "fusemax",
                       *SIZES, "--mapping", str(saved_3pass)])
    assert rc == 1
    assert "made for mha_3pass" in err and "not for causal" in err and str(saved_3pass) in err
    assert "Traceback" not in err


def test_same_cascade_at_other_sizes_is_accepted(saved_3pass):
    rc, out, err = _cli(["simulate", str(ROOT / "examples/attention/mha_3pass.ein"), "--arch",
                         "fusemax", "--set", "P=1K", "--set", "M=512", "--mapping", str(saved_3pass),
                         "--json"])
    assert rc == 0, err
    report = json.loads(out)
    assert report["sizes"]["P"] == 1024 and report["form"] == "after online-softmax(tile_size=256)"


def test_old_form_field_is_refused_with_a_hint():
    with pytest.raises(CascadeError) as exc:
        mapping_from_dict({"form": "1-pass after online-softmax (mha_3pass)", "einsums": {},
                           "groups": []}, "old.yaml")
    assert "old.yaml: form:" in str(exc.value) and "pipeline:" in exc.value.hint


@pytest.mark.parametrize("path", [p for p in EXAMPLES], ids=lambda p: p.stem)
def test_every_golden_mapping_passes_the_checks(path):
    """The mappings the mapper writes satisfy every check (they are what the checks accept)."""
    data = json.loads((ROOT / "tests" / "golden" / f"{path.stem}.map.json").read_text())
    mapping = mapping_from_dict(data["best"][0]["mapping"], "golden")
    sizes = {"P": 256} if path.stem == "linear_causal_chunked" else {"P": 256, "M": 256}
    report = simulate_saved(load(path), resolve_arch("fusemax"), mapping, sizes)
    assert report.cycles == data["best"][0]["cycles"]


def _edited(saved, edit):
    data = yaml.safe_load(saved.read_text())
    edit(data)
    return data


def _group(data):
    return data["groups"][0]


BAD = [
    ("keep level", lambda d: _group(d).update(keep={"Q": "L3"}), "groups[0].keep.Q", "no level 'L3'"),
    ("keep tensor", lambda d: _group(d).update(keep={"ZZ": "GLB"}), "groups[0].keep.ZZ", "tensor ZZ"),
    ("order unit", lambda d: _group(d).update(order={"3d": ["QK"]}), "groups[0].order.3d", "no unit '3d'"),
    ("empty loops", lambda d: _group(d).update(loops=[]), "groups[0].loops", "tile part"),
    ("spatial twice", lambda d: d["einsums"]["QK"].update(spatial=["P0", "P0"]), "einsums.QK.spatial",
     "two PE dimensions"),
    ("unknown size", lambda d: d.update(sizes={"Z": 4}), "sizes.Z", "declares no size Z"),
    ("unknown unit", lambda d: d["einsums"]["QK"].update(unit="3d"), "einsums.QK.unit", "no unit '3d'"),
    ("incapable unit", lambda d: d["einsums"]["AV"].update(unit="2d", spatial=["P0"]), "einsums.AV.unit",
     "cannot perform div"),
    ("unknown einsum", lambda d: d["einsums"].update(XX={"unit": "1d"}), "einsums.XX", "no Einsum XX"),
    ("unknown loop", lambda d: _group(d)["loops"].append("Q7"), "groups[0].loops", "'Q7'"),
    ("unknown spill", lambda d: _group(d).update(spill={"Q": 0.5}), "groups[0].spill.Q", "not produced"),
]


@pytest.mark.parametrize("what, edit, where, message", BAD, ids=[b[0] for b in BAD])
def test_bad_fields_are_located(saved_3pass, tmp_path, what, edit, where, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_edited(saved_3pass, edit)))
    rc, _, err = _cli(["simulate", str(ROOT / "examples/attention/mha_3pass.ein"), "--arch",
                       "fusemax", *SIZES, "--mapping", str(path)])
    assert rc == 1, err
    assert f"{path}: {where}" in err and message in err, err
    assert "hint" in err.lower() or what in ("spatial twice",), err
    assert "Traceback" not in err
