"""``cascade compile`` of a cascade cut into kernel programs (backends/triton/program_module.py):
one standalone module whose ``forward()`` allocates the intermediates and launches every group's
kernels in order; it matches the interpreter under Triton's interpreter, like the
:class:`~backends.triton.program.Program` it is written from.

Triton's interpreter on the CPU, fp32, the catalogue's small sizes.
"""
import ast
import re
from pathlib import Path

import numpy as np
import pytest
from triton_lane import torch  # noqa: F401 (sets TRITON_INTERPRET first)

from backends.triton.api import CompiledCascade, load_module
from cascade_cli.main import main
from einsum_ir import evaluate, load, loads, random_inputs, resolve_sizes
from einsum_ir.autodiff import gradient
from einsum_ir.errors import CascadeError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "tests" / "data" / "catalogue"
SHIFTED = ROOT / "tests" / "harness" / "regressions" / "triton_program_cut_at_shifted_softmax.ein"


def _module_of(cascade, sizes=None):
    """The program's module source, as ``cascade compile`` writes it (mapped for a GPU)."""
    sizes = resolve_sizes(cascade, sizes or {})
    fn = CompiledCascade(cascade, {}, {}, interpret=False)
    with pytest.raises(CascadeError) as refusal:
        fn.multi = False
        fn.kernel(sizes, "float32")
    fn.multi = True
    program = fn.program(sizes, "float32", refusal.value)
    return program, program.source


def _check_runs(cascade, source, sizes=None):
    sizes = sizes or {}
    inputs = random_inputs(cascade, resolve_sizes(cascade, sizes), 0, np.float32)
    want = evaluate(cascade, {k: v.astype(np.float64) for k, v in inputs.items()}, sizes)
    got = load_module(source, cascade.name).forward(
        **{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
    for name, ref in want.items():
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        np.testing.assert_allclose(got[name].numpy(), ref, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)


CASES = [  # (cascade file, sizes, of its gradient): permuted views, scratch of two-phase groups,
    # three groups, views of hk * G + g2 (the sizes of the split), a sum over b, p and m
    (CAT / "M9_axial.ein", {}, False), (CAT / "D6_mixture_of_heads.ein", {}, False),
    (CAT / "H1_agent.ein", {}, False), (SHIFTED, {}, False),
    (ROOT / "examples" / "attention" / "gqa.ein", dict(H=4, G=2, P=10, M=13, E=8, F=8), True),
    (ROOT / "examples" / "attention" / "decayed_linear.ein", dict(H=2, P=6, M=7, E=4, F=4),
     True),
]


@pytest.mark.parametrize("path,sizes,grad", CASES,
                         ids=[p.stem + "_grad" * g for p, _, g in CASES])
def test_the_program_module_matches_the_interpreter(path, sizes, grad):
    cascade = gradient(load(path)).backward if grad else load(path)
    program, source = _module_of(cascade, sizes)
    ast.parse(source)
    kernels = re.findall(r"^def (_k\d+_\w+)\(", source, re.M)
    assert len(kernels) == sum(len(g.host.function.launches) for g in program.generated) >= 2
    assert len(set(kernels)) == len(kernels)
    for group in program.groups:  # every intermediate is allocated once, in fp32
        for t in group.writes:
            assert len(re.findall(rf"^    {t} = torch.empty\(.*torch.float32\)$", source,
                                  re.M)) == 1, t
    _check_runs(cascade, source, sizes)


def test_an_intermediate_named_like_the_launcher_locals_keeps_its_own_name():
    # the intermediate R called cfg: the module assigns each kernel program's mapping to cfg, so
    # the tensor must get another identifier in every group's launch and in the views
    text = re.sub(r"\bR\b", "cfg", (CAT / "M9_axial.ein").read_text())
    cascade = loads(text, "axial_cfg.ein")
    _, source = _module_of(cascade)
    assert re.search(r"^    cfg_1 = torch.empty\(.*torch.float32\)$", source, re.M)
    _check_runs(cascade, source)


def test_cascade_compile_writes_the_program_module(tmp_path, capsys):
    out = tmp_path / "axial.py"
    assert main(["compile", str(CAT / "M9_axial.ein"), "--dtype", "float32", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err and "2 kernel programs" in out.read_text()
    _check_runs(load(CAT / "M9_axial.ein"), out.read_text())
