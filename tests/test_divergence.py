"""Reference tests for kl_divergence and js_divergence: PyTorch, optax, SciPy, float64 finite differences.

Reference tests for the issue-3 divergences: generalized_kl (SciPy's kl_div, float64 finite
differences) and entropy (scipy.stats.entropy, PyTorch Categorical.entropy / torch.special.entr).
"""

import jax
import numpy as np
import optax
import pytest
import scipy.special
import scipy.stats
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

B, C = 6, 4


def dists(dtype, seed=0, zeros=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, C))
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    t = rng.dirichlet(np.ones(C), size=B)
    if zeros:
        t[0, 1] = t[3, 2] = 0.0
        t /= t.sum(-1, keepdims=True)
    return lp.astype(dtype), t.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_against_pytorch_batchmean(dtype):
    """torch kl_div(reduction="batchmean") is jaxloss's "mean" (the true per-example KL); zero targets included."""
    lp, t = dists(dtype)
    ref_v, ref_g = torch_value_and_grads(lambda a, b: F.kl_div(a, b, reduction="batchmean"), (lp, t), (0,))
    check_reference(jaxloss.kl_divergence, ref_v, ref_g, (lp, t), dtype, (0,))
    ref_sum = F.kl_div(torch.tensor(lp), torch.tensor(t), reduction="sum").item()
    assert_close(jaxloss.kl_divergence(lp, t, reduction="sum"), ref_sum, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_log_targets_against_pytorch(dtype):
    """torch kl_div(log_target=True), gradients w.r.t. both arguments."""
    lp, t = dists(dtype, zeros=False)
    lt = np.log(t).astype(dtype)
    ref_v, ref_g = torch_value_and_grads(
        lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=True), (lp, lt), (0, 1)
    )
    check_reference(jaxloss.kl_divergence, ref_v, ref_g, (lp, lt), dtype, (0, 1), log_targets=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_against_optax(dtype):
    """optax.losses.kl_divergence (per example), averaged; gradients w.r.t. both where targets are > 0."""
    lp, t = dists(dtype, zeros=False)
    ref_v, ref_g = jax_value_and_grads(lambda a, b: optax.losses.kl_divergence(a, b).mean(), (lp, t), (0, 1))
    check_reference(jaxloss.kl_divergence, ref_v, ref_g, (lp, t), dtype, (0, 1))


def test_peer_trap_kl_zero_targets():
    """Zero targets: optax's gradient w.r.t. the targets is -inf, and with log-predictions of -inf at a
    zero target (a masked softmax) optax's value is NaN; jaxloss is finite and correct (0 log 0 = 0)."""
    lp, t = dists(np.float32)
    _, (g_optax,) = jax_value_and_grads(lambda b: optax.losses.kl_divergence(lp, b).mean(), (t,))
    assert not all_finite(g_optax)
    v, grads = jax_value_and_grads(jaxloss.kl_divergence, (lp, t), (0, 1))
    assert all_finite(grads)
    t64 = t.astype(np.float64)
    ref = np.sum(np.where(t64 > 0, t64 * (np.log(np.where(t64 > 0, t64, 1)) - lp), 0.0)) / B  # float64 formula
    assert_close(v, ref, np.float32)
    lp_inf = lp.copy()
    lp_inf[0, 1] = -np.inf  # model puts zero mass where the target has zero mass
    assert np.isnan(float(optax.losses.kl_divergence(lp_inf, t).mean()))
    v_inf, grads_inf = jax_value_and_grads(jaxloss.kl_divergence, (lp_inf, t), (0, 1))
    assert np.isfinite(v_inf) and all_finite(grads_inf)
    assert_close(v_inf, v, np.float32)  # the -inf sits where the target is 0: the KL does not change


@pytest.mark.parametrize("dtype", DTYPES)
def test_js_against_scipy_and_finite_differences(dtype):
    """scipy.spatial.distance.jensenshannon (base e) squared; gradients by float64 central differences."""
    from scipy.spatial.distance import jensenshannon

    lp, t = dists(dtype)
    ref_v = np.mean([jensenshannon(np.exp(lp[i].astype(np.float64)), t[i].astype(np.float64)) ** 2 for i in range(B)])

    def js64(a, b):
        p = np.exp(a)
        m = 0.5 * (p + b)
        kl = lambda u: np.sum(np.where(u > 0, u * np.log(np.where(u > 0, u, 1) / m), 0.0))
        return 0.5 * (kl(p) + kl(b)) / B

    ref_g = numeric_grads(js64, (lp, t), (0, 1))
    # At t = 0 the derivative is -inf (from t log t). jaxloss drops the t-terms' derivative there and keeps
    # the finite part through m = (p + t)/2: d/dt [0.5 p log(p/m)] = -p / (4m) = -1/2 at m = p/2, over B.
    ref_g[1][t == 0] = -0.5 / B
    check_reference(
        jaxloss.js_divergence,
        ref_v,
        ref_g,
        (lp, t),
        dtype,
        (0, 1),
        rtol=2e-5 if dtype == np.float32 else 1e-6,
        atol=1e-6 if dtype == np.float32 else 1e-8,
    )


def test_js_symmetric_and_bounded():
    lp, t = dists(np.float64)
    lt = np.log(np.where(t > 0, t, 1e-300))
    lt[t == 0] = -np.inf
    a = jaxloss.js_divergence(lp, t, reduction="none")
    b = jaxloss.js_divergence(lt, np.exp(lp), reduction="none")
    assert_close(a, b, np.float64)
    assert_close(jaxloss.js_divergence(lp, lt, log_targets=True, reduction="none"), a, np.float64)
    disjoint = jaxloss.js_divergence(np.array([[0.0, -np.inf]]), np.array([[0.0, 1.0]]))
    assert_close(disjoint, np.log(2.0), np.float64)


def test_kl_traced_under_vmap_and_jit():
    lp, t = dists(np.float32)
    per = jax.jit(jax.vmap(jaxloss.kl_divergence))(lp, t)
    assert_close(per, jaxloss.kl_divergence(lp, t, reduction="none"), np.float32)


# -----------------------------------------------------------------------------------------------------
# Folded in from test_divergence_more.py
# -----------------------------------------------------------------------------------------------------


FD_TOL = {np.float32: dict(), np.float64: dict(rtol=1e-6, atol=1e-9)}


def measures(dtype, seed=0, shape=(5, 4)):
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 1.0, size=shape).astype(dtype), rng.gamma(2.0, 1.0, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_kl_against_scipy_kl_div(dtype):
    """scipy.special.kl_div(t, p) = t log(t/p) - t + p, summed over the axis: value (mean, sum, none,
    axis=0); gradients against float64 central finite differences of SciPy's kl_div."""
    p, t = measures(dtype)
    f64 = lambda a, b: np.mean(np.sum(scipy.special.kl_div(b, a), axis=-1))
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    ref_g = numeric_grads(f64, (p, t), (0, 1))
    check_reference(jaxloss.generalized_kl, f64(p64, t64), ref_g, (p, t), dtype, (0, 1), **FD_TOL[dtype])
    per = np.sum(scipy.special.kl_div(t64, p64), axis=-1)
    assert_close(jaxloss.generalized_kl(p, t, reduction="none"), per, dtype)
    assert_close(jaxloss.generalized_kl(p, t, reduction="sum"), per.sum(), dtype)
    assert_close(
        jaxloss.generalized_kl(p, t, axis=0, reduction="none"), np.sum(scipy.special.kl_div(t64, p64), axis=0), dtype
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_kl_zero_targets_and_zero_predictions(dtype):
    """Zero targets contribute p (SciPy's kl_div(0, p) = p) with gradient 1 w.r.t. p and a finite one
    w.r.t. t; a zero prediction under a positive target is +inf, as in SciPy; negative entries are NaN
    and reported by checked mode."""
    p, t = measures(dtype)
    t[0, 1] = t[2, 3] = 0.0
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    v, (gp, gt) = jax_value_and_grads(jaxloss.generalized_kl, (p, t), (0, 1), reduction="sum")
    assert_close(v, np.sum(scipy.special.kl_div(t64, p64)), dtype)
    assert all_finite(gt)
    assert_close(gp, 1.0 - t64 / p64, dtype)  # d/dp of t log(t/p) - t + p
    assert float(jaxloss.generalized_kl(np.array([[0.0, 1.0]], dtype), np.array([[1.0, 1.0]], dtype))) == np.inf
    assert np.isinf(np.sum(scipy.special.kl_div([1.0, 1.0], [0.0, 1.0])))
    assert float(jaxloss.generalized_kl(np.array([[0.0, 1.0]], dtype), np.array([[0.0, 1.0]], dtype))) == 0.0
    bad = np.array([[-1.0, 1.0], [1.0, 1.0]], dtype)
    assert np.isnan(float(jaxloss.generalized_kl(bad, np.ones_like(bad))))
    err, _ = jaxloss.checked(jaxloss.generalized_kl)(bad, np.ones_like(bad))
    assert err.get() is not None and "must be >= 0" in err.get()
    err, v = jaxloss.checked(jaxloss.generalized_kl)(bad, np.ones_like(bad), where=np.array([False, True]))
    assert err.get() is None and float(v) == 0.0


def test_generalized_kl_on_probabilities_is_kl():
    """On probability vectors the -t + p terms cancel: equals scipy.stats.entropy(t, p) (relative entropy)
    and jaxloss.kl_divergence(log p, t)."""
    rng = np.random.default_rng(1)
    p, t = rng.dirichlet(np.ones(4), size=5), rng.dirichlet(np.ones(4), size=5)
    ref = scipy.stats.entropy(t, p, axis=-1)
    assert_close(jaxloss.generalized_kl(p, t, reduction="none"), ref, np.float64)
    assert_close(jaxloss.kl_divergence(np.log(p), t, reduction="none"), ref, np.float64)


def softmax64(x):
    return scipy.special.softmax(np.asarray(x, np.float64), axis=-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_from_logits_against_scipy_and_pytorch(dtype):
    """scipy.stats.entropy(softmax(x)) per distribution; PyTorch Categorical(logits=x).entropy() for the
    value and the gradient w.r.t. the logits; axis=0 equals the transposed input."""
    x = (np.random.default_rng(2).normal(size=(5, 4)) * 2).astype(dtype)
    assert_close(jaxloss.entropy(x, reduction="none"), scipy.stats.entropy(softmax64(x), axis=-1), dtype)
    tfn = lambda a: torch.distributions.Categorical(logits=a).entropy().mean()
    ref_v, ref_g = torch_value_and_grads(tfn, (x,), (0,))
    check_reference(jaxloss.entropy, ref_v, ref_g, (x,), dtype, (0,))
    assert_close(jaxloss.entropy(x.T, axis=0, reduction="none"), jaxloss.entropy(x, reduction="none"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_of_probabilities_against_scipy_and_pytorch(dtype):
    """from_logits=False: scipy.stats.entropy(q); gradient against PyTorch torch.special.entr(q).sum(-1)
    where q > 0 (at q = 0 PyTorch's gradient is +inf; jaxloss reports the finite 0 of 0 log 0)."""
    q = np.random.default_rng(3).dirichlet(np.ones(4), size=5)
    q[0] = [0.0, 0.3, 0.7, 0.0]
    q = q.astype(dtype)
    assert_close(
        jaxloss.entropy(q, from_logits=False, reduction="none"),
        scipy.stats.entropy(q.astype(np.float64), axis=-1),
        dtype,
    )
    ref_v, (ref_g,) = torch_value_and_grads(lambda a: torch.special.entr(a).sum(-1).mean(), (q,), (0,))
    v, (g,) = jax_value_and_grads(jaxloss.entropy, (q,), (0,), from_logits=False)
    assert_close(v, ref_v, dtype)
    pos = q > 0
    assert_close(g[pos], ref_g[pos], dtype)
    assert np.all(g[~pos] == 0) and np.all(np.isinf(ref_g[~pos]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_extremes(dtype):
    """Logits +-1e4 and -inf (excluded classes), probabilities 0 and 1: finite values equal to
    scipy.stats.entropy of the float64 softmax, finite gradients."""
    x = np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, 1e4, 1e4], [0.0, -np.inf, -np.inf, 3.0]], dtype)
    v, (g,) = jax_value_and_grads(jaxloss.entropy, (x,), (0,), reduction="sum")
    assert all_finite(v) and all_finite(g)
    assert_close(v, np.sum(scipy.stats.entropy(softmax64(x), axis=-1)), dtype)
    q = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]], dtype)
    v, (g,) = jax_value_and_grads(jaxloss.entropy, (q,), (0,), from_logits=False, reduction="sum")
    assert all_finite(g)
    assert_close(v, np.log(2.0), dtype)


def test_entropy_minimising_sharpens():
    """One gradient step on the entropy lowers it (sharpens), one on -entropy (a bonus) raises it."""
    import jax

    x = np.array([[0.3, -0.2, 0.1, 0.0]])
    g = np.asarray(jax.grad(jaxloss.entropy)(x))
    h0 = float(jaxloss.entropy(x))
    assert float(jaxloss.entropy(x - 0.5 * g)) < h0 < float(jaxloss.entropy(x + 0.5 * g))
