"""Derivatives of jaxloss.minimize's solution (implicit differentiation) and constrained solves.

References: float64 NumPy closed forms (ridge normal equations and their derivative; the lasso and elastic
net on their active set); central finite differences of re-solved problems (the forward solutions are
checked against scikit-learn in test_sklearn_optima.py); SciPy's ``nnls``, ``lsq_linear`` and SLSQP for
the constrained solutions; a root of the secular equation (SciPy ``brentq``) for the L2 ball.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxloss

N, D = 30, 4


def _data(seed=0, n=N, d=D):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, d))
    w = np.array([1.5, -2.0, 0.0, 0.5, 0.3, -0.1][:d])
    y = x @ w + 0.7 + 0.3 * r.normal(size=n)
    return x, y


X, Y = _data(0)
XV, YV = _data(1, n=20)


def _solve(obj, data, **kw):
    kw.setdefault("tol", 1e-13)
    kw.setdefault("max_steps", 3000)
    return jaxloss.minimize(obj, obj.init_params(data[0]), data, **kw)


def _val_loss(params):
    return jaxloss.least_squares()(params, (jnp.asarray(XV), jnp.asarray(YV)))


def _aug(x):
    return np.hstack([x, np.ones((len(x), 1))])


# ---------------------------------------------------------------------------------------------------------
# Smooth objectives
# ---------------------------------------------------------------------------------------------------------


def test_ridge_hypergradient_equals_closed_form():
    """d(validation loss)/d(alpha) through the solve == the derivative of the normal equations."""
    alpha = 0.05
    hyper = jax.jit(
        jax.value_and_grad(
            lambda a: _val_loss(_solve(jaxloss.ridge_regression(a), (jnp.asarray(X), jnp.asarray(Y))).params)
        )
    )
    value, grad = hyper(alpha)
    a = _aug(X)
    dmat = np.diag([1.0] * D + [0.0])
    m = a.T @ a / N + alpha * dmat
    theta = np.linalg.solve(m, a.T @ Y / N)
    dtheta = -np.linalg.solve(m, dmat @ theta)
    av = _aug(XV)
    r = av @ theta - YV
    np.testing.assert_allclose(float(value), 0.5 * np.mean(r**2), rtol=1e-10)
    np.testing.assert_allclose(float(grad), (av.T @ r / len(YV)) @ dtheta, rtol=1e-8)
    # forward mode and vmap agree with reverse mode
    jvp = jax.jit(
        lambda a: jax.jvp(
            lambda b: _val_loss(_solve(jaxloss.ridge_regression(b), (jnp.asarray(X), jnp.asarray(Y))).params),
            (a,),
            (1.0,),
        )[1]
    )
    np.testing.assert_allclose(float(jvp(alpha)), float(grad), rtol=1e-10)
    batched = jax.jit(
        jax.vmap(
            jax.grad(lambda a: _val_loss(_solve(jaxloss.ridge_regression(a), (jnp.asarray(X), jnp.asarray(Y))).params))
        )
    )
    np.testing.assert_allclose(
        np.asarray(batched(jnp.array([alpha, 0.2]))), [float(grad), float(hyper(0.2)[1])], rtol=1e-9
    )


def test_ridge_data_gradient_and_initial_params():
    """Gradients w.r.t. the training inputs and targets == finite differences of the NumPy closed form;
    the initial params get a zero gradient."""
    alpha = 0.1

    def closed(x, y):
        a = _aug(x)
        theta = np.linalg.solve(a.T @ a / len(y) + alpha * np.diag([1.0] * D + [0.0]), a.T @ y / len(y))
        r = _aug(XV) @ theta - YV
        return 0.5 * np.mean(r**2)

    def loss(x, y, p0):
        obj = jaxloss.ridge_regression(alpha)
        return _val_loss(jaxloss.minimize(obj, p0, (x, y), tol=1e-13, max_steps=3000).params)

    p0 = {"w": jnp.ones(D), "b": jnp.asarray(0.3)}
    gx, gy, gp = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(jnp.asarray(X), jnp.asarray(Y), p0)
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (17, 1)]:
        e = np.zeros_like(X)
        e[i, j] = h
        np.testing.assert_allclose(float(gx[i, j]), (closed(X + e, Y) - closed(X - e, Y)) / (2 * h), rtol=1e-6)
    for i in (2, 9):
        e = np.zeros_like(Y)
        e[i] = h
        np.testing.assert_allclose(float(gy[i]), (closed(X, Y + e) - closed(X, Y - e)) / (2 * h), rtol=1e-6)
    assert float(jnp.max(jnp.abs(gp["w"]))) == 0.0 and float(gp["b"]) == 0.0


def test_logistic_data_gradient_inputs_and_example_weights():
    """d(validation loss)/d(training inputs) and /d(example weights) through an L2 logistic solve ==
    central finite differences of re-solved problems (float64)."""
    r = np.random.default_rng(11)
    x = r.normal(size=(N, D))
    y = (x @ np.array([1.0, -1.0, 0.5, 0.0]) + 0.7 * r.normal(size=N) > 0).astype(np.float64)
    w0 = r.uniform(0.5, 2.0, size=N)
    xv, yv = jnp.asarray(XV), jnp.asarray((YV > np.median(YV)).astype(np.float64))

    def outer(xx, ww):
        obj = jaxloss.logistic_regression(0.05)
        res = jaxloss.minimize(obj, obj.init_params(xx), (xx, jnp.asarray(y), ww), tol=1e-13, max_steps=3000)
        return jaxloss.binary_cross_entropy(xv @ res.params["w"] + res.params["b"], yv)

    gx, gw = jax.jit(jax.grad(outer, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(w0))
    f = jax.jit(outer)
    h = 1e-5
    for i, j in [(0, 0), (7, 3), (21, 1)]:
        e = np.zeros_like(x)
        e[i, j] = h
        fd = (float(f(jnp.asarray(x + e), jnp.asarray(w0))) - float(f(jnp.asarray(x - e), jnp.asarray(w0)))) / (2 * h)
        np.testing.assert_allclose(float(gx[i, j]), fd, rtol=1e-5)
    for i in (4, 13):
        e = np.zeros_like(w0)
        e[i] = h
        fd = (float(f(jnp.asarray(x), jnp.asarray(w0 + e))) - float(f(jnp.asarray(x), jnp.asarray(w0 - e)))) / (2 * h)
        np.testing.assert_allclose(float(gw[i]), fd, rtol=1e-5)


def _fd(fn, a, h):
    return (fn(a + h) - fn(a - h)) / (2 * h)


@pytest.mark.parametrize("case", ["logistic", "huber_delta", "poisson"])
def test_smooth_hypergradients_match_finite_differences(case):
    """Logistic (l2), Huber (delta) and Poisson (l2) hypergradients == central differences of re-solves."""
    r = np.random.default_rng(3)
    x = r.normal(size=(N, D))
    if case == "logistic":
        y = (x @ np.array([1.0, -1.0, 0.5, 0.0]) + 0.5 * r.normal(size=N) > 0).astype(np.float64)
        make, a0 = (lambda a: jaxloss.logistic_regression(a)), 0.05
        val = lambda p: jaxloss.binary_cross_entropy(x @ p["w"] + p["b"], y[::-1])  # noqa: E731
    elif case == "huber_delta":
        y = x @ np.array([1.0, -1.0, 0.5, 0.0]) + r.standard_t(2, size=N)
        make, a0 = (lambda a: jaxloss.huber_regression(a, 1e-2)), 0.8
        val = lambda p: jnp.mean((x @ p["w"] + p["b"] - y[::-1]) ** 2)  # noqa: E731
    else:
        y = r.poisson(np.exp(0.3 * x @ np.array([1.0, -1.0, 0.5, 0.0]))).astype(np.float64)
        make, a0 = (lambda a: jaxloss.poisson_regression(a)), 0.05
        val = lambda p: jaxloss.poisson_nll(x @ p["w"] + p["b"], y[::-1])  # noqa: E731
    data = (jnp.asarray(x), jnp.asarray(y))

    def outer(a):
        return val(_solve(make(a), data).params)

    grad = float(jax.jit(jax.grad(outer))(a0))
    fd = float(_fd(jax.jit(outer), a0, 1e-4 * a0))
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_optimal_value_gradient_is_the_envelope():
    """d(min value)/d(alpha) == 0.5 ||w*||^2 for ridge (envelope theorem; NumPy closed form)."""
    alpha = 0.1
    g = jax.jit(jax.grad(lambda a: _solve(jaxloss.ridge_regression(a), (jnp.asarray(X), jnp.asarray(Y))).value))(alpha)
    a = _aug(X)
    theta = np.linalg.solve(a.T @ a / N + alpha * np.diag([1.0] * D + [0.0]), a.T @ Y / N)
    np.testing.assert_allclose(float(g), 0.5 * np.sum(theta[:D] ** 2), rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Non-smooth regularizers: the proximal-gradient fixed point
# ---------------------------------------------------------------------------------------------------------


def _active_set_solution(alpha, l1_ratio, x, y):
    """Lasso / elastic net on the active set of the converged solution, and its derivative in alpha
    (NumPy float64; intercept unpenalised)."""
    from sklearn.linear_model import ElasticNet

    sk = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=100_000).fit(x, y)
    s = np.flatnonzero(sk.coef_)
    signs = np.sign(sk.coef_[s])
    a = _aug(x[:, s])
    k = len(s)
    dmat = np.diag([1.0] * k + [0.0])
    n = len(y)
    m = a.T @ a / n + alpha * (1 - l1_ratio) * dmat
    theta = np.linalg.solve(m, a.T @ y / n - alpha * l1_ratio * np.append(signs, 0.0))
    dtheta = -np.linalg.solve(m, (1 - l1_ratio) * dmat @ theta + l1_ratio * np.append(signs, 0.0))
    return s, theta, dtheta


@pytest.mark.parametrize("l1_ratio", [1.0, 0.6])
def test_lasso_and_elastic_net_hypergradient_on_active_set(l1_ratio):
    """dw*/d(alpha) through FISTA's fixed point == the active-set closed form (and zeros stay zero)."""
    x, y = _data(5, n=40, d=6)
    alpha = 0.15
    s, theta, dtheta = _active_set_solution(alpha, l1_ratio, x, y)
    assert 0 < len(s) < 6  # a non-trivial active set

    def make(a):
        return (
            jaxloss.lasso_regression(a)
            if l1_ratio == 1.0
            else jaxloss.least_squares().replace(jaxloss.elastic_net(a, l1_ratio, mask=lambda path: path.endswith("w")))
        )

    def sol(a):
        res = _solve(make(a), (jnp.asarray(x), jnp.asarray(y)), tol=1e-12, max_steps=20000)
        return jnp.append(res.params["w"], res.params["b"])

    jac = np.asarray(jax.jit(jax.jacfwd(sol))(alpha))
    np.testing.assert_allclose(np.asarray(sol(alpha))[np.append(s, 6)], theta, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(jac[np.append(s, 6)], dtheta, rtol=1e-6, atol=1e-8)
    inactive = np.setdiff1d(np.arange(6), s)
    assert np.all(jac[inactive] == 0.0)
    rev = np.asarray(jax.jit(jax.grad(lambda a: sol(a)[s[0]]))(alpha))
    np.testing.assert_allclose(rev, dtheta[0], rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Constraints
# ---------------------------------------------------------------------------------------------------------


def _ls(x, y):
    return jaxloss.least_squares(fit_intercept=False), (jnp.asarray(x), jnp.asarray(y))


def test_non_negative_and_box_match_scipy():
    r = np.random.default_rng(7)
    x = r.normal(size=(25, 5))
    y = x @ np.array([1.0, -2.0, 0.5, -0.3, 2.0]) + 0.1 * r.normal(size=25)
    obj, data = _ls(x, y)
    res = jaxloss.minimize(
        obj, {"w": jnp.zeros(5)}, data, constraint=jaxloss.prox.NonNegative(), tol=1e-12, max_steps=5000
    )
    ref, _ = scipy.optimize.nnls(x, y)
    assert bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.params["w"]), ref, rtol=0, atol=1e-6)
    lo, hi = -0.5, 1.2
    box = jaxloss.minimize(
        obj, {"w": jnp.zeros(5)}, data, constraint=jaxloss.prox.Box(lo, hi), tol=1e-12, max_steps=5000
    )
    ref = scipy.optimize.lsq_linear(x, y, bounds=(lo, hi), tol=1e-14, method="bvls").x
    np.testing.assert_allclose(np.asarray(box.params["w"]), ref, rtol=0, atol=1e-6)

    # d w*/d(upper): 1 on coordinates at the upper bound, the free block's response elsewhere; checked
    # against central differences of lsq_linear solutions.
    def sol(u):
        return jaxloss.minimize(
            obj, {"w": jnp.zeros(5)}, data, constraint=jaxloss.prox.Box(lo, u), tol=1e-12, max_steps=5000
        ).params["w"]

    jac = np.asarray(jax.jit(jax.jacfwd(sol))(hi))
    h = 1e-5
    fd = (
        scipy.optimize.lsq_linear(x, y, bounds=(lo, hi + h), tol=1e-14, method="bvls").x
        - scipy.optimize.lsq_linear(x, y, bounds=(lo, hi - h), tol=1e-14, method="bvls").x
    ) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-5, atol=1e-6)


