"""Tests of jaxloss.per_sample.

References: a Python loop of ``jax.grad`` over single-example batches (the definition of a per-example
gradient), float64 NumPy re-implementations (analytic logistic-regression gradients, clip-then-average of
Abadi et al. 2016, Welford-free two-pass moments, cosine / dot products), the DP-SGD noise distribution of
Abadi et al. 2016 (statistical tests), and the closed-form gradient noise scale of linear regression with
Gaussian inputs and noise (McCandlish et al. 2018's B_simple).
"""

from __future__ import annotations

import functools

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from tests import harness

tmap = jax.tree_util.tree_map
ce_none = functools.partial(jaxloss.cross_entropy, reduction="none")


# ---------------------------------------------------------------------------------------------------------
# Models: name -> (fn, params, batch) in a given dtype
# ---------------------------------------------------------------------------------------------------------


def _linreg(dtype, n=7, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=3).astype(dtype), "b": np.asarray(0.3, dtype)}
    batch = (rng.normal(size=(n, 3)).astype(dtype), rng.normal(size=n).astype(dtype))

    def fn(p, b):
        x, y = b
        return 0.5 * jnp.mean(jnp.square(x @ p["w"] + p["b"] - y))

    return fn, params, batch


def _mlp_params(rng, sizes, dtype, bias=True):
    return [
        (
            (rng.normal(size=(a, b)) / np.sqrt(a)).astype(dtype),
            (rng.normal(size=b) * 0.1).astype(dtype) if bias else None,
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]


def _mlp(dtype, n=7, seed=1):
    rng = np.random.default_rng(seed)
    params = _mlp_params(rng, [4, 5, 3], dtype)
    batch = (rng.normal(size=(n, 4)).astype(dtype), rng.integers(0, 3, size=n))
    return jaxloss.dense_stack_objective(ce_none, jnp.tanh), params, batch


def _dict_batch(dtype, n=7, seed=2):
    """A dict batch with a per-token input [B, T, d] and per-example weights (several leaves)."""
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(3, 2)).astype(dtype), "v": rng.normal(size=2).astype(dtype)}
    batch = {
        "tokens": rng.normal(size=(n, 4, 3)).astype(dtype),
        "target": rng.normal(size=n).astype(dtype),
        "weight": rng.uniform(0.5, 2.0, size=n).astype(dtype),
    }

    def fn(p, b):
        h = jnp.mean(jax.nn.softplus(b["tokens"] @ p["w"]), axis=1) @ p["v"]
        return jnp.mean(b["weight"] * jaxloss.huber(h, b["target"], reduction="none"))

    return fn, params, batch


class _FlaxNet(nn.Module):
    dtype: type = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(5, param_dtype=self.dtype, dtype=self.dtype)(x)
        x = nn.LayerNorm(param_dtype=self.dtype, dtype=self.dtype)(x)
        return nn.Dense(3, param_dtype=self.dtype, dtype=self.dtype)(nn.gelu(x))


def _flax(dtype, n=7, seed=3):
    rng = np.random.default_rng(seed)
    net = _FlaxNet(dtype=dtype)
    x = rng.normal(size=(n, 4)).astype(dtype)
    params = net.init(jax.random.PRNGKey(seed), x[:1])
    batch = (x, rng.integers(0, 3, size=n))

    def fn(p, b):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(net.apply(p, b[0]), b[1]))

    return fn, params, batch


def _equinox(dtype, n=7, seed=4):
    rng = np.random.default_rng(seed)
    model = eqx.nn.MLP(4, 2, 6, 2, activation=jax.nn.silu, key=jax.random.PRNGKey(seed), dtype=dtype)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    batch = (rng.normal(size=(n, 4)).astype(dtype), rng.normal(size=(n, 2)).astype(dtype))

    def fn(p, b):
        m = eqx.combine(p, static)
        return jnp.mean(jnp.sum(jnp.square(jax.vmap(m)(b[0]) - b[1]), axis=-1))

    return fn, params, batch


MODELS = {"linreg": _linreg, "mlp": _mlp, "dict_batch": _dict_batch, "flax": _flax, "equinox": _equinox}


def _take(batch, i):
    return tmap(lambda x: x[i : i + 1], batch)


def _loop_grads(fn, params, batch, n):
    """The reference: a Python loop of jax.grad over single-example batches, stacked (jitted once)."""
    grad = jax.jit(jax.grad(fn))
    grads = [grad(params, _take(batch, i)) for i in range(n)]
    return tmap(lambda *g: np.stack([np.asarray(x) for x in g]), *grads)


