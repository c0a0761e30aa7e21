"""`make demo` runs `cascade demo`: it must keep working end to end."""
import re

from cascade_cli.main import main


def test_demo_runs_every_section(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "max |3-pass - 1-pass|" in out
    assert "3 passes over M" in out and "1 pass   over M1" in out
    # FuseMax, BERT 1K, mapped by the mapper: FuseMax's own binding takes 1,892,352 cycles; the
    # mapper also moves SPNV (an element-wise rescale, 64 cycles a tile on the 1D array) onto the
    # 2D array across (F, P0), which balances the arrays
    cycles = int(re.search(r"latency .*\(([\d,]+) cycles\)", out).group(1).replace(",", ""))
    assert cycles == 1_695_744 < 1_892_352
    assert out.count("-> ok") == 2  # both Triton kernels match the reference
