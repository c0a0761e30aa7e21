"""The attention catalogue end to end: every variant of tests/data/catalogue through each stage.

    PYTHONPATH=. nice python bench/catalogue.py [--only D1_mha,M1_sinks] [--no-triton]

Stages, each ok / refused (a CascadeError: its first line) / wrong (ran, disagrees) / crashed (any
other exception, or a stage over its time limit: a bug to report):

* ``interpreter``: the float64 interpreter against the numpy reference (references.py), max abs error.
* ``analysis``: ``count_passes`` and ``count_work`` (what ``cascade passes`` / ``cascade work``
  print) at the simulation sizes; wrong if a masked variant does more work than without its masks.
* ``simulator``: the mapper and simulator on fusemax at moderate sizes (``mapper.search``, as
  ``cascade map``), checked by the harness invariants: finite numbers, masked points <= the
  unmasked form's, exact points, cycles >= work / peak, energy bounds.
* ``triton fp32`` / ``triton fp16``: ``backends.triton.compile_cascade`` under TRITON_INTERPRET=1
  at the tiny default sizes against the interpreter (fp32: the harness tolerance; fp16: 1e-2).

Each variant runs in a worker process with a time limit per stage (signals) and one for the whole
variant (the worker is replaced when it is exceeded). Writes bench/results/catalogue.json and .md.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TRITON_INTERPRET", "1")

FOLDER = ROOT / "tests" / "data" / "catalogue"
RESULTS = ROOT / "bench" / "results"
STAGES = ("interpreter", "analysis", "simulator", "triton_fp32", "triton_fp16")
SIDE = "triton_fp32_keys_as_rank"  # a side column: not part of the verdict
STAGE_S = {"interpreter": 60, "analysis": 60, "simulator": 150, "triton_fp32": 240,
           "triton_fp16": 240, SIDE: 240}
FAMILIES = {"D": "dense softmax", "R": "reference cascades (online, split-KV)",
            "M": "static masks", "S": "data-dependent sparsity", "L": "linear",
            "H": "hybrid", "X": "cross-attention", "C": "channel-wise"}


def _first_line(text: str) -> str:
    """The first line, with paths relative to the repository (the report is committed)."""
    return (text.strip().splitlines() or [""])[0].replace(f"{ROOT}/", "")[:300]


def outcome(status: str, detail: str = "", **facts) -> dict:
    return {"status": status, "detail": detail, **facts}


def guarded(stage: str, fn) -> dict:
    """Runs one stage under its time limit and classifies what it raises."""
    from einsum_ir.errors import CascadeError
    from harness.targets import OutOfMemory, Timeout, deadline

    try:
        if stage == "simulator":  # simulate() holds its own deadline per search
            return fn()
        with deadline(STAGE_S[stage], memory=4 << 30):
            return fn()
    except CascadeError as exc:
        located = exc.span is not None
        return outcome("refused", _first_line(str(exc)), located=located)
    except (Timeout, OutOfMemory) as exc:
        return outcome("crashed", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a crash is a bug: record it with its type
        return outcome("crashed", f"{type(exc).__name__}: {_first_line(str(exc))}")


# ------------------------------------------------------------------ stages


def _refs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("catalogue_references", FOLDER / "references.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_inputs(refs, name, cascade, sizes, seed=0):
    import numpy as np

    from einsum_ir.inputs import input_shapes

    rng = np.random.default_rng(seed)
    shapes = input_shapes(cascade, sizes)
    if name in refs.INPUTS:
        return refs.INPUTS[name](rng, shapes)
    return {n: rng.standard_normal(sh) for n, sh in shapes.items()}


def _max_error(got, want) -> float:
    """Max abs difference; equal infinities (an LSE's -inf at empty rows) count as equal."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        diff = np.where(got == want, 0.0, np.abs(got - want))
    return float(np.max(diff, initial=0.0))


def stage_interpreter(refs, name, cascade) -> dict:

    from einsum_ir import evaluate, resolve_sizes

    sizes = resolve_sizes(cascade, {})
    inputs = make_inputs(refs, name, cascade, sizes)
    got = evaluate(cascade, inputs)
    want = refs.REFERENCES[name](inputs, sizes)
    err = max(_max_error(got[k], v) for k, v in want.items())
    status = "ok" if err <= 1e-8 else "wrong"
    return outcome(status, f"max abs error {err:.2e}", max_abs_error=err)


def stage_analysis(refs, name, cascade) -> dict:
    from einsum_ir.analysis.data_counts import KINDS
    from einsum_ir.analysis.passcount import count_passes
    from einsum_ir.analysis.work import count_work
    from harness.targets import strip_masks

    sizes = refs.SIM_SIZES.get(name, {})
    passes = count_passes(cascade, sizes=sizes)
    work = count_work(cascade, sizes)
    total = int(sum(work.total.values()))
    facts = {"passes": passes.passes, "pass_rank": passes.rank, "work_ops": total}
    if work.kinds:  # data-dependent: how the counts were made (exact, top-k, assumed, bound)
        facts["data_kinds"] = dict(work.kinds)
    if any(e.where is not None for e in cascade.einsums):
        dense = int(sum(count_work(strip_masks(cascade), sizes).total.values()))
        facts["dense_work_ops"] = dense
        # evaluating a data-dependent mask is work the unmasked form does not do
        masking = int(sum(n for ops in work.predicate.values() for n in ops.values()))
        if total - masking > dense:
            return outcome("wrong", f"masked work {total - masking:,} (without evaluating the "
                           f"masks) > unmasked {dense:,}", **facts)
    kinds = sorted(set(work.kinds.values()) - {"exact"}, key=KINDS.index)
    counted = f" ({'/'.join(kinds)} counts)" if kinds else ""
    return outcome("ok", f"{passes.passes} pass(es) over {passes.rank}, {total:,} ops{counted}",
                   **facts)


def stage_simulator(refs, name, cascade) -> dict:
    from einsum_ir.errors import CascadeError
    from harness.invariants import check
    from harness.targets import OutOfMemory, Timeout, simulate, strip_masks

    sizes = refs.SIM_SIZES.get(name, {})
    facts = simulate(cascade, "fusemax", sizes)
    dense = None
    if any(e.where is not None for e in cascade.einsums):
        try:
            dense = simulate(strip_masks(cascade), "fusemax", sizes)
        except (CascadeError, Timeout, OutOfMemory):  # the unmasked form is only a yardstick
            dense = None
    verdict = check(facts, dense)
    info = {"cycles": facts.cycles, "energy_pJ": facts.energy_pJ, "form": facts.form,
            "sizes": {k: v for k, v in facts.sizes.items() if isinstance(v, (int, float))}}
    if dense is not None:
        info["dense_cycles"] = dense.cycles
    if verdict.failed:
        return outcome("wrong", verdict.detail, **info)
    chain = _sequential_steps(facts)
    if chain and facts.cycles < chain[1]:
        return outcome("wrong", f"latency {facts.cycles:,.0f} cycles < the {chain[1]:,} dependent "
                       f"steps of the recurrence {chain[0]}", **info)
    return outcome("ok", f"{facts.cycles:,.0f} cycles ({facts.form})", **info)


def _sequential_steps(facts) -> tuple | None:
    """The longest recurrence of the simulated form: (tensor, steps); each step needs the one
    before it, so the latency is at least one cycle per step whatever the parallelism."""
    from einsum_ir import analyze

    steps = [(r.tensor, int(facts.sizes[r.var.upper()]))
             for r in analyze(facts.cascade).recurrences.values()
             if isinstance(facts.sizes.get(r.var.upper()), int)]
    return max(steps, key=lambda s: s[1], default=None)


def stage_triton(refs, name, cascade, dtype_name: str) -> dict:
    import numpy as np
    import torch

    from backends.triton import compile_cascade
    from einsum_ir import evaluate, resolve_sizes
    from harness.compare import compare

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
    sizes = resolve_sizes(cascade, {})
    inputs = make_inputs(refs, name, cascade, sizes)
    # what the kernel sees: inputs rounded to its type; the references run on those
    rounded = {k: torch.tensor(v).to(torch_dtype).double().numpy() for k, v in inputs.items()}
    ref = evaluate(cascade, rounded)
    ref32 = evaluate(cascade, {k: v.astype(np.float32) for k, v in rounded.items()},
                     dtype=np.float32)
    kernel = compile_cascade(cascade)
    tensors = {k: torch.tensor(v, dtype=torch_dtype) for k, v in rounded.items()}
    got = {k: v.detach().double().numpy() for k, v in kernel(**tensors).items()}
    if dtype_name == "fp16":
        # fp16 tolerance 1e-2 relative plus 1e-2 of the scale: compare() allows 8 x |ref32 - ref|,
        # so hand it a "float32 result" that far from the float64 one
        ref32 = {k: v + 1.25e-3 * (np.abs(v) + max(1.0, float(np.abs(v[np.isfinite(v)]).max(
            initial=0.0)))) for k, v in ref.items()}
    verdict = compare(got, ref, ref32)
    err = max(_max_error(got[k], v) for k, v in ref.items() if k in got)
    if verdict.failed:
        return outcome("wrong", verdict.detail, max_abs_error=err)
    return outcome("ok", f"max abs error {err:.2e}", max_abs_error=err)


def keys_as_rank(cascade):
    """The cascade with ``index m : P`` replaced by an independent rank M of P's size, or None.

    The Triton backend refuses the ``index`` spelling of self-attention keys; this side column
    shows what it does with the same cascade otherwise."""
    from einsum_ir import loads, resolve_sizes

    text = cascade.source or ""
    if "index m : P" not in text:
        return None
    size = resolve_sizes(cascade, {})["P"]
    return loads(text.replace("index m : P", f"rank M = {size}"), "<keys as rank M>")


def stage_triton_rank_m(refs, name, cascade) -> dict:
    alt = keys_as_rank(cascade)
    if alt is None:
        return outcome("n/a", "no index m : P")
    return stage_triton(refs, name, alt, "fp32")


def run_variant(name: str, triton: bool) -> dict:
    from einsum_ir import load

    refs = _refs()
    record = {"id": name, "family": name[0], "stages": {}}
    try:
        cascade = load(FOLDER / f"{name}.ein")
    except Exception as exc:
        record["stages"]["interpreter"] = outcome("crashed", f"load: {type(exc).__name__}: {exc}")
        return record
    plan = {"interpreter": lambda: stage_interpreter(refs, name, cascade),
            "analysis": lambda: stage_analysis(refs, name, cascade),
            "simulator": lambda: stage_simulator(refs, name, cascade)}
    if triton:
        plan["triton_fp32"] = lambda: stage_triton(refs, name, cascade, "fp32")
        plan["triton_fp16"] = lambda: stage_triton(refs, name, cascade, "fp16")
        plan[SIDE] = lambda: stage_triton_rank_m(refs, name, cascade)
    for stage, fn in plan.items():
        t0 = time.perf_counter()
        result = guarded(stage, fn)
        result["seconds"] = round(time.perf_counter() - t0, 2)
        record["stages"][stage] = result
    return record


# ------------------------------------------------------------------ driver and report


def _worker(name: str, triton: bool, queue) -> None:
    queue.put(run_variant(name, triton))


def run_isolated(name: str, triton: bool) -> dict:
    """One variant in its own process, so a hang or a hard crash costs only that variant."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(name, triton, queue))
    proc.start()
    limit = sum(STAGE_S.values()) + 60
    try:
        return queue.get(timeout=limit)
    except Exception:
        detail = f"worker gave no result within {limit} s (exit code {proc.exitcode})"
        return {"id": name, "family": name[0],
                "stages": {"interpreter": outcome("crashed", detail)}}
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def verdict(record: dict) -> str:
    """end to end: every stage ok; partial: interpreter ok, some later stage not; not: neither."""
    stages = record["stages"]
    if stages.get("interpreter", {}).get("status") != "ok":
        return "not"
    if all(stages.get(s, {}).get("status") == "ok" for s in STAGES):
        return "end to end"
    return "partial" if any(stages.get(s, {}).get("status") == "ok" for s in STAGES[2:]) else "not"


def _cell(result: dict | None) -> str:
    if result is None or result["status"] == "n/a":
        return "-"
    s = result["status"]
    return s if s == "ok" else f"**{s}**"


def _note(record: dict) -> str:
    notes, said = [], {}
    for stage in STAGES:
        r = record["stages"].get(stage)
        if r and r["status"] != "ok":
            seen = said.setdefault(r["detail"], stage)
            notes.append(f"{stage}: {r['detail']}" if seen == stage else f"{stage}: as {seen}")
    return "; ".join(notes).replace("|", "\\|").replace("\n", " ")[:600]


def markdown(records: list, meta: dict) -> str:
    lines = ["# The attention catalogue end to end", "",
             f"`{meta['command']}`, {meta['seconds']:.0f} s. Generated by bench/catalogue.py; "
             "tests/data/catalogue holds the cascades and their numpy references.", "",
             "Verdict: *end to end* = every stage ok; *partial* = the interpreter matches and at "
             "least one of simulator / Triton works; *not* = only the interpreter (or nothing). "
             "The column *fp32, keys as rank M* (not part of the verdict) reruns Triton fp32 on "
             "the self-attention cascades with `index m : P` replaced by an independent "
             "`rank M` of P's size.", ""]
    if meta.get("reruns"):
        lines += ["Rows rerun since: " + "; ".join(f"`{c}`" for c in meta["reruns"]) + ".", ""]
    lines += ["| family | end to end | partial | not |", "|---|---|---|---|"]
    for fam, title in FAMILIES.items():
        group = [r for r in records if r["family"] == fam]
        if group:
            counts = [sum(verdict(r) == v for r in group) for v in ("end to end", "partial", "not")]
            lines.append(f"| {fam} ({title}) | " + " | ".join(map(str, counts)) + " |")
    for fam, title in FAMILIES.items():
        group = [r for r in records if r["family"] == fam]
        if not group:
            continue
        lines += ["", f"## {fam}: {title}", "",
                  "| variant | verdict | interpreter | analysis | simulator | triton fp32 | "
                  "triton fp16 | fp32, keys as rank M | note |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in group:
            cells = [_cell(r["stages"].get(s)) for s in (*STAGES, SIDE)]
            lines.append(f"| {r['id']} | {verdict(r)} | " + " | ".join(cells) + f" | {_note(r)} |")
    crashes = [(r["id"], s, x["detail"]) for r in records for s, x in r["stages"].items()
               if x["status"] == "crashed"]
    lines += ["", "## Crashes (bugs to report)", ""]
    lines += [f"- {i} / {s}: `{d}`" for i, s, d in crashes] or ["none"]
    return "\n".join(lines) + "\n"


def write(records: list, meta: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalogue.json").write_text(json.dumps({**meta, "variants": records}, indent=1) + "\n")
    (out / "catalogue.md").write_text(markdown(records, meta))


def _previous(out: Path, command: str) -> tuple[dict, dict]:
    """The existing catalogue's meta (with this rerun noted) and its rows by id."""
    path = out / "catalogue.json"
    if not path.exists():
        return {"command": command, "seconds": 0.0}, {}
    data = json.loads(path.read_text())
    rows = {r["id"]: r for r in data.pop("variants")}
    data["reruns"] = [*data.get("reruns", []), command]
    return data, rows


def main(argv=None) -> int:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated variant ids")
    ap.add_argument("--no-triton", action="store_true", help="skip the Triton stages")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for catalogue.json/.md")
    ap.add_argument("--merge", action="store_true", help="with --only: replace only those rows of "
                    "the existing catalogue.json (the others, and its command, are kept)")
    args = ap.parse_args(argv)
    names = sorted(p.stem for p in FOLDER.glob("*.ein"))
    if args.only:
        names = [n for n in names if n in set(args.only.split(","))]
    command = "python bench/catalogue.py " + " ".join(argv or sys.argv[1:])
    meta, kept = {"command": command, "seconds": 0.0}, {}
    if args.merge:
        meta, kept = _previous(args.out, command)
    t0, base = time.perf_counter(), meta["seconds"]
    rerun = {}
    for name in tqdm(names, desc="catalogue", unit="variant"):
        rerun[name] = run_isolated(name, not args.no_triton)
        meta["seconds"] = base + time.perf_counter() - t0
        records = sorted({**kept, **rerun}.values(), key=lambda r: r["id"])
        write(records, meta, args.out)  # rewritten after every variant, so a stopped run keeps its rows
    print((args.out / "catalogue.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
