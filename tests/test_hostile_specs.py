"""Hostile and careless spec files: every one is a CascadeError naming the file and the field (or
the line and column), exit code 1, never an internal error or unbounded work.

Covers the accelerator loader (mapper/arch.py), spec expressions (mapper/expr.py), the GPU loader
(backends/gpu/arch.py), the shared YAML reader (einsum_ir/yaml_io.py) and how mapping files are
read; a bounded field-mutation fuzz of the built-in specs closes the file (bench/fuzz_specs.py runs
the larger campaign through the command line).
"""
import importlib.util
import math
import time
from pathlib import Path

import pytest
import yaml

from backends.gpu.arch import load_gpu_arch, parse_gpu_arch
from cascade_cli.main import main
from einsum_ir.errors import CascadeError
from einsum_ir.yaml_io import MAX_BYTES, parse_yaml
from simulator.arch import arch_from_dict, load_arch, parse_arch_sets, resolve_arch
from simulator.spec_expr import evaluate
from simulator.mapping_load import load_mapping

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ROOT / "examples" / "archs"
GPU_DIR = ROOT / "examples" / "gpus"


def _spec_file(name: str):
    """A built-in accelerator spec or GPU target by name."""
    return (GPU_DIR if (GPU_DIR / f"{name}.yaml").exists() else ARCHS) / f"{name}.yaml"
ACCEL = ["fusemax", "flat", "unfused", "edge", "cascade_ablation"]
SIM = ["simulate", "examples/attention/mha_1pass.ein", "--set", "P=64", "--set", "M=64",
       "--set", "M0=16"]


def _raw(name="fusemax") -> dict:
    return yaml.safe_load(_spec_file(name).read_text())


def _refused(load, *fragments):
    with pytest.raises(CascadeError) as exc:
        load()
    text = exc.value.render()
    for fragment in fragments:
        assert fragment in text, text
    return exc.value


