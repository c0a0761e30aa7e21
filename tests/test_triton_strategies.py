"""How the Triton backend chooses a layout (issue 8): the strategies in their declared order
(backends/triton/strategies.py), each attempt recorded; the rows' layout as a plan decision
(backends/gpu/layout.py), rows past the first on the grid decided up front from the count of row
ranks; layout refusals that carry a typed reason, which the fallback reads instead of the
message's words. Generation only: no kernel runs."""
from dataclasses import fields

import pytest

from triton_lane import torch  # noqa: F401,E402 (sets TRITON_INTERPRET first)

import backends.triton.api as api  # noqa: E402
from backends.gpu.layout import Limit, RowLayout, RowStep, lay_out  # noqa: E402
from backends.gpu.plan import Config, row_ranks  # noqa: E402
from backends.triton import compile_cascade  # noqa: E402
from backends.triton.api import generate_for, prepare_for  # noqa: E402
from backends.triton.strategies import STRATEGIES, TILED, Strategy  # noqa: E402
from einsum_ir import loads, resolve_sizes  # noqa: E402
from einsum_ir.errors import CascadeError  # noqa: E402

# a top-k count: the comparison spans p, m, m2 over the row tile; with the rows on the grid,
# one per program, it is a 2-D tile
TOPK = """rank P = 5, M = 6, E = 3
index m2 : M
input  Q[p,e], K[m,e]
output C[p,m]
S[p,m] = sum[e] Q[p,e] * K[m,e]
C[p,m] = sum[m2] S[p,m2] > S[p,m]
"""

TWO_ROWS = """rank P = 6, Q = 5, M = 7, F = 3
input  A[p,m], B[q,m], V[m,f]
output O[p,q,f]
O[p,q,f] = sum[m] A[p,m] * B[q,m] * V[m,f]
"""

FOUR_D = """rank P = 5, M = 7, E = 3, F = 3, G = 2
input  Q[p,e], K[m,e], V[m,f], U[m,g]
output O[p,e,f,g]
O[p,e,f,g] = max[m] Q[p,e] * K[m,e] * V[m,f] * U[m,g]
"""


def _compiled(text: str):
    cascade = loads(text, "case.ein")
    return compile_cascade(cascade), resolve_sizes(cascade, {})


def test_layout_refusals_carry_a_typed_reason():
    cascade = loads(TWO_ROWS, "two_rows.ein")
    with pytest.raises(CascadeError) as rows:
        generate_for(prepare_for(cascade), resolve_sizes(cascade, {}), Config())
    assert rows.value.reason is Limit.ROW_RANKS
    cascade = loads(TOPK, "topk.ein")
    with pytest.raises(CascadeError) as ranks:
        generate_for(prepare_for(cascade), resolve_sizes(cascade, {}), Config())
    assert ranks.value.reason is Limit.TILE_RANKS and ranks.value.span.line == 6
    # through the kernel program's refusal and every last resort: what is left, still typed
    fn, sizes = _compiled(FOUR_D)
    with pytest.raises(CascadeError) as four:
        fn.kernel(sizes, "float32")
    assert four.value.reason is Limit.TILE_RANKS and "4-D tile" in four.value.message


def test_the_fallback_reads_the_reason_not_the_words():
    words = "this expression needs a 3-D tile over p, m, m2; the Triton lowering handles 2-D tiles"
    tried = []

    def lower(reason):
        def attempt(layout: RowLayout):
            tried.append(layout.steps)
            if not layout.steps:
                raise CascadeError(words, reason=reason)
            return layout
        return attempt

    with pytest.raises(CascadeError):
        lay_out(lower(None), RowLayout())
    assert tried == [()]
    tried.clear()
    assert lay_out(lower(Limit.TILE_RANKS), RowLayout()).steps == (RowStep.ALL,)
    assert tried == [(), (RowStep.ALL,)]


def test_rows_past_the_first_go_on_the_grid_up_front(monkeypatch):
    cascade = loads(TWO_ROWS, "two_rows.ein")
    prepared, sizes = prepare_for(cascade), resolve_sizes(cascade, {})
    assert row_ranks(prepared, sizes, Config()) == 2
    assert RowLayout.up_front(2).steps == (RowStep.PAST_FIRST,)
    assert RowLayout.up_front(1).steps == ()
    seen = []
    real = api.generate

    def generate(prepared, sizes, config, **kw):
        seen.append(config.grid_rows)
        return real(prepared, sizes, config, **kw)

    monkeypatch.setattr(api, "generate", generate)
    gen = generate_for(prepared, sizes, Config(), rows_on_grid=True)
    assert seen == [True]  # no attempt with tiled rows first
    assert gen.roles.row == "p" and "q" in gen.roles.batch
    assert "(rows past the first on the grid)" in gen.source
    assert gen.rows.steps == (RowStep.PAST_FIRST,)  # the decision, as data


def test_strategies_are_tried_in_order_and_recorded():
    assert [s.name for s in STRATEGIES[:2]] == ["one kernel (tiled rows, 2-D tiles)",
                                                "a kernel program (tiled rows, 2-D tiles)"]
    fn, sizes = _compiled(TOPK)
    before = {f.name: getattr(fn, f.name) for f in fields(fn)}
    gen, _ = fn.kernel(sizes, "float32")
    assert "(rows on the grid: one per program)" in gen.source
    assert fn.last.rows.steps == (RowStep.ALL,)
    attempts = fn.tried.attempts
    assert [a.strategy for a in attempts] == list(STRATEGIES[:3])
    assert [a.refusal and a.refusal.reason for a in attempts] == \
        [Limit.TILE_RANKS, Limit.TILE_RANKS, None]
    assert fn.tried.lowered == STRATEGIES[2] and fn.tried.lowered.resort.rows_on_grid
    assert "one kernel (rows on the grid): lowered" in repr(fn)
    assert {f.name: getattr(fn, f.name) for f in fields(fn)} == before  # nothing set on it


def test_a_later_call_starts_at_the_strategy_that_lowered(monkeypatch):
    fn, sizes = _compiled(TOPK)
    first, _ = fn.kernel(sizes, "float32")

    def refuse(*args, **kw):
        raise AssertionError("a strategy that refused is tried again")

    monkeypatch.setattr(fn, "_program", refuse)
    again, _ = fn.kernel(sizes, "float32")
    assert again is first and len(fn.tried.attempts) == 3


def test_a_group_of_a_program_lowers_in_its_programs_resort_only():
    fn, sizes = _compiled(TOPK)
    group = api.CompiledCascade(fn.cascade, {}, {}, multi=False)
    with pytest.raises(CascadeError) as info:
        group.kernel(sizes, "float32")
    assert info.value.reason is Limit.TILE_RANKS
    assert [a.strategy for a in group.tried.attempts] == [Strategy(TILED, program=False)]
