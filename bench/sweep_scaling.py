"""Sweep throughput: points per second in-process, on a Dask LocalCluster of 1 and of 2 workers,
and an estimate of the hours a million points take on N workers.

The points are small mapping searches (the 1-pass cascade on FuseMax's hardware with 256- and
512-PE arrays, one head, 1K-8K tokens). The cluster's start, and a first sweep that warms its
workers (imports, caches), are timed apart from the measured sweep. The estimate for a million
points is linear in the workers at the 1-worker rate (each worker on a core of its own; Dask's
scheduler runs thousands of tasks a second, and a task is up to 16 points), and, where the
measured 2-worker efficiency is below 1 (cores shared with other work), also at that
efficiency. ``--point-seconds S`` estimates for points of another cost (the FuseMax Pareto sweep's
points average seconds to tens of seconds: small arrays have large mapspaces). The load average
is recorded: on a shared machine the rates are lower bounds. Writes
bench/results/sweep_scaling.json.

    PYTHONPATH=. python bench/sweep_scaling.py [--points-per-axis 4] [--point-seconds S]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mapper.sweep.run import run_sweep  # noqa: E402
from mapper.sweep.spec import spec_from_dict  # noqa: E402

WORKERS = (1, 2, 8, 16, 64, 256)


def bench_spec(per_axis: int):
    data = {"name": "scaling", "cascades": ["mha_1pass"], "archs": ["fusemax"],
            "arch_set": {"pe_dim": [256, 512]},
            "sizes": {"B": 1, "H": list(range(1, per_axis + 1)), "E": 64, "F": 64,
                      "P": {"start": 1024, "stop": 1024 * 2 ** (per_axis - 1), "factor": 2}, "M": "P"}}
    return spec_from_dict(data, "<bench>", ROOT)


def measure(spec, out: Path, workers: int | None) -> dict:
    """One run; ``workers`` None is in-process."""
    if workers is None:
        s = run_sweep(spec, out, workers=0, progress=False)
        return {"mode": "in-process", "points": s.computed, "seconds": s.seconds, "points_per_s": s.rate}
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        start = time.perf_counter() - t0
        cold = run_sweep(spec, out.with_name("cold" + out.name), client=client, progress=False)
        s = run_sweep(spec, out, client=client, progress=False)
    return {"mode": f"{workers} worker{'s' if workers > 1 else ''}", "points": s.computed,
            "seconds": s.seconds, "points_per_s": s.rate, "cluster_start_s": start,
            "cold_points_per_s": cold.rate}


def estimate(rate_1: float, efficiency: float, point_seconds: float | None) -> dict:
    """Hours for a million points on N workers, each at ``rate_1`` (or 1 / ``point_seconds``)
    points/s times ``efficiency`` (1 for N = 1)."""
    per_worker = 1 / point_seconds if point_seconds else rate_1
    return {str(n): 1e6 / (per_worker * n * (1.0 if n == 1 else efficiency)) / 3600 for n in WORKERS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points-per-axis", type=int, default=4, help="H and P values (points: 2 x this^2)")
    ap.add_argument("--point-seconds", type=float, help="also estimate for points of this cost")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sweep_scaling.json"))
    args = ap.parse_args(argv)
    spec = bench_spec(args.points_per_axis)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        measure(spec, Path(tmp) / "warm.parquet", None)  # imports and caches, as a worker has them
        for workers in (None, 1, 2):
            runs.append(measure(spec, Path(tmp) / f"r{workers}.parquet", workers))
            print(f"{runs[-1]['mode']:>11}: {runs[-1]['points']} points in {runs[-1]['seconds']:.2f} s, "
                  f"{runs[-1]['points_per_s']:.2f} points/s"
                  + (f" (cluster start {runs[-1]['cluster_start_s']:.1f} s)" if "cluster_start_s" in runs[-1] else ""))
    rate_1, rate_2 = runs[1]["points_per_s"], runs[2]["points_per_s"]
    efficiency = min(1.0, rate_2 / rate_1 / 2)
    costs = {"these_points": None}
    if args.point_seconds:
        costs[f"{args.point_seconds}_s_per_point"] = args.point_seconds
    hours = {}
    for label, cost in costs.items():
        hours[f"{label}_linear"] = estimate(rate_1, 1.0, cost)
        if efficiency < 1:
            hours[f"{label}_at_measured_efficiency"] = estimate(rate_1, efficiency, cost)
    result = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                          "python": platform.python_version()},
              "points": runs[0]["points"], "runs": runs, "speedup_2_over_1": rate_2 / rate_1,
              "efficiency_2_workers": efficiency, "million_points_hours": hours}
    for label, hours in result["million_points_hours"].items():
        print(f"a million points ({label}): " + ", ".join(f"{n} workers {h:,.1f} h" for n, h in hours.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
