"""Tests of jaxloss.fenchel_young (Blondel, Martins and Niculae 2020).

References: optax.losses.make_fenchel_young_loss (the same construction without Omega(targets)), optax's
softmax_cross_entropy_with_integer_labels and multiclass_sparsemax_loss, jaxloss.cross_entropy, and float64
NumPy formulas (softmax, sparsemax by sorting, the entropy and Gini regularisers). The contract checks of
tests/harness.py run on the instances here, since the constructor's losses have no public names.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from harness import CHECKS, DTYPES, LossCase, applies, assert_close, check_reference, jax_value_and_grads

C = 5
FY_SOFTMAX = jaxloss.fenchel_young("softmax")
FY_SPARSEMAX = jaxloss.fenchel_young("sparsemax")
FY_LSE = jaxloss.fenchel_young(jax.nn.logsumexp)


def scores_labels(rng, dtype, batch):
    return (rng.normal(size=(batch, C)) * 2).astype(dtype), rng.integers(0, C, size=batch)


def scores_probs(rng, dtype, batch):
    s = (rng.normal(size=(batch, C)) * 2).astype(dtype)
    y = np_sparsemax(rng.normal(size=(batch, C)) * 2)  # distributions with exact zeros
    return s, y.astype(dtype)


def np_softmax(s):
    s = np.asarray(s, np.float64)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_sparsemax(s):
    """float64 NumPy sparsemax (Martins & Astudillo 2016, Algorithm 1: sort, support, threshold)."""
    s = np.asarray(s, np.float64)
    z = -np.sort(-s, axis=-1)
    k = np.arange(1, s.shape[-1] + 1)
    cs = np.cumsum(z, axis=-1)
    support = (1 + k * z > cs).sum(-1, keepdims=True)
    tau = (np.take_along_axis(cs, support - 1, -1) - 1) / support
    return np.maximum(s - tau, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_instance_is_cross_entropy(dtype):
    """Integer labels: jaxloss.cross_entropy and optax's softmax_cross_entropy_with_integer_labels (values and
    gradients). Probability targets: optax.make_fenchel_young_loss(logsumexp) + sum y log y (float64 NumPy),
    i.e. KL(y || softmax(s)), gradient softmax(s) - y (NumPy)."""
    rng = np.random.default_rng(0)
    s, y = scores_labels(rng, dtype, 6)
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(a, y)), (s,))
    check_reference(lambda a: FY_SOFTMAX(a, y), ref_v, ref_g, (s,), dtype)
    assert_close(FY_SOFTMAX(s, y, reduction="none"), jaxloss.cross_entropy(s, y, reduction="none"), dtype)
    _, p = scores_probs(rng, dtype, 6)
    p64 = p.astype(np.float64)
    neg_h = np.sum(np.where(p64 > 0, p64 * np.log(np.where(p64 > 0, p64, 1)), 0), axis=-1)
    optax_fy = optax.losses.make_fenchel_young_loss(jax.scipy.special.logsumexp)
    want = np.asarray(optax_fy(jnp.asarray(s), jnp.asarray(p)), np.float64) + neg_h
    check_reference(lambda a: FY_SOFTMAX(a, p, reduction="sum"), want.sum(), [np_softmax(s) - p64], (s,), dtype)
    kl = np.sum(np.where(p64 > 0, p64 * (np.log(np.where(p64 > 0, p64, 1)) - np.log(np_softmax(s))), 0), axis=-1)
    assert_close(FY_SOFTMAX(s, p, reduction="none"), kl, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparsemax_instance_against_optax_and_numpy(dtype):
    """Integer labels: optax.losses.multiclass_sparsemax_loss (run in float64) and the float64 NumPy formula with
    one-hot targets (values, gradients sparsemax(s) - onehot); equal to jaxloss.multiclass_sparsemax.
    Probability targets (sparse): float64 NumPy max_Omega(s) - <s, y> + Omega(y) with p = sparsemax(s),
    max_Omega = <p, s> - (|p|^2 - 1)/2, Omega(y) = (|y|^2 - 1)/2; gradient sparsemax(s) - y."""
    rng = np.random.default_rng(1)
    s, y = scores_labels(rng, dtype, 6)
    # optax in float64 (under x64 its simplex projection's JVP mixes dtypes on float32 inputs)
    ref_v, ref_g = jax_value_and_grads(
        lambda a: jnp.mean(optax.losses.multiclass_sparsemax_loss(a, y)), (s.astype(np.float64),)
    )
    check_reference(lambda a: FY_SPARSEMAX(a, y), ref_v, ref_g, (s,), dtype)
    p, s64 = np_sparsemax(s), s.astype(np.float64)
    want = np.sum(p * s64, -1) - 0.5 * (np.sum(p * p, -1) - 1) - s64[np.arange(6), y]
    check_reference(lambda a: FY_SPARSEMAX(a, y, reduction="sum"), want.sum(), [p - np.eye(C)[y]], (s,), dtype)
    assert_close(FY_SPARSEMAX(s, y, reduction="none"), jaxloss.multiclass_sparsemax(s, y, reduction="none"), dtype)
    _, q = scores_probs(rng, dtype, 6)
    s64, q64 = s.astype(np.float64), q.astype(np.float64)
    p = np_sparsemax(s64)
    want = (
        np.sum(p * s64, -1) - 0.5 * (np.sum(p * p, -1) - 1) - np.sum(s64 * q64, -1) + 0.5 * (np.sum(q64 * q64, -1) - 1)
    )
    assert np.all(want >= -1e-12)
    check_reference(lambda a: FY_SPARSEMAX(a, q, reduction="sum"), want.sum(), [p - q64], (s,), dtype)
    # zero exactly at a perfect prediction (targets = sparsemax(scores))
    assert_close(FY_SPARSEMAX(s64, p, reduction="none"), np.zeros(6), np.float64, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_callable_max_fn_is_optax_make_fenchel_young_loss(dtype):
    """A callable max_fn without a regulariser is optax.losses.make_fenchel_young_loss(max_fn): values and
    gradients, probability and integer (one-hot for optax) targets, the class axis moved (axis=1); with the
    Shannon regulariser it equals the built-in 'softmax' instance."""
    rng = np.random.default_rng(2)
    s, p = scores_probs(rng, dtype, 4)
    optax_fy = optax.losses.make_fenchel_young_loss(jax.scipy.special.logsumexp)
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.sum(optax_fy(a, jnp.asarray(p))), (s,))
    check_reference(lambda a: FY_LSE(a, p, reduction="sum"), ref_v, ref_g, (s,), dtype)
    _, y = scores_labels(rng, dtype, 4)
    onehot = np.eye(C, dtype=dtype)[y]
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.mean(optax_fy(a, jnp.asarray(onehot))), (s,))
    check_reference(lambda a: FY_LSE(a, y), ref_v, ref_g, (s,), dtype)
    assert_close(FY_LSE(s.T, p.T, axis=0, reduction="none"), optax_fy(jnp.asarray(s), jnp.asarray(p)), dtype)
    shannon = jaxloss.fenchel_young(jax.nn.logsumexp, regularizer=lambda q: jnp.sum(jax.scipy.special.xlogy(q, q)))
    assert_close(shannon(s, p, reduction="none"), FY_SOFTMAX(s, p, reduction="none"), dtype)
    assert_close(shannon(s, y, reduction="none"), FY_SOFTMAX(s, y, reduction="none"), dtype)


def test_errors_and_names():
    with pytest.raises(ValueError, match="max_fn must be one of 'softmax', 'sparsemax'"):
        jaxloss.fenchel_young("entmax")
    with pytest.raises(ValueError, match="regularizer is built into"):
        jaxloss.fenchel_young("softmax", regularizer=lambda q: 0.0)
    with pytest.raises(TypeError, match="max_fn must be"):
        jaxloss.fenchel_young(3.0)
    assert FY_SPARSEMAX.__name__ == "fenchel_young_sparsemax"
    s, y = scores_labels(np.random.default_rng(3), np.float32, 2)
    with pytest.raises(ValueError, match=r"targets.shape=\(2, 4\)"):
        FY_SOFTMAX(s, np.ones((2, 4), np.float32))
    out = FY_SOFTMAX(s, np.array([0, C]), reduction="none")
    assert np.isnan(out[1]) and np.isfinite(out[0])
    assert "fenchel_young" in jaxloss.__all__


def scores_label_rows(rng, dtype, batch):
    """Two positions per example (labels [B, 2]): the harness injects out-of-domain labels into example 1's
    first entry, which a 1-D label array (a NumPy scalar per example) would not receive."""
    return (rng.normal(size=(batch, 2, C)) * 2).astype(dtype), rng.integers(0, C, size=(batch, 2))


CONTRACT_CASES = [
    LossCase("fenchel_young('softmax')", FY_SOFTMAX, scores_label_rows),
    LossCase("fenchel_young('sparsemax')", FY_SPARSEMAX, scores_probs),
    LossCase("fenchel_young(logsumexp)", FY_LSE, scores_probs),
]
PAIRS = [(case, check) for case in CONTRACT_CASES for check in sorted(CHECKS) if applies(case, check)]


@pytest.mark.parametrize("case,check", PAIRS, ids=[f"{c}-{k}" for c, k in PAIRS])
def test_contract(case, check):
    CHECKS[check](case)
