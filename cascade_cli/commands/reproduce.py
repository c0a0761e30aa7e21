"""``cascade reproduce fusemax [--json FILE] [--plots DIR]``: the FuseMax evaluation, end to end.

The study lives in ``studies/fusemax/`` of the source tree (a paper study, not part of the
installed packages); the command finds it next to this package or on the import path.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from einsum_ir.errors import CascadeError

from ..io import output_errors, write_output

STUDIES = ("fusemax",)


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a paper's evaluation with the cost model")
    p.add_argument("study", choices=STUDIES, help="which study (fusemax: Nayak et al., MICRO 2024)")
    p.add_argument("--json", metavar="FILE", help="write the records (a JSON list) here")
    p.add_argument("--plots", metavar="DIR", help="write figures like the paper's Figs. 6-12 here")
    p.add_argument("--models", metavar="M,...", help="subset of BERT,TrXL,T5,XLM")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _study(name: str):
    """The study's package (``studies.NAME``), from the source tree this command runs from."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "studies" / name / "__init__.py").exists() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        return (importlib.import_module(f"studies.{name}.study"),
                importlib.import_module(f"studies.{name}.workloads"))
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("studies"):
            raise
        raise CascadeError(f"reproduce {name}: the study is not available in this installation",
                           hint=f"the paper studies ship with the source tree (studies/{name}/); "
                                "run cascade reproduce from a checkout of the repository") from None


def run(args) -> int:
    study, workloads = _study(args.study)
    CONFIGS, attention_point = study.CONFIGS, study.attention_point
    format_tables, run_study = study.format_tables, study.run_study
    MODELS, SEQ_LENS = workloads.MODELS, workloads.SEQ_LENS

    models = list(MODELS)
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        bad = [m for m in models if m not in MODELS]
        if bad:
            raise CascadeError(f"--models: unknown model {bad[0]!r}", hint="models: " + ", ".join(MODELS))
    if args.json and not Path(args.json).parent.is_dir():
        raise CascadeError(f"{Path(args.json).parent} is not a directory",
                           file=f"--json {args.json}", hint="create the directory first")
    if args.plots:  # before the study: a bad folder should not cost its minutes
        with output_errors("--plots", args.plots):
            Path(args.plots).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bar = None
    total = len(models) * len(SEQ_LENS) + len(models) * 6
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="fusemax study", unit="point", leave=False)
    records = run_study(models=models, progress=(bar.update if bar else None))
    if bar:
        bar.close()
    seconds = time.perf_counter() - t0
    print(format_tables(records))
    print(f"\n{len(records)} records in {seconds:.2f} s")
    if args.json:
        write_output("--json", args.json, json.dumps(records, indent=1))
        print(f"wrote {args.json}")
    if args.plots:
        write_plots = importlib.import_module(f"studies.{args.study}.plots").write_plots

        activity = {}
        for config in CONFIGS:
            _, rep = attention_point("BERT", 1024, config)
            activity[config] = {e.key: e.cycles / rep.cycles for e in rep.einsums if e.unit == "2d"}
        with output_errors("--plots", args.plots):
            written = write_plots(records, args.plots, activity)
        for path in written:
            print(f"wrote {path}")
    return 0
