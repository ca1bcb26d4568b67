"""Objective builder and ready objectives.

References: float64 NumPy formulas of each ready objective (scikit-learn's conventions, stated in the
docstrings); the loss and the regularizer called separately (the gradient of an objective is the sum of
its parts' gradients); a Python loop over examples for ``per_sample``; Flax linen's ``Module.apply`` and
Equinox's ``jax.vmap(module)`` for the two framework model kinds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from harness import DTYPES, assert_close, assert_tree_close

N, D, K = 7, 3, 4


def _data(seed=0, classes=None, counts=False, dtype=np.float64):
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, D)).astype(dtype)
    if classes:
        y = r.integers(0, classes, size=N)
    elif counts:
        y = r.poisson(2.0, size=N).astype(dtype)
    else:
        y = r.normal(size=N).astype(dtype)
    return x, y


def _mlp(params, x):
    h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
    return h @ params["out"]["w"] + params["out"]["b"]


def _mlp_params(seed=0):
    r = np.random.default_rng(seed)
    return {
        "hidden": {"w": jnp.asarray(r.normal(size=(D, 5))), "b": jnp.asarray(r.normal(size=5))},
        "out": {"w": jnp.asarray(r.normal(size=(5, K))), "b": jnp.asarray(r.normal(size=K))},
    }


def _add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def test_grad_of_objective_is_sum_of_parts():
    """The loss and each regularizer term called directly; their gradients add up to the objective's."""
    x, y = _data(classes=K)
    params = _mlp_params()
    parts = [jaxloss.l2(0.1, mask=jaxloss.not_bias), jaxloss.l1(0.05), jaxloss.orthogonal(0.02)]
    obj = jaxloss.objective(_mlp, jaxloss.cross_entropy, sum(parts), label_smoothing=0.1)
    data_grad = jax.grad(lambda p: jaxloss.cross_entropy(_mlp(p, x), y, label_smoothing=0.1))(params)
    expected = data_grad
    for reg in parts:
        expected = _add(expected, jax.grad(reg)(params))
    assert_tree_close(jax.grad(obj)(params, (x, y)), expected, np.float64)
    value = jaxloss.cross_entropy(_mlp(params, x), y, label_smoothing=0.1) + sum(float(r(params)) for r in parts)
    assert_close(obj(params, (x, y)), value, np.float64)


def test_output_penalty_sees_predictions():
    x, y = _data(classes=K)
    params = _mlp_params()
    obj = jaxloss.objective(_mlp, jaxloss.cross_entropy, jaxloss.l2(0.1) + jaxloss.confidence_penalty(0.3))
    logits = _mlp(params, x)
    z = np.asarray(logits)
    pr = np.exp(z - z.max(-1, keepdims=True))
    pr /= pr.sum(-1, keepdims=True)
    entropy = -(pr * np.log(pr)).sum(-1).mean()
    expected = float(jaxloss.cross_entropy(logits, y)) + float(jaxloss.l2(0.1)(params)) - 0.3 * entropy
    assert_close(obj(params, (x, y)), expected, np.float64)


def test_per_sample_equals_loop_and_weights():
    x, y = _data(classes=K)
    params = _mlp_params()
    obj = jaxloss.objective(_mlp, jaxloss.cross_entropy, jaxloss.l2(0.1))
    per = obj.per_sample(params, (x, y))
    loop = [float(jaxloss.cross_entropy(_mlp(params, x[i : i + 1]), y[i : i + 1])) for i in range(N)]
    assert per.shape == (N,)
    assert_close(per, loop, np.float64)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=N)
    weighted = obj.data_term(params, (x, y, w))
    assert_close(weighted, np.sum(w * np.asarray(loop)) / np.sum(w), np.float64)
    assert_close(obj(params, (x, y, w)), weighted + float(jaxloss.l2(0.1)(params)), np.float64)
    assert_close(jax.jit(obj.per_sample)(params, (x, y)), loop, np.float64)
    # one per-example function with the per-sample tools: chunked (with a remainder) and per_sample_losses agree
    assert_close(obj.per_sample(params, (x, y, w), chunk_size=3), loop, np.float64)
    assert_close(jaxloss.per_sample_losses(obj.data_term, params, (x, y)), loop, np.float64)


def test_with_aux_gives_predictions_for_metrics():
    x, y = _data(classes=K)
    params = _mlp_params()
    obj = jaxloss.objective(_mlp, jaxloss.cross_entropy, jaxloss.l2(0.1))
    (value, aux), grads = jax.value_and_grad(obj.with_aux, has_aux=True)(params, (x, y))
    assert_close(aux["predictions"], _mlp(params, x), np.float64)
    assert_close(value, aux["loss"] + aux["penalty"], np.float64)
    assert_close(value, obj(params, (x, y)), np.float64)
    assert_tree_close(grads, jax.grad(obj)(params, (x, y)), np.float64)


