"""Values over three tile ranks in the Triton lowering (issue 11): the tile IR's Insert and
Permute nodes, ``broadcast`` for any subset and order of axes, and cascades that need a 3-D tile
(fresh ones at sizes that are not powers of two, and three catalogue rows) against the
interpreter under TRITON_INTERPRET=1, in fp32 and fp16. A value over four tile ranks, and a 3-D
tile past MAX_TILE_ELEMENTS, stay located refusals."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from triton_lane import DEVICE, torch  # noqa: E402 (sets TRITON_INTERPRET first)

from backends.gpu.plan import Config  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from backends.triton.api import CompiledCascade, generate_for, prepare_for  # noqa: E402
from backends.triton.kernel import MAX_TILE_ELEMENTS, broadcast  # noqa: E402
from backends.triton.render import expr  # noqa: E402
from backends.triton.strategies import TILES_3D  # noqa: E402
from backends.triton.tile_ir import Call, Expand, Insert, Permute, Var  # noqa: E402
from einsum_ir import evaluate, load, loads, resolve_sizes  # noqa: E402
from einsum_ir.errors import CascadeError  # noqa: E402
from harness.compare import compare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import catalogue  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's log(0), 0 / 0
X = Var("x")
TILE_3D = re.compile(r"\[(:|None), (:|None), (:|None)\]")  # an axis inserted into a 3-D tile
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


# ------------------------------------------------------------------ nodes and broadcasts


def test_insert_and_permute_render_with_the_2d_spellings_unchanged():
    assert expr(Insert(X, (False, True, False))) == "x[:, None, :]"
    assert expr(Insert(X, (True, True, False))) == "x[None, None, :]"
    assert expr(Insert(X, (False, False, True))) == "x[:, :, None]"
    assert expr(Insert(X, (False, True))) == expr(Expand(X, "row")) == "x[:, None]"
    assert expr(Permute(X, (2, 0, 1))) == "tl.permute(x, (2, 0, 1))"
    assert expr(Permute(X, (1, 0))) == expr(Call("trans", (X,))) == "tl.trans(x)"


def test_broadcast_keeps_the_2d_nodes():
    assert broadcast(X, ("p",), ("p", "m")) == Expand(X, "row")
    assert broadcast(X, ("m",), ("p", "m")) == Expand(X, "col")
    assert broadcast(X, ("m", "p"), ("p", "m")) == Call("trans", (X,))
    assert broadcast(X, ("p", "m"), ("p", "m")) is X
    assert broadcast(X, (), ("p", "m", "e")) is X


@pytest.mark.parametrize("axes,code", [
    (("p",), "x[:, None, None]"), (("m",), "x[None, :, None]"), (("e",), "x[None, None, :]"),
    (("p", "m"), "x[:, :, None]"), (("p", "e"), "x[:, None, :]"), (("m", "e"), "x[None, :, :]"),
    (("e", "p"), "tl.trans(x)[:, None, :]"), (("e", "m"), "tl.trans(x)[None, :, :]"),
    (("m", "e", "p"), "tl.permute(x, (2, 0, 1))"), (("e", "p", "m"), "tl.permute(x, (1, 2, 0))"),
    (("m", "p", "e"), "tl.permute(x, (1, 0, 2))"),
])
def test_broadcast_permutes_then_inserts_for_any_axes(axes, code):
    assert expr(broadcast(X, axes, ("p", "m", "e"))) == code


@pytest.mark.parametrize("axes", [("p", "p"), ("q",), ("p", "q", "m")])
def test_broadcast_refuses_axes_outside_the_target(axes):
    with pytest.raises(CascadeError, match="cannot broadcast"):
        broadcast(X, axes, ("p", "m", "e"))


def test_broadcast_matches_numpy_for_every_order():
    """What the spelling means: numpy's transpose and newaxis, checked on values."""
    import itertools

    target, shape = ("p", "m", "e"), {"p": 2, "m": 3, "e": 4}
    for k in (1, 2, 3):
        for axes in itertools.permutations(target, k):
            x = np.arange(np.prod([shape[a] for a in axes])).reshape([shape[a] for a in axes])
            code = expr(broadcast(X, axes, target)).replace("tl.trans", "np.transpose") \
                .replace("tl.permute", "np.transpose")
            got = eval(code, {"np": np, "x": x, "None": None})  # noqa: S307 (our own spelling)
            want = np.einsum(f"{''.join(axes)}->{''.join(a for a in target if a in axes)}", x)
            want = want.reshape([shape[a] if a in axes else 1 for a in target])
            np.testing.assert_array_equal(got, want, err_msg=str(axes))


# ------------------------------------------------------------------ fresh cascades


