"""Ahead-of-time compilation of generated kernels for a GPU architecture, without a GPU.

Triton can compile a kernel to PTX and a cubin for a given target (``sm_90``, ``sm_80``) with the
``ptxas`` it ships, no driver needed. This checks that generated code compiles for real GPUs (the
interpreter does not), and reads the cubin's resource usage (registers, spill stack, shared
memory), which the GPU mapping can use to reject configurations that spill.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

DTYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


@dataclass
class KernelBuild:
    name: str
    registers: int | None
    stack_bytes: int | None
    shared_bytes: int
    uses_wgmma: bool
    uses_mma: bool
    ptx_chars: int


def _tool(name: str) -> str | None:
    import triton

    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)
    return path if os.path.exists(path) else None


def available() -> bool:
    try:
        import triton  # noqa: F401  (the ptxas it ships is what we need)
    except ImportError:
        return False
    return _tool("ptxas") is not None


def compile_source(source: str, dtype: str = "bfloat16", capability: int = 90,
                   sizes: dict | None = None) -> list[KernelBuild]:
    """Compiles every kernel of a generated module for ``sm_<capability>``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import warnings

    warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("ahead-of-time compilation needs TRITON_INTERPRET unset")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(source)
        path = fh.name
    spec = importlib.util.spec_from_file_location(f"aot_{abs(hash(source))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    blocks = {**module.FIXED_BLOCKS, **module.CONFIG}
    head = re.search(r"def forward\(([^*)]*)", source).group(1)
    user = {a.strip() for a in head.split(",") if a.strip()}  # the inputs
    user |= set(re.findall(r"^    (\w+) = torch\.empty\(.*dtype=dtype\)$", source, re.M))
    out = []
    for name in sorted(dir(module)):
        kernel = getattr(module, name)
        if not isinstance(kernel, triton.runtime.jit.JITFunction):
            continue
        # the specialisation Triton's JIT applies to contiguous [.., N, D] tensors: 16-byte
        # aligned pointers, strides divisible by 16, and a last stride of 1 (a constant)
        signature, constants, attrs = {}, {}, {}
        last = {}
        for p in kernel.params:
            m = re.match(r"stride_(\w+)_(\d+)$", p.name)
            if m:
                last[m.group(1)] = max(last.get(m.group(1), 0), int(m.group(2)))
        for index, p in enumerate(kernel.params):
            m = re.match(r"stride_(\w+)_(\d+)$", p.name)
            if m and not p.is_constexpr:
                if int(m.group(2)) == last[m.group(1)]:
                    signature[p.name] = "constexpr"
                    constants[p.name] = 1
                else:
                    signature[p.name] = "i32"
                    attrs[(index,)] = [["tt.divisibility", 16]]
                continue
            if p.is_constexpr:
                signature[p.name] = "constexpr"
                constants[p.name] = True if p.name.startswith("EVEN_") else blocks[p.name]
            elif p.name.endswith("_ptr"):
                signature[p.name] = f"*{DTYPES[dtype]}" if p.name[:-4] in user \
                    else "*fp32"  # scratch memory of the backend is fp32
                attrs[(index,)] = [["tt.divisibility", 16]]
            else:
                signature[p.name] = "i32"
        options = {"num_warps": module.CONFIG["num_warps"],
                   "num_stages": module.CONFIG["num_stages"]}
        target = GPUTarget("cuda", capability, 32)
        try:
            build = triton.compile(ASTSource(kernel, signature, constants, attrs), target=target,
                                   options=options)
        except (TypeError, KeyError, AttributeError):  # another Triton's attribute format
            build = triton.compile(ASTSource(kernel, signature, constants), target=target,
                                   options=options)
        regs = stack = None
        tool = _tool("cuobjdump")
        if tool:
            with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as cf:
                cf.write(build.asm["cubin"])
            usage = subprocess.run([tool, "--dump-resource-usage", cf.name], capture_output=True,
                                   text=True).stdout
            m = re.search(r"REG:(\d+) STACK:(\d+)", usage)
            if m:
                regs, stack = int(m.group(1)), int(m.group(2))
            os.unlink(cf.name)
        ptx = build.asm["ptx"]
        out.append(KernelBuild(name, regs, stack, int(build.metadata.shared), "wgmma" in ptx,
                               "mma.sync" in ptx or "wgmma" in ptx, len(ptx)))
    os.unlink(path)
    return out
