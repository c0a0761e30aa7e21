"""GPU targets: SM count, clock, throughputs by dtype, on-chip limits, memory bandwidth.

Loaded from YAML (``examples/gpus/h100.yaml`` and friends) with errors that name the path of the
offending field, e.g. ``h100.yaml: tensor_core_flops_per_clk_per_sm.float16: must be a positive
number``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from einsum_ir.errors import CascadeError
from einsum_ir.resources import BuiltinKind, builtin_names, resolve_spec


_NUMBERS = ("sm_count", "clock_ghz", "fp32_flops_per_clk_per_sm", "sfu_ops_per_clk_per_sm",
            "smem_bytes_per_sm", "smem_bytes_per_block", "registers_per_sm",
            "max_registers_per_thread", "max_threads_per_sm", "l2_bytes", "hbm_bytes_per_s")
_OPTIONAL = {"hbm_efficiency": 0.9, "launch_overhead_s": 4e-6}


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


def _fail(file: str, path: str, message: str, hint: str | None = None):
    raise CascadeError(f"{file}: {path}: {message}", hint=hint)


def parse_gpu_arch(data, file: str = "<arch>") -> GPUArch:
    if not isinstance(data, dict):
        _fail(file, "(top level)", "must be a mapping of fields", "see examples/gpus/h100.yaml")
    kind = data.get("kind", "gpu")
    if kind != "gpu":
        _fail(file, "kind", f"is {kind!r}; the Triton backend needs a GPU target (kind: gpu)")
    known = set(_NUMBERS) | set(_OPTIONAL) | {"name", "kind", "tensor_core_flops_per_clk_per_sm"}
    for key in data:
        if key not in known:
            _fail(file, str(key), "unknown field", "known fields: " + ", ".join(sorted(known)))
    values = {}
    for key in _NUMBERS:
        if key not in data:
            _fail(file, key, "missing", f"add {key}: <number>")
        values[key] = _positive(data[key], file, key)
    for key, default in _OPTIONAL.items():
        values[key] = _positive(data.get(key, default), file, key)
    tc = data.get("tensor_core_flops_per_clk_per_sm")
    if not isinstance(tc, dict) or not tc:
        _fail(file, "tensor_core_flops_per_clk_per_sm", "must map dtypes to FLOP/clk/SM",
              "for example: {float16: 4096, bfloat16: 4096, float32: 2048}")
    table = {}
    for dtype, v in tc.items():
        table[str(dtype)] = _positive(v, file, f"tensor_core_flops_per_clk_per_sm.{dtype}")
    if "float16" not in table:
        _fail(file, "tensor_core_flops_per_clk_per_sm.float16", "missing")
    if values["smem_bytes_per_block"] > values["smem_bytes_per_sm"]:
        _fail(file, "smem_bytes_per_block", "exceeds smem_bytes_per_sm")
    for key in ("sm_count", "registers_per_sm", "max_threads_per_sm", "max_registers_per_thread",
                "smem_bytes_per_sm", "smem_bytes_per_block", "l2_bytes"):
        if float(values[key]) != int(values[key]):
            _fail(file, key, "must be an integer")
        values[key] = int(values[key])
    return GPUArch(name=str(data.get("name", Path(file).stem)),
                   tensor_core_flops_per_clk_per_sm=table, **values)


def _positive(v, file, path):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            v = float(v)
        except (TypeError, ValueError):
            _fail(file, path, f"must be a positive number, got {v!r}")
    if not v > 0:
        _fail(file, path, f"must be a positive number, got {v!r}")
    return v


def load_gpu_arch(name_or_path: str | os.PathLike | None = None) -> GPUArch:
    """A built-in target (``h100``, ``h200``, ``a100``) or a YAML file."""
    name_or_path = name_or_path or "h100"
    path = resolve_spec(BuiltinKind.GPU, str(name_or_path))
    if not path.exists():
        raise CascadeError(f"no GPU target {name_or_path!r}",
                           hint="built-ins: " + ", ".join(builtin_names(BuiltinKind.GPU)) + ", or a YAML path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CascadeError(f"{path.name}: not valid YAML: {exc}") from None
    return parse_gpu_arch(data, path.name)


def detect_arch_name(device_name: str | None) -> str:
    """The built-in target closest to a CUDA device name (``NVIDIA H100 80GB HBM3`` -> h100)."""
    text = (device_name or "").lower()
    for key in ("h200", "h100", "a100"):
        if key in text:
            return key
    return "h100"
