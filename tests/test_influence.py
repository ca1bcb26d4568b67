"""jaxloss.influence against leave-one-out retraining (Koh & Liang 2017).

Reference: L2 logistic regression on scikit-learn's breast-cancer data (standardised on the training
split, train_test_split(test_size=0.2, random_state=0)), mean log-loss + 0.5 * 0.01 * ||w||^2 with the
intercept unpenalised, solved to machine precision by Newton's method in float64 NumPy, and every one of
the 455 leave-one-out problems re-solved the same way (warm-started Newton): the actual change of the
mean test log-loss.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

LAM = 0.01


def _newton(a, y, w, theta, iters):
    """argmin sum_j w_j logloss_j / sum_j w_j + 0.5 LAM ||theta[:-1]||^2 (NumPy float64)."""
    d = np.append(np.ones(a.shape[1] - 1), 0.0)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a @ theta)))
        g = a.T @ (w * (p - y)) / w.sum() + LAM * d * theta
        h = (a * (w * p * (1 - p))[:, None]).T @ a / w.sum() + LAM * np.diag(d)
        theta = theta - np.linalg.solve(h, g)
    return theta


def _logloss(a, y, theta):
    z = a @ theta
    return float(np.mean(np.logaddexp(0, z) - y * z))


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0)
    sc = StandardScaler().fit(x_tr)
    return sc.transform(x_tr), y_tr.astype(np.float64), sc.transform(x_te), y_te.astype(np.float64)


def test_influence_matches_leave_one_out_retraining(cancer):
    x_tr, y_tr, x_te, y_te = cancer
    a_tr, a_te = np.c_[x_tr, np.ones(len(x_tr))], np.c_[x_te, np.ones(len(x_te))]
    n = len(y_tr)
    theta = _newton(a_tr, y_tr, np.ones(n), np.zeros(a_tr.shape[1]), 30)
    base = _logloss(a_te, y_te, theta)
    actual = np.empty(n)
    for i in range(n):
        w = np.ones(n)
        w[i] = 0.0
        actual[i] = _logloss(a_te, y_te, _newton(a_tr, y_tr, w, theta, 4)) - base

    obj = jaxloss.logistic_regression(LAM)
    params = {"w": jnp.asarray(theta[:-1]), "b": jnp.asarray(theta[-1])}
    train, test = (jnp.asarray(x_tr), jnp.asarray(y_tr)), (jnp.asarray(x_te), jnp.asarray(y_te))
    pred = np.asarray(jaxloss.influence(obj, params, train, test))
    corr = np.corrcoef(pred, actual)[0, 1]
    top_pred, top_actual = set(np.argsort(-np.abs(pred))[:10]), set(np.argsort(-np.abs(actual))[:10])
    print(f"breast cancer influence: Pearson {corr:.4f}, top-10 shared {len(top_pred & top_actual)}")
    assert corr >= 0.98
    assert len(top_pred & top_actual) >= 8
    # chunked, CG and weighted (all weights 2: the same objective) give the same scores
    chunked = jaxloss.influence(
        obj, params, train, test, chunk_size=100, implicit_diff=jaxloss.ImplicitDiff(solver="cg", tol=1e-12)
    )
    np.testing.assert_allclose(np.asarray(chunked), pred, rtol=1e-8, atol=1e-14)
    weighted = jaxloss.influence(obj, params, (*train, jnp.full(n, 2.0)), test)
    np.testing.assert_allclose(np.asarray(weighted), pred, rtol=1e-10, atol=1e-15)


def test_influence_errors():
    x = jnp.ones((4, 2))
    y = jnp.array([0.0, 1.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="jaxloss.Objective"):
        jaxloss.influence(lambda p, b: 0.0, {}, (x, y), (x, y))
    with pytest.raises(NotImplementedError, match="smooth"):
        obj = jaxloss.lasso_regression(0.1)
        jaxloss.influence(obj, obj.init_params(x), (x, y), (x, y))
