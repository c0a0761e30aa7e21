"""The kernels the GPU lane benchmarks compile for sm_90 and sm_80 ahead of time (Triton's own
ptxas, no GPU): the lane's aot step with ``--aot-scope all``, every kernel `make gpu` benchmarks
(N=4K and 16K, D=64 and 128, with the mappings the cost model picks for H100 and H200 on sm_90
and A100 on sm_80: 32 distinct kernels; 30-90 s on two cores)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gpu_lane_results import Results  # noqa: E402
from gpu_lane_steps import FORWARD_ORDER  # noqa: E402

FAMILIES = {"mha_3pass", "causal", "gqa", "sliding_window", "alibi", "softcap", "linear",
            "linear_causal_chunked"}


def test_every_benchmarked_kernel_compiles_for_sm90_and_sm80(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTHONPATH")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")  # really compile, not a cache hit
    env["CASCADE_CACHE"] = str(tmp_path / "cascade")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_lane.py"), "--dry-run",
                        "--steps", "aot", "--aot-scope", "all", "--out", str(tmp_path / "out")], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=900)
    (path,) = (tmp_path / "out").glob("*.json")
    recs = Results(path).records("aot")
    if recs and recs[0]["item"] == "ptxas":
        pytest.skip("Triton's ptxas is not available")
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert recs and all(rec["status"] == "ok" for rec in recs), [rec for rec in recs
                                                                 if rec["status"] != "ok"]
    for cc in (90, 80):
        mine = [rec for rec in recs if rec["capability"] == cc]
        assert {rec["family"] for rec in mine} == FAMILIES
        assert {rec["variant"] for rec in mine} == set(FORWARD_ORDER)
        builds = [b for rec in mine for b in rec["builds"]]
        assert builds and all(b["uses_wgmma"] == (cc == 90) and b["uses_mma"] for b in builds)
        assert all(b["registers"] is None or b["registers"] <= 255 for b in builds)
    archs = {rec["arch"] for rec in recs}  # H200 mappings equal to H100 ones compile once
    assert "a100" in archs and archs & {"h100", "h200"}
