"""Design-space sweeps: many (cascade, architecture, sizes, objective) points, each mapped by the
mapper, run in-process or on Dask, streamed to a Parquet or CSV file.

* :mod:`mapper.sweep.spec`: the sweep spec (YAML), validated with path-addressed errors.
* :mod:`mapper.sweep.points`: the axes expanded into numbered points.
* :mod:`mapper.sweep.evaluate`: one point through the mapper (the ``cascade map`` pipeline) to a row.
* :mod:`mapper.sweep.output`: the table's columns, the streaming writers, reading a file back.
* :mod:`mapper.sweep.run`: tasks, in-process or on a Dask cluster, progress, resume.
* :mod:`mapper.sweep.pareto`: Pareto fronts over result columns; :mod:`mapper.sweep.plots`: figures.

Dask and pyarrow (the ``sweep`` extra) are imported only when a sweep runs.
"""
