"""Smoke tests of the gallery examples: each runs with ``--quick`` in a subprocess (as the docs build runs
it), writes its PNG, prints its table, and its headline number beats a trivial baseline.

References: the baselines are trivial predictors computed from the task's definition (chance accuracy
1/10 or 1/3, the return of always stepping to the near reward, random scores) or a competing fit in the
same run (least squares for the robust losses, item popularity for the factorisations).
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    env.pop("XLA_FLAGS", None)  # one device, as a user runs it
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / f"{name}.png").stat().st_size > 10_000
    return proc.stdout


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
