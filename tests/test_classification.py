"""Reference tests for the seed classification losses: PyTorch, optax, Keras 3 (JAX backend), NumPy.

Reference tests of the wider classification catalog (values AND gradients, float32 and float64).

References: PyTorch (soft_margin, multilabel_soft_margin, multilabel_margin); optax (poly1, perceptron,
multiclass_perceptron, sparsemax, multiclass_sparsemax, the last also against a float64 NumPy sparsemax); Keras 3 on the
JAX backend (generalized_cross_entropy, categorical_hinge); float64 NumPy formulas from the papers where a
library has no such variant (generalized cross-entropy with probability targets, extreme logits).
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

B, C = 7, 5


def logits_labels(dtype, seed=0, ignore=False):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(B, C)) * 2).astype(dtype)
    y = rng.integers(0, C, size=B)
    if ignore:
        y[[1, 4]] = -100
    return x, y


def class_weights(dtype):
    return np.random.default_rng(9).uniform(0.2, 2.0, size=C).astype(dtype)


# ---------------------------------------------------------------------------------------------- cross-entropy

CE_SETTINGS = [
    dict(),
    dict(weight=True),
    dict(ignore=True),
    dict(smoothing=0.15),
    dict(weight=True, ignore=True, smoothing=0.2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("setting", CE_SETTINGS, ids=lambda s: "-".join(s) or "plain")
def test_cross_entropy_int_labels_against_pytorch(setting, dtype):
    """torch.nn.functional.cross_entropy with weight / ignore_index / label_smoothing (mean and sum)."""
    x, y = logits_labels(dtype, ignore=setting.get("ignore", False))
    w = class_weights(dtype) if setting.get("weight") else None
    eps = setting.get("smoothing", 0.0)
    kw = dict(class_weights=w, label_smoothing=eps, ignore_index=-100 if setting.get("ignore") else None)
    for reduction in ("mean", "sum"):
        tfn = lambda a: F.cross_entropy(
            a,
            torch.tensor(y),
            weight=None if w is None else torch.tensor(w),
            ignore_index=-100,
            label_smoothing=eps,
            reduction=reduction,
        )
        ref_v, ref_g = torch_value_and_grads(tfn, (x,))
        check_reference(lambda a: jaxloss.cross_entropy(a, y, reduction=reduction, **kw), ref_v, ref_g, (x,), dtype)
    tnone = F.cross_entropy(
        torch.tensor(x),
        torch.tensor(y),
        weight=None if w is None else torch.tensor(w),
        ignore_index=-100,
        label_smoothing=eps,
        reduction="none",
    )
    assert_close(jaxloss.cross_entropy(x, y, reduction="none", **kw), tnone.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted,eps", [(False, 0.0), (True, 0.1)])
def test_cross_entropy_probability_targets_against_pytorch(weighted, eps, dtype):
    """torch cross_entropy with class-probability targets (gradients w.r.t. logits and targets)."""
    x, _ = logits_labels(dtype)
    t = np.random.default_rng(2).dirichlet(np.ones(C), size=B).astype(dtype)
    w = class_weights(dtype) if weighted else None
    tfn = lambda a, b: F.cross_entropy(a, b, weight=None if w is None else torch.tensor(w), label_smoothing=eps)
    ref_v, ref_g = torch_value_and_grads(tfn, (x, t), (0, 1))
    check_reference(jaxloss.cross_entropy, ref_v, ref_g, (x, t), dtype, (0, 1), class_weights=w, label_smoothing=eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_class_axis_against_pytorch(dtype):
    """axis=1 on [B, C, T] logits (PyTorch's layout for sequences), integer labels [B, T]."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, C, 4)).astype(dtype)
    y = rng.integers(0, C, size=(3, 4))
    ref_v, ref_g = torch_value_and_grads(lambda a: F.cross_entropy(a, torch.tensor(y)), (x,))
    check_reference(lambda a: jaxloss.cross_entropy(a, y, axis=1), ref_v, ref_g, (x,), dtype)
    assert jaxloss.cross_entropy(x, y, axis=1, reduction="none").shape == (3, 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_against_optax(dtype):
    """optax softmax_cross_entropy_with_integer_labels and softmax_cross_entropy (probabilities)."""
    x, y = logits_labels(dtype)
    ref = lambda a: optax.losses.softmax_cross_entropy_with_integer_labels(a, y).mean()
    ref_v, ref_g = jax_value_and_grads(ref, (x,))
    check_reference(lambda a: jaxloss.cross_entropy(a, y), ref_v, ref_g, (x,), dtype)
    t = np.random.default_rng(5).dirichlet(np.ones(C), size=B).astype(dtype)
    ref_v, ref_g = jax_value_and_grads(lambda a, b: optax.losses.softmax_cross_entropy(a, b).mean(), (x, t), (0, 1))
    check_reference(jaxloss.cross_entropy, ref_v, ref_g, (x, t), dtype, (0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_z_loss_float64_formula(dtype):
    """z_loss adds coef * logsumexp(x)^2 per example (float64 NumPy), values and gradients."""
    x, y = logits_labels(dtype)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64).sum(-1))
    ref = np.mean(lse - x64[np.arange(B), y] + 1e-2 * lse**2)
    sm = np.exp(x64 - lse[:, None])
    g = (sm - np.eye(C)[y] + 2e-2 * lse[:, None] * sm) / B
    check_reference(lambda a: jaxloss.cross_entropy(a, y, z_loss=1e-2), ref, [g], (x,), dtype)


def test_cross_entropy_extreme_logits_against_pytorch():
    """Logits ±1e4: finite, equal to PyTorch's (which is stable), finite gradients."""
    x = np.array([[1e4, -1e4, 0.0, 5.0, 1.0], [-1e4, -1e4, 1e4, 1e4, 0.0]], np.float32)
    y = np.array([1, 0])
    ref_v, ref_g = torch_value_and_grads(lambda a: F.cross_entropy(a, torch.tensor(y), label_smoothing=0.1), (x,))
    check_reference(lambda a: jaxloss.cross_entropy(a, y, label_smoothing=0.1), ref_v, ref_g, (x,), np.float32)


def test_cross_entropy_all_ignored_is_zero_with_zero_grads():
    """PyTorch gives NaN for a batch whose labels are all ignore_index; jaxloss gives 0 and zero gradients."""
    x, _ = logits_labels(np.float32)
    y = np.full(B, -100)
    assert np.isnan(F.cross_entropy(torch.tensor(x), torch.tensor(y), ignore_index=-100).item())
    v, (g,) = jax_value_and_grads(lambda a: jaxloss.cross_entropy(a, y, ignore_index=-100), (x,))
    assert float(v) == 0.0 and np.all(g == 0)


def test_integer_labels_out_of_range_give_nan_and_checked_mode_raises():
    x, y = logits_labels(np.float32)
    y = y.copy()
    y[2] = C  # out of range
    assert np.isnan(float(jaxloss.cross_entropy(x, y)))
    per = np.asarray(jaxloss.cross_entropy(x, y, reduction="none"))
    assert np.isnan(per[2]) and np.all(np.isfinite(np.delete(per, 2)))
    err, _ = jaxloss.checked(jaxloss.cross_entropy)(x, y)
    assert err.get() is not None and "must lie in [0, 5)" in err.get()
    err, _ = jax.jit(jaxloss.checked(jaxloss.nll))(x, y)  # under jit too
    with pytest.raises(Exception, match="must lie in"):
        err.throw()
    err, value = jaxloss.checked(jaxloss.cross_entropy)(x, np.where(y == C, -100, y), ignore_index=-100)
    assert err.get() is None and np.isfinite(float(value))


def test_label_errors():
    x, y = logits_labels(np.float32)
    with pytest.raises(TypeError, match="labels must be an integer array of class indices; got dtype float32"):
        jaxloss.nll(x, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"logits.shape=\(7, 5\) and labels.shape=\(6,\)"):
        jaxloss.cross_entropy(x, y[:6])
    with pytest.raises(ValueError, match=r"probability labels must have the shape of logits"):
        jaxloss.cross_entropy(x, np.ones((7, 4), np.float32))
    with pytest.raises(ValueError, match=r"class_weights must have shape \(5,\)"):
        jaxloss.cross_entropy(x, y, class_weights=np.ones(4, np.float32))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        jaxloss.cross_entropy(x, y, axis=2)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        jaxloss.cross_entropy(x, y, label_smoothing=1.5)


# ---------------------------------------------------------------------------------------------- nll


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_against_pytorch(dtype):
    """torch nll_loss with weight and ignore_index."""
    x, y = logits_labels(dtype, ignore=True)
    lp = (x - np.log(np.exp(x.astype(np.float64)).sum(-1, keepdims=True))).astype(dtype)
    w = class_weights(dtype)
    for reduction in ("mean", "sum"):
        tfn = lambda a: F.nll_loss(a, torch.tensor(y), weight=torch.tensor(w), ignore_index=-100, reduction=reduction)
        ref_v, ref_g = torch_value_and_grads(tfn, (lp,))
        check_reference(
            lambda a: jaxloss.nll(a, y, class_weights=w, ignore_index=-100, reduction=reduction),
            ref_v,
            ref_g,
            (lp,),
            dtype,
        )


# ---------------------------------------------------------------------------------------------- binary


def binary(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(6, 3)) * 2).astype(dtype), rng.integers(0, 2, size=(6, 3)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_against_pytorch(dtype):
    """torch binary_cross_entropy_with_logits with pos_weight (per class) — grads w.r.t. logits and targets."""
    x, y = binary(dtype)
    pw = np.array([0.5, 1.0, 3.0], dtype)
    tfn = lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=torch.tensor(pw))
    ref_v, ref_g = torch_value_and_grads(tfn, (x, y), (0, 1))
    check_reference(jaxloss.binary_cross_entropy, ref_v, ref_g, (x, y), dtype, (0, 1), pos_weight=pw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_probabilities_against_pytorch(dtype):
    """torch binary_cross_entropy on probabilities, including exactly 0 and 1 (PyTorch clamps log at -100)."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, size=(6, 3)).astype(dtype)
    y = rng.uniform(size=(6, 3)).astype(dtype)  # soft targets
    ref_v, ref_g = torch_value_and_grads(F.binary_cross_entropy, (p, y), (0, 1))
    check_reference(jaxloss.binary_cross_entropy, ref_v, ref_g, (p, y), dtype, (0, 1), from_logits=False)
    p_ext = np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype)
    y_ext = np.array([0.0, 1.0, 1.0, 0.0, 1.0], dtype)
    ref = F.binary_cross_entropy(torch.tensor(p_ext), torch.tensor(y_ext), reduction="none").numpy()
    assert_close(jaxloss.binary_cross_entropy(p_ext, y_ext, from_logits=False, reduction="none"), ref, dtype)
    _, grads = jax_value_and_grads(jaxloss.binary_cross_entropy, (p_ext, y_ext), (0, 1), from_logits=False)
    assert all_finite(grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_label_smoothing_and_optax(dtype):
    """optax.sigmoid_binary_cross_entropy on labels smoothed as y(1-eps) + eps/2 (optax.smooth_labels with 2 classes)."""
    x, y = binary(dtype)
    ref = lambda a: optax.losses.sigmoid_binary_cross_entropy(a, y * 0.8 + 0.1).mean()
    ref_v, ref_g = jax_value_and_grads(ref, (x,))
    check_reference(lambda a: jaxloss.binary_cross_entropy(a, y, label_smoothing=0.2), ref_v, ref_g, (x,), dtype)


def test_bce_int_labels_accepted():
    x, y = binary(np.float32)
    assert_close(jaxloss.binary_cross_entropy(x, y.astype(np.int32)), jaxloss.binary_cross_entropy(x, y), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,gamma", [(None, 2.0), (0.25, 2.0), (0.25, 0.5)])
def test_focal_against_optax(alpha, gamma, dtype):
    """optax.losses.sigmoid_focal_loss (elementwise), averaged: values and gradients."""
    x, y = binary(dtype)
    ref = lambda a: optax.losses.sigmoid_focal_loss(a, y, alpha=alpha, gamma=gamma).mean()
    ref_v, ref_g = jax_value_and_grads(ref, (x,))
    check_reference(
        lambda a: jaxloss.focal(a, y, alpha=alpha, gamma=gamma),
        ref_v,
        ref_g,
        (x,),
        dtype,
        rtol=1e-4 if dtype == np.float32 else None,
    )


def test_focal_gamma_zero_is_bce_and_extremes_are_finite():
    x, y = binary(np.float64)
    assert_close(jaxloss.focal(x, y, gamma=0.0), jaxloss.binary_cross_entropy(x, y), np.float64)
    xe = np.array([1e4, -1e4, 1e4, -1e4], np.float32)
    ye = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    _, (g,) = jax_value_and_grads(lambda a: jaxloss.focal(a, ye, gamma=0.5), (xe,))
    assert all_finite(g)
    v_none = np.asarray(jaxloss.focal(xe, ye, gamma=0.5, reduction="none"))
    assert_close(v_none, [0.0, 0.0, 1e4, 1e4], np.float32)  # float64 formula: (1-p_t)^g * |x| = |x| when wrong


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_focal_against_keras(dtype):
    """Keras 3 categorical_focal_crossentropy(from_logits=True) on the JAX backend; int labels = its one-hot."""
    import keras

    x, y = logits_labels(dtype)
    onehot = np.eye(C, dtype=dtype)[y]
    ref = lambda a: jnp.mean(
        keras.losses.categorical_focal_crossentropy(onehot, a, alpha=0.25, gamma=2.0, from_logits=True)
    )
    ref_v, ref_g = jax_value_and_grads(ref, (x,))
    tol = dict(rtol=1e-5) if dtype == np.float32 else dict(rtol=1e-6)  # Keras clips probabilities at 1e-7
    check_reference(lambda a: jaxloss.multiclass_focal(a, y, alpha=0.25, gamma=2.0), ref_v, ref_g, (x,), dtype, **tol)
    check_reference(
        lambda a: jaxloss.multiclass_focal(a, onehot, alpha=0.25, gamma=2.0), ref_v, ref_g, (x,), dtype, **tol
    )


def test_categorical_focal_gamma_zero_is_cross_entropy():
    x, y = logits_labels(np.float64)
    assert_close(jaxloss.multiclass_focal(x, y, gamma=0.0), jaxloss.cross_entropy(x, y), np.float64)


# ---------------------------------------------------------------------------------------------- hinge family


@pytest.mark.parametrize("dtype", DTYPES)
def test_hinge_against_optax(dtype):
    """optax.losses.hinge_loss with {-1, 1} targets; {0, 1} labels give the same result."""
    x, y01 = binary(dtype)
    ypm = 2 * y01 - 1
    ref_v, ref_g = jax_value_and_grads(lambda a: optax.losses.hinge_loss(a, ypm).mean(), (x,))
    check_reference(lambda a: jaxloss.hinge(a, ypm), ref_v, ref_g, (x,), dtype)
    check_reference(lambda a: jaxloss.hinge(a, y01.astype(np.int32)), ref_v, ref_g, (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_hinge_against_keras(dtype):
    """Keras 3 squared_hinge (mean over the last axis; converts {0, 1} labels to {-1, 1})."""
    import keras

    x, y01 = binary(dtype)
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.mean(keras.losses.squared_hinge(y01, a)), (x,))
    tol = dict(rtol=1e-6) if dtype == np.float64 else {}  # Keras rounds through float32 (its floatx)
    check_reference(lambda a: jaxloss.squared_hinge(a, y01), ref_v, ref_g, (x,), dtype, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiclass_hinge_against_optax(dtype):
    """optax.losses.multiclass_hinge_loss (Crammer–Singer)."""
    x, y = logits_labels(dtype)
    ref_v, ref_g = jax_value_and_grads(lambda a: optax.losses.multiclass_hinge_loss(a, y).mean(), (x,))
    check_reference(lambda a: jaxloss.multiclass_hinge(a, y), ref_v, ref_g, (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 0.7, False), (1, 1.0, True), (2, 1.5, True)])
def test_multi_margin_against_pytorch(p, margin, weighted, dtype):
    """torch multi_margin_loss: "sum" and "none" equal PyTorch's; "mean" is sum / sum w[y] (documented)."""
    x, y = logits_labels(dtype)
    w = class_weights(dtype) if weighted else None
    tw = None if w is None else torch.tensor(w)
    tfn = lambda a: F.multi_margin_loss(a, torch.tensor(y), p=p, margin=margin, weight=tw, reduction="sum")
    ref_v, ref_g = torch_value_and_grads(tfn, (x,))
    check_reference(
        lambda a: jaxloss.multi_margin(a, y, p=p, margin=margin, class_weights=w, reduction="sum"),
        ref_v,
        ref_g,
        (x,),
        dtype,
    )
    tnone = F.multi_margin_loss(
        torch.tensor(x), torch.tensor(y), p=p, margin=margin, weight=tw, reduction="none"
    ).numpy()
    assert_close(jaxloss.multi_margin(x, y, p=p, margin=margin, class_weights=w, reduction="none"), tnone, dtype)
    denom = B if w is None else w.astype(np.float64)[y].sum()
    assert_close(
        jaxloss.multi_margin(x, y, p=p, margin=margin, class_weights=w), tnone.astype(np.float64).sum() / denom, dtype
    )
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        jaxloss.multi_margin(x, y, p=3)


def test_smooth_labels_against_optax():
    """optax.smooth_labels on one-hot labels; integer labels need num_classes."""
    y = np.array([0, 3, 2])
    onehot = np.eye(4, dtype=np.float32)[y]
    assert_close(jaxloss.smooth_labels(onehot, 0.1), optax.smooth_labels(onehot, 0.1), np.float32)
    assert_close(jaxloss.smooth_labels(y, 0.1, num_classes=4), optax.smooth_labels(onehot, 0.1), np.float32)
    with pytest.raises(ValueError, match="num_classes"):
        jaxloss.smooth_labels(y, 0.1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_minus_inf_logits_against_optax_safe(dtype):
    """Masked classes (logits -inf) with integer labels: optax.safe_softmax_cross_entropy values and gradients; plain optax.softmax_cross_entropy gives NaN."""
    x, y = logits_labels(dtype)
    x = x.copy()
    x[:, [1, 3]] = -np.inf
    y = np.where(np.isin(y, [1, 3]), 0, y)
    onehot = np.eye(C, dtype=dtype)[y]
    assert np.isnan(float(optax.losses.softmax_cross_entropy(x, onehot).mean()))
    ref_v, ref_g = jax_value_and_grads(lambda a: optax.losses.safe_softmax_cross_entropy(a, onehot).mean(), (x,))
    check_reference(lambda a: jaxloss.cross_entropy(a, y), ref_v, ref_g, (x,), dtype)


# -----------------------------------------------------------------------------------------------------
# Folded in from test_classification_more.py
# -----------------------------------------------------------------------------------------------------


NB, NC = 6, 4  # batch and classes of the tests below (the ones above use B, C)


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------------------
# PyTorch references
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_margin_vs_pytorch(dtype):
    r = rng(1)
    x = (r.normal(size=(NB, 3)) * 2).astype(dtype)
    y = r.choice([-1.0, 1.0], size=(NB, 3)).astype(dtype)
    for reduction in ("mean", "sum"):
        v, g = torch_value_and_grads(lambda a, b: F.soft_margin_loss(a, b, reduction=reduction), [x, y])
        check_reference(jaxloss.soft_margin, v, g, [x, y], dtype, reduction=reduction)
    # {0, 1} labels mean the same as {-1, 1}; per-element values match PyTorch's "none".
    none = F.soft_margin_loss(torch.tensor(x), torch.tensor(y), reduction="none").numpy()
    assert_close(jaxloss.soft_margin(x, (y > 0).astype(np.int32), reduction="none"), none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_soft_margin_vs_pytorch(dtype):
    r = rng(2)
    x = (r.normal(size=(NB, NC)) * 2).astype(dtype)
    y = r.uniform(0, 1, size=(NB, NC)).astype(dtype)  # soft targets: the gradient w.r.t. labels is checked too
    w = r.uniform(0.5, 2.0, size=NC).astype(dtype)
    v, g = torch_value_and_grads(
        lambda a, b: F.multilabel_soft_margin_loss(a, b, weight=torch.tensor(w)), [x, y], argnums=(0, 1)
    )
    check_reference(jaxloss.multilabel_soft_margin, v, g, [x, y], dtype, argnums=(0, 1), class_weights=w)
    # hard {0, 1} int labels, no class weights, per-example values; the class axis may be elsewhere.
    yi = (y > 0.5).astype(np.int32)
    none = F.multilabel_soft_margin_loss(torch.tensor(x), torch.tensor(yi.astype(dtype)), reduction="none").numpy()
    assert_close(jaxloss.multilabel_soft_margin(x, yi, reduction="none"), none, dtype)
    assert_close(jaxloss.multilabel_soft_margin(x.T, yi.T, axis=0, reduction="none"), none, dtype)


def _padded_labels(r, batch):
    labels = np.full((batch, NC), -1, np.int64)
    for i in range(batch):
        k = r.integers(0, NC + 1)
        labels[i, :k] = r.permutation(NC)[:k]
    # PyTorch's corner cases: entries after the first -1 are ignored; a target listed twice counts twice.
    labels[0] = [2, -1, 0, 1]
    labels[1] = [3, 3, -1, 1]
    labels[2] = [-1, 1, 2, 3]
    return labels


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_margin_vs_pytorch(dtype):
    r = rng(3)
    x = r.normal(size=(NB, NC)).astype(dtype)
    labels = _padded_labels(r, NB)
    for reduction in ("mean", "sum"):
        v, g = torch_value_and_grads(lambda a, b: F.multilabel_margin_loss(a, b, reduction=reduction), [x, labels])
        check_reference(jaxloss.multilabel_margin, v, g, [x, labels], dtype, reduction=reduction)
    none = F.multilabel_margin_loss(torch.tensor(x), torch.tensor(labels), reduction="none").numpy()
    jitted = jax.jit(lambda a, b: jaxloss.multilabel_margin(a, b, reduction="none"))
    assert_close(jitted(x, labels), none, dtype)
    assert_close(jaxloss.multilabel_margin(x.T, labels.T, axis=0, reduction="none"), none, dtype)


def test_multilabel_margin_bad_labels():
    x = np.zeros((2, NC), np.float32)
    labels = np.array([[0, 7, -1, -1], [1, -1, 9, 9]])  # 7 is out of range; the 9s follow a -1 and do not count
    out = np.asarray(jaxloss.multilabel_margin(x, labels, reduction="none"))
    assert np.isnan(out[0]) and out[1] == pytest.approx(3 / NC)
    err, _ = jaxloss.checked(jaxloss.multilabel_margin)(x, labels)
    with pytest.raises(Exception, match="out of range"):
        err.throw()
    err, _ = jaxloss.checked(jaxloss.multilabel_margin)(x, labels, where=np.array([False, True]))
    err.throw()  # the bad example is masked: no error
    with pytest.raises(TypeError, match="integer"):
        jaxloss.multilabel_margin(x, labels.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------
# optax and Keras references (their gradients by jax.grad of the reference implementation)
# ---------------------------------------------------------------------------------------------------------


def ref_value_and_grads(ref_fn, arrays, argnums=(0,)):
    """Value and gradients of a JAX-traceable reference (optax, Keras on the JAX backend)."""
    return jax_value_and_grads(ref_fn, arrays, argnums)


def _classes(seed, dtype, scale=2.0):
    r = rng(seed)
    x = (r.normal(size=(NB, NC)) * scale).astype(dtype)
    return x, r.integers(0, NC, size=NB), r.dirichlet(np.ones(NC), size=NB).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poly1_vs_optax(dtype):
    import optax

    x, y, t = _classes(4, dtype)
    onehot = np.eye(NC, dtype=dtype)[y]
    for eps in (2.0, -1.0):
        ref = lambda a, b: jnp.mean(optax.losses.poly_loss_cross_entropy(a, b, epsilon=eps))  # noqa: E731
        v, g = ref_value_and_grads(ref, [x, t], (0, 1))
        check_reference(jaxloss.poly1, v, g, [x, t], dtype, argnums=(0, 1), epsilon=eps)
        v, g = ref_value_and_grads(ref, [x, onehot])
        check_reference(jaxloss.poly1, v, g, [x, y], dtype, epsilon=eps)
    # epsilon is traceable: d loss / d epsilon = mean(1 - p_t), as in optax.
    d_ours = jax.grad(lambda e: jaxloss.poly1(x, y, epsilon=e))(jnp.asarray(2.0, dtype))
    d_ref = jax.grad(lambda e: jnp.mean(optax.losses.poly_loss_cross_entropy(x, onehot, epsilon=e)))(
        jnp.asarray(2.0, dtype)
    )
    assert_close(d_ours, d_ref, dtype)


def _keras_gce(y, x, q):
    import keras

    return jnp.mean(keras.losses.categorical_generalized_cross_entropy(y, jax.nn.softmax(x, axis=-1), q=q))


def _gce_np(x, t, q):
    """Zhang & Sabuncu (2018), float64 NumPy: mean over examples of sum_c t_c (1 - p_c^q) / q."""
    x = np.asarray(x, np.float64)
    log_p = x - x.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    return np.mean(np.sum(t * -np.expm1(q * log_p), -1) / q)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_cross_entropy_vs_keras(dtype):
    x, y, t = _classes(5, dtype)
    for q in (0.7, 0.3, 1.0):
        v, g = ref_value_and_grads(lambda a: _keras_gce(y, a, q), [x])
        check_reference(jaxloss.generalized_cross_entropy, v, g, [x, y], dtype, q=q)
    # q = 1 is the mean absolute error of the true-class probability.
    p = np.exp(x - x.max(-1, keepdims=True).astype(np.float64))
    p = p / p.sum(-1, keepdims=True)
    assert_close(jaxloss.generalized_cross_entropy(x, y, q=1.0, reduction="none"), 1 - p[np.arange(NB), y], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_cross_entropy_probability_targets_vs_numpy_formula(dtype):
    """Soft targets against the float64 NumPy formula of Zhang & Sabuncu (2018), with finite differences."""
    x, _, t = _classes(6, dtype)
    q = 0.7
    v = _gce_np(x, t, q)
    g = numeric_grads(lambda a, b: _gce_np(a, b, q), [x, t], (0, 1))
    tol = dict(rtol=1e-7, atol=1e-9) if dtype == np.float64 else {}
    check_reference(jaxloss.generalized_cross_entropy, v, g, [x, t], dtype, argnums=(0, 1), q=q, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_cross_entropy_stable_when_p_y_underflows(dtype):
    """p_y = exp(-300) underflows (even in float64 after the power): loss -> 1/q, gradient -> 0, no NaN."""
    x = np.array([[0.0, -300.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype)
    y = np.array([1, 2])
    q = 0.7
    v, (g,) = jax_value_and_grads(lambda a: jaxloss.generalized_cross_entropy(a, y, q=q, reduction="sum"), [x])
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert_close(v, 1 / q + (1 - 0.25**q) / q, dtype)
    assert_close(g[0], np.zeros(NC), dtype, atol=1e-30)


def _keras_hinge(t, s):
    import keras

    return jnp.mean(keras.losses.categorical_hinge(t, s))


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_hinge_vs_keras(dtype):
    x, y, t = _classes(7, dtype, scale=1.0)
    x[0] = [-0.5, 0.3, -1.2, -0.1]  # every other score negative: Keras' max includes the 0 of the true slot
    y[0] = 1
    x[1] = [0.9, -0.4, 0.1, 0.3]
    y[1] = 2
    onehot = np.eye(NC, dtype=dtype)[y]
    v, g = ref_value_and_grads(_keras_hinge, [onehot, x], (1,))
    check_reference(jaxloss.categorical_hinge, v, g, [x, y], dtype)
    check_reference(jaxloss.categorical_hinge, v, g, [x, onehot], dtype)
    # probability targets, gradient w.r.t. both arguments
    v, (gt, gx) = ref_value_and_grads(_keras_hinge, [t, x], (0, 1))
    check_reference(jaxloss.categorical_hinge, v, [gx, gt], [x, t], dtype, argnums=(0, 1))


def test_hyperparameter_ranges():
    x, y = np.zeros((2, NC), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match="epsilon"):
        jaxloss.poly1(x, y, epsilon=-2.0)
    for q in (0.0, 1.5):
        with pytest.raises(ValueError, match="q must be"):
            jaxloss.generalized_cross_entropy(x, y, q=q)
    err, _ = jaxloss.checked(jaxloss.categorical_hinge)(x, np.array([0, 4]))
    with pytest.raises(Exception, match="out of range"):
        err.throw()


@pytest.mark.parametrize("dtype", DTYPES)
def test_perceptron_and_binary_sparsemax_vs_optax(dtype):
    import optax

    r = rng(8)
    x = (r.normal(size=(NB, 3)) * 1.5).astype(dtype)
    y01 = r.integers(0, 2, size=(NB, 3))
    signed = (2 * y01 - 1).astype(dtype)
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.perceptron_loss(a, signed)), [x])
    check_reference(jaxloss.perceptron, v, g, [x, signed], dtype)
    check_reference(jaxloss.perceptron, v, g, [x, y01], dtype)  # {0, 1} labels read as {-1, 1}
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.sparsemax_loss(a, y01)), [x])
    check_reference(jaxloss.sparsemax, v, g, [x, y01], dtype)
    check_reference(jaxloss.sparsemax, v, g, [x, signed], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiclass_perceptron_vs_optax(dtype):
    import optax

    x, y, _ = _classes(9, dtype)
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.multiclass_perceptron_loss(a, y)), [x])
    check_reference(jaxloss.multiclass_perceptron, v, g, [x, y], dtype)


def _sparsemax_np(z):
    """Sparsemax (Martins & Astudillo, 2016) in float64 NumPy, one vector at a time."""
    z = np.asarray(z, np.float64)
    zs = np.sort(z)[::-1]
    cs = np.cumsum(zs)
    k = np.arange(1, z.size + 1)
    kz = k[1 + k * zs > cs].max()
    return np.maximum(z - (cs[kz - 1] - 1) / kz, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiclass_sparsemax_vs_optax_and_numpy(dtype):
    import optax

    x, y, _ = _classes(10, dtype, scale=1.0)
    x[0] = 0.0  # a tie of every class: sparsemax is uniform
    # optax's simplex projection breaks on float32 input when x64 is enabled (its custom JVP returns a float32
    # tangent for a float64 primal), so its reference is evaluated in float64 for both dtypes.
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.multiclass_sparsemax_loss(a, y)), [x.astype(np.float64)])
    check_reference(jaxloss.multiclass_sparsemax, v, g, [x, y], dtype)
    # the gradient is sparsemax(s) - one_hot(y) (float64 NumPy sparsemax), per example
    p = np.stack([_sparsemax_np(row) for row in x])
    (grad,) = jax_value_and_grads(jaxloss.multiclass_sparsemax, [x, y], reduction="sum")[1]
    assert_close(grad, p - np.eye(NC)[y], dtype)
    # the loss in closed form: <p, s> + (1 - |p|^2) / 2 - s_y
    x64 = x.astype(np.float64)
    loss = np.sum(p * x64, -1) + 0.5 * (1 - np.sum(p * p, -1)) - x64[np.arange(NB), y]
    assert_close(jaxloss.multiclass_sparsemax(x, y, reduction="none"), loss, dtype)


def test_multiclass_sparsemax_hessian_is_sparsemax_jacobian():
    """Second order through the custom JVP: the Hessian is diag(S) - 1_S 1_S^T / |S| (support S)."""
    s = np.array([1.0, 0.5, -1.0, 0.8])
    p = _sparsemax_np(s)
    support = (p > 0).astype(np.float64)
    expected = np.diag(support) - np.outer(support, support) / support.sum()
    hess = jax.hessian(lambda a: jaxloss.multiclass_sparsemax(a, np.array(1)))(jnp.asarray(s))
    assert_close(hess, expected, np.float64)
