"""SCALE-Sim 3.0.0 (PyPI ``scalesim``, with ``numpy<2``) in its own virtual environment,
``bench/.venv-scalesim`` (created on the first run). The driver runs inside the venv and imports
nothing of Cascade: it prints every case's cycles per layer (SCALE-Sim's 0-based index of the
cycle of the last output write, so Cascade's ``per_tile`` cycles minus one per layer).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from peer_venv import ensure_venv

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-scalesim"
REQUIREMENTS = ("numpy<2", "scalesim==3.0.0")

_CONFIG = """[general]
run_name = peer
[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 4096
FilterSramSzkB : 4096
OfmapSramSzkB : 4096
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {df}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32
[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


# ------------------------------------------------------------------ inside the SCALE-Sim venv


def driver(cases_file: str) -> None:
    """Runs every case (a layer list per case) and prints ``[[cycles per layer], ...]`` as JSON.
    Runs under the SCALE-Sim virtual environment: no Cascade imports."""
    import contextlib
    import io

    from scalesim.scale_sim import scalesim

    out = []
    for case in json.loads(Path(cases_file).read_text()):
        work = Path(tempfile.mkdtemp(prefix="peers-"))
        (work / "c.cfg").write_text(_CONFIG.format(rows=case["rows"], cols=case["cols"],
                                                   df=case["dataflow"]))
        topo = ["Layer, M, N, K,"] + [f"l{i}, {m}, {n}, {k}," for i, (m, n, k) in
                                      enumerate(case["layers"])]
        (work / "t.csv").write_text("\n".join(topo) + "\n")
        layout = ["Layer name" + ", x" * 20 + ","] + [f"l{i}" + ", 1" * 20 + "," for i in
                                                      range(len(case["layers"]))]
        (work / "l.csv").write_text("\n".join(layout) + "\n")
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(work / "c.cfg"),
                           topology=str(work / "t.csv"), layout=str(work / "l.csv"),
                           input_type_gemm=True)
            sim.run_scale(top_path=str(work / "out"))
        rows = (work / "out" / "peer" / "COMPUTE_REPORT.csv").read_text().splitlines()[1:]
        out.append([int(r.split(",")[2]) for r in rows if r.strip()])
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


# ------------------------------------------------------------------ in the project's Python


def ensure() -> tuple:
    """(the venv's python, "") or (None, why it is skipped)."""
    return ensure_venv(VENV, sys.executable, REQUIREMENTS,
                       "import scalesim, numpy; assert numpy.__version__ < '2'", "scalesim")


def run(python, cases: list) -> list:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
    try:
        proc = subprocess.run([str(python), __file__, "--driver", f.name],
                              capture_output=True, text=True, check=True)
    finally:
        Path(f.name).unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--driver":
        driver(sys.argv[2])
