"""Cascade's front and middle end: the language, the IR, its verifier and the reference interpreter.

Names are imported on first use (PEP 562), so that the command line starts without numpy or
networkx when a command does not need them.
"""
import importlib

_WHERE = {
    "CascadeError": "errors", "Diagnostic": "errors", "evaluate": "interpreter",
    "random_inputs": "interpreter", "Cascade": "ir", "Einsum": "ir", "EinsumId": "ir",
    "Role": "ir", "Loaded": "loading", "load_resolved": "loading", "parse": "parser",
    "parse_file": "parser", "format_cascade": "printer", "resolve_sizes": "sizes",
    "Analysis": "verifier", "analyze": "verifier", "verify": "verifier",
    "__version__": "version",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def load(path):
    """Parses and verifies a cascade file."""
    from .parser import parse_file
    from .verifier import verify

    cascade = parse_file(path)
    verify(cascade)
    return cascade


def loads(text: str, file: str = "<string>"):
    from .parser import parse
    from .verifier import verify

    cascade = parse(text, file)
    verify(cascade)
    return cascade


__all__ = sorted([*_WHERE, "load", "loads"])