def test_simplex_and_l2_ball():
    r = np.random.default_rng(8)
    x = r.normal(size=(25, 4))
    y = x @ np.array([0.8, 0.5, -0.2, 0.1]) + 0.1 * r.normal(size=25)
    obj, data = _ls(x, y)
    res = jaxloss.minimize(
        obj, {"w": jnp.full(4, 0.25)}, data, constraint=jaxloss.prox.Simplex(), tol=1e-12, max_steps=5000
    )
    ref = scipy.optimize.minimize(
        lambda w: 0.5 * np.mean((x @ w - y) ** 2),
        np.full(4, 0.25),
        jac=lambda w: x.T @ (x @ w - y) / len(y),
        method="SLSQP",
        bounds=[(0, None)] * 4,
        constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1}],
        options={"ftol": 1e-15, "maxiter": 1000},
    ).x
    np.testing.assert_allclose(np.asarray(res.params["w"]), ref, rtol=0, atol=1e-6)
    assert abs(float(jnp.sum(res.params["w"])) - 1) < 1e-12

    radius = 0.6
    ball = jaxloss.minimize(
        obj, {"w": jnp.zeros(4)}, data, constraint=jaxloss.prox.L2Ball(radius), tol=1e-12, max_steps=5000
    )
    g, b = x.T @ x / len(y), x.T @ y / len(y)
    mu = scipy.optimize.brentq(
        lambda m: np.linalg.norm(np.linalg.solve(g + m * np.eye(4), b)) - radius, 0.0, 100.0, xtol=1e-15
    )
    ref = np.linalg.solve(g + mu * np.eye(4), b)
    np.testing.assert_allclose(np.asarray(ball.params["w"]), ref, rtol=0, atol=1e-6)
    # d w*/d radius: on the sphere, w*(r) = (G + mu(r) I)^{-1} b; central differences of the secular root
    jac = np.asarray(
        jax.jit(
            jax.jacfwd(
                lambda rr: jaxloss.minimize(
                    obj, {"w": jnp.zeros(4)}, data, constraint=jaxloss.prox.L2Ball(rr), tol=1e-12, max_steps=5000
                ).params["w"]
            )
        )(radius)
    )

    def ref_sol(rr):
        m = scipy.optimize.brentq(
            lambda m: np.linalg.norm(np.linalg.solve(g + m * np.eye(4), b)) - rr, 0.0, 100.0, xtol=1e-15
        )
        return np.linalg.solve(g + m * np.eye(4), b)

    np.testing.assert_allclose(jac, (ref_sol(radius + 1e-5) - ref_sol(radius - 1e-5)) / 2e-5, rtol=1e-5, atol=1e-7)


