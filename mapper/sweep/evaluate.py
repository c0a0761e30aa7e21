"""One point of a sweep to one row: the ``cascade map`` pipeline (load and resolve the cascade,
resolve the architecture with its ``--arch-set`` variables, :func:`mapper.search.search`).

This is what a Dask worker runs (:func:`run_points`). A point that cannot run (a cascade the
architecture has no unit for, a buffer no mapping fits, a size expression without a value) is a
row with ``status: error`` and the message; a point outside the spec's constraints is a row with
``status: constraint``. Constraints that depend only on the inputs and the area are checked
before the search, which they save.
"""
from __future__ import annotations

import math
import time
from functools import lru_cache

from einsum_ir.errors import CascadeError

from .points import Point
from .spec import SweepSpec, traffic_columns, unit_columns

OK, ERROR, CONSTRAINT = "ok", "error", "constraint"


class _Rejected(Exception):
    """A point outside a constraint (not an error: the spec asked to leave it out)."""


def run_points(spec: SweepSpec, points: list) -> list:
    """The rows of ``points`` (one task of the sweep)."""
    return [evaluate_point(spec, p) for p in points]


@lru_cache(maxsize=64)
def _cascade(label: str, text: str):
    from einsum_ir.parser import parse

    return parse(text, label)


@lru_cache(maxsize=256)
def _arch(path: str, overrides: tuple):
    from simulator.arch import load_arch

    return load_arch(path, dict(overrides))


def evaluate_point(spec: SweepSpec, point: Point) -> dict:
    row = point.inputs(spec)
    row.update(status=OK, error=None)
    t0 = time.perf_counter()
    try:
        _map_point(spec, point, row)
    except _Rejected as exc:
        row.update(status=CONSTRAINT, error=str(exc))
    except CascadeError as exc:
        row.update(status=ERROR, error=exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
    except Exception as exc:  # noqa: BLE001 - an internal error at one point must not end the sweep
        from simulator.counts import Infeasible

        kind = "infeasible" if isinstance(exc, Infeasible) else f"internal error: {type(exc).__name__}"
        row.update(status=ERROR, error=f"{kind}: {exc}")
    row["search_s"] = time.perf_counter() - t0
    _derive(spec, row)
    if row["status"] == OK:
        try:
            _check(spec, row, final=True)
        except _Rejected as exc:
            row.update(status=CONSTRAINT, error=str(exc))
    return row


def failed_row(spec: SweepSpec, point: Point, message: str) -> dict:
    """The row of a point that could not be evaluated at all (its worker died)."""
    row = point.inputs(spec)
    row.update(status=ERROR, error=message)
    _derive(spec, row)
    return row


def _map_point(spec: SweepSpec, point: Point, row: dict) -> None:
    from einsum_ir.loading import load_resolved
    from einsum_ir.passes import digest
    from mapper.search import search

    if point.error:
        raise CascadeError(point.error)
    arch_src = next(a for a in spec.archs if a.label == point.arch)
    overrides = tuple((n, v) for n, v in point.arch_set if n in arch_src.declared)
    arch = _arch(arch_src.path, overrides)
    row["area_mm2"] = arch.area_um2 / 1e6
    _derive(spec, row)
    _check(spec, row, final=False)
    source = next(c for c in spec.cascades if c.label == point.cascade)
    sizes = {n: v for n, v in point.sizes if n in source.declared}
    loaded = load_resolved(_cascade(source.path, source.text), sizes)
    row["cascade_digest"] = digest(loaded.cascade)
    result = search(loaded.cascade, arch, dict(loaded.overrides), objective=point.objective, top=1,
                    fusion=spec.fusion, min_parallelism=spec.min_parallelism)
    if not result.best:
        raise CascadeError(f"no mapping of {point.cascade} on {arch.name} survived re-simulation")
    mapping, report = result.best[0]
    row.update(latency_s=report.latency_s, cycles=report.cycles, energy_J=report.energy_J,
               area_mm2=report.area_mm2, form=report.form, mapping_yaml=mapping.to_yaml(),
               evaluated=result.evaluated)
    for unit in arch.units:
        row[f"util_{unit.name}"] = report.utilization.get(unit.name, 0.0)
        row[f"pe_util_{unit.name}"] = report.pe_utilization.get(unit.name, 0.0)
    for level, moved in report.traffic.items():
        row[f"traffic_{level}_bytes"] = moved


def _derive(spec: SweepSpec, row: dict) -> None:
    """The derived columns whose inputs the row has (NaN where one is missing or has no value)."""
    from simulator.spec_expr import evaluate

    env = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
           and not math.isnan(v)}
    for name, text in spec.derived:
        try:
            row[name] = float(evaluate(text, env, f"derived.{name}"))
            env[name] = row[name]
        except CascadeError:
            row[name] = math.nan


def _check(spec: SweepSpec, row: dict, final: bool) -> None:
    """Raises :class:`_Rejected` for a violated constraint; before the search (``final`` False)
    only those whose column is known are checked."""
    for c in spec.constraints:
        value = row.get(c.column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if final:
                raise _Rejected(f"constraint on {c.column}: the column has no value")
            continue
        message = c.violation(value)
        if message:
            raise _Rejected(f"constraint: {message}")


def result_columns(spec: SweepSpec) -> list:
    """The columns a row has beyond its inputs, in the table's order."""
    return (["status", "error", "latency_s", "cycles", "energy_J", "area_mm2"]
            + unit_columns(spec.units) + traffic_columns(spec.levels)
            + [n for n, _ in spec.derived]
            + ["form", "cascade_digest", "evaluated", "search_s", "mapping_yaml"])
