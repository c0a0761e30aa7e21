"""`make demo` runs `cascade demo`: it must keep working end to end."""
from cascade_cli.main import main


def test_demo_runs_every_section(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "max |3-pass - 1-pass|" in out
    assert "3 passes over M" in out and "1 pass   over M1" in out
    assert "1,892,352 cycles" in out  # FuseMax, BERT 1K, from the general model
    assert out.count("-> ok") == 2  # both Triton kernels match the reference
