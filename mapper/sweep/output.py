"""The results table: its columns, streaming it to Parquet or CSV, and reading it back.

Rows are appended as they arrive to ``NAME.partial.parquet`` (or ``.csv``) next to ``OUT`` (a Parquet row group, or CSV lines, per
task); :meth:`ResultWriter.close` (also on Ctrl-C) adds the rows kept from an earlier run,
drops duplicate point ids, sorts by point id and replaces ``OUT`` atomically, so ``OUT`` is
always a whole, valid file, and the same whatever the number of workers.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from einsum_ir.errors import CascadeError

from .evaluate import result_columns
from .spec import SweepSpec

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_STRINGS = {"cascade", "arch", "workload", "objective", "status", "error", "form", "cascade_digest",
            "mapping_yaml"}
_INTEGERS = {"point_id", "evaluated"}


def output_format(path: str | Path, option: str = "-o") -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise CascadeError(f"{option} {path}: the results file must end in .parquet or .csv".lstrip())
    return fmt


def pyarrow():
    try:
        import pyarrow as pa
    except ImportError:
        raise CascadeError("cascade sweep needs pyarrow",
                           hint="pip install 'cascade-einsum[sweep]' (dask[distributed], pyarrow)") from None
    return pa


def schema(spec: SweepSpec):
    """The table's columns: point id, inputs, status, results, derived columns, the mapping."""
    pa = pyarrow()
    names = ["point_id", "cascade", "arch"] + (["workload"] if spec.workloads else []) + ["objective"]
    names += [a.name for a in spec.axes if a.kind == "arch"]
    sizes = [a.name for _, axes in spec.workloads for a in axes] + [a.name for a in spec.axes if a.kind == "size"]
    names += list(dict.fromkeys(sizes))
    names += result_columns(spec)
    # integer columns: sizes, and architecture variables whose values are all integers
    size_set = set(sizes) | {a.name for a in spec.axes if a.kind == "arch" and a.values
                             and all(isinstance(v, int) for v in a.values)}

    def kind(name):
        if name in _STRINGS:
            return pa.string()
        if name in _INTEGERS or name in size_set:
            return pa.int64()
        return pa.float64()

    return pa.schema([(n, kind(n)) for n in names],
                     metadata={"cascade.sweep": spec.name, "cascade.axes": ",".join(axis_columns(spec))})


def axis_columns(spec: SweepSpec) -> list:
    """The columns that are axes of the sweep (more than one value; not an expression)."""
    out = [name for name, n in (("cascade", len(spec.cascades)), ("arch", len(spec.archs)),
                                ("workload", len(spec.workloads))) if n > 1]
    out += [a.name for a in spec.axes if len(a.values) > 1]
    return out + (["objective"] if len(spec.objectives) > 1 else [])


def _clean(row: dict, sch) -> dict:
    """A row as the schema's types: NaN or a fraction in an integer column is null."""
    pa = pyarrow()
    out = {}
    for f in sch:
        v = row.get(f.name)
        if pa.types.is_integer(f.type) and v is not None and (
                isinstance(v, float) and (math.isnan(v) or v != int(v))):
            v = None
        out[f.name] = int(v) if pa.types.is_integer(f.type) and v is not None else v
    return out


def read_results(path: str | Path, sch=None):
    """The table in a results file (Parquet or CSV); with ``sch`` its columns must be those."""
    pa = pyarrow()
    path = Path(path)
    fmt = output_format(path, "")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            types = {f.name: f.type for f in sch} if sch is not None else None
            table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(newlines_in_values=True),
                                  convert_options=pcsv.ConvertOptions(column_types=types))
    except (OSError, pa.ArrowException) as exc:
        raise CascadeError(f"{path}: cannot read the results: {exc}") from None
    if sch is not None:
        missing = [n for n in sch.names if n not in table.column_names]
        extra = [n for n in table.column_names if n not in sch.names]
        if missing or extra:
            raise CascadeError(f"{path}: its columns are not this sweep's ("
                               + ", ".join([f"missing {n}" for n in missing[:3]]
                                           + [f"extra {n}" for n in extra[:3]]) + ")",
                               hint="write the results to a new file, or remove this one")
        table = table.select(sch.names).cast(sch)
    return table


class ResultWriter:
    """Streams rows to ``path``.partial; :meth:`close` writes ``path`` sorted by point id."""

    def __init__(self, path: str | Path, sch, kept=None):
        pa = pyarrow()
        self.path = Path(path)
        self.format = output_format(self.path)
        self.schema = sch
        self.kept = kept if kept is not None else sch.empty_table()
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
        self.rows = 0
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.partial, sch)
            else:
                import pyarrow.csv as pcsv

                self._writer = pcsv.CSVWriter(self.partial, sch)
        except (OSError, pa.ArrowException) as exc:
            raise CascadeError(f"-o {self.path}: cannot write: {exc}") from None

    def write(self, rows: list) -> None:
        if not rows:
            return
        pa = pyarrow()
        self._writer.write_table(pa.Table.from_pylist([_clean(r, self.schema) for r in rows],
                                                      schema=self.schema))
        self.rows += len(rows)

    def close(self) -> int:
        """Finishes the file; returns the number of rows in it."""
        pa = pyarrow()
        self._writer.close()
        new = read_results(self.partial, self.schema)
        table = pa.concat_tables([self.kept, new]) if len(self.kept) else new
        table = _sorted_unique(table)
        tmp = self.path.with_name(f"{self.path.stem}.tmp{self.path.suffix}")
        if self.format == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp)
        os.replace(tmp, self.path)
        self.partial.unlink(missing_ok=True)
        return len(table)


def _sorted_unique(table):
    """Rows sorted by point id, the first row of each id kept (a re-run task's rows are equal)."""
    import numpy as np

    table = table.sort_by([("point_id", "ascending")])
    ids = table.column("point_id").to_numpy()
    if len(ids) < 2:
        return table
    keep = np.concatenate([[True], ids[1:] != ids[:-1]])
    return table.filter(keep) if not keep.all() else table
