"""Smoke tests of benchmarks/ghost.py (``--quick``: tiny models, every column) and examples/dp_ghost.py
(``--quick`` in a subprocess, as tests/test_examples.py runs the gallery). No timing is asserted; what is
asserted: the benchmark's ghost norms equal its vmap norms (relative 1e-5, computed in the same run), no
parameter of its models takes the exact path, Opacus's columns are filled; the example's private and
non-private CNNs beat chance (0.1) on digits and its plot is written."""

import re

from benchmarks import ghost
from tests.test_examples import _row, _run


def test_quick_ghost_benchmark_runs(tmp_path):
    out = tmp_path / "ghost.md"
    text = ghost.main(["--quick", "--out", str(out)])
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if re.match(r"\| (mlp|cnn|transformer) \|", line)]
    assert [r.split(" | ")[0][2:] for r in rows] == ["mlp", "cnn", "transformer"]
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[-2]) < 1e-5  # ghost vs vmap norms (the last column is the load average)
        assert "not installed" not in line and cells[-4].endswith("×")  # Opacus ghost ratio
        assert sum("◀" in c for c in cells) == 1  # the clipping "auto" chooses is marked
    assert "exact (fallback) path: none." in text
    assert "Clipping chosen by `auto`: mlp: two_pass" in text


def test_dp_ghost_example(tmp_path):
    out = _run("dp_ghost", tmp_path)
    assert _row(out, "| Adam, no privacy |")[0] > 0.6
    assert _row(out, "| DP-SGD (Adam)")[-2] > 0.2
    assert "exact-path parameters: none" in out
