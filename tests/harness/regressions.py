"""Reproducer files under ``regressions/``: a ``.ein`` cascade with a header of ``# key: value``
lines saying which target it is for and, when it fails today, the symptom::

    # regression: a min-reduction ignores a mask on the kept index
    # target: triton                 (or simulator/fusemax, simulator/edge)
    # sim-scale: 16                  (optional: the simulator scales P and M by this)
    # memory-mib: 256                (optional: the most the back-end call may grow the process)
    # lowering: tiles3d              (optional: start the Triton lowering in a last resort,
                                      row_grid or tiles3d, where the default no longer reaches it)
    # xfail: T1 has values where the interpreter has zeros (rows masked by e >= 2)
    # group: values where the interpreter has zeros (empty points)
    # fault: backends/triton/lower.py:123 (optional)

``group`` is the outcome group it fails with today: the bounded random run tolerates that group
on that target while the regression is an expected failure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .strategy import Case

DIR = Path(__file__).resolve().parent / "regressions"
_KEYS = ("regression", "target", "sim-scale", "memory-mib", "lowering", "xfail", "group", "fault")
LOWERINGS = ("row_grid", "tiles3d")


@dataclass(frozen=True)
class Regression:
    name: str
    target: str
    case: Case
    about: str
    xfail: str | None  # the symptom today, when it fails today
    group: str | None  # the outcome group it fails with today (tolerated in the random run)
    fault: str | None  # where the fault is, file:line, when known
    memory_mib: int | None = None  # a tighter memory budget for the back-end call
    lowering: str | None = None  # a Triton last resort to start in (LOWERINGS)


def load(path: Path) -> Regression:
    text = path.read_text()
    header = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(":")
        if sep and key.strip() in _KEYS:
            header[key.strip()] = value.strip()
    target = header.get("target", "")
    if target != "triton" and not target.startswith("simulator/"):
        raise ValueError(f"{path}: '# target:' must be triton or simulator/ARCH, got {target!r}")
    lowering = header.get("lowering")
    if lowering is not None and lowering not in LOWERINGS:
        raise ValueError(f"{path}: '# lowering:' must be one of {', '.join(LOWERINGS)}, "
                         f"got {lowering!r}")
    return Regression(path.stem, target, Case(text, int(header.get("sim-scale", "1"))),
                      header.get("regression", ""), header.get("xfail"), header.get("group"),
                      header.get("fault"),
                      int(header["memory-mib"]) if "memory-mib" in header else None, lowering)


def all_regressions() -> list[Regression]:
    return [load(p) for p in sorted(DIR.glob("*.ein"))]


def render(target: str, case: Case, about: str, xfail: str | None = None,
           group: str | None = None, fault: str | None = None, memory_mib: int | None = None,
           lowering: str | None = None) -> str:
    lines = [f"# regression: {about}", f"# target: {target}"]
    if case.sim_scale != 1:
        lines.append(f"# sim-scale: {case.sim_scale}")
    if memory_mib:
        lines.append(f"# memory-mib: {memory_mib}")
    if lowering:
        lines.append(f"# lowering: {lowering}")
    if xfail:
        lines.append(f"# xfail: {xfail}")
        lines.append(f"# group: {group}")
    if fault:
        lines.append(f"# fault: {fault}")
    return "\n".join(lines) + "\n" + case.text
