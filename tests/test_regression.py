"""Reference tests for the seed regression losses: PyTorch, optax, scikit-learn, float64 NumPy."""

import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from harness import DTYPES, assert_close, check_reference, jax_value_and_grads, torch_value_and_grads


def data(dtype, shape=(6, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype(dtype) * 1.5, rng.normal(size=shape).astype(dtype)


TORCH_PAIRS = [
    ("mse", {}, lambda p, t, r: F.mse_loss(p, t, reduction=r)),
    ("mae", {}, lambda p, t, r: F.l1_loss(p, t, reduction=r)),
    ("huber", {"delta": 0.8}, lambda p, t, r: F.huber_loss(p, t, reduction=r, delta=0.8)),
    ("smooth_l1", {"beta": 0.6}, lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=0.6)),
    ("smooth_l1", {"beta": 0.0}, lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=0.0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw,tfn", TORCH_PAIRS, ids=[f"{n}-{k}" for n, k, _ in TORCH_PAIRS])
def test_against_pytorch(name, kw, tfn, dtype):
    """PyTorch's mse_loss, l1_loss, huber_loss, smooth_l1_loss: value and gradients, mean and sum."""
    p, t = data(dtype)
    fn = getattr(jaxloss, name)
    for reduction in ("mean", "sum"):
        ref_v, ref_g = torch_value_and_grads(lambda a, b: tfn(a, b, reduction), (p, t), (0, 1))
        check_reference(fn, ref_v, ref_g, (p, t), dtype, (0, 1), reduction=reduction, **kw)
    ref_none = tfn(torch.tensor(p), torch.tensor(t), "none").numpy()
    assert_close(fn(p, t, reduction="none", **kw), ref_none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huber_against_optax(dtype):
    """optax.losses.huber_loss (elementwise), averaged."""
    p, t = data(dtype)
    ref = lambda a, b: optax.losses.huber_loss(a, b, delta=0.8).mean()
    ref_v, ref_g = jax_value_and_grads(ref, (p, t), (0, 1))
    check_reference(jaxloss.huber, ref_v, ref_g, (p, t), dtype, (0, 1), delta=0.8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_cosh_against_optax(dtype):
    """optax.losses.log_cosh, averaged; also finite and linear at ±1e4 where naive log(cosh) overflows."""
    p, t = data(dtype)
    ref = lambda a, b: optax.losses.log_cosh(a, b).mean()
    ref_v, ref_g = jax_value_and_grads(ref, (p, t), (0, 1))
    check_reference(jaxloss.log_cosh, ref_v, ref_g, (p, t), dtype, (0, 1))
    big = np.array([1e4, -1e4], dtype)
    v, (g,) = jax_value_and_grads(jaxloss.log_cosh, (big, np.zeros(2, dtype)), (0,), reduction="sum")
    assert_close(v, 2 * (1e4 - np.log(2.0)), dtype)  # float64 formula: |e| - log 2 for large |e|
    assert_close(g, [1.0, -1.0], dtype)  # tanh(±1e4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_bias_error_float64_formula(dtype):
    """float64 NumPy: mean(p - t); gradient 1/n and -1/n; positive means over-prediction."""
    p, t = data(dtype)
    n = p.size
    check_reference(jaxloss.mean_bias_error, np.mean(p.astype(np.float64) - t), [np.full(p.shape, 1 / n), np.full(p.shape, -1 / n)], (p, t), dtype, (0, 1))
    assert float(jaxloss.mean_bias_error(np.ones(3, dtype), np.zeros(3, dtype))) == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_quantile_against_sklearn(tau, dtype):
    """scikit-learn mean_pinball_loss(alpha=tau) for the value; float64 NumPy subgradient for grads."""
    from sklearn.metrics import mean_pinball_loss

    p, t = data(dtype)
    ref_v = mean_pinball_loss(t.ravel().astype(np.float64), p.ravel().astype(np.float64), alpha=tau)
    diff = t.astype(np.float64) - p
    g_p = np.where(diff > 0, -tau, 1 - tau) / p.size  # d/dp of max(tau d, (tau-1) d), d = t - p
    check_reference(jaxloss.quantile, ref_v, [g_p, -g_p], (p, t), dtype, (0, 1), tau=tau)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_and_mask_float64_formula(dtype):
    """Weighted mean sum(w*l)/sum(w) over unmasked entries, against a float64 NumPy formula."""
    p, t = data(dtype)
    rng = np.random.default_rng(3)
    w = rng.uniform(0.1, 2.0, size=(6, 1)).astype(dtype)
    m = rng.uniform(size=p.shape) > 0.3
    l = (p.astype(np.float64) - t) ** 2
    wb = np.broadcast_to(w, p.shape) * m
    assert_close(jaxloss.mse(p, t, weights=w, where=m), (wb * l).sum() / wb.sum(), dtype)
    assert_close(jaxloss.mse(p, t, weights=w, where=m, reduction="sum"), (wb * l).sum(), dtype)


def test_traced_hyperparameters():
    """delta/beta/tau may be JAX arrays: differentiable and vmappable (float64 finite differences)."""
    import jax

    p, t = data(np.float64)
    g = jax.grad(lambda d: jaxloss.huber(p, t, delta=d))(0.8)
    h = 1e-6
    fd = (float(jaxloss.huber(p, t, delta=0.8 + h)) - float(jaxloss.huber(p, t, delta=0.8 - h))) / (2 * h)
    assert_close(g, fd, np.float64, rtol=1e-6)
    taus = np.array([0.1, 0.5, 0.9])
    batched = jax.vmap(lambda q: jaxloss.quantile(p, t, tau=q))(taus)
    assert_close(batched, [float(jaxloss.quantile(p, t, tau=q)) for q in taus], np.float64)


def test_bad_hyperparameters_raise():
    p, t = data(np.float32)
    with pytest.raises(ValueError, match="delta must be > 0"):
        jaxloss.huber(p, t, delta=0.0)
    with pytest.raises(ValueError, match="tau must be <= 1"):
        jaxloss.quantile(p, t, tau=1.5)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        jaxloss.smooth_l1(p, t, beta=-1.0)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"predictions and targets must have the same shape; got predictions.shape=\(3,\) and targets.shape=\(4,\)"):
        jaxloss.mse(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_weights_shape_error():
    with pytest.raises(ValueError, match=r"weights with shape \(4,\) does not broadcast to the unreduced loss, of shape \(2, 3\)"):
        jaxloss.mse(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), weights=np.ones(4, np.float32))


def test_float16_returns_float16():
    import jax.numpy as jnp

    p, t = data(np.float32)
    out = jaxloss.mse(jnp.asarray(p, jnp.float16), jnp.asarray(t, jnp.float16))
    assert out.dtype == jnp.float16
    ref = np.mean((p.astype(np.float16).astype(np.float64) - t.astype(np.float16)) ** 2)
    assert_close(out, ref, np.float32, rtol=2e-3)


# ---------------------------------------------------------------------------------------------------------
# issue 14: smoothed_quantile and concomitant_huber (the losses of quantile_regression / huber_regression)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_concomitant_huber_against_sklearn_huber_regressor_objective(dtype):
    """scikit-learn's HuberRegressor objective (``_huber_loss_and_gradient``, alpha=0) with X = I, so that
    its coefficients are the predictions: the weighted sum over samples, and its gradients with respect to
    the predictions and the scale sigma."""
    from sklearn.linear_model._huber import _huber_loss_and_gradient

    rng = np.random.default_rng(11)
    n, eps, sigma = 9, 1.2, 0.7
    p = (rng.normal(size=n) * 1.5).astype(dtype)
    t = rng.normal(size=n).astype(dtype)
    sw = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    w = np.concatenate([p, [sigma]]).astype(np.float64)
    want, grad = _huber_loss_and_gradient(w, np.eye(n), t.astype(np.float64), eps, 0.0, sw.astype(np.float64))
    assert 2 <= np.sum(np.abs(t - p) > eps * sigma) <= n - 2  # both branches are exercised
    f = lambda a, s: jaxloss.concomitant_huber(a, t, s, delta=eps, weights=sw, reduction="sum")
    check_reference(f, want, [grad[:n], grad[-1]], (p, np.asarray(sigma, dtype)), dtype, argnums=(0, 1))
    # weighted mean: the objective divided by sum(w)
    assert_close(jaxloss.concomitant_huber(p, t, sigma, delta=eps, weights=sw), want / sw.sum(), dtype)


def _np_smoothed_quantile(p, t, tau, mu):
    """float64 NumPy: the Moreau envelope min_z pinball(z) + (r - z)^2 / (2 mu) in its three pieces."""
    r = np.asarray(t, np.float64) - np.asarray(p, np.float64)
    return np.where(r > tau * mu, tau * r - mu * tau**2 / 2,
                    np.where(r < (tau - 1) * mu, (tau - 1) * r - mu * (1 - tau) ** 2 / 2, r * r / (2 * mu)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_smoothed_quantile_against_numpy_envelope(dtype):
    """float64 NumPy piecewise formula (checked here against a brute-force minimisation over z, the
    definition of the Moreau envelope), values and gradients; smoothing=0 is the pinball loss
    (scikit-learn's mean_pinball_loss); tau=1/2 is huber(delta=mu/2)/mu (PyTorch's huber_loss)."""
    from sklearn.metrics import mean_pinball_loss

    p, t = data(dtype, seed=12)
    tau, mu = 0.7, 0.9
    want = _np_smoothed_quantile(p, t, tau, mu)
    z = np.linspace(-8, 8, 160001)
    r = (t - p).astype(np.float64).ravel()
    brute = np.min(np.maximum(tau * z, (tau - 1) * z)[None] + (r[:, None] - z[None]) ** 2 / (2 * mu), axis=1)
    np.testing.assert_allclose(want.ravel(), brute, atol=1e-8)
    f = lambda a, b: np.mean(_np_smoothed_quantile(a, b, tau, mu))
    from harness import numeric_grads

    check_reference(lambda a, b: jaxloss.smoothed_quantile(a, b, tau=tau, smoothing=mu), f(p, t),
                    numeric_grads(f, (p, t), (0, 1)), (p, t), dtype, argnums=(0, 1),
                    **({} if dtype == np.float32 else dict(rtol=1e-7, atol=1e-9)))
    assert_close(jaxloss.smoothed_quantile(p, t, tau=tau, smoothing=mu, reduction="none"), want, dtype)
    assert_close(jaxloss.smoothed_quantile(p, t, tau=tau, smoothing=0.0),
                 mean_pinball_loss(t.ravel(), p.ravel(), alpha=tau), dtype)
    half = F.huber_loss(torch.tensor(p), torch.tensor(t), delta=mu / 2, reduction="mean").numpy() / mu
    assert_close(jaxloss.smoothed_quantile(p, t, tau=0.5, smoothing=mu), half, dtype)


def test_objective_losses_follow_the_contract_edge_cases():
    """Defect (issue 14): the private losses of quantile_regression(smoothing>0) and
    huber_regression(fit_scale=True) rejected where= and gave NaN for all-zero weights, where
    jaxloss.quantile gives 0.0. Both are now public losses: all-zero weights give 0.0 with zero
    gradients, where= equals slicing; the ready objectives accept all-zero weights too."""
    import jax

    p, t = data(np.float64, seed=13)
    zero = np.zeros_like(p)
    assert float(jaxloss.quantile(p, t, tau=0.3, weights=zero)) == 0.0
    for fn, args, kw in ((jaxloss.smoothed_quantile, (p, t), dict(tau=0.3, smoothing=0.5)),
                         (jaxloss.concomitant_huber, (p, t, 0.8), dict(delta=1.1))):
        v, g = jax.value_and_grad(lambda a: fn(a, *args[1:], weights=zero, **kw))(p)
        assert float(v) == 0.0 and np.all(np.asarray(g) == 0)
        keep = np.array([True, False, True, True, False, True])
        assert_close(fn(*args, where=keep[:, None], **kw), fn(*(a[keep] if np.ndim(a) else a for a in args), **kw), np.float64)
    x = np.random.default_rng(14).normal(size=(6, 2))
    y = x @ np.array([1.0, -2.0]) + 0.3
    for obj in (jaxloss.quantile_regression(0.3, smoothing=0.5), jaxloss.huber_regression(1.1, fit_scale=True)):
        params = obj.init_params(x)
        assert float(obj(params, (x, y, np.zeros(6)))) == 0.0
