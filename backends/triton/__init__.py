"""Triton backend: generic lowering of cascades to fused Triton kernels (design.md section 6)."""
from .api import CompiledCascade, compile_cascade
from .lower import Config, Generated, generate

__all__ = ["CompiledCascade", "Config", "Generated", "compile_cascade", "generate"]
