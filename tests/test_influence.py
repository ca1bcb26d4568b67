"""jaxloss.influence against leave-one-out retraining (Koh & Liang 2017).

Reference: L2 logistic regression on scikit-learn's breast-cancer data (standardised on the training
split, train_test_split(test_size=0.2, random_state=0)), mean log-loss + 0.5 * 0.01 * ||w||^2 with the
intercept unpenalised, solved to machine precision by Newton's method in float64 NumPy, and every one of
the 455 leave-one-out problems re-solved the same way (warm-started Newton): the actual change of the
mean test log-loss.
"""

import jax
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


# --------------------------------------------------------------------------------------------------------
# Models as users write them: one adapter (jaxloss._models) for every entry point, influence included
# --------------------------------------------------------------------------------------------------------

_N, _D, _H = 12, 3, 5
_r = np.random.default_rng(4)
_X = jnp.asarray(_r.normal(size=(_N, _D)))
_Y = jnp.asarray(_r.normal(size=_N))
_XT, _YT = jnp.asarray(_r.normal(size=(4, _D))), jnp.asarray(_r.normal(size=4))
_DAMP = 0.1
_MEAN, _VAR = jnp.asarray(_r.normal(size=_H)), jnp.asarray(1.0 + _r.uniform(size=_H))


def _mlp(p, x):
    """The plain-function form of the Equinox and NNX networks below (weights as [in, out])."""
    return (jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])[..., 0]


def _mlp_bn(p, x):
    """The plain form of the linen network: fixed running statistics (constants, not parameters)."""
    h = (x @ p["w1"] + p["b1"] - _MEAN) / jnp.sqrt(_VAR + 1e-5)
    return (jnp.tanh(h) @ p["w2"] + p["b2"])[..., 0]


def _reference_influence(fn, p):
    """Reference without jaxloss: (H + damping I)^{-1} grad T from the explicit Hessian of the flattened
    parameters (jax.hessian, np.linalg.solve in float64), per-example gradients by a Python loop."""
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(p)
    train_loss = lambda q: jnp.mean((fn(unravel(q), _X) - _Y) ** 2)  # noqa: E731
    test_loss = lambda q: jnp.mean((fn(unravel(q), _XT) - _YT) ** 2)  # noqa: E731
    h = np.asarray(jax.hessian(train_loss)(flat), np.float64)
    v = np.linalg.solve(h + _DAMP * np.eye(len(flat)), np.asarray(jax.grad(test_loss)(flat)))
    per = np.array(
        [
            np.asarray(jax.grad(lambda q, i=i: (fn(unravel(q), _X[i : i + 1])[0] - _Y[i]) ** 2)(flat)) @ v
            for i in range(_N)
        ]
    )
    return (per - per.mean()) / _N


def _eqx_and_plain():
    eqx = pytest.importorskip("equinox")

    class Net(eqx.Module):
        l1: eqx.nn.Linear
        l2: eqx.nn.Linear
        act: object = eqx.field(static=True)  # held, never differentiated

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.l1 = eqx.nn.Linear(_D, _H, key=k1, dtype=jnp.float64)
            self.l2 = eqx.nn.Linear(_H, 1, key=k2, dtype=jnp.float64)
            self.act = jnp.tanh

        def __call__(self, x):  # one example
            return self.l2(self.act(self.l1(x)))[0]

    net = Net(jax.random.PRNGKey(0))
    plain = {"w1": net.l1.weight.T, "b1": net.l1.bias, "w2": net.l2.weight.T, "b2": net.l2.bias}
    return net, net, _mlp, plain


def _nnx_and_plain():
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(_D, _H, rngs=rngs, param_dtype=jnp.float64)
            self.l2 = nnx.Linear(_H, 1, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))[..., 0]

    net = Net(nnx.Rngs(1))
    plain = {"w1": net.l1.kernel[...], "b1": net.l1.bias[...], "w2": net.l2.kernel[...], "b2": net.l2.bias[...]}
    return net, net, _mlp, plain


def _linen_and_plain():
    nn = pytest.importorskip("flax.linen")

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(_H, param_dtype=jnp.float64)(x)
            # running statistics only (eval mode, no scale/bias): a collection held, not differentiated
            h = nn.BatchNorm(use_running_average=True, use_scale=False, use_bias=False)(h)
            return nn.Dense(1, param_dtype=jnp.float64)(jnp.tanh(h))[..., 0]

    module = Net()
    prm = module.init(jax.random.PRNGKey(2), _X)["params"]
    variables = {"params": prm, "batch_stats": {"BatchNorm_0": {"mean": _MEAN, "var": _VAR}}}
    plain = {
        "w1": prm["Dense_0"]["kernel"],
        "b1": prm["Dense_0"]["bias"],
        "w2": prm["Dense_1"]["kernel"],
        "b2": prm["Dense_1"]["bias"],
    }
    return module, variables, _mlp_bn, plain


@pytest.mark.parametrize("framework", ["equinox", "nnx", "linen"])
def test_influence_of_a_framework_mlp_equals_the_plain_function(framework):
    """influence on an Equinox / NNX / linen (BatchNorm statistics carried) MLP == influence on the same
    network written as fn + params pytree == an explicit-Hessian reference (float64, damping 0.1)."""
    make = {"equinox": _eqx_and_plain, "nnx": _nnx_and_plain, "linen": _linen_and_plain}[framework]
    model, params, fn, plain = make()
    train, test = (_X, _Y), (_XT, _YT)
    got = np.asarray(jaxloss.influence(jaxloss.objective(model, jaxloss.mse), params, train, test, damping=_DAMP))
    ref_plain = np.asarray(jaxloss.influence(jaxloss.objective(fn, jaxloss.mse), plain, train, test, damping=_DAMP))
    ref = _reference_influence(fn, plain)
    assert np.abs(ref).max() > 1e-4  # a non-trivial reference
    np.testing.assert_allclose(ref_plain, ref, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)
