"""jaxloss.minimize reaches scikit-learn's optimum on scikit-learn's bundled datasets.

For each estimator the ready objective is the same function (same data scaling, the regularization
conventions mapped as the docstrings state), scikit-learn runs with tight tolerances so its solution is
really converged, and both solutions are evaluated under the same float64 jaxloss objective: the relative
gap ``|F(jaxloss) - F(sklearn)| / |F(sklearn)|`` must be under 1e-5. Small subsets keep it fast.
"""

import warnings

import jax.numpy as jnp
import numpy as np
import scipy.special
from sklearn import datasets, linear_model, svm
from sklearn.preprocessing import StandardScaler

import jaxloss

GAP = 1e-5
N = 120


def _standardize(x):
    return StandardScaler().fit_transform(x)


def _diabetes():
    x, y = datasets.load_diabetes(return_X_y=True)
    x, y = _standardize(x[:N]), y[:N]
    return x, (y - y.mean()) / y.std(), y


def _breast_cancer():
    x, y = datasets.load_breast_cancer(return_X_y=True)
    return _standardize(x[:N]), y[:N]


def _wine():
    x, y = datasets.load_wine(return_X_y=True)
    return _standardize(x), y


def _params(coef, intercept, **extra):
    p = {"w": jnp.asarray(np.asarray(coef, np.float64)), "b": jnp.asarray(np.asarray(intercept, np.float64))}
    p.update({k: jnp.asarray(v, jnp.float64) for k, v in extra.items()})
    return p


def _gap(obj, ours, theirs, data):
    a, b = float(obj(ours, data)), float(obj(theirs, data))
    return abs(a - b) / abs(b), a, b


def _solve(obj, data, **kw):
    kw.setdefault("tol", 1e-9)
    kw.setdefault("max_steps", 2000)
    res = jaxloss.minimize(obj, obj.init_params(data[0], data[1] if data[1].ndim == 2 else None), data, **kw)
    assert bool(res.converged), (res.num_steps, res.grad_norm)
    return res


def test_ridge_vs_sklearn_Ridge():
    """Ridge(alpha_sk) on ||y - Xw||^2 + alpha_sk ||w||^2  ==  jaxloss.ridge_regression(alpha_sk / n)."""
    x, y, _ = _diabetes()
    alpha_sk = 5.0
    sk = linear_model.Ridge(alpha=alpha_sk, solver="cholesky").fit(x, y)
    obj, data = jaxloss.ridge_regression(alpha_sk / N), (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data)
    gap, _, _ = _gap(obj, res.params, _params(sk.coef_, sk.intercept_), data)
    assert gap < GAP, gap


def test_lasso_vs_sklearn_Lasso_same_sparsity():
    """Lasso(alpha) is exactly jaxloss.lasso_regression(alpha); accelerated proximal gradient gives exact zeros."""
    x, y, _ = _diabetes()
    alpha = 0.05
    sk = linear_model.Lasso(alpha=alpha, tol=1e-14, max_iter=200_000).fit(x, y)
    obj, data = jaxloss.lasso_regression(alpha), (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data, tol=1e-10)
    gap, _, _ = _gap(obj, res.params, _params(sk.coef_, sk.intercept_), data)
    assert gap < GAP, gap
    ours_zero = np.asarray(res.params["w"]) == 0
    np.testing.assert_array_equal(ours_zero, sk.coef_ == 0)
    assert 0 < ours_zero.sum() < len(ours_zero)


def test_logistic_regression_binary_vs_sklearn():
    """LogisticRegression(C, lbfgs, L2) == jaxloss.logistic_regression(1 / (C n)), intercept unpenalised."""
    x, y = _breast_cancer()
    C = 0.5
    sk = linear_model.LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(x, y)
    obj, data = jaxloss.logistic_regression(1.0 / (C * N)), (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data)
    gap, _, _ = _gap(obj, res.params, _params(sk.coef_[0], sk.intercept_[0]), data)
    assert gap < GAP, gap