def _flat(tree):
    leaves = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(tree)]
    return np.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)


# ---------------------------------------------------------------------------------------------------------
# Per-example losses and gradients vs a Python loop
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", harness.DTYPES)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_per_sample_grads_equal_loop_of_jax_grad(model, dtype):
    """Reference: a Python loop of jax.grad over single-example batches (and fn on each example)."""
    fn, params, batch = MODELS[model](dtype)
    n = 7

    @jax.jit
    def run(params, batch):
        return (
            jaxloss.per_sample_grads(fn, params, batch),
            jaxloss.per_sample_losses(fn, params, batch),
            jaxloss.per_sample_grad_norms(fn, params, batch),
            jax.grad(fn)(params, batch),
        )

    got, losses, norms, batch_grad = run(params, batch)
    want = _loop_grads(fn, params, batch, n)
    fn_jit = jax.jit(fn)
    loop_losses = [fn_jit(params, _take(batch, i)) for i in range(n)]
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    harness.assert_tree_close(got, want, dtype, rtol=harness.TOL[np.dtype(dtype)]["rtol"] * 10)
    for g, p in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(params)):
        assert g.shape == (n,) + np.shape(p) and g.dtype == np.dtype(dtype)
    harness.assert_close(losses, loop_losses, dtype)
    harness.assert_close(norms, np.linalg.norm(_flat(want), axis=1), dtype, rtol=1e-4 if dtype == np.float32 else 1e-9)
    if model != "dict_batch":  # a plain mean objective: the mean of per-example grads is the batch grad
        harness.assert_tree_close(
            tmap(lambda g: jnp.mean(g, 0), got), batch_grad, dtype, rtol=1e-4 if dtype == np.float32 else 1e-9
        )


def test_acceptance_line_with_jaxloss_objective():
    """g = jaxloss.per_sample_grads(obj, params, batch) for an objective of issue 4; reference: a loop of
    jax.grad over single examples, and the objective's own per-example data term."""
    _, params, batch = _mlp(np.float64)
    obj = jaxloss.objective(functools.partial(jaxloss.dense_stack_apply, activation=jnp.tanh), jaxloss.cross_entropy)
    g, losses = jax.jit(lambda p, b: (jaxloss.per_sample_grads(obj, p, b), jaxloss.per_sample_losses(obj, p, b)))(
        params, batch
    )
    harness.assert_tree_close(g, _loop_grads(obj, params, batch, 7), np.float64)
    harness.assert_close(losses, obj.per_sample(params, batch), np.float64)


def test_logistic_regression_grads_match_numpy_formula():
    """Reference: the analytic float64 NumPy gradient x_i (sigmoid(x_i.w + b) - y_i) per example."""
    x, y, w, b = _logreg_data()
    got = _logreg_grads({"w": w, "b": b}, (x, y))
    r = 1 / (1 + np.exp(-(x @ w + b))) - y
    harness.assert_close(got["w"], x * r[:, None], np.float64)
    harness.assert_close(got["b"], r, np.float64)


def test_per_layer_norms():
    """Reference: NumPy norms of the loop gradients per leaf and per (W, b) layer, and per Flax module."""
    fn, params, batch = _mlp(np.float64)
    want = _loop_grads(fn, params, batch, 7)
    norms, per_leaf, (_, per_layer) = jax.jit(
        lambda p, b: (
            jaxloss.per_sample_grad_norms(fn, p, b, per_layer=True)
            + (jaxloss.per_sample_grad_norms(fn, p, b, per_layer=1),)
        )
    )(params, batch)
    harness.assert_tree_close(per_leaf, tmap(lambda g: np.linalg.norm(g.reshape(7, -1), axis=1), want), np.float64)
    assert sorted(per_layer) == ["[0]", "[1]"]
    for i in range(2):
        harness.assert_close(per_layer[f"[{i}]"], np.linalg.norm(_flat(want[i]), axis=1), np.float64)
    harness.assert_close(norms, np.sqrt(sum(per_layer[k] ** 2 for k in per_layer)), np.float64)

    fn, params, batch = _flax(np.float64)
    want = _loop_grads(fn, params, batch, 7)
    _, per_module = jax.jit(functools.partial(jaxloss.per_sample_grad_norms, fn, per_layer=2))(params, batch)
    assert sorted(per_module) == ["['params']['Dense_0']", "['params']['Dense_1']", "['params']['LayerNorm_0']"]
    harness.assert_close(
        per_module["['params']['Dense_1']"], np.linalg.norm(_flat(want["params"]["Dense_1"]), axis=1), np.float64
    )


