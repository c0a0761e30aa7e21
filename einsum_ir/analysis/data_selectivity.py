"""How often a data-dependent atom holds, where the cascade or the user says (docs/analysis.md).

* **top-k**: ``C[..] < K`` where ``C[.., v] = sum[r] A[.., r] > A[.., v]`` counts, per row, the
  entries larger (``<``: smaller) than entry ``v``: exactly ``min(K, n)`` of the ``n`` entries of a
  row hold when the values are distinct (ties keep every tied entry, so more). ``C <= K`` keeps
  ``K + 1``; ``K > C`` reads as ``C < K``. The selectivity is ``min(K, n) / n``.
* **assumed**: a density the user gives (``--density NAME=0.1``, or a real ``param
  DENSITY_NAME = 0.1`` in the cascade) for ``NAME`` a tensor the atom reads or the Einsum's
  output: the fraction of the points the atom decides where it holds.
* **unknown**: anything else; the count then takes the atom at its upper value (a bound).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from ..data_masks import reads_tensors
from ..errors import CascadeError
from ..ir import Access, Binary, Cascade, Einsum, Expr, Name, index_vars
from ..labelled import IndexEvaluator
from .data_atoms import Atom

DENSITY_PREFIX = "DENSITY_"
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Selectivity:
    kind: str  # "top-k", "assumed" or "unknown"
    density: float  # the fraction of the decided points where the atom holds (unknown: 1)
    note: str
    # top-k: the count tensor's existing entries and its dense size (to tell whether the Einsum
    # decides every entry of every row alike, which makes the count exact)
    entries: int = 0
    size: int = 0


def density_param(name: str) -> str:
    return f"{DENSITY_PREFIX}{name}"


def _constant(expr: Expr, env: Mapping[str, int]) -> int | None:
    """The value of an index-free, tensor-free expression of sizes, else None."""
    if reads_tensors(expr) or index_vars(expr):
        return None
    try:
        return int(IndexEvaluator(dict(env), {})(expr).values)
    except (CascadeError, TypeError, ValueError):
        return None


def _count_tensor(atom: Atom, env) -> tuple[Access, int] | None:
    """(the count access, K) for ``C[..] < K`` and its spellings, else None."""
    expr = atom.expr
    if not isinstance(expr, Binary) or expr.op not in _FLIP:
        return None
    op, lhs, rhs = expr.op, expr.lhs, expr.rhs
    if not isinstance(lhs, Access):
        op, lhs, rhs = _FLIP[op], rhs, lhs
    if not isinstance(lhs, Access) or op not in ("<", "<="):
        return None
    k = _constant(rhs, env)
    if k is None:
        return None
    return lhs, k + (op == "<=")


def ranked_axis(producer: Einsum) -> int | None:
    """The output axis a rank count ranks along: ``C[.., v, ..] = sum[r] A[.., r, ..] > A[.., v,
    ..]`` (or ``<``) with the two reads of ``A`` differing at one axis, ``r`` against ``v``."""
    body = producer.body
    if producer.reducer != "sum" or len(producer.reduced) != 1 or producer.where is not None:
        return None
    if not (isinstance(body, Binary) and body.op in (">", "<") and isinstance(body.lhs, Access)
            and isinstance(body.rhs, Access) and body.lhs.tensor == body.rhs.tensor):
        return None
    diff = [(a, b) for a, b in zip(body.lhs.indices, body.rhs.indices, strict=True) if a != b]
    if len(diff) != 1 or not all(isinstance(x, Name) for x in diff[0]):
        return None
    r, v = diff[0][0].name, diff[0][1].name
    if r != producer.reduced[0]:
        return None
    out = [i.name if isinstance(i, Name) else None for i in producer.output.indices]
    return out.index(v) if v in out else None


def _top_k(cascade: Cascade, atom: Atom, env, upper_out: Mapping[str, int]) -> Selectivity | None:
    found = _count_tensor(atom, env)
    if found is None:
        return None
    access, k = found
    producer = next((e for e in cascade.einsums if e.name == access.tensor), None)
    if producer is None:
        return None
    axis = ranked_axis(producer)
    if axis is None:
        return None
    others = [v for n, v in enumerate(producer.output_vars) if n != axis]
    rows = math.prod(env[v.upper()] for v in others)
    entries = upper_out.get(str(producer.id), 0)
    n = entries / rows if rows else 0.0  # entries per row
    density = min(k, n) / n if n else 0.0
    size = math.prod(env[v.upper()] for v in producer.output_vars)
    return Selectivity("top-k", density, f"top-{k} of {n:g} per row of {access.tensor}",
                       entries, size)


def _assumed(atom: Atom, env) -> Selectivity | None:
    for name in (*atom.tensors, atom.key.split(".")[0]):
        value = env.get(density_param(name))
        if value is None:
            continue
        if not 0 <= value <= 1:
            raise CascadeError(f"the density of {name} must lie in [0, 1], not {value!r}",
                               hint=f"set {density_param(name)} (or --density {name}=D) to a "
                                    "fraction")
        return Selectivity("assumed", float(value), f"density {float(value):g} of {name} (given)")
    return None


def selectivity(cascade: Cascade, atom: Atom, env, upper_out: Mapping[str, int]) -> Selectivity:
    """The atom's selectivity: a given density first, then the top-k structure, else unknown."""
    return (_assumed(atom, env) or _top_k(cascade, atom, env, upper_out)
            or Selectivity("unknown", 1.0, "no known selectivity: counted as always "
                           f"{'true' if atom.positive else 'false'} (an upper bound)"))


def with_densities(cascade: Cascade, densities: Mapping[str, float] | None) -> Cascade:
    """``cascade`` with a real parameter ``DENSITY_NAME`` for each given density (replacing a
    declared one), so that every analysis of the cascade sees the same assumptions."""
    if not densities:
        return cascade
    from dataclasses import replace

    from ..ir import Num, SizeDecl

    names = {density_param(n): float(v) for n, v in densities.items()}
    for name, value in names.items():
        if not 0 <= value <= 1:
            raise CascadeError(f"the density {name[len(DENSITY_PREFIX):]}={value!r} must lie in "
                               "[0, 1]", hint="a density is the fraction of points that hold")
    kept = tuple(d for d in cascade.sizes if d.name not in names)
    added = tuple(SizeDecl(n, Num(v), is_rank=False) for n, v in names.items())
    return replace(cascade, sizes=kept + added)
