"""Smoke tests of the differentiable-optimization examples: each runs with ``--quick`` in a subprocess (as the
docs build runs it), writes its PNG, prints its table, and its headline number beats a baseline.

References: scikit-learn's RidgeCV / LassoCV choice (validation loss of the strength each method chose);
leave-one-out retraining for the influence scores (Pearson correlation); the unweighted fit and random
scores (ROC AUC 0.5) for the reweighting.
"""

import re

from tests.test_examples import _run


def _numbers(stdout, label):
    for line in stdout.splitlines():
        if line.strip().startswith(label):
            return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line.strip()[len(label) :])]
    raise AssertionError(f"no line {label!r} in:\n{stdout}")


def test_hyperparameter_tuning(tmp_path):
    out = _run("hyperparameter_tuning", tmp_path)
    for name, sk in (("ridge", "RidgeCV"), ("lasso", "LassoCV")):
        _, val_gd, r2_gd, _ = _numbers(out, f"{name}: gradient descent on val. loss")
        _, val_sk, r2_sk, _ = _numbers(out, f"{name}: scikit-learn {sk}")
        assert val_gd <= val_sk + 1e-6  # it minimises the validation loss it is given
        assert r2_gd > 0.3 and abs(r2_gd - r2_sk) < 0.05


def test_influence_breast_cancer(tmp_path):
    out = _run("influence_breast_cancer", tmp_path)
    m = re.search(r"Pearson\(predicted, actual\) = ([\d.]+); top-10 by magnitude shared: (\d+)/10", out)
    assert float(m.group(1)) >= 0.98 and int(m.group(2)) >= 8
    assert "all converged: True" in out.splitlines()[0]
    mlp = re.search(r"MLP .*Pearson\(predicted, actual\) = (-?[\d.]+) over", out)
    assert 0.5 < float(mlp.group(1)) <= 1.0  # the measured MLP correlation (damped Hessian)


def test_data_reweighting(tmp_path):
    out = _run("data_reweighting", tmp_path)
    unweighted = _numbers(out, "unweighted, noisy labels")
    learned = _numbers(out, "learned weights, noisy labels")
    assert learned[0] < unweighted[0]  # test log-loss
    auc = float(re.search(r"ROC AUC of -weight for finding flipped labels: ([\d.]+)", out).group(1))
    assert auc > 0.75
