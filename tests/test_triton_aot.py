"""The generated kernels compile for real GPUs (sm_90 with wgmma, sm_80 with mma), ahead of time.

Triton's interpreter does not exercise Triton's compiler; this does, with the ptxas Triton ships,
no GPU needed. It runs in a subprocess because it needs TRITON_INTERPRET unset.
"""
import json
import os
import subprocess
import sys

import pytest

import triton_lane  # noqa: E402,F401 (skips without torch/triton; sets TRITON_INTERPRET first)

CASES = [("mha_3pass", {}), ("causal", {}), ("sliding_window", {"W": 256}), ("gqa", {"G": 8}),
         ("alibi", {}), ("softcap", {}), ("mha_2pass", {}), ("linear", {}),
         ("linear_causal_chunked", {"C": 64})]

SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
from backends.triton import compile_cascade
from backends.triton.aot import available, compile_source
if not available():
    print(json.dumps("unavailable")); sys.exit(0)
name, params, dtype, cc, sizes = json.loads(sys.argv[1])
fn = compile_cascade(f"examples/attention/{name}.ein", block_r=128, block_c=64, num_warps=8,
                     num_stages=3, **params)
fn.source(**sizes)
builds = compile_source(fn.last, dtype, cc)
print(json.dumps([b.__dict__ for b in builds]))
"""


def _aot(name, params, dtype, cc, sizes):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.getcwd()
    r = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps([name, params, dtype, cc, sizes])],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out == "unavailable":
        pytest.skip("Triton's ptxas is not available")
    return out


@pytest.mark.parametrize("name,params", CASES, ids=[c[0] for c in CASES])
def test_compiles_for_sm90_bf16_with_wgmma(name, params):
    sizes = {} if name.startswith("linear") else {"E": 128, "F": 128}
    if name == "gqa":
        sizes.update(H=16, HK=2)
    builds = _aot(name, params, "bfloat16", 90, sizes)
    assert builds and all(b["uses_wgmma"] for b in builds)
    assert all(b["registers"] is None or b["registers"] <= 255 for b in builds)
    if not name.startswith("linear"):  # 128x64 tiles, 8 warps, head dim 128: no spills
        assert all(b["stack_bytes"] in (None, 0) for b in builds), builds


@pytest.mark.parametrize("name", ["causal", "linear_causal_chunked"])
def test_compiles_for_sm80_fp16(name):
    builds = _aot(name, {}, "float16", 80, {})
    assert builds and all(b["uses_mma"] for b in builds)
    if name == "causal":
        assert all(b["stack_bytes"] == 0 for b in builds)  # head dim 64: no register spills


def test_mapping_can_reject_spilling_candidates(tmp_path):
    out = tmp_path / "k.py"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.getcwd()
    r = subprocess.run([sys.executable, "-m", "cascade_cli", "compile", "examples/attention/causal.ein",
                        "--set", "E=128", "--set", "F=128", "--set", "P=4096", "--set", "M=4096",
                        "--check-spills", "-o", str(out)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    if "compiled for the target" not in r.stderr:
        pytest.skip("Triton's ptxas is not available")
    assert "0 bytes spilled" in r.stderr and "0 bytes spilled" in out.read_text()
