"""On-chip bandwidth (``levels[1].ports`` x ``port_bytes``) as a bound on a group's latency.

An output-stationary 256 x 256 array doing C = A B with M = N = K = 512, tiles of 256 x 256
outputs (loops M1 > N1: 4 tiles, K = 512 streamed): 2048 cycles of MACs. Words through the
buffer, from first principles:

* the array reads its operand tiles: per tile A 256 x 512 and B 512 x 256 words, 4 tiles:
  4 x 2 x 131,072 = 1,048,576 words (512 words a cycle over 2048 cycles);
* filling from DRAM (the reuse rule): A once (262,144 words), B once per M1 iteration, twice
  (524,288 words);
* C drains from the array to DRAM directly (rule R2 of the buffer model): no buffer words.

1,835,008 words in all: 1024 words a cycle keep up with the MACs (896 would), fewer make the group
bandwidth-bound at words / (ports x port_bytes / word_bytes) cycles.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from einsum_ir import loads
from einsum_ir.errors import CascadeError
from mapper.builders import single_group
from simulator.arch import arch_from_dict
from simulator.cost import simulate

ROOT = Path(__file__).resolve().parent.parent
GEMM = loads("rank M = 512, N = 512, K = 512\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
             "C[m,n] = sum[k] A[m,k] * B[k,n]\n")
MAPPING = single_group(["C"], {"C": "array"}, {"array": ["M0", "N0"]},
                       tiles={"M": {"M0": 256}, "N": {"N0": 256}}, loops=("M1", "N1"))
WORDS = 4 * 2 * 256 * 512 + 512 * 512 + 2 * 512 * 512


def spec(**ports) -> dict:
    glb = {"name": "GLB", "capacity": 2 ** 30, "access_bytes": 512, "read_pJ": 1, "write_pJ": 1}
    glb.update(ports)
    return {"name": "os256", "clock_hz": 1e9, "word_bytes": 2, "actions": {"mac": 1},
            "units": [{"name": "array", "dims": [256, 256],
                       "ops": {"mac": {"cycles": 1, "actions": {"mac": 1}}}}],
            "levels": [{"name": "DRAM", "bandwidth": 1e15, "access_bytes": 8, "read_pJ": 1,
                        "write_pJ": 1}, glb]}


def test_words_through_the_buffer_match_first_principles():
    g = simulate(GEMM, arch_from_dict(spec()), MAPPING).groups[0]
    assert g.glb_read + g.glb_write == WORDS
    assert g.compute_cycles == 2048 and g.bandwidth_level == "" and g.bound == "compute"
    assert "bandwidth_cycles" not in g.to_json()  # no ports declared: reports as before


def test_wide_ports_do_not_bind():
    # 4 ports x 512 B = 1024 words a cycle: more than the group needs
    r = simulate(GEMM, arch_from_dict(spec(ports=4, port_bytes=512)), MAPPING)
    g = r.groups[0]
    assert g.bandwidth_cycles == WORDS / 1024 == 1792
    assert r.cycles == 2048 and g.bound == "compute"


@pytest.mark.parametrize("ports,port_bytes", [(1, 512), (2, 128), (3, 64)])
def test_narrow_ports_bind(ports, port_bytes):
    r = simulate(GEMM, arch_from_dict(spec(ports=ports, port_bytes=port_bytes)), MAPPING)
    g = r.groups[0]
    expected = WORDS / (ports * port_bytes / 2)
    assert g.bandwidth_cycles == pytest.approx(expected) and expected > 2048
    assert r.cycles == pytest.approx(expected)
    assert g.bound == "bandwidth" and g.to_json()["bandwidth_level"] == "GLB"
    assert r.utilization["array"] == pytest.approx(2048 / expected)


@pytest.mark.parametrize("where,fields,message", [
    (1, {"ports": 2}, "levels[1].port_bytes: missing required field"),
    (1, {"ports": 0, "port_bytes": 64}, "levels[1].ports: expected a positive integer"),
    (1, {"ports": 1.5, "port_bytes": 64}, "levels[1].ports: expected an integer"),
    (0, {"ports": 1, "port_bytes": 64}, "levels[0].ports: only the on-chip buffer"),
])
def test_bad_ports_are_located_errors(where, fields, message):
    data = spec()
    data["levels"][where].update(fields)
    with pytest.raises(CascadeError) as e:
        arch_from_dict(data, "os.yaml")
    assert f"os.yaml: {message}" in str(e.value)


def test_cli_reports_the_bandwidth_bound(tmp_path):
    arch = tmp_path / "os.yaml"
    arch.write_text(yaml.safe_dump(spec(ports=1, port_bytes=512)))
    mapping = tmp_path / "m.yaml"
    MAPPING.save(mapping)
    ein = tmp_path / "gemm.ein"
    ein.write_text("rank M = 512, N = 512, K = 512\ninput A[m,k], B[k,n]\noutput C[m,n]\n"
                   "C[m,n] = sum[k] A[m,k] * B[k,n]\n")
    proc = subprocess.run([sys.executable, "-m", "cascade_cli", "simulate", str(ein), "--arch",
                           str(arch), "--mapping", str(mapping), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    group = json.loads(proc.stdout)["groups"][0]
    assert group["bound"] == "bandwidth" and group["cycles"] == WORDS / 256
