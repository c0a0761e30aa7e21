"""GPU targets: SM count, clock, throughputs by dtype, on-chip limits, memory bandwidth.

Loaded from YAML (``examples/gpus/h100.yaml`` and friends) with errors that name the path of the
offending field, e.g. ``h100.yaml: tensor_core_flops_per_clk_per_sm.float16: must be a positive
number``. A value may be an arithmetic expression (``228 * 1024``); it must be finite, an integer
where the field counts things, and inside the field's physical range (``RANGES``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from einsum_ir.errors import CascadeError
from einsum_ir.resources import BuiltinKind, builtin_names, resolve_spec
from einsum_ir.spec_fields import Quantity, SpecFile
from einsum_ir.yaml_io import load_yaml_mapping
from simulator.spec_expr import evaluate


# Physical ranges per field: generous bounds around every GPU built so far (an H100 has 132 SMs at
# 1.83 GHz, 64 Ki registers and 228 KiB of shared memory per SM, 3.35 TB/s), so a typo or a unit
# mistake (1 register, 1 byte of shared memory, a clock in Hz) is refused with the range.
RANGES = {
    "sm_count": Quantity(1, 10_000, "SMs", integer=True),
    "clock_ghz": Quantity(0.1, 10, "GHz"),
    "fp32_flops_per_clk_per_sm": Quantity(1, 1e5, "FLOP/clk/SM"),
    "sfu_ops_per_clk_per_sm": Quantity(1, 1e5, "ops/clk/SM"),
    "smem_bytes_per_sm": Quantity(16 * 1024, 64 * 2 ** 20, "bytes", integer=True),
    "smem_bytes_per_block": Quantity(16 * 1024, 64 * 2 ** 20, "bytes", integer=True),
    "registers_per_sm": Quantity(8192, 2 ** 24, "32-bit registers", integer=True),
    "max_registers_per_thread": Quantity(16, 1024, "registers", integer=True),
    "max_threads_per_sm": Quantity(32, 65536, "threads", integer=True),
    "l2_bytes": Quantity(64 * 1024, 2 ** 36, "bytes", integer=True),
    "hbm_bytes_per_s": Quantity(1e9, 1e15, "bytes/s"),
}
OPTIONAL = {"hbm_efficiency": (0.9, Quantity(0, 1, "of the peak", positive=True)),
            "launch_overhead_s": (4e-6, Quantity(0, 1e-2, "s"))}
TENSOR_CORE = Quantity(1, 1e6, "FLOP/clk/SM")
_TABLE = "tensor_core_flops_per_clk_per_sm"
_KNOWN = set(RANGES) | set(OPTIONAL) | {"name", "kind", _TABLE}


@dataclass(frozen=True)
class GPUArch:
    name: str
    sm_count: int
    clock_ghz: float
    tensor_core_flops_per_clk_per_sm: dict
    fp32_flops_per_clk_per_sm: float
    sfu_ops_per_clk_per_sm: float
    smem_bytes_per_sm: int
    smem_bytes_per_block: int
    registers_per_sm: int
    max_registers_per_thread: int
    max_threads_per_sm: int
    l2_bytes: int
    hbm_bytes_per_s: float
    hbm_efficiency: float = 0.9
    launch_overhead_s: float = 4e-6

    # chip-wide rates
    def tensor_flops(self, dtype: str) -> float:
        table = self.tensor_core_flops_per_clk_per_sm
        per = table.get(dtype) or table.get("float16")
        return per * self.sm_count * self.clock_ghz * 1e9

    def fp32_flops(self) -> float:
        return self.fp32_flops_per_clk_per_sm * self.sm_count * self.clock_ghz * 1e9

    def sfu_ops(self) -> float:
        return self.sfu_ops_per_clk_per_sm * self.sm_count * self.clock_ghz * 1e9

    def hbm(self) -> float:
        return self.hbm_bytes_per_s * self.hbm_efficiency


def parse_gpu_arch(data, file: str = "<arch>", label: str | None = None) -> GPUArch:
    """Validates a GPU target; ``label`` is how the user named it (in the message for an
    accelerator spec)."""
    spec = SpecFile(file)
    if not isinstance(data, dict):
        raise spec.err("(top level)", "must be a mapping of fields", "see examples/gpus/h100.yaml")
    kind = data.get("kind", "accelerator" if "units" in data or "levels" in data else "gpu")
    if kind == "accelerator":
        raise CascadeError(f"{file}: {label or Path(file).stem} is an accelerator architecture: use "
                           "it with `cascade simulate --arch` (or `cascade map --arch`)",
                           hint="GPU targets: " + ", ".join(builtin_names(BuiltinKind.GPU)) + ", or a YAML file with kind: gpu")
    if kind != "gpu":
        raise spec.err("kind", f"is {kind!r}; the Triton backend needs a GPU target (kind: gpu)")
    for key in data:
        if key not in _KNOWN:
            raise spec.err(str(key), "unknown field", "known fields: " + ", ".join(sorted(_KNOWN)))
    values = {}
    for key, q in RANGES.items():
        if key not in data:
            raise spec.err(key, "missing", f"add {key}: <number>")
        values[key] = _number(spec, data[key], key, q)
    for key, (default, q) in OPTIONAL.items():
        values[key] = _number(spec, data.get(key, default), key, q)
    table = _tensor_core_table(spec, data.get(_TABLE))
    if values["smem_bytes_per_block"] > values["smem_bytes_per_sm"]:
        raise spec.err("smem_bytes_per_block", "exceeds smem_bytes_per_sm")
    name = spec.text(data, "name", "", required=False, max_len=100) or Path(file).stem
    if not name.isprintable():
        raise spec.err("name", "must be one line of printable characters")
    return GPUArch(name=name, tensor_core_flops_per_clk_per_sm=table, **values)


def _tensor_core_table(spec: SpecFile, node) -> dict:
    if not isinstance(node, dict) or not node:
        raise spec.err(_TABLE, "must map dtypes to FLOP/clk/SM",
                       "for example: {float16: 4096, bfloat16: 4096, float32: 2048}")
    table = {str(dtype): _number(spec, v, f"{_TABLE}.{dtype}", TENSOR_CORE) for dtype, v in node.items()}
    if "float16" not in table:
        raise spec.err(f"{_TABLE}.float16", "missing")
    return table


def _number(spec: SpecFile, value, path: str, q: Quantity):
    """A number or an arithmetic expression (``228 * 1024``), finite and in its physical range."""
    return spec.check(evaluate(value, {}, spec.where(path)), q, path, value, word="must be")


def load_gpu_arch(name_or_path: str | os.PathLike | None = None) -> GPUArch:
    """A built-in target (``h100``, ``h200``, ``a100``) or a YAML file."""
    name_or_path = name_or_path or "h100"
    path = resolve_spec(BuiltinKind.GPU, str(name_or_path))
    if not path.exists():
        raise CascadeError(f"no GPU target {name_or_path!r}",
                           hint="built-ins: " + ", ".join(builtin_names(BuiltinKind.GPU)) + ", or a YAML path")
    data = load_yaml_mapping(path, "GPU target", file=path.name,
                             hint="built-ins: " + ", ".join(builtin_names(BuiltinKind.GPU)) + ", or a YAML path")
    label = str(name_or_path) if str(name_or_path).isidentifier() else None
    return parse_gpu_arch(data, path.name, label=label)


def detect_arch_name(device_name: str | None) -> str:
    """The built-in target closest to a CUDA device name (``NVIDIA H100 80GB HBM3`` -> h100)."""
    text = (device_name or "").lower()
    for key in ("h200", "h100", "a100"):
        if key in text:
            return key
    return "h100"
