"""Reference tests for the seed regression losses: PyTorch, optax, scikit-learn, float64 NumPy.

Reference tests for the issue-3 regression losses: mape, msle, poisson_nll, gaussian_nll, tweedie and
Barron's general robust loss (with cauchy, geman_mcclure, welsch).

References: scikit-learn (mean_absolute_percentage_error, mean_squared_log_error, mean_tweedie_deviance),
Keras 3 on the JAX backend (mean_absolute_percentage_error, mean_squared_logarithmic_error), PyTorch
(poisson_nll_loss, gaussian_nll_loss), float64 NumPy / mpmath transcriptions of Barron (CVPR 2019) Eq. 1,
and float64 central finite differences where a reference has no gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from harness import (
    DTYPES,
    all_finite,
    assert_close,
    check_reference,
    jax_value_and_grads,
    numeric_grads,
    torch_value_and_grads,
)


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
    check_reference(
        jaxloss.mean_bias_error,
        np.mean(p.astype(np.float64) - t),
        [np.full(p.shape, 1 / n), np.full(p.shape, -1 / n)],
        (p, t),
        dtype,
        (0, 1),
    )
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
    with pytest.raises(ValueError, match=r"tau must be in \[0, 1\]"):
        jaxloss.quantile(p, t, tau=1.5)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        jaxloss.smooth_l1(p, t, beta=-1.0)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"predictions and targets must have the same shape; got predictions.shape=\(3,\) and targets.shape=\(4,\)",
    ):
        jaxloss.mse(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_weights_shape_error():
    with pytest.raises(
        ValueError, match=r"weights with shape \(4,\) does not broadcast to the unreduced loss, of shape \(2, 3\)"
    ):
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
    return np.where(
        r > tau * mu,
        tau * r - mu * tau**2 / 2,
        np.where(r < (tau - 1) * mu, (tau - 1) * r - mu * (1 - tau) ** 2 / 2, r * r / (2 * mu)),
    )


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

    check_reference(
        lambda a, b: jaxloss.smoothed_quantile(a, b, tau=tau, smoothing=mu),
        f(p, t),
        numeric_grads(f, (p, t), (0, 1)),
        (p, t),
        dtype,
        argnums=(0, 1),
        **({} if dtype == np.float32 else dict(rtol=1e-7, atol=1e-9)),
    )
    assert_close(jaxloss.smoothed_quantile(p, t, tau=tau, smoothing=mu, reduction="none"), want, dtype)
    assert_close(
        jaxloss.smoothed_quantile(p, t, tau=tau, smoothing=0.0),
        mean_pinball_loss(t.ravel(), p.ravel(), alpha=tau),
        dtype,
    )
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
    for fn, args, kw in (
        (jaxloss.smoothed_quantile, (p, t), dict(tau=0.3, smoothing=0.5)),
        (jaxloss.concomitant_huber, (p, t, 0.8), dict(delta=1.1)),
    ):
        v, g = jax.value_and_grad(lambda a: fn(a, *args[1:], weights=zero, **kw))(p)
        assert float(v) == 0.0 and np.all(np.asarray(g) == 0)
        keep = np.array([True, False, True, True, False, True])
        assert_close(
            fn(*args, where=keep[:, None], **kw), fn(*(a[keep] if np.ndim(a) else a for a in args), **kw), np.float64
        )
    x = np.random.default_rng(14).normal(size=(6, 2))
    y = x @ np.array([1.0, -2.0]) + 0.3
    for obj in (jaxloss.quantile_regression(0.3, smoothing=0.5), jaxloss.huber_regression(1.1, fit_scale=True)):
        params = obj.init_params(x)
        assert float(obj(params, (x, y, np.zeros(6)))) == 0.0


# -----------------------------------------------------------------------------------------------------
# Folded in from test_regression_more.py
# -----------------------------------------------------------------------------------------------------


# float64 finite differences are accurate to ~1e-9 relative, so a float64 comparison with them is looser.
FD_TOL = {np.float32: dict(), np.float64: dict(rtol=1e-6, atol=1e-9)}
F64_EPS = np.finfo(np.float64).eps
KERAS_TOL = dict(rtol=2e-5, atol=2e-6)


def rng_for(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------------------
# mape
# ---------------------------------------------------------------------------------------------------------


def mape_data(dtype, seed=0):
    rng = rng_for(seed)
    t = rng.uniform(0.3, 3.0, size=(6, 3)) * rng.choice([-1.0, 1.0], size=(6, 3))
    return rng.normal(size=(6, 3)).astype(dtype) * 2, t.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mape_against_sklearn(dtype):
    """scikit-learn mean_absolute_percentage_error (eps = float64 machine epsilon): value, and weighted
    value with per-row sample weights; gradients against float64 finite differences of the same formula."""
    from sklearn.metrics import mean_absolute_percentage_error as sk_mape

    p, t = mape_data(dtype)
    w = rng_for(3).uniform(0.5, 2.0, size=6)
    assert_close(jaxloss.mape(p, t), sk_mape(t.astype(np.float64), p.astype(np.float64)), dtype)
    assert_close(
        jaxloss.mape(p, t, weights=w[:, None].astype(dtype)),
        sk_mape(t.astype(np.float64), p.astype(np.float64), sample_weight=w),
        dtype,
    )
    f64 = lambda a, b: sk_mape(b, a)
    ref_g = numeric_grads(f64, (p, t), (0, 1))
    _, grads = jax_value_and_grads(jaxloss.mape, (p, t), (0, 1))
    for g, r in zip(grads, ref_g):
        assert_close(g, r, dtype, **FD_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mape_against_keras(dtype):
    """Keras 3 mean_absolute_percentage_error (percent, epsilon 1e-7) / 100 == mape(eps=1e-7): value and
    gradients (jax.grad through Keras's JAX-backend ops), including zero targets."""
    import keras

    p, t = mape_data(dtype)
    t[0, 0] = 0.0
    ref = lambda a, b: jnp.mean(keras.losses.mean_absolute_percentage_error(b, a)) / 100.0
    ref_v, ref_g = jax_value_and_grads(ref, (p, t), (0, 1))
    # Keras's ops.mean accumulates in float32 even for float64 inputs: float32 tolerance for both dtypes.
    check_reference(jaxloss.mape, ref_v, ref_g, (p, t), dtype, (0, 1), eps=1e-7, **KERAS_TOL)


def test_mape_zero_targets_finite():
    """float64 NumPy: a zero target gives |p| / eps (huge, finite), with a finite gradient."""
    p = np.array([2.0, -1e4, 0.0], np.float32)
    t = np.zeros(3, np.float32)
    v, grads = jax_value_and_grads(jaxloss.mape, (p, t), (0, 1), reduction="sum")
    assert all_finite(v) and all_finite(grads)
    assert_close(v, np.sum(np.abs(p.astype(np.float64))) / F64_EPS, np.float32)


# ---------------------------------------------------------------------------------------------------------
# msle
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_msle_against_sklearn(dtype):
    """scikit-learn mean_squared_log_error on inputs in (-1, 4), negative ones included: value; gradients
    against float64 finite differences of scikit-learn itself."""
    from sklearn.metrics import mean_squared_log_error as sk_msle

    rng = rng_for(1)
    p = rng.uniform(-0.9, 4.0, size=(6, 3)).astype(dtype)
    t = rng.uniform(-0.9, 4.0, size=(6, 3)).astype(dtype)
    f64 = lambda a, b: sk_msle(b.ravel(), a.ravel())
    assert_close(jaxloss.msle(p, t), f64(p.astype(np.float64), t.astype(np.float64)), dtype)
    ref_g = numeric_grads(f64, (p, t), (0, 1))
    _, grads = jax_value_and_grads(jaxloss.msle, (p, t), (0, 1))
    for g, r in zip(grads, ref_g):
        assert_close(g, r, dtype, **FD_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_msle_against_keras(dtype):
    """Keras 3 mean_squared_logarithmic_error on inputs >= 0.1 (above its 1e-7 clip): value and gradients."""
    import keras

    rng = rng_for(2)
    p = rng.uniform(0.1, 4.0, size=(6, 3)).astype(dtype)
    t = rng.uniform(0.1, 4.0, size=(6, 3)).astype(dtype)
    ref = lambda a, b: jnp.mean(keras.losses.mean_squared_logarithmic_error(b, a))
    ref_v, ref_g = jax_value_and_grads(ref, (p, t), (0, 1))
    # Keras evaluates log(y + 1) (jaxloss log1p(y)) and its ops.mean accumulates in float32 even for
    # float64 inputs: float32 tolerance for both dtypes.
    check_reference(jaxloss.msle, ref_v, ref_g, (p, t), dtype, (0, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_msle_below_domain_is_finite_and_pushes_back(dtype):
    """Inputs <= -1 (scikit-learn raises): finite, huge, gradient pointing back into the domain; the
    value follows the documented tangent continuation of log1p at -1 + eps (float64 NumPy); checked mode
    reports them."""
    eps = np.finfo(dtype).eps
    p = np.array([-1.0, -3.0, 0.5], dtype)
    t = np.array([1.0, 1.0, 0.5], dtype)
    v, (g,) = jax_value_and_grads(jaxloss.msle, (p, t), (0,), reduction="sum")
    assert all_finite(v) and all_finite(g)
    lo = -1.0 + eps
    ext = lambda x: np.log(eps) + (x - lo) / eps
    expected = (ext(-1.0) - np.log1p(1.0)) ** 2 + (ext(-3.0) - np.log1p(1.0)) ** 2
    assert_close(v, expected, dtype, rtol=1e-5)
    assert g[0] < 0 and g[1] < 0 and g[2] == 0  # gradient descent increases the offending predictions
    err, _ = jaxloss.checked(jaxloss.msle)(p, t)
    assert err.get() is not None and "> -1" in err.get()
    err, _ = jaxloss.checked(jaxloss.msle)(p, t, where=np.array([False, False, True]))
    assert err.get() is None


# ---------------------------------------------------------------------------------------------------------
# poisson_nll
# ---------------------------------------------------------------------------------------------------------


def poisson_data(dtype, log_input):
    rng = rng_for(4)
    x = rng.normal(size=(6, 3)) if log_input else rng.uniform(0.05, 4.0, size=(6, 3))
    t = rng.poisson(2.0, size=(6, 3)).astype(np.float64)
    t[0, :] = [0.0, 1.0, 7.0]  # both sides of the Stirling threshold t > 1
    t[1, 0] = 1.5
    return x.astype(dtype), t.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_against_pytorch(full, log_input, dtype):
    """PyTorch poisson_nll_loss: value and gradients w.r.t. input and target, mean and sum; none.

    With full=True PyTorch's target-gradient is NaN at target = 0 (0 * log 0 inside its masked Stirling
    term); there jaxloss gives the gradient of the non-Stirling part, -x (or -log(x + eps)), checked
    against that float64 formula instead.
    """
    x, t = poisson_data(dtype, log_input)
    kw = dict(log_input=log_input, full=full, eps=1e-8)
    for reduction in ("mean", "sum"):
        tfn = lambda a, b: F.poisson_nll_loss(a, b, reduction=reduction, **kw)
        ref_v, ref_g = torch_value_and_grads(tfn, (x, t), (0, 1))
        zero = t == 0
        if full:
            assert np.all(np.isnan(ref_g[1][zero]))  # PyTorch's NaN, replaced by the analytic value
            x64 = x.astype(np.float64)
            g0 = -(x64 if log_input else np.log(x64 + 1e-8))
            ref_g[1] = np.where(zero, g0 / (x.size if reduction == "mean" else 1), ref_g[1])
        check_reference(jaxloss.poisson_nll, ref_v, ref_g, (x, t), dtype, (0, 1), reduction=reduction, **kw)
    ref_none = F.poisson_nll_loss(torch.tensor(x), torch.tensor(t), reduction="none", **kw).numpy()
    assert_close(jaxloss.poisson_nll(x, t, reduction="none", **kw), ref_none, dtype)


def test_poisson_nll_negative_rate_is_nan_and_checked():
    """A negative rate with log_input=False is invalid: NaN (as PyTorch gives), reported by checked mode."""
    x = np.array([-0.5, 1.0], np.float32)
    t = np.array([1.0, 1.0], np.float32)
    assert np.isnan(float(jaxloss.poisson_nll(x, t, log_input=False)))
    err, _ = jaxloss.checked(lambda a, b: jaxloss.poisson_nll(a, b, log_input=False))(x, t)
    assert err.get() is not None and "predictions must be >= 0" in err.get()


# ---------------------------------------------------------------------------------------------------------
# gaussian_nll
# ---------------------------------------------------------------------------------------------------------


def gaussian_data(dtype):
    rng = rng_for(5)
    p, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    var = rng.uniform(0.1, 2.0, size=(6, 3))
    var[0, 0], var[1, 2], var[2, 1] = 0.0, 1e-8, 1e-6  # below and at the clamp
    return p.astype(dtype), t.astype(dtype), var.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_against_pytorch(full, dtype):
    """PyTorch gaussian_nll_loss (eps=1e-6): value and gradients w.r.t. input, target and var, including
    variances below eps (PyTorch's in-place no_grad clamp passes their gradient straight through)."""
    p, t, var = gaussian_data(dtype)
    for reduction in ("mean", "sum"):
        tfn = lambda a, b, v: F.gaussian_nll_loss(a, b, v, full=full, eps=1e-6, reduction=reduction)
        ref_v, ref_g = torch_value_and_grads(tfn, (p, t, var), (0, 1, 2))
        # the clamped entries' var-gradients are ~1e12: compare relatively
        check_reference(
            jaxloss.gaussian_nll, ref_v, ref_g, (p, t, var), dtype, (0, 1, 2), full=full, reduction=reduction
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_nll_homoscedastic_against_pytorch(dtype):
    """PyTorch gaussian_nll_loss with one variance per example (var of shape input.shape[:-1]), with a
    (N, 1) var, and with a Python float var."""
    p, t, var = gaussian_data(dtype)
    v1 = var[:, 1].copy()  # (6,)
    ref_v, ref_g = torch_value_and_grads(lambda a, b, v: F.gaussian_nll_loss(a, b, v), (p, t, v1), (0, 2))
    check_reference(jaxloss.gaussian_nll, ref_v, ref_g, (p, t, v1), dtype, (0, 2))
    v2 = var[:, 1:2].copy()  # (6, 1)
    ref_v, ref_g = torch_value_and_grads(lambda a, b, v: F.gaussian_nll_loss(a, b, v), (p, t, v2), (0, 2))
    check_reference(jaxloss.gaussian_nll, ref_v, ref_g, (p, t, v2), dtype, (0, 2))
    ref = F.gaussian_nll_loss(torch.tensor(p), torch.tensor(t), 0.7, reduction="none").numpy()
    assert_close(jaxloss.gaussian_nll(p, t, 0.7, reduction="none"), ref, dtype)


def test_gaussian_nll_bad_var():
    """Negative var: NaN (PyTorch raises; XLA cannot), reported by checked mode; a var that does not
    broadcast raises ValueError naming its shape."""
    p = np.zeros((2, 3), np.float32)
    var = np.array([[1.0, -1.0, 1.0], [1.0, 1.0, 1.0]], np.float32)
    assert np.isnan(float(jaxloss.gaussian_nll(p, p, var)))
    err, _ = jaxloss.checked(jaxloss.gaussian_nll)(p, p, var)
    assert err.get() is not None and "var must be >= 0" in err.get()
    err, v = jaxloss.checked(jaxloss.gaussian_nll)(p, p, var, where=np.array([[True, False, True], [True, True, True]]))
    assert err.get() is None and np.isfinite(float(v))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        jaxloss.gaussian_nll(p, p, np.ones(4, np.float32))


# ---------------------------------------------------------------------------------------------------------
# tweedie
# ---------------------------------------------------------------------------------------------------------


POWERS = [-1.0, 0.0, 1.0, 1.5, 2.0, 3.0]


def tweedie_data(dtype, power):
    rng = rng_for(6)
    mu = rng.uniform(0.2, 3.0, size=(8,))
    y = rng.uniform(0.1, 3.0, size=(8,))
    if power < 0 or power == 0:
        y = rng.normal(size=(8,)) * 2  # any real target
    elif power < 2:
        y[0] = 0.0  # zero targets are in the domain for 1 <= power < 2
    return mu.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("power", POWERS)
def test_tweedie_against_sklearn(power, dtype):
    """scikit-learn mean_tweedie_deviance(power=p): value (and weighted value with sample_weight);
    gradients against float64 central finite differences of scikit-learn itself."""
    from sklearn.metrics import mean_tweedie_deviance

    mu, y = tweedie_data(dtype, power)
    f64 = lambda m, t: mean_tweedie_deviance(t, m, power=power)
    assert_close(
        jaxloss.tweedie(mu, y, power=power),
        f64(mu.astype(np.float64), y.astype(np.float64)),
        dtype,
        rtol=1e-5 if dtype == np.float32 else None,
    )
    w = rng_for(7).uniform(0.5, 2.0, size=8)
    ref_w = mean_tweedie_deviance(y.astype(np.float64), mu.astype(np.float64), power=power, sample_weight=w)
    assert_close(
        jaxloss.tweedie(mu, y, power=power, weights=w.astype(dtype)),
        ref_w,
        dtype,
        rtol=1e-5 if dtype == np.float32 else None,
    )
    argnums = (0, 1) if (power <= 0 or power >= 2) else (0,)  # d/dy at y = 0 is infinite for 1 <= p < 2
    ref_g = numeric_grads(f64, (mu, y), argnums)
    _, grads = jax_value_and_grads(lambda m, t: jaxloss.tweedie(m, t, power=power), (mu, y), argnums)
    for g, r in zip(grads, ref_g):
        assert_close(g, r, dtype, **(FD_TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)))


def test_tweedie_target_gradient_compound():
    """power=1.5, targets > 0: the target gradient against float64 finite differences of scikit-learn."""
    from sklearn.metrics import mean_tweedie_deviance

    mu, y = tweedie_data(np.float64, 3.0)  # strictly positive targets
    ref_g = numeric_grads(lambda m, t: mean_tweedie_deviance(t, m, power=1.5), (mu, y), (1,))
    _, grads = jax_value_and_grads(lambda m, t: jaxloss.tweedie(m, t, power=1.5), (mu, y), (1,))
    assert_close(grads[0], ref_g[0], np.float64, **FD_TOL[np.float64])


def test_tweedie_errors_and_domain():
    """power in (0, 1) raises ValueError; a traced power raises TypeError; values outside scikit-learn's
    domain give NaN and are reported by checked mode."""
    mu = np.array([1.0, 2.0], np.float32)
    with pytest.raises(ValueError, match="power must be <= 0 or >= 1"):
        jaxloss.tweedie(mu, mu, power=0.5)
    with pytest.raises(TypeError, match="static"):
        jax.jit(lambda m, p: jaxloss.tweedie(m, m, power=p))(mu, 1.5)
    assert np.isnan(float(jaxloss.tweedie(np.array([-1.0, 1.0], np.float32), mu, power=1.5)))
    assert np.isnan(float(jaxloss.tweedie(mu, np.array([0.0, 1.0], np.float32), power=2)))
    assert np.isfinite(float(jaxloss.tweedie(mu, np.array([0.0, 1.0], np.float32), power=1)))
    err, _ = jaxloss.checked(lambda m, t: jaxloss.tweedie(m, t, power=3))(mu, np.array([0.0, 1.0], np.float32))
    assert err.get() is not None and "domain" in err.get()


# ---------------------------------------------------------------------------------------------------------
# Barron's general robust loss
# ---------------------------------------------------------------------------------------------------------


def barron_eq1(x, alpha, c):
    """Barron, "A General and Adaptive Robust Loss Function", CVPR 2019, Eq. 1 (float64 NumPy), with the
    paper's limits at alpha = 2 (0.5 (x/c)^2), 0 (log(0.5 (x/c)^2 + 1)), -inf (1 - exp(-0.5 (x/c)^2)) and
    +inf (exp(0.5 (x/c)^2) - 1)."""
    z = (np.asarray(x, np.float64) / c) ** 2
    if alpha == 2:
        return 0.5 * z
    if alpha == 0:
        return np.log(0.5 * z + 1)
    if alpha == -np.inf:
        return 1 - np.exp(-0.5 * z)
    if alpha == np.inf:
        return np.exp(0.5 * z) - 1
    b = abs(alpha - 2)
    return b / alpha * ((z / b + 1) ** (alpha / 2) - 1)


def robust_data(dtype):
    rng = rng_for(8)
    return (rng.normal(size=(4, 3)) * 2).astype(dtype), rng.normal(size=(4, 3)).astype(dtype)


ALPHAS = [-np.inf, -3.0, -2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, np.inf]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_general_robust_against_barron_eq1(alpha, dtype):
    """float64 NumPy transcription of Barron (CVPR 2019) Eq. 1 and its limits: value; gradients w.r.t.
    predictions, targets and scale by float64 finite differences of Eq. 1; alpha too (except at the
    closed-form special cases 2 and +-inf, whose alpha-gradient is documented as 0)."""
    p, t = robust_data(dtype)
    c = 1.3
    if alpha == np.inf:
        p, t = p / 3, t / 3  # keep exp(0.5 z) moderate
    f64 = lambda a, b, s: np.mean(barron_eq1(a - b, alpha, float(s)))
    value = jaxloss.general_robust(p, t, alpha=alpha, scale=c)
    assert_close(value, f64(p.astype(np.float64), t.astype(np.float64), c), dtype)
    scale = np.asarray(c, dtype)
    ref_g = numeric_grads(f64, (p, t, scale), (0, 1, 2))
    fn = lambda a, b, s: jaxloss.general_robust(a, b, alpha=alpha, scale=s)
    _, grads = jax_value_and_grads(fn, (p, t, scale), (0, 1, 2))
    for g, r in zip(grads, ref_g):
        assert_close(g, r, dtype, **FD_TOL[dtype])
    if np.isfinite(alpha) and alpha not in (0.0, 2.0):
        f_alpha = lambda a: np.mean(barron_eq1(p.astype(np.float64) - t, float(a), c))
        (ref_ga,) = numeric_grads(f_alpha, (np.asarray(alpha, np.float64),), (0,))
        _, (ga,) = jax_value_and_grads(
            lambda a: jaxloss.general_robust(p, t, alpha=a, scale=c), (np.asarray(alpha, dtype),), (0,)
        )
        assert_close(ga, ref_ga, dtype, **(FD_TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)))


def _mp_rho(x, alpha, c):
    import mpmath

    z = (mpmath.mpf(x) / c) ** 2
    if alpha == 0:
        return mpmath.log(z / 2 + 1)
    if alpha == 2:
        return z / 2
    b = abs(alpha - 2)
    return b / alpha * ((z / b + 1) ** (alpha / 2) - 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.0, 1e-7, -1e-7, 1e-3, 2.0 - 1e-3, 2.0 + 1e-3, -1e6])
def test_general_robust_stable_near_special_alphas(alpha, dtype):
    """mpmath (60 digits) evaluation of Barron Eq. 1 at alphas near the removable singularities 0 and 2
    and at a large negative alpha: value and alpha-gradient (60-digit central difference), where the
    naive float formula loses all accuracy (0/0 at alpha = 0)."""
    import mpmath

    mpmath.mp.dps = 60
    p, t = robust_data(dtype)
    x = (p.astype(np.float64) - t.astype(np.float64)).ravel()
    a = mpmath.mpf(float(np.asarray(alpha, dtype)))  # the alpha jaxloss actually sees
    c = mpmath.mpf("1.3")
    mean = lambda al: sum(_mp_rho(xi, al, c) for xi in x) / len(x)
    h = mpmath.mpf("1e-25")
    ref_v = float(mean(a))
    ref_ga = float((mean(a + h) - mean(a - h)) / (2 * h))
    v, (ga,) = jax_value_and_grads(
        lambda al: jaxloss.general_robust(p, t, alpha=al, scale=1.3), (np.asarray(alpha, dtype),), (0,)
    )
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert_close(v, ref_v, dtype, **tol)
    if abs(alpha - 2.0) > 1e-4:  # the alpha-derivative is unbounded at 2 (grows like log 1/|alpha - 2|)
        assert_close(ga, ref_ga, dtype, **(tol if dtype == np.float64 else dict(rtol=2e-4, atol=1e-5)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_general_robust_alpha_array_and_within_eps_of_two(dtype):
    """An array of alphas (one per feature, as the adaptive loss learns) equals per-alpha calls; alpha
    within machine epsilon of 2 equals the L2 limit 0.5 (x/c)^2 (float64 NumPy); alpha = 1 is Charbonnier
    sqrt((x/c)^2 + 1) - 1 (Barron, CVPR 2019)."""
    p, t = robust_data(dtype)
    alphas = np.array([-2.0, 0.0, 1.0], dtype)
    per_elem = jaxloss.general_robust(p, t, alpha=alphas, reduction="none")
    for j, a in enumerate(alphas):
        assert_close(per_elem[:, j], jaxloss.general_robust(p[:, j], t[:, j], alpha=a, reduction="none"), dtype)
    x = p.astype(np.float64) - t
    near2 = np.nextafter(np.asarray(2.0, dtype), np.asarray(0.0, dtype))
    assert_close(
        jaxloss.general_robust(p, t, alpha=near2, reduction="none"),
        0.5 * x**2,
        dtype,
        rtol=1e-5 if dtype == np.float32 else 1e-12,
    )
    assert_close(jaxloss.general_robust(p, t, alpha=1.0, reduction="none"), np.sqrt(x**2 + 1) - 1, dtype)


NAMED = [("cauchy", 0.0), ("geman_mcclure", -2.0), ("welsch", -np.inf)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,alpha", NAMED)
def test_named_special_cases(name, alpha, dtype):
    """cauchy, geman_mcclure, welsch equal general_robust at alpha = 0, -2, -inf (values and gradients),
    and Barron (CVPR 2019) Eq. 1 / its limits in float64 NumPy."""
    p, t = robust_data(dtype)
    fn = getattr(jaxloss, name)
    v_gen, g_gen = jax_value_and_grads(
        lambda a, b: jaxloss.general_robust(a, b, alpha=alpha, scale=0.7), (p, t), (0, 1)
    )
    check_reference(fn, v_gen, g_gen, (p, t), dtype, (0, 1), scale=0.7)
    f64 = lambda a, b: np.sum(barron_eq1(a - b, alpha, 0.7))
    ref_g = numeric_grads(f64, (p, t), (0, 1))
    v, grads = jax_value_and_grads(fn, (p, t), (0, 1), scale=0.7, reduction="sum")
    assert_close(v, f64(p.astype(np.float64), t.astype(np.float64)), dtype)
    for g, r in zip(grads, ref_g):
        assert_close(g, r, dtype, **FD_TOL[dtype])


def test_general_robust_learn_alpha_under_jit_and_vmap():
    """alpha is traceable: grad under jit and vmap over alphas equal float64 finite differences of
    Barron Eq. 1."""
    p, t = robust_data(np.float64)
    alphas = np.array([-1.0, 0.5, 1.0, 3.0])
    grad_fn = jax.jit(jax.vmap(jax.grad(lambda a: jaxloss.general_robust(p, t, alpha=a))))
    got = grad_fn(alphas)
    for a, g in zip(alphas, np.asarray(got)):
        (ref,) = numeric_grads(lambda al: np.mean(barron_eq1(p - t, float(al), 1.0)), (np.asarray(a),), (0,))
        assert_close(g, ref, np.float64, **FD_TOL[np.float64])


def test_general_robust_bad_scale():
    with pytest.raises(ValueError, match="scale must be > 0"):
        jaxloss.general_robust(np.zeros(2, np.float32), np.zeros(2, np.float32), scale=0.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        jaxloss.welsch(np.zeros(2, np.float32), np.zeros(2, np.float32), scale=-1.0)
