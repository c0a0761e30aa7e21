"""The GPU lane's dry run (bench/gpu_lane.py --dry-run): every step on the CPU at tiny shapes
under TRITON_INTERPRET=1, so a lane that would break on a lent GPU breaks here first; and its
recovery from a crashed or hung case, and its budget."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[1]
LANE = ROOT / "bench" / "gpu_lane.py"
sys.path.insert(0, str(ROOT / "bench"))

from gpu_lane_results import TIMING_KEYS, Results  # noqa: E402
from gpu_lane_steps import DRY_SHAPES, GPU_SHAPES, case_id, lane_cases  # noqa: E402

SOFTMAX = ("causal", "dense", "gqa8", "sliding1024", "alibi", "softcap")


def _lane(out, *extra, env_extra=None, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTHONPATH")}
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, str(LANE), "--dry-run", "--out", str(out), *extra],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    files = list(Path(out).glob("*.json"))
    assert len(files) == 1, (r.stdout[-3000:], r.stderr[-3000:])
    return r, Results(files[0])


# Packages of this machine that a GPU machine lacks (it has torch, triton, numpy, sympy, networkx
# and PyYAML): importing one in the lane fails, as it would there. lark and pytest are blocked
# too: the lane must take them from bench/wheels/, ahead of these.
ABSENT_ON_GPU_MACHINES = ("tqdm", "hypothesis", "matplotlib", "xdist", "rich", "lark", "pytest",
                          "_pytest", "pluggy", "iniconfig")


def _gpu_machine_packages(folder: Path) -> dict:
    folder.mkdir()
    for name in ABSENT_ON_GPU_MACHINES:
        (folder / f"{name}.py").write_text(f"raise ImportError('{name} is not on a GPU machine')\n")
    return {"PYTHONPATH": str(folder)}


def test_dry_run_of_every_step_and_case(tmp_path):
    """One run (about a minute on two cores), checked step by step."""
    r, results = _lane(tmp_path / "out", "--steps", "correctness,forward,backward,compile",
                       env_extra=_gpu_machine_packages(tmp_path / "absent"))
    assert r.returncode == 0, (r.stdout[-4000:], r.stderr[-3000:])
    _check_forward(results)
    _check_tests_backward_and_compile(results)
    _check_markdown(results)


def _check_forward(dry_run):
    doc = dry_run.read()
    meta = doc["meta"]
    assert meta["dry_run"] and meta["device"] == "cpu dry run" and meta["wall_s"] > 0
    assert ".whl" in meta["lark"] and ".whl" in meta["pytest"]  # the vendored wheels were used
    forward = {r["item"]: r for r in dry_run.records("forward")}
    assert set(forward) == {case_id(c) for c in lane_cases(DRY_SHAPES)}
    assert {r["variant"] for r in forward.values()} == set(SOFTMAX) | {"linear", "linear_causal"}
    for item, r in forward.items():
        assert set(TIMING_KEYS) <= set(r), item
        assert r["status"] == "ok" and r["error"] is None, (item, r)
        assert r["ours_ms"] > 0 and r["predicted_ms"] > 0 and r["ours_tflops"] > 0, item
        assert r["eager_ms"] > 0 and r["max_abs_diff_vs_fp32_eager"] < 0.02, (item, r)
        if r["variant"] in SOFTMAX:
            assert r["flex_ms"] > 0 and r["flex_backend"] == "aot_eager", (item, r)
        if r["variant"] in ("causal", "dense", "gqa8"):
            assert r["sdpa_ms"] > 0, (item, r)


def _check_tests_backward_and_compile(dry_run):
    tests = dry_run.records("correctness")
    assert len(tests) >= 30 and not [t for t in tests if t["status"] not in ("passed", "skipped")]
    assert sum(t["status"] == "passed" for t in tests) >= 20
    assert all("bfloat16" in t["error"] for t in tests if t["status"] == "skipped")
    backward = {r["variant"]: r for r in dry_run.records("backward")}
    assert set(backward) == {"causal", "dense", "sliding1024", "linear", "linear_causal"}
    for variant, r in backward.items():  # ours through the native op, against the baselines
        assert r["status"] == "ok" and r["error"] is None, (variant, r)
        assert r["ours_ms"] > 0 and r["ours_fwdbwd_ms"] > 0 and r["eager_ms"] > 0, (variant, r)
        assert r["ours_bwd_compile_s"] >= 0 and r["targets"], (variant, r)
        assert r["ratios"]["bwd_vs_eager"] == r["eager_ms"] / r["ours_ms"], variant
    for variant in ("causal", "dense", "sliding1024"):
        assert backward[variant]["ours_backward_engine"].startswith("Triton kernels"), variant
    assert backward["causal"]["sdpa_ms"] > 0 and backward["dense"]["sdpa_ms"] > 0
    (compile_rec,) = dry_run.records("compile")
    assert compile_rec["ours_first_call_s"] > 0 and compile_rec["flex_first_call_s"] > 0
    steps = {r["item"]: r["status"] for r in dry_run.records("lane")}
    assert steps == dict.fromkeys(("correctness", "forward", "backward", "compile"), "ok")


def _check_markdown(dry_run):
    md = dry_run.path.with_suffix(".md").read_text()
    assert "DRY RUN" in md and "measured / predicted" in md
    for case in lane_cases(DRY_SHAPES):
        assert f"| {case['variant']} | {case['seq_len']} | {case['head_dim']} |" in md
    assert "## Correctness" in md and "## Backward" in md and "## First-call compile" in md


def test_a_crashed_and_a_hung_case_keep_the_results_and_the_step_goes_on(tmp_path):
    faults = "backward/dense-N64-D32=crash,backward/sliding1024-N64-D32=hang"
    r, results = _lane(tmp_path, "--steps", "backward", "--item-timeout", "8",
                       env_extra={"CASCADE_LANE_FAULTS": faults})
    assert r.returncode == 1  # the lane reports the problems
    status = {rec["item"]: rec["status"] for rec in results.records("backward")}
    # (the chunked backward runs as six kernel programs: under the interpreter it may take longer
    # than the item timeout; the faults are the point here)
    chunked = status.pop("linear_causal-N64-D32")
    assert chunked in ("ok", "timeout")
    assert status == {"causal-N64-D32": "ok", "dense-N64-D32": "crashed",
                      "sliding1024-N64-D32": "timeout", "linear-N64-D32": "ok"}
    crashed = next(rec for rec in results.records("backward") if rec["status"] == "crashed")
    assert set(TIMING_KEYS) <= set(crashed) and "exit 70" in crashed["error"]
    (step,) = results.records("lane")
    assert step["status"] == "ok" and step["attempts"] == 3 + (chunked == "timeout")
    assert "problem: backward dense-N64-D32: crashed" in r.stderr


def test_budget_skips_what_does_not_fit_and_says_so(tmp_path):
    r, results = _lane(tmp_path, "--steps", "forward,compile", "--budget", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    steps = {rec["item"]: rec for rec in results.records("lane")}
    assert {s["status"] for s in steps.values()} == {"skipped: budget"}
    assert "needs at least" in steps["forward"]["error"]
    md = results.path.with_suffix(".md").read_text()
    assert "| forward | skipped: budget |" in md


def test_items_past_the_deadline_are_recorded_as_skipped(tmp_path):
    import time

    from gpu_lane_steps import Item, StepContext, run_items

    results = Results(tmp_path / "r.json")
    results.start({"device": "x"})
    ctx = StepContext("forward", results, time.time() + 5, tmp_path / "p", True, "x", "h100", "all")
    ran = []
    items = [Item("a", 1.0, {"variant": "a"}, lambda: ran.append("a") or {"ours_ms": 1.0}),
             Item("b", 60.0, {"variant": "b"}, lambda: ran.append("b") or {}),
             Item("c", 1.0, {"variant": "c"}, lambda: 1 / 0)]
    assert run_items(ctx, items) == 0
    recs = {r["item"]: r for r in results.records("forward")}
    assert ran == ["a"] and recs["a"]["status"] == "ok"
    assert recs["b"]["status"] == "skipped: budget" and "needs about 60 s" in recs["b"]["error"]
    assert recs["c"]["status"] == "failed" and "ZeroDivisionError" in recs["c"]["error"]
    assert run_items(ctx, items) == 0 and ran == ["a"]  # a rerun resumes: nothing twice
    assert json.loads(results.path.read_text())["records"] == results.records()


def test_without_a_gpu_the_lane_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTHONPATH")}
    r = subprocess.run([sys.executable, str(LANE), "--out", str(tmp_path)], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "no CUDA GPU found" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_list_prints_the_plan_and_every_case():
    r = subprocess.run([sys.executable, str(LANE), "--list"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert all(case_id(c) in r.stdout for c in lane_cases(GPU_SHAPES)) and "budget 480 s" in r.stdout
    assert "forward cases (32)" in r.stdout and "aot: about" in r.stdout
