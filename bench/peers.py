"""Peers side by side: SCALE-Sim (cycle-accurate systolic arrays) against Cascade's timing options.

Runs SCALE-Sim 3.0.0 (PyPI ``scalesim``, with ``numpy<2``) in its own virtual environment,
``bench/.venv-scalesim`` (created on the first run; skipped with a message when it cannot be
installed), on GEMMs x arrays x dataflows (output-, weight-, input-stationary) and on a chain (one
attention head, S = Q K^T then O = S V, layer after layer), and Cascade on the same problems with
``fill_drain: none``, ``per_group`` and ``per_tile``. Writes ``bench/results/peers.json`` and
``bench/results/peers.md`` (a table of ratios).

SCALE-Sim prints the 0-based index of the cycle of the last output write, so it equals Cascade's
``per_tile`` cycles minus one per layer. ZigZag and Stream need Python >= 3.12 and are reported
as skipped here (see ``docs/accelerator.md``).

    python bench/peers.py            # from the repository root, the project's Python
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-scalesim"
RESULTS = ROOT / "bench" / "results"
SCALESIM_REQUIREMENTS = ("numpy<2", "scalesim==3.0.0")

GEMMS = [(20, 12, 7), (9, 30, 13), (64, 64, 64), (100, 3, 37), (128, 96, 200), (256, 768, 64)]
ARRAYS = [(8, 8), (16, 16), (4, 8), (32, 16)]
DATAFLOWS = ("os", "ws", "is")
CHAIN = {"P": 256, "M": 256, "E": 64, "F": 64}  # one attention head: QK (P x M x E), AV (P x F x M)
CHAIN_ARRAYS = [(16, 16), (32, 32)]

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


def scalesim_driver(cases_file: str) -> None:
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


def ensure_scalesim() -> tuple:
    """(the venv's python, "") or (None, why it is skipped)."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import scalesim, numpy; assert numpy.__version__ < '2'"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SCALESIM_REQUIREMENTS],
                       check=True, capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return None, f"skipped: cannot install {' '.join(SCALESIM_REQUIREMENTS)}: {detail[-300:]}"
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return None, "skipped: scalesim installed but does not import"
    return python, ""


def run_scalesim(python, cases: list) -> list:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
    try:
        proc = subprocess.run([str(python), __file__, "--scalesim-driver", f.name],
                              capture_output=True, text=True, check=True)
    finally:
        Path(f.name).unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _arch(rows: int, cols: int, fill_drain: str):
    from simulator.arch import arch_from_dict
    return arch_from_dict({
        "name": f"sa{rows}x{cols}", "clock_hz": 1, "word_bytes": 2, "actions": {"mac": 1},
        "units": [{"name": "array", "dims": [rows, cols],
                   "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}},
                   "timing": {"fill_drain": fill_drain}}],
        "levels": [{"name": "DRAM", "bandwidth": 1e15, "access_bytes": 2, "read_pJ": 1,
                    "write_pJ": 1},
                   {"name": "GLB", "capacity": 2 ** 40, "access_bytes": 4, "read_pJ": 1,
                    "write_pJ": 1}]}, "peers")


# SCALE-Sim's (rows, cols) of the array for each dataflow, as GEMM ranks (A[m,k] B[k,n])
SPATIAL = {"os": ("M", "N"), "ws": ("K", "N"), "is": ("K", "M")}


def cascade_cycles(layers: list, rows: int, cols: int, dataflow: str, fill_drain: str) -> float:
    """Cascade's cycles for the layers run one after another (one group each)."""
    from einsum_ir import loads
    from mapper.builders import multi_group
    from simulator.cost import simulate
    text = []
    for i, (m, n, k) in enumerate(layers):
        text.append(f"rank M{i} = {m}, N{i} = {n}, K{i} = {k}\ninput A{i}[m{i},k{i}], "
                    f"B{i}[k{i},n{i}]\noutput C{i}[m{i},n{i}]\n"
                    f"C{i}[m{i},n{i}] = sum[k{i}] A{i}[m{i},k{i}] * B{i}[k{i},n{i}]\n")
    cascade = loads(_merge(text))
    groups = [dict(name=f"l{i}", einsums=(f"C{i}",), binding={f"C{i}": "array"},
                   spatial={"array": [f"{r}{i}" for r in SPATIAL[dataflow]]})
              for i in range(len(layers))]
    return simulate(cascade, _arch(rows, cols, fill_drain), multi_group(groups)).cycles


def _merge(texts: list) -> str:
    """Independent GEMMs as one cascade: the rank, input and output lines joined."""
    ranks, inputs, outputs, body = [], [], [], []
    for t in texts:
        r, i, o, b = t.strip().splitlines()
        ranks.append(r.removeprefix("rank "))
        inputs.append(i.removeprefix("input "))
        outputs.append(o.removeprefix("output "))
        body.append(b)
    return (f"rank {', '.join(ranks)}\ninput {', '.join(inputs)}\noutput {', '.join(outputs)}\n"
            + "\n".join(body) + "\n")


def cases() -> list:
    out = [{"kind": "gemm", "dataflow": df, "rows": r, "cols": c, "layers": [g]}
           for g in GEMMS for (r, c) in ARRAYS for df in DATAFLOWS]
    p, m, e, f = CHAIN["P"], CHAIN["M"], CHAIN["E"], CHAIN["F"]
    out += [{"kind": "chain", "dataflow": df, "rows": r, "cols": c,
             "layers": [(p, m, e), (p, f, m)]} for (r, c) in CHAIN_ARRAYS for df in DATAFLOWS]
    return out


def compare(python) -> list:
    todo = cases()
    measured = run_scalesim(python, todo)
    rows = []
    for case, layer_cycles in zip(todo, measured, strict=True):
        ours = {fd: cascade_cycles(case["layers"], case["rows"], case["cols"], case["dataflow"], fd)
                for fd in ("none", "per_group", "per_tile")}
        scalesim_cycles = sum(layer_cycles)
        rows.append({**case, "scalesim": scalesim_cycles, "scalesim_layers": layer_cycles,
                     "cascade": ours,
                     "per_tile_minus_scalesim": ours["per_tile"] - scalesim_cycles,
                     "ratio_scalesim_over": {fd: scalesim_cycles / v for fd, v in ours.items()}})
    return rows


def summary(rows: list) -> dict:
    def gmean(xs):
        return math.exp(sum(math.log(x) for x in xs) / len(xs))
    diffs = {r["per_tile_minus_scalesim"] - len(r["layers"]) for r in rows}
    return {"cases": len(rows),
            "per_tile_equals_scalesim_plus_one_per_layer": diffs == {0},
            "geomean_ratio_scalesim_over": {fd: gmean([r["ratio_scalesim_over"][fd] for r in rows])
                                            for fd in ("none", "per_group", "per_tile")},
            "max_ratio_scalesim_over_none": max(r["ratio_scalesim_over"]["none"] for r in rows)}


def write_markdown(result: dict) -> str:
    lines = ["# Peers: SCALE-Sim 3.0.0 vs Cascade's fill/drain options", "",
             f"SCALE-Sim: {result['scalesim']['status']}", ""]
    rows = result["scalesim"].get("rows", [])
    if rows:
        s = result["scalesim"]["summary"]
        lines += [f"{s['cases']} cases; Cascade per_tile = SCALE-Sim + 1 per layer in every case: "
                  f"{s['per_tile_equals_scalesim_plus_one_per_layer']}; geomean SCALE-Sim / "
                  "Cascade: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                          s["geomean_ratio_scalesim_over"].items()), "",
                  "| kind | df | array | layers (M,N,K) | SCALE-Sim | none | per_group | per_tile |"
                  " SCALE-Sim / none |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            c = r["cascade"]
            lines.append(f"| {r['kind']} | {r['dataflow']} | {r['rows']}x{r['cols']} | "
                         f"{' '.join(str(tuple(x)) for x in r['layers'])} | {r['scalesim']} | "
                         f"{c['none']:.0f} | {c['per_group']:.0f} | {c['per_tile']:.0f} | "
                         f"{r['ratio_scalesim_over']['none']:.3f} |")
    lines += ["", f"ZigZag: {result['zigzag']}", f"Stream: {result['stream']}", ""]
    return "\n".join(lines)


def python312_status() -> str:
    found = shutil.which("python3.12") and subprocess.run(
        ["python3.12", "--version"], capture_output=True).returncode == 0
    if not found and sys.version_info < (3, 12):
        return "skipped: needs Python >= 3.12 (this machine runs %d.%d)" % sys.version_info[:2]
    return ("skipped: a Python >= 3.12 is available, but the ZigZag/Stream inputs (accelerator, "
            "workload and mapping files) are not written yet")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    python, why = ensure_scalesim()
    result = {"scalesim": {"status": why or "ran " + " ".join(SCALESIM_REQUIREMENTS)},
              "zigzag": python312_status(), "stream": python312_status()}
    if python is not None:
        rows = compare(python)
        result["scalesim"].update(rows=rows, summary=summary(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "peers.md").write_text(write_markdown(result))
    print(write_markdown(result).split("\n| kind")[0])
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--scalesim-driver":
        scalesim_driver(sys.argv[2])
    else:
        sys.exit(main())
