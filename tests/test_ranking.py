"""Reference tests for the ranking losses: optax, and float64 NumPy formulas naming their papers.

Each test names its reference. Values and gradients are checked in float32 and float64 on small seeded
random lists (graded labels with ties); item masks are checked to equal slicing the items out.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from harness import DTYPES, all_finite, assert_close, jitted
from harness import check_reference as check
from harness import jax_value_and_grads as jit_value_and_grads

B, L = 4, 6


def lists(dtype, seed=0, b=B, n=L):
    rng = np.random.default_rng(seed)
    s = (rng.normal(size=(b, n)) * 1.5).astype(dtype)
    y = rng.integers(0, 4, size=(b, n))
    y[:, 0], y[:, 1] = 3, 0  # every list has ordered pairs
    return s, np.stack([rng.permutation(row) for row in y])


def logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


# ----------------------------------------------------------------------------------------- BPR


@pytest.mark.parametrize("dtype", DTYPES)
def test_bpr_against_rendle_2009_numpy(dtype):
    """BPR (Rendle et al., UAI 2009), float64 NumPy: -log sigmoid(s+ - s-), mean value and gradients."""
    rng = np.random.default_rng(1)
    sp, sn = (rng.normal(size=(B, 3)) * 3).astype(dtype), (rng.normal(size=(B, 3)) * 3).astype(dtype)
    d = sp.astype(np.float64) - sn.astype(np.float64)
    per = np.logaddexp(0.0, -d)
    sig_neg = 1.0 / (1.0 + np.exp(d))
    check(jaxloss.bpr, per.mean(), [-sig_neg / d.size, sig_neg / d.size], (sp, sn), dtype, (0, 1))
    assert_close(jitted(jaxloss.bpr, reduction="none")(sp, sn), per, dtype)


def test_bpr_extreme_scores_are_exact():
    """softplus form: a gap of -1e4 costs 1e4 exactly (no overflow), a gap of +1e4 costs 0."""
    out = jaxloss.bpr(np.array([-5e3, 5e3], np.float32), np.array([5e3, -5e3], np.float32), reduction="none")
    assert_close(out, [1e4, 0.0], np.float32)


# ----------------------------------------------------------------------------------------- pairwise


def pairwise_reference(s, y, pair_loss, pair_grad, valid=None):
    """Double loop in float64 NumPy over pairs (i, j) of valid items with y_i > y_j, averaged per list.

    Returns (per-list losses, mean over lists with pairs, gradient of that mean w.r.t. the scores).
    """
    s = np.asarray(s, np.float64)
    valid = np.ones(s.shape, bool) if valid is None else valid
    per, grad, counted = np.zeros(s.shape[0]), np.zeros_like(s), []
    for b in range(s.shape[0]):
        pairs = [
            (i, j)
            for i in range(s.shape[1])
            for j in range(s.shape[1])
            if valid[b, i] and valid[b, j] and y[b, i] > y[b, j]
        ]
        if not pairs:
            continue
        counted.append(b)
        for i, j in pairs:
            d = s[b, i] - s[b, j]
            per[b] += pair_loss(d) / len(pairs)
            grad[b, i] += pair_grad(d) / len(pairs)
            grad[b, j] -= pair_grad(d) / len(pairs)
    return per, per[counted].mean(), grad / len(counted)


LOGISTIC = (lambda d: np.logaddexp(0.0, -d), lambda d: -1.0 / (1.0 + np.exp(d)))


def hinge(margin):
    return (lambda d: max(0.0, margin - d), lambda d: -1.0 if margin - d > 0 else 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pairwise_logistic_against_numpy_double_loop(dtype):
    """RankNet / TF-Ranking PairwiseLogisticLoss pair term, per-list mean over pairs (float64 double loop)."""
    s, y = lists(dtype, seed=2)
    per, mean, grad = pairwise_reference(s, y, *LOGISTIC)
    check(jaxloss.pairwise_logistic, mean, [grad], (s,), dtype, labels=y)
    assert_close(jitted(jaxloss.pairwise_logistic, reduction="none")(s, y), per, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pairwise_hinge_against_numpy_double_loop(dtype):
    """RankSVM / TF-Ranking PairwiseHingeLoss pair term (margin 1 and 0.4), per-list mean (float64 loop)."""
    s, y = lists(dtype, seed=3)
    for margin in (1.0, 0.4):
        per, mean, grad = pairwise_reference(s, y, *hinge(margin))
        check(jaxloss.pairwise_hinge, mean, [grad], (s,), dtype, labels=y, margin=margin)
        assert_close(jitted(jaxloss.pairwise_hinge, reduction="none", margin=margin)(s, y), per, dtype)


def test_pairwise_list_without_pairs_is_left_out_of_the_mean():
    """A list with all labels equal has no pair: loss 0, not counted in the mean (double loop agrees)."""
    s, y = lists(np.float64, seed=4)
    y[2] = 1
    per, mean, _ = pairwise_reference(s, y, *LOGISTIC)
    none = jaxloss.pairwise_logistic(s, y, reduction="none")
    assert float(none[2]) == 0.0
    assert_close(jaxloss.pairwise_logistic(s, y), mean, np.float64)
    assert_close(jaxloss.pairwise_logistic(s, y), np.delete(per, 2).mean(), np.float64)


# ----------------------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("dtype", DTYPES)
def test_ranking_softmax_against_optax(dtype):
    """optax.losses.ranking_softmax_loss: mean value and gradients (scores and labels), and "none"."""
    s, y = lists(dtype, seed=5)
    yf = (y / 3.0).astype(dtype)
    ref_v, ref_g = jit_value_and_grads(lambda a, b: optax.losses.ranking_softmax_loss(a, b), (s, yf), (0, 1))
    check(jaxloss.ranking_softmax, ref_v, ref_g, (s, yf), dtype, (0, 1))
    ref_none = optax.losses.ranking_softmax_loss(jnp.asarray(s), jnp.asarray(y, s.dtype), reduce_fn=None)
    assert_close(jitted(jaxloss.ranking_softmax, reduction="none")(s, y), ref_none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ranking_softmax_item_mask_against_optax(dtype):
    """optax ranking_softmax_loss(where=item mask): padded items leave the softmax; a fully padded list is
    left out of the mean."""
    s, y = lists(dtype, seed=6)
    keep = np.random.default_rng(7).uniform(size=(B, L)) > 0.3
    keep[3] = False
    keep[0, :2] = True
    ref_none = optax.losses.ranking_softmax_loss(jnp.asarray(s), jnp.asarray(y, s.dtype), where=keep, reduce_fn=None)
    assert_close(
        jitted(jaxloss.ranking_softmax, reduction="none")(s, y, where=keep)[:3], np.asarray(ref_none)[:3], dtype
    )
    ref_mean = optax.losses.ranking_softmax_loss(jnp.asarray(s), jnp.asarray(y, s.dtype), where=keep)
    assert_close(jitted(jaxloss.ranking_softmax)(s, y, where=keep), ref_mean, dtype)


# ----------------------------------------------------------------------------------------- ListMLE


def listmle_reference(s, y, valid=None):
    """ListMLE (Xia et al., ICML 2008), float64 NumPy double loop: the Plackett–Luce negative
    log-likelihood of the valid items ordered by label descending, ties by position (stable sort).

    Returns (per-list losses, mean over lists, gradient of the mean w.r.t. the scores).
    """
    s = np.asarray(s, np.float64)
    valid = np.ones(s.shape, bool) if valid is None else valid
    per, grad = np.zeros(s.shape[0]), np.zeros_like(s)
    for b in range(s.shape[0]):
        items = np.flatnonzero(valid[b])
        order = items[np.argsort(-np.asarray(y[b])[items], kind="stable")]
        for k in range(len(order)):
            tail = order[k:]
            per[b] += logsumexp(s[b, tail]) - s[b, order[k]]
            p = np.exp(s[b, tail] - logsumexp(s[b, tail]))
            grad[b, tail] += p
            grad[b, order[k]] -= 1.0
    return per, per.mean(), grad / s.shape[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_listmle_against_xia_2008_numpy(dtype):
    """ListMLE vs the float64 NumPy Plackett–Luce double loop (graded labels with ties), value and gradient."""
    s, y = lists(dtype, seed=8)
    per, mean, grad = listmle_reference(s, y)
    check(jaxloss.listmle, mean, [grad], (s,), dtype, labels=y)
    assert_close(jitted(jaxloss.listmle, reduction="none")(s, y), per, dtype)


def test_listmle_ties_keep_list_order():
    """Equal labels: the earlier item is ranked higher (a stable sort), so swapping two tied items'
    scores changes the loss; the documented permutation is (0, 1, 2) for labels [1, 1, 0]."""
    s = np.array([0.3, -1.2, 2.0])
    by_hand = (logsumexp(s) - s[0]) + (logsumexp(s[1:]) - s[1]) + 0.0
    assert_close(jaxloss.listmle(s, np.array([1, 1, 0])), by_hand, np.float64)
    swapped = (logsumexp(s) - s[1]) + (logsumexp(s[[0, 2]]) - s[0])
    assert_close(jaxloss.listmle(s, np.array([1, 2, 0])), swapped, np.float64)


def test_listmle_extreme_scores():
    """Scores of +-1e4 in float32: finite, and equal to the float64 reference."""
    s = np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, 1e4, 1e4, -1e4]], np.float32)
    y = np.array([[0, 3, 1, 2], [2, 2, 0, 1]])
    per, mean, grad = listmle_reference(s, y)
    value, (g,) = jit_value_and_grads(lambda a: jaxloss.listmle(a, y), (s,))
    assert all_finite(value) and all_finite(g)
    assert_close(value, mean, np.float32)
    assert_close(g, grad, np.float32)


# ----------------------------------------------------------------------------------------- item masks

LIST_LOSSES = {
    "pairwise_logistic": jaxloss.pairwise_logistic,
    "pairwise_hinge": jaxloss.pairwise_hinge,
    "ranking_softmax": jaxloss.ranking_softmax,
    "listmle": jaxloss.listmle,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LIST_LOSSES))
def test_item_mask_equals_slicing(name, dtype):
    """where [B, L] removes padded items from their list exactly as slicing them out: per-list values
    and gradients agree, masked items (NaN padding) get zero gradient, fully padded lists are masked."""
    fn = LIST_LOSSES[name]
    s, y = lists(dtype, seed=9)
    keep = np.ones((B, L), bool)
    keep[0, [1, 4]] = False
    keep[1, [5]] = False
    keep[3] = False  # a fully padded list
    keep[0, np.flatnonzero(y[0] == 3)[0]] = True
    poisoned = np.where(keep, s, np.nan).astype(dtype)
    none = np.asarray(jitted(fn, reduction="none")(poisoned, y, where=keep))
    _, (g,) = jit_value_and_grads(lambda a: fn(a, y, where=keep, reduction="sum"), (poisoned,))
    assert all_finite(none) and all_finite(g)
    assert np.all(g[~keep] == 0) and none[3] == 0.0
    sliced = []
    for b in range(3):
        sb, yb = s[b][keep[b]], y[b][keep[b]]
        vb, (gb,) = jit_value_and_grads(lambda a: fn(a, yb, reduction="sum"), (sb,))
        sliced.append(vb)
        assert_close(g[b][keep[b]], gb, dtype, rtol=1e-5, atol=1e-6)
    assert_close(none[:3], sliced, dtype, rtol=1e-5, atol=1e-6)
    # the mean is over the three lists left (the fully padded one is masked)
    assert_close(jitted(fn)(poisoned, y, where=keep), np.mean(sliced), dtype, rtol=1e-5, atol=1e-6)
    # a list mask of lower rank equals an item mask [B, 1]
    lst = np.array([True, False, True, True])
    assert_close(jitted(fn)(s, y, where=lst), jitted(fn)(s, y, where=lst[:, None]), dtype)


def test_list_mask_is_broadcast_over_leading_axes():
    """[G, B, L] lists: a list mask [G, B] and the reference double loop on the kept lists."""
    s, y = lists(np.float64, seed=10, b=6)
    s3, y3 = s.reshape(2, 3, L), y.reshape(2, 3, L)
    lst = np.array([[True, False, True], [True, True, False]])
    per, _, _ = listmle_reference(s, y)
    assert_close(jaxloss.listmle(s3, y3, where=lst), per[lst.reshape(-1)].mean(), np.float64)
    assert jaxloss.listmle(s3, y3, reduction="none").shape == (2, 3)


def test_errors():
    s, y = lists(np.float32)
    with pytest.raises(ValueError, match=r"labels\.shape=\(4, 5\)"):
        jaxloss.listmle(s, y[:, :5])
    with pytest.raises(ValueError, match="where with shape \\(3,\\) does not broadcast"):
        jaxloss.pairwise_logistic(s, y, where=np.ones(3, bool))
    with pytest.raises(ValueError, match="where with shape \\(4, 5\\) does not broadcast to the scores"):
        jaxloss.ranking_softmax(s, y, where=np.ones((4, 5), bool))
    with pytest.raises(TypeError, match="where must be a boolean mask"):
        jaxloss.ranking_softmax(s, y, where=np.ones((4, 6)))
    with pytest.raises(ValueError, match="at least one dimension"):
        jaxloss.listmle(np.float32(1.0), np.float32(1.0))
    with pytest.raises(ValueError, match="margin must be >= 0"):
        jaxloss.pairwise_hinge(s, y, margin=-0.5)
    with pytest.raises(TypeError, match="must be a floating-point array"):
        jaxloss.bpr(np.ones(3, np.int32), np.ones(3, np.float32))
