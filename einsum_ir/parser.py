"""Text to IR: the lark grammar in ``cascade.lark`` plus a transformer that builds frozen IR nodes."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import lark
from lark import Token, v_args
from lark.visitors import Transformer_NonRecursive

from .errors import CascadeError, source_line, source_lines
from .frontend import (Let, RawEinsum, Reduce, build_einsums, empty_value, refuse_reductions,
                       resolve_lets)
from .ir import (Access, Binary, Call, Cascade, Name, Num, SizeDecl, Span, Split, TensorDecl,
                 Unary)
from .resources import BuiltinKind, resolve_spec

_GRAMMAR = Path(__file__).with_name("cascade.lark")

# Limits on what a cascade file may ask of the tools. Later stages (printer, verifier,
# interpreter, analyses, code generation) walk expressions recursively, so the nesting depth of an
# expression is bounded here, once, with a located error.
MAX_DEPTH = 200
MAX_SOURCE_BYTES = 256 * 1024  # about 10,000 statements: checked in seconds
MAX_INT_LITERAL = 2 ** 63 - 1

# What the user probably meant, for the tokens lark reports as expected.
_TOKEN_WORDS = {
    "RSQB": "']'", "LSQB": "'['", "RPAR": "')'", "LPAR": "'('", "COMMA": "','", "EQUAL": "'='",
    "NAME": "a name", "NUMBER": "a number", "_NL": "end of line", "$END": "end of file",
    "STAR": "'*'", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '%'", "COMP": "a comparison",
    "WHERE": "'where'", "MINUS": "'-'", "INF": "'inf'", "SUM": "'sum'", "MAX": "'max'",
    "MIN": "'min'", "PROD": "'prod'", "NOT": "'not'", "EMPTY": "'empty'", "COLON": "':'",
}


class _BracketNewlines:
    """Post-lexer: drops newlines inside (), [] so long expressions may span lines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for token in stream:
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif token.type == "_NL" and depth > 0:
                continue
            yield token


@functools.lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    # cache=True keeps the built LALR tables in the temporary directory (start-up time).
    return lark.Lark(_GRAMMAR.read_text(), start="program", parser="lalr", cache=True,
                     propagate_positions=True, postlex=_BracketNewlines(), maybe_placeholders=True)


def _span_of(file: str, item) -> Span | None:
    if isinstance(item, Token):
        if item.line is None:
            return None
        return Span(file, item.line, item.column, item.end_line or item.line,
                    item.end_column or item.column + len(item))
    meta = getattr(item, "meta", item)
    if getattr(meta, "empty", True):
        return None
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


