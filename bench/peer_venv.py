"""A peer tool's own virtual environment, made on first use (bench/.venv-*, git-ignored)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# ZigZag and AccelForge want Python >= 3.12; this Debian has 3.11 on PATH, pyenv's 3.12.1 beside it
PYTHON312 = ("python3.12", "/root/.pyenv/versions/3.12.1/bin/python3.12")


def find_python(candidates: tuple = PYTHON312) -> str | None:
    """The first of ``candidates`` (names on PATH or paths) that runs, else None."""
    for cand in candidates:
        path = shutil.which(cand) or (cand if Path(cand).exists() else None)
        if path and subprocess.run([path, "--version"], capture_output=True).returncode == 0:
            return path
    return None


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ready(venv: Path, probe: str) -> bool:
    """Whether the venv exists and ``probe`` (Python code) runs in it."""
    python = venv_python(venv)
    return python.exists() and subprocess.run([str(python), "-c", probe],
                                              capture_output=True).returncode == 0


def ensure_venv(venv: Path, base_python: str, requirements: tuple, probe: str,
                what: str) -> tuple:
    """(the venv's python, "") or (None, why the peer is skipped): the venv is made from
    ``base_python`` and ``requirements`` installed unless ``probe`` already runs in it."""
    python = venv_python(venv)
    if ready(venv, probe):
        return python, ""
    try:
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements],
                       check=True, capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return None, f"skipped: cannot install {' '.join(requirements)}: {detail[-300:]}"
    if not ready(venv, probe):
        return None, f"skipped: {what} installed but does not import"
    return python, ""


def run_driver(python, script: str, cases: list, timeout_s: float) -> list:
    """Runs ``script --driver CASES.json`` in the peer's venv; its last stdout line is the JSON
    list of results (one per case)."""
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
    try:
        proc = subprocess.run([str(python), str(Path(script).resolve()), "--driver", f.name],
                              capture_output=True, text=True, check=True, timeout=timeout_s)
    finally:
        Path(f.name).unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])
