"""The Triton lowering on catalogue cascades it used to refuse (issue 11), against the interpreter.

* Alias indices: self-attention keys written ``index m : P`` (or ``rank M = P``) are their own
  loop dimension with P's extent; the lowering took ``p`` for the streamed rank seen whole and
  refused ("index p (reshape) cannot be used here").
* Real parameters (``param CAP = 30.0``): baked into the kernel as their literal.
* Declared empty values (``output LSE[..] empty -inf``): the store writes that value where the
  output has no point.

Each case is a catalogue cascade (tests/data/catalogue) at its tiny default sizes, with the
catalogue's inputs, checked as ``bench/catalogue.py`` checks its Triton stages.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.gpu.plan import Config  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from backends.triton.lower import generate  # noqa: E402
from einsum_ir import evaluate, load, loads, resolve_sizes  # noqa: E402
from einsum_ir.errors import CascadeError  # noqa: E402
from einsum_ir.inputs import input_shapes  # noqa: E402
from einsum_ir.passes import prepare  # noqa: E402
from harness.compare import compare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import catalogue  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
REFS = catalogue._refs()

ALIAS = ["D3_alibi_causal", "M10_block_causal", "M1_sinks", "M1_sliding_window",
         "M2_per_head_window", "M3_strided_shards", "M4_power_distance", "M5_neighbourhood_2d",
         "M6_circular_2d", "M7_halo_blocked", "M8_maxvit_block", "M8_maxvit_grid",
         "L2_lightning_decay", "H2_scatterbrain"]
FP16 = ["D3_alibi_causal", "M1_sliding_window", "M10_block_causal", "L2_lightning_decay"]
# real parameters; D5_hopfield (a recurrence over an unsplit index) stays refused for its
# structure, not for its values; L2_lightning_chunked and R2_split_kv_lse need 3-D tiles
# (tests/test_triton_tiles3d.py)
VALUES = ["D3_softcap", "L1_transnormer", "L2_lightning_chunked", "R2_split_kv_lse"]


def _check(name: str, cascade, dtype=torch.float32):
    """The kernel's outputs against the interpreter's on the same rounded inputs."""
    sizes = resolve_sizes(cascade, {})
    inputs = catalogue.make_inputs(REFS, name, cascade, sizes)
    rounded = {k: torch.tensor(v).to(dtype).double().numpy() for k, v in inputs.items()}
    ref = evaluate(cascade, rounded)
    ref32 = evaluate(cascade, {k: v.astype(np.float32) for k, v in rounded.items()},
                     dtype=np.float32)
    if dtype == torch.float16:  # the catalogue's fp16 tolerance (see bench/catalogue.py)
        ref32 = {k: v + 1.25e-3 * (np.abs(v) + max(1.0, float(np.abs(v[np.isfinite(v)]).max(
            initial=0.0)))) for k, v in ref.items()}
    tensors = {k: torch.tensor(v, dtype=dtype, device=DEVICE) for k, v in rounded.items()}
    out = compile_cascade(cascade)(**tensors)
    got = {k: v.detach().double().cpu().numpy() for k, v in out.items()}
    verdict = compare(got, ref, ref32)
    assert not verdict.failed, f"{name}: {verdict.detail}"
    return got, ref


def _load(name: str):
    return load(catalogue.FOLDER / f"{name}.ein")


@pytest.mark.parametrize("name", ALIAS)
def test_alias_keys_compile_and_match_in_fp32(name):
    _check(name, _load(name))


def test_mamba2_runs_as_two_kernels_one_per_streamed_rank():
    # its cumulative decay reduces over m2 and its output over m: two streamed ranks, which one
    # kernel refuses (at line 12); cut into a kernel per reduction rank it lowers
    # (tests/test_triton_multirank.py has the mechanisms on fresh cascades)
    cascade = _load("L9_mamba2_ssd")
    with pytest.raises(CascadeError, match="several sequence ranks") as info:
        generate(prepare(cascade), resolve_sizes(cascade, {}), Config())
    assert info.value.span.line == 12
    _check("L9_mamba2_ssd", cascade)


@pytest.mark.parametrize("name", FP16)
def test_alias_keys_match_in_fp16(name):
    _check(name, _load(name), torch.float16)


def test_alias_rank_spelling_matches_like_the_index_spelling():
    # ``rank M = P`` (an alias rank) is the same cascade as ``index m : P``
    text = _load("M1_sliding_window").source.replace("index m : P", "rank M = P")
    _check("M1_sliding_window", loads(text, "alias.ein"))


@pytest.mark.parametrize("name", VALUES)
def test_real_parameters_and_empty_values(name):
    _check(name, _load(name))


LSE_MASKED = """
rank P = 6, E = 4, F = 3
index m : P
input Q[p, e], K[m, e], V[m, f]
output LSE[p] empty -inf, GM[p] empty -1.5, O[p, f] empty 2.0
S[p, m] = sum[e] Q[p, e] * K[m, e] where m < p
GM[p] = max[m] S[p, m]
N[p, m] = exp(S[p, m] - GM[p])
D[p] = sum[m] N[p, m]
LSE[p] = GM[p] + log(D[p])
O[p, f] = sum[m] N[p, m] / D[p] * V[m, f]
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_an_empty_value_is_stored_where_the_output_has_no_point(dtype):
    # row 0 has no key (m < 0): each output holds its declared empty value there
    got, ref = _check("lse", loads(LSE_MASKED, "lse.ein"), dtype)
    assert np.isneginf(ref["LSE"][0]) and np.isneginf(got["LSE"][0])
    assert ref["GM"][0] == got["GM"][0] == -1.5
    assert (ref["O"][0] == 2.0).all() and (got["O"][0] == 2.0).all()
    assert np.isfinite(got["LSE"][1:]).all()


