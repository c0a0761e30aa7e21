"""Running a sweep: points grouped into tasks, run in-process or on Dask, streamed to the file.

* In-process (``workers=0``, or a small sweep when no worker count is given).
* A Dask ``LocalCluster`` of ``workers`` processes (one thread each: the mapper is numpy-bound
  and holds the GIL between its vectorised steps).
* An existing cluster (``scheduler="tcp://HOST:PORT"``, or a ``client``); its workers must be
  able to import this package (the spec itself, with the cascades' text, travels with each task).

A bounded number of tasks is in flight at a time, so a sweep of a million points is generated as
it runs. A worker that dies takes its running task with it; the scheduler runs the task again
elsewhere, and only a finished task's rows are written, so no point is lost or written twice
(the writer also drops a repeated point id). Ctrl-C stops the sweep and leaves a valid file.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from einsum_ir.errors import CascadeError

from .evaluate import OK, failed_row, run_points
from .output import ResultWriter, read_results, schema
from .points import count_points, iter_points
from .spec import SweepSpec

SMALL = 16  # points: below this, with no worker count given, the sweep runs in-process
MAX_CHUNK = 16


@dataclass(frozen=True)
class Summary:
    points: int  # in the spec
    skipped: int  # already in the file (--resume)
    computed: int  # rows written by this run
    rows: int  # rows in the file now
    errors: int  # of the rows computed, those not ok (errors and constraint misses)
    seconds: float
    workers: int  # 0: in-process
    interrupted: bool = False
    killed_tasks: int = 0  # tasks given up by the scheduler after their workers died (split or failed)

    @property
    def rate(self) -> float:
        return self.computed / self.seconds if self.seconds else 0.0


def run_sweep(spec: SweepSpec, out: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, client=None, resume: bool = False,
              progress: bool = True, chunk: int | None = None,
              on_task: Callable[[list], None] | None = None) -> Summary:
    """Runs every point of ``spec`` not yet in ``out`` (with ``resume``); returns a summary."""
    t0 = time.perf_counter()
    sch = schema(spec)
    total = count_points(spec)
    kept, done = _previous(spec, Path(out), sch, total) if resume else (None, {})
    todo = total - len(done)
    local = client is None and scheduler is None and (workers == 0 or (workers is None and todo <= SMALL))
    counts = {"rows": 0, "errors": 0, "workers": 0, "killed": 0}
    interrupted = False
    with _dask_client(None if local or todo == 0 else (workers, scheduler, client)) as dask:
        writer = ResultWriter(out, sch, kept)  # after connecting: a cluster that is not there writes nothing
        bar = _bar(progress, todo, spec.name)

        def take(rows):
            writer.write(rows)
            counts["rows"] += len(rows)
            counts["errors"] += sum(r["status"] != OK for r in rows)
            if bar is not None:
                bar.update(len(rows))
            if on_task is not None:
                on_task(rows)

        points = (p for p in iter_points(spec) if p.id not in done)
        try:
            if dask is None:
                for task in _chunks(points, chunk or 1):
                    take(run_points(spec, task))
            else:
                counts["workers"] = max(1, len(dask.scheduler_info().get("workers", {})))
                _on_dask(spec, dask, points, todo, take, counts["workers"], chunk, counts)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
            rows = writer.close()
    return Summary(total, len(done), counts["rows"], rows, counts["errors"],
                   time.perf_counter() - t0, counts["workers"], interrupted, counts["killed"])


def _bar(progress: bool, todo: int, name: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=todo, desc=name, unit="point", smoothing=0.1)


def _previous(spec: SweepSpec, out: Path, sch, total: int) -> tuple:
    """(the rows already in ``out``, {point id: True}), after checking they are this spec's."""
    if not out.exists():
        return None, {}
    table = read_results(out, sch)
    ids = table.column("point_id").to_pylist()
    if ids and (min(ids) < 0 or max(ids) >= total):
        raise CascadeError(f"{out}: point ids up to {max(ids)}, but the sweep has {total} points",
                           hint="the spec changed: write the results to a new file")
    inputs = [n for n in sch.names if n in _input_names(spec)]
    rows = {r["point_id"]: r for r in table.select(inputs).to_pylist()}
    for point in iter_points(spec):
        have = rows.get(point.id)
        if have is None:
            continue
        want = point.inputs(spec)
        for name in inputs:
            a, b = have.get(name), want.get(name)
            if a != b and not (_nan(a) and _nan(b)) and not (a is None and _nan(b)):
                raise CascadeError(f"{out}: point {point.id} has {name} = {a!r} but the spec gives "
                                   f"{b!r}", hint="the spec changed: write the results to a new file")
    return table, dict.fromkeys(rows, True)


def _input_names(spec: SweepSpec) -> set:
    names = {"point_id", "cascade", "arch", "workload", "objective"}
    return names | {a.name for a in spec.axes} | {a.name for _, axes in spec.workloads for a in axes}


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _chunks(points, size: int):
    while True:
        task = list(itertools.islice(points, size))
        if not task:
            return
        yield task


@contextlib.contextmanager
def _dask_client(options):
    """A Dask client for ``options`` = (workers, scheduler, client), or None (in-process)."""
    if options is None:
        yield None
        return
    workers, scheduler, client = options
    if client is not None:
        yield client
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CascadeError("running a sweep on workers needs dask.distributed",
                           hint="pip install 'cascade-einsum[sweep]', or run in-process with "
                                "--workers 0") from None
    if scheduler is not None:
        with _connect(Client, scheduler) as own:
            yield own
        return
    import logging

    with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as own:
        yield own


def _on_dask(spec, client, points, todo: int, take, n: int, chunk, counts: dict) -> None:
    """Runs the points as tasks of ``chunk`` points, at most ``4 n`` in flight. A task whose
    workers died more often than the scheduler allows (``KilledWorker``: a point that crashes
    its worker, out of memory say) is split into one task per point; a single point that does
    it is a row with the error."""
    from distributed import KilledWorker, as_completed

    size = chunk or max(1, min(MAX_CHUNK, math.ceil(todo / (4 * n))))
    tasks = _chunks(points, size)
    window, pending = as_completed(), {}

    def submit(task):
        future = client.submit(run_points, spec, task, pure=False)
        pending[future.key] = task
        window.add(future)

    for task in itertools.islice(tasks, 4 * n):
        submit(task)
    for future in window:
        task = pending.pop(future.key)
        try:
            rows = future.result()
        except KilledWorker as exc:
            counts["killed"] += 1
            if len(task) > 1:
                for point in task:
                    submit([point])
                continue
            rows = [failed_row(spec, task[0], f"the worker running this point died ({exc})")]
        take(rows)
        future.release()  # its rows are written: a worker that dies later need not redo it
        nxt = next(tasks, None)
        if nxt is not None:
            submit(nxt)


def _connect(Client, address: str):
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise CascadeError(f"--scheduler {address}: cannot connect to the Dask scheduler: {exc}",
                           hint="start one with `dask scheduler` (and `dask worker ADDRESS`), "
                                "or leave --scheduler out for a local cluster") from None
