"""Timeloop v0.4 / Accelergy designs import into Cascade specs and simulate; what the model lacks is
a warning, what it cannot represent a located error; the Eyeriss and TPU v1 built-ins load."""
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from cascade_cli.main import main
from einsum_ir.errors import CascadeError
from simulator.arch import load_arch, resolve_arch
from simulator.timeloop_import import ArchImportWarning, import_timeloop_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "archs" / "timeloop" / "eyeriss_like.yaml"
MHA = str(ROOT / "examples" / "attention" / "mha_1pass.ein")
EYERISS_SIZES = ["--set", "P=192", "--set", "M=224", "--set", "M0=14"]  # 12 and 14 divide them
MAC_PJ = 2.2  # the sample's ERT: mac compute
MACS_PER_OP = {"mac": 1, "mul": 1, "add": 1, "max": 1, "cmp": 1, "exp": 6, "other": 6, "div": 8}
GEMM = """# a matrix product
rank M = 96, N = 84, K = 32
split N = N1 * N0
rank N0 = 14
input  A[m,k], B[k,n]
output C[m,n1,n0]
C[m,n1,n0] = sum[k] A[m,k] * B[k,n1*N0 + n0]
"""


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _sample_arch():
    with pytest.warns(ArchImportWarning) as caught:
        arch = load_arch(SAMPLE)
    return arch, str(caught[0].message)


def test_sample_maps_onto_units_levels_and_energies():
    arch, warning = _sample_arch()
    assert arch.name == "eyeriss_like" and arch.clock_hz == 200e6 and arch.word_bytes == 2
    (unit,) = arch.units
    assert unit.name == "mac" and unit.dims == (12, 14) and unit.pes == 168
    assert unit.ops["mac"].actions == {"mac": 1} and arch.actions == {"mac": MAC_PJ}
    assert unit.ops["exp"].cycles == 6 and unit.ops["div"].actions == {"mac": 8}  # cascade_ops
    dram, glb, spad = arch.levels  # the per-PE scratchpads keep their level
    assert (dram.name, dram.capacity, dram.access_bytes, dram.read_pJ) == ("DRAM", None, 8, 512)
    assert (spad.name, spad.per, spad.unit, spad.instances) == (
        "ifmap_spad+weights_spad+psum_spad", "pe", "mac", 168)
    assert spad.capacity == (12 + 224 + 24) * 2 and unit.register_file is None
    assert dram.bandwidth == 4 * 2 * 200e6  # 4 words of 16 bits per cycle
    assert glb.name == "shared_glb" and glb.capacity == 108 * 1024 and glb.access_bytes == 8
    assert (glb.read_pJ, glb.write_pJ) == (56.092, 56.716)  # the largest argument set
    for folded in ("constraints of shared_glb, ifmap_spad, weights_spad, psum_spad",
                   "ifmap_spad+weights_spad+psum_spad: a level per PE of mac (168 instances) (one "
                   "!Parallel branch: one level, capacities added", "no ART: area is 0",
                   "shared_glb.read: 2 argument sets, the largest energy (56.092 pJ)"):
        assert folded in warning


def test_sample_simulates_attention_with_the_erts_mac_energy(capsys):
    code, out, err = _cli(capsys, "simulate", MHA, "--arch", SAMPLE, *EYERISS_SIZES, "--json")
    assert code == 0, err
    report = json.loads(out)
    macs = sum(n * MACS_PER_OP[op] for e in report["per_einsum"] for op, n in e["ops"].items())
    assert report["energy_breakdown_J"]["compute"] == pytest.approx(macs * MAC_PJ * 1e-12)
    # the scratchpads are a level of their own (the ERT's spad energies per access)
    spad = "ifmap_spad+weights_spad+psum_spad"
    assert set(report["energy_breakdown_J"]) == {"compute", "DRAM", "shared_glb", spad}
    assert set(report["traffic"]) == {"DRAM", "shared_glb", spad}
    assert report["traffic"]["DRAM"] > 0 and report["latency_s"] > 0
    assert max(e["pes_used"] for e in report["per_einsum"]) > 1  # spread over the PE array
    assert err.startswith("warning: ") and "imported from Timeloop v0.4" in err