class _ToIR(Transformer_NonRecursive):  # iterative: deep input must not exhaust the stack
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, item) -> Span | None:
        return _span_of(self.file, item)

    # -- expressions
    def number(self, children):
        (tok,) = children
        text = str(tok)
        if not text.isdigit():
            return Num(float(text), span=self._span(tok))
        # Checked before int(): Python refuses to convert more than 4,300 digits.
        if len(text.lstrip("0")) > 19 or int(text) > MAX_INT_LITERAL:
            raise CascadeError(f"integer literal {_abbrev(text)} is too large", self._span(tok),
                               "integers must be below 2^63; write a value as a float (1e30)")
        return Num(int(text), span=self._span(tok))

    def inf(self, children):
        return Num(float("inf"), span=self._span(children[0]))

    def name(self, children):
        (tok,) = children
        return Name(str(tok), span=self._span(tok))

    @v_args(meta=True)
    def access(self, meta, children):
        name, *indices = children
        indices = tuple(i for i in indices if i is not None)
        return Access(str(name), indices, span=_span_of(self.file, meta))

    @v_args(meta=True)
    def inner_reduction(self, meta, children):
        reducer, *rest = children
        *names, body, where = rest
        return Reduce(str(reducer), tuple(str(n) for n in names), body, where,
                      span=_span_of(self.file, meta))

    def fname(self, children):
        return children[0]

    @v_args(meta=True)
    def call(self, meta, children):
        fname, *args = children
        args = tuple(a for a in args if a is not None)
        return Call(str(fname), args, span=_span_of(self.file, meta))

    @v_args(meta=True)
    def neg(self, meta, children):
        (operand,) = children
        return Unary("-", operand, span=_span_of(self.file, meta))

    @v_args(meta=True)
    def not_op(self, meta, children):
        (operand,) = children
        return Unary("not", operand, span=_span_of(self.file, meta))

    @v_args(meta=True)
    def binop(self, meta, children):
        lhs, op, rhs = children
        return Binary(str(op), lhs, rhs, span=_span_of(self.file, meta))

    compare = binop

    @v_args(meta=True)
    def and_op(self, meta, children):
        lhs, rhs = children
        return Binary("and", lhs, rhs, span=_span_of(self.file, meta))

    @v_args(meta=True)
    def or_op(self, meta, children):
        lhs, rhs = children
        return Binary("or", lhs, rhs, span=_span_of(self.file, meta))

    # -- statements
    def reducer(self, children):
        return children[0]

    @v_args(meta=True)
    def reduction(self, meta, children):
        reducer, *rest = children
        *names, body = rest
        return ("reduction", str(reducer), tuple(str(n) for n in names), body,
                [self._span(n) for n in names])

    @v_args(meta=True)
    def einsum(self, meta, children):
        output, rhs, where = children
        return RawEinsum(output, rhs, where, _span_of(self.file, meta))

    @v_args(meta=True)
    def size_item(self, meta, children):
        name, value = children
        return (str(name), value, _span_of(self.file, meta))

    def size_stmt(self, children):
        keyword, *items = children
        for _, value, _ in items:
            refuse_reductions(value, "a size")
        is_rank = str(keyword) == "rank"
        return [SizeDecl(name, value, is_rank, span=span) for name, value, span in items]

    @v_args(meta=True)
    def split_stmt(self, meta, children):
        rank, outer, inner = (str(c) for c in children)
        return [Split(rank, outer, inner, span=_span_of(self.file, meta))]

    @v_args(meta=True)
    def tensor_sig(self, meta, children):
        name, *axes, keyword, value = children
        axes = tuple(str(a) for a in axes if a is not None)
        span = _span_of(self.file, meta)
        if keyword is None:
            return TensorDecl(str(name), axes, span=span), None
        return (TensorDecl(str(name), axes, empty_value(value, self._span(keyword)), span=span),
                keyword)

    @v_args(meta=True)
    def let_stmt(self, meta, children):
        name, value = children
        return [Let(str(name), value, _span_of(self.file, meta))]

    def index_stmt(self, children):
        *names, rank = children
        out = []
        for name in names:
            if not str(name)[0].islower():
                raise CascadeError(f"index {name}: an index name is lower case", self._span(name),
                                   f"write index {str(name).lower()} : {rank}")
            out.append(SizeDecl(str(name).upper(), Name(str(rank), span=self._span(rank)), True,
                                True, span=self._span(name)))
        return out

    def tensor_stmt(self, children):
        keyword, *sigs = children
        for decl, empty in sigs:
            if empty is not None and str(keyword) == "input":
                raise CascadeError(f"input {decl.name}: only an output declares the value of its "
                                   "empty points", self._span(empty),
                                   "an input has a value at every point; remove 'empty ...'")
        return [(str(keyword), decl) for decl, _ in sigs]

    def program(self, children):
        return [c for c in children if c is not None]


def parse(text: str, file: str = "<string>", name: str | None = None) -> Cascade:
    """Parse cascade text into an (unverified) IR. Raises CascadeError on syntax errors."""
    try:
        tree = _lark().parse(text)
        _check_depth(tree, file, text)
        statements = _ToIR(file).transform(tree)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, CascadeError):
            raise exc.orig_exc.with_source(text) from None
        raise

    sizes, splits, inputs, outputs, raw, lets = [], [], [], [], [], []
    for stmt in statements:
        if isinstance(stmt, RawEinsum):
            raw.append(stmt)
            continue
        for item in stmt:
            if isinstance(item, SizeDecl):
                sizes.append(item)
            elif isinstance(item, Split):
                splits.append(item)
            elif isinstance(item, Let):
                lets.append(item)
            else:
                keyword, decl = item
                (inputs if keyword == "input" else outputs).append(decl)
    try:
        ranks = {d.name.lower() for d in sizes if d.is_rank} | {s.outer.lower() for s in splits}
        resolved = resolve_lets(lets, ranks)
        taken = {d.name for d in inputs} | {r.output.tensor for r in raw}
        einsums = [e for r in raw for e in build_einsums(r, resolved, taken)]
    except CascadeError as exc:
        raise exc.with_source(text) from None
    if name is None:
        name = Path(file).stem if file and not file.startswith("<") else "cascade"
    return Cascade(tuple(sizes), tuple(splits), tuple(inputs), tuple(outputs), tuple(einsums),
                   name=name, source=text)


