"""AccelForge 1.0.467 (PyPI ``accelforge``, the Timeloop group's successor) in its own Python 3.12
virtual environment, ``bench/.venv-accelforge``.

The inputs are generated from the bench's case list: one architecture per case (DRAM, a buffer,
a ``rows x cols`` array of PEs each with a free one-word register per operand, a MAC; 1 pJ per
MAC and per 16-bit word read or written at the buffer and DRAM, as the Cascade spec of
``bench/peers_cascade.py``), the dataflow as loop bounds on the array's two spatial dimensions
(``os``: rows over M, columns over N; ``None`` leaves the spatial choice to the mapper), and one
workload per case (its GEMMs ``C_i[m_i, n_i] = A_i[m_i, k_i] * B_i[k_i, n_i]`` as independent
Einsums, or the attention chain ``S = Q K^T, O = S V`` with ``S`` an intermediate). Fusion is
the DRAM's ``keep`` set: ``none`` keeps every tensor in DRAM (``S`` goes off chip), ``searched``
only the non-intermediates, letting AccelForge's mapper (FFM) decide. FFM searches the temporal
loops and the fusion; the driver keeps its latency-best and energy-best mappings.
The driver runs inside the venv and imports nothing of Cascade.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from peer_venv import PYTHON312, ensure_venv, find_python, ready, run_driver, venv_python

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-accelforge"
REQUIREMENTS = ("accelforge==1.0.467",)
WORD_BITS = 16
SPATIAL = {"os": ("m", "n"), "ws": ("k", "n"), "is": ("k", "m")}  # (rows, cols) as GEMM ranks
CASE_TIMEOUT_S = 600


def _memory(name: str, keep: str, pj: float, size: str = "inf") -> list:
    """A memory whose read and write cost ``pj`` per 16-bit word (``bits_per_action``)."""
    action = f"energy: {pj}, throughput: inf, bits_per_action: {WORD_BITS}"
    return ["  - !Memory", f"    name: {name}", f"    size: {size}", "    leak_power: 0",
            "    area: 0", f"    tensors: {{{keep}}}", "    actions:",
            f"    - {{name: read, {action}}}", f"    - {{name: write, {action}}}"]


def _spatial(name: str, fanout: int, ranks: list | None) -> str:
    """One array dimension; with ``ranks``, every other rank variable is bound to 1 on it."""
    bounds = ("" if ranks is None else
              f", loop_bounds: [{{expression: ~({' | '.join(ranks)}), operator: ==, value: 1}}]")
    return f"    - {{name: {name}, fanout: {fanout}{bounds}}}"


def spatial_ranks(case: dict) -> tuple:
    """(row ranks, column ranks) of the case's dataflow over its Einsums' rank variables, or
    (None, None) when the mapper chooses."""
    if case.get("dataflow") is None:
        return None, None
    row, col = SPATIAL[case["dataflow"]]
    n = len(case["layers"])
    return [f"{row}{i}" for i in range(n)], [f"{col}{i}" for i in range(n)]


def arch_text(case: dict) -> str:
    fusion = case.get("fusion", "none")
    if fusion not in ("none", "searched"):
        raise ValueError(f"fusion {fusion!r}: none or searched")
    dram_keep = "keep: All" if fusion == "none" else "keep: ~Intermediates, may_keep: All"
    rows, cols = spatial_ranks(case)
    lines = ["arch:", "  nodes:", *_memory("DRAM", dram_keep, 1.0), *_memory("GLB", "keep: All", 1.0),
             "  - !Container", "    name: Array", "    spatial:",
             _spatial("rows", case["rows"], rows), _spatial("cols", case["cols"], cols),
             *_memory("Reg", "keep: All", 0.0, size=str(3 * WORD_BITS)),
             "  - !Compute", "    name: MAC", "    leak_power: 0", "    area: 0", "    actions:",
             "    - {name: compute, energy: 1.0, throughput: 1}"]
    return "\n".join(lines) + "\n"


def workload_text(case: dict) -> str:
    """Independent GEMMs, one Einsum a layer, or (``chain: true``) the dependent attention chain
    ``S[p,m] = Q[p,e] K[m,e]; O[p,f] = S[p,m] V[m,f]`` from the layers (P,M,E) and (P,F,M)."""
    if case.get("chain"):
        (p, m, e), (p2, f, m2) = case["layers"]
        if (p, m) != (p2, m2):
            raise ValueError(f"chain layers {case['layers']}: want (P,M,E), (P,F,M)")
        sizes = {"P": p, "M": m, "E": e, "F": f}
        einsums = ["S[p, m] = Q[p, e] * K[m, e]", "O[p, f] = S[p, m] * V[m, f]"]
    else:
        sizes = {f"{r}{i}": v for i, layer in enumerate(case["layers"])
                 for r, v in zip("MNK", layer, strict=True)}
        einsums = [f"C{i}[m{i}, n{i}] = A{i}[m{i}, k{i}] * B{i}[k{i}, n{i}]"
                   for i in range(len(case["layers"]))]
    ranks = ", ".join(f"{k}: {v}" for k, v in sizes.items())
    body = "\n".join(f'  - "{e}"' for e in einsums)
    return (f"workload:\n  rank_sizes: {{{ranks}}}\n  bits_per_value: {{All: {WORD_BITS}}}\n"
            f"  einsums:\n{body}\n")


# ------------------------------------------------------------------ inside the AccelForge venv


def _record(row: dict) -> dict:
    """Cycles, energy and words moved of one mapping (a row of FFM's Pareto frame, columns
    ``einsum<SEP>action<SEP>component<SEP>tensor<SEP>read|write``)."""
    words = {"DRAM": 0.0, "GLB": 0.0}
    macs, einsum_cycles = 0.0, {}
    for col, v in row.items():
        parts = col.split("<SEP>")
        if len(parts) == 5 and parts[1] == "action" and parts[2] in words:
            words[parts[2]] += float(v)
        elif len(parts) == 5 and parts[1] == "action" and parts[4] == "compute":
            macs += float(v)
        elif len(parts) == 3 and parts[1] == "latency":
            einsum_cycles[parts[0]] = max(einsum_cycles.get(parts[0], 0.0), float(v))
    return {"cycles": float(row["Total<SEP>latency"]), "energy": float(row["Total<SEP>energy"]),
            "macs": macs, "dram_words": words["DRAM"], "glb_words": words["GLB"],
            "einsum_cycles": einsum_cycles}


def _run_one(work: Path, case: dict) -> dict:
    import accelforge as af
    (work / "arch.yaml").write_text(arch_text(case))
    (work / "wl.yaml").write_text(workload_text(case))
    spec = af.Spec.from_yaml(str(work / "arch.yaml"), str(work / "wl.yaml"))
    spec.mapper.metrics = af.Metrics.ENERGY | af.Metrics.LATENCY
    frame = spec.map_workload_to_arch(print_progress=False).data
    recs = [_record(r) for _, r in frame.iterrows()]
    return {"pareto": len(recs),
            "latency": min(recs, key=lambda r: (r["cycles"], r["energy"])),
            "energy": min(recs, key=lambda r: (r["energy"], r["cycles"]))}


def driver(cases_file: str) -> None:
    """Prints ``[{"latency": record, "energy": record, "pareto": n} or {"error": ...} per case]``."""
    import contextlib
    import io
    import logging
    import os
    import signal

    import accelforge.mapper.FFM.mappings as ffm_mappings
    # FFM renders every chosen mapping to ./mapping.svg through Graphviz's `dot`, absent here
    ffm_mappings.Mappings.render = lambda self, *a, **k: ""
    logging.disable(logging.WARNING)

    def _timeout(*_):
        raise TimeoutError(f"over {CASE_TIMEOUT_S} s")
    signal.signal(signal.SIGALRM, _timeout)
    out = []
    for case in json.loads(Path(cases_file).read_text()):
        work = Path(tempfile.mkdtemp(prefix="af-"))
        os.chdir(work)
        signal.alarm(CASE_TIMEOUT_S)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                out.append(_run_one(work, case))
        except Exception as e:  # noqa: BLE001 -- a peer's failure is recorded, not fatal
            out.append({"error": f"{type(e).__name__}: {e}"[:300]})
        finally:
            signal.alarm(0)
    print(json.dumps(out))


# ------------------------------------------------------------------ in the project's Python


def ensure() -> tuple:
    """(the venv's python, "") or (None, why AccelForge is skipped)."""
    probe = "import accelforge"
    if ready(VENV, probe):
        return venv_python(VENV), ""
    base = find_python(PYTHON312)
    if base is None:
        return None, "skipped: needs Python >= 3.12 (none found: %s)" % ", ".join(PYTHON312)
    return ensure_venv(VENV, base, REQUIREMENTS, probe, "accelforge")


def run(python, cases: list) -> list:
    return run_driver(python, __file__, cases, CASE_TIMEOUT_S * max(len(cases), 1))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--driver":
        driver(sys.argv[2])
