"""A kernel program as one standalone module: every group's kernels and one ``forward()``.

``cascade compile`` writes this for a cascade cut into several kernels (backends/triton/program.py):
the header shows the cascade and, per kernel program, the Einsums it computes and its mapping;
``forward()`` checks the inputs, allocates the outputs and the intermediates (fp32 in global
memory, as :class:`~backends.triton.program.Program` keeps them) and launches the kernels in
order, as the Triton tutorials write a launcher. Each group's launches come from its own
:class:`~backends.triton.host.HostFunction`, renamed into the module's namespace (kernel
``_phase1`` of the second program is ``_k2_phase1``, its block table ``FIXED_BLOCKS_2``).
"""
from __future__ import annotations

from einsum_ir.errors import CascadeError

from backends.gpu.views import PermuteView

from .host import Allocation, HostFunction, SizeArg, render_forward
from .module import TITLE, cascade_text, header
from .names import Namespace, comment_lines, comment_safe
from .program import Program
from .render import combine_lines


def program_source(program: Program, mapping_notes: list[str]) -> str:
    """The module of ``program``; ``mapping_notes`` describe each group's mapping."""
    names = Namespace()
    tensor = {d.name: names.tensor(d.name) for d in (*program.cascade.inputs,
                                                    *program.cascade.outputs)}
    for g in program.groups:
        tensor.update({t: names.tensor(t) for t in g.writes})
    src = [TITLE, f"# Cascade {comment_safe(program.cascade.name)}: {len(program.groups)} "
           "kernel programs, run in order; intermediates pass through global memory (fp32)"]
    src += comment_lines(cascade_text(program.cascade), "    ")
    src += ["import torch", "import triton", "import triton.language as tl", ""]
    baked: dict = {}
    for gen in program.generated:
        baked.update(gen.host.baked)
    src += [f"BAKED_SIZES = {dict(sorted(baked.items()))!r}  # sizes compiled into the kernels"]
    src += combine_lines(sorted({fn for gen in program.generated for fn in gen.host.helpers}))
    launches, sections = [], {}
    for k, (group, gen, fn) in enumerate(zip(program.groups, program.generated, program.compiled,
                                             strict=True), 1):
        host = gen.host
        fixed, config = names.keyed(("fixed", k), f"FIXED_BLOCKS_{k}"), \
            names.keyed(("config", k), f"CONFIG_{k}")
        kernels = {launch.kernel: names.keyed(("kernel", k, launch.kernel),
                                              f"_k{k}{launch.kernel}")
                   for launch in host.function.launches}
        banner = f"kernel program {k} of {len(program.groups)}: {_reads_writes(group)}"
        # two blank lines before each banner (the kernels above end with them)
        src += ["", ""] * (k == 1) + [f"# {'=' * 40} {comment_safe(banner)}"]
        src += header(fn.prepared, gen.roles, gen.config, mapping_notes[k - 1])[1:]
        src += [f"{fixed} = {host.fixed!r}", f"{config} = {host.config!r}", ""]
        src += [_renamed_def(line, kernels) for line in host.kernels]
        locals_, lines = _locals(program, group, host.function, tensor, names, k)
        sections[len(launches)] = [f"    # {comment_safe(banner)}", f"    cfg = {config}",
                                   *lines]
        launches += [launch.renamed(kernels[launch.kernel], fixed, locals_)
                     for launch in host.function.launches]
    fn = _forward(program, tensor, tuple(launches))
    _check_sizes(program, fn, baked)
    src += render_forward(fn, sections)
    return "\n".join(src) + "\n"


def _reads_writes(group) -> str:
    ins = ", ".join(group.source_of(d.name) if group.view_of(d.name) is None
                    else group.view_of(d.name).tensor for d in group.cascade.inputs)
    return f"{', '.join(d.name for d in group.cascade.outputs)} from {ins}"


def _renamed_def(line: str, kernels: dict) -> str:
    for old, new in kernels.items():
        if line == f"def {old}(":
            return f"def {new}("
    return line


def _locals(program: Program, group, host: HostFunction, tensor: dict, names: Namespace,
            k: int) -> tuple[dict, list[str]]:
    """The group's launcher locals as the module's (its inputs and outputs are the program's
    tensors, a view is made from its tensor first) and the lines that make the views."""
    out, lines = {}, []
    for local, name, _ in host.inputs:
        view = group.view_of(name)
        if view is None:
            out[local] = tensor[group.source_of(name)]
            continue
        out[local] = names.keyed(("view", k, name), view.name)
        source = tensor[view.tensor]
        if isinstance(view, PermuteView):
            lines.append(f"    {out[local]} = {source}.permute({view.order!r})")
        else:
            lines.append(f"    {out[local]} = {source}.unflatten({view.axis}, "
                         f"(-1, sizes[{view.size!r}])).movedim({view.axis + 1}, -1)")
    for name, local in host.returns:
        out[local] = tensor[name]
    for launch in host.launches:
        for local in launch.tensor_locals() | {a.name for a in launch.before} \
                | {p.result for p in launch.after}:
            out.setdefault(local, names.keyed(("local", k, local), local))
    outputs = {local for _, local in host.returns}
    for a in host.allocations:  # the group's scratch: allocated just before its launches
        if a.name not in outputs:
            out.setdefault(a.name, names.keyed(("local", k, a.name), a.name))
            lines.append(f"    {out[a.name]} = torch.zeros(({_shape(a)},), device=device, "
                         f"dtype={a.dtype})")
    return out, lines


def _shape(a: Allocation) -> str:
    return ", ".join(f"sizes[{r!r}]" for r in a.shape)


def _forward(program: Program, tensor: dict, launches: tuple) -> HostFunction:
    """``forward()``: the cascade's inputs and outputs, the intermediates in fp32."""
    c = program.cascade
    first = next((d.name for d in c.inputs if len(d.axes) >= 2), c.inputs[0].name) \
        if c.inputs else None
    decls = {d.name: d for g in program.groups for d in g.cascade.outputs}
    allocations = [Allocation(tensor[d.name], tuple(d.ranks)) for d in c.outputs]
    allocations += [Allocation(tensor[t], tuple(decls[t].ranks), "torch.float32")
                    for g in program.groups for t in g.writes]
    single = program.generated[0].host.function
    ins = ", ".join(d.name for d in c.inputs)
    return HostFunction(
        f"Runs the {len(program.groups)} kernel programs in order on torch tensors given by name "
        f"({ins}); returns {{output name: tensor}}. (``config`` is not used: each kernel program "
        "has its own mapping.)",
        tuple((tensor[d.name], d.name, tuple(d.ranks)) for d in c.inputs), single.derived,
        single.splits, single.after_splits, None if first is None else tensor[first], tuple(allocations), launches,
        tuple((d.name, tensor[d.name]) for d in c.outputs),
        config="# config is not used: each kernel program has its own mapping (CONFIG_1, ...)")


def _check_sizes(program: Program, fn: HostFunction, baked: dict) -> None:
    """Every size a launch or an allocation uses is known from the inputs' shapes."""
    known = set(baked) | {r for _, _, ranks in fn.inputs for r in ranks} \
        | {name for name, _ in fn.derived + fn.after_splits} | {outer for outer, _, _ in fn.splits}
    used = {r for a in fn.allocations for r in a.shape}
    used |= {a.size for launch in fn.launches for a in launch.args
             if isinstance(a, SizeArg)}
    missing = sorted(used - known)
    if missing:
        raise CascadeError(f"the kernel program needs the size {missing[0]}, which no input "
                           f"of {program.cascade.name} has and no setting gives",
                           hint="set it with --set")