def _cli(argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    return rc, err


# ------------------------------------------------------------------ accelerator fields


@pytest.mark.parametrize("path, value, fragment", [
    (("word_bytes",), 0.5, "x.yaml: word_bytes: expected an integer, got 0.5"),
    (("word_bytes",), math.inf, "x.yaml: word_bytes: expected a finite number, got inf"),
    (("levels", 0, "access_bytes"), math.inf, "x.yaml: levels[0].access_bytes: expected a finite"),
    (("levels", 1, "access_bytes"), "glb_bytes / 3", "levels[1].access_bytes: expected an integer"),
    (("units", 0, "dims", 1), 0.5, "x.yaml: units[0].dims[1]: expected an integer"),
    (("units", 0, "dims", 0), math.inf, "x.yaml: units[0].dims[0]: expected a finite"),
    (("area", 1, "count"), 2.5, "x.yaml: area[1].count: expected an integer"),
    (("levels", 0, "bandwidth"), math.inf, "x.yaml: levels[0].bandwidth: expected a finite number"),
    (("levels", 0, "bandwidth"), math.nan, "x.yaml: levels[0].bandwidth: expected a finite number"),
    (("actions", "mac"), math.inf, "x.yaml: actions.mac: expected a finite number"),
    (("clock_hz",), math.inf, "x.yaml: clock_hz: expected a finite number"),
    (("levels", 1, "read_pJ"), -1, "x.yaml: levels[1].read_pJ: -1 is outside the physical range"),
    (("clock_hz",), 1e15, "x.yaml: clock_hz: 1000000000000000.0 is outside the physical range: a number >= 1 "
                          "and <= 1e+11 Hz"),
    (("units", 0, "dims", 0), 2 ** 20, "units[0].dims[0]: 1048576 is outside the physical range"),
    (("levels", 1, "capacity"), "2 ** 70", "levels[1].capacity: '2 ** 70' (= "),
    (("area", 0, "um2"), -5, "x.yaml: area[0].um2: -5 is outside the physical range"),
    (("units", 1, "register_file", "words"), 0.5, "units[1].register_file.words: expected an integer"),
    (("description",), ["not", "text"], "x.yaml: description: expected a non-empty string"),
    (("levels", 1, "name"), "DRAM", "x.yaml: levels[1].name: level 'DRAM' is declared twice"),
])
def test_accelerator_fields_need_finite_integer_physical_values(path, value, fragment):
    data = _raw()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _refused(lambda: arch_from_dict(data, "x.yaml"), fragment)


def test_range_message_shows_the_allowed_range():
    data = _raw()
    data["levels"][0]["bandwidth"] = -5
    exc = _refused(lambda: arch_from_dict(data, "x.yaml"),
                   "x.yaml: levels[0].bandwidth: expected a positive number, got -5")
    assert exc.hint == "allowed: a number >= 1 and <= 1e+16 bytes/s"


def test_unknown_fields_keep_the_allowed_fields_hint():
    data = _raw()
    data["levels"][1]["bandwith"] = 1
    exc = _refused(lambda: arch_from_dict(data, "x.yaml"), "x.yaml: levels[1].bandwith: unknown field")
    assert "allowed fields: access_bytes, bandwidth, capacity" in exc.hint


# ------------------------------------------------------------------ spec expressions


@pytest.mark.parametrize("text, fragment", [
    ("log2(0)", "log2 of a number that is not positive"),
    ("log2(-1)", "log2 of a number that is not positive"),
    ("max()", "max() takes at least 1 argument, got 0"),
    ("log2(2, 3)", "log2() takes 1 argument, got 2"),
    ("ceil()", "ceil() takes 1 argument, got 0"),
    ("10**400", "is too large"),
    ("9**9**9", "is too large"),
    ("2 ** 2 ** 2 ** 2 ** 2 ** 2", "is too large"),
    ("10.0 ** 400", "is too large"),
    ("0 ** -1", "0 to a negative power"),
    ("(-8) ** 0.5", "a negative number to a fractional power"),
    ("1 / 0", "division by zero"),
    ("1e400", "has no finite real value"),
    ("9" * 5000, "an expression of 5000 characters"),
    ("1" + " + 1" * 120, "more than 200 parts"),
    ("-" * 499 + "1", "more than 200 parts"),
    ("(" * 240 + "1" + ")" * 240, "cannot parse"),
    ("__import__('os')", "is not an arithmetic expression"),
    ("x\x00", "cannot parse"),
])
def test_expressions_are_bounded_and_located(text, fragment):
    start = time.perf_counter()
    _refused(lambda: evaluate(text, {}, "x.yaml: units[0].dims[0]"), "x.yaml: units[0].dims[0]: ",
             fragment)
    assert time.perf_counter() - start < 0.5


def test_expressions_still_compute():
    env = {"pe_dim": 256, "glb_bytes": 16 * 2 ** 20}
    assert evaluate("pe_dim * pe_dim", env, "w") == 65536
    assert evaluate("94176256 * glb_bytes / (16 * 2**20)", env, "w") == 94176256
    assert evaluate("max(1, log2(pe_dim), ceil(2.5))", env, "w") == 8
    assert evaluate("2 ** -1", env, "w") == 0.5 and evaluate("min(3)", env, "w") == 3
    assert evaluate("2 ** 99", env, "w") == 2 ** 99


def test_hostile_expression_in_a_field_names_the_field():
    data = _raw()
    data["variables"]["pe_dim"] = "9**9**9"
    _refused(lambda: arch_from_dict(data, "x.yaml"), "x.yaml: variables.pe_dim: '9**9**9' is too large")
    data = _raw()
    data["units"][0]["dims"] = ["max()", 4]
    _refused(lambda: arch_from_dict(data, "x.yaml"), "x.yaml: units[0].dims[0]: max() takes")


def test_arch_set_refuses_non_finite_values():
    _refused(lambda: parse_arch_sets(["pe_dim=inf"]), "--arch-set: pe_dim: expected a finite number")
    _refused(lambda: parse_arch_sets(["pe_dim=nan"]), "--arch-set: pe_dim: expected a finite number")
    _refused(lambda: parse_arch_sets(["pe_dim=" + "9" * 5000]), "--arch-set: pe_dim: expected a finite")
    _refused(lambda: parse_arch_sets(["pe_dim=12Q"]), "--arch-set pe_dim=12Q: '12Q' is not a number")
    assert parse_arch_sets(["glb_bytes=1_024K", "x=0.5"]) == {"glb_bytes": 1024 ** 2, "x": 0.5}


# ------------------------------------------------------------------ GPU targets


def _gpu(**changes) -> dict:
    data = _raw("h100")
    data.update(changes)
    return data


@pytest.mark.parametrize("field, value, fragment", [
    ("registers_per_sm", 1, "x.yaml: registers_per_sm: 1 is outside the physical range: an integer "
                            ">= 8192 and <= 16777216 32-bit registers"),
    ("smem_bytes_per_sm", 1, "x.yaml: smem_bytes_per_sm: 1 is outside the physical range"),
    ("smem_bytes_per_block", 1, "x.yaml: smem_bytes_per_block: 1 is outside the physical range"),
    ("sm_count", 0.5, "x.yaml: sm_count: must be an integer, got 0.5"),
    ("sm_count", math.inf, "x.yaml: sm_count: must be a finite number, got inf"),
    ("clock_ghz", 1.83e9, "x.yaml: clock_ghz: 1830000000.0 is outside the physical range"),
    ("clock_ghz", "inf", "x.yaml: clock_ghz: unknown variable 'inf'"),
    ("hbm_bytes_per_s", math.inf, "x.yaml: hbm_bytes_per_s: must be a finite number"),
    ("hbm_efficiency", 1.5, "x.yaml: hbm_efficiency: 1.5 is outside the physical range"),
    ("max_registers_per_thread", 255.5, "max_registers_per_thread: must be an integer"),
    ("l2_bytes", "log2(0)", "x.yaml: l2_bytes: log2 of a number that is not positive"),
    ("max_threads_per_sm", "10**400", "x.yaml: max_threads_per_sm: '10**400' is too large"),
    ("tensor_core_flops_per_clk_per_sm", {"float16": math.nan},
     "x.yaml: tensor_core_flops_per_clk_per_sm.float16: must be a finite number"),
    ("name", "line one\nline two", "x.yaml: name: must be one line of printable characters"),
])
def test_gpu_fields_in_physical_ranges(field, value, fragment):
    _refused(lambda: parse_gpu_arch(_gpu(**{field: value}), "x.yaml"), fragment)


def test_gpu_fields_accept_expressions():
    arch = parse_gpu_arch(_gpu(smem_bytes_per_sm="228 * 1024"), "x.yaml")
    assert arch.smem_bytes_per_sm == 233472 and isinstance(arch.smem_bytes_per_sm, int)


# ------------------------------------------------------------------ the wrong kind of spec


def test_unknown_name_and_builtin_paths_in_messages():
    _refused(lambda: resolve_arch("nope"), "--arch nope: no such file and no built-in architecture",
             "built-in architectures: cascade_ablation, edge, eyeriss, eyeriss_spad, flat, fusemax, tpu_v1, "
             "unfused")
    _refused(lambda: resolve_arch("fusemax", {"pe_dim": -3}),
             "error: examples/archs/fusemax.yaml: units[0].dims[0]: expected a positive integer, "
             "got 'pe_dim' (= -3)")


def test_gpu_target_given_to_simulate(capsys):
    _refused(lambda: resolve_arch("h100"), "h100 is a GPU target", "`cascade compile FILE --arch h100`")
    _refused(lambda: load_arch(GPU_DIR / "a100.yaml"), "a100 is a GPU target: use it with `cascade compile")
    rc, err = _cli([*SIM, "--arch", "h100"], capsys)
    assert rc == 1 and "h100 is a GPU target" in err and "cascade compile" in err


def test_accelerator_given_to_compile(capsys, tmp_path):
    _refused(lambda: load_gpu_arch("fusemax"),
             "fusemax is an accelerator spec", "`cascade simulate FILE --arch fusemax`")
    _refused(lambda: load_gpu_arch(ARCHS / "edge.yaml"), "edge.yaml: edge is an accelerator architecture")
    rc, err = _cli(["compile", "examples/attention/causal.ein", "--arch", str(ARCHS / "flat.yaml"),
                    "-o", str(tmp_path / "k.py")], capsys)
    assert rc == 1 and "flat is an accelerator architecture: use it with `cascade simulate" in err
    data = _raw()
    data["kind"] = "gpu"
    _refused(lambda: arch_from_dict(data, "x.yaml"), "x.yaml: x is a GPU target")


# ------------------------------------------------------------------ files


@pytest.mark.parametrize("option", ["--arch", "--mapping"])
def test_directory_given_as_a_spec(option, capsys, tmp_path):
    argv = [*SIM, "--arch", "fusemax"] if option == "--mapping" else list(SIM)
    rc, err = _cli([*argv, option, str(tmp_path)], capsys)
    assert rc == 1 and f"{tmp_path}: is a directory, not a" in err


def test_directory_given_as_a_gpu_target(capsys, tmp_path):
    rc, err = _cli(["compile", "examples/attention/causal.ein", "--arch", str(tmp_path)], capsys)
    assert rc == 1 and "is a directory, not a GPU target file" in err


LAUGHS = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))


