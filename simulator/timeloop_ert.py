"""Accelergy's energy and area tables (ERT, ART) as the Timeloop importer reads them.

An ERT gives, per component instance path (``system.PE[0..167].mac``), the energy of each action
in pJ, possibly for several argument sets (``address_delta``/``data_delta``). Both layouts
Accelergy writes are read: the list one (``tables: [{name, actions: [{name, arguments,
energy}]}]``, version 0.3 and later) and the older mapping one (``tables: {NAME: {ACTION: [...]}}``).
A component is found by the last part of the path without its instance range (``mac``). Where an
action has several argument sets, the largest energy (the random-access case) is used, and the
importer says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir.spec_fields import Quantity, SpecFile

from .spec_expr import evaluate

ENERGY_PJ = Quantity(0, 1e9, "pJ")
AREA_UM2 = Quantity(0, 1e12, "um^2")


@dataclass(frozen=True)
class EnergyTable:
    """Component name -> action -> pJ, and the notes on what was chosen."""

    actions: dict
    sources: dict  # component name -> the ERT field path of its table (for messages)
    notes: tuple

    def energy(self, spec: SpecFile, component: str, where: str, choices: tuple) -> float:
        """The pJ of the first action of ``choices`` the component's table has."""
        table = self.actions.get(component)
        if not self.actions:
            raise spec.err(where, f"no energy for component {component!r}: no ERT was given",
                           hint=_tables_hint(self.actions))
        if table is None:
            raise spec.err(where, f"no ERT table for component {component!r}: its energy is "
                           "unknown", hint=_tables_hint(self.actions))
        for action in choices:
            if action in table:
                return table[action]
        raise spec.err(where, f"the ERT table of {component!r} ({self.sources[component]}) has "
                       f"none of the actions {', '.join(choices)}",
                       hint="its actions: " + ", ".join(sorted(table)))


def _tables_hint(actions: dict) -> str:
    names = ", ".join(sorted(actions)) or "none"
    return (f"tables: {names}; give Accelergy's ERT (its timeloop-*.ERT.yaml output) in an "
            "ERT: section of the file or with `cascade import-arch --ert`")


def short_name(path: str) -> str:
    """``system.eyeriss.PE[0..167].mac`` -> ``mac``."""
    last = path.rsplit(".", 1)[-1]
    return last.split("[", 1)[0]


def read_ert(spec: SpecFile, node, where: str = "ERT") -> EnergyTable:
    if node is None:
        return EnergyTable({}, {}, ())
    spec.mapping(node, where, "{version: 0.3, tables: [{name: system.mac, actions: [...]}]}")
    spec.keys(node, where, {"version", "tables"}, ("tables",))
    tables = node["tables"]
    if isinstance(tables, dict):  # the older layout: name -> action -> entries
        rows = [(f"{where}.tables.{name}", name, _dict_actions(spec, acts, f"{where}.tables.{name}"))
                for name, acts in tables.items()]
    elif isinstance(tables, list):
        rows = [_list_table(spec, t, f"{where}.tables[{i}]") for i, t in enumerate(tables)]
    else:
        raise spec.err(f"{where}.tables", "expected a list of {name, actions} tables")
    actions: dict = {}
    sources: dict = {}
    notes = []
    for path, name, entries in rows:
        short = short_name(str(name))
        if short in actions:
            raise spec.err(path, f"a second table for component {short!r} (first: {sources[short]})")
        sources[short] = path
        actions[short] = {}
        for action, energies in entries.items():
            actions[short][action] = max(energies)
            if len(set(energies)) > 1:
                notes.append(f"{short}.{action}: {len(energies)} argument sets, the largest "
                             f"energy ({max(energies):g} pJ) is used")
    return EnergyTable(actions, sources, tuple(notes))


def _list_table(spec: SpecFile, table, path: str) -> tuple:
    spec.mapping(table, path, "{name: system.mac, actions: [{name: compute, energy: 0.56}]}")
    spec.keys(table, path, {"name", "actions"}, ("name", "actions"))
    name = spec.text(table, "name", path, max_len=500)
    acts = table["actions"]
    if not isinstance(acts, list):
        raise spec.err(f"{path}.actions", "expected a list of {name, arguments, energy}")
    entries: dict = {}
    for j, act in enumerate(acts):
        where = f"{path}.actions[{j}]"
        spec.mapping(act, where, "{name: read, arguments: null, energy: 1.2}")
        spec.keys(act, where, {"name", "arguments", "energy"}, ("name", "energy"))
        action = spec.text(act, "name", where, max_len=200)
        entries.setdefault(action, []).append(_number(spec, act["energy"], ENERGY_PJ, f"{where}.energy"))
    return path, name, entries


def _dict_actions(spec: SpecFile, acts, path: str) -> dict:
    spec.mapping(acts, path, "{read: [{arguments: ..., energy: 1.2}], idle: {energy: 0}}")
    entries: dict = {}
    for action, body in acts.items():
        items = body if isinstance(body, list) else [body]
        for j, item in enumerate(items):
            where = f"{path}.{action}[{j}]" if isinstance(body, list) else f"{path}.{action}"
            spec.mapping(item, where, "{arguments: null, energy: 1.2}")
            spec.keys(item, where, {"arguments", "energy"}, ("energy",))
            entries.setdefault(str(action), []).append(_number(spec, item["energy"], ENERGY_PJ,
                                                               f"{where}.energy"))
    return entries


def read_art(spec: SpecFile, node, where: str = "ART") -> dict:
    """Component name -> um^2 per instance (Accelergy's ART: ``tables: [{name, area}]``)."""
    if node is None:
        return {}
    spec.mapping(node, where, "{version: 0.3, tables: [{name: system.mac, area: 1545}]}")
    spec.keys(node, where, {"version", "tables"}, ("tables",))
    tables = node["tables"]
    if not isinstance(tables, list):
        raise spec.err(f"{where}.tables", "expected a list of {name, area}")
    areas: dict = {}
    for i, table in enumerate(tables):
        path = f"{where}.tables[{i}]"
        spec.mapping(table, path, "{name: system.mac, area: 1545}")
        spec.keys(table, path, {"name", "area"}, ("name", "area"))
        areas[short_name(spec.text(table, "name", path, max_len=500))] = _number(
            spec, table["area"], AREA_UM2, f"{path}.area")
    return areas


def _number(spec: SpecFile, value, q: Quantity, path: str) -> float:
    """A table value; text such as ``2.5e6`` (a string to YAML 1.1) is read as the number."""
    if isinstance(value, str):
        return spec.check(evaluate(value, {}, spec.where(path)), q, path, value)
    return spec.check(value, q, path)
