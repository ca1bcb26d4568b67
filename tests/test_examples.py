"""Smoke tests of the gallery examples: each runs with ``--quick`` in a subprocess (through the docs build's
own runner), writes its PNG, prints its table, and its headline number beats a trivial baseline.

References: the baselines are trivial predictors computed from the task's definition (chance accuracy
1/10 or 1/3, the return of always stepping to the near reward, random scores) or a competing fit in the
same run (least squares for the robust losses, item popularity for the factorisations).
"""

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gallery():
    spec = importlib.util.spec_from_file_location("_gallery_hook", os.path.join(ROOT, "docs", "hooks", "gallery.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name, tmp_path=None, png=None):
    """Runs ``examples/<name>.py --quick`` in a subprocess exactly as the docs build does (the gallery hook,
    one device, always run here, never taken from the cache), checks its PNG and returns what it printed. The
    result refreshes the gallery cache, so ``make docs`` after ``make test`` does not run the example again."""
    gallery = _gallery()
    result = gallery.run_example(gallery.EXAMPLES / f"{name}.py", gallery._package_hash(), refresh=True)
    assert not result["cached"]
    pngs = {p.name: p for p in result["pngs"]}
    png = png or f"{name}.png"
    assert png in pngs and pngs[png].stat().st_size > 10_000, sorted(pngs)
    return result["stdout"]


def _row(stdout, label):
    """The numbers of the table row that starts with ``label``."""
    for line in stdout.splitlines():
        if line.strip().startswith(label):
            rest = line.strip()[len(label) :]
            return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", rest)]
    raise AssertionError(f"no row {label!r} in:\n{stdout}")


def test_image_classification(tmp_path):
    out = _run("image_classification", tmp_path)
    for label in ("cross_entropy ", "cross_entropy, smoothing 0.1", "multiclass_focal, gamma 2"):
        epochs, acc, best, ce, ece, _ = _row(out, label)[-6:]
        assert acc > 0.9 and epochs == 12  # chance is 0.1


def test_token_classification(tmp_path):
    out = _run("token_classification", tmp_path)
    for label in ("sequence_cross_entropy (tokens)", "sequence_cross_entropy (sequences)"):
        acc = _row(out, label)[0]
        assert acc > 0.85  # chance 1/3; the noise ceiling is 0.933
    real, _, _, with_padding = _row(out, "cross_entropy, no mask")
    assert with_padding > real + 0.01  # counting padding flatters the unmasked model


def test_reinforcement_learning(tmp_path):
    out = _run("reinforcement_learning", tmp_path)
    beta0 = _row(out, "0.00")
    best = _row(out, "1.00")
    # columns: return, entropy, seeds reaching far, seeds, greedy return
    assert beta0[0] < 9.5 and beta0[2] == 0  # no bonus: settles for the near reward (9)
    assert best[2] >= 3 and best[4] > 15 > beta0[4]  # a moderate bonus finds the far reward (19)
    assert _row(out, "3.00")[1] > 0.6  # a large bonus keeps the policy near uniform (ln 2 = 0.693)


def test_anomaly_detection(tmp_path):
    out = _run("anomaly_detection", tmp_path)
    auc_mse = _row(out, "mse")[2]
    for label in ("huber", "cauchy", "general_robust (alpha -2)", "general_robust (alpha -5)"):
        slope, _, auc, _, _ = [v for v in _row(out, label)][-5:]
        assert auc > auc_mse and abs(slope - 1.5) < abs(_row(out, "mse")[0] - 1.5)


def test_recommendation(tmp_path):
    out = _run("recommendation", tmp_path)
    random_ndcg = _row(out, "random")[1]
    popularity_ndcg = _row(out, "popularity")[1]
    for label in ("bpr (pairwise)", "binary_cross_entropy (pointwise)"):
        recall, ndcg, _ = _row(out, label)
        assert ndcg > popularity_ndcg > 3 * random_ndcg


def test_multi_device():
    """8 simulated devices (the example sets them up itself): every layout trains to the same losses as one
    device (the same arithmetic), and the fused path needs less per-device memory than the naive one in every
    layout, sharded layouts less than one device."""
    out = _run("multi_device")
    rows = {}
    for line in out.splitlines():
        m = re.match(
            r"(one device|data parallel|vocabulary parallel|data x vocabulary \(4 x 2\))\s+(fused|naive)\s+(.*)", line
        )
        if m:
            rows[(m.group(1), m.group(2))] = [float(v) for v in re.findall(r"\d+\.\d+", m.group(3))]
    layouts = ("one device", "data parallel", "vocabulary parallel", "data x vocabulary (4 x 2)")
    assert set(rows) == {(lay, path) for lay in layouts for path in ("fused", "naive")}, out
    first, last = rows[("one device", "fused")][1:3]
    assert last < first - 1.0  # training lowers the loss (ln 1024 = 6.93 at the start)
    for lay in layouts:
        assert rows[(lay, "fused")][0] < rows[(lay, "naive")][0]
        assert abs(rows[(lay, "fused")][1] - first) < 1e-3 and abs(rows[(lay, "fused")][2] - last) < 1e-3
        assert abs(rows[(lay, "naive")][1] - first) < 1e-3
        if lay != "one device":
            assert rows[(lay, "fused")][0] < rows[("one device", "fused")][0]


def test_objectives_regularization_path():
    """The vmapped lasso path matches scikit-learn's Lasso (relative objective gap, same zeros) at every alpha;
    the group lasso drops whole pixels."""
    out = _run("objectives_regularization_path", png="lasso_path.png")
    path = [line.split() for line in out.splitlines() if re.match(r"\s+\d\.\d{4}\s+\d+\s+\d+\s", line)]
    assert len(path) == 6, out
    for row in path:
        assert float(row[3]) < 1e-6 and row[4] == "True"
    assert [int(r[1]) for r in path] == sorted(int(r[1]) for r in path)  # smaller alpha, more features
    used = [line.split() for line in out.splitlines() if re.match(r"\s+0\.\d\d\s+\d+\s+\d\.\d+$", line)]
    assert len(used) == 2 and int(used[1][1]) < int(used[0][1]) and float(used[1][2]) > 0.9


def test_per_sample_analysis():
    """Ghost norms equal vmap norms; the trained model beats chance (0.1); TracIn's top proponents of a
    test digit share its label."""
    out = _run("per_sample_analysis")
    assert float(re.search(r"max relative difference ([\d.e+-]+)", out).group(1)) < 1e-5
    assert float(re.search(r"test accuracy ([\d.]+)", out).group(1)) > 0.8
    for digit, labels in re.findall(r"test digit (\d): top proponents (.*?); top opponent", out):
        assert re.findall(r"label (\d)", labels) == [digit] * 3, out
