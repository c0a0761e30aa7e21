"""GPU targets (YAML), the GPU mapping and its cost model (see docs/gpu.md)."""
from .arch import GPUArch, load_gpu_arch
from .mapping import GPUMapping, choose_mapping

__all__ = ["GPUArch", "GPUMapping", "choose_mapping", "load_gpu_arch"]
