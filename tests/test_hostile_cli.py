"""Command-line conventions and careless command lines (issue 9): exit codes, --version, stdin,
--json, output files, --inputs files, start-up imports."""
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from cascade_cli.main import GROUPS, main

EX = "examples/attention/"
CAUSAL = EX + "causal.ein"
SMALL = ["--set", "P=8", "--set", "M=8"]


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("cascade ")


def test_usage_errors_exit_2(capsys):
    assert run_cli(capsys, "check")[0] == 2
    assert run_cli(capsys, "check", CAUSAL, "--bogus")[0] == 2
    assert run_cli(capsys, "nonsense")[0] == 2
    assert run_cli(capsys)[0] == 2
    code, _, err = run_cli(capsys, "eval", CAUSAL, "--seed", "-1")
    assert code == 2 and "--seed" in err and "negative" in err


def test_help_lists_commands_in_workflow_order_with_examples(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    names = [name for _, commands in GROUPS for name, _, _ in commands]
    positions = [out.index(f"    {name} ") for name in names]
    assert positions == sorted(positions)
    assert names[:3] == ["check", "show", "eval"] and names[-1] == "demo"
    assert out.count("e.g. cascade ") == len(names)
    assert "exit status:" in out and "3  `run --check`" in out
    code, out, _ = run_cli(capsys, "eval", "--help")
    assert code == 0 and "example:\n  cascade eval" in out and "--max-memory" in out


def test_stdin(monkeypatch, capsys):
    with open(CAUSAL, "rb") as fh:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(fh.read())))
    code, out, _ = run_cli(capsys, "check", "-")
    assert code == 0 and out.startswith("-: ok: 6 Einsums")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"rank P = = 1\n")))
    code, _, err = run_cli(capsys, "check", "-")
    assert code == 1 and err.startswith("<stdin>:1:10: error:") and "hint:" in err


