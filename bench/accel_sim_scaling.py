"""Benchmark: the cost of one simulation does not grow with the sequence length.

Times the FuseMax mapping of BERT attention at 1K and at 1M tokens (problem preparation included,
cache cleared each time), and the same for the causal cascade (whose masks are counted exactly,
from regions). Writes bench/results/accel_sim_scaling.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _time(fn, repeat=20):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    from simulator.arch import resolve_arch
    from simulator import problem
    from studies.fusemax.study import FUSEMAX_2D, one_pass_mapping
    from simulator.cost import simulate
    from mapper.search import search
    from studies.fusemax.workloads import attention_sizes, cascade

    arch = resolve_arch("fusemax")
    out = {"benchmark": "one simulation, 1K vs 1M tokens (BERT, FuseMax mapping)", "seconds": {}}
    for label, seq in (("1K", 1 << 10), ("1M", 1 << 20)):
        mapping = one_pass_mapping(FUSEMAX_2D, 256, 4 if seq == 1024 else 128)

        def run(mapping=mapping, seq=seq):  # bound now: called within this iteration
            problem.clear_cache()
            simulate(cascade("mha_1pass"), arch, mapping, attention_sizes("BERT", seq))

        out["seconds"][f"simulate_{label}"] = _time(run)

        holder = {}

        def run_causal(holder=holder, seq=seq):
            problem.clear_cache()
            holder["r"] = search(cascade("causal"), arch, attention_sizes("BERT", seq), top=1)

        out["seconds"][f"map_causal_{label}"] = _time(run_causal, repeat=3)
        out[f"map_causal_{label}_mappings"] = holder["r"].evaluated
        out["seconds"][f"per_mapping_causal_{label}"] = out["seconds"][f"map_causal_{label}"] / holder["r"].evaluated
    s = out["seconds"]
    out["ratio_1M_over_1K"] = s["simulate_1M"] / s["simulate_1K"]
    out["ratio_causal_per_mapping_1M_over_1K"] = s["per_mapping_causal_1M"] / s["per_mapping_causal_1K"]
    out["note"] = ("the mapspace itself grows with the length (more resident-tile choices: "
                   "log2 of the tile count per tiled rank), so a whole search takes longer at 1M; "
                   "the cost per mapping and per simulation does not grow")
    out["target_ratio"] = 2.0
    path = ROOT / "bench" / "results" / "accel_sim_scaling.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"simulate: 1K {s['simulate_1K'] * 1e3:.2f} ms, 1M {s['simulate_1M'] * 1e3:.2f} ms "
          f"(ratio {out['ratio_1M_over_1K']:.2f}); causal map: 1K {s['map_causal_1K']:.2f} s, "
          f"1M {s['map_causal_1M']:.2f} s; per mapping ratio {out['ratio_causal_per_mapping_1M_over_1K']:.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
