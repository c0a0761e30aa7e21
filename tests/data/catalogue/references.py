"""Plain numpy references for the catalogue cascades, written from the math of
/work/shared/reference/variants.md (not from the cascades).

``REFERENCES[id](x, s)`` takes the inputs ``x`` (name -> array) and the resolved sizes ``s`` and
returns the outputs (name -> array; empty points as the output's declared empty value).
``INPUTS[id](rng, shapes)`` makes inputs where standard normals do not fit (integer indices,
0/1 adjacency). ``SIM_SIZES[id]`` are the moderate sizes at which the bench simulates.
"""
from __future__ import annotations

import numpy as np


def softmax(s, mask=None, axis=-1):
    """Softmax over ``axis`` of the kept entries; masked entries get weight 0."""
    s = np.where(mask, s, -np.inf) if mask is not None else s
    e = np.exp(s - s.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def attend(q, k, v, mask=None, scale=None):
    """softmax(q k^T * scale) v over the last two axes (q [.., p, e], k [.., m, e])."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.einsum("...pe,...me->...pm", q, k) * scale
    return np.einsum("...pm,...mf->...pf", softmax(s, mask), v)


def _pm(p, m):
    return np.arange(p)[:, None], np.arange(m)[None, :]


# ------------------------------------------------------------------ dense


def d1(x, s):
    return {"AV": attend(x["Q"], x["K"], x["V"])}


def d2_gqa(x, s):
    g = s["G"]
    k, v = np.repeat(x["K"], g, 0), np.repeat(x["V"], g, 0)
    return {"AV": attend(x["Q"], k, v)}


def d2_mqa(x, s):
    return {"AV": attend(x["Q"], x["K"][None], x["V"][None])}


def d3_relative_bias(x, s):
    q, k, v, table = x["Q"], x["K"], x["V"], x["Bias"]
    p, m = _pm(s["P"], s["M"])
    bias = table[:, p - m + s["M"]]  # [h, p, m]
    sc = np.einsum("hpe,hme->hpm", q, k) / np.sqrt(s["E"]) + bias
    return {"AV": softmax(sc) @ v}


def d3_alibi(x, s):
    p, m = _pm(s["P"], s["P"])
    sc = np.einsum("hpe,hme->hpm", x["Q"], x["K"]) / np.sqrt(s["E"])
    sc = sc - x["Slope"][:, None, None] * (p - m)
    return {"AV": softmax(sc, m <= p) @ x["V"]}


def d3_softcap(x, s):
    sc = s["CAP"] * np.tanh(np.einsum("hpe,hme->hpm", x["Q"], x["K"]) / s["CAP"])
    return {"AV": softmax(sc) @ x["V"]}


def d4(x, s):
    temp = np.log1p(np.exp(x["Tau"]))[..., None]
    sc = temp * np.einsum("hpe,hme->hpm", x["Q"], x["K"]) / np.sqrt(s["E"])
    return {"AV": softmax(sc) @ x["V"]}


def d5_hopfield(x, s):
    xi, k = x["Q"], x["K"]
    for _ in range(s["T"]):
        xi = softmax(s["BETA"] * xi @ k.T) @ k
    return {"O": xi}


def d6_moh(x, s):
    heads = attend(x["Q"], x["K"], x["V"])  # [h, p, f]
    w = softmax(x["Router"], axis=1)  # [p, h]
    return {"O": np.einsum("ph,hpf->pf", w, heads)}


def d7_shared(x, s):
    a = softmax(np.einsum("hpe,hme->hpm", x["Q"], x["K"]) / np.sqrt(s["E"]))
    return {"O1": a @ x["V1"], "O2": a @ x["V2"]}


# ------------------------------------------------------------------ reference cascades


def r2_split_kv(x, s):
    q, k, v = x["Q"], x["K"], x["V"]
    P, C, S = s["P"], s["C"], s["S"]
    lse = np.full((q.shape[0], P, S), -np.inf)
    sc = np.einsum("hpe,hme->hpm", q, k) / np.sqrt(s["E"])
    for j in range(S):
        for p in range(P):
            keys = [m for m in range(j * C, min((j + 1) * C, P)) if m <= p]
            if keys:
                lse[:, p, j] = np.log(np.exp(sc[:, p, keys]).sum(-1))
    p, m = _pm(P, P)
    return {"LSE": lse, "AV": softmax(sc, m <= p) @ v}


# ------------------------------------------------------------------ static masks


def _causal_attend(x, s, keep):
    p, m = _pm(s["P"], s["P"])
    h = np.arange(x["Q"].shape[0])[:, None, None] if x["Q"].ndim == 3 else None
    mask = keep(p, m, h)
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def m1_window(x, s):
    return _causal_attend(x, s, lambda p, m, h: (m <= p) & (p - m < s["W"]))


def m1_sinks(x, s):
    return _causal_attend(x, s, lambda p, m, h: (m <= p) & ((p - m < s["W"]) | (m < s["S"])))


def m2(x, s):
    return _causal_attend(x, s, lambda p, m, h: (m <= p) & (p - m < s["W0"] + h * s["WS"]))


def m3(x, s):
    return _causal_attend(x, s, lambda p, m, h: (m <= p) & (((m + h) % s["ST"] == 0)
                                                            | (p - m < s["L"])))


def m4(x, s):
    dists = {0} | {2 ** i for i in range(10)}
    return _causal_attend(x, s, lambda p, m, h: np.isin(p - m, sorted(dists)))


def _grid(s):
    p = np.arange(s["P"])
    return p // s["WI"], p % s["WI"]


def _natten_centre(c, n, r, d):
    """NATTEN: along a dilated axis, positions of residue c % d form their own sequence; the
    window centre is clamped inside it so that the window holds 2r + 1 positions."""
    res, i = c % d, c // d
    length = len(range(res, n, d))
    return res + d * np.clip(i, r, length - 1 - r)


def m5(x, s):
    y, xx = _grid(s)
    r, d = s["R"], s["D"]
    cy = np.array([_natten_centre(v, s["HI"], r, d) for v in y])
    cx = np.array([_natten_centre(v, s["WI"], r, d) for v in xx])
    mask = ((np.abs(cy[:, None] - y[None]) <= r * d) & (np.abs(cx[:, None] - xx[None]) <= r * d)
            & ((y[:, None] - y[None]) % d == 0) & ((xx[:, None] - xx[None]) % d == 0))
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def m6(x, s):
    y, xx = _grid(s)
    dist2 = (y[:, None] - y[None]) ** 2 + (xx[:, None] - xx[None]) ** 2
    return {"AV": attend(x["Q"], x["K"], x["V"], dist2 <= s["R"] ** 2)}


def m7(x, s):
    p, m = _pm(s["P"], s["P"])
    start = (p // s["BL"]) * s["BL"]
    mask = (m >= start - s["HALO"]) & (m < start + s["BL"] + s["HALO"])
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def m8_grid(x, s):
    y, xx = _grid(s)
    sy, sx = s["HI"] // s["GY"], s["WI"] // s["GX"]  # window size: a grid cell's stride
    mask = (y[:, None] % sy == y[None] % sy) & (xx[:, None] % sx == xx[None] % sx)
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def m8_block(x, s):
    y, xx = _grid(s)
    by, bx = y // s["BY"], xx // s["BX"]
    mask = (by[:, None] == by[None]) & (bx[:, None] == bx[None])
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def m9_axial(x, s):
    t = x["T"]  # [y, x, e]
    row = attend(t, t, t)  # per image row y: attention over x
    col = np.swapaxes(row, 0, 1)  # [x, y, e]
    return {"O": np.swapaxes(attend(col, col, col), 0, 1)}


def m10(x, s):
    return _causal_attend(x, s, lambda p, m, h: m // s["BL"] <= p // s["BL"])


def m11(x, s):
    p, m = _pm(s["P"], s["P"])
    return {"AV": attend(x["Q"], x["K"], x["V"], (x["Adj"] > 0) | (p == m))}


# ------------------------------------------------------------------ data-dependent sparsity


def _top_rank(scores):
    """For each entry, how many entries of its row are strictly larger."""
    return (scores[..., None, :] > scores[..., :, None]).sum(-1)


def _block_routed(x, s, bs, keep):
    P = s["P"]
    nb = P // bs
    qp = x["Q"].reshape(nb, bs, -1).mean(1)
    kp = x["K"].reshape(nb, bs, -1).mean(1)
    chosen = _top_rank(qp @ kp.T) < keep  # [query block, key block]
    p = np.arange(P)
    mask = chosen[p[:, None] // bs, p[None, :] // bs]
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def s1(x, s):
    return _block_routed(x, s, s["BS"], s["KB"])


def s4(x, s):
    return _block_routed(x, s, s["RS"], s["TR"])


def s2(x, s):
    P = s["P"]
    p, m = _pm(P, P)
    d = np.clip(p - m, 0, P - 1)
    vert = x["Vert"][:, None, :] > 0
    slash = x["Slash"][:, d] > 0
    mask = (m <= p) & (vert | (slash & (p >= m)) | (p == m))
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def s7(x, s):
    sc = np.einsum("hpe,hme->hpm", x["Q"], x["K"]) / np.sqrt(s["E"])
    return {"AV": softmax(sc, _top_rank(sc) < s["TK"]) @ x["V"]}


def s6(x, s):
    cq = np.argmax(x["Q"] @ x["Mu"].T, 1)
    ck = np.argmax(x["K"] @ x["Mu"].T, 1)
    p, m = _pm(s["P"], s["P"])
    return {"AV": attend(x["Q"], x["K"], x["V"], (cq[:, None] == ck[None]) | (p == m))}


def s11(x, s):
    idx = x["Idx"].astype(int)
    kg, vg = x["K"][idx], x["V"][idx]  # [p, j, e]
    sc = np.einsum("pe,pje->pj", x["Q"], kg) / np.sqrt(s["E"])
    return {"AV": np.einsum("pj,pjf->pf", softmax(sc), vg)}


def s12(x, s):
    P, W = s["P"], s["W"]
    sc = x["Q"] @ x["K"].T / np.sqrt(s["E"])
    votes = softmax(sc[P - W:]).sum(0)[: P - W]  # window queries vote for the earlier keys
    keep = np.zeros(P, bool)
    keep[: P - W] = _top_rank(votes) < s["TK"]
    keep[P - W:] = True
    return {"AV": softmax(sc, np.broadcast_to(keep, (P, P))) @ x["V"]}


# ------------------------------------------------------------------ linear


def _elu1(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0))) + 1


def l3(x, s):
    q, k = _elu1(x["Q"]), _elu1(x["K"])
    num = np.einsum("hpe,hme,hmf->hpf", q, k, x["V"])
    den = np.einsum("hpe,hme->hp", q, k)
    return {"O": num / den[..., None]}


def l2_decay(x, s):
    P = s["P"]
    p, m = _pm(P, P)
    lam = np.log1p(np.exp(x["Rate"]))[:, None, None]
    dec = np.where(m <= p, np.exp(-lam * np.maximum(p - m, 0)), 0.0)
    return {"O": (np.einsum("hpe,hme->hpm", x["Q"], x["K"]) * dec) @ x["V"]}


def l2_chunked(x, s):
    # the recurrent form o_t = q_t S_t, S_t = lam S_{t-1} + k_t v_t^T (the tiling is the cascade's)
    lam = np.exp(-s["RATE"])
    st = np.zeros((s["E"], s["F"]))
    out = []
    for t in range(s["P"]):
        st = lam * st + np.outer(x["K"][t], x["V"][t])
        out.append(x["Q"][t] @ st)
    return {"O": np.array(out)}


def l9_ssd(x, s):
    a = 1 / (1 + np.exp(-x["A"]))
    st = np.zeros((s["N"], s["F"]))
    out = []
    for t in range(s["P"]):  # the recurrence h_t = a_t h_{t-1} + B_t x_t^T, y_t = C_t h_t
        st = a[t] * st + np.outer(x["Bk"][t], x["X"][t])
        out.append(x["Cq"][t] @ st)
    return {"O": np.array(out)}


def l9_gated_delta(x, s):
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    st = np.zeros((s["F"], s["E"]))  # S maps keys to values: S k = v
    out = []
    for t in range(s["P"]):
        k = x["K"][t] / np.linalg.norm(x["K"][t])
        a, b = sig(x["Ga"][t]), sig(x["Gb"][t])
        st = a * (st - b * np.outer(st @ k, k)) + b * np.outer(x["V"][t], k)
        out.append(st @ x["Q"][t])
    return {"O": np.array(out)}


def l1(x, s):
    o = x["Q"] @ x["K"].T @ x["V"]
    return {"O": o / np.sqrt((o ** 2).mean(1, keepdims=True) + s["EPS"])}


def l4(x, s):
    qf, kf = softmax(x["Q"] @ x["W"]), softmax(x["K"] @ x["W"])
    a = qf @ kf.T
    return {"O": a @ x["V"] / a.sum(1, keepdims=True)}


def l7(x, s):
    a = np.maximum(x["Q"], 0) @ np.maximum(x["K"], 0).T
    w = a - a.mean(1, keepdims=True) + 1 / s["M"]
    return {"O": w @ x["V"]}


# ------------------------------------------------------------------ hybrid


def h1(x, s):
    agents = attend(x["Ag"], x["K"], x["V"])  # [h, na, f]
    return {"O": attend(x["Q"], x["Ag"], agents)}


def h2(x, s):
    P, E = s["P"], s["E"]
    c = E ** -0.25
    lr = _elu1(x["Q"] * c) @ _elu1(x["K"] * c).T
    p, m = _pm(P, P)
    near = np.abs(p - m) <= s["W"]
    a = np.where(near, np.exp(x["Q"] @ x["K"].T / np.sqrt(E)), lr)
    return {"O": a @ x["V"] / a.sum(1, keepdims=True)}


def h3(x, s):
    q, k, v, bs, hh = x["Q"], x["K"], x["V"], s["BS"], s["HH"]
    H, P = q.shape[0], s["P"]
    blk = np.arange(P) // bs
    hi = attend(q, k, v, blk[:, None] == blk[None])
    kp = k.reshape(H, P // bs, bs, -1).mean(2)
    vp = v.reshape(H, P // bs, bs, -1).mean(2)
    lo = attend(q, kp, vp)
    heads = np.arange(H)[:, None, None]
    return {"OHI": np.where(heads < hh, hi, 0.0), "OLO": np.where(heads >= hh, lo, 0.0)}


def h5(x, s):
    P = s["P"]
    p, m = _pm(P, P)
    sw = attend(x["Q"], x["K"], x["V"], (m <= p) & (p - m < s["W"]))
    a = np.einsum("hpe,hme->hpm", _elu1(x["Q"]), _elu1(x["K"])) * (m <= p)
    ln = a @ x["V"] / a.sum(-1, keepdims=True)
    g = (1 / (1 + np.exp(-x["Mix"])))[:, None, None]
    return {"O": g * sw + (1 - g) * ln}


# ------------------------------------------------------------------ cross and channel


def x1(x, s):
    P, M = s["P"], s["M"]
    frames = np.floor(np.arange(M) * P / M)  # the query time at which token m appears
    mask = frames[None, :] <= np.arange(P)[:, None]
    return {"AV": attend(x["Q"], x["K"], x["V"], mask)}


def x2(x, s):
    q = x["Lq"] @ x["Wq"]
    return {"O": attend(np.broadcast_to(q, (s["B"],) + q.shape), x["K"], x["V"])}


def x4(x, s):
    t = x["X"]
    qp = t.reshape(s["P"] // s["PS"], s["PS"], -1).mean(1)
    return {"O": attend(qp, t, x["V"])}


def c1(x, s):
    q, k, v = (np.moveaxis(x[n], 0, -1) for n in "QKV")  # [g, cg, p]: channels as tokens
    return {"O": np.moveaxis(attend(q, k, v, scale=1 / np.sqrt(s["P"])), -1, 0)}


REFERENCES = {
    "D1_mha": d1, "D2_gqa": d2_gqa, "D2_mqa": d2_mqa, "D3_relative_bias": d3_relative_bias,
    "D3_alibi_causal": d3_alibi, "D3_softcap": d3_softcap, "D4_query_temperature": d4,
    "D5_hopfield": d5_hopfield, "D6_mixture_of_heads": d6_moh, "D7_shared_map": d7_shared,
    "R1_online_softmax": d1, "R2_split_kv_lse": r2_split_kv,
    "M1_sliding_window": m1_window, "M1_sinks": m1_sinks, "M2_per_head_window": m2,
    "M3_strided_shards": m3, "M4_power_distance": m4, "M5_neighbourhood_2d": m5,
    "M6_circular_2d": m6, "M7_halo_blocked": m7, "M8_maxvit_grid": m8_grid,
    "M8_maxvit_block": m8_block, "M9_axial": m9_axial, "M10_block_causal": m10, "M11_graph": m11,
    "S1_block_gate": s1, "S2_vertical_slash": s2, "S4_biformer_routing": s4,
    "S6_cluster_routing": s6, "S7_topk": s7, "S11_index_gather": s11, "S12_snapkv": s12,
    "L1_transnormer": l1, "L2_lightning_decay": l2_decay, "L2_lightning_chunked": l2_chunked,
    "L3_kernel_linear": l3, "L4_hedgehog": l4, "L7_inline": l7, "L9_mamba2_ssd": l9_ssd,
    "L9_gated_deltanet": l9_gated_delta,
    "H1_agent": h1, "H2_scatterbrain": h2, "H3_hilo": h3, "H5_linear_plus_window": h5,
    "X1_causal_cross": x1, "X2_query_pool": x2, "X4_pooled_query": x4,
    "C1_channel_attention": c1,
}


def _index_inputs(rng, shapes):
    p, j = shapes["Idx"]
    m = shapes["K"][0]
    x = {n: rng.standard_normal(sh) for n, sh in shapes.items() if n != "Idx"}
    x["Idx"] = np.stack([rng.choice(m, j, replace=False) for _ in range(p)]).astype(np.float64)
    return x


def _adjacency_inputs(rng, shapes):
    x = {n: rng.standard_normal(sh) for n, sh in shapes.items()}
    x["Adj"] = (rng.random(shapes["Adj"]) < 0.3).astype(np.float64)
    return x


INPUTS = {"S11_index_gather": _index_inputs, "M11_graph": _adjacency_inputs}

_SELF = {"P": 509}
SIM_SIZES = {
    **{k: {"P": 509, "M": 509} for k in REFERENCES if k.startswith(("D", "X1", "R1"))},
    "D2_gqa": {"P": 509, "M": 509, "H": 8, "G": 4}, "D5_hopfield": {"P": 255, "M": 509},
    "D3_alibi_causal": _SELF, "R2_split_kv_lse": {"P": 509, "C": 61},
    **{k: _SELF for k in REFERENCES if k.startswith(("M", "L", "H", "S"))},
    "M5_neighbourhood_2d": {"HI": 23, "WI": 22, "R": 3}, "M6_circular_2d": {"HI": 23, "WI": 22, "R": 3},
    "M8_maxvit_grid": {"HI": 24, "WI": 21, "GY": 4, "GX": 3},
    "M8_maxvit_block": {"HI": 24, "WI": 21, "BY": 4, "BX": 3},
    "M9_axial": {"Y": 23, "X": 22, "E": 32}, "M7_halo_blocked": {"P": 509, "BL": 31, "HALO": 3},
    "M1_sliding_window": {"P": 509, "W": 61}, "M1_sinks": {"P": 509, "W": 61, "S": 4},
    "S1_block_gate": {"P": 510, "BS": 30}, "S4_biformer_routing": {"P": 510, "RS": 30},
    "H3_hilo": {"P": 510, "BS": 30}, "X4_pooled_query": {"P": 510, "PS": 6},
    "L2_lightning_chunked": {"P": 510, "C": 30}, "L9_gated_deltanet": {"P": 255},
    "S11_index_gather": {"P": 255, "M": 509, "J": 31}, "X2_query_pool": {"M": 509, "B": 7},
    "L1_transnormer": {"P": 509, "M": 509}, "L3_kernel_linear": {"P": 509, "M": 509},
    "L4_hedgehog": {"P": 509, "M": 509}, "L7_inline": {"P": 509, "M": 509},
    "H1_agent": {"P": 509, "M": 509, "NA": 7}, "X1_causal_cross": {"P": 127, "M": 509},
    "C1_channel_attention": {"P": 509, "CG": 31, "G": 4},
}

