"""Drivers: minimize (optax.lbfgs, optax.adam, proximal), fit, train_step, and the demo at a reduced size.

References: the ridge normal equations solved by NumPy in float64; a hand-written optax loop (the same
optimizer, the same batches) for train_step and fit; scikit-learn's Lasso for the sparsity pattern that
the proximal steps must reach.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from harness import assert_close, assert_tree_close

N, D = 40, 5


def _regression(seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, D))
    y = x @ np.array([1.5, -2.0, 0.0, 0.5, 0.0]) + 0.7 + 0.1 * r.normal(size=N)
    return jnp.asarray(x), jnp.asarray(y)


def _ridge_solution(x, y, alpha):
    """float64 NumPy normal equations of 0.5 mean r^2 + 0.5 alpha ||w||^2 with an unpenalised intercept."""
    x, y = np.asarray(x), np.asarray(y)
    xa = np.hstack([x, np.ones((len(y), 1))])
    reg = np.diag([alpha * len(y)] * x.shape[1] + [0.0])
    sol = np.linalg.solve(xa.T @ xa + reg, xa.T @ y)
    return sol[:-1], sol[-1]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_minimize_converges_on_ridge(optimizer):
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    opt, tol = (optax.lbfgs(), 1e-10) if optimizer == "lbfgs" else (optax.adam(0.05), 1e-7)
    res = jaxloss.minimize(obj, obj.init_params(x), (x, y), opt, tol=tol, max_steps=3000)
    g0 = jax.grad(obj)(obj.init_params(x), (x, y))
    scale = max(float(jnp.sqrt(sum(jnp.sum(v**2) for v in g0.values()))), float(obj(obj.init_params(x), (x, y))))
    assert bool(res.converged) and int(res.status) == 0 and float(res.grad_norm) <= tol * scale
    assert 0 < int(res.num_steps) < 3000 and res.history.shape == (int(res.num_steps) + 1,)
    assert_close(res.history[-1], res.value, np.float64)
    w, b = _ridge_solution(x, y, 0.1)
    atol = 1e-8 if optimizer == "lbfgs" else 1e-6
    assert_close(res.params["w"], w, np.float64, rtol=0, atol=atol)
    assert_close(res.params["b"], b, np.float64, rtol=0, atol=atol)
    if optimizer == "lbfgs":
        assert int(res.num_steps) < 50
        assert np.all(np.diff(np.asarray(res.history)) <= 1e-12)  # the line search never goes up


def test_minimize_step_cap_and_cache():
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    opt = optax.sgd(1e-3)
    res = jaxloss.minimize(obj, obj.init_params(x), (x, y), opt, max_steps=5)
    assert int(res.num_steps) == 5 and not bool(res.converged) and res.history.shape == (6,)
    n_cached = len(jaxloss.optimize._CACHE)
    res2 = jaxloss.minimize(obj, res.params, (x, y), opt, max_steps=5)
    assert len(jaxloss.optimize._CACHE) == n_cached  # same objective and optimizer: compiled loop reused
    assert float(res2.value) < float(res.value)


def test_regularization_path_compiles_once_and_vmaps():
    """Hyperparameters are pytree leaves: a lasso path reuses one compiled loop, and vmaps over alpha."""
    x, y = _regression()
    alphas = [0.05, 0.2, 0.8]
    p0 = jaxloss.lasso_regression(1.0).init_params(x)
    first = jaxloss.minimize(jaxloss.lasso_regression(alphas[0]), p0, (x, y), tol=1e-10, max_steps=2000)
    n_cached = len(jaxloss.optimize._CACHE)
    path = [first] + [
        jaxloss.minimize(jaxloss.lasso_regression(a), p0, (x, y), tol=1e-10, max_steps=2000) for a in alphas[1:]
    ]
    assert len(jaxloss.optimize._CACHE) == n_cached
    nonzeros = [int(np.sum(np.asarray(r.params["w"]) != 0)) for r in path]
    assert nonzeros == sorted(nonzeros, reverse=True) and nonzeros[0] > nonzeros[-1]
    batched = jax.vmap(
        lambda a: jaxloss.minimize(jaxloss.lasso_regression(a), p0, (x, y), tol=1e-10, max_steps=2000).params
    )(jnp.asarray(alphas))
    for i, r in enumerate(path):
        assert_tree_close(jax.tree_util.tree_map(lambda a: a[i], batched), r.params, np.float64, rtol=0, atol=1e-8)


def test_proximal_minimize_exact_zeros_on_lasso():
    """FISTA (optimizer=None) and sgd + proximal step both give exact zeros at scikit-learn's pattern."""
    from sklearn.linear_model import Lasso

    x, y = _regression()
    alpha = 0.3
    sk = Lasso(alpha=alpha, tol=1e-14, max_iter=100_000).fit(np.asarray(x), np.asarray(y))
    obj = jaxloss.lasso_regression(alpha)
    fista = jaxloss.minimize(obj, obj.init_params(x), (x, y), tol=1e-10, max_steps=3000)
    ista = jaxloss.minimize(obj, obj.init_params(x), (x, y), optax.sgd(0.2), prox_step=0.2, tol=1e-10, max_steps=3000)
    for res in (fista, ista):
        assert bool(res.converged)
        zeros = np.asarray(res.params["w"]) == 0
        np.testing.assert_array_equal(zeros, sk.coef_ == 0)
        assert zeros.sum() >= 1
        assert_close(res.params["w"], sk.coef_, np.float64, rtol=0, atol=1e-7)
    # the proximal transform in a mini-batch training step also leaves exact zeros
    step = jaxloss.train_step(obj, optax.sgd(0.2), prox_step=0.2)
    params = obj.init_params(x)
    state = step.init(params)
    for _ in range(300):
        params, state, metrics = step(params, state, (x, y))
    np.testing.assert_array_equal(np.asarray(params["w"]) == 0, sk.coef_ == 0)
    assert_close(metrics["loss"], obj(params, (x, y)), np.float64, rtol=1e-6)


