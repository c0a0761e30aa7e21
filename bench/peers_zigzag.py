"""ZigZag 3.x (PyPI ``zigzag-dse``) in its own Python 3.12 virtual environment, ``bench/.venv-zigzag``.

The inputs are generated from the bench's case list: one hardware file per array (a per-PE output
register, a buffer, DRAM; 1 pJ per MAC and per 16-bit word read or written at the buffer and DRAM,
as the Cascade spec of ``bench/peers_cascade.py``), one workload per case (its GEMMs as layers
``O[m][n] += I[m][k] * W[k][n]``) and one mapping per case (the dataflow's spatial unrolling; LOMA
searches the temporal loops). The driver runs inside the venv and imports nothing of Cascade.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from peer_venv import PYTHON312, ensure_venv, find_python, ready, run_driver, venv_python

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-zigzag"
REQUIREMENTS = ("zigzag-dse>=3,<4", "six")  # six: imported by zigzag 3.9.1, not declared
# ZigZag charges a memory access per bandwidth_max bits: a wide port with its cost scaled to
# match makes every 16-bit word cost WORD_PJ (the total is truncated to whole accesses)
PORT_WORDS = 1024
SPATIAL = {"os": ("M", "N"), "ws": ("K", "N"), "is": ("K", "M")}


def _port(name: str, allocation: list, words: int = PORT_WORDS) -> dict:
    return {"name": name, "type": "read_write", "bandwidth_min": 16, "bandwidth_max": 16 * words,
            "allocation": allocation}


def hardware(rows: int, cols: int, mac_pj: float = 1.0, word_pj: float = 1.0) -> dict:
    """Per-PE registers for every operand (free: Cascade charges no register files here) so
    a stationary operand can stay; one port per operand at the buffer and DRAM: ZigZag sizes a port's demand per PE without
    broadcast, so a shared port would stall the array on reads it does not make."""
    ops = {"I1": ["I1, tl", "I1, fh"], "I2": ["I2, tl", "I2, fh"],
           "O": ["O, tl", "O, fl", "O, fh", "O, th"]}
    wide = [_port(f"rw_port_{i}", alloc) for i, alloc in enumerate(ops.values(), 1)]
    level = {"r_cost": word_pj * PORT_WORDS, "w_cost": word_pj * PORT_WORDS, "area": 0,
             "latency": 1, "operands": ["I1", "I2", "O"], "ports": wide,
             "served_dimensions": ["D1", "D2"]}
    rf_ports = [{"name": "w_port_1", "type": "write", "bandwidth_min": 16, "bandwidth_max": 16,
                 "allocation": ["O, fh"]},
                {"name": "r_port_1", "type": "read", "bandwidth_min": 16, "bandwidth_max": 16,
                 "allocation": ["O, tl"]},
                {"name": "w_port_2", "type": "write", "bandwidth_min": 16, "bandwidth_max": 16,
                 "allocation": ["O, fl"]},
                {"name": "r_port_2", "type": "read", "bandwidth_min": 16, "bandwidth_max": 16,
                 "allocation": ["O, th"]}]
    regs = {f"rf_{op}": {"size": 16, "r_cost": 0, "w_cost": 0, "area": 0, "latency": 1,
                         "auto_cost_extraction": False, "operands": [op],
                         "ports": [{"name": "r_port_1", "type": "read", "bandwidth_min": 16,
                                    "bandwidth_max": 16, "allocation": [f"{op}, tl"]},
                                   {"name": "w_port_1", "type": "write", "bandwidth_min": 16,
                                    "bandwidth_max": 16, "allocation": [f"{op}, fh"]}],
                         "served_dimensions": []} for op in ("I1", "I2")}
    return {"name": f"sa{rows}x{cols}",
            "memories": {
                **regs,
                "rf_O": {"size": 16, "r_cost": 0, "w_cost": 0, "area": 0, "latency": 1,
                         "auto_cost_extraction": False, "operands": ["O"], "ports": rf_ports,
                         "served_dimensions": []},
                "glb": {"size": 2 ** 43, **level},
                "dram": {"size": 2 ** 50, **level}},
            "operational_array": {"input_precision": [16, 16], "unit_energy": mac_pj,
                                  "unit_area": 1, "dimensions": ["D1", "D2"],
                                  "sizes": [rows, cols]}}


def workload(layers: list) -> list:
    return [{"id": i, "name": f"l{i}", "operator_type": "Gemm",
             "equation": "O[m][n]+=I[m][k]*W[k][n]", "loop_dims": ["M", "N", "K"],
             "loop_sizes": [m, n, k], "operand_precision": {"I": 16, "W": 16, "O": 16,
                                                            "O_final": 16},
             "operand_source": {"I": i, "W": i}} for i, (m, n, k) in enumerate(layers)]


def mapping(layers: list, rows: int, cols: int, dataflow: str) -> list:
    """The dataflow's spatial unrolling, at most the rank's size (ZigZag does not pad)."""
    d1, d2 = SPATIAL[dataflow]
    size = dict(zip("MNK", layers[0], strict=True))
    return [{"name": "default",
             "spatial_mapping": {"D1": [f"{d1}, {min(rows, size[d1])}"],
                                 "D2": [f"{d2}, {min(cols, size[d2])}"]},
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


# ------------------------------------------------------------------ inside the ZigZag venv


def _words_moved(cme) -> float:
    """Words read and written at the buffer and DRAM by ZigZag's own access formula
    (``CostModelEvaluation._calc_memory_access``) before it truncates to whole accesses of
    ``bandwidth_max`` bits: every word costs WORD_PJ here, so this is its memory energy untruncated."""
    from zigzag.mapping.data_movement import DataDirection, DataMoveAttr
    total = 0.0
    for op in cme.layer.layer_operands:
        for lvl in range(1, cme.mapping.mem_level[op]):  # the per-PE registers are free
            move = cme.mapping.unit_mem_data_movement[op][lvl]
            amount = move.get_attribute(DataMoveAttr.DATA_TRANS_AMOUNT_PER_PERIOD)
            periods = move.get_attribute(DataMoveAttr.DATA_TRANS_PERIOD_COUNT)
            prec = move.get_attribute(DataMoveAttr.DATA_PRECISION)
            units = cme.mapping.spatial_mapping.unit_count[op][lvl + 1]
            for d in DataDirection:
                total += amount.get(d) * prec.get(d) / 16 * periods.get(d) * units
    return total


def _layer_record(cme) -> dict:
    return {"words": _words_moved(cme), "cycles": float(cme.latency_total2), "ideal": float(cme.ideal_temporal_cycle),
            "stall": float(cme.stall_slack_comb), "onload": float(cme.data_onloading_cycle),
            "offload": float(cme.data_offloading_cycle), "energy": float(cme.energy_total),
            "mac_energy": float(cme.mac_energy),
            "mem_energy": {str(op): [float(x) for x in v]
                           for op, v in cme.mem_energy_breakdown.items()}}


def _run_one(work: Path, opt: str) -> dict:
    import contextlib
    import io

    from zigzag.api import get_hardware_performance_zigzag
    with contextlib.redirect_stdout(io.StringIO()):
        _, _, cmes = get_hardware_performance_zigzag(
            str(work / "wl.yaml"), str(work / "hw.yaml"), str(work / "map.yaml"), opt=opt,
            lpf_limit=4, dump_folder=str(work / "out"), loma_show_progress_bar=False)
    return _layer_record(cmes[0][1][0][0])  # the layer's evaluation, not the cumulative one


def driver(cases_file: str) -> None:
    """Prints ``[[{"latency": record, "energy": record} per layer] per case]`` (or ``{"error": ...}``) as JSON."""
    import logging

    import yaml
    logging.disable(logging.WARNING)
    out = []
    for case in json.loads(Path(cases_file).read_text()):
        work = Path(tempfile.mkdtemp(prefix="zz-"))
        files = {"hw.yaml": hardware(case["rows"], case["cols"]),
                 "map.yaml": mapping(case["layers"], case["rows"], case["cols"], case["dataflow"]),
                 "wl.yaml": workload(case["layers"])}
        for name, data in files.items():
            (work / name).write_text(yaml.safe_dump(data, sort_keys=False))
        layers = []
        for i in range(len(case["layers"])):  # one layer a workload: each its own mapping
            (work / "wl.yaml").write_text(yaml.safe_dump(
                [{**workload([case["layers"][i]])[0], "name": f"l{i}"}], sort_keys=False))
            (work / "map.yaml").write_text(yaml.safe_dump(mapping(
                [case["layers"][i]], case["rows"], case["cols"], case["dataflow"]),
                sort_keys=False))
            try:  # the latency-best mapping for cycles, the energy-best for energy
                layers.append({opt: _run_one(work, opt) for opt in ("latency", "energy")})
            except Exception as e:  # noqa: BLE001 -- a peer's failure is recorded, not fatal
                layers.append({"error": f"{type(e).__name__}: {e}"[:300]})
        out.append(layers)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


# ------------------------------------------------------------------ in the project's Python


def find_python312() -> str | None:
    return find_python(PYTHON312)


def ensure() -> tuple:
    """(the venv's python, "") or (None, why ZigZag is skipped)."""
    probe = "import zigzag.api"
    if ready(VENV, probe):
        return venv_python(VENV), ""
    base = find_python312()
    if base is None:
        return None, "skipped: needs Python >= 3.12 (none found: %s)" % ", ".join(PYTHON312)
    return ensure_venv(VENV, base, REQUIREMENTS, probe, "zigzag-dse")


def run(python, cases: list) -> list:
    return run_driver(python, __file__, cases, 1800)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--driver":
        driver(sys.argv[2])