def test_gemm_compute_energy_is_ert_times_macs(capsys, tmp_path):
    gemm = tmp_path / "gemm.ein"
    gemm.write_text(GEMM)
    code, out, err = _cli(capsys, "simulate", gemm, "--arch", SAMPLE, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["energy_breakdown_J"]["compute"] == pytest.approx(96 * 84 * 32 * MAC_PJ * 1e-12)
    assert report["cycles"] >= 96 * 84 * 32 / 168


def test_import_arch_writes_a_native_spec_that_loads_the_same(capsys, tmp_path):
    out_file = tmp_path / "eyeriss_imported.yaml"
    code, out, err = _cli(capsys, "import-arch", SAMPLE, "-o", out_file)
    assert code == 0, err
    assert out.startswith(f"wrote {out_file}: eyeriss_like, units mac 12x14; levels DRAM, "
                          "shared_glb 108 KiB, ifmap_spad+weights_spad+psum_spad ")
    assert "warning: ifmap_spad+weights_spad+psum_spad: a level per PE" in err
    text = out_file.read_text()
    assert text.startswith("# Imported from the Timeloop v0.4 design") and "#   no ART" in text
    native = load_arch(out_file)  # a native spec: no warning, the same architecture
    assert native.to_json() == _sample_arch()[0].to_json()
    code, out, _ = _cli(capsys, "import-arch", SAMPLE)  # no -o: the spec on standard output
    assert code == 0 and yaml.safe_load(out)["units"][0]["dims"] == [12, 14]


def test_arch_set_overrides_a_timeloop_variable():
    with pytest.warns(ArchImportWarning):
        fast = resolve_arch(str(SAMPLE), {"global_cycle_seconds": 1e-9})
    assert fast.clock_hz == 1e9 and fast.offchip.bandwidth == 8e9
    with pytest.raises(CascadeError, match="declares no numeric variable 'pe_dim'"):
        resolve_arch(str(SAMPLE), {"pe_dim": 3})


def _mutated(tmp_path, old: str, new: str, text: str | None = None) -> Path:
    text = text if text is not None else SAMPLE.read_text()
    assert old in text
    path = tmp_path / "tl.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, message", [
    ("- !Component\n    name: DRAM", "- !Componnet\n    name: DRAM",
     "tl.yaml: architecture.nodes[1]: unknown tag !Componnet (line"),
    ("type: LPDDR4", "type: !!python/object/apply:os.system [echo]",
     "tl.yaml: architecture.nodes[1].attributes.type: unknown tag !!python/object/apply:os.system"),
    ("    class: intmac\n", "", "tl.yaml: architecture.nodes[7].class: missing required field"),
    ("depth: 13824, ", "", "tl.yaml: architecture.nodes[3].attributes.depth: missing required field"),
    ("version: 0.4", "version: 0.3", "tl.yaml: architecture.version: version 0.3 is not supported"),
    ("class: intmac", "class: systolic_thing",
     "tl.yaml: architecture.nodes[7].class: unknown component class 'systolic_thing'"),
    ("exp: 6,", "sqrt: 6,",
     "tl.yaml: architecture.nodes[7].attributes.cascade_ops.sqrt: unknown operation class"),
    ("spatial: {meshX: 14}", "spatial: {meshX: 0}",
     "tl.yaml: architecture.nodes[4].spatial.meshX: expected a positive integer"),
    ("depth: 224,", "depth: two_hundred,",
     "tl.yaml: architecture.nodes[6].nodes[1].attributes.depth: unknown variable 'two_hundred'"),
    ("- name: system.eyeriss.PE[0..167].mac", "- name: system.eyeriss.PE[0..167].mac_unit",
     "tl.yaml: architecture.nodes[7]: no ERT table for component 'mac'"),
    ("{name: compute, arguments: null, energy: 2.2}", "{name: compute, arguments: null, energy: -1}",
     "tl.yaml: ERT.tables[5].actions[0].energy: -1 is outside the physical range"),
    ("  nodes:\n  - !Container\n    name: system", "  nodes:\n  - !Container\n    name: system\n"
     "    colour: blue", "tl.yaml: architecture.nodes[0].colour: unknown field"),
])
def test_bad_timeloop_designs_name_the_field(tmp_path, old, new, message):
    path = _mutated(tmp_path, old, new)
    with pytest.raises(CascadeError) as exc:
        load_arch(path)
    assert message in str(exc.value)


def test_unsafe_tag_is_refused_on_the_command_line(capsys, tmp_path):
    path = _mutated(tmp_path, "type: LPDDR4", "type: !!python/object/apply:os.system [echo pwned]")
    code, out, err = _cli(capsys, "import-arch", path)
    assert code == 1 and not out
    assert "architecture.nodes[1].attributes.type: unknown tag !!python/object" in err
    assert "Python object tags are never constructed" in err


