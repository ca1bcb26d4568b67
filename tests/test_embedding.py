"""Reference tests for the metric-learning losses: PyTorch, optax, Keras 3 (JAX backend), NumPy float64.

Each test names its reference. Values and gradients are checked in float32 and float64 on small seeded
random inputs; the batch losses also check their group / item-mask semantics against slicing.
"""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from harness import DTYPES, all_finite, assert_close, jax_value_and_grads, jitted, torch_value_and_grads
from harness import check_reference as check
from harness import jax_value_and_grads as jit_value_and_grads

B, D = 6, 4


def vectors(dtype, seed=0, n=2, shape=(B, D)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(dtype) for _ in range(n)]


def signs(seed=1, shape=(B,), dtype=np.float64):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=shape).astype(dtype)


# ----------------------------------------------------------------------------------------- cosine family


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_similarity_against_pytorch(dtype):
    """torch.nn.functional.cosine_similarity (eps=1e-8): per-pair values, and mean value and gradients."""
    x1, x2 = vectors(dtype)
    ref_v, ref_g = torch_value_and_grads(
        lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=1e-8).mean(), (x1, x2), (0, 1)
    )
    check(jaxloss.cosine_similarity, ref_v, ref_g, (x1, x2), dtype, (0, 1))
    per_pair = F.cosine_similarity(torch.tensor(x1), torch.tensor(x2), dim=-1).numpy()
    assert_close(jitted(jaxloss.cosine_similarity, reduction="none")(x1, x2), per_pair, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_similarity_feature_axis_against_pytorch(dtype):
    """axis=1 on [B, D, T] equals torch cosine_similarity(dim=1); "sum" reduction and gradients."""
    x1, x2 = vectors(dtype, seed=3, shape=(3, D, 2))
    ref_v, ref_g = torch_value_and_grads(lambda a, b: F.cosine_similarity(a, b, dim=1).sum(), (x1, x2), (0, 1))
    check(jaxloss.cosine_similarity, ref_v, ref_g, (x1, x2), dtype, (0, 1), axis=1, reduction="sum")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_similarity_and_distance_against_optax(dtype):
    """optax.losses.cosine_similarity / cosine_distance (non-degenerate inputs), values and gradients."""
    x1, x2 = vectors(dtype, seed=5)
    for jfn, ofn in (
        (jaxloss.cosine_similarity, optax.losses.cosine_similarity),
        (jaxloss.cosine_distance, optax.losses.cosine_distance),
    ):
        ref_v, ref_g = jit_value_and_grads(lambda a, b: jnp.mean(ofn(a, b)), (x1, x2), (0, 1))
        check(jfn, ref_v, ref_g, (x1, x2), dtype, (0, 1))
        assert_close(jfn(x1, x2, reduction="none"), ofn(jnp.asarray(x1), jnp.asarray(x2)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_peer_trap_cosine_zero_vector(dtype):
    """The peer trap: cosine similarity with a zero vector.

    optax (epsilon=0, its default) returns NaN in value and gradient. PyTorch clamps each norm at eps and
    is finite. jaxloss is finite and correct: similarity 0 (distance 1) with a zero vector, gradient equal
    to the exact gradient of the clamped formula, x2 / (eps * |x2|) (= PyTorch's), and 0 when both vectors
    are zero.
    """
    zero = np.zeros(D, dtype)
    other = np.array([1.0, 2.0, -2.0, 4.0], dtype)
    eps = 1e-8

    # optax: NaN
    o_val, o_grad = jax.value_and_grad(lambda a, b: optax.losses.cosine_similarity(a, b))(
        jnp.asarray(zero), jnp.asarray(other)
    )
    assert np.isnan(o_val) and np.all(np.isnan(o_grad))

    # jaxloss: value 0, finite gradient = the clamped formula's gradient (independent float64 NumPy)
    val, (g1, g2) = jax_value_and_grads(jaxloss.cosine_similarity, (zero, other), (0, 1), eps=eps)
    assert float(val) == 0.0 and all_finite([g1, g2])
    o64 = other.astype(np.float64)
    assert_close(g1, o64 / (eps * np.linalg.norm(o64)), dtype)
    assert np.all(g2 == 0)
    dist, dist_g = jax_value_and_grads(jaxloss.cosine_distance, (zero, other), (0, 1), eps=eps)
    assert float(dist) == 1.0 and all_finite(dist_g)

    # PyTorch agrees with jaxloss (value and gradient)
    t_val, t_grads = torch_value_and_grads(
        lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=eps), (zero, other), (0, 1)
    )
    assert float(t_val) == 0.0
    assert_close(g1, t_grads[0], dtype)

    # both zero: value 0, zero gradients (optax: NaN)
    val, grads = jax_value_and_grads(jaxloss.cosine_similarity, (zero, zero), (0, 1))
    assert float(val) == 0.0 and all(np.all(g == 0) for g in grads)
    assert np.isnan(optax.losses.cosine_similarity(jnp.asarray(zero), jnp.asarray(zero)))

    # a batch containing a zero vector: the other pairs are unaffected, everything finite
    x1, x2 = vectors(dtype, seed=8)
    x1[2] = 0.0
    value, grads = jax_value_and_grads(jaxloss.cosine_embedding, (x1, x2, signs(2, dtype=dtype)), (0, 1), margin=0.1)
    assert all_finite(value) and all_finite(grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_against_pytorch(dtype):
    """torch cosine_embedding_loss (margin 0.2), mean value and gradients; labels {0, 1} equal {-1, 1}."""
    x1, x2 = vectors(dtype, seed=11)
    y = signs(12, dtype=dtype)
    ref_v, ref_g = torch_value_and_grads(
        lambda a, b, t: F.cosine_embedding_loss(a, b, t, margin=0.2), (x1, x2, y), (0, 1)
    )
    check(jaxloss.cosine_embedding, ref_v, ref_g, (x1, x2, y), dtype, (0, 1), margin=0.2)
    ref_none = F.cosine_embedding_loss(
        torch.tensor(x1), torch.tensor(x2), torch.tensor(y), margin=-0.3, reduction="none"
    ).numpy()
    none = jitted(jaxloss.cosine_embedding, margin=-0.3, reduction="none")
    assert_close(none(x1, x2, y), ref_none, dtype)
    assert_close(none(x1, x2, (y > 0).astype(np.int32)), ref_none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_margin_ranking_against_pytorch(dtype):
    """torch margin_ranking_loss (margin 0.3), mean value and gradients w.r.t. both scores, and "none"."""
    x1, x2 = vectors(dtype, seed=13, shape=(B, 3))
    y = signs(14, shape=(B, 3), dtype=dtype)
    ref_v, ref_g = torch_value_and_grads(
        lambda a, b, t: F.margin_ranking_loss(a, b, t, margin=0.3), (x1, x2, y), (0, 1)
    )
    check(jaxloss.margin_ranking, ref_v, ref_g, (x1, x2, y), dtype, (0, 1), margin=0.3)
    ref_none = F.margin_ranking_loss(torch.tensor(x1), torch.tensor(x2), torch.tensor(y), reduction="none").numpy()
    assert_close(jitted(jaxloss.margin_ranking, reduction="none")(x1, x2, y), ref_none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hinge_embedding_against_pytorch(dtype):
    """torch hinge_embedding_loss (margin 1.5), mean value and gradient, and "sum"."""
    x = np.random.default_rng(15).uniform(-0.5, 2.5, size=(B, 3)).astype(dtype)
    y = signs(16, shape=(B, 3), dtype=dtype)
    for reduction in ("mean", "sum"):
        ref_v, ref_g = torch_value_and_grads(
            lambda a, t: F.hinge_embedding_loss(a, t, margin=1.5, reduction=reduction), (x, y)
        )
        check(jaxloss.hinge_embedding, ref_v, ref_g, (x, y), dtype, margin=1.5, reduction=reduction)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p,swap", [(1.0, False), (2.0, False), (3.0, False), (2.0, True), (1.0, True)])
def test_triplet_margin_against_pytorch(p, swap, dtype):
    """torch triplet_margin_loss (eps=1e-6 added to the difference) for p = 1, 2, 3 and swap=True."""
    a, pos, neg = vectors(dtype, seed=17, n=3)
    pos = a + 0.5 * (pos - a)  # a mix of active and inactive hinges
    kw = dict(margin=0.7, p=p, eps=1e-6, swap=swap)
    ref_v, ref_g = torch_value_and_grads(lambda x, y, z: F.triplet_margin_loss(x, y, z, **kw), (a, pos, neg), (0, 1, 2))
    check(jaxloss.triplet_margin, ref_v, ref_g, (a, pos, neg), dtype, (0, 1, 2), **kw)
    ref_none = F.triplet_margin_loss(*map(torch.tensor, (a, pos, neg)), reduction="none", **kw).numpy()
    assert_close(jitted(jaxloss.triplet_margin, reduction="none", **kw)(a, pos, neg), ref_none, dtype)


def test_triplet_margin_errors():
    a, pos, neg = vectors(np.float32, n=3)
    with pytest.raises(ValueError, match="p must be a Python number > 0"):
        jaxloss.triplet_margin(a, pos, neg, p=0.0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        jaxloss.triplet_margin(a, pos, neg, margin=-1.0)
    with pytest.raises(ValueError, match=r"\(6, 3\)"):
        jaxloss.triplet_margin(a, pos, neg[:, :3])


# ----------------------------------------------------------------------------------------- contrastive


def contrastive_reference(x1, x2, y, margin):
    """Hadsell, Chopra & LeCun (CVPR 2006), float64 NumPy: y d^2 + (1 - y) max(0, m - d)^2, y=1 similar
    (the paper's form times 2, labels flipped). Returns the mean and its analytic gradients."""
    x1, x2, y = (np.asarray(v, np.float64) for v in (x1, x2, y))
    diff = x1 - x2
    d = np.sqrt(np.sum(diff**2, -1))
    hinge = np.maximum(margin - d, 0.0)
    loss = y * d**2 + (1 - y) * hinge**2
    n = loss.size
    unit = diff / np.where(d > 0, d, 1.0)[:, None]
    g1 = (2 * y[:, None] * diff - 2 * ((1 - y) * hinge)[:, None] * unit) / n
    return loss.mean(), [g1, -g1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_contrastive_against_hadsell_2006_numpy(dtype):
    """Contrastive loss vs the float64 NumPy formula of Hadsell, Chopra & LeCun 2006 (values, gradients)."""
    x1, x2 = vectors(dtype, seed=19)
    y = np.array([1, 0, 0, 1, 0, 0], dtype)
    ref_v, ref_g = contrastive_reference(x1, x2, y, 2.5)
    check(jaxloss.contrastive, ref_v, ref_g, (x1, x2, y), dtype, (0, 1), margin=2.5)
    # soft labels interpolate linearly
    ys = np.linspace(0, 1, B).astype(dtype)
    ref_v, ref_g = contrastive_reference(x1, x2, ys, 2.5)
    check(jaxloss.contrastive, ref_v, ref_g, (x1, x2, ys), dtype, (0, 1), margin=2.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_contrastive_finite_gradient_at_zero_distance(dtype):
    """d = 0: value m^2 for a dissimilar pair and 0 for a similar one; the gradient is finite (0)."""
    x = vectors(dtype, seed=21, shape=(2, D))[0]
    y = np.array([1.0, 0.0], dtype)
    assert_close(jitted(jaxloss.contrastive, margin=1.5, reduction="none")(x, x.copy(), y), [0.0, 1.5**2], dtype)
    value, grads = jit_value_and_grads(lambda a, b: jaxloss.contrastive(a, b, y, margin=1.5), (x, x.copy()), (0, 1))
    assert all_finite(grads) and all(np.all(g == 0) for g in grads)


# ----------------------------------------------------------------------------------------- NT-Xent


def ntxent_inputs(dtype, seed=23, groups=None, n=6, d=3):
    rng = np.random.default_rng(seed)
    shape = (n, d) if groups is None else (groups, n, d)
    e = rng.normal(size=shape).astype(dtype)
    lab = np.repeat(np.arange(n // 2), 2)
    y = rng.permutation(lab) if groups is None else np.stack([rng.permutation(lab) for _ in range(groups)])
    return e, y


@pytest.mark.parametrize("dtype", DTYPES)
def test_ntxent_against_optax(dtype):
    """optax.ntxent on one [N, D] batch (pairs and a triple of positives): value and gradient."""
    e, y = ntxent_inputs(dtype)
    y[0] = y[2]  # one class of three (uneven positives), one singleton
    t = 0.07 if dtype == np.float32 else 0.5  # optax's default temperature, and a milder one
    ref_v, ref_g = jit_value_and_grads(lambda x: optax.ntxent(x, jnp.asarray(y), temperature=t), (e,))
    check(
        jaxloss.ntxent,
        ref_v,
        ref_g,
        (e,),
        dtype,
        (0,),
        rtol=5e-5 if dtype == np.float32 else None,
        labels=y,
        temperature=t,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_ntxent_groups_against_optax(dtype):
    """[G, N, D]: reduction="none" gives optax.ntxent of each group; the mean is their mean (and vmap)."""
    e, y = ntxent_inputs(dtype, seed=24, groups=3)
    ref = np.asarray(jax.jit(jax.vmap(lambda a, b: optax.ntxent(a, b, temperature=0.2)))(e, y))
    rtol = 5e-5 if dtype == np.float32 else None
    assert_close(jitted(jaxloss.ntxent, temperature=0.2, reduction="none")(e, y), ref, dtype, rtol=rtol)
    ref_v, ref_g = jit_value_and_grads(
        lambda x: jnp.mean(jax.vmap(lambda a, b: optax.ntxent(a, b, temperature=0.2))(x, jnp.asarray(y))), (e,)
    )
    check(
        jaxloss.ntxent,
        ref_v,
        ref_g,
        (e,),
        dtype,
        (0,),
        rtol=5e-5 if dtype == np.float32 else None,
        labels=y,
        temperature=0.2,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_ntxent_item_mask_equals_slicing(dtype):
    """An item mask [G, N] removes embeddings as if sliced out of their group (NaN padding included)."""
    e, y = ntxent_inputs(dtype, seed=25, groups=2, n=8)
    keep = np.ones((2, 8), bool)
    keep[0, [1, 6]] = False
    keep[1, [3]] = False
    poisoned = np.where(keep[..., None], e, np.nan).astype(dtype)
    none = jitted(jaxloss.ntxent, temperature=0.3, reduction="none")(poisoned, y, where=keep)
    v, (g,) = jit_value_and_grads(lambda x: jaxloss.ntxent(x, y, where=keep, temperature=0.3), (poisoned,))
    assert all_finite(g) and np.all(g[~keep] == 0)
    sliced = []
    for k in range(2):
        vk, (gk,) = jit_value_and_grads(lambda x: jaxloss.ntxent(x, y[k][keep[k]], temperature=0.3), (e[k][keep[k]],))
        sliced.append(vk)
        assert_close(g[k][keep[k]], gk / 2, dtype, rtol=1e-5, atol=1e-6)
    assert_close(none, sliced, dtype, rtol=1e-5)
    assert_close(v, np.mean(sliced), dtype, rtol=1e-5)


def test_ntxent_group_without_positive_pairs_is_left_out():
    """A group with no positive pair has no loss term: 0, excluded from the mean (optax gives NaN)."""
    e, y = ntxent_inputs(np.float64, seed=26, groups=2)
    y[1] = np.arange(6)
    assert np.isnan(optax.ntxent(jnp.asarray(e[1]), jnp.asarray(y[1])))
    none = jitted(jaxloss.ntxent, reduction="none")(e, y)
    assert float(none[1]) == 0.0
    value, grads = jit_value_and_grads(lambda x: jaxloss.ntxent(x, y), (e,))
    assert_close(value, none[0], np.float64)
    assert_close(value, optax.ntxent(jnp.asarray(e[0]), jnp.asarray(y[0])), np.float64)
    assert all_finite(grads)


def test_ntxent_errors():
    e, y = ntxent_inputs(np.float32, groups=2)
    with pytest.raises(ValueError, match=r"labels\.shape=\(2, 5\)"):
        jaxloss.ntxent(e, y[:, :5])
    with pytest.raises(TypeError, match="labels must be an integer array"):
        jaxloss.ntxent(e, y.astype(np.float32))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        jaxloss.ntxent(e, y, temperature=0.0)
    with pytest.raises(ValueError, match=r"embeddings must have shape \[\.\.\., N, D\]"):
        jaxloss.ntxent(e[0, 0], y[0, 0])


# ----------------------------------------------------------------------------------------- Circle


def circle_inputs(dtype, seed=27, groups=None, n=6, d=3):
    e, y = ntxent_inputs(np.float64, seed=seed, groups=groups, n=n, d=d)
    return (e / np.linalg.norm(e, axis=-1, keepdims=True)).astype(dtype), y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("remove_diagonal", [True, False])
def test_circle_against_keras(remove_diagonal, dtype):
    """keras.losses.circle (Keras 3, JAX backend): per-anchor values, mean value and gradient."""
    e, y = circle_inputs(dtype)
    kw = dict(gamma=20.0, margin=0.3, remove_diagonal=remove_diagonal)
    ref_none = np.asarray(jax.jit(lambda x: keras.losses.circle(y, x, **kw))(e))
    assert_close(
        jitted(jaxloss.circle, reduction="none", **kw)(e, y),
        ref_none,
        dtype,
        rtol=5e-5 if dtype == np.float32 else None,
    )
    ref_v, ref_g = jit_value_and_grads(lambda x: jnp.mean(keras.losses.circle(y, x, **kw)), (e,))
    check(jaxloss.circle, ref_v, ref_g, (e,), dtype, (0,), rtol=5e-5 if dtype == np.float32 else None, labels=y, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_circle_mean_matches_keras_circle_class(dtype):
    """keras.losses.Circle()'s mean leaves out anchors without a positive (loss 0); so does jaxloss."""
    e, _ = circle_inputs(dtype, seed=28, n=8)
    e, y = e[:7], np.array([0, 0, 1, 1, 2, 2, 3])  # anchor 6 has no positive
    ref = float(keras.losses.Circle(gamma=80.0, margin=0.4)(y, e))
    ref_none = np.asarray(keras.losses.circle(y, e))
    assert ref_none[6] == 0.0
    none = jitted(jaxloss.circle, reduction="none")(e, y)
    assert float(none[6]) == 0.0
    value, grads = jit_value_and_grads(lambda x: jaxloss.circle(x, y), (e,))
    assert_close(value, ref, dtype, rtol=1e-4 if dtype == np.float32 else 1e-6)
    assert all_finite(grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_circle_item_mask_equals_slicing(dtype):
    """where [G, N] removes embeddings as anchors and as positives/negatives, as if sliced out."""
    e, y = circle_inputs(dtype, seed=29, groups=2, n=8)
    keep = np.ones((2, 8), bool)
    keep[0, [2]] = False
    keep[1, [0, 5]] = False
    poisoned = np.where(keep[..., None], e, np.nan).astype(dtype)
    none = np.asarray(jitted(jaxloss.circle, gamma=10.0, reduction="none")(poisoned, y, where=keep))
    _, (g,) = jit_value_and_grads(lambda x: jaxloss.circle(x, y, where=keep, gamma=10.0, reduction="sum"), (poisoned,))
    assert all_finite(none) and all_finite(g) and np.all(none[~keep] == 0) and np.all(g[~keep] == 0)
    for k in range(2):
        ek, yk = e[k][keep[k]], y[k][keep[k]]
        assert_close(
            none[k][keep[k]], jitted(jaxloss.circle, gamma=10.0, reduction="none")(ek, yk), dtype, rtol=1e-5, atol=1e-6
        )
        _, (gk,) = jit_value_and_grads(lambda x: jaxloss.circle(x, yk, gamma=10.0, reduction="sum"), (ek,))
        assert_close(g[k][keep[k]], gk, dtype, rtol=1e-5, atol=1e-6)