# ---------------------------------------------------------------------------------------------------------
# Chunking
# ---------------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 1))
def _everything(fn, chunk_size, params, batch):
    return dict(
        losses=jaxloss.per_sample_losses(fn, params, batch, chunk_size=chunk_size),
        grads=jaxloss.per_sample_grads(fn, params, batch, chunk_size=chunk_size),
        norms=jaxloss.per_sample_grad_norms(fn, params, batch, chunk_size=chunk_size, per_layer=True),
        clipped=jaxloss.clipped_mean_grad(fn, params, batch, 0.5, chunk_size=chunk_size),
        stats=jaxloss.grad_statistics(fn, params, batch, chunk_size=chunk_size),
        tracin=jaxloss.tracin_influence(fn, params, batch, _take(batch, 2), chunk_size=chunk_size),
    )


_DICT64 = _dict_batch(np.float64)


@pytest.mark.parametrize("chunk_size", [1, 3, 10])
def test_chunked_equals_unchunked(chunk_size):
    """chunk_size 3 does not divide the batch of 7 (two chunks and a remainder); 10 exceeds the batch."""
    fn, params, batch = _DICT64
    ref = _everything(fn, None, params, batch)
    got = _everything(fn, chunk_size, params, batch)
    for k in ref:
        harness.assert_tree_close(got[k], ref[k], np.float64, err_msg=k)


def test_chunked_under_jit_float32():
    fn, params, batch = _mlp(np.float32)
    f = jax.jit(functools.partial(jaxloss.per_sample_grads, fn, chunk_size=3))
    harness.assert_tree_close(f(params, batch), _loop_grads(fn, params, batch, 7), np.float32, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# Ghost norms
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "activation,bias,tokens,dtype",
    [
        (jax.nn.relu, True, None, np.float32),
        (jax.nn.relu, True, None, np.float64),
        (jnp.tanh, False, None, np.float64),
        (jax.nn.gelu, True, 3, np.float32),
        (jax.nn.gelu, True, 3, np.float64),
        (jax.nn.softplus, True, 1, np.float64),
    ],
    ids=["relu-f32", "relu-f64", "tanh-nobias-f64", "gelu-tokens3-f32", "gelu-tokens3-f64", "softplus-tokens1-f64"],
)
def test_ghost_norms_equal_vmap_norms(activation, bias, tokens, dtype):
    """Reference: per_sample_grad_norms (vmap path, itself checked against a loop of jax.grad).

    With 3 tokens the first layer (2 -> 2, T^2 > d_in d_out) forms the per-example gradient and the
    second (2 -> 6) uses the Gram identity."""
    rng = np.random.default_rng(5)
    n = 6
    params = _mlp_params(rng, [2, 2, 6, 3], dtype, bias=bias)
    shape = (n, 2) if tokens is None else (n, tokens, 2)
    x = rng.normal(size=shape).astype(dtype)
    y = rng.integers(0, 3, size=shape[:-1])
    loss = (
        ce_none if tokens is None else (lambda out, t: jnp.sum(jaxloss.cross_entropy(out, t, reduction="none"), axis=1))
    )
    fn = jaxloss.dense_stack_objective(loss, activation)

    @jax.jit
    def both(params, batch):
        return (
            jaxloss.per_sample_grad_norms(fn, params, batch, per_layer=True),
            jaxloss.ghost_grad_norms(params, batch, loss, activation=activation, per_layer=True),
            jaxloss.ghost_grad_norms(params, batch, loss, activation=activation),
        )

    (want, want_leaf), (got, got_leaf), got_global = both(params, (x, y))
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    harness.assert_close(got, want, dtype, rtol=rtol)
    assert jax.tree_util.tree_structure(got_leaf) == jax.tree_util.tree_structure(want_leaf)
    harness.assert_tree_close(got_leaf, want_leaf, dtype, rtol=rtol)
    harness.assert_close(got_global, want, dtype, rtol=rtol)


def test_ghost_clipped_mean_grad_equals_vmap_path():
    """Reference: clipped_mean_grad on dense_stack_objective (same clipping, same noise for the same key)."""
    fn, params, batch = _mlp(np.float64)
    key = jax.random.PRNGKey(3)

    @jax.jit
    def both(params, batch, sigma):
        return (
            jaxloss.clipped_mean_grad(fn, params, batch, 0.7, sigma, key),
            jaxloss.ghost_clipped_mean_grad(params, batch, ce_none, 0.7, sigma, key, activation=jnp.tanh),
        )

    for sigma in (0.0, 1.3):
        want, got = both(params, batch, sigma)
        harness.assert_tree_close(got, want, np.float64, rtol=1e-10)


