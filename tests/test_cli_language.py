"""The check / show / eval commands, through the real entry point."""
import json
import subprocess
import sys

import numpy as np
import pytest

from cascade_cli.main import main

EX = "examples/attention/"


def test_check_ok(capsys):
    assert main(["check", EX + "mha_1pass.ein"]) == 0
    assert "ok: 15 Einsums" in capsys.readouterr().out


def test_show_json_keys(capsys):
    assert main(["show", EX + "gqa.ein", "--json", "--set", "G=2"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"inputs", "outputs", "ranks", "einsums"} <= info.keys()
    assert info["inputs"] == ["Q", "K", "V"] and info["outputs"] == ["AV"]
    assert info["ranks"]["HK"] == 4 and info["params"]["G"] == 2
    assert info["einsums"][0]["output"] == "QK"


def test_eval_writes_outputs_and_inputs(tmp_path, capsys):
    out = tmp_path / "out.npz"
    assert main(["eval", EX + "sliding_window.ein", "--set", "P=40", "--set", "M=40", "--set", "W=8",
                 "--seed", "5", "--out", str(out)]) == 0
    data = np.load(out)
    assert set(data.files) == {"Q", "K", "V", "AV"}
    assert data["AV"].shape == (1, 2, 40, 64)


def test_eval_with_given_inputs_matches_other_form(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["eval", EX + "mha_3pass.ein", "--set", "P=24", "--set", "M=24", "--out", str(a)]) == 0
    assert main(["eval", EX + "mha_1pass.ein", "--set", "P=24", "--set", "M=24", "--set", "M0=5",
                 "--inputs", str(a), "--out", str(b)]) == 0
    assert np.abs(np.load(a)["AV"] - np.load(b)["AV"]).max() < 1e-9


def test_eval_float32(tmp_path):
    out = tmp_path / "o.npz"
    assert main(["eval", EX + "linear.ein", "--set", "P=8", "--set", "M=8", "--dtype", "float32",
                 "--out", str(out)]) == 0
    assert np.load(out)["AV"].dtype == np.float32


@pytest.mark.parametrize("argv,fragment", [
    (["check", "missing.ein"], "no such file: missing.ein"),
    (["eval", EX + "causal.ein", "--set", "Q=3", "--out", "/tmp/x.npz"], "no rank or parameter named 'Q'"),
    (["eval", EX + "causal.ein", "--set", "P=abc", "--out", "/tmp/x.npz"], "is not an integer"),
    (["eval", EX + "causal.ein", "--inputs", "nope.npz", "--out", "/tmp/x.npz"], "no such file"),
])
def test_bad_input_exit_1_without_traceback(argv, fragment, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_console_script_reports_located_error(tmp_path):
    bad = tmp_path / "bad.ein"
    bad.write_text("rank P = 4\ninput X[p]\noutput Y[p]\nY[p] = X[q]\n")
    proc = subprocess.run([sys.executable, "-m", "cascade_cli", "check", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{bad}:4:10: error: index q has no extent" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_show_after_pass_accepts_sizes_of_new_ranks(capsys):
    assert main(["show", EX + "mha_3pass.ein", "--after", "online-softmax", "--set", "M0=32",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ranks"]["M0"] == 32 and info["ranks"]["M1"] == 8
    assert "RM" in info["recurrences"]


def test_show_after_unknown_size_is_an_error(capsys):
    assert main(["show", EX + "mha_3pass.ein", "--after", "online-softmax", "--set", "Z=3"]) == 1
    assert "no rank or parameter named 'Z'" in capsys.readouterr().err
