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


def test_a_block_keeps_its_first_statement_and_a_read_accumulator_stays():
    x = Var("x")
    stmts = [Comment("a comment reads nothing"),
             If(Var("cond"), (Assign("x", Where(Var("m"), x, Const(0.0))),), "a block"),
             Assign("acc", BinOp("+", ACC, Const(1.0), wrap=False)),
             StoreStmt(Var("O_ptr"), Offset(((Var("offs_p"), Var("stride_O_0")),)), ACC)]
    assert dead_assignments(stmts) == stmts
    assert lines(stmts[1:2]) == ["if cond:  # a block", "    x = tl.where(m, x, 0.0)"]


def test_an_accumulator_only_its_own_updates_read_is_dead():
    # a sum's 'met a point' count whose finished value no store needs (an empty 0 is its 0)
    has = Var("has")
    stmts = [Assign("has", Const(0.0)),
             For(Var("lo_0"), Var("hi_0"), (Assign("offs", LOOP_VAR),
                                             Assign("has", Op("max", (has, Var("offs")))))),
             Assign("found", BinOp(">", has, Const(0.0), wrap=False))]
    assert dead_assignments(stmts) == [For(Var("lo_0"), Var("hi_0"), (stmts[1].body[0],))]


def test_the_loop_bounds_and_a_reassigned_bound_are_reads():
    lo = Var("lo_0")
    stmts = [Assign("lo_0", Var("start")), Assign("lo_0", BinOp("+", lo, Var("chunk"), wrap=False)),
             Assign("dead", Var("start")), For(lo, Var("hi_0"), (Assign("y", LOOP_VAR),))]
    out = dead_assignments(stmts)
    assert out == [stmts[0], stmts[1], stmts[3]]  # the loop's first statement stays
