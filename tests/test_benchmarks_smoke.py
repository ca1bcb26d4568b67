"""Smoke test of the benchmark suite (``make bench`` = ``python -m benchmarks.run``): its quick mode runs
every case on tiny inputs, so that the suite does not rot. No timing is asserted; what is asserted is that
the libraries compared in each row compute the same loss (the suite checks the values it times), and that
the fused linear cross-entropy needs less compiled memory than the naive path."""

import re

from benchmarks import run


def test_quick_suite_runs_and_compares_like_with_like(tmp_path):
    out = tmp_path / "bench.md"
    text = run.main(["--quick", "--out", str(out)])
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "×" in line and "MiB" not in line]
    names = {line.split(" | ")[0][2:] for line in rows}
    for name in (
        "mse",
        "mae",
        "huber",
        "log_cosh",
        "binary_cross_entropy",
        "focal",
        "hinge",
        "kl_divergence",
        "multiclass_hinge",
        "cross_entropy (int labels)",
        "cross_entropy (probabilities)",
    ):
        assert name in names, name
    for line in rows:  # every jaxloss time and the floor are numbers
        cells = [c.strip() for c in line.strip("|").split("|")]
        jl_fwd, jl_vg = float(cells[2]), float(cells[5])
        assert jl_fwd > 0 and jl_vg > 0
    # jaxloss, optax and PyTorch agree on every value the suite times (else the note says "values differ")
    assert "values differ" not in text
    assert "failed" not in text
    # linear_cross_entropy: the fused value equals the naive one and PyTorch's; its temp memory is smaller
    m = re.search(r"\| ([\d.]+) \| ([\d.]+) \| [\d.]+ \(1/\d+\)", text)
    assert m and float(m.group(1)) < float(m.group(2)), m
    values = re.findall(r"^\| (fused|naive|torch linear_cross_entropy) \| .* \| ([-\d.e]+) \|$", text, re.M)
    assert len({round(float(v), 4) for _, v in values}) == 1 and len(values) >= 2, values