def test_constraint_errors():
    obj, data = _ls(X, Y)
    with pytest.raises(TypeError, match="constraint must be"):
        jaxloss.minimize(obj, {"w": jnp.zeros(D)}, data, constraint="non_negative")
    with pytest.raises(NotImplementedError, match="no closed form"):
        jaxloss.minimize(
            jaxloss.lasso_regression(0.1, fit_intercept=False),
            {"w": jnp.zeros(D)},
            data,
            constraint=jaxloss.prox.Simplex(),
        )
    with pytest.raises(ValueError, match="lower <= upper"):
        jaxloss.prox.Box(1.0, 0.0)


# ---------------------------------------------------------------------------------------------------------
# Failure flags
# ---------------------------------------------------------------------------------------------------------


def test_singular_hessian_gives_nan_derivative_and_reports_residual():
    """Duplicated feature, no regularization: the Hessian is singular; the derivative is NaN, not a
    plausible number; with on_failure='ignore' it is finite, and report() sees the residual."""
    x = np.hstack([X[:, :2], X[:, :1]])
    data = (jnp.asarray(x), jnp.asarray(Y))
    seen = []

    def outer(t, opts):
        obj = jaxloss.least_squares()
        res = jaxloss.minimize(obj, obj.init_params(data[0]), (data[0], data[1] * t), tol=1e-12, implicit_diff=opts)
        return res.params["w"][0]

    nan = jax.grad(outer)(1.0, jaxloss.ImplicitDiff(report=lambda r: seen.append(float(r))))
    assert np.isnan(float(nan)) and seen and not seen[-1] <= 1e-6  # NaN or large
    ok = jax.grad(outer)(1.0, jaxloss.ImplicitDiff(on_failure="ignore", damping=1e-8))
    assert np.isfinite(float(ok))
    with pytest.raises(ValueError, match="solver must be"):
        jaxloss.ImplicitDiff(solver="lu")