WEIGHTED_STATE = """
rank P = 10, E = 5, F = 3, C = 5
index d : C
split P = N * C
input  Q[p,e], K[p,e], V[p,f], W[p]
output O[p,f]
KV[n,e,f]    = sum[d] K[n*C + d,e] * V[n*C + d,f] * W[n*C + d]
ST[0,e,f]    = 0
ST[n+1,e,f]  = ST[n,e,f] + KV[n,e,f]
SC[n,c,d]    = sum[e] Q[n*C + c,e] * K[n*C + d,e] where d <= c
INTRA[n,c,f] = sum[d] SC[n,c,d] * W[n*C + d] * V[n*C + d,f]
INTER[n,c,f] = sum[e] Q[n*C + c,e] * ST[n,e,f]
O[p,f]       = INTRA[p / C, p % C, f] + INTER[p / C, p % C, f]
"""  # the chunk state weighs each position: KV is a sum over d of a tile over d, e, f

WINDOWED_SPLIT_KV = """
rank P = 7, E = 5, F = 3, C = 3, W = 4
index m : P
split M = S * C
input  Q[p,e], K[m,e], V[m,f]
output AV[p,f]
QK[p,s,c] = sum[e] Q[p,e] * K[s*C + c,e] where s*C + c <= p and p - (s*C + c) < W
LM[p,s]   = max[c] QK[p,s,c]
SN[p,s,c] = exp(QK[p,s,c] - LM[p,s])
LD[p,s]   = sum[c] SN[p,s,c]
PO[p,s,f] = sum[c] SN[p,s,c] * V[s*C + c,f]
LSE[p,s]  = LM[p,s] + log(LD[p,s])
GL[p]     = max[s] LSE[p,s]
WS[p,s]   = exp(LSE[p,s] - GL[p])
AV[p,f]   = sum[s] WS[p,s] * PO[p,s,f] / LD[p,s] / (sum[s] WS[p,s])
"""  # split-KV over chunks of 3 keys with a window: the scores span s, c, e per query

TRILINEAR = """
rank P = 5, M = 7, E = 3, F = 6
input  Q[p,e], K[m,e], U[f,e]
output O[p,f]
T[p,m,f] = sum[e] Q[p,e] * K[m,e] * U[f,e]
O[p,f]   = max[m] T[p,m,f]
"""  # a three-way product over e: m, f, e per query

MASKED_3D = """
rank P = 5, M = 7, E = 3, F = 6
input  Q[p,e], K[m,e], V[m,f]
output O[p,f]
S[p,m]   = sum[e] Q[p,e] * K[m,e]
T[p,m,f] = S[p,m] * V[m,f] where m + f <= p + 4
O[p,f]   = max[m] T[p,m,f]
"""  # a predicate over three tile axes (rows tiled: p, m, f)

OUTER = """
rank H = 2, P = 7, M = 9, E = 4, F = 3, G = 2
input  Q[h,p,e], K[h,m,e], V[h,m,f], U[h,m,g]
output O[h,p,f,g]
S[h,p,m]     = sum[e] Q[h,p,e] * K[h,m,e]
X[h,p,m,f,g] = S[h,p,m] * V[h,m,f] * U[h,m,g]
O[h,p,f,g]   = sum[m] X[h,p,m,f,g]
"""  # an outer product of two values per key: m, f, g per query

STORE_3D = """
rank P = 5, M = 7, E = 3, F = 6, G = 2
input  Q[p,e], K[m,e], V[m,f], U[p,g]
output O[p,f,g]
S[p,m]   = sum[e] Q[p,e] * K[m,e]
A[p,f]   = sum[m] S[p,m] * V[m,f]
O[p,f,g] = A[p,f] * U[p,g] where f + g < 6
"""  # an output over three tile axes, stored with a 3-D mask (rows tiled)

FRESH = {"weighted_state": WEIGHTED_STATE, "windowed_split_kv": WINDOWED_SPLIT_KV,
         "trilinear": TRILINEAR, "outer": OUTER}


def _check(cascade, dtype, fn=None, seed=0):
    """The kernel's outputs against the interpreter's on the same rounded inputs (the
    catalogue's tolerances: the harness's in fp32, 1e-2 in fp16)."""
    sizes = resolve_sizes(cascade, {})
    rng = np.random.default_rng(seed)
    inputs = {d.name: rng.standard_normal([sizes[r] for r in d.ranks]) for d in cascade.inputs}
    rounded = {k: torch.tensor(v).to(dtype).double().numpy() for k, v in inputs.items()}
    ref = evaluate(cascade, rounded)
    ref32 = evaluate(cascade, {k: v.astype(np.float32) for k, v in rounded.items()},
                     dtype=np.float32)
    if dtype == torch.float16:
        ref32 = {k: v + 1.25e-3 * (np.abs(v) + max(1.0, float(np.abs(v[np.isfinite(v)]).max(
            initial=0.0)))) for k, v in ref.items()}
    fn = fn or compile_cascade(cascade)
    out = fn(**{k: torch.tensor(v, dtype=dtype, device=DEVICE) for k, v in rounded.items()})
    got = {k: v.detach().double().cpu().numpy() for k, v in out.items()}
    verdict = compare(got, ref, ref32)
    assert not verdict.failed, verdict.detail
    return fn


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(FRESH))
def test_fresh_cascades_that_need_a_3d_tile_match_the_interpreter(name, dtype):
    """With 3-D tiles asked for; where a 2-D lowering exists (a gate folded into one operand of
    tl.dot, rows past the first on the grid), the mapping keeps it and the values still match."""
    cascade = loads(FRESH[name], f"{name}.ein")
    fn = _check(cascade, DTYPES[dtype], CompiledCascade(cascade, {}, {}, resort=TILES_3D))
    source = fn.last.source
    assert "(3-D tiles)" in source
    assert bool(TILE_3D.search(source)) == (name in STILL_3D)


