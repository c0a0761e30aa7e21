"""Reading Timeloop v0.4 YAML: the ``!Container``/``!Component`` tags, safely.

Timeloop's architecture trees tag their nodes (``- !Component {name: mac, ...}``). PyYAML's safe
loader refuses every tag it does not know, with a message that says nothing about where in the
tree it was; here the tree's tags become :class:`Tagged` values and *every other* tag (a typo such
as ``!Componnet``, or ``!!python/object/apply:os.system``) becomes a :class:`Tagged` too, which
:func:`refuse_unknown_tags` turns into a :class:`CascadeError` naming the field path and the line.
Nothing but plain data is ever constructed; the size limits are those of ``einsum_ir.yaml_io``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, SequenceNode

from einsum_ir.errors import CascadeError
from einsum_ir.spec_fields import SpecFile
from einsum_ir.yaml_io import BoundedLoader, parse_yaml, read_text

# Timeloop v0.4: leaves are nouns, branches adjectives.
LEAF_TAGS = ("!Component", "!Container", "!Nothing")
BRANCH_TAGS = ("!Hierarchical", "!Parallel", "!Pipelined")
KNOWN_TAGS = LEAF_TAGS + BRANCH_TAGS


@dataclass(frozen=True)
class Tagged:
    """A tagged YAML node: its tag, its plain content and the line it starts on (1-based)."""

    tag: str
    body: Any
    line: int


class _TimeloopLoader(BoundedLoader):
    """The bounded safe loader, with every tag constructed as inert :class:`Tagged` data."""


def _construct_tagged(loader: _TimeloopLoader, node) -> Tagged:
    if isinstance(node, MappingNode):
        body: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, SequenceNode):
        body = loader.construct_sequence(node, deep=True)
    else:
        body = loader.construct_scalar(node)
    return Tagged(node.tag, body, node.start_mark.line + 1)


for _tag in KNOWN_TAGS:
    _TimeloopLoader.add_constructor(_tag, _construct_tagged)
# Any other tag (None is PyYAML's "no constructor" slot): inert data, refused by path below.
_TimeloopLoader.add_constructor(None, _construct_tagged)


def load_timeloop_yaml(path, what: str, file: str) -> dict:
    """The top-level mapping of a Timeloop YAML file; no tag outside :data:`KNOWN_TAGS`."""
    data = parse_yaml(read_text(path, what), file, _TimeloopLoader)
    spec = SpecFile(file)
    if not isinstance(data, dict):
        raise spec.err("", "expected a mapping of top-level keys (architecture:, ERT:, ...)")
    refuse_unknown_tags(spec, data, "")
    return data


def _shown(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def refuse_unknown_tags(spec: SpecFile, value, path: str) -> None:
    """Walks plain data; a tag Timeloop does not define is an error at its field path."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, Tagged):
            if item.tag not in KNOWN_TAGS:
                unsafe = "python/" in item.tag
                raise spec.err(where or "(top level)", f"unknown tag {_shown(item.tag)} (line {item.line})",
                               hint="Python object tags are never constructed" if unsafe else
                               "Timeloop v0.4 tags: " + ", ".join(KNOWN_TAGS))
            stack.append((item.body, where))
        elif isinstance(item, dict):
            stack.extend(reversed([(v, f"{where}.{k}" if where else str(k)) for k, v in item.items()]))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{where}[{i}]") for i, v in enumerate(item)]))


def is_timeloop_text(text: str) -> bool:
    """Whether a spec file is a Timeloop design (a top-level ``architecture:`` key), not Cascade's."""
    return any(line.startswith("architecture:") for line in text.splitlines())


def looks_like_timeloop(path) -> bool:
    try:
        return is_timeloop_text(read_text(path, "architecture"))
    except CascadeError:  # unreadable: the native loader reports it
        return False
