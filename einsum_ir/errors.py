"""Compiler-style diagnostics: ``file:line:col: error: message``, the source line, a caret, a hint."""
from __future__ import annotations

from dataclasses import dataclass

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
        text = _source_line(source, span.line)
        if text is not None:
            width = 1
            if span.end_line == span.line and span.end_column > span.column:
                width = span.end_column - span.column
            lines.append(f"  {text}")
            lines.append("  " + " " * (span.column - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


def _source_line(source: str | None, line: int) -> str | None:
    if source is None:
        return None
    lines = source.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1].rstrip("\n").expandtabs(1)
    return None


class CascadeError(Exception):
    """The one error type the project raises for bad user input (cascade files, specs, options)."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None,
                 source: str | None = None, file: str | None = None):
        self.diagnostic = Diagnostic(message, span, hint)
        self.source = source
        self.file = file
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
