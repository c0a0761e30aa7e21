"""Where the FuseMax/FLAT energy gap comes from: sweep the divider's energy per action.

The model uses the artifact's ERT value (36.25 pJ) and gets FuseMax/FLAT energy means of about
0.95, where the paper reports 0.787 (attention) and 0.833 (end-to-end). FLAT divides once per score
(M x P), FuseMax once per output (F x P), so a per-division cost moves FLAT's energy and hardly
FuseMax's. This script re-runs the whole study with only the divider energy changed (in copies of
the specs) and writes the headline ratios per value to bench/results/accel_energy_gap.json.
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from einsum_ir.resources import BuiltinKind, builtin_dir  # noqa: E402
from simulator.arch import resolve_arch  # noqa: E402
import studies.fusemax.study as study  # noqa: E402

DIVIDER_PJ = (36.25, 250.0, 550.24, 600.0, 640.0, 650.0)
PAPER = {"attention": 0.787, "end2end": 0.833}


def headline_with_divider(pj: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for spec in builtin_dir(BuiltinKind.ARCH).glob("*.yaml"):
            text = re.sub(r"^(\s*div:\s*)36\.25\b", rf"\g<1>{pj}", spec.read_text(), flags=re.M)
            (Path(tmp) / spec.name).write_text(text)
        original = study._arch
        study._arch = lambda name, overrides=None: resolve_arch(str(Path(tmp) / f"{name}.yaml"),
                                                                 overrides or {})
        try:
            records = study.run_study(pe_dims=())
        finally:
            study._arch = original
    h = study.headline(records)
    return {"divider_pJ": pj,
            "attention_energy_vs_FLAT": h["attention"]["energy_vs_FLAT"],
            "end2end_energy_vs_FLAT": h["end2end"]["energy_vs_FLAT"],
            "attention_speedup_vs_FLAT": h["attention"]["speedup_vs_FLAT"]}


def main() -> int:
    start = time.perf_counter()
    rows = [headline_with_divider(pj) for pj in DIVIDER_PJ]
    out = {"paper": PAPER, "rows": rows, "seconds": time.perf_counter() - start}
    path = ROOT / "bench" / "results" / "accel_energy_gap.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'divider pJ':>10} {'attention E ratio':>18} {'end2end E ratio':>16} {'speedup':>8}")
    for r in rows:
        print(f"{r['divider_pJ']:10.2f} {r['attention_energy_vs_FLAT']:18.4f} "
              f"{r['end2end_energy_vs_FLAT']:16.4f} {r['attention_speedup_vs_FLAT']:8.3f}")
    print(f"paper: attention {PAPER['attention']}, end-to-end {PAPER['end2end']}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
