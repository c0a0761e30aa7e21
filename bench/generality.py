"""The generality harness's long run: N random cascades through Triton and the simulator.

    PYTHONPATH=. TRITON_INTERPRET=1 python bench/generality.py --count 3000 [--seed 1] [--shrink]

Writes bench/results/generality.json (rewritten every 25 cases, so a stopped run keeps its
counts): per target, how many cascades compiled and matched (or mapped within the invariants),
were refused (grouped by message) or failed (grouped by kind and cause), and the ``.ein`` text of
the first failure of every group. ``--shrink`` then minimises the first case of every failure
group (``harness.minimize``: fewer outputs, masks, operators and smaller sizes while it fails the
same way) and records the reproducers under "shrunk". ``--merge A.json B.json`` sums the reports
of runs made side by side (other seeds) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("CASCADE_CACHE", tempfile.mkdtemp(prefix="cascade-fuzz-"))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from harness.runner import ARCHS, run_case  # noqa: E402
from harness.strategy import cascades  # noqa: E402

OUT = ROOT / "bench" / "results" / "generality.json"


class Tally:
    def __init__(self, command: str):
        self.command = command
        self.cases = 0
        self.targets: dict = {}
        self.failures: dict = {}  # (target, kind, group) -> record
        self.t0 = time.perf_counter()

    def add(self, result, keep: Path | None = None) -> None:
        self.cases += 1
        for target, outcome in result.outcomes:
            t = self.targets.setdefault(target, {"ok": 0, "refused": {}, "failed": {}})
            if outcome.failed and keep is not None:  # every failing case, for triage
                keep.mkdir(parents=True, exist_ok=True)
                name = f"{target.replace('/', '-')}-{self.cases:04d}.ein"
                scale = result.case.sim_scale  # the simulator's sizes: P, M times this
                (keep / name).write_text(f"# {outcome.kind.value}: {outcome.group}: "
                                         f"{outcome.detail}\n".replace("\n", " ").rstrip()
                                         + f"\n# sim-scale: {scale}\n" + result.case.text)
            if outcome.failed:
                kinds = t["failed"].setdefault(outcome.kind.value, {})
                kinds[outcome.group] = kinds.get(outcome.group, 0) + 1
                key = (target, outcome.kind.value, outcome.group)
                rec = self.failures.setdefault(key, {"target": target, "kind": outcome.kind.value,
                                                     "group": outcome.group, "count": 0,
                                                     "detail": outcome.detail,
                                                     "ein": result.case.text,
                                                     "sim_scale": result.case.sim_scale})
                rec["count"] += 1
            elif outcome.kind.value == "refused":
                t["refused"][outcome.group] = t["refused"].get(outcome.group, 0) + 1
            else:
                t["ok"] += 1

    def to_json(self, shrunk=None) -> dict:
        summary = {}
        for target, t in self.targets.items():
            summary[target] = {
                "matched" if target == "triton" else "mapped_ok": t["ok"],
                "refused": sum(t["refused"].values()),
                "failed": sum(sum(g.values()) for g in t["failed"].values()),
                "refused_by_message": dict(sorted(t["refused"].items(), key=lambda kv: -kv[1])),
                "failed_by_kind": t["failed"]}
        return {"command": self.command, "cases": self.cases,
                "seconds": round(time.perf_counter() - self.t0, 1), "summary": summary,
                "failures": list(self.failures.values()), "shrunk": shrunk or []}

    def write(self, path: Path, shrunk=None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(shrunk), indent=2) + "\n")
        os.replace(tmp, path)


def _settings(count: int, phases):
    return settings(max_examples=count, deadline=None, database=None, phases=phases,
                    suppress_health_check=list(HealthCheck))


def collect(count: int, seed_value: int, tally: Tally, out: Path, triton: bool,
            archs=ARCHS, keep: Path | None = None) -> None:
    @seed(seed_value)
    @_settings(count, [Phase.generate])
    @given(cascades())
    def one(case):
        tally.add(run_case(case, triton=triton, archs=archs), keep)
        if tally.cases % 25 == 0:
            tally.write(out)
            print(f"{tally.cases} cases, {time.perf_counter() - tally.t0:.0f} s", flush=True)

    one()


def shrink(record: dict) -> dict:
    """The first case of a failure group, minimised while it fails the same way."""
    from harness.minimize import minimize
    from harness.runner import run_simulator, run_triton
    from harness.strategy import Case

    target, group = record["target"], record["group"]

    def outcome(case):
        return run_triton(case) if target == "triton" else run_simulator(case, target.split("/")[1])

    def fails(case) -> bool:
        o = outcome(case)
        return o.failed and o.group == group

    small = minimize(Case(record["ein"], record["sim_scale"]), fails)
    return {"target": target, "group": group, "detail": outcome(small).detail, "ein": small.text,
            "sim_scale": small.sim_scale}


def _add(into: dict, counts: dict) -> None:
    for key, n in counts.items():
        if isinstance(n, dict):
            _add(into.setdefault(key, {}), n)
        else:
            into[key] = into.get(key, 0) + n


def merge(paths) -> dict:
    """One report from the reports of several runs (other seeds, run side by side)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    summary: dict = {}
    failures: dict = {}
    for run in runs:
        for target, s in run["summary"].items():
            _add(summary.setdefault(target, {}), s)
        for rec in run["failures"]:
            key = (rec["target"], rec["kind"], rec["group"])
            if key in failures:
                failures[key]["count"] += rec["count"]
            else:
                failures[key] = dict(rec)
    return {"command": " + ".join(r["command"] for r in runs), "cases": sum(r["cases"] for r in runs),
            "seconds": max(r["seconds"] for r in runs), "summary": summary,
            "failures": list(failures.values()), "shrunk": sum((r["shrunk"] for r in runs), [])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-triton", action="store_true", help="the simulator only")
    parser.add_argument("--triton-only", action="store_true", help="no simulator")
    parser.add_argument("--keep-failures", type=Path, metavar="DIR",
                        help="write every failing case to DIR as a .ein (its outcome on line 1)")
    parser.add_argument("--shrink", action="store_true", help="shrink one case per failure group")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="RUN.json",
                        help="write the sum of these reports to --out instead of running")
    args = parser.parse_args(argv)
    if args.merge:
        args.out.write_text(json.dumps(merge(args.merge), indent=2) + "\n")
        print(f"merged {len(args.merge)} runs into {args.out}")
        return 0
    warnings.filterwarnings("ignore")
    command = "python bench/generality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    tally = Tally(command)
    collect(args.count, args.seed, tally, args.out, not args.no_triton,
            () if args.triton_only else ARCHS, args.keep_failures)
    tally.write(args.out)
    shrunk = []
    if args.shrink:
        for record in list(tally.failures.values()):
            shrunk.append(shrink(record))
            tally.write(args.out, shrunk)
    tally.write(args.out, shrunk)
    print(json.dumps(tally.to_json(shrunk)["summary"], indent=2))
    print(f"archs: {'none' if args.triton_only else ', '.join(ARCHS)}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
