"""Benchmark: the whole ``cascade reproduce fusemax`` study (attention, end-to-end, pe_dim sweep).

The FuseMax artifact needs about 9 hours of Timeloop runs for the same study; the target here is
under 60 s on a 2-core machine. Writes bench/results/accel_reproduce.json.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from simulator import problem
    from studies.fusemax.study import PAPER, headline, run_study

    runs = []
    records = None
    for _ in range(3):
        problem.clear_cache()
        t0 = time.perf_counter()
        records = run_study()
        runs.append(time.perf_counter() - t0)
    h = headline(records)
    result = {
        "benchmark": "cascade reproduce fusemax (records only, no plots)",
        "records": len(records),
        "seconds": {"min": min(runs), "all": runs},
        "target_seconds": 60,
        "headline": h,
        "paper": PAPER,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
    }
    out = ROOT / "bench" / "results" / "accel_reproduce.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"reproduce fusemax: {len(records)} records in {min(runs):.2f} s (best of 3; target < 60 s)")
    for scope in ("attention", "end2end"):
        s, p = h[scope], PAPER[scope]
        print(f"{scope}: speedup {s['speedup_vs_FLAT']:.3f}x [{p['speedup_vs_FLAT']}x], "
              f"energy FuseMax/FLAT {s['energy_vs_FLAT']:.4f} [{p['energy_vs_FLAT']}]")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
