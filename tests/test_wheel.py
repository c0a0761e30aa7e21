"""The wheel works outside the repository: built from a copy of the checkout, installed into a fresh
venv (dependencies from the project's venv, no network, no editable install), and run from another
folder with a clean environment: the built-in specs, GPU targets and example cascades come from the
installed package."""
import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ("einsum_ir", "mapper", "simulator", "backends", "cascade_cli")
DATA = {"archs": "*.yaml", "gpus": "*.yaml", "attention": "*.ein"}
EXAMPLES = {**DATA, "sweeps": "*.yaml"}  # the built-ins, and example files that are not built-ins
# not part of a build: version control, environments, caches, earlier builds
SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".hypothesis", ".whl", "out")


def _declared_packages() -> list[str]:
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["packages"]


def test_every_package_and_data_folder_is_declared():
    """The package list is explicit (the data package is renamed); a new subpackage must join it."""
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for top in CODE
               for p in (ROOT / top).rglob("__init__.py")}
    on_disk |= {"cascade_examples"} | {f"cascade_examples.{folder}" for folder in EXAMPLES}
    assert set(_declared_packages()) == on_disk
    from einsum_ir.resources import BuiltinKind

    assert {kind.folder for kind in BuiltinKind} == set(DATA)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def _dependency_dirs() -> list[str]:
    """site-packages of the interpreter running the tests (the project's venv): numpy, torch, ..."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, clean environment, wheel path) with the wheel installed."""
    if _run([sys.executable, "-m", "pip", "--version"]).returncode:
        pytest.skip("pip is not available to build the wheel")
    pytest.importorskip("setuptools", minversion="70.1")  # builds without isolation (no network)
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)  # a build writes build/; a stale one could leak files
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--no-index", "-q", "-w", str(base / "dist"), str(src)])
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (base / "dist").glob("cascade_einsum-*.whl")

    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # A .pth line only appends a folder to sys.path: the .pth files inside it (the editable install's
    # finder) are not processed, so the checkout cannot leak in.
    Path(site.stdout.strip(), "_cascade_dependencies.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    pip = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--force-reinstall",
                "--no-index", "-q", str(wheel)])
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = {k: os.environ[k] for k in ("HOME", "TMPDIR", "LANG", "SYSTEMROOT") if k in os.environ}
    env["PATH"] = str(venv / "bin") + os.pathsep + os.environ.get("PATH", "")
    env["TRITON_INTERPRET"] = "1"  # the demo runs its kernels in Triton's interpreter
    return venv / "bin", env, wheel


@pytest.mark.slow
def test_wheel_contains_the_code_and_the_builtins(installed):
    names = set(zipfile.ZipFile(installed[2]).namelist())
    for folder, pattern in EXAMPLES.items():
        files = sorted((ROOT / "examples" / folder).glob(pattern))
        assert files and {f"cascade_examples/{folder}/{f.name}" for f in files} <= names
    modules = {p.relative_to(ROOT).as_posix() for top in CODE for p in (ROOT / top).rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert "einsum_ir/cascade.lark" in names
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)


@pytest.mark.slow
def test_installed_copy_is_imported_not_the_checkout(installed, tmp_path):
    bin_dir, env, _ = installed
    probe = ("import importlib.metadata as m, einsum_ir, cascade_cli, backends\n"
             "from einsum_ir.resources import data_root\n"
             "print(einsum_ir.__file__, cascade_cli.__file__, backends.__file__, data_root())\n"
             "print(einsum_ir.__version__, m.version('cascade-einsum'))")
    r = _run([str(bin_dir / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    paths, versions = r.stdout.splitlines()
    venv = str(bin_dir.parent)
    assert all(p.startswith(venv) for p in paths.split()), paths
    assert paths.split()[-1].endswith("cascade_examples")
    ours, metadata = versions.split()
    assert ours == metadata


@pytest.mark.slow
def test_installed_cascade_runs_demo_simulate_compile(installed, tmp_path):
    bin_dir, env, _ = installed
    cascade = str(bin_dir / "cascade")

    demo = _run([cascade, "demo"], cwd=tmp_path, env=env)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    assert "mha_3pass.ein" in demo.stdout and "arch fusemax" in demo.stdout
    assert demo.stdout.count("-> ok") >= 2  # both Triton kernels matched the interpreter

    sim = _run([cascade, "simulate", "mha_1pass", "--arch", "fusemax", "--set", "P=256", "--set", "M=256"],
               cwd=tmp_path, env=env)
    assert sim.returncode == 0, sim.stderr
    assert sim.stdout.startswith("arch fusemax") and "latency" in sim.stdout

    comp = _run([cascade, "compile", "causal", "--set", "P=128", "--set", "M=128"], cwd=tmp_path, env=env)
    assert comp.returncode == 0, comp.stderr
    tree = ast.parse(comp.stdout)  # a whole Python module holding a Triton kernel
    assert "@triton.jit" in comp.stdout
    assert any(isinstance(n, ast.FunctionDef) for n in tree.body)

    gpu = _run([cascade, "simulate", "mha_1pass", "--arch", "h100"], cwd=tmp_path, env=env)
    assert gpu.returncode == 1
    assert "h100 is a GPU target" in gpu.stderr and "cascade compile" in gpu.stderr
    assert "Traceback" not in gpu.stderr
