"""One generated case through every target: Triton, and the simulator on each architecture."""
from __future__ import annotations

from dataclasses import dataclass

from . import targets
from .outcomes import Outcome
from .strategy import Case

ARCHS = ("fusemax", "edge")


@dataclass(frozen=True)
class CaseResult:
    case: Case
    outcomes: tuple  # (target name, Outcome)

    @property
    def failures(self) -> tuple:
        return tuple((t, o) for t, o in self.outcomes if o.failed)


def run_triton(case: Case, lowering: str | None = None) -> Outcome:
    return targets.try_triton(case.cascade, lowering=lowering)


def run_simulator(case: Case, arch: str) -> Outcome:
    return targets.try_simulator(case.cascade, arch, case.sim_sizes())


def run_case(case: Case, triton: bool = True, archs=ARCHS) -> CaseResult:
    results = []
    if triton:
        results.append(("triton", run_triton(case)))
    for arch in archs:
        results.append((f"simulator/{arch}", run_simulator(case, arch)))
    return CaseResult(case, tuple(results))