# ---------------------------------------------------------------------------------------------------------
# DP-SGD clipping
# ---------------------------------------------------------------------------------------------------------


def _logreg_data(n=8, d=3, seed=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 2.0
    x[3] = 0.0  # a zero gradient (its bias gradient is sigmoid(b) - y: make y match exactly below)
    w = rng.normal(size=d)
    b = 0.0
    y = rng.integers(0, 2, size=n).astype(np.float64)
    y[3] = 0.5  # soft label equal to sigmoid(0): the gradient of example 3 is exactly zero
    return x, y, w, b


def _logreg_fn(p, batch):
    x, y = batch
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], y))


_logreg_grads = jax.jit(functools.partial(jaxloss.per_sample_grads, _logreg_fn))
_logreg_clipped = jax.jit(functools.partial(jaxloss.clipped_mean_grad, _logreg_fn))


def _numpy_clip_mean(g, c):
    """Abadi et al. 2016, Algorithm 1: g_i / max(1, |g_i| / C), then the mean over the lot."""
    norms = np.linalg.norm(g, axis=1)
    return np.mean(g / np.maximum(1.0, norms / c)[:, None], axis=0), norms


@pytest.mark.parametrize("max_norm", [0.3, 1.0, 100.0])
def test_clipped_mean_grad_equals_numpy_clip_then_average(max_norm):
    """Reference: float64 NumPy clip-then-average of the analytic logistic-regression gradients."""
    x, y, w, b = _logreg_data()
    r = 1 / (1 + np.exp(-(x @ w + b))) - y
    g = np.concatenate([x * r[:, None], r[:, None]], axis=1)
    want, want_norms = _numpy_clip_mean(g, max_norm)
    out = _logreg_clipped({"w": w, "b": b}, (x, y), max_norm)
    assert want_norms[3] == 0.0 and np.all(np.isfinite(np.asarray(out.grads["w"])))
    harness.assert_close(out.grads["w"], want[:-1], np.float64)
    harness.assert_close(out.grads["b"], want[-1], np.float64)
    harness.assert_close(out.norms, want_norms, np.float64)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    harness.assert_close(out.losses, -(y * np.log(p) + (1 - y) * np.log1p(-p)), np.float64)


def test_clipped_mean_grad_mlp_float32_and_jit():
    """Reference: NumPy clip-then-average of a loop of jax.grad; traced max_norm under jit."""
    fn, params, batch = _mlp(np.float32)
    flat = _flat(_loop_grads(fn, params, batch, 7))
    want, want_norms = _numpy_clip_mean(flat, 1.8)
    assert np.sum(want_norms > 1.8) >= 2 and np.sum(want_norms < 1.8) >= 1  # both branches are exercised
    out = jax.jit(functools.partial(jaxloss.clipped_mean_grad, fn, chunk_size=4))(params, batch, jnp.float32(1.8))
    harness.assert_close(_flat(tmap(lambda g: g[None], out.grads))[0], want, np.float32, rtol=1e-5, atol=1e-6)
    harness.assert_close(out.norms, want_norms, np.float32, rtol=1e-5)


def test_clipped_mean_grad_without_clipping_is_jax_grad():
    """With a huge max_norm and no noise, the clipped mean gradient is jax.grad of the mean objective."""
    fn, params, batch = _linreg(np.float64)
    out, want = jax.jit(lambda p, b: (jaxloss.clipped_mean_grad(fn, p, b, 1e6), jax.grad(fn)(p, b)))(params, batch)
    harness.assert_tree_close(out.grads, want, np.float64)
    harness.assert_close(jnp.mean(out.losses), fn(params, batch), np.float64)


