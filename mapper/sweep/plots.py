"""Figures of a results table (matplotlib, Agg): the Pareto front and per-axis sensitivity."""
from __future__ import annotations

import statistics
from pathlib import Path

from .pareto import pareto_front


def input_columns(table) -> list:
    """The input columns: those before ``status`` (the point id left out)."""
    names = table.column_names
    return [n for n in names[:names.index("status")] if n != "point_id"]


def axis_columns(table) -> list:
    """The sweep's axes (a Parquet file records them; for a CSV file, every input column):
    a size a workload sets or an expression gives is not an axis of its own."""
    meta = table.schema.metadata or {}
    recorded = meta.get(b"cascade.axes")
    if recorded is None:
        return input_columns(table)
    return [n for n in recorded.decode().split(",") if n in table.column_names]


def write_plots(table, outdir: str | Path, columns: list, group: str | None = None,
                metric: str | None = None) -> list:
    """``pareto.png`` (the first two ``columns``, every ok point, the front per ``group``) and
    ``sensitivity.png`` (``metric``, default each of ``columns``, against each axis that varies:
    the best and the median over the other axes). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table.to_pylist() if r["status"] == "ok"]
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = [_pareto(plt, rows, columns, group, out / "pareto.png")]
    varying = [c for c in axis_columns(table) if len({r[c] for r in rows}) > 1]
    if varying:
        written.append(_sensitivity(plt, rows, varying, [metric] if metric else columns,
                                    out / "sensitivity.png"))
    return [str(p) for p in written]


def _pareto(plt, rows, columns, group, path: Path) -> Path:
    x, y = columns[:2]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    keys = sorted({r.get(group) for r in rows}, key=str) if group else [None]
    for key in keys:
        members = [r for r in rows if not group or r.get(group) == key]
        label = f"{group}={key}" if group else "points"
        dots = ax.scatter([r[x] for r in members], [r[y] for r in members], s=14, alpha=0.4, label=label)
        front = sorted(pareto_front(members, [x, y]), key=lambda r: r[x])
        ax.plot([r[x] for r in front], [r[y] for r in front], "-o", ms=4, color=dots.get_facecolor()[0])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if _spread(rows, x):
        ax.set_xscale("log")
    if _spread(rows, y):
        ax.set_yscale("log")
    ax.set_title(f"Pareto front: {x} vs {y} (lines)")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def _sensitivity(plt, rows, varying, metrics, path: Path) -> Path:
    """One row of plots per metric, one column per axis."""
    fig, axes = plt.subplots(len(metrics), len(varying), figsize=(3.6 * len(varying), 3 * len(metrics)),
                             squeeze=False)
    for i, metric in enumerate(metrics):
        for ax, name in zip(axes[i], varying, strict=True):
            _one_axis(ax, rows, name, metric)
    fig.suptitle("sensitivity to each axis: the best and the median over the other axes")
    return _save(plt, fig, path)


def _one_axis(ax, rows, name, metric) -> None:
    values = sorted({r[name] for r in rows}, key=lambda v: (isinstance(v, str), v))
    by = [[r[metric] for r in rows if r[name] == v and r.get(metric) is not None] for v in values]
    xs = range(len(values))
    ax.plot(xs, [min(b) if b else float("nan") for b in by], "-o", ms=4, label="best")
    ax.plot(xs, [statistics.median(b) if b else float("nan") for b in by], "--s", ms=4, label="median")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([_label(v) for v in values], fontsize=7, rotation=30)
    ax.set_xlabel(name)
    ax.set_ylabel(metric)
    if _spread(rows, metric):
        ax.set_yscale("log")
    ax.legend(fontsize=7)


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _spread(rows, column) -> bool:
    vals = [r[column] for r in rows if isinstance(r.get(column), (int, float)) and r[column] > 0]
    return bool(vals) and max(vals) / min(vals) > 100


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
