"""Where the built-in files live: accelerator specs, GPU targets and example cascades.

In a checkout (run with ``PYTHONPATH=.`` or installed editable) they are the repository's
``examples/`` folder. A wheel carries the same files as the data package ``cascade_examples``
(pyproject.toml maps that package name onto ``examples/``), installed next to ``einsum_ir``.
Both layouts put the folder beside this package, so the lookup is a sibling path: it needs no
import machinery, and a checkout never reads another checkout's files through an editable
install's finder.
"""
from __future__ import annotations

import enum
import functools
from pathlib import Path

from .errors import CascadeError

# Sibling folders of einsum_ir/ that hold the built-ins: an installed wheel, then a checkout.
_ROOTS = ("cascade_examples", "examples")


class BuiltinKind(enum.Enum):
    """A kind of built-in file: its folder, its suffix, what to call it and how to use it."""

    ARCH = ("archs", ".yaml", "accelerator spec", "cascade simulate FILE --arch {name}")
    GPU = ("gpus", ".yaml", "GPU target", "cascade compile FILE --arch {name}")
    CASCADE = ("attention", ".ein", "example cascade", "cascade check {name}")

    def __init__(self, folder: str, suffix: str, noun: str, usage: str):
        self.folder = folder
        self.suffix = suffix
        self.noun = noun
        self.usage = usage

    @property
    def with_article(self) -> str:
        return ("an " if self.noun[0] in "aeiou" else "a ") + self.noun


@functools.cache
def data_root() -> Path:
    """The folder holding ``archs/``, ``gpus/`` and ``attention/``."""
    return find_data_root(Path(__file__).resolve().parent.parent)


def find_data_root(base: Path) -> Path:
    """The built-ins' folder among the siblings of einsum_ir/ in ``base`` (a checkout or site-packages)."""
    candidates = [base / name for name in _ROOTS]
    for root in candidates:
        if all((root / kind.folder).is_dir() for kind in BuiltinKind):
            return root
    return candidates[-1]  # a broken install: reading a file then fails with the path it tried


def builtin_dir(kind: BuiltinKind) -> Path:
    return data_root() / kind.folder


def builtin_names(kind: BuiltinKind) -> tuple[str, ...]:
    """The names of the built-ins of one kind, sorted (``fusemax``, ``flat``, ...)."""
    folder = builtin_dir(kind)
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.stem for p in folder.glob(f"*{kind.suffix}")))


def builtin_path(kind: BuiltinKind, name: str) -> Path:
    """The file of the built-in ``name``; a located error naming the built-ins if there is none."""
    if name not in builtin_names(kind):
        _refuse_other_kind(kind, name)
        raise CascadeError(f"no built-in {kind.noun} {name!r}",
                           hint=f"built-ins: {', '.join(builtin_names(kind)) or '(none found)'}")
    return builtin_dir(kind) / f"{name}{kind.suffix}"


def resolve_spec(kind: BuiltinKind, spec: str) -> Path:
    """``spec`` as a path, or the built-in of this kind it names (``fusemax``, ``h100``, ``causal``).

    A bare name (no folder, no suffix) that is not a file is looked up among the built-ins, case
    insensitively; one that names a built-in of another kind is refused with a message saying which
    command takes it. Anything else comes back as a path for the caller to open (and report).
    """
    path = Path(spec)
    if path.exists() or spec != path.name or path.suffix:
        return path
    name = spec.lower()
    if name in builtin_names(kind):
        return builtin_dir(kind) / f"{name}{kind.suffix}"
    _refuse_other_kind(kind, name)
    return path


def _refuse_other_kind(kind: BuiltinKind, name: str) -> None:
    for other in BuiltinKind:
        if other is not kind and name in builtin_names(other):
            raise CascadeError(f"{name} is {other.with_article}; use it with `{other.usage.format(name=name)}`",
                               hint=f"{kind.noun}s: {', '.join(builtin_names(kind))}")
