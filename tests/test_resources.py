"""The built-ins (accelerator specs, GPU targets, example cascades) are found by one resolver, in a
checkout and in an installed wheel's layout; a name of the wrong kind says which command takes it."""
from pathlib import Path

import pytest

from backends.gpu.arch import load_gpu_arch
from cascade_cli.main import main
from einsum_ir import __version__, load
from einsum_ir.errors import CascadeError
from einsum_ir.resources import (BuiltinKind, builtin_dir, builtin_names, builtin_path, data_root,
                                 find_data_root, resolve_spec)
from simulator.arch import resolve_arch

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_uses_the_examples_folder():
    assert data_root() == ROOT / "examples"
    assert builtin_dir(BuiltinKind.GPU) == ROOT / "examples" / "gpus"


def test_names_per_kind_are_the_files_of_each_folder():
    assert builtin_names(BuiltinKind.GPU) == ("a100", "h100", "h200")
    assert {"fusemax", "flat", "unfused", "edge", "cascade_ablation"} <= set(builtin_names(BuiltinKind.ARCH))
    assert not set(builtin_names(BuiltinKind.ARCH)) & set(builtin_names(BuiltinKind.GPU))
    cascades = builtin_names(BuiltinKind.CASCADE)
    assert cascades == tuple(sorted(p.stem for p in (ROOT / "examples" / "attention").glob("*.ein")))
    assert builtin_path(BuiltinKind.CASCADE, "causal").read_text().startswith("#")


def _tree(base: Path, root: str) -> None:
    for kind in BuiltinKind:
        (base / root / kind.folder).mkdir(parents=True)


def test_wheel_layout_is_preferred_to_a_stray_examples_folder(tmp_path):
    _tree(tmp_path, "examples")
    assert find_data_root(tmp_path) == tmp_path / "examples"
    _tree(tmp_path, "cascade_examples")
    assert find_data_root(tmp_path) == tmp_path / "cascade_examples"
    (tmp_path / "cascade_examples" / "gpus").rmdir()  # incomplete: not taken
    assert find_data_root(tmp_path) == tmp_path / "examples"


def test_bare_names_resolve_paths_stay_paths(tmp_path, monkeypatch):
    assert resolve_spec(BuiltinKind.ARCH, "FuseMax") == ROOT / "examples" / "archs" / "fusemax.yaml"
    assert resolve_spec(BuiltinKind.GPU, "h100") == ROOT / "examples" / "gpus" / "h100.yaml"
    assert resolve_spec(BuiltinKind.ARCH, "nowhere") == Path("nowhere")
    assert resolve_spec(BuiltinKind.ARCH, "some/fusemax") == Path("some/fusemax")
    assert resolve_spec(BuiltinKind.ARCH, "fusemax.yml") == Path("fusemax.yml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "causal").write_text("")  # a file in the working folder wins over a built-in
    assert resolve_spec(BuiltinKind.CASCADE, "causal") == Path("causal")


@pytest.mark.parametrize("kind, name, message", [
    (BuiltinKind.ARCH, "h100", "h100 is a GPU target; use it with `cascade compile FILE --arch h100`"),
    (BuiltinKind.GPU, "fusemax", "fusemax is an accelerator spec; use it with `cascade simulate FILE --arch"),
    (BuiltinKind.ARCH, "causal", "causal is an example cascade"),
])
def test_a_name_of_another_kind_is_refused(kind, name, message):
    with pytest.raises(CascadeError) as exc:
        resolve_spec(kind, name)
    assert message in str(exc.value)


def test_unknown_builtin_lists_the_builtins():
    with pytest.raises(CascadeError, match="no built-in GPU target 'b200'") as exc:
        builtin_path(BuiltinKind.GPU, "b200")
    assert exc.value.diagnostic.hint == "built-ins: a100, h100, h200"


def test_loaders_use_the_resolver():
    assert load_gpu_arch("H100").sm_count == 132
    assert resolve_arch("fusemax").name == resolve_arch(str(ROOT / "examples/archs/fusemax.yaml")).name
    assert load("causal") == load(ROOT / "examples" / "attention" / "causal.ein")
    with pytest.raises(CascadeError, match="accelerator spec"):
        load_gpu_arch("flat")
    with pytest.raises(CascadeError, match="no such file and no built-in architecture") as exc:
        resolve_arch("fusmax")
    assert "fusemax" in exc.value.diagnostic.hint and "h100" not in exc.value.diagnostic.hint


def test_simulate_on_a_gpu_target_says_so(capsys):
    assert main(["simulate", "mha_1pass", "--arch", "h100"]) == 1
    err = capsys.readouterr().err
    assert "h100 is a GPU target" in err and "cascade compile" in err
    assert "Traceback" not in err


def test_version_is_a_release_string():
    parts = __version__.split(".")
    assert len(parts) >= 3 and all(p.isdigit() for p in parts[:3])