def test_logistic_regression_multinomial_vs_sklearn():
    """Three-class wine: scikit-learn's multinomial lbfgs == jaxloss.logistic_regression(num_classes=3)."""
    x, y = _wine()
    n, C = len(y), 0.3
    sk = linear_model.LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(x, y)
    obj, data = jaxloss.logistic_regression(1.0 / (C * n), num_classes=3), (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data)
    gap, _, _ = _gap(obj, res.params, _params(sk.coef_.T, sk.intercept_), data)
    assert gap < GAP, gap


def test_linear_svc_squared_hinge_vs_sklearn():
    """LinearSVC(C, squared hinge, primal) == linear_svm(1 / (C n), penalize_intercept=True): liblinear
    penalises the intercept as a feature (intercept_scaling=1)."""
    x, y = _breast_cancer()
    C = 0.1
    sk = svm.LinearSVC(C=C, loss="squared_hinge", dual=False, tol=1e-12, max_iter=100_000).fit(x, y)
    obj = jaxloss.linear_svm(1.0 / (C * N), loss="squared_hinge", penalize_intercept=True)
    data = (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data)
    gap, _, _ = _gap(obj, res.params, _params(sk.coef_[0], sk.intercept_[0]), data)
    assert gap < GAP, gap


def test_huber_regressor_vs_sklearn():
    """HuberRegressor(epsilon, alpha) jointly fits the scale sigma; huber_regression(fit_scale=True,
    l2=2 alpha / n) is the same objective divided by n."""
    x, y, _ = _diabetes()
    eps, alpha = 1.35, 1e-2
    sk = linear_model.HuberRegressor(epsilon=eps, alpha=alpha, tol=1e-12, max_iter=100_000).fit(x, y)
    obj = jaxloss.huber_regression(eps, 2 * alpha / N, fit_scale=True)
    data = (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data)
    theirs = _params(sk.coef_, sk.intercept_, log_scale=np.log(sk.scale_))
    gap, _, _ = _gap(obj, res.params, theirs, data)
    assert gap < GAP, gap
    assert abs(float(jnp.exp(res.params["log_scale"])) / sk.scale_ - 1) < 1e-3


def test_quantile_regressor_vs_sklearn():
    """QuantileRegressor(quantile, alpha=0) solves a linear program (HiGHS); jaxloss minimises the Moreau
    smoothing of the pinball loss with mu = 1e-2, 1e-4, 1e-6 (warm starts; one compilation, mu is a
    pytree leaf of the objective), which is within mu * max(tau, 1 - tau)^2 / 2 of the exact objective,
    and is scored under the exact objective."""
    x, y, _ = _diabetes()
    tau = 0.3
    sk = linear_model.QuantileRegressor(quantile=tau, alpha=0.0, solver="highs").fit(x, y)
    data = (jnp.asarray(x), jnp.asarray(y))
    exact = jaxloss.quantile_regression(tau)
    params = exact.init_params(data[0])
    for mu in (1e-2, 1e-4, 1e-6):
        res = jaxloss.minimize(jaxloss.quantile_regression(tau, smoothing=mu), params, data, tol=1e-9, max_steps=2000)
        params = res.params
    gap, _, _ = _gap(exact, params, _params(sk.coef_, sk.intercept_), data)
    assert gap < GAP, gap


def test_poisson_regressor_vs_sklearn():
    """PoissonRegressor(alpha) (half mean deviance + alpha/2 ||w||^2) == poisson_regression(alpha) up to a
    constant; the diabetes target (integer disease progression) as counts."""
    x, _, y = _diabetes()
    alpha = 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = linear_model.PoissonRegressor(alpha=alpha, tol=1e-12, max_iter=100_000).fit(x, y)
    obj, data = jaxloss.poisson_regression(alpha), (jnp.asarray(x), jnp.asarray(y))
    res = _solve(obj, data)
    # scikit-learn's objective itself (half mean deviance), not the NLL without log-factorials: adding the
    # constant mean(y log y - y) keeps the relative gap honest (the NLL alone is a large negative number).
    const = float(np.mean(scipy.special.xlogy(y, y) - y))
    sk_objective = lambda p, d: obj(p, d) + const  # noqa: E731
    gap, _, _ = _gap(sk_objective, res.params, _params(sk.coef_, sk.intercept_), data)
    assert gap < GAP, gap