def test_billion_laughs_in_a_free_text_field(tmp_path, capsys):
    spec = tmp_path / "laughs.yaml"
    text = (ARCHS / "fusemax.yaml").read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("description:"))
    spec.write_text("description:\n  " + LAUGHS + text)
    start = time.perf_counter()
    _refused(lambda: load_arch(spec), f"{spec}:", "YAML refused: more than 100000 nodes once "
             "aliases are expanded")
    rc, err = _cli([*SIM, "--arch", str(spec)], capsys)
    assert rc == 1 and "more than 100000 nodes" in err
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("text, fragment", [
    ("a: &a [*a]\n", "x.yaml:1:4: error: YAML refused: an alias refers to a node that contains it"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", "YAML refused: nested deeper than 64 levels"),
    ("a: " + "9" * 5000 + "\n", "x.yaml:1:4: error: not valid YAML: integer of 5000 digits"),
    ("a: 1\nb: 2\na: 3\n", "x.yaml:3:1: error: not valid YAML: key 'a' is given twice"),
    ("a: !!python/object/apply:os.system [true]\n", "x.yaml:1:4: error: not valid YAML: could not "
                                                    "determine a constructor"),
    ("a: 1\x0b\n", "x.yaml:1:5: error: not valid YAML: unacceptable character"),
    ("a: [1, 2\n", "x.yaml:2:1: error: not valid YAML"),
])
def test_yaml_limits_are_located(text, fragment):
    _refused(lambda: parse_yaml(text, "x.yaml"), fragment)


def test_yaml_aliases_and_merges_still_work():
    data = parse_yaml("base: &b {cycles: 1}\nop: *b\nmerged: {<<: *b, cycles: 2}\n", "x.yaml")
    assert data == {"base": {"cycles": 1}, "op": {"cycles": 1}, "merged": {"cycles": 2}}


@pytest.mark.parametrize("content, fragment", [
    (b"#" * (MAX_BYTES + 1), "larger than 1024 KiB"),
    (b"name: \xff\xfe fusemax\n", "not UTF-8 text (byte 6: 0xff)"),
    (b"- just\n- a list\n", "(top level): expected a mapping of fields, got a list"),
    (b"", "(top level): expected a mapping of fields, got an empty file"),
])
@pytest.mark.parametrize("kind", ["arch", "gpu", "mapping"])
def test_bad_files(kind, content, fragment, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    load = {"arch": load_arch, "gpu": load_gpu_arch, "mapping": load_mapping}[kind]
    _refused(lambda: load(path), "bad.yaml", fragment)


def test_dev_zero_is_refused_quickly():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    start = time.perf_counter()
    _refused(lambda: load_arch("/dev/zero"), "/dev/zero: larger than")
    assert time.perf_counter() - start < 2


def test_removed_fields_stay_accepted_in_yaml():
    arch = resolve_arch("fusemax")  # description, provenance, register_file are documentation
    assert not hasattr(arch, "raw") and not hasattr(arch, "provenance")
    assert not hasattr(arch.unit("2d"), "register_words")


# ------------------------------------------------------------------ fuzz


def _fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_specs", ROOT / "bench" / "fuzz_specs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fuzz_builtin_specs_field_mutations():
    """300 deterministic mutations of the built-in accelerator and GPU specs: each is accepted with
    finite values or refused with the file and the field path; nothing else."""
    fuzz = _fuzz()
    start = time.perf_counter()
    counts: dict = {}
    for kind, name, what, load in fuzz.field_cases(300, seed=9):
        result, detail = fuzz.outcome(load, "x.yaml", timeout=10, field=True)
        counts[result] = counts.get(result, 0) + 1
        assert result in ("accepted", "rejected"), f"{kind} {name} [{what}]: {result}: {detail}"
    assert counts["rejected"] > 200
    assert time.perf_counter() - start < 20


def test_fuzz_file_mutations_are_located(tmp_path):
    """Text-level mutations (truncation, control characters, alias bombs, deep nesting, duplicate
    keys, huge integers, huge files, binary) of every built-in spec, loaded from files in process."""
    fuzz = _fuzz()
    import random

    rng = random.Random(3)
    start = time.perf_counter()
    for i in range(70):
        name = (ACCEL + ["h100", "a100"])[i % 7]
        body, what = fuzz.mutate_text(_spec_file(name).read_text(), rng)
        path = tmp_path / f"case{i}.yaml"
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8", errors="surrogatepass")
        gpu = name in ("h100", "a100")

        def load(path=path, gpu=gpu):
            return dict(load_gpu_arch(path).__dict__) if gpu else load_arch(path).to_json()

        result, detail = fuzz.outcome(load, path.name, timeout=10)
        assert result in ("accepted", "rejected"), f"{name} [{what}]: {result}: {detail}"
    assert time.perf_counter() - start < 20