def test_dp_noise_matches_the_gaussian_mechanism():
    """Reference: Abadi et al. 2016 — noise N(0, sigma^2 C^2 I) on the clipped sum, so the mean gradient is
    the clipped mean plus N(0, (sigma C / B)^2 I), i.i.d. over coordinates.

    K draws of P coordinates. Mean: per coordinate, |mean - mu| < 5 sigma_n / sqrt(K) (each a N(0,1) z-score;
    P(max of P > 5) < P * 6e-7). Variance: s^2 / sigma_n^2 (K P degrees of freedom) has sd sqrt(2 / (K P));
    tolerance 5 sd. Fourth moment E z^4 = 3 has sd sqrt(96 / (K P)); tolerance 5 sd. Correlations between
    coordinates have sd 1 / sqrt(K); tolerance 5 / sqrt(K). The draws are seeded, so this is deterministic.
    """
    x, y, w, b = _logreg_data()
    params = {"w": w, "b": b}
    c, sigma, n, k = 0.5, 1.7, x.shape[0], 4000
    mu = _logreg_clipped(params, (x, y), c).grads
    mu = np.concatenate([np.asarray(mu["w"]), [float(mu["b"])]])
    draw = jax.jit(jax.vmap(lambda key: jaxloss.clipped_mean_grad(_logreg_fn, params, (x, y), c, sigma, key).grads))
    g = draw(jax.random.split(jax.random.PRNGKey(0), k))
    samples = np.concatenate([np.asarray(g["w"]), np.asarray(g["b"])[:, None]], axis=1)  # [K, P]
    p = samples.shape[1]
    sd = sigma * c / n
    z = (samples - mu) / sd
    assert np.max(np.abs(z.mean(axis=0))) < 5 / np.sqrt(k)
    assert abs(np.mean(z**2) - 1) < 5 * np.sqrt(2 / (k * p))
    assert abs(np.mean(z**4) - 3) < 5 * np.sqrt(96 / (k * p))
    corr = np.corrcoef(z, rowvar=False)
    assert np.max(np.abs(corr - np.eye(p))) < 5 / np.sqrt(k)