def test_minimize_errors_and_extra_regularizer():
    x, y = _regression()
    obj = jaxloss.lasso_regression(0.3)
    with pytest.raises(ValueError, match="prox_step"):
        jaxloss.minimize(obj, obj.init_params(x), (x, y), optax.adam(0.1))
    with pytest.raises(ValueError, match="line-search"):
        jaxloss.minimize(obj, obj.init_params(x), (x, y), optax.lbfgs(), prox_step=0.1)
    # a plain function objective with an l1 regularizer given separately equals the ready lasso
    plain = lambda p, d: 0.5 * jnp.mean((d[0] @ p["w"] + p["b"] - d[1]) ** 2)  # noqa: E731
    reg = jaxloss.l1(0.3, mask=jaxloss.not_bias)
    res = jaxloss.minimize(plain, obj.init_params(x), (x, y), regularizer=reg, tol=1e-10, max_steps=3000)
    ref = jaxloss.minimize(obj, obj.init_params(x), (x, y), tol=1e-10, max_steps=3000)
    assert_tree_close(res.params, ref.params, np.float64, rtol=0, atol=1e-8)


def test_train_step_equals_hand_written_optax_loop():
    """optax reference: value_and_grad + optimizer.update + apply_updates, by hand."""
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    opt = optax.adam(0.01)
    step = jaxloss.train_step(obj, opt, metrics_fn=lambda pred, batch: {"mae": jnp.mean(jnp.abs(pred - batch[1]))})
    p, s = obj.init_params(x), step.init(obj.init_params(x))
    q, t = obj.init_params(x), opt.init(obj.init_params(x))
    for i in range(3):
        batch = (x[i * 10 : (i + 1) * 10], y[i * 10 : (i + 1) * 10])
        p, s, m = step(p, s, batch)
        v, g = jax.value_and_grad(obj)(q, batch)
        assert_close(m["loss"], v, np.float64)
        assert_close(
            m["grad_norm"], np.sqrt(sum(float(jnp.sum(a**2)) for a in jax.tree_util.tree_leaves(g))), np.float64
        )
        assert_close(m["mae"], jnp.mean(jnp.abs(x[i * 10 : (i + 1) * 10] @ q["w"] + q["b"] - batch[1])), np.float64)
        u, t = opt.update(g, t, q)
        q = optax.apply_updates(q, u)
        assert_tree_close(p, q, np.float64)


def test_equinox_module_through_minimize_and_train_step():
    """An Equinox module (with a function leaf) is optimised; its non-array leaves are kept."""
    import equinox as eqx

    x, y = _regression()
    model = eqx.nn.MLP(D, "scalar", width_size=4, depth=1, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    obj = jaxloss.objective(model, jaxloss.mse, jaxloss.l2(1e-3))
    start = float(obj(model, (x, y)))
    res = jaxloss.minimize(obj, model, (x, y), optax.adam(0.05), max_steps=150, tol=1e-12)
    assert isinstance(res.params, eqx.nn.MLP) and res.params.activation is jax.nn.tanh
    assert float(res.value) < 0.2 * start
    assert_close(res.value, obj(res.params, (x, y)), np.float64)
    step = jaxloss.train_step(obj, optax.adam(0.05))
    m, s = model, step.init(model)
    for _ in range(3):
        m, s, metrics = step(m, s, (x, y))
    assert float(metrics["loss"]) < start


def test_flax_linen_through_minimize():
    import flax.linen as nn

    x, y = _regression()
    model = nn.Dense(1)
    variables = model.init(jax.random.PRNGKey(0), x)
    variables = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), variables)
    obj = jaxloss.objective(
        model, lambda p, t, **kw: 0.5 * jaxloss.mse(p[:, 0], t, **kw), jaxloss.l2(0.1, mask=jaxloss.not_bias)
    )
    res = jaxloss.minimize(obj, variables, (x, y), tol=1e-10)
    w, b = _ridge_solution(x, y, 0.1)
    assert bool(res.converged)
    assert_close(res.params["params"]["kernel"][:, 0], w, np.float64, rtol=0, atol=1e-8)
    assert_close(res.params["params"]["bias"][0], b, np.float64, rtol=0, atol=1e-8)