def test_a_real_parameter_set_by_the_user_is_the_kernels_constant():
    cascade = _load("D3_softcap")
    sizes = resolve_sizes(cascade, {"CAP": 0.75})
    x = {n: np.random.default_rng(1).standard_normal(sh) * 4
         for n, sh in input_shapes(cascade, sizes).items()}
    ref = evaluate(cascade, x, {"CAP": 0.75})
    tensors = {k: torch.tensor(v, dtype=torch.float32, device=DEVICE) for k, v in x.items()}
    got = compile_cascade(cascade, CAP=0.75)(**tensors)
    for k, v in ref.items():
        np.testing.assert_allclose(got[k].double().cpu().numpy(), v, rtol=1e-4, atol=1e-4)


def test_an_index_refusal_points_at_the_index_itself():
    # a refusal raised on an expression a rewrite built (no span) points at the index's written
    # use in the Einsum being lowered, else its first use in the cascade, not at a whole line
    from backends.triton.kernel import _index_node

    cascade = _load("M1_sliding_window")
    gm = next(e for e in cascade.einsums if e.name == "GM")
    node = _index_node(cascade, "p", gm)
    assert (node.span.line, node.span.column) == (9, 6)  # GM[h,p]
    first = _index_node(cascade, "m", None)
    assert (first.span.line, first.span.column) == (8, 8)  # QK[h,p,m]
    assert _index_node(cascade, "z", gm) is None


SOFTCAP = """rank P = 3, M = 4
param CAP = 30.0, HALF = CAP / 2
input S[p,m]
output O[p,m]
O[p,m] = CAP * tanh(S[p,m] / HALF)
"""


@pytest.mark.parametrize("params", [{}, {"CAP": 0.5}])
def test_a_derived_real_parameter_follows_its_override(params):
    # HALF = CAP / 2 is resolved with the override before it is baked into the kernel
    s = np.random.default_rng(5).standard_normal((3, 4)) * 50
    cap = params.get("CAP", 30.0)
    got = compile_cascade(loads(SOFTCAP, "softcap.ein"), **params)(
        S=torch.tensor(s, dtype=torch.float32, device=DEVICE))["O"].double().cpu().numpy()
    np.testing.assert_allclose(got, cap * np.tanh(s / (cap / 2)), rtol=1e-5, atol=1e-5)
