"""``cascade plot results.parquet -o DIR``: the Pareto front and per-axis sensitivity of a sweep."""
from __future__ import annotations

from pathlib import Path

from einsum_ir.errors import CascadeError

from ..io import output_errors


def register(sub) -> None:
    p = sub.add_parser("plot", help="plot a sweep's results: Pareto front, sensitivity per axis")
    p.add_argument("results", metavar="RESULTS", help="a results file of cascade sweep (.parquet or .csv)")
    p.add_argument("-o", "--out", metavar="DIR", default="plots", help="folder for the figures "
                   "(default plots/)")
    p.add_argument("--pareto", metavar="COL,COL", default="latency,area",
                   help="the two columns of the front (default latency,area; both minimised)")
    p.add_argument("--by", metavar="COLUMN", help="one front per value of this column, e.g. workload")
    p.add_argument("--metric", metavar="COLUMN", help="the column of the sensitivity plots "
                   "(default: each --pareto column)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mapper.sweep.output import read_results
    from mapper.sweep.pareto import numeric_columns, pareto_columns
    from mapper.sweep.plots import write_plots

    if not Path(args.results).exists():
        raise CascadeError(f"no such results file: {args.results}")
    table = read_results(args.results)
    if "status" not in table.column_names:
        raise CascadeError(f"{args.results}: not the results of cascade sweep (no status column)")
    numeric = numeric_columns(table)
    columns = pareto_columns(args.pareto, numeric)
    for option, name in (("--by", args.by), ("--metric", args.metric)):
        if name and name not in table.column_names:
            raise CascadeError(f"{option} {name}: no such column", hint="columns: " + ", ".join(table.column_names))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CascadeError("cascade plot needs matplotlib", hint="pip install 'cascade-einsum[plots]'") from None
    with output_errors("-o", args.out):
        written = write_plots(table, args.out, columns, args.by, args.metric)
    for path in written:
        print(f"wrote {path}")
    return 0
