"""``cascade sweep SPEC.yaml -o results.parquet``: a design-space sweep, each point mapped.

The spec (docs/sweeps.md) names cascades, architectures and axes; every point goes through the
``cascade map`` pipeline. Small sweeps run in-process, larger ones on a Dask LocalCluster
(``--workers N``) or an existing cluster (``--scheduler tcp://HOST:PORT``). Dask and pyarrow are
imported only here, when the command runs.
"""
from __future__ import annotations

from einsum_ir.errors import CascadeError

from ..options import non_negative_int


def register(sub) -> None:
    p = sub.add_parser("sweep", help="sweep architectures, sizes and objectives, mapping every point")
    p.add_argument("spec", metavar="SPEC.yaml", help="the sweep spec (see docs/sweeps.md)")
    p.add_argument("-o", "--out", metavar="OUT", help="results file, .parquet or .csv "
                   "(required unless --dry-run)")
    p.add_argument("--workers", type=non_negative_int, metavar="N", help="Dask LocalCluster of N worker "
                   "processes; 0 runs in-process (default: in-process up to 16 points, else one "
                   "worker per core)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster")
    p.add_argument("--chunk", type=non_negative_int, metavar="K", help="points per task (default: about a "
                   "quarter of the points per worker, at most 16)")
    p.add_argument("--resume", action="store_true", help="keep the points already in OUT and run "
                   "the others")
    p.add_argument("--pareto", metavar="COL,COL", help="print the Pareto front over these columns "
                   "(minimised), e.g. latency,area")
    p.add_argument("--pareto-by", metavar="COLUMN", help="one front per value of this column, e.g. workload")
    p.add_argument("--dry-run", action="store_true", help="print the number of points and the first few")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from mapper.sweep.output import output_format
    from mapper.sweep.points import count_points, iter_points
    from mapper.sweep.spec import load_spec

    spec = load_spec(args.spec)
    if args.dry_run:
        total = count_points(spec)
        print(f"{spec.name}: {total:,} points")
        for point, _ in zip(iter_points(spec), range(5), strict=False):
            print("  " + ", ".join(f"{k}={v}" for k, v in point.inputs(spec).items()))
        return 0
    if not args.out:
        raise CascadeError("-o OUT is required (a .parquet or .csv file)")
    output_format(args.out)
    if args.workers is not None and args.scheduler:
        raise CascadeError("--workers and --scheduler: give one (the cluster has its own workers)")
    if args.chunk == 0:
        raise CascadeError("--chunk must be at least 1")
    pareto = _pareto_option(spec, args) if args.pareto else None
    return _run(spec, args, pareto)


def _pareto_option(spec, args):
    from mapper.sweep.output import schema
    from mapper.sweep.pareto import numeric_columns, pareto_columns

    sch = schema(spec)
    columns = pareto_columns(args.pareto, numeric_columns(sch.empty_table()))
    if args.pareto_by and args.pareto_by not in sch.names:
        raise CascadeError(f"--pareto-by {args.pareto_by}: no such column",
                           hint="columns: " + ", ".join(sch.names))
    return columns


def _run(spec, args, pareto) -> int:
    from mapper.sweep.run import run_sweep

    s = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                  progress=not args.no_progress, chunk=args.chunk)
    where = f"{s.workers} worker{'s' if s.workers != 1 else ''}" if s.workers else "in-process"
    skipped = f" ({s.skipped:,} already in {args.out})" if s.skipped else ""
    print(f"{spec.name}: {s.points:,} points{skipped}; {s.computed:,} computed in {s.seconds:.1f} s "
          f"({s.rate:.2f} points/s, {where}); {s.errors:,} not ok (errors or outside the constraints)")
    print(f"wrote {s.rows:,} rows to {args.out}")
    if s.interrupted:
        print("interrupted: the file holds the points finished so far; --resume runs the rest")
        return 130
    if pareto:
        _print_front(args, pareto)
    return 0


def _print_front(args, columns) -> None:
    from mapper.sweep.output import read_results
    from mapper.sweep.pareto import pareto_front
    from mapper.sweep.plots import input_columns

    table = read_results(args.out)
    inputs = [c for c in input_columns(table) if len({r for r in table.column(c).to_pylist()}) > 1]
    front = pareto_front(table.to_pylist(), columns, args.pareto_by)
    print(f"Pareto front over {', '.join(columns)}" + (f" per {args.pareto_by}" if args.pareto_by else "")
          + f": {len(front)} points")
    shown = list(dict.fromkeys(([args.pareto_by] if args.pareto_by else []) + inputs + columns))
    print("  " + " ".join(f"{c:>14}" for c in ["point_id"] + shown))
    for r in front:
        print("  " + " ".join(f"{_cell(r[c]):>14}" for c in ["point_id"] + shown))


def _cell(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
