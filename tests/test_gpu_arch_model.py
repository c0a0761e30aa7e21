"""GPU targets (YAML with path-addressed errors) and the GPU cost model's choices."""
import pytest

from backends.gpu.arch import detect_arch_name, load_gpu_arch, parse_gpu_arch
from backends.gpu.mapping import choose_mapping, predict
from backends.gpu.plan import Config
from einsum_ir import load, resolve_sizes
from einsum_ir.passes import prepare
from einsum_ir.errors import CascadeError


@pytest.mark.parametrize("name,tflops,hbm", [("h100", 989, 3.35e12), ("h200", 989, 4.8e12),
                                             ("a100", 312, 2.039e12)])
def test_builtin_targets(name, tflops, hbm):
    arch = load_gpu_arch(name)
    assert abs(arch.tensor_flops("bfloat16") / 1e12 - tflops) < 0.01 * tflops
    assert arch.hbm_bytes_per_s == hbm
    assert arch.smem_bytes_per_block <= arch.smem_bytes_per_sm


def test_errors_name_the_path():
    good = load_gpu_arch("h100")
    data = {k: getattr(good, k) for k in good.__dataclass_fields__}
    data["tensor_core_flops_per_clk_per_sm"] = {"float16": -1}
    with pytest.raises(CascadeError, match=r"x.yaml: tensor_core_flops_per_clk_per_sm.float16: "
                                           r"must be a positive number"):
        parse_gpu_arch(data, "x.yaml")
    del data["tensor_core_flops_per_clk_per_sm"]
    with pytest.raises(CascadeError, match="tensor_core_flops_per_clk_per_sm: must map"):
        parse_gpu_arch(data, "x.yaml")
    with pytest.raises(CascadeError, match="x.yaml: sm_count: missing"):
        parse_gpu_arch({"name": "x"}, "x.yaml")
    with pytest.raises(CascadeError, match="bogus: unknown field"):
        parse_gpu_arch({**{k: getattr(good, k) for k in good.__dataclass_fields__}, "bogus": 1},
                       "x.yaml")
    with pytest.raises(CascadeError, match="kind"):
        parse_gpu_arch({"kind": "spatial"}, "fusemax.yaml")
    with pytest.raises(CascadeError, match="no GPU target"):
        load_gpu_arch("b200")
    assert detect_arch_name("NVIDIA H100 80GB HBM3") == "h100"
    assert detect_arch_name("NVIDIA A100-SXM4-80GB") == "a100"


def _sizes(name, pipeline="one-pass", **over):
    c = load(f"examples/attention/{name}.ein")
    return prepare(c, pipeline), resolve_sizes(c, over)


def test_causal_costs_about_half_of_dense_and_fits_on_chip():
    big = dict(B=4, H=16, P=8192, M=8192, E=128, F=128)
    dense = choose_mapping(*_sizes("mha_3pass", **big), dtype="bfloat16")
    causal = choose_mapping(*_sizes("causal", **big), dtype="bfloat16")
    assert dense.breakdown["fits"] and causal.breakdown["fits"]
    assert 0.45 < causal.predicted_s / dense.predicted_s < 0.6
    assert dense.breakdown["tensor_s"] > dense.breakdown["memory_s"]  # compute bound
    flops = 4 * 4 * 16 * 8192 * 8192 * 128
    assert 300e12 < flops / dense.predicted_s < 989e12  # below the tensor-core peak
    assert "predicted" in dense.describe()


def test_sliding_window_time_grows_with_the_window_not_the_sequence():
    def t(P, W):
        c, s = _sizes("sliding_window", "as-written", B=1, H=16, P=P, M=P, E=64, F=64, W=W)
        return predict(c, s, Config(128, 64, 4, 2), load_gpu_arch("h100"), "bfloat16").breakdown["steps"]
    assert t(8192, 256) / t(4096, 256) == pytest.approx(2, rel=0.05)  # linear in P
    assert t(8192, 1024) > 2.5 * t(8192, 256)
    c, s = _sizes("causal", "as-written", B=1, H=16, P=8192, M=8192, E=64, F=64)
    causal = predict(c, s, Config(128, 64, 4, 2), load_gpu_arch("h100"), "bfloat16")
    assert t(8192, 1024) < causal.breakdown["steps"] / 3


def test_overrides_pin_the_mapping_and_big_tiles_are_rejected():
    c, s = _sizes("mha_1pass", B=1, H=8, P=4096, M=4096, E=128, F=128)
    m = choose_mapping(c, s, dtype="float16", overrides=dict(block_r=128, block_c=64,
                                                             num_warps=8, num_stages=3))
    assert (m.config.block_r, m.config.block_c, m.config.num_warps, m.config.num_stages) == \
        (128, 64, 8, 3)
    huge = predict(c, s, Config(128, 128, 4, 8), load_gpu_arch("a100"), "float16")
    assert not huge.breakdown["fits"]


def test_the_mapping_search_cost_does_not_grow_with_the_sequence_length(monkeypatch):
    import backends.gpu.mapping as mapping

    calls = []
    real = mapping.evaluate
    monkeypatch.setattr(mapping, "evaluate", lambda *a: calls.append(1) or real(*a))

    def evaluations(n):
        calls.clear()
        choose_mapping(*_sizes("causal", B=1, H=2, P=n, M=n), dtype="bfloat16")
        return len(calls)

    # the loop bounds are evaluated at a bounded set of row blocks, whatever the length
    assert 0 < evaluations(65536) == evaluations(1 << 20)
    exact = predict(*_sizes("causal", B=1, H=1, P=512, M=512), Config(64, 64, 4, 2),
                    load_gpu_arch("h100"), "bfloat16").breakdown["steps"]
    assert exact == sum(range(1, 9))  # one loop; the 8 row blocks visit 1..8 key blocks


def test_the_gpu_cost_model_imports_nothing_from_the_triton_backend():
    import ast
    import pathlib

    for path in pathlib.Path("backends/gpu").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("backends.triton"), path
                assert not (node.level and (node.module or "").startswith("triton")), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(("backends.triton", "triton", "torch"))
                               for a in node.names), path