def test_auto_solver_falls_back_to_a_direct_solve_when_cg_fails():
    """ImplicitDiff('auto') above direct_max parameters uses CG; a CG solve that misses `check` (here:
    capped at 2 iterations) is redone directly up to fallback_max parameters, so the derivative equals the
    direct solve's; without the fallback (solver='cg') the same cap gives NaN. Reference: the ridge normal
    equations' derivative in float64 NumPy."""
    r = np.random.default_rng(3)
    n, d = 40, 12
    x = r.normal(size=(n, d)) * np.linspace(0.1, 3.0, d)
    y = x @ r.normal(size=d) + 0.1 * r.normal(size=n)
    data = (jnp.asarray(x), jnp.asarray(y))
    alpha = 0.01

    def hyper(a, opts):
        obj = jaxloss.ridge_regression(a, fit_intercept=False)
        return jnp.sum(_solve(obj, data, implicit_diff=opts).params["w"])

    m = x.T @ x / n + alpha * np.eye(d)
    ref = float(np.sum(-np.linalg.solve(m, np.linalg.solve(m, x.T @ y / n))))  # d w*/d alpha = -M^-1 w*
    auto = jaxloss.ImplicitDiff(maxiter=2, direct_max=4)  # 12 parameters: CG, fallback up to 500
    np.testing.assert_allclose(float(jax.grad(hyper)(alpha, auto)), ref, rtol=1e-8)
    assert np.isnan(float(jax.grad(hyper)(alpha, jaxloss.ImplicitDiff(solver="cg", maxiter=2))))
    no_fallback = jaxloss.ImplicitDiff(maxiter=2, direct_max=4, fallback_max=4)
    assert np.isnan(float(jax.grad(hyper)(alpha, no_fallback)))
    # well within the iteration cap, CG alone gives the same derivative
    np.testing.assert_allclose(float(jax.grad(hyper)(alpha, jaxloss.ImplicitDiff(solver="cg"))), ref, rtol=1e-8)
