"""Cascade's front and middle end: the language, the IR, its verifier and the reference interpreter."""
from .errors import CascadeError, Diagnostic
from .interpreter import evaluate, random_inputs
from .ir import Cascade, Einsum, EinsumId, Role
from .loading import Loaded, load_resolved
from .parser import parse, parse_file
from .printer import format_cascade
from .sizes import resolve_sizes
from .verifier import Analysis, analyze, verify


def load(path) -> Cascade:
    """Parses and verifies a cascade file."""
    cascade = parse_file(path)
    verify(cascade)
    return cascade


def loads(text: str, file: str = "<string>") -> Cascade:
    cascade = parse(text, file)
    verify(cascade)
    return cascade


__all__ = ["Analysis", "Cascade", "CascadeError", "Diagnostic", "Einsum", "EinsumId", "Loaded",
           "Role", "analyze", "evaluate", "format_cascade", "load", "load_resolved", "loads",
           "parse", "parse_file", "random_inputs", "resolve_sizes", "verify"]
