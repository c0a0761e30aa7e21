"""Architecture specs: the shipped ones load with the paper's numbers; bad specs get errors that
name the file and the path of the field."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from einsum_ir.errors import CascadeError
from simulator.arch import arch_from_dict, load_arch, parse_arch_sets, resolve_arch

ARCHS = Path(__file__).resolve().parent.parent / "examples" / "archs"
MINE = ["fusemax", "flat", "unfused", "edge", "cascade_ablation"]


@pytest.mark.parametrize("name", MINE)
def test_shipped_specs_load(name):
    arch = load_arch(ARCHS / f"{name}.yaml")
    assert arch.clock_hz == 940e6
    assert arch.offchip.name == "DRAM" and arch.buffer.name == "GLB"
    assert arch.area_um2 > 0


def test_fusemax_numbers_and_overrides():
    arch = resolve_arch("fusemax")
    assert arch.unit("2d").dims == (256, 256) and arch.unit("1d").dims == (256,)
    assert arch.buffer.capacity == 16 * 2 ** 20
    assert arch.offchip.bandwidth == 400 * 2 ** 30
    assert arch.unit("2d").ops["exp"].cycles == 6 and arch.unit("2d").ops["exp"].actions == {"mac": 6}
    assert "div" not in arch.unit("2d").ops and arch.unit("1d").ops["div"].cycles == 1
    small = resolve_arch("fusemax", {"pe_dim": 64, "glb_bytes": 2 ** 20})
    assert small.unit("2d").dims == (64, 64) and small.buffer.capacity == 2 ** 20
    assert small.area_um2 < arch.area_um2
    flat = resolve_arch("flat")
    assert flat.buffer.capacity == 32 * 2 ** 20 and flat.unit("1d").ops["exp"].actions == {"exp": 1}
    edge = resolve_arch("edge")
    assert edge.unit("2d").dims == (32, 32) and edge.buffer.capacity == 512 * 1024
    assert edge.offchip.bandwidth == 50 * 2 ** 30


def _raw(name="fusemax"):
    return yaml.safe_load((ARCHS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["levels"][0].__setitem__("bandwidth", -5), "x.yaml: levels[0].bandwidth: expected a positive number"),
    (lambda d: d["levels"][1].__setitem__("capacity", "glb_bytes * 0"), "x.yaml: levels[1].capacity: expected a positive number"),
    (lambda d: d["levels"][1].pop("capacity"), "x.yaml: levels[1].capacity: missing required field"),
    (lambda d: d["units"][0]["ops"]["exp"].__setitem__("cycles", "six"), "x.yaml: units[0].ops.exp.cycles: unknown variable 'six'"),
    (lambda d: d["units"][0]["ops"].__setitem__("sqrtt", {"cycles": 1, "actions": {"mac": 1}}), "x.yaml: units[0].ops.sqrtt: unknown operation class"),
    (lambda d: d["units"][1]["ops"]["div"]["actions"].__setitem__("divide", 1), "x.yaml: units[1].ops.div.actions.divide: no energy for action"),
    (lambda d: d["units"][0].__setitem__("dims", [256, 0]), "x.yaml: units[0].dims[1]: expected a positive integer"),
    (lambda d: d.__setitem__("clock", 1e9), "x.yaml: clock: unknown field"),
    (lambda d: d.pop("clock_hz"), "x.yaml: clock_hz: missing required field"),
    (lambda d: d["area"][0].__setitem__("um2", "1 +"), "x.yaml: area[0].um2: cannot parse"),
    (lambda d: d["units"][1].__setitem__("name", "2d"), "x.yaml: units[1].name: unit '2d' is declared twice"),
])
def test_bad_specs_name_the_field(mutate, message):
    data = _raw()
    mutate(data)
    with pytest.raises(CascadeError) as exc:
        arch_from_dict(data, "x.yaml")
    assert message in str(exc.value)


def test_unknown_override_and_bad_values():
    with pytest.raises(CascadeError, match="declares no variable 'pe_size'"):
        resolve_arch("fusemax", {"pe_size": 3})
    with pytest.raises(CascadeError, match="expected NAME=VALUE"):
        parse_arch_sets(["pe_dim"])
    assert parse_arch_sets(["glb_bytes=256K", "pe_dim=128"]) == {"glb_bytes": 262144, "pe_dim": 128}
    with pytest.raises(CascadeError, match="no such architecture file"):
        load_arch("nowhere/none.yaml")


def test_cli_reports_path_addressed_error(tmp_path):
    data = _raw()
    data["levels"][0]["bandwidth"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "cascade_cli", "simulate", "examples/attention/mha_1pass.ein",
                           "--arch", str(bad)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 1
    assert "bad.yaml: levels[0].bandwidth: expected a positive number" in proc.stderr
    assert "Traceback" not in proc.stderr
