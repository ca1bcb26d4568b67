"""Reference tests for kl_divergence and js_divergence: PyTorch, optax, SciPy, float64 finite differences."""

import jax
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from harness import DTYPES, all_finite, assert_close, check_reference, jax_value_and_grads, numeric_grads, torch_value_and_grads

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
    ref_v, ref_g = torch_value_and_grads(lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=True), (lp, lt), (0, 1))
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
    check_reference(jaxloss.js_divergence, ref_v, ref_g, (lp, t), dtype, (0, 1), rtol=2e-5 if dtype == np.float32 else 1e-6, atol=1e-6 if dtype == np.float32 else 1e-8)


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
