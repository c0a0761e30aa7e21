"""Compiler-style diagnostics: ``file:line:col: error: message``, the source line, a caret, a hint."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .ir import Span


@dataclass(frozen=True)
class Diagnostic:
    message: str
    span: Span | None = None
    hint: str | None = None

    def render(self, source: str | None = None, file: str | None = None) -> str:
        span = self.span
        if span is None:
            head = f"{file}: error: {self.message}" if file else f"error: {self.message}"
            return head + (f"\nhint: {self.hint}" if self.hint else "")
        lines = [f"{span.file}:{span.line}:{span.column}: error: {self.message}"]
        text = source_line(source, span.line)
        if text is not None:
            width = 1
            if span.end_line == span.line and span.end_column > span.column:
                width = span.end_column - span.column
            text, column = _window(_displayed(text), span.column)
            width = max(1, min(width, len(text) - column + 1))
            lines.append(f"  {text}")
            lines.append("  " + " " * (column - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


def source_lines(source: str) -> list[str]:
    """The lines of ``source`` as lark numbers them: only '\n' ends a line."""
    return source.split("\n")


def source_line(source: str | None, line: int) -> str | None:
    """Line ``line`` (1-based, lark's numbering) without its line ending, or None."""
    if source is None:
        return None
    lines = source_lines(source)
    if 1 <= line <= len(lines):
        return lines[line - 1].removesuffix("\r")
    return None


def _displayed(text: str) -> str:
    # One printable character per source character, so that the caret stays under its column.
    return "".join(c if c.isprintable() else " " for c in text)


def _window(text: str, column: int, width: int = 100) -> tuple[str, int]:
    """A long line cut to about ``width`` characters around ``column`` (1-based)."""
    if len(text) <= width:
        return text, column
    start = max(0, min(column - 1 - width // 2, len(text) - width))
    piece = text[start:start + width]
    prefix = "..." if start else ""
    suffix = "..." if start + width < len(text) else ""
    return prefix + piece + suffix, column - start + len(prefix)


class CascadeError(Exception):
    """The one error type the project raises for bad user input (cascade files, specs, options).
    ``reason``: what is refused, as data, where a caller may fall back on something else (a
    backend's enum, e.g. backends.gpu.layout.Limit); never decided from the message's words."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None,
                 source: str | None = None, file: str | None = None, *,
                 reason: Enum | None = None):
        self.diagnostic = Diagnostic(message, span, hint)
        self.source = source
        self.file = file
        self.reason = reason
        super().__init__(message)

    @property
    def message(self) -> str:
        return self.diagnostic.message

    @property
    def span(self) -> Span | None:
        return self.diagnostic.span

    @property
    def hint(self) -> str | None:
        return self.diagnostic.hint

    def with_source(self, source: str | None) -> "CascadeError":
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        return self.diagnostic.render(self.source, self.file)

    def __str__(self) -> str:
        return self.render()