def test_demo_functions_at_reduced_size(tmp_path):
    """The main job's pieces: the table rows have numbers and the plot file is written."""
    from jaxloss import _demo

    # Two of the six fits (each fit is one compilation; `make demo` runs all of them).
    rows, curves = _demo.fit_ready_objectives(
        max_steps=300, mlp_epochs=2, verbose=False, names=("lasso", "MLP cross-entropy")
    )
    assert [r["objective"] for r in rows] == ["lasso", "MLP cross-entropy"]
    lasso, net = rows
    assert lasso["converged"] and lasso["steps"] > 0 and lasso["metric"] == "R^2" and 0.2 < lasso["score"] < 1
    assert net["steps"] == 2 * (1347 // 64) and net["metric"] == "accuracy" and net["score"] > 0.8
    assert len(curves["lasso"][1]) == lasso["steps"] + 1 and len(curves["MLP cross-entropy"][1]) == 2
    table = _demo.format_table(rows)
    assert table.splitlines()[0].split()[:2] == ["objective", "dataset"] and "R^2" in table and "accuracy" in table
    path = _demo.plot_curves(curves, tmp_path / "curves.png")
    assert path.exists() and path.stat().st_size > 1000


# ---------------------------------------------------------------------------------------------------------
# Status, stopping rules, progress and repr (issue 11 point 2; issue 13 point 5)
# ---------------------------------------------------------------------------------------------------------


def test_no_false_success_without_minimizer():
    """One-class logistic regression without l2, and separable data, have no minimizer: not converged,
    flagged possibly unbounded. (The infimum 0 is approached as the intercept or ||w|| grows: log-loss
    formula.)"""
    r = np.random.default_rng(0)
    x = jnp.asarray(r.normal(size=(30, 3)))
    obj = jaxloss.logistic_regression(0.0)
    res = jaxloss.minimize(obj, obj.init_params(x), (x, jnp.ones(30)))
    assert not bool(res.converged) and int(res.status) == 5 and "unbounded" in res.reason
    y_sep = (x[:, 0] > 0).astype(x.dtype)
    res = jaxloss.minimize(obj, obj.init_params(x), (x, y_sep))
    assert not bool(res.converged) and int(res.status) in (1, 3, 4, 5)
    # with l2 there is a minimizer: converged
    res = jaxloss.minimize(jaxloss.logistic_regression(1e-2), obj.init_params(x), (x, y_sep))
    assert bool(res.converged) and res.reason.startswith("converged")


def test_empty_data_and_nan_row():
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    with pytest.raises(ValueError, match="empty data.*shape \\(0, 5\\)"):
        jaxloss.minimize(obj, obj.init_params(x), (x[:0], y[:0]))
    res = jaxloss.minimize(obj, obj.init_params(x), (x.at[3, 1].set(jnp.nan), y))
    assert int(res.status) == 2 and int(res.num_steps) == 0 and "non-finite" in res.reason
    assert float(res.params["w"][0]) == 0.0  # the last finite iterate: the start


def test_convergence_is_scale_relative():
    """Multiplying the objective by 1e6 or 1e-6 changes neither the steps nor the solution."""
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    base = jaxloss.minimize(obj, obj.init_params(x), (x, y), tol=1e-8)
    for c in (1e6, 1e-6):
        scaled = jaxloss.minimize(lambda p, d, c=c: c * obj(p, d), obj.init_params(x), (x, y), tol=1e-8)
        assert bool(scaled.converged)
        assert_tree_close(scaled.params, base.params, np.float64, rtol=0, atol=1e-6)
    w, b = _ridge_solution(x, y, 0.1)
    assert_close(base.params["w"], w, np.float64, rtol=0, atol=1e-6)


def test_progress_and_concise_repr(capfd):
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    res = jaxloss.minimize(obj, obj.init_params(x), (x, y), optax.sgd(0.1), max_steps=6, progress=2)
    out = capfd.readouterr().out
    assert [line.split()[2] for line in out.strip().splitlines()] == ["2", "4", "6"]
    seen = []
    jaxloss.minimize(
        obj, obj.init_params(x), (x, y), optax.sgd(0.1), max_steps=3, progress=lambda k, v, g: seen.append(int(k))
    )
    assert seen == [1, 2, 3]
    text = repr(res)
    assert text.startswith("OptimizeResult(status=max_steps") and "num_steps=6" in text and len(text) < 200
    assert int(res.status) == 1 and "step cap" in res.reason
