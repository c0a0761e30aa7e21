"""Resolving rank and parameter sizes: defaults, command-line overrides, splits.

Ranks and parameters are integers, except *real parameters*: a parameter whose default has a
real literal (``param CAP = 30.0``) or uses a real parameter. Values may use them; sizes,
indices and predicates may not (``checks.py`` says where). ``--set CAP=0.5`` sets one.
"""
from __future__ import annotations
from typing import Mapping

from .errors import CascadeError
from .ir import Cascade, Expr, Name, Num, walk
from .size_exprs import to_int, to_real


def eval_int(expr: Expr, env: Mapping[str, int], *, what: str = "size") -> int:
    """Evaluates an integer expression over named integers (``/`` must divide exactly)."""
    return to_int(expr, env, what=what)


def _names_in(expr: Expr) -> set[str]:
    from .ir import walk

    return {n.name for n in walk(expr) if isinstance(n, Name)}


def real_params(cascade: Cascade) -> frozenset[str]:
    """The parameters that are real numbers (see the module docstring)."""
    real: set[str] = set()
    params = [d for d in cascade.sizes if not d.is_rank]
    changed = True
    while changed:
        changed = False
        for decl in params:
            if decl.name not in real and any(
                    (isinstance(n, Num) and isinstance(n.value, float))
                    or (isinstance(n, Name) and n.name in real) for n in walk(decl.default)):
                real.add(decl.name)
                changed = True
    return frozenset(real)


# Sizes are bounded so that products of a few of them stay exact in int64 index arithmetic.
MAX_SIZE = 2 ** 40


def resolve_sizes(cascade: Cascade, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every rank and parameter size (splits included) for the given overrides.

    Declarations may refer to each other in any order; overrides replace defaults. A split's outer
    rank is ceil(rank / inner): the last tile may be partial, its missing points are empty.
    Every size lies within +-MAX_SIZE.
    """
    try:
        return _resolve(cascade, overrides)
    except CascadeError as exc:
        raise exc.with_source(cascade.source) from None


def _check_range(name: str, value: int, decl, overridden: bool) -> None:
    if abs(value) > MAX_SIZE:
        where = f"--set {name}" if overridden else f"the size of {name}"
        raise CascadeError(f"{where}: {value} is out of range (at most 2^40 in magnitude)",
                           None if overridden else decl.span,
                           "a rank or parameter of this size cannot be evaluated or simulated")


def _resolve(cascade: Cascade, overrides: Mapping[str, int] | None) -> dict[str, int]:
    overrides = dict(overrides or {})
    known = {d.name for d in cascade.sizes} | {s.outer for s in cascade.splits}
    for name in overrides:
        if name not in known:
            raise CascadeError(f"--set {name}: no rank or parameter named {name!r}",
                               hint="known names: " + ", ".join(sorted(known)))
    for split in cascade.splits:
        if split.outer in overrides:
            raise CascadeError(f"--set {split.outer}: {split.outer} is derived from the split "
                               f"{split.rank} = {split.outer} * {split.inner}",
                               hint=f"set {split.inner} (the tile size) instead")
    real = real_params(cascade)
    _check_override_kinds(cascade, overrides, real)
    env: dict[str, int] = {}
    pending = {d.name: d for d in cascade.sizes}
    splits = list(cascade.splits)
    while pending or splits:
        progressed = False
        for name, decl in list(pending.items()):
            value = _value(decl, overrides, env, name in real)
            if value is None:
                continue
            env[name] = value
            if env[name] <= 0 and decl.is_rank:
                raise CascadeError(f"rank {name} must be positive, got {env[name]}", decl.span,
                                   "a rank is the extent of an axis: 1 or more")
            del pending[name]
            progressed = True
        for split in list(splits):
            if split.rank in env and split.inner in env:
                env[split.outer] = -(-env[split.rank] // env[split.inner])  # exact ceil
                splits.remove(split)
                progressed = True
        if not progressed:
            decl = next(iter(pending.values()), None)
            if decl is not None:
                missing = sorted(_names_in(decl.default) - env.keys() - pending.keys()
                                 - {s.outer for s in splits})
                if missing:
                    raise CascadeError(f"unknown size {missing[0]!r} in the size of {decl.name}",
                                       decl.span, "declare it with 'rank' or 'param'")
                raise CascadeError(f"the size of {decl.name} depends on itself", decl.span,
                                   "size declarations must not form a cycle")
            split = splits[0]
            raise CascadeError(f"split {split.rank} = {split.outer} * {split.inner}: "
                               f"{split.rank} or {split.inner} is not a declared rank", split.span,
                               "declare both with 'rank'")
    _check_index_ranks(cascade, overrides, env)
    return env


def _check_index_ranks(cascade: Cascade, overrides: Mapping, env: Mapping) -> None:
    """An ``index`` rank has the extent of the rank it indexes: an override may only repeat it
    (a caller passing every resolved size back does)."""
    for decl in cascade.sizes:
        if decl.index_of and decl.name in overrides and env[decl.name] != env[decl.default.name]:
            raise CascadeError(f"--set {decl.name}: {decl.name.lower()} is declared as a second "
                               f"index over {decl.default.name}, which gives its extent",
                               hint=f"set {decl.default.name} instead")


def _value(decl, overrides: Mapping, env: Mapping, real: bool) -> int | float | None:
    """A size's value: its override, else its default once the names it uses are known."""
    name = decl.name
    if name in overrides:
        value = float(overrides[name]) if real else int(overrides[name])
    elif _names_in(decl.default) <= env.keys():
        value = to_real(decl.default, env) if real else eval_int(decl.default, env)
    else:
        return None
    if not real:
        _check_range(name, value, decl, name in overrides)
    return value


def _check_override_kinds(cascade: Cascade, overrides: Mapping, real: frozenset[str]) -> None:
    """A real value only for a real parameter."""
    for name, value in overrides.items():
        if isinstance(value, float) and name not in real:
            raise CascadeError(f"--set {name}={value!r}: {name} is an integer size",
                               hint=f"give an integer; a parameter declared with a real literal "
                                    f"(param {name} = {value!r}) takes reals")
