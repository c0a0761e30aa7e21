"""bench/attention_gpu.py: argument parsing, the case grid and the no-GPU path (no timing here)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "attention_gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("attention_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # as an import does (its dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


def test_case_grid_and_flop_convention():
    mod = _module()
    todo = mod.cases(mod.parse_args([]))
    variants = {c["variant"] for c in todo}
    assert {"dense", "causal", "sliding256", "sliding1024", "gqa8", "alibi", "softcap", "linear",
            "linear_causal"} <= variants
    assert {c["seq_len"] for c in todo} >= {1024, 16384} and {c["head_dim"] for c in todo} == {64, 128}
    dense = dict(variant="dense", seq_len=1024, head_dim=64, B=16, H=32)
    assert mod.flops(dense) == 4 * 16 * 32 * 1024 * 1024 * 64
    assert mod.flops(dict(dense, variant="causal")) == 4 * 16 * 32 * 1024 * 1025 / 2 * 64


def test_dry_run_and_no_gpu_message():
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--quick"], capture_output=True,
                       text=True, env={"PYTHONPATH": str(SCRIPT.parents[1]), "PATH": "/usr/bin"})
    assert r.returncode == 0 and "cases" in r.stdout
    import torch
    if not torch.cuda.is_available():
        r = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True,
                           env={"PYTHONPATH": str(SCRIPT.parents[1]), "PATH": "/usr/bin"})
        assert r.returncode == 2
        assert "no CUDA GPU found" in r.stderr and "Traceback" not in r.stderr


def test_predict_mode_needs_no_gpu(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--predict", "--variants", "causal,sliding",
                        "--seq-lens", "1024,4096", "--head-dims", "64", "--out", str(tmp_path)],
                       capture_output=True, text=True,
                       env={"PYTHONPATH": str(SCRIPT.parents[1]), "PATH": "/usr/bin"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = (tmp_path / "predicted-h100.md").read_text()
    assert "Not measurements" in text and "| causal | 1024 | 64 |" in text and "sliding256" in text
