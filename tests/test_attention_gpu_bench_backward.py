"""bench/attention_gpu.py's backward pass: the ratios, the targets and the table on canned records,
and ``--smoke`` end to end on the CPU (TRITON_INTERPRET=1, one tiny shape, float32)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "attention_gpu.py"
sys.path.insert(0, str(ROOT / "bench"))

from gpu_lane_results import backward_kind, backward_ratios, backward_table, target_verdicts  # noqa: E402


def _rec(variant, **times):
    return dict(variant=variant, seq_len=4096, head_dim=128, **times)


def test_ratios_are_baseline_over_ours_for_both_phases():
    rec = _rec("causal", ours_ms=2.0, ours_fwdbwd_ms=3.0, sdpa_ms=1.8, sdpa_fwdbwd_ms=3.3,
               flex_ms=None, flex_fwdbwd_ms=None, eager_ms=8.0, eager_fwdbwd_ms=12.0)
    r = backward_ratios(rec)
    assert r["bwd_vs_sdpa"] == pytest.approx(0.9) and r["fwdbwd_vs_sdpa"] == pytest.approx(1.1)
    assert r["bwd_vs_eager"] == pytest.approx(4.0) and r["fwdbwd_vs_eager"] == pytest.approx(4.0)
    assert r["bwd_vs_flex"] is None and r["fwdbwd_vs_flex"] is None  # measured, but failed
    assert "bwd_vs_sdpa_cudnn" not in r  # not measured at all
    assert backward_ratios(_rec("dense", ours_ms=None, sdpa_ms=1.0))["bwd_vs_sdpa"] is None


def test_the_issue_targets_by_variant():
    assert [backward_kind(v) for v in ("dense", "causal", "sliding1024", "linear", "linear_causal",
                                       "gqa8", "alibi")] == \
        ["dense", "causal", "sliding", "linear", "linear_causal", None, None]
    causal = target_verdicts(_rec("causal", ours_ms=1.0, sdpa_ms=0.89, flex_ms=1.5))
    assert [(v.baseline, v.least, v.met) for v in causal] == [("sdpa", 0.9, False), ("flex", 1.0, True)]
    exactly = target_verdicts(_rec("dense", ours_ms=1.0, sdpa_ms=0.9))
    assert exactly[0].met  # 0.9x meets ">= 0.9x"
    (window,) = target_verdicts(_rec("sliding256", ours_ms=1.0, flex_ms=None))
    assert window.baseline == "flex" and window.met is None
    (linear,) = target_verdicts(_rec("linear_causal", ours_ms=2.0, eager_ms=3.0))
    assert linear.baseline == "eager" and linear.ratio == pytest.approx(1.5) and linear.met
    assert target_verdicts(_rec("gqa8", ours_ms=1.0, sdpa_ms=1.0)) == []


def test_the_table_reports_ratios_targets_compile_time_and_the_engine():
    records = [
        _rec("causal", ours_ms=2.0, ours_fwdbwd_ms=3.0, ours_bwd_compile_s=4.25, sdpa_ms=1.6,
             sdpa_fwdbwd_ms=2.4, flex_ms=2.5, flex_fwdbwd_ms=3.6, flex_bwd_compile_s=21.5,
             ours_backward_engine="Triton kernels (the cascade lowers)"),
        _rec("linear", ours_ms=None, eager_ms=0.5, eager_fwdbwd_ms=0.8,
             ours_backward_engine="the reference interpreter (numpy) (the Triton lowering "
                                  "refused: a | b)",
             ours_note="not timed: the backward runs on the host"),
    ]
    lines = backward_table(records)
    causal = next(line for line in lines if line.startswith("| causal |"))
    cells = [c.strip() for c in causal.split("|")[1:-1]]
    assert cells[3:7] == ["2.000", "3.000", "4.25", "0.80x"]  # bwd, fwd+bwd, compile, vs SDPA
    assert cells[8] == "1.25x" and cells[10] == "0.80x / 1.20x / -" and cells[11] == "21.50"
    assert cells[12] == "SDPA flash >= 0.9x: below; FlexAttention >= 1.0x: met"
    linear = next(line for line in lines if line.startswith("| linear |"))
    assert "PyTorch >= 1.0x: not measured" in linear
    assert "our backward: the reference interpreter (numpy)" in linear and "a / b" in linear
    assert len(linear.split("|")) == len(causal.split("|"))  # a '|' in a note is escaped
    assert "1 met, 1 below, 1 not measured" in lines[-1]


def test_smoke_run_of_the_backward_pass(tmp_path):
    """The script's own plumbing on the CPU: about 10 s for two variants."""
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--passes", "backward",
                        "--variants", "causal,linear", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    (path,) = tmp_path.glob("cpu-smoke-*.json")
    records = {rec["variant"]: rec for rec in json.loads(path.read_text())}
    assert set(records) == {"causal", "linear", "linear_causal"}
    causal = records["causal"]
    assert causal["pass"] == "backward" and causal["dtype"] == "float32" and not causal.get("error")
    assert causal["ours_backward_engine"].startswith("Triton kernels")
    for key in ("ours", "sdpa", "eager"):
        assert causal[f"{key}_ms"] > 0 and causal[f"{key}_fwdbwd_ms"] > 0, key
        assert causal[f"{key}_first_bwd_s"] > 0 and causal[f"{key}_bwd_compile_s"] >= 0, key
    assert "does not support backward on CPU" in causal["baseline_errors"]["flex_ms"]
    assert causal["ratios"]["bwd_vs_sdpa"] == pytest.approx(causal["sdpa_ms"] / causal["ours_ms"])
    assert [t["baseline"] for t in causal["targets"]] == ["sdpa", "flex"]
    for name in ("linear", "linear_causal"):
        assert records[name]["ours_ms"] > 0 and records[name]["eager_ms"] > 0, name
        assert records[name]["targets"][0]["baseline"] == "eager"
    md = path.with_suffix(".md").read_text()
    assert "SMOKE RUN" in md and "## Backward" in md and "| causal | 64 | 16 |" in md
    assert "## Forward" not in md
