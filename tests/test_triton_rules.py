"""The named clean-up rules of the Triton backend, one at a time."""
from backends.triton.rules import dead_assignments


def test_dead_assignments_go_and_what_is_read_stays():
    lines = ["q = tl.load(Q_ptr)",
             "for it in range(lo_0, hi_0):",
             "    qk = tl.dot(q, k)",
             "    qk_1 = (qk * 0.125)",  # nothing reads it
             "    slnv = tl.dot(sln, v)",  # read only by a dead assignment
             "    unused = slnv + 1.0",
             "    acc = tl.dot(sln, v, acc)",
             "tl.store(O_ptr, acc)"]
    out = dead_assignments(lines)
    assert "    qk_1 = (qk * 0.125)" not in out
    assert "    slnv = tl.dot(sln, v)" not in out and "    unused = slnv + 1.0" not in out
    assert out[:3] == lines[:3] and out[-2:] == lines[-2:]


def test_a_block_keeps_its_first_statement_and_self_updates_are_reads():
    lines = ["if cond:  # a block the predicate cuts", "    x = tl.where(m, x, 0.0)",
             "acc = acc + 1.0"]
    assert dead_assignments(lines) == lines