def test_separate_ert_and_art_files(capsys, tmp_path):
    text = SAMPLE.read_text()
    arch_text, ert_text = text.split("ERT:\n", 1)
    (tmp_path / "arch.yaml").write_text(arch_text)
    (tmp_path / "ert.yaml").write_text("ERT:\n" + ert_text)
    (tmp_path / "art.yaml").write_text("ART:\n  version: 0.3\n  tables:\n"
                                       "  - {name: 'system.eyeriss.PE[0..167].mac', area: 1000}\n"
                                       "  - {name: system.eyeriss.shared_glb, area: 2.5e6}\n")
    with pytest.raises(CascadeError, match="architecture.nodes.1.: no energy for component 'DRAM': no ERT was given"):
        import_timeloop_file(tmp_path / "arch.yaml")
    imported = import_timeloop_file(tmp_path / "arch.yaml", ert=tmp_path / "ert.yaml",
                                    art=tmp_path / "art.yaml")
    assert {a["name"]: (a["count"], a["um2"]) for a in imported.spec["area"]} == {
        "shared_glb": (1, 2.5e6), "mac": (168, 1000)}
    assert any(n.startswith("no ART entry (no area) for DRAM, ifmap_spad") for n in imported.notes)
    code, _, err = _cli(capsys, "import-arch", tmp_path / "arch.yaml", "--ert", tmp_path / "art.yaml")
    assert code == 1 and "art.yaml: ERT: missing required field" in err


DEEP = """architecture:
  version: 0.4
  nodes:
  - !Component {name: MainMemory, class: DRAM, attributes: {width: 64, datawidth: 8}}
  - !Component {name: GlobalBuffer, class: SRAM, attributes: {sizeKB: 64, width: 256, datawidth: 8}}
  - !Component {name: L2, class: SRAM, attributes: {sizeKB: 16, width: 128, datawidth: 8}}
  - !Container
    name: PE
    spatial: {meshX: 4}
    networks: [{name: noc}]
  - !Component {name: pe_buffer, class: regfile, attributes: {entries: 64, datawidth: 8}}
  - !Container {name: lane, spatial: {meshX: 4, meshY: 2}}
  - !Component {name: vmac, class: fpmac, attributes: {datawidth: 8}}
ERT:
  tables:
  - {name: MainMemory, actions: [{name: read, energy: 100}, {name: write, energy: 120}]}
  - {name: GlobalBuffer, actions: [{name: read, energy: 5}, {name: write, energy: 6}]}
  - {name: vmac, actions: [{name: compute, energy: 0.5}]}
"""


