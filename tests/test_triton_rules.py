"""The named clean-up rules of the Triton backend, one at a time, on statement nodes."""
from backends.triton.render import lines
from backends.triton.rules import dead_assignments
from backends.triton.tile_ir import (LOOP_VAR, Assign, BinOp, Comment, Const, Dot, For, If, Load,
                                     Offset, Op, StoreStmt, Var, Where)

Q, K, SLN, V, ACC = (Var(n) for n in ("q", "k", "sln", "v", "acc"))


def test_dead_assignments_go_and_what_is_read_stays():
    load_q = Assign("q", Load(Var("Q_ptr"), Offset(((Var("offs_p"), Var("stride_Q_0")),))))
    body = (Assign("qk", Dot(Q, K)),
            Assign("qk_1", Op("*", (Var("qk"), Const(0.125)))),  # nothing reads it
            Assign("slnv", Dot(SLN, V)),  # read only by a dead assignment
            Assign("unused", Op("+", (Var("slnv"), Const(1.0)))),
            Assign("acc", Dot(SLN, V, ACC)))
    store = StoreStmt(Var("O_ptr"), Offset(((Var("offs_p"), Var("stride_O_0")),)), ACC)
    stmts = [load_q, For(Var("lo_0"), Var("hi_0"), body), store]
    out = dead_assignments(stmts)
    assert out == [load_q, For(Var("lo_0"), Var("hi_0"), (body[0], body[4])), store]
    assert lines(out)[1:4] == ["for it in range(lo_0, hi_0):", "    qk = tl.dot(q, k)",
                              "    acc = tl.dot(sln, v, acc)"]


def test_a_block_keeps_its_first_statement_and_self_updates_are_reads():
    x = Var("x")
    stmts = [Comment("a comment reads nothing"),
             If(Var("cond"), (Assign("x", Where(Var("m"), x, Const(0.0))),), "a block"),
             Assign("acc", BinOp("+", ACC, Const(1.0), wrap=False))]
    assert dead_assignments(stmts) == stmts
    assert lines(stmts[1:2]) == ["if cond:  # a block", "    x = tl.where(m, x, 0.0)"]


def test_the_loop_bounds_and_a_reassigned_bound_are_reads():
    lo = Var("lo_0")
    stmts = [Assign("lo_0", Var("start")), Assign("lo_0", BinOp("+", lo, Var("chunk"), wrap=False)),
             Assign("dead", Var("start")), For(lo, Var("hi_0"), (Assign("y", LOOP_VAR),))]
    out = dead_assignments(stmts)
    assert out == [stmts[0], stmts[1], stmts[3]]  # the loop's first statement stays
