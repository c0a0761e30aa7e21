"""Reading YAML spec files (architectures, GPU targets, mappings) with bounded work.

A spec is small (the built-in ones are a few KB), so everything past generous limits is refused
with a :class:`CascadeError` that names the file (and the line and column where YAML knows it)
before any work is done on it:

* a file larger than ``MAX_BYTES`` (also what stops ``/dev/zero``), a directory, a file that is not
  UTF-8;
* a document of more than ``MAX_NODES`` nodes once its aliases are expanded (a "billion laughs"
  hides 10**9 nodes behind a few lines), nesting deeper than ``MAX_DEPTH`` (expanded), an alias
  inside its own anchor (a cycle no later walk of the data could finish);
* integers of more than ``MAX_INT_DIGITS`` digits, and a key given twice in one mapping (YAML keeps
  the last one silently, which hides typos).

Only PyYAML's safe tags are constructed: no Python objects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import CascadeError
from .ir import Span

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_INT_DIGITS = 64
_OTHER_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


class _LimitError(yaml.YAMLError):
    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting while composing and refuses huge integers and duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitError(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node):
        digits = str(node.value).replace("_", "").lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise ConstructorError(None, None, f"integer of {len(digits)} digits (at most "
                                   f"{MAX_INT_DIGITS})", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise ConstructorError(None, None, f"key {key_node.value!r} is given twice",
                                           key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
BoundedLoader = _BoundedLoader  # for subclasses that add tags (simulator/timeloop_yaml.py)


def _check_expanded(root: Node) -> None:
    """Counts the nodes and the depth of the document with every alias expanded (iteratively;
    memoised per node, so a billion laughs costs as much as its text)."""
    size: dict = {}
    depth: dict = {}
    on_stack: set = set()
    stack: list = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_stack.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES:
                raise _LimitError(f"more than {MAX_NODES} nodes once aliases are expanded",
                                  node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise _LimitError(f"nested deeper than {MAX_DEPTH} levels once aliases are "
                                  "expanded", node.start_mark)
            continue
        if key in size:
            continue
        on_stack.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_stack:
                raise _LimitError("an alias refers to a node that contains it", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))


def _children(node: Node) -> list:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parse_yaml(text: str, file: str, loader_class: type | None = None) -> Any:
    """The plain data (dicts, lists, scalars) of one YAML document, within the limits above.
    ``loader_class`` is a subclass of :data:`BoundedLoader` that constructs a few more tags
    (the Timeloop importer's ``!Component``); its limits are the same."""
    loader = None
    try:
        loader = (loader_class or _BoundedLoader)(text)
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expanded(root)
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _located(exc, text, file) from None
    except RecursionError:  # PyYAML's scanner and composer recurse; MAX_DEPTH should stop it first
        raise CascadeError(f"{file}: YAML refused: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _located(exc: yaml.YAMLError, text: str, file: str) -> CascadeError:
    limit = isinstance(exc, _LimitError)
    problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
    message = f"YAML refused: {problem}" if limit else f"not valid YAML: {problem}"
    hint = "spec files are small and shallow: is this the file you meant?" if limit else None
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    elif isinstance(exc, yaml.reader.ReaderError):  # a control character: only an offset is known
        before = text[:exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
    else:
        return CascadeError(f"{file}: {message}", hint=hint)
    lines = text.split("\n")
    quoted = lines[line - 1] if line <= len(lines) else ""
    # Quote the line only when it is short and plain and YAML and the renderer (str.splitlines)
    # agree on where lines break, so the caret lands under the right column of the right line.
    plain = not any(c in text for c in _OTHER_BREAKS)
    source = text if plain and len(quoted) <= 200 and quoted.isprintable() else None
    return CascadeError(message, span=Span(file, line, column, line, column + 1), source=source,
                        hint=hint)


def read_text(path: str | Path, what: str, *, hint: str | None = None,
              max_bytes: int = MAX_BYTES) -> str:
    """The text of a spec file; ``what`` ("architecture", "mapping") names it in errors."""
    path = Path(path)
    if not path.exists():
        raise CascadeError(f"no such {what} file: {path}", hint=hint)
    if path.is_dir():
        raise CascadeError(f"{path}: is a directory, not {_a(what)} file", hint=hint)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise CascadeError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise CascadeError(f"{path}: larger than {max_bytes // 1024} KiB; {_a(what)} file is a few KB",
                           hint=f"is this the {what} file you meant?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CascadeError(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})",
                           hint=f"{_a(what)} file is YAML text") from None


def load_yaml_mapping(path: str | Path, what: str, *, file: str | None = None,
                      hint: str | None = None) -> dict:
    """Reads, parses and checks that the top level is a mapping of fields."""
    file = file or str(path)
    data = parse_yaml(read_text(path, what, hint=hint), file)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise CascadeError(f"{file}: (top level): expected a mapping of fields, got {got}",
                           hint=hint or f"{_a(what)} file is a YAML mapping: `name: ...` and so on")
    return data


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