def test_deeper_hierarchies_say_what_is_folded_and_dropped(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(DEEP)
    imported = import_timeloop_file(path)
    notes = "\n".join(imported.notes)
    assert "not modelled: Cascade has DRAM and one" not in notes  # L2: a level inside the buffer
    assert "L2: no ERT table: energies and area from its capacity and width" in notes
    assert [lv["name"] for lv in imported.spec["levels"]] == ["MainMemory", "GlobalBuffer", "L2"]
    assert "networks of/at PE not modelled" in notes
    assert "vmac: fan-outs PE (4) x lane (8) flattened into one array of dims [2, 16]" in notes
    assert "no global_cycle_seconds: the clock is Timeloop's default 1 GHz" in notes
    assert "MainMemory: no shared_bandwidth/read_bandwidth: one 8-byte access per cycle" in notes
    spec = imported.spec
    assert spec["units"][0]["dims"] == [2, 16] and spec["word_bytes"] == 1
    assert spec["units"][0]["register_file"] == {"words": 64}  # pe_buffer has no ERT table
    assert spec["levels"][1] == {"name": "GlobalBuffer", "capacity": 65536, "access_bytes": 32,
                                 "read_pJ": 5, "write_pJ": 6}
    assert "mac: no other operations" not in notes and "vmac: Timeloop models MACs only" in notes


def test_builtin_eyeriss_and_tpu_v1():
    eyeriss = resolve_arch("eyeriss")
    assert eyeriss.unit("pe_array").dims == (12, 14) and eyeriss.buffer.capacity == 108 * 1024
    assert eyeriss.clock_hz == 200e6 and eyeriss.offchip.bandwidth == 480e6
    assert eyeriss.buffer.read_pJ == pytest.approx(6 * 2.2)
    assert eyeriss.offchip.read_pJ == pytest.approx(200 * 2.2)
    tpu = resolve_arch("tpu_v1")
    assert tpu.unit("mxu").dims == (256, 256) and tpu.unit("activation").dims == (256,)
    assert tpu.buffer.capacity == 24 * 2 ** 20 and tpu.clock_hz == 700e6 and tpu.word_bytes == 1
    assert tpu.offchip.bandwidth == 34e9
    assert tpu.actions["mac"] == pytest.approx(40 / (65536 * 700e6) * 1e12)
    assert "div" not in tpu.unit("mxu").ops and tpu.unit("activation").ops["div"].cycles == 8


@pytest.mark.parametrize("arch", ["eyeriss", "tpu_v1"])
def test_builtin_specs_simulate_attention(capsys, arch):
    code, out, err = _cli(capsys, "simulate", MHA, "--arch", arch, *EYERISS_SIZES, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["arch"] == arch and report["energy_J"] > 0 and report["area_mm2"] > 0


PORTED = """architecture:
  version: 0.4
  nodes:
  - !Component {name: DRAM, class: DRAM, attributes: {width: 64, datawidth: 16, shared_bandwidth: 4}}
  - !Component {name: GLB, class: SRAM, attributes: {depth: 4096, width: 64, datawidth: 16,
                                                     read_bandwidth: RB, write_bandwidth: 2}}
  - !Component {name: L2, class: SRAM, attributes: {depth: 512, width: 64, datawidth: 16,
                                                    shared_bandwidth: 1.25}}
  - !Container {name: PE, spatial: {meshX: 4, meshY: 4}}
  - !Parallel
    nodes:
    - !Component {name: wspad, class: regfile, attributes: {depth: 16, width: 16, datawidth: 16,
                                                            shared_bandwidth: 1}}
    - !Component {name: ospad, class: regfile, attributes: {depth: 16, width: 16, datawidth: 16,
                                                            shared_bandwidth: 2}}
  - !Component {name: mac, class: intmac, attributes: {datawidth: 16}}
ERT:
  tables:
  - {name: DRAM, actions: [{name: read, energy: 100}, {name: write, energy: 100}]}
  - {name: GLB, actions: [{name: read, energy: 6}, {name: write, energy: 6}]}
  - {name: mac, actions: [{name: compute, energy: 1}]}
"""


@pytest.mark.parametrize("read_bw, ports, port_bytes", [(2, 2, 4), (6, 1, 16)])
def test_on_chip_bandwidth_becomes_ports(tmp_path, read_bw, ports, port_bytes):
    """Timeloop's on-chip bandwidth (words of 16 bits per cycle, per instance) is the levels'
    ports: read and write pooled (two ports where they are equal), ``shared_bandwidth`` one
    port (2.5 bytes rounded up to 3), a ``!Parallel`` branch its storages' ports together."""
    path = tmp_path / "ported.yaml"
    path.write_text(PORTED.replace("RB", str(read_bw)))
    imported = import_timeloop_file(path)
    levels = {lv["name"]: lv for lv in imported.spec["levels"]}
    assert (levels["GLB"]["ports"], levels["GLB"]["port_bytes"]) == (ports, port_bytes)
    assert (levels["L2"]["ports"], levels["L2"]["port_bytes"]) == (1, 3)
    spads = levels["wspad+ospad"]
    assert spads["ports"] * spads["port_bytes"] == (1 + 2) * 2
    assert "ports" not in levels["DRAM"] and levels["DRAM"]["bandwidth"] == 4 * 2 * 1e9
    notes = "\n".join(imported.notes)
    assert "does not limit on-chip bandwidth" not in notes
    assert f"GLB: read_bandwidth and write_bandwidth ({read_bw} and 2 words/cycle) pooled" in notes
    assert "L2: 2.5 bytes per port and cycle rounded up to 3" in notes
    arch = load_arch(path)
    assert arch.buffer.ports == ports and arch.buffer.port_bytes == port_bytes


def test_imported_ports_bound_a_simulation(tmp_path):
    """The imported ports limit a simulation: a 16 x 16 x 64 GEMM, output-stationary on the 4 x 4
    array with every tile resident and the inner levels keeping nothing, reads 8 operand words a
    cycle from the buffer, whose 2 read and 2 write words a cycle (two 4-byte ports) make it
    bandwidth-bound; the Eyeriss-like sample's buffer gets two 32-byte ports."""
    from einsum_ir import loads
    from mapper.builders import single_group
    from simulator.cost import simulate
    from simulator.mapping import LevelMap

    assert (_sample_arch()[0].buffer.ports, _sample_arch()[0].buffer.port_bytes) == (2, 32)
    path = tmp_path / "ported.yaml"
    path.write_text(PORTED.replace("RB", "2"))
    arch = load_arch(path)
    gemm = loads("rank M = 16, N = 16, K = 64\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
                 "C[m,n] = sum[k] A[m,k] * B[k,n]\n")
    m = single_group(["C"], {"C": "mac"}, {"mac": ["M0", "N0"]},
                     tiles={"M": {"M0": 4}, "N": {"N0": 4}}, loops=(), buffer_loops=("M1", "N1"))
    nothing = {"L2": LevelMap(()), "wspad+ospad": LevelMap(())}
    m = dataclasses.replace(m, groups=(dataclasses.replace(m.groups[0], levels=nothing),))
    g = simulate(gemm, arch, m).groups[0]
    assert g.compute_cycles == 1024 and g.glb_read + g.glb_write == 8 * 1024 + 2 * 16 * 64
    assert g.bandwidth_level == "GLB" and g.bandwidth_cycles == (8 * 1024 + 2 * 16 * 64) / 4
    assert g.bound == "bandwidth" and g.cycles == g.bandwidth_cycles
