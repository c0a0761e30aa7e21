"""Triton backend: generic lowering of cascades to fused Triton kernels (see docs/gpu.md)."""
from backends.gpu.plan import Config

from .api import CompiledCascade, compile_cascade
from .lower import Generated, generate

__all__ = ["CompiledCascade", "Config", "Generated", "compile_cascade", "generate"]