STILL_3D = {"windowed_split_kv", "outer"}  # the others lower in 2-D since the gate fold


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_predicate_over_three_tiled_axes(dtype):
    """With the rows tiled (no rows on the grid): the validity of T spans p, m and f."""
    cascade = loads(MASKED_3D, "masked3d.ein")
    fn = CompiledCascade(cascade, {}, {}, resort=TILES_3D)
    _check(cascade, DTYPES[dtype], fn)
    assert "rows on the grid" not in fn.last.source
    assert "[:, :, None]" in fn.last.source and "axis=1" in fn.last.source


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_store_over_three_tiled_axes(dtype):
    cascade = loads(STORE_3D, "store3d.ein")
    fn = CompiledCascade(cascade, {}, {}, resort=TILES_3D)
    _check(cascade, DTYPES[dtype], fn)
    store = next(line for line in fn.last.source.splitlines() if "tl.store(O_ptr" in line)
    assert "rows on the grid" not in fn.last.source and TILE_3D.search(store)


def test_two_d_cascades_keep_their_code():
    """3-D tiles are the last resort: a cascade that lowers with 2-D tiles is unchanged."""
    fn = compile_cascade(ROOT / "examples" / "attention" / "causal.ein")
    source = fn.source(B=1, H=2, P=64, M=64, E=16, F=16)
    assert "(3-D tiles)" not in source and "None, None" not in source


# ------------------------------------------------------------------ catalogue rows

CATALOGUE = ["R2_split_kv_lse", "L2_lightning_chunked", "X4_pooled_query"]
REFS = catalogue._refs()


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_rows_with_3d_tiles(name, dtype):
    """The stage ``bench/catalogue.py`` runs (its inputs, its tolerances)."""
    cascade = load(catalogue.FOLDER / f"{name}.ein")
    result = catalogue.stage_triton(REFS, name, cascade, dtype)
    assert result["status"] == "ok", result["detail"]


@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_rows_with_3d_tiles_asked_for(name):
    """The same rows with 3-D tiles as the mapping (X4 lowers with the rows on the grid first;
    here its pooling is a tile over np, ps, e)."""
    cascade = load(catalogue.FOLDER / f"{name}.ein")
    fn = _check(cascade, torch.float32, CompiledCascade(cascade, {}, {}, resort=TILES_3D))
    assert "(3-D tiles)" in fn.last.source
    # L2's chunk state is one tl.dot with the decay folded into an operand: no 3-D tile
    assert bool(TILE_3D.search(fn.last.source)) == (name != "L2_lightning_chunked")


# ------------------------------------------------------------------ what stays refused

FOUR_D = """rank P = 5, M = 7, E = 3, F = 3, G = 2
input  Q[p,e], K[m,e], V[m,f], U[m,g]
output O[p,e,f,g]
O[p,e,f,g] = max[m] Q[p,e] * K[m,e] * V[m,f] * U[m,g]
"""  # one Einsum over p, m, e, f, g: no cut helps (a sum of it over e is cut and lowers)


def test_a_4d_tile_is_a_located_refusal():
    with pytest.raises(CascadeError) as info:
        compile_cascade(loads(FOUR_D, "four.ein")).source()
    assert "4-D tile" in info.value.message and "handles 3-D tiles" in info.value.message
    assert info.value.span.line == 4 and "four.ein:4:" in info.value.render()


def test_a_3d_tile_past_the_register_budget_is_a_located_refusal():
    big = WINDOWED_SPLIT_KV.replace("E = 5, F = 3, C = 3", "E = 64, F = 64, C = 64")
    cascade = loads(big, "big.ein")
    prepared = prepare_for(cascade)
    with pytest.raises(CascadeError) as info:
        generate_for(prepared, resolve_sizes(cascade, {}), Config().with_3d_tiles())
    assert f"within {MAX_TILE_ELEMENTS} elements" in info.value.message
    assert "64 x 16 x 64" in info.value.message and info.value.span.line == 7