def test_stdin_through_the_console_script():
    with open(EX + "mha_3pass.ein", "rb") as fh:
        proc = subprocess.run([sys.executable, "-m", "cascade_cli", "work", "-", "--json"],
                              input=fh.read(), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert "total" in json.loads(proc.stdout)


def test_check_json(capsys):
    code, out, _ = run_cli(capsys, "check", CAUSAL, "--json")
    info = json.loads(out)
    assert code == 0 and info["ok"] and info["outputs"] == ["AV"] and info["sizes"]["P"] == 256


def test_eval_without_out_prints_a_summary(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "eval", CAUSAL, *SMALL)
    assert code == 0 and out.startswith("AV: shape (1, 2, 8, 64), mean") and "wrote" not in out
    code, out, _ = run_cli(capsys, "eval", CAUSAL, *SMALL, "--json")
    info = json.loads(out)
    assert code == 0 and info["outputs"][0]["shape"] == [1, 2, 8, 64] and info["wrote"] is None
    assert os.listdir(tmp_path) == []


def test_eval_writes_exactly_the_path_given(capsys, tmp_path):
    target = tmp_path / "o.npz"
    code, out, _ = run_cli(capsys, "eval", CAUSAL, *SMALL, "--out", str(target))
    assert code == 0 and f"wrote {target}" in out and os.listdir(tmp_path) == ["o.npz"]
    code, _, err = run_cli(capsys, "eval", CAUSAL, *SMALL, "--out", str(tmp_path / "o.txt"))
    assert code == 1 and "must end in .npz" in err and "hint:" in err
    assert os.listdir(tmp_path) == ["o.npz"]


@pytest.mark.parametrize("where", ["dir", "missing", "readonly"])
def test_unwritable_outputs_name_the_option(capsys, tmp_path, where):
    target = {"dir": tmp_path / "d.npz", "missing": tmp_path / "no" / "o.npz",
              "readonly": tmp_path / "ro" / "o.npz"}[where]
    if where == "dir":
        target.mkdir()
    if where == "readonly":
        target.parent.mkdir()
        target.parent.chmod(0o500)
        if os.access(target.parent, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
    code, _, err = run_cli(capsys, "eval", CAUSAL, *SMALL, "--out", str(target))
    assert code == 1 and err.startswith(f"--out {target}:") and "hint:" in err
    code, _, err = run_cli(capsys, "rewrite", EX + "mha_3pass.ein", "--pass", "online-softmax",
                           "-o", str(target) if where == "dir" else str(target).replace(".npz", ".ein"))
    assert code == 1 and "-o " in err and "hint:" in err


def _bad_inputs(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    if kind == "npy":
        np.save(tmp_path / "a.npy", np.zeros(3))
        os.replace(tmp_path / "a.npy", path)
    elif kind == "truncated":
        np.savez(path, Q=np.zeros((1, 2, 8, 64)))
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "strings":
        np.savez(path, Q=np.full((1, 2, 8, 64), "x"))
    elif kind == "objects":
        np.savez(path, Q=np.array([object()], dtype=object))
    elif kind == "text":
        path.write_text("hello")
    elif kind == "emptyzip":
        with zipfile.ZipFile(path, "w"):
            pass
    elif kind == "shape":
        np.savez(path, Q=np.zeros((1, 2, 3)), K=np.zeros((1, 2, 8, 64)), V=np.zeros((1, 2, 8, 64)))
    elif kind == "dir":
        path.mkdir()
    return str(path)


@pytest.mark.parametrize("kind", ["npy", "truncated", "strings", "objects", "text", "emptyzip",
                                  "shape", "dir", "missing"])
def test_bad_inputs_files(capsys, tmp_path, kind):
    path = _bad_inputs(tmp_path, kind) if kind != "missing" else str(tmp_path / "none.npz")
    code, _, err = run_cli(capsys, "eval", CAUSAL, *SMALL, "--inputs", path)
    assert code == 1, err
    assert "hint:" in err and "internal error" not in err


def test_check_imports_no_numpy_networkx_or_sympy():
    probe = ("import sys; from cascade_cli.main import main; "
             f"assert main(['check', {CAUSAL!r}]) == 0; "
             "heavy = [m for m in ('numpy', 'networkx', 'sympy', 'torch') if m in sys.modules]; "
             "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_help_imports_no_numpy():
    probe = ("import sys, contextlib, io\nfrom cascade_cli.main import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
             "heavy = [m for m in ('numpy', 'networkx', 'sympy', 'torch') if m in sys.modules]\n"
             "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_inputs_that_unpack_beyond_the_memory_limit(capsys, tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, Q=np.zeros((1, 2, 8, 64 * 1024)))
    assert path.stat().st_size < 64 * 1024
    code, _, err = run_cli(capsys, "eval", CAUSAL, *SMALL, "--inputs", str(path),
                           "--max-memory", "1M")
    assert code == 1 and "unpack to 8 MiB" in err and err.startswith(f"--inputs {path}: error:")


@pytest.mark.parametrize("option", ["--plots", "--json"])
def test_reproduce_refuses_an_unwritable_output_before_the_study(capsys, tmp_path, option):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "reproduce", "fusemax", option, str(blocker / "sub"))
    assert code == 1 and err.startswith(f"{option} {blocker / 'sub'}: error:") and "hint:" in err


@pytest.mark.parametrize("value,expected", [("4G", 4 * 2 ** 30), ("512M", 512 * 2 ** 20),
                                            ("1.5GiB", 3 * 2 ** 29), ("2kb", 2048), ("100", 100)])
def test_max_memory_amounts(value, expected):
    from cascade_cli.options import parse_bytes

    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e30T", "lots"])
def test_bad_max_memory_is_a_usage_error(capsys, value):
    code, _, err = run_cli(capsys, "check", CAUSAL, "--max-memory", value)
    assert code == 2 and "--max-memory" in err
