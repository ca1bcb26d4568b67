"""Proximal operators (jaxloss.prox) against PyTorch's softshrink, NumPy closed forms, optax's projections
(np.clip), and the proximal transform against a float64 NumPy ISTA loop; exact zeros on a lasso."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jaxloss
from harness import DTYPES, assert_close


def _x(dtype, seed=0, shape=(4, 3)):
    return (np.random.default_rng(seed).normal(size=shape) * 2).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_threshold_vs_pytorch_softshrink(dtype):
    x = _x(dtype)
    ref = torch.nn.functional.softshrink(torch.tensor(x), lambd=0.7).numpy()
    out = jaxloss.prox.soft_threshold({"a": x, "b": [x[0]]}, 0.7)
    assert out["a"].dtype == dtype
    assert_close(out["a"], ref, dtype)
    assert_close(out["b"][0], ref[0], dtype)
    assert np.sum(np.asarray(out["a"]) == 0) == np.sum(np.abs(x) <= 0.7) > 0  # exact zeros
    assert not np.any(np.signbit(np.asarray(out["a"])[np.asarray(out["a"]) == 0]))  # +0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_ridge_elastic_net_group_lasso_vs_numpy(dtype):
    x = _x(dtype)
    x64 = x.astype(np.float64)
    assert_close(jaxloss.prox.l2(x, 0.5), x64 / 1.5, dtype)
    st = np.sign(x64) * np.maximum(np.abs(x64) - 0.7, 0)
    assert_close(jaxloss.prox.elastic_net(x, 0.7, 0.5), st / 1.5, dtype)
    norms = np.linalg.norm(x64, axis=-1, keepdims=True)
    assert_close(jaxloss.prox.group_lasso(x, 1.5, axis=-1), x64 * np.maximum(1 - 1.5 / norms, 0), dtype)
    whole = np.linalg.norm(x64)
    assert_close(jaxloss.prox.group_lasso(x, 1.5), x64 * max(1 - 1.5 / whole, 0), dtype)
    # a group below the threshold vanishes as a whole; a zero group stays zero without NaN
    out = jaxloss.prox.group_lasso(np.array([[3.0, 4.0], [0.0, 0.0], [0.1, 0.1]], dtype), 1.0, axis=-1)
    np.testing.assert_array_equal(np.asarray(out)[1:], 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_projections_vs_numpy_clip(dtype):
    x = _x(dtype)
    np.testing.assert_array_equal(jaxloss.prox.non_negative(x), np.clip(x, 0, None))
    np.testing.assert_array_equal(jaxloss.prox.box({"a": x}, lower=-0.5, upper=0.25)["a"], np.clip(x, -0.5, 0.25))


def test_threshold_validation_and_traced_thresholds():
    with pytest.raises(ValueError, match="threshold"):
        jaxloss.prox.soft_threshold(jnp.ones(2), -1.0)
    f = jax.jit(jax.vmap(lambda t: jaxloss.prox.soft_threshold(jnp.array([1.0, -2.0]), t)))
    assert_close(f(jnp.array([0.5, 1.5])), np.array([[0.5, -1.5], [0.0, -0.5]]), np.float64)


def _lasso_data(seed=0, n=20, p=6):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, p))
    w = np.array([2.0, -1.5, 0.0, 0.0, 0.3, 0.0])
    y = x @ w + 0.3 * r.normal(size=n)
    return x, y


def test_transform_is_ista_with_exact_zeros():
    """float64 NumPy ISTA reference: chain(sgd(lr), transform(l1, lr)) gives the same iterates, exact zeros."""
    x, y = _lasso_data()
    lam, lr, steps = 0.2, 0.1, 200

    def f(w, data):
        xx, yy = data
        return 0.5 * jnp.mean((xx @ w - yy) ** 2)

    opt = optax.chain(optax.sgd(lr), jaxloss.prox.transform(jaxloss.l1(lam), lr))
    w = jnp.zeros(x.shape[1])
    state = opt.init(w)

    @jax.jit
    def step(w, state):
        g = jax.grad(f)(w, (x, y))
        u, state = opt.update(g, state, w)
        return optax.apply_updates(w, u), state

    w_np = np.zeros(x.shape[1])
    for _ in range(steps):
        w, state = step(w, state)
        v = w_np - lr * x.T @ (x @ w_np - y) / len(y)
        w_np = np.sign(v) * np.maximum(np.abs(v) - lr * lam, 0)
    assert_close(w, w_np, np.float64, rtol=1e-10, atol=1e-12)
    zeros = np.asarray(w) == 0
    assert zeros.sum() >= 2
    np.testing.assert_array_equal(zeros, w_np == 0)


def test_transform_with_schedule_projection_and_errors():
    sched = optax.linear_schedule(1.0, 0.5, 2)
    tx = jaxloss.prox.transform(jaxloss.l1(1.0), sched)
    p = jnp.array([3.0, -0.2])
    s = tx.init(p)
    u, s = tx.update(jnp.zeros(2), s, p)  # step 1.0
    assert_close(optax.apply_updates(p, u), np.array([2.0, 0.0]), np.float64)
    p2 = optax.apply_updates(p, u)
    u, s = tx.update(jnp.zeros(2), s, p2)  # step 0.75
    assert_close(optax.apply_updates(p2, u), np.array([1.25, 0.0]), np.float64)
    # a projection as the prox: projected gradient descent onto a box
    box = optax.chain(optax.sgd(1.0), jaxloss.prox.transform(functools.partial(jaxloss.prox.box, lower=0.0, upper=1.0)))
    st = box.init(p)
    u, _ = box.update(jnp.array([1.0, -5.0]), st, p)
    np.testing.assert_array_equal(optax.apply_updates(p, u), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.zeros(2), s)
    with pytest.raises(TypeError, match="prox"):
        jaxloss.prox.transform(3.0, 0.1)
