"""Runs the CPU benchmarks one after another (`make bench`); each writes its file in bench/results/.

The GPU benchmark (attention_gpu.py) needs a GPU and is run on its own; the fuzz campaigns
(fuzz_inputs.py, fuzz_specs.py) and the generality harness's long run (`make fuzz`) too.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("accel_reproduce.py", "accel_mapper.py", "accel_sim_scaling.py")


def main() -> int:
    failed = []
    for script in SCRIPTS:
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / script)], cwd=HERE.parent)
        print(f"{script}: exit {rc} in {time.perf_counter() - start:.1f} s", flush=True)
        if rc:
            failed.append(script)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
