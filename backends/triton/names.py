"""Identifiers and text in generated modules: nothing from the input reaches them unescaped.

Every identifier of a generated module is allocated here. The fixed names of the generated code
(``tl``, ``torch``, ``grid``, ``sizes``, ``it``...), Python's keywords and builtins are reserved up
front; a name derived from the cascade (``offs_p``, ``Q_ptr``, ``qk``) is the preferred spelling
when it is free and gets a numeric suffix (``tl_1``, ``lambda_1``) when it is not. Names are
allocated by *key* (``("ptr", "Q")``), so a user tensor called ``offs_p`` and the offsets of
index ``p`` are different keys and never the same identifier, whatever the grammar accepts.

Text from the input (the cascade's name is its file stem, a GPU spec's ``name:`` is free text)
only appears in comments rendered by :func:`comment_lines` or in literals made by ``repr()``.
"""
from __future__ import annotations

import builtins
import keyword

# names the generated code spells itself (module globals, launcher locals, loop counter, kernels)
GENERATED = frozenset({
    "tl", "triton", "torch", "os", "math", "forward", "CONFIG", "BAKED_SIZES", "FIXED_BLOCKS",
    "_shape", "_nsplit", "_derive", "_sm_count", "cfg", "sizes", "device", "dtype", "grid",
    "steps", "nsplit", "tensors", "config", "it", "pid_r", "pid_b", "_phase0", "_phase1",
    "_phase_increments", "_phase_steps",
})
RESERVED = (GENERATED | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)
            | frozenset(dir(builtins)))


def identifier(hint: str) -> str:
    """``hint`` as a Python identifier (letters, digits and ``_``; never empty or digit-first)."""
    out = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in hint)
    if not out or out[0].isdigit():
        out = "t" + out
    return out


def _free(hint: str, *taken: set) -> str:
    name = identifier(hint)
    if not any(name in t for t in taken):
        return name
    n = 1
    while any(f"{name}_{n}" in t for t in taken):
        n += 1
    return f"{name}_{n}"


class Namespace:
    """The identifiers of one generated module.

    Keyed names (kernel arguments, offsets, block sizes, launcher variables) are the same in every
    kernel; locals (:meth:`scope`) are unique within their kernel and never equal a keyed name.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set(RESERVED)
        self._any_local: set[str] = set()
        self._keyed: dict = {}

    def keyed(self, key: tuple, preferred: str) -> str:
        if key not in self._keyed:
            name = _free(preferred, self._taken, self._any_local)
            self._taken.add(name)
            self._keyed[key] = name
        return self._keyed[key]

    # the categories of keyed names
    def ptr(self, tensor: str) -> str:
        return self.keyed(("ptr", tensor), f"{tensor}_ptr")

    def stride(self, tensor: str, axis: int) -> str:
        return self.keyed(("stride", tensor, axis), f"stride_{tensor}_{axis}")

    def size(self, name: str) -> str:
        return self.keyed(("size", name), name)

    def offs(self, var: str) -> str:
        return self.keyed(("offs", var), f"offs_{var}")

    def idx(self, var: str) -> str:
        return self.keyed(("idx", var), f"{var}_idx")

    def block(self, rank: str) -> str:
        return self.keyed(("block", rank), f"BLOCK_{rank}")

    def even(self, rank: str) -> str:
        return self.keyed(("even", rank), f"EVEN_{rank}")

    def tensor(self, name: str) -> str:
        """The launcher's variable holding tensor ``name``."""
        return self.keyed(("tensor", name), name)

    def scope(self) -> Scope:
        return Scope(self)


class Scope:
    """The locals of one kernel."""

    def __init__(self, names: Namespace) -> None:
        self._names = names
        self._taken: set[str] = set()

    def fresh(self, hint: str) -> str:
        name = _free(hint.lower(), self._names._taken, self._taken)
        self._taken.add(name)
        self._names._any_local.add(name)
        return name


def comment_safe(text: str) -> str:
    """``text`` on one line with every non-printable character escaped (as ``repr`` does)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def comment_lines(text: str, indent: str = "") -> list[str]:
    """``text`` as ``#`` comment lines: no line break or control character survives."""
    return [f"# {indent}{comment_safe(line)}".rstrip() for line in text.splitlines()] or ["#"]