def test_flax_linen_model():
    """Flax linen: the module itself and its .apply give the same objective as calling apply by hand
    (Flax keeps float32 parameters, hence float32 tolerances)."""
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(K)(nn.tanh(nn.Dense(5)(x)))

    model = MLP()
    x, y = _data(classes=K)
    variables = model.init(jax.random.PRNGKey(0), jnp.asarray(x))
    reg = jaxloss.l2(0.1, mask=jaxloss.not_bias)
    ref = lambda v: jaxloss.cross_entropy(model.apply(v, x), y) + reg(v)  # noqa: E731
    for m in (model, model.apply):
        obj = jaxloss.objective(m, jaxloss.cross_entropy, reg)
        assert_close(obj(variables, (x, y)), ref(variables), np.float32)
        assert_tree_close(jax.grad(obj)(variables, (x, y)), jax.grad(ref)(variables), np.float32)
    # the mask saw Flax's parameter names: biases are not penalised
    kernels = [v for p, v in jax.tree_util.tree_flatten_with_path(variables)[0] if "kernel" in jax.tree_util.keystr(p)]
    assert_close(reg(variables), 0.05 * sum(float(jnp.sum(k**2)) for k in kernels), np.float32)
    per = obj.per_sample(variables, (x, y))
    assert_close(per, jaxloss.cross_entropy(model.apply(variables, x), y, reduction="none"), np.float32)


def test_equinox_module_model():
    """Equinox: params are the module; its per-example __call__ is vmapped; non-array leaves are skipped."""
    import equinox as eqx

    model = eqx.nn.MLP(D, K, width_size=5, depth=1, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    x, y = _data(classes=K)
    reg = jaxloss.l2(0.1)
    obj = jaxloss.objective(model, jaxloss.cross_entropy, reg)
    ref = lambda m: jaxloss.cross_entropy(jax.vmap(m)(x), y) + reg(m)  # noqa: E731
    assert_close(obj(model, (x, y)), ref(model), np.float64)
    g = eqx.filter_grad(obj)(model, (x, y))
    g_ref = eqx.filter_grad(ref)(model)
    assert_tree_close(eqx.filter(g, eqx.is_array), eqx.filter(g_ref, eqx.is_array), np.float64)
    arrays = [a for a in jax.tree_util.tree_leaves(model) if eqx.is_array(a)]
    assert_close(reg(model), 0.05 * sum(float(jnp.sum(a**2)) for a in arrays), np.float64)
    assert_close(
        obj.per_sample(model, (x, y)), jaxloss.cross_entropy(jax.vmap(model)(x), y, reduction="none"), np.float64
    )


def _lin(params, x):
    return x @ np.asarray(params["w"]) + np.asarray(params["b"])


def _np_params(seed, k=None, extra=False):
    r = np.random.default_rng(seed)
    p = {"w": r.normal(size=(D,) if k is None else (D, k)), "b": r.normal(size=() if k is None else (k,))}
    if extra:
        p["log_scale"] = np.array(-0.3)
    return p


def _huber(r, d):
    a = np.abs(r)
    return np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))


def _softplus(z):
    return np.logaddexp(0, z)