def _check_depth(tree: lark.Tree, file: str, text: str) -> None:
    """Refuses an expression nested deeper than MAX_DEPTH (walked with an explicit stack)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CascadeError(f"expression nested too deeply (more than {MAX_DEPTH} levels of "
                               "operators, calls or brackets)", _span_of(file, node),
                               "split it into intermediate tensors, one Einsum each",
                               source=text, file=file)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def parse_file(path: str | Path) -> Cascade:
    """Reads (at most MAX_SOURCE_BYTES of) a UTF-8 cascade file and parses it.

    ``path`` is a file, or the name of a built-in example (``causal``).
    """
    path = Path(resolve_spec(BuiltinKind.CASCADE, str(path)))
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise CascadeError(f"no such file: {path}", hint="check the path of the cascade file",
                           file=str(path)) from None
    except IsADirectoryError:
        raise CascadeError(f"{path} is a directory, not a cascade file",
                           hint="give the path of a .ein file", file=str(path)) from None
    except OSError as exc:
        raise CascadeError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}",
                           hint="check the file's permissions", file=str(path)) from None
    return parse(decode_source(data, str(path)), str(path))


def decode_source(data: bytes, file: str) -> str:
    """Cascade text from the bytes of a file: at most MAX_SOURCE_BYTES, UTF-8."""
    if len(data) > MAX_SOURCE_BYTES:
        raise CascadeError(f"file is larger than {MAX_SOURCE_BYTES // 1024} KiB",
                           hint="a cascade file is a few lines of text; is this the right file?",
                           file=file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        text = data.decode("utf-8", "replace")
        raise CascadeError(f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}",
                           Span(file, line, column, line, column + 1),
                           "save the file as UTF-8", source=text, file=file) from None


def _abbrev(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} digits)"


def _syntax_error(exc: lark.exceptions.UnexpectedInput, text: str, file: str) -> CascadeError:
    # lark counts lines by '\n' only (not \v, \f, \r or U+2028 as str.splitlines() does).
    lines = source_lines(text)
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if line is None or line < 1 or column is None or column < 1:  # unexpected end of input
        line, column = len(lines), len(lines[-1]) + 1
    span = Span(file, line, column, line, column + 1)
    expected = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])
    words = [_TOKEN_WORDS.get(t, t.lower() if t.isupper() else repr(t)) for t in expected
             if not t.startswith("__")]
    nested = _nested_reduction(text, line, column)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        current = source_line(text, line) or ""
        char = current[column - 1] if column <= len(current) else "?"
        message = f"unexpected character {char!r}"
        hint = "names are letters, digits and '_'; operators are + - * / % and comparisons"
    elif isinstance(exc, lark.exceptions.UnexpectedEOF):
        message = "unexpected end of file"
        hint = _unbalanced(text) or "the last statement is incomplete"
    else:
        token = exc.token
        shown = "end of line" if token.type == "_NL" else (
            "end of file" if token.type == "$END" else repr(str(token)))
        message = f"unexpected {shown}"
        hint = _hint_for(token, words, text, line)
        if token.type == "$END" and _unbalanced(text):
            message, hint = "unexpected end of file", _unbalanced(text)
    if nested:
        hint = None
    if words and not nested and "is not closed" not in (hint or "") and "'=='" not in (hint or ""):
        hint = (hint + "; " if hint else "") + "expected " + ", ".join(words[:6])
    return CascadeError(message, span, nested or hint or "check the statement's syntax",
                        source=text, file=file)


def _hint_for(token: Token, words: list[str], text: str, line: int) -> str | None:
    source_line = _line(text, line)
    if token.type in ("SUM", "MAX", "MIN", "PROD") or (
            token.type == "LSQB" and any(r in source_line for r in ("sum[", "max[", "min[", "prod["))):
        return ("a reduction must be the whole right-hand side, or in parentheses inside an "
                "expression: (max[m] S[p,m])")
    if token.type == "_NL" and source_line.count("[") > source_line.count("]"):
        return "a '[' is not closed"
    if token.type == "_NL" and source_line.count("(") > source_line.count(")"):
        return "a '(' is not closed"
    if token.type == "EQUAL":
        return "use '==' to compare; '=' defines a tensor or a size"
    return None


_REDUCTION = re.compile(r"\b(sum|max|min|prod)\s*\[")


def _nested_reduction(text: str, line: int, column: int) -> str | None:
    """A reducer used inside an expression rather than as the whole right-hand side."""
    source = _line(text, line)[: max(column - 1, 0)]
    _, eq, rhs = source.partition("=")
    match = _REDUCTION.search(rhs) if eq else None
    if match and rhs[: match.start()].strip():
        return ("a reduction must be the whole right-hand side, or in parentheses inside an "
                "expression: (max[m] S[p,m])")
    return None


def _unbalanced(text: str) -> str | None:
    for opening, closing in (("[", "]"), ("(", ")")):
        if text.count(opening) > text.count(closing):
            return f"a '{opening}' is not closed"
    return None


def _line(text: str, line: int) -> str:
    return source_line(text, line) or ""
