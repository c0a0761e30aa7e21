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


def compile_source(gen, dtype: str = "bfloat16", capability: int = 90) -> list[KernelBuild]:
    """Compiles every kernel of a generated module (a ``Generated``) for ``sm_<capability>``,
    specialised from the typed parameter list the lowering records for each kernel."""
    import warnings

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("ahead-of-time compilation needs TRITON_INTERPRET unset")
    source = gen.source
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(source)
        path = fh.name
    spec = importlib.util.spec_from_file_location(f"aot_{abs(hash(source))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    blocks = {**module.FIXED_BLOCKS, **module.CONFIG}
    out = []
    for meta in gen.phases:
        name = meta["kernel"]
        kernel = getattr(module, name)
        kinds = {ident: (kind, detail) for ident, kind, detail in meta["args"]}
        # the specialisation Triton's JIT applies to contiguous [.., N, D] tensors: 16-byte
        # aligned pointers, strides divisible by 16, and a last stride of 1 (a constant)
        signature, constants, attrs = {}, {}, {}
        for index, p in enumerate(kernel.params):
            kind, detail = kinds[p.name]
            if kind == "stride" and detail:
                signature[p.name] = "constexpr"
                constants[p.name] = 1
            elif kind == "stride":
                signature[p.name] = "i32"
                attrs[(index,)] = [["tt.divisibility", 16]]
            elif kind in ("block", "even"):
                signature[p.name] = "constexpr"
                constants[p.name] = True if kind == "even" else blocks[p.name]
            elif kind == "ptr":  # scratch memory of the backend is fp32
                signature[p.name] = f"*{DTYPES[dtype]}" if detail else "*fp32"
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
