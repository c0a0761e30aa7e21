"""Hostile and careless input to the language and the interpreter (issue 9): every case is a
located CascadeError with a hint (exit 1 on the command line), never an internal error, and the
integer semantics are enforced rather than wrapped."""
import numpy as np
import pytest

from cascade_cli.main import main
from einsum_ir import CascadeError, evaluate, loads
from einsum_ir.labelled import max_memory
from einsum_ir.parser import MAX_DEPTH, MAX_SOURCE_BYTES

HEAD = "rank B = 1, H = 1, P = 2, E = 2\ninput Q[b,h,p,e]\noutput O[b,h,p,e]\n"


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_located(err: str, file: str, line: int | None = None):
    head = err.splitlines()[0]
    assert head.startswith(f"{file}:" if line is None else f"{file}:{line}:"), err
    assert "hint: " in err, err
    assert "internal error" not in err and "Traceback" not in err


def write(tmp_path, text, name="x.ein"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return str(path)


# ------------------------------------------------------------------ depth and size of the text

@pytest.mark.parametrize("body", [
    " + ".join(["Q[b,h,p,e]"] * 500),
    "-" * 1000 + "Q[b,h,p,e]",
    "exp(" * 400 + "Q[b,h,p,e]" + ")" * 400,
])
def test_deep_expressions_are_refused_with_a_location(tmp_path, capsys, body):
    path = write(tmp_path, HEAD + f"O[b,h,p,e] = {body}\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1
    assert_located(err, path, 4)
    assert "nested too deeply" in err


def test_redundant_parentheses_do_not_nest(tmp_path, capsys):
    path = write(tmp_path, HEAD + "O[b,h,p,e] = " + "(" * 1000 + "Q[b,h,p,e]" + ")" * 1000 + "\n")
    assert run_cli(capsys, "show", path)[0] == 0


@pytest.mark.parametrize("command", ["check", "show", "eval", "work", "footprint"])
def test_expressions_just_under_the_limit_work_everywhere(tmp_path, capsys, command):
    depth = MAX_DEPTH - 10
    path = write(tmp_path, HEAD + "O[b,h,p,e] = " + " + ".join(["Q[b,h,p,e]"] * depth) + "\n")
    code, _, err = run_cli(capsys, command, path)
    assert code == 0, err


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\u2028", "\x85", "\r"])
def test_line_breaks_lark_does_not_count(tmp_path, capsys, char):
    # lark counts only '\n': the diagnostic must quote the line lark means.
    path = write(tmp_path, f"rank B = 1{char} # note\nrank P = = 3\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1
    assert_located(err, path)
    line = int(err.split(":")[1])
    quoted = err.splitlines()[1].strip()
    assert ("rank P = = 3" in quoted) == (line == 2), err


def test_integer_literal_over_4300_digits(tmp_path, capsys):
    path = write(tmp_path, "rank P = " + "9" * 5000 + "\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1 and "too large" in err
    assert_located(err, path, 1)


def test_directory_dev_zero_and_huge_files(tmp_path, capsys):
    code, _, err = run_cli(capsys, "check", str(tmp_path))
    assert code == 1 and "is a directory" in err and "hint:" in err
    code, _, err = run_cli(capsys, "check", "/dev/zero")
    assert code == 1 and "larger than" in err and "hint:" in err
    big = write(tmp_path, "#" * (MAX_SOURCE_BYTES + 10))
    code, _, err = run_cli(capsys, "check", big)
    assert code == 1 and "larger than" in err


def test_not_utf8_names_the_byte_offset(tmp_path, capsys):
    path = write(tmp_path, b"rank P = 4\n# caf\xe9\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1 and "not UTF-8: byte 0xe9 at offset 16" in err
    assert_located(err, path, 2)


def test_missing_output_names_the_file(tmp_path, capsys):
    path = write(tmp_path, "rank P = 4\ninput A[p]\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1 and err.startswith(f"{path}: error: the cascade declares no output")


def test_size_errors_quote_the_source_line(tmp_path, capsys):
    path = write(tmp_path, "rank P = 4 / 3\ninput A[p]\noutput O[p]\nO[p] = A[p]\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1
    assert_located(err, path, 1)
    assert "  rank P = 4 / 3" in err and "^" in err


@pytest.mark.parametrize("size", ["4611686018427387904", "1e300", "2 ** 70"])
def test_huge_sizes(tmp_path, capsys, size):
    path = write(tmp_path, f"rank P = {size}\ninput A[p]\noutput O[p]\nO[p] = A[p]\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1
    assert_located(err, path, 1)


def test_huge_set_value(capsys):
    code, _, err = run_cli(capsys, "check", "examples/attention/causal.ein", "--set", "P=" + "9" * 30)
    assert code == 1 and "out of range" in err and "hint:" in err


# ------------------------------------------------------------------ integer semantics

MASK = "rank P = 4, M = 4\ninput A[p,m]\noutput O[p,m]\n"


def test_predicate_overflow_is_an_error_not_a_wrap():
    cascade = loads(MASK + "O[p,m] = A[p,m] where p + 9223372036854775807 > m\n", "w.ein")
    with pytest.raises(CascadeError, match="integer overflow") as info:
        evaluate(cascade)
    assert info.value.span.line == 4 and info.value.hint


def test_predicate_arithmetic_near_the_int64_limit_is_exact():
    cascade = loads(MASK + "O[p,m] = A[p,m] where p + 9223372036854775804 > m + 9223372036854775803\n")
    a = np.arange(16.0).reshape(4, 4)
    out = evaluate(cascade, {"A": a})["O"]
    assert np.array_equal(out, np.where(np.add.outer(np.arange(4), -np.arange(4)) + 1 > 0, a, 0))


@pytest.mark.parametrize("index", ["m % (p - p)", "m / (p - p)", "m / (m - m + 2 - 2)"])
def test_division_by_zero_in_an_index_is_located(index):
    cascade = loads(MASK + f"O[p,m] = A[p, {index}]\n", "d.ein")
    with pytest.raises(CascadeError, match="by zero") as info:
        evaluate(cascade)
    assert info.value.span.line == 4 and info.value.hint


@pytest.mark.parametrize("line", ["O[p,m] = A[p, m % 0]", "O[p,m] = A[p,m] where m / 0 < p",
                                  "O[p,m] = A[p,m] where m <= p + 1e400",
                                  "O[p,m] = A[p,m] where m <= p + 0.5"])
def test_literal_zero_divisors_and_floats_are_found_by_check(tmp_path, capsys, line):
    path = write(tmp_path, MASK + line + "\n")
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1 and ("by zero" in err or "integers, not" in err)
    assert_located(err, path, 4)


def test_division_by_zero_in_a_predicate_reaches_the_analyses(tmp_path, capsys):
    path = write(tmp_path, MASK + "O[p,m] = A[p,m] where m % (p - p) == 0\n")
    for command in ("eval", "work"):
        code, _, err = run_cli(capsys, command, path)
        assert code == 1 and "by zero" in err
        assert_located(err, path, 4)
        assert "  O[p,m] = A[p,m] where m % (p - p) == 0" in err  # the source line is quoted


def test_float_literal_in_a_predicate(tmp_path, capsys):
    path = write(tmp_path, MASK + "O[p,m] = A[p,m] where m <= p + 1e400\n")
    code, _, err = run_cli(capsys, "eval", path)
    assert code == 1 and "integers, not inf" in err
    assert_located(err, path, 4)


def test_floor_division_and_modulo_follow_python():
    cascade = loads("rank P = 4, M = 7\ninput A[m]\noutput O[p]\nO[p] = A[(p - 3) / 2 + (p - 3) % 2]\n")
    a = np.arange(7.0)
    got = evaluate(cascade, {"A": a})["O"]
    want = [a[i] if 0 <= i < 7 else 0 for i in ((p - 3) // 2 + (p - 3) % 2 for p in range(4))]
    assert np.array_equal(got, want)


def test_sum_over_both_infinities_is_empty_like_plus():
    text = ("rank M = 2\ninput A[m]\noutput S[], T[]\n"
            "S[] = sum[m] A[m]\nT[] = A[0] + A[1]\n")
    out = evaluate(loads(text), {"A": np.array([np.inf, -np.inf])})
    assert out["T"] == 0 and out["S"] == 0  # empty points materialise as 0, never NaN
    out = evaluate(loads(text), {"A": np.array([np.nan, 1.0])})
    assert np.isnan(out["S"])  # a NaN the input brings stays


def test_max_of_an_empty_sum_row_stays_empty():
    text = ("rank P = 2, M = 2\ninput A[p,m]\noutput R[p]\n"
            "S[p] = sum[m] A[p,m]\nR[p] = max(S[p], -1)\n")
    out = evaluate(loads(text), {"A": np.array([[np.inf, -np.inf], [1.0, 2.0]])})["R"]
    assert out.tolist() == [-1.0, 3.0]


# ------------------------------------------------------------------ interpreter limits

def test_memory_is_checked_before_allocating(capsys):
    code, _, err = run_cli(capsys, "eval", "examples/attention/causal.ein", "--set", "P=1M",
                           "--set", "M=1M")
    assert code == 1 and "tensor" in err and "GiB" in err and "--max-memory" in err
    assert_located(err, "examples/attention/causal.ein")


def test_max_memory_option(capsys):
    code, _, err = run_cli(capsys, "eval", "examples/attention/causal.ein", "--max-memory", "1K")
    assert code == 1 and "more than the limit of 1 KiB" in err
    assert run_cli(capsys, "eval", "examples/attention/causal.ein", "--set", "P=8", "--set", "M=8",
                   "--max-memory", "64M")[0] == 0


def test_library_memory_limit():
    cascade = loads(MASK + "O[p,m] = A[p,m]\n")
    token = max_memory.set(64)
    try:
        with pytest.raises(CascadeError, match="needs 128 B"):
            evaluate(cascade)
    finally:
        max_memory.reset(token)


def test_more_than_64_ranks_or_52_indices(tmp_path, capsys):
    ranks = ", ".join(f"R{i} = 1" for i in range(70))
    idx = ",".join(f"r{i}" for i in range(70))
    path = write(tmp_path, f"rank {ranks}\ninput A[{idx}]\noutput O[{idx}]\nO[{idx}] = A[{idx}] * A[{idx}]\n")
    code, _, err = run_cli(capsys, "eval", path)
    assert code == 1 and "at most 64" in err
    assert_located(err, path, 2)
    a, b = ",".join(f"r{i}" for i in range(30)), ",".join(f"r{i}" for i in range(30, 60))
    ranks = ", ".join(f"R{i} = 1" for i in range(60))
    path = write(tmp_path, f"rank {ranks}\ninput A[{a}], B[{b}]\noutput O[r0]\nO[r0] = A[{a}] * B[{b}]\n")
    code, _, err = run_cli(capsys, "eval", path)
    assert code == 1 and "more than 52 index variables" in err
    assert_located(err, path, 4)


def test_forty_indices_still_evaluate():
    ranks = ", ".join(f"R{i} = 1" for i in range(40))
    a, b = ",".join(f"r{i}" for i in range(20)), ",".join(f"r{i}" for i in range(20, 40))
    cascade = loads(f"rank {ranks}\ninput A[{a}], B[{b}]\noutput O[r0]\nO[r0] = A[{a}] * B[{b}]\n")
    out = evaluate(cascade, {"A": np.full((1,) * 20, 2.0), "B": np.full((1,) * 20, 3.0)})
    assert out["O"].tolist() == [6.0]
