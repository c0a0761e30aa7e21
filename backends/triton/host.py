"""The host side of a generated module as data: what ``forward()`` allocates and launches.

A :class:`Launch` is one kernel call (kernel, grid, arguments, the buffers it needs first and the
prefix sums after it); a :class:`HostFunction` is ``forward()`` (input checks, sizes, allocations,
launches, the outputs). Single kernel modules (:mod:`backends.triton.module`) and kernel programs
(:mod:`backends.triton.program_module`) build these and render them here, in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Allocation:
    """``name = torch.empty/zeros(shape)``: ``shape`` holds size names, ``dtype`` is ``dtype``
    (the inputs') or ``torch.float32``."""

    name: str
    shape: tuple[str, ...]
    dtype: str = "dtype"
    zeroed: bool = False


@dataclass(frozen=True)
class Grid:
    """The launch grid: axis 0 by ``kind`` (``parallel``: cdiv(rank, inner size); ``row``:
    cdiv(rank, the row block); ``split``: slices of the streamed rank; ``single``: 1), axis 1 the
    product of the batch ranks."""

    kind: str
    batch: tuple[str, ...]
    rank: str | None = None
    block: str | None = None  # the row or stream block constexpr, or the inner size (parallel)


@dataclass(frozen=True)
class TensorArg:
    local: str


@dataclass(frozen=True)
class StridesArg:
    local: str


@dataclass(frozen=True)
class SizeArg:
    size: str


@dataclass(frozen=True)
class NsplitArg:
    pass


@dataclass(frozen=True)
class BlockArg:
    key: str


@dataclass(frozen=True)
class EvenArg:
    """``EVEN_M=bool(M % BLOCK == 0 and ...)``: the rank divides into each block."""

    param: str
    rank: str
    blocks: tuple[str, ...]


@dataclass(frozen=True)
class PrefixSum:
    """The state before each step of a scan: the exclusive prefix sum of its increments."""

    result: str
    increments: str
    axis: int
    init: float


@dataclass(frozen=True)
class Launch:
    kernel: str
    grid: Grid
    args: tuple  # TensorArg, StridesArg, SizeArg, NsplitArg (positional); BlockArg, EvenArg
    before: tuple[Allocation, ...] = ()
    after: tuple[PrefixSum, ...] = ()
    fixed: str = "FIXED_BLOCKS"  # the table of block sizes the mapping does not tune

    def renamed(self, kernel: str, fixed: str, locals_: dict) -> Launch:
        """The launch with another kernel name, block table and local tensor names."""
        def local(name: str) -> str:
            return locals_.get(name, name)

        args = tuple(replace(a, local=local(a.local)) if isinstance(a, (TensorArg, StridesArg))
                     else a for a in self.args)
        return Launch(kernel, self.grid, args,
                      tuple(replace(a, name=local(a.name)) for a in self.before),
                      tuple(replace(p, result=local(p.result), increments=local(p.increments))
                            for p in self.after), fixed)

    def tensor_locals(self) -> set[str]:
        return {a.local for a in self.args if isinstance(a, TensorArg)}


@dataclass(frozen=True)
class HostFunction:
    """``forward(config=None, /, **tensors)``: the inputs (local, name, ranks), the sizes derived
    from others (name, code over ``s``), the split ranks (outer, rank, inner), where device and
    dtype come from, the allocations, launches and returned tensors (name, local)."""

    doc: str
    inputs: tuple[tuple[str, str, tuple[str, ...]], ...]
    derived: tuple[tuple[str, str], ...]
    splits: tuple[tuple[str, str, str], ...]
    after_splits: tuple[tuple[str, str], ...]  # sizes derived from a split's outer rank
    dtype_from: str | None  # the local of the input; None: fp32 on the default device
    allocations: tuple[Allocation, ...]
    launches: tuple[Launch, ...]
    returns: tuple[tuple[str, str], ...]
    config: str = "cfg = dict(CONFIG, **(config or {}))"

    @property
    def helpers(self) -> list[str]:
        out = [INPUTS, SHAPE]
        if any(launch.grid.kind == "split" for launch in self.launches):
            out.append(NSPLIT)
        if self.derived or self.after_splits:
            out.append(DERIVE)
        if self.dtype_from is None:
            out.append(DEVICE)
        return out


@dataclass(frozen=True)
class HostModule:
    """A generated module's parts: the kernels' lines, the size and block tables, the mapping
    (``CONFIG``) and ``forward()``."""

    kernels: tuple[str, ...]
    baked: dict
    fixed: dict
    config: dict
    function: HostFunction
    helpers: tuple[str, ...] = ()  # reducers whose module-level combine functions it calls


def render_forward(fn: HostFunction, sections: dict | None = None) -> list[str]:
    """The lines of ``forward()`` and its helpers. ``sections`` maps a launch's index to the
    lines that precede it (a kernel program's banner, views and block table per kernel)."""
    ins = [local for local, _, _ in fn.inputs]
    out = ["def forward(config=None, /, **tensors):", f'    """{fn.doc}"""',
           (f"    {', '.join(ins)}{',' * (len(ins) == 1)} = " if ins else "    ")
           + f"_inputs(tensors, {tuple(name for _, name, _ in fn.inputs)!r})",
           f"    {fn.config}", "    sizes = dict(BAKED_SIZES)"]
    out += [f"    _shape({local}, {name!r}, {list(ranks)!r}, sizes)" for local, name, ranks in
            fn.inputs]
    out += [f"    _derive(sizes, {name!r}, lambda s: {code})" for name, code in fn.derived]
    out += [f"    sizes[{outer!r}] = -(-sizes[{rank!r}] // sizes[{inner!r}])"
            for outer, rank, inner in fn.splits]
    out += [f"    _derive(sizes, {name!r}, lambda s: {code})" for name, code in fn.after_splits]
    if fn.dtype_from is not None:
        out.append(f"    device, dtype = {fn.dtype_from}.device, {fn.dtype_from}.dtype")
    else:  # nothing to take them from: fp32 outputs on the device the kernels run on
        out.append("    device, dtype = _default_device(), torch.float32")
    out += [render_allocation(a) for a in fn.allocations]
    for k, launch in enumerate(fn.launches):
        out += (sections or {}).get(k, [])
        out += render_launch(launch)
    out.append("    return {" + ", ".join(f"{name!r}: {local}" for name, local in fn.returns)
               + "}")
    for helper in fn.helpers:
        out += ["", "", *helper.strip("\n").splitlines()]
    return out


def render_allocation(a: Allocation) -> str:
    shape = ", ".join(f"sizes[{r!r}]" for r in a.shape)
    return f"    {a.name} = torch.{'zeros' if a.zeroed else 'empty'}(({shape},), " \
           f"device=device, dtype={a.dtype})"


def render_launch(launch: Launch) -> list[str]:
    out = [render_allocation(a) for a in launch.before]
    out += _grid(launch.grid, launch.fixed)
    args = [_arg(a, launch.fixed) for a in launch.args]
    args += ["num_warps=cfg['num_warps']", "num_stages=cfg['num_stages']"]
    out += [f"    {launch.kernel}[grid]("] + [f"        {a}," for a in args] + ["    )"]
    for p in launch.after:
        out.append("    # the state before each step: exclusive prefix sum of the increments")
        out.append(f"    {p.result} = torch.cumsum({p.increments}, dim={p.axis}) - "
                   f"{p.increments}" + (f" + {p.init!r}" if p.init else ""))
    return out


def _blk(key: str, fixed: str) -> str:
    return f"cfg.get({key!r}, {fixed}.get({key!r}))"


def _grid(grid: Grid, fixed: str) -> list[str]:
    batch = " * ".join(f"sizes[{v!r}]" for v in grid.batch) or "1"
    if grid.kind == "parallel":
        return [f"    grid = (triton.cdiv(sizes[{grid.rank!r}], sizes[{grid.block!r}]), {batch})"]
    if grid.kind == "row":
        return [f"    grid = (triton.cdiv(sizes[{grid.rank!r}], cfg[{grid.block!r}]), {batch})"]
    if grid.kind == "split":
        return [f"    steps = triton.cdiv(sizes[{grid.rank!r}], {_blk(grid.block, fixed)})",
                f"    nsplit = _nsplit(steps, {batch}, device)",
                f"    grid = (nsplit, {batch})"]
    return [f"    grid = (1, {batch})"]


def _arg(a, fixed: str) -> str:
    if isinstance(a, TensorArg):
        return a.local
    if isinstance(a, StridesArg):
        return f"*{a.local}.stride()"
    if isinstance(a, SizeArg):
        return f"sizes[{a.size!r}]"
    if isinstance(a, NsplitArg):
        return "nsplit"
    if isinstance(a, BlockArg):
        return f"{a.key}={_blk(a.key, fixed)}"
    cond = " and ".join(f"sizes[{a.rank!r}] % {_blk(b, fixed)} == 0" for b in a.blocks)
    return f"{a.param}=bool({cond})"


INPUTS = '''
def _inputs(tensors, names):
    missing = [n for n in names if n not in tensors]
    extra = sorted(set(tensors) - set(names))
    if missing or extra:
        raise TypeError(f"forward() takes the tensors {', '.join(names)} by name: "
                        + (f"{missing[0]} is missing" if missing else f"{extra[0]} is not one"))
    return [tensors[n] for n in names]
'''

SHAPE = '''
def _shape(t, name, ranks, sizes):
    if t.dim() != len(ranks):
        raise ValueError(f"{name} must have {len(ranks)} dimensions ({', '.join(ranks)}), "
                         f"got shape {tuple(t.shape)}")
    for k, (rank, n) in enumerate(zip(ranks, t.shape)):
        if rank in sizes and sizes[rank] != n:
            raise ValueError(f"{name}: axis {k} is rank {rank} = {sizes[rank]}, got {n}")
        sizes[rank] = int(n)
'''

NSPLIT = '''
def _nsplit(steps, programs, device):
    """Slices of a split state phase: 4 programs per SM of the device (2 under the interpreter)."""
    import os
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") or device.type != "cuda":
        return max(1, min(steps, 2))
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(steps, -(-4 * sms // max(1, programs))))
'''

DERIVE = '''
def _derive(sizes, rank, fn):
    try:
        value = fn(sizes)
    except KeyError:
        return
    if rank in sizes and sizes[rank] != value:
        raise ValueError(f"rank {rank} must be {value} here, got {sizes[rank]}")
    sizes[rank] = value
'''

DEVICE = '''
def _default_device():
    import os
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
'''
