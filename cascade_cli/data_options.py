"""Options of ``cascade work``, ``simulate`` and ``map`` for data-dependent masks and gathers:
``--density NAME=D`` (the selectivity of a mask the cascade cannot tell) and, for ``work``,
``--inputs IN.npz`` (count exactly on those values); and the lines that say how each
data-dependent count was made (docs/analysis.md)."""
from __future__ import annotations

import argparse

from einsum_ir.errors import CascadeError

from .options import parse_assignments


def add_density_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--density", action="append", metavar="NAME=D", default=[],
                        help="the fraction of points a data-dependent mask keeps, for a mask "
                        "tensor or masked Einsum NAME (repeatable), e.g. --density Adj=0.1; as "
                        "param DENSITY_NAME in the cascade")


def apply_densities(cascade, items: list[str]):
    """``cascade`` with the densities of ``--density`` as ``DENSITY_`` parameters; a name that
    no data-dependent mask reads or masks is an error."""
    from einsum_ir.analysis.data_atoms import atoms_of
    from einsum_ir.analysis.data_selectivity import with_densities

    densities = parse_assignments(items, "--density")
    if not densities:
        return cascade
    names = {n for e in cascade.einsums for a in atoms_of(e) for n in (*a.tensors, e.name)}
    for name in densities:
        if name not in names:
            raise CascadeError(f"--density {name}: no data-dependent mask reads or masks {name}",
                               hint="masks: " + (", ".join(sorted(names)) or "none"))
    return with_densities(cascade, densities)


def count_lines(kinds: dict, upper: dict, notes: dict, points: dict) -> list[str]:
    """How each data-dependent count was made: its kind, the bound where it differs, what it
    assumed; empty for a cascade without data-dependent parts."""
    lines = []
    for key, kind in kinds.items():
        if kind == "exact" and not notes.get(key):
            continue
        bound = upper.get(key)
        text = f"  {key}: {kind}"
        if bound is not None and bound != points.get(key):
            text += f" (upper bound {bound:,})"
        own = [n for n in notes.get(key, []) if " from " not in n or n.startswith("gather")]
        if own:
            text += "; " + "; ".join(own)
        lines.append(text)
    if not lines:
        return []
    return ["data-dependent counts (exact; gather: exact; top-k: exact for distinct values; "
            "assumed: from a given density or independent selections; bound: an upper bound, "
            "the data-dependent conditions taken as true):", *lines]
