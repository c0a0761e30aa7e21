"""Golden files: the generated Triton module and the simulator/mapper reports of every example.

A change of behaviour shows up as a diff of ``tests/golden/``; refresh deliberately with
``pytest tests/test_golden.py --update-golden`` and review the diff before committing.
Timings (seconds, rates) are left out of the reports; everything else is compared exactly.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from cascade_cli.main import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLES = sorted((ROOT / "examples" / "attention").glob("*.ein"))
# cascades one kernel program cannot hold: compiled into several (the catalogue's sizes)
PROGRAMS = [ROOT / "tests" / "data" / "catalogue" / "M9_axial.ein"]
# small fixed sizes: compile and the mapper search stay fast, and every example stays valid
SIZES = ["--set", "P=256", "--set", "M=256"]
SIZES_CAUSAL_CHUNKED = ["--set", "P=256"]
TIMING_KEYS = {"seconds", "mappings_per_s", "rate"}


def _sizes(path: Path) -> list[str]:
    return SIZES_CAUSAL_CHUNKED if path.stem == "linear_causal_chunked" else SIZES


def _run(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    assert rc == 0, f"cascade {' '.join(argv)} exited {rc}"
    return out.getvalue()


def _strip_timings(value):
    if isinstance(value, dict):
        return {k: _strip_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip_timings(v) for v in value]
    return value


def _report(argv: list[str]) -> str:
    return json.dumps(_strip_timings(json.loads(_run(argv))), indent=1, sort_keys=True) + "\n"


def _compare(request, name: str, actual: str) -> None:
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"no golden file {path}; create it with --update-golden"
    expected = path.read_text()
    assert actual == expected, (f"{name} differs from the golden file; if the change is intended, "
                                "rerun with --update-golden and review the diff")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_compiled_module(request, path):
    source = _run(["compile", str(path.relative_to(ROOT)), *_sizes(path)])
    _compare(request, f"{path.stem}.triton.py", source)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_compiled_program_module(request, path):
    source = _run(["compile", str(path.relative_to(ROOT))])
    assert "kernel programs, run in order" in source.splitlines()[1]
    _compare(request, f"{path.stem}.program.triton.py", source)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_simulate_report(request, path):
    report = _report(["simulate", str(path.relative_to(ROOT)), "--arch", "fusemax",
                      *_sizes(path), "--json"])
    _compare(request, f"{path.stem}.simulate.json", report)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_map_report(request, path):
    report = _report(["map", str(path.relative_to(ROOT)), "--arch", "fusemax", *_sizes(path),
                      "--top", "2", "--no-progress", "--json"])
    _compare(request, f"{path.stem}.map.json", report)
