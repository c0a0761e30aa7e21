"""A Timeloop v0.4 architecture tree, flattened into its leaves in hierarchy order.

``architecture: {version: 0.4, nodes: [...]}`` is a ``!Hierarchical`` list: each node is inside
the ones before it. A ``!Container`` or ``!Component`` with ``spatial: {meshX, meshY}`` has that
many instances, and so does everything after it; a container's attributes are inherited by the
leaves after it (as Timeloop's front end does). A ``!Parallel`` branch's children sit side by
side: each starts from the same fan-out, and what follows the branch is not inside them. Each
leaf keeps its field path, so every later error names it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from einsum_ir.spec_fields import Quantity, SpecFile

from .spec_expr import evaluate
from .timeloop_yaml import BRANCH_TAGS, Tagged

# Component classes by the substring of `class` (Timeloop's front end does the same).
STORAGE_CLASSES = ("dram", "sram", "regfile", "smartbuffer", "storage", "buffet")
COMPUTE_CLASSES = ("mac", "compute")
NETWORK_CLASSES = ("noc", "legacy", "reductiontree", "multicast", "router", "network")

_COMPONENT = {"name", "class", "subclass", "attributes", "spatial", "constraints",
              "sparse_optimizations", "required_actions", "area_share", "enabled"}
_CONTAINER = {"name", "attributes", "spatial", "constraints", "networks", "sparse_optimizations"}
_NOTHING = {"name", "class", "attributes", "spatial", "constraints"}
MESH = Quantity(1, 2 ** 16, "instances", integer=True)


@dataclass(frozen=True)
class Leaf:
    """One component or container: ``kind`` is storage, compute, network, nothing or container."""

    kind: str
    name: str
    cls: str
    path: str
    line: int
    attributes: dict  # its own, over those inherited from the containers before it
    mesh: tuple  # (meshX, meshY) accumulated from the root, this leaf included
    fanouts: tuple  # (leaf name, meshX, meshY) of every leaf above with a spatial fan-out
    constrained: bool  # declares constraints (keep/bypass, factors) the importer drops
    networks: bool  # a container declaring networks (not modelled)
    parallel: str = ""  # the path of the !Parallel branch it is a child of ("" if none)

    @property
    def instances(self) -> int:
        return self.mesh[0] * self.mesh[1]


@dataclass(frozen=True)
class _State:
    mesh: tuple = (1, 1)
    fanouts: tuple = ()
    inherited: tuple = ()  # (key, value) pairs of container attributes
    parallel: str = ""  # the !Parallel branch being walked


class TreeReader(SpecFile):
    """Walks the tree of one file; ``env`` holds the file's ``variables``."""

    def __init__(self, file: str, env: dict):
        super().__init__(file)
        self.env = env
        self.leaves: list = []
        self.notes: list = []

    def walk(self, nodes, path: str, state: _State = _State()) -> _State:
        if not isinstance(nodes, list):
            raise self.err(path, "expected a list of nodes (- !Component ..., - !Container ...)")
        for i, node in enumerate(nodes):
            state = self._node(node, f"{path}[{i}]", state)
        return state

    def _node(self, node, path: str, state: _State) -> _State:
        if not isinstance(node, Tagged):
            raise self.err(path, "expected a tagged node (!Component, !Container, !Parallel, ...)",
                           hint="write `- !Component` before the node's fields")
        if node.tag in BRANCH_TAGS:
            body = self.mapping(node.body, path, "!Parallel {nodes: [...]}")
            self.keys(body, path, {"nodes"}, ("nodes",))
            if node.tag != "!Parallel":  # hierarchical (and pipelined): one inside the next
                if node.tag == "!Pipelined":
                    self.notes.append(f"{path}: !Pipelined read as !Hierarchical (the model has "
                                      "no pipelined branches)")
                return self.walk(body["nodes"], f"{path}.nodes", state)
            inside = _State(state.mesh, state.fanouts, state.inherited, path)
            for j, child in enumerate(body["nodes"] if isinstance(body["nodes"], list) else []):
                self._node(child, f"{path}.nodes[{j}]", inside)
            if not isinstance(body["nodes"], list):
                self.walk(body["nodes"], f"{path}.nodes", state)  # reports the type
            return state
        return self._leaf(node, path, state)

    def _leaf(self, node: Tagged, path: str, state: _State) -> _State:
        body = self.mapping(node.body, path, "!Component {name: mac, class: intmac, attributes: {...}}")
        allowed = {"!Component": _COMPONENT, "!Container": _CONTAINER, "!Nothing": _NOTHING}[node.tag]
        required = ("name", "class") if node.tag == "!Component" else ()
        required += ("name",) if node.tag == "!Container" else ()
        self.keys(body, path, allowed, required)
        name = self.text(body, "name", path, max_len=200) if "name" in body else "nothing"
        cls = self.text(body, "class", path, max_len=200) if "class" in body else ""
        attrs = self.mapping(body.get("attributes") or {}, f"{path}.attributes", "{depth: 1024}")
        mesh, fanouts = self._spatial(body, path, name, state)
        kind = {"!Container": "container", "!Nothing": "nothing"}.get(node.tag) or self._kind(cls, path)
        if body.get("enabled", True) is False:
            self.notes.append(f"{path} ({name}): enabled: false, left out")
            return state
        merged = {**dict(state.inherited), **attrs}
        self.leaves.append(Leaf(kind, name, cls, path, node.line, merged, mesh, fanouts,
                                bool(body.get("constraints")), bool(body.get("networks")),
                                state.parallel))
        inherited = state.inherited + tuple(attrs.items()) if kind == "container" else state.inherited
        return _State(mesh, fanouts, inherited, state.parallel)

    def _spatial(self, body: dict, path: str, name: str, state: _State) -> tuple:
        spatial = self.mapping(body.get("spatial") or {}, f"{path}.spatial", "{meshX: 14, meshY: 12}")
        self.keys(spatial, f"{path}.spatial", {"meshX", "meshY"})
        x, y = (self.number(spatial, key, f"{path}.spatial", MESH, 1) for key in ("meshX", "meshY"))
        mesh = (state.mesh[0] * x, state.mesh[1] * y)
        fanouts = state.fanouts + ((name, x, y),) if x * y > 1 else state.fanouts
        return mesh, fanouts

    def _kind(self, cls: str, path: str) -> str:
        low = cls.lower()
        for kind, names in (("storage", STORAGE_CLASSES), ("compute", COMPUTE_CLASSES),
                            ("network", NETWORK_CLASSES), ("nothing", ("nothing",))):
            if any(n in low for n in names):
                return kind
        raise self.err(f"{path}.class", f"unknown component class {cls!r}",
                       hint="storage classes contain one of " + ", ".join(STORAGE_CLASSES)
                       + "; compute classes one of " + ", ".join(COMPUTE_CLASSES))

    def number(self, node: dict, key: str, path: str, q: Quantity, default=None, env=None):
        """A numeric field (a number or an expression over the variables); ``inf`` for ``INF``."""
        where = f"{path}.{key}"
        if key not in node:
            return default
        value = node[key]
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
            return math.inf
        if isinstance(value, bool):
            raise self.err(where, f"expected a number, got {value!r}")
        value = evaluate(value, self.env if env is None else env, self.where(where))
        return self.check(value, q, where, node[key])

    def leaf_number(self, leaf: Leaf, key: str, q: Quantity, default=None):
        """An attribute of ``leaf``; expressions may name variables and numeric attributes of
        the containers above it."""
        env = dict(self.env)
        env.update({k: v for k, v in leaf.attributes.items() if isinstance(v, (int, float))
                    and not isinstance(v, bool) and str(k).isidentifier()})
        return self.number(leaf.attributes, key, f"{leaf.path}.attributes", q, default, env)