# float64 NumPy formulas of the ready objectives (the conventions in their docstrings).
READY = {
    "least_squares": (lambda: jaxloss.least_squares(), {}, lambda p, x, y: 0.5 * np.mean((_lin(p, x) - y) ** 2)),
    "ridge_regression": (
        lambda: jaxloss.ridge_regression(0.3),
        {},
        lambda p, x, y: 0.5 * np.mean((_lin(p, x) - y) ** 2) + 0.15 * np.sum(p["w"] ** 2),
    ),
    "lasso_regression": (
        lambda: jaxloss.lasso_regression(0.3),
        {},
        lambda p, x, y: 0.5 * np.mean((_lin(p, x) - y) ** 2) + 0.3 * np.sum(np.abs(p["w"])),
    ),
    "logistic_binary": (
        lambda: jaxloss.logistic_regression(0.2),
        dict(classes=2),
        lambda p, x, y: np.mean(_softplus(_lin(p, x)) - y * _lin(p, x)) + 0.1 * np.sum(p["w"] ** 2),
    ),
    "logistic_multinomial": (
        lambda: jaxloss.logistic_regression(0.2, num_classes=K),
        dict(classes=K),
        lambda p, x, y: (
            np.mean(np.log(np.exp(_lin(p, x)).sum(-1)) - _lin(p, x)[np.arange(N), y]) + 0.1 * np.sum(p["w"] ** 2)
        ),
    ),
    "svm_hinge": (
        lambda: jaxloss.linear_svm(0.2),
        dict(classes=2),
        lambda p, x, y: np.mean(np.maximum(0, 1 - (2 * y - 1) * _lin(p, x))) + 0.1 * np.sum(p["w"] ** 2),
    ),
    "svm_squared_hinge_penalized_b": (
        lambda: jaxloss.linear_svm(0.2, loss="squared_hinge", penalize_intercept=True),
        dict(classes=2),
        lambda p, x, y: (
            np.mean(np.maximum(0, 1 - (2 * y - 1) * _lin(p, x)) ** 2) + 0.1 * (np.sum(p["w"] ** 2) + p["b"] ** 2)
        ),
    ),
    "huber": (
        lambda: jaxloss.huber_regression(0.8, 0.2),
        {},
        lambda p, x, y: np.mean(_huber(_lin(p, x) - y, 0.8)) + 0.1 * np.sum(p["w"] ** 2),
    ),
    "huber_fit_scale": (
        lambda: jaxloss.huber_regression(0.8, 0.2, fit_scale=True),
        {},
        lambda p, x, y: (
            np.mean(np.exp(p["log_scale"]) * (1 + 2 * _huber((y - _lin(p, x)) / np.exp(p["log_scale"]), 0.8)))
            + 0.1 * np.sum(p["w"] ** 2)
        ),
    ),
    "quantile": (
        lambda: jaxloss.quantile_regression(0.3, 0.1),
        {},
        lambda p, x, y: (
            np.mean(np.maximum(0.3 * (y - _lin(p, x)), -0.7 * (y - _lin(p, x)))) + 0.1 * np.sum(np.abs(p["w"]))
        ),
    ),
    "poisson": (
        lambda: jaxloss.poisson_regression(0.2),
        dict(counts=True),
        lambda p, x, y: np.mean(np.exp(_lin(p, x)) - y * _lin(p, x)) + 0.1 * np.sum(p["w"] ** 2),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(READY))
def test_ready_objective_vs_numpy_formula(name, dtype):
    make, data_kw, ref = READY[name]
    obj = make()
    x, y = _data(seed=2, **data_kw)
    k = K if name == "logistic_multinomial" else None
    p64 = _np_params(3, k, extra=name == "huber_fit_scale")
    init = obj.init_params(x.astype(dtype))
    assert jax.tree_util.tree_structure(init) == jax.tree_util.tree_structure(p64)
    assert all(
        a.shape == np.shape(b) and a.dtype == dtype
        for a, b in zip(jax.tree_util.tree_leaves(init), jax.tree_util.tree_leaves(p64))
    )
    p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), p64)
    xd = x.astype(dtype)
    yd = y if data_kw.get("classes") else y.astype(dtype)
    value = obj(p, (xd, yd))
    assert value.dtype == dtype
    assert_close(value, ref(p64, x, y), dtype, rtol=1e-5 if dtype == np.float32 else None)
    per = obj.per_sample(p, (xd, yd))
    assert per.shape == (N,)


def test_errors():
    obj = jaxloss.least_squares()
    x, y = _data()
    p = obj.init_params(x)
    with pytest.raises(ValueError, match="batch"):
        obj(p, x)
    with pytest.raises(TypeError, match="model"):
        jaxloss.objective(3, jaxloss.mse)
    with pytest.raises(ValueError, match="loss must be one of"):
        jaxloss.linear_svm(loss="logistic")
    with pytest.raises(NotImplementedError):
        jaxloss.objective(_mlp, jaxloss.mse).init_params(x)
    # multi-output least squares
    y2 = np.stack([y, 2 * y], 1)
    assert jaxloss.least_squares().init_params(x, y2)["w"].shape == (D, 2)


def test_objectives_are_pytrees_of_their_hyperparameters():
    """Float hyperparameters are leaves (traceable, vmappable); everything else is static structure."""
    obj = jaxloss.huber_regression(0.8, 0.2)
    assert sorted(jax.tree_util.tree_leaves(obj)) == [0.2, 0.8]
    assert jax.tree_util.tree_structure(obj) == jax.tree_util.tree_structure(jaxloss.huber_regression(1.5, 0.1))
    x, y = _data()
    p = jax.tree_util.tree_map(jnp.asarray, _np_params(3))
    f = jax.jit(lambda o: o(p, (x, y)))
    assert_close(f(obj), obj(p, (x, y)), np.float64)
    by_delta = jax.vmap(lambda d: jaxloss.huber_regression(d, 0.2)(p, (x, y)))(jnp.array([0.8, 1.5]))
    assert_close(by_delta, [obj(p, (x, y)), jaxloss.huber_regression(1.5, 0.2)(p, (x, y))], np.float64)
    reg = jaxloss.elastic_net(0.3, 0.4, mask={"w": True, "b": False})
    assert jax.tree_util.tree_leaves(reg) == [0.3, 0.4]
    assert jax.tree_util.tree_structure(reg) == jax.tree_util.tree_structure(
        jaxloss.elastic_net(1.0, 0.9, mask={"w": True, "b": False})
    )