def test_clipped_mean_grad_errors():
    fn, params, batch = _linreg(np.float64)
    with pytest.raises(ValueError, match="key"):
        jaxloss.clipped_mean_grad(fn, params, batch, 1.0, 1.0)
    with pytest.raises(ValueError, match="max_norm"):
        jaxloss.clipped_mean_grad(fn, params, batch, 0.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        jaxloss.clipped_mean_grad(fn, params, batch, 1.0, -1.0, jax.random.PRNGKey(0))


def test_dp_sgd_step_with_optax():
    """A drop-in for jax.grad: the optax update equals the update of the NumPy clipped mean gradient."""
    x, y, w, b = _logreg_data()
    params = {"w": jnp.asarray(w), "b": jnp.asarray(b)}
    opt = optax.sgd(0.1)
    state = opt.init(params)
    out = _logreg_clipped(params, (x, y), 0.3)
    updates, _ = opt.update(out.grads, state, params)
    new = optax.apply_updates(params, updates)
    r = 1 / (1 + np.exp(-(x @ w + b))) - y
    want, _ = _numpy_clip_mean(np.concatenate([x * r[:, None], r[:, None]], axis=1), 0.3)
    harness.assert_close(new["w"], w - 0.1 * want[:-1], np.float64)


# ---------------------------------------------------------------------------------------------------------
# Gradient statistics and the noise scale
# ---------------------------------------------------------------------------------------------------------


def test_grad_statistics_match_numpy():
    """Reference: float64 NumPy mean, var(ddof=1), |mean|/std, and the unbiased |G|^2 of the loop grads."""
    fn, params, batch = _mlp(np.float64)
    flat = _flat(_loop_grads(fn, params, batch, 7))
    st, st2 = jax.jit(
        lambda p, b: (
            jaxloss.grad_statistics(fn, p, b, chunk_size=3),
            jaxloss.grad_statistics_from_grads(jaxloss.per_sample_grads(fn, p, b)),
        )
    )(params, batch)
    mean, var = flat.mean(0), flat.var(0, ddof=1)
    harness.assert_close(_flat(tmap(lambda v: v[None], st.mean))[0], mean, np.float64)
    harness.assert_close(_flat(tmap(lambda v: v[None], st.variance))[0], var, np.float64)
    harness.assert_close(_flat(tmap(lambda v: v[None], st.snr))[0], np.abs(mean) / np.sqrt(var), np.float64)
    harness.assert_close(st.trace_cov, var.sum(), np.float64)
    g_sq = mean @ mean - var.sum() / 7
    harness.assert_close(st.grad_sq_norm, g_sq, np.float64)
    harness.assert_close(st.noise_scale, var.sum() / g_sq, np.float64)
    harness.assert_tree_close(st2, st, np.float64)


def test_snr_of_constant_gradients():
    g = {"a": jnp.array([[1.0, 0.0], [1.0, 0.0]])}
    st = jaxloss.grad_statistics_from_grads(g)
    assert st.snr["a"].tolist() == [np.inf, 0.0]


# Linear regression y = x.w* + eps, x ~ N(0, I_d), eps ~ N(0, s^2), per-example loss (x.w - y)^2 / 2, at
# w = w* + delta. g = x (x.delta - eps), so G = E[x x^T] delta = delta and, by Isserlis' theorem,
# E[g g^T] = |delta|^2 I + 2 delta delta^T + s^2 I, hence Sigma = (|delta|^2 + s^2) I + delta delta^T:
#   |G|^2 = |delta|^2,  tr(Sigma) = (d + 1) |delta|^2 + d s^2,  B_simple = tr(Sigma) / |G|^2.
_D, _S2 = 4, 1.0
_DELTA = np.array([0.5, -0.5, 0.5, 0.5])  # |delta|^2 = 1
_TRUE_G2 = float(_DELTA @ _DELTA)
_TRUE_TRACE = (_D + 1) * _TRUE_G2 + _D * _S2  # 9
_W_STAR = np.array([1.0, 2.0, -1.0, 0.0])


def _linreg_problem(key, n):
    kx, ke = jax.random.split(key)
    x = jax.random.normal(kx, (n, _D), jnp.float64)
    y = x @ _W_STAR + np.sqrt(_S2) * jax.random.normal(ke, (n,), jnp.float64)
    return (x, y)


def _linreg_mean(w, batch):
    x, y = batch
    return 0.5 * jnp.mean(jnp.square(x @ w - y))


def _check_unbiased(trace, g_sq, label):
    """Both components unbiased: replicate means within 5 standard errors (CLT over R replicates); then the
    ratio of the means is within the error that those component bounds imply."""
    r = trace.shape[0]
    se_t, se_g = trace.std(ddof=1) / np.sqrt(r), g_sq.std(ddof=1) / np.sqrt(r)
    assert abs(trace.mean() - _TRUE_TRACE) < 5 * se_t, (label, trace.mean(), _TRUE_TRACE, se_t)
    assert abs(g_sq.mean() - _TRUE_G2) < 5 * se_g, (label, g_sq.mean(), _TRUE_G2, se_g)
    rt, rg = 5 * se_t / _TRUE_TRACE, 5 * se_g / _TRUE_G2
    assert rg < 0.5  # the bound below is meaningful
    true_b = _TRUE_TRACE / _TRUE_G2
    assert abs(trace.mean() / g_sq.mean() / true_b - 1) <= (rt + rg) / (1 - rg), label


def test_noise_scale_linear_regression_closed_form():
    """Reference: the closed-form B_simple = ((d+1)|delta|^2 + d s^2) / |delta|^2 = 9 of linear regression
    with Gaussian inputs and noise (derivation above), for the per-example estimator (batches of 32) and the
    two-batch-size estimator of McCandlish et al. 2018, App. A (batches of 32 split into 4 of 8)."""
    w = jnp.asarray(_W_STAR + _DELTA)
    keys = jax.random.split(jax.random.PRNGKey(42), 3000)

    @jax.jit
    @jax.vmap
    def replicate(key):
        batch = _linreg_problem(key, 32)
        st = jaxloss.grad_statistics(_linreg_mean, w, batch)
        two = jaxloss.two_batch_noise_scale(_linreg_mean, w, batch, 8)
        return st.trace_cov, st.grad_sq_norm, two.trace_cov, two.grad_sq_norm

    t1, g1, t2, g2 = (np.asarray(a) for a in replicate(keys))
    _check_unbiased(t1, g1, "per-example")
    _check_unbiased(t2, g2, "two-batch")
    # a large batch estimate converges to the true value (one batch of 20000: relative sd ~ 1-2 %)
    st = jaxloss.grad_statistics(_linreg_mean, w, _linreg_problem(jax.random.PRNGKey(7), 20000), chunk_size=4096)
    assert abs(float(st.noise_scale) / (_TRUE_TRACE / _TRUE_G2) - 1) < 0.1


def test_noise_scale_from_batch_sizes_inverts_the_expectations():
    """E|G_b|^2 = |G|^2 + tr(Sigma)/b (McCandlish et al. 2018): exact expectations give back |G|^2 and tr."""
    g2, tr = 2.5, 40.0
    est = jaxloss.noise_scale_from_batch_sizes(g2 + tr / 16, g2 + tr / 256, 16, 256)
    harness.assert_close([est.grad_sq_norm, est.trace_cov, est.noise_scale], [g2, tr, tr / g2], np.float64)
    with pytest.raises(ValueError, match="big_batch_size"):
        jaxloss.noise_scale_from_batch_sizes(1.0, 1.0, 16, 16)
    with pytest.raises(ValueError, match="small_batch_size"):
        jaxloss.two_batch_noise_scale(_linreg_mean, jnp.zeros(_D), _linreg_problem(jax.random.PRNGKey(0), 10), 3)


# ---------------------------------------------------------------------------------------------------------
# Similarity and influence
# ---------------------------------------------------------------------------------------------------------


def test_cosine_similarity_matches_numpy_and_is_finite_for_zero_grads():
    """Reference: NumPy cosine of the flattened analytic gradients; the zero gradient gives 0 (not NaN)."""
    x, y, w, b = _logreg_data()
    g = _logreg_grads({"w": w, "b": b}, (x, y))
    flat = _flat(g)
    norms = np.linalg.norm(flat, axis=1)
    assert norms[3] == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.nan_to_num(flat @ flat.T / np.outer(norms, norms))
    cos = jax.jit(jaxloss.grad_cosine_similarity)
    got = cos(g)
    harness.assert_close(got, want, np.float64)
    sub = tmap(lambda a: a[:3], g)
    harness.assert_close(cos(g, sub), want[:, :3], np.float64)
    assert np.all(
        np.isfinite(np.asarray(jax.jit(jax.jacobian(lambda t: jaxloss.grad_cosine_similarity({"a": t})))(flat)))
    )


def test_tracin_matches_numpy_dot_products():
    """Reference: sum_t eta_t <g_train, g_test> from loop gradients at two checkpoints (Pruthi et al. 2020)."""
    fn, params, batch = _mlp(np.float64)
    params2 = tmap(lambda p: p * 0.9 + 0.01, params)
    test = _take(batch, 1), _take(batch, 5)
    test = tmap(lambda a, c: np.concatenate([a, c]), *test)
    f = lambda p, b: _flat(_loop_grads(fn, p, b, _leading(b)))  # noqa: E731
    want = 0.1 * f(params, batch) @ f(params, test).T + 0.05 * f(params2, batch) @ f(params2, test).T
    got, single = jax.jit(
        lambda p, p2, b, t: (
            jaxloss.tracin_influence(fn, [p, p2], b, t, learning_rates=[0.1, 0.05], chunk_size=3),
            jaxloss.tracin_influence(fn, p, b, t),
        )
    )(params, params2, batch, test)
    harness.assert_close(got, want, np.float64)
    harness.assert_close(single, f(params, batch) @ f(params, test).T, np.float64)
    with pytest.raises(ValueError, match="learning_rates"):
        jaxloss.tracin_influence(fn, [params, params2], batch, test, learning_rates=[0.1])


def _leading(b):
    return jax.tree_util.tree_leaves(b)[0].shape[0]


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------


def test_errors_name_the_problem():
    fn, params, batch = _linreg(np.float64)
    with pytest.raises(ValueError, match=r"disagree.*\(7, 3\).*\(6,\)"):
        jaxloss.per_sample_grads(fn, params, (batch[0], batch[1][:6]))
    with pytest.raises(TypeError, match="scalar"):
        jaxloss.per_sample_grads(lambda p, b: b[0] @ p["w"], params, batch)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.per_sample_grads(fn, params, batch, chunk_size=0)
    with pytest.raises(ValueError, match="per_layer"):
        jaxloss.per_sample_grad_norms(fn, params, batch, per_layer=0)
    mlp_fn, mlp_params, mlp_batch = _mlp(np.float64)
    with pytest.raises(ValueError, match="one value per example"):
        jaxloss.ghost_grad_norms(mlp_params, mlp_batch, jaxloss.cross_entropy)
    with pytest.raises(ValueError, match="d_in"):
        jaxloss.ghost_grad_norms(mlp_params[::-1], mlp_batch, ce_none)


# ---------------------------------------------------------------------------------------------------------
# issue 14 (mutation audit): global-norm clipping and the DP noise scale against hand-written NumPy
# ---------------------------------------------------------------------------------------------------------


def _tanh_mlp_problem(n=8, d=3, h=4, seed=21):
    rng = np.random.default_rng(seed)
    params = {
        "W1": rng.normal(size=(d, h)) * 0.8,
        "b1": rng.normal(size=h) * 0.3,
        "W2": rng.normal(size=h) * 1.2,
        "b2": np.asarray(0.1),
    }
    x = rng.normal(size=(n, d)) * 1.5
    y = rng.normal(size=n) * 2.0
    return params, (x, y)


def _tanh_mlp_fn(p, batch):
    x, y = batch
    out = jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return jnp.mean(0.5 * (out - y) ** 2)


def _numpy_mlp_per_example_grads(p, x, y):
    """float64 NumPy backpropagation by hand of 0.5 (tanh(x W1 + b1) . W2 + b2 - y)^2, one row per example."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    hid = np.tanh(x @ p["W1"] + p["b1"])  # [n, h]
    r = hid @ p["W2"] + p["b2"] - y  # [n]
    dz = r[:, None] * p["W2"][None] * (1 - hid**2)  # [n, h]
    return {"W1": x[:, :, None] * dz[:, None, :], "b1": dz, "W2": r[:, None] * hid, "b2": r}


def test_clipping_is_global_over_all_leaves_against_numpy():
    """Reference: Abadi et al. 2016 Algorithm 1 in float64 NumPy on a 4-leaf MLP: per-example gradients by
    hand, n_i = sqrt(sum over ALL leaves |g_i|^2), factor min(1, C / n_i), the mean over the batch. The
    per-leaf clipping (each leaf to C on its own) gives a clearly different result here, so a per-leaf
    mutation cannot pass."""
    params, (x, y) = _tanh_mlp_problem()
    g = _numpy_mlp_per_example_grads(params, x, y)
    n = x.shape[0]
    norms = np.sqrt(sum(np.sum(v.reshape(n, -1) ** 2, axis=1) for v in g.values()))
    c = float(np.median(norms))  # half of the examples are clipped
    factor = np.minimum(1.0, c / norms)
    want = {k: np.mean(v * factor.reshape((n,) + (1,) * (v.ndim - 1)), axis=0) for k, v in g.items()}
    per_leaf = {}
    for k, v in g.items():
        leaf_norm = np.sqrt(np.sum(v.reshape(n, -1) ** 2, axis=1))
        per_leaf[k] = np.mean(v * np.minimum(1.0, c / leaf_norm).reshape((n,) + (1,) * (v.ndim - 1)), axis=0)
    assert max(np.max(np.abs(want[k] - per_leaf[k])) for k in g) > 1e-2
    run = jax.jit(functools.partial(jaxloss.clipped_mean_grad, _tanh_mlp_fn), static_argnames="chunk_size")
    for chunk_size in (None, 3):
        out = run(params, (x, y), c, chunk_size=chunk_size)
        harness.assert_close(out.norms, norms, np.float64)
        for k in g:
            harness.assert_close(out.grads[k], want[k], np.float64, err_msg=k)
    # float32 inputs: the same numbers to float32 accuracy
    p32 = {k: np.asarray(v, np.float32) for k, v in params.items()}
    out = run(p32, (x.astype(np.float32), y.astype(np.float32)), np.float32(c))
    for k in g:
        harness.assert_close(out.grads[k], want[k], np.float32, rtol=1e-5, atol=1e-6, err_msg=k)


def test_dp_noise_scale_on_every_leaf_against_the_gaussian_mechanism():
    """Reference: the documented convention of Abadi et al. 2016 (Algorithm 1) and Opacus: Gaussian noise of
    std sigma * C is added to the SUM of the clipped gradients, then divided by the batch size B, so each
    coordinate of every leaf of the returned mean carries N(0, (sigma C / B)^2), independently across
    coordinates and leaves. Checked on the 4-leaf MLP: noisy minus clean (NumPy clipped mean) per leaf;
    the z-scores' mean (sd 1/sqrt(K P)), variance (sd sqrt(2/(K P))), and the correlation between the two
    same-shaped leaves b1 and W2 (sd 1/sqrt(K)), each within 5 sd. A noise of std sigma*C (not divided by B)
    or sigma*C/sqrt(B) would be off by a factor 8 or sqrt(8)."""
    params, (x, y) = _tanh_mlp_problem()
    g = _numpy_mlp_per_example_grads(params, x, y)
    n = x.shape[0]
    norms = np.sqrt(sum(np.sum(v.reshape(n, -1) ** 2, axis=1) for v in g.values()))
    c, sigma, k = 0.9, 1.3, 1500
    factor = np.minimum(1.0, c / norms)
    clean = {key: np.mean(v * factor.reshape((n,) + (1,) * (v.ndim - 1)), axis=0) for key, v in g.items()}
    draw = jax.jit(jax.vmap(lambda key: jaxloss.clipped_mean_grad(_tanh_mlp_fn, params, (x, y), c, sigma, key).grads))
    samples = draw(jax.random.split(jax.random.PRNGKey(3), k))
    sd = sigma * c / n
    z = {key: (np.asarray(samples[key]) - clean[key]).reshape(k, -1) / sd for key in clean}
    for key, zk in z.items():
        p = zk.shape[1]
        assert abs(np.mean(zk)) < 5 / np.sqrt(k * p), key
        assert abs(np.mean(zk**2) - 1) < 5 * np.sqrt(2 / (k * p)), (key, np.mean(zk**2))
    corr = np.corrcoef(z["b1"].T, z["W2"].T)[:4, 4:]
    assert np.max(np.abs(corr)) < 5 / np.sqrt(k)
