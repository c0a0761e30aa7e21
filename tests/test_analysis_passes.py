"""The pass count (FuseMax's bound over the streamed rank) and the footprint."""
import json

import pytest

from cascade_cli.main import main
from einsum_ir import load, loads
from einsum_ir.analysis import count_passes, default_rank, footprint
from einsum_ir.analysis.passcount import covering_ranks
from einsum_ir.errors import CascadeError

EX = "examples/attention/"


@pytest.mark.parametrize("name, rank, passes", [
    ("mha_3pass", "M", 3), ("mha_2pass", "M1", 2), ("mha_2pass_deferred", "M", 2),
    ("mha_1pass", "M1", 1),
    # masked and grouped variants keep the count of their unmasked form
    ("causal", "M", 3), ("sliding_window", "M", 3), ("gqa", "M", 3),
])
def test_pass_counts(name, rank, passes):
    report = count_passes(load(EX + name + ".ein"))
    assert (report.rank, report.passes) == (rank, passes)


def test_per_einsum_passes_of_3pass():
    report = count_passes(load(EX + "mha_3pass.ein"))
    assert report.per_einsum == {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "A": 3, "AV": 3}


def test_2pass_reads_qk_through_the_split_and_counts_over_m1():
    # A iterates m (rank M covers the tiles M1) and reads the final iterates RM[.., M1], RD[.., M1]
    report = count_passes(load(EX + "mha_2pass.ein"))
    assert report.per_einsum["A"] == report.per_einsum["AV"] == 2
    assert all(p == 1 for k, p in report.per_einsum.items() if k not in ("A", "AV"))
    assert covering_ranks(load(EX + "mha_2pass.ein"), "M1") == {"M", "M1"}


def test_1pass_reports_bounded_revisits_of_m0():
    report = count_passes(load(EX + "mha_1pass.ein"))
    assert report.passes == 1 and set(report.per_einsum.values()) == {1}
    assert (report.inner_rank, report.inner_passes, report.inner_tile) == ("M0", 2, 64)
    assert any("revisited 2 times" in n and "bounded" in n for n in report.notes)
    assert report.costs == ()


def test_extra_pass_costs_name_the_crossing_tensors_and_the_reread_inputs():
    report = count_passes(load(EX + "mha_3pass.ein"), sizes={"P": 128, "M": 512})
    c2, c3 = report.costs
    assert (c2.index, c2.crossing, c2.reread) == (2, ("QK",), ("K",))
    assert (c3.index, c3.crossing, c3.reread) == (3, ("SN",), ("K",))
    assert c2.keep_bytes == 1 * 2 * 128 * 512 * 2  # B*H*P*M at 2 bytes
    assert c2.reread_bytes == 1 * 2 * 512 * 64 * 2  # K: B*H*M*E
    assert c2.keep_bytes_per_row == 512 * 2  # one row of QK: M values
    assert count_passes(load(EX + "mha_2pass.ein"), sizes={"M": 512}).costs[0].keep_bytes_per_row \
        == 512 * 2  # QK[b,h,p,m1,m0]: a row is M1 x M0
    # final iterates (RM[.., M1]) are per-row values, not streamed tensors
    assert count_passes(load(EX + "mha_2pass.ein")).costs[0].crossing == ("QK",)


def test_rank_option_and_defaults():
    assert count_passes(load(EX + "mha_3pass.ein"), "P").passes == 1
    assert count_passes(load(EX + "mha_1pass.ein"), "M").passes == 1
    assert default_rank(load(EX + "linear.ein")) == "M"
    assert default_rank(load(EX + "linear_causal_chunked.ein")) == "N"
    with pytest.raises(CascadeError, match="no rank named 'Z'"):
        count_passes(load(EX + "mha_3pass.ein"), "Z")


def test_deferred_causal_and_renamed_ranks():
    text = """
rank I = 16, J = 24, D = 8
input  Q[i,d], K[j,d], V[j,d]
output O[i,d]
S[i,j]  = sum[d] Q[i,d] * K[j,d] where j <= i
X[i]    = max[j] S[i,j]
N[i,j]  = exp(S[i,j] - X[i])
Z[i]    = sum[j] N[i,j]
NV[i,d] = sum[j] N[i,j] * V[j,d]
O[i,d]  = NV[i,d] / Z[i]
"""
    report = count_passes(loads(text))
    assert (report.rank, report.passes) == ("J", 2)
    assert report.per_einsum == {"S": 1, "X": 1, "N": 2, "Z": 2, "NV": 2, "O": 2}


def test_cli_passes_json_for_the_four_forms(capsys):
    got = {}
    for name in ("mha_3pass", "mha_2pass", "mha_2pass_deferred", "mha_1pass"):
        assert main(["passes", EX + name + ".ein", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert {"rank", "passes", "per_einsum"} <= info.keys()
        got[name] = info["passes"]
    assert got == {"mha_3pass": 3, "mha_2pass": 2, "mha_2pass_deferred": 2, "mha_1pass": 1}


def test_cli_passes_text_and_errors(capsys):
    assert main(["passes", EX + "mha_3pass.ein"]) == 0
    out = capsys.readouterr().out
    assert "3 passes over M" in out and "pass 3: A AV" in out and "re-reading K" in out
    assert main(["passes", EX + "mha_3pass.ein", "--rank", "Q"]) == 1
    assert "no rank named 'Q'" in capsys.readouterr().err


def test_footprint_bytes_and_live_set():
    fp = footprint(load(EX + "mha_3pass.ein"), {"P": 64, "M": 32}, "float32")
    assert fp.tensor_bytes["QK"] == 2 * 64 * 32 * 4
    assert fp.tensor_bytes["GM"] == 2 * 64 * 4
    steps = {s.einsums: s for s in fp.steps}
    assert "QK" in steps[("SN",)].live and "QK" not in steps[("SD",)].live
    assert "AV" in fp.steps[-1].live
    assert fp.peak_bytes == max(s.bytes for s in fp.steps)
    rec = footprint(load(EX + "mha_1pass.ein"), {}, "float16")
    assert rec.tensor_bytes["RM"] == 2 * 256 * (4 + 1) * 2  # an iterative axis holds M1 + 1


def test_cli_footprint(capsys):
    assert main(["footprint", EX + "causal.ein", "--dtype", "float32"]) == 0
    assert "peak" in capsys.readouterr().out


def test_demo_section_runs(capsys):
    from cascade_cli.commands.analyze import demo_section

    demo_section(EX)
    out = capsys.readouterr().out
    assert "mha_2pass.ein            2 passes over M1" in out
    assert "(0.500 of dense)" in out and out.count("3 -> 1 pass") == 4
