"""Reference tests for the segmentation losses: optax ``dice_loss``, Keras 3 ``dice``/``tversky`` (JAX
backend), and float64 NumPy formulas (Salehi et al. 2017 Tversky index; Sudre et al. 2017 generalized Dice)."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

import jaxloss
from harness import DTYPES, all_finite, assert_close, check_reference, jax_value_and_grads, numeric_grads

B, H, W, C = 3, 4, 3, 3


def seg_batch(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(B, H, W, C)) * 2).astype(dtype)
    y = rng.integers(0, C, size=(B, H, W))
    return x, y, np.asarray(jax.nn.one_hot(y, C, dtype=dtype))


def softmax64(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_tversky(p, t, alpha, beta, smooth, eps=0.0):
    """float64 NumPy Tversky loss per example (Salehi et al. 2017: alpha on FP, beta on FN), class mean."""
    p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
    ax = tuple(range(1, p.ndim - 1))
    tp = (p * t).sum(ax)
    fp = (p * (1 - t)).sum(ax)
    fn = ((1 - p) * t).sum(ax)
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth + eps)).mean(-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dice_and_tversky_against_optax(dtype):
    """optax.losses.dice_loss (softmax, per-example mean over classes): dice with int labels, tversky with
    alpha/beta and one-hot targets, class weights, and binary (one sigmoid channel) segmentation."""
    x, y, onehot = seg_batch(dtype)
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.mean(optax.losses.dice_loss(a, onehot)), (x,))
    check_reference(lambda a: jaxloss.dice(a, y), ref_v, ref_g, (x,), dtype)
    ref_v, ref_g = jax_value_and_grads(
        lambda a: jnp.sum(optax.losses.dice_loss(a, onehot, alpha=0.3, beta=0.7, smooth=0.5)), (x,)
    )
    check_reference(
        lambda a: jaxloss.tversky(a, onehot, alpha=0.3, beta=0.7, smooth=0.5, reduction="sum"),
        ref_v,
        ref_g,
        (x,),
        dtype,
    )
    # optax multiplies by class weights and takes the plain class mean; jaxloss divides by sum(w)
    cw = np.array([0.0, 1.0, 2.0], dtype)
    ref = optax.losses.dice_loss(x, onehot, class_weights=cw) * C / cw.sum()
    assert_close(jaxloss.dice(x, y, class_weights=cw, reduction="none"), ref, dtype)
    xb, yb = x[..., :1], onehot[..., :1]
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.mean(optax.losses.dice_loss(a, yb)), (xb,))
    check_reference(lambda a: jaxloss.dice(a, yb), ref_v, ref_g, (xb,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dice_and_tversky_against_keras(dtype):
    """keras.losses.dice / keras.losses.tversky on the JAX backend (probabilities, one channel, per-example
    axis=(1, 2, 3)), values and gradients (Keras' ops are JAX functions on this backend). Keras' tversky
    applies alpha to false negatives, so its (alpha, beta) is jaxloss's (beta, alpha)."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, size=(B, H, W, 1)).astype(dtype)
    t = rng.integers(0, 2, size=(B, H, W, 1)).astype(dtype)
    kdice = lambda a: jnp.mean(keras.losses.dice(t, a, axis=(1, 2, 3)))
    ref_v, ref_g = jax_value_and_grads(kdice, (p,))
    check_reference(
        lambda a: jaxloss.dice(a, t, smooth=0.0, epsilon=5e-8, from_logits=False), ref_v, ref_g, (p,), dtype
    )
    ktv = lambda a: jnp.mean(keras.losses.tversky(t, a, alpha=0.7, beta=0.3, axis=(1, 2, 3)))
    ref_v, ref_g = jax_value_and_grads(ktv, (p,))
    check_reference(
        lambda a: jaxloss.tversky(a, t, alpha=0.3, beta=0.7, smooth=0.0, epsilon=1e-7, from_logits=False),
        ref_v,
        ref_g,
        (p,),
        dtype,
    )
    # and the paper's convention (alpha on false positives) from a float64 NumPy formula
    assert_close(
        jaxloss.tversky(p, t, alpha=0.3, beta=0.7, smooth=0.0, from_logits=False, reduction="none"),
        np_tversky(p, t, 0.3, 0.7, 0.0),
        dtype,
    )


def np_generalized_dice(probs, onehot, smooth):
    """float64 NumPy generalized Dice (Sudre et al. 2017) per example, w_c = 1 / T_c^2 (absent classes:
    the largest present weight), averaged over the batch."""
    p, t = np.asarray(probs, np.float64), np.asarray(onehot, np.float64)
    ax = tuple(range(1, p.ndim - 1))
    ts = t.sum(ax)
    w = np.where(ts > 0, 1.0 / np.where(ts > 0, ts, 1.0) ** 2, 0.0)
    w = np.where(ts > 0, w, w.max(-1, keepdims=True))
    num = 2 * (w * (p * t).sum(ax)).sum(-1) + smooth
    den = (w * (p.sum(ax) + ts)).sum(-1) + smooth
    return np.mean(1 - num / den)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_dice_and_jaccard_against_numpy(dtype):
    """float64 NumPy formulas: generalized Dice (Sudre et al. 2017, one class absent from an example) and
    soft Jaccard (TP + s) / (P + T - TP + s); gradients by finite differences."""
    x, y, onehot = seg_batch(dtype, seed=2)
    y[0] = np.where(y[0] == 1, 0, y[0])
    onehot = np.asarray(jax.nn.one_hot(y, C, dtype=dtype))
    f = lambda a: np_generalized_dice(softmax64(a), onehot, 1e-3)
    tol = dict(rtol=1e-6, atol=1e-9) if dtype == np.float64 else {}
    check_reference(
        lambda a: jaxloss.generalized_dice(a, y, smooth=1e-3), f(x), numeric_grads(f, (x,)), (x,), dtype, **tol
    )
    j = lambda a: np.mean(np_tversky(softmax64(a), onehot, 1.0, 1.0, 0.5))
    check_reference(lambda a: jaxloss.jaccard(a, y, smooth=0.5), j(x), numeric_grads(j, (x,)), (x,), dtype, **tol)
    # the formulas' identities: jaccard = tversky(1, 1), dice = tversky(1/2, 1/2)
    assert_close(jaxloss.dice(x, y, reduction="none"), jaxloss.tversky(x, y, reduction="none"), dtype)


def test_peer_trap_dice_probabilities_under_jit():
    """optax's dice_loss(apply_softmax=False) validates the probabilities with a Python `if` on array values,
    so it raises under jax.jit; jaxloss.dice(from_logits=False) is jittable and gives the same finite value."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(C), size=(B, H, W)).astype(np.float32)
    y = rng.integers(0, C, size=(B, H, W))
    onehot = np.asarray(jax.nn.one_hot(y, C))
    with pytest.raises(jax.errors.TracerBoolConversionError):
        jax.jit(lambda a, b: optax.losses.dice_loss(a, b, apply_softmax=False))(p, onehot)
    eager_optax = optax.losses.dice_loss(p, onehot, apply_softmax=False)
    jitted = jax.jit(lambda a, b: jaxloss.dice(a, b, from_logits=False, reduction="none"))(p, y)
    assert all_finite(jitted)
    assert_close(jitted, eager_optax, np.float32)
    g = jax.jit(jax.grad(lambda a: jaxloss.dice(a, y, from_logits=False)))(p)
    assert all_finite(g)


def test_segmentation_layout_vmap_ignore_index_and_checks():
    """axis=1 (NCHW) equals NHWC; vmap with batch_dims=0 equals reduction='none'; ignore_index equals
    dropping those pixels; smooth=0 on an empty class is finite; out-of-range labels give NaN / checked."""
    x, y, _ = seg_batch(np.float32, seed=4)
    ref = jaxloss.tversky(x, y, alpha=0.2, beta=0.8, reduction="none")
    assert_close(
        jaxloss.tversky(np.moveaxis(x, -1, 1), y, alpha=0.2, beta=0.8, axis=1, reduction="none"),
        ref,
        np.float32,
        rtol=1e-6,
    )
    per = jax.vmap(lambda a, b: jaxloss.tversky(a, b, alpha=0.2, beta=0.8, batch_dims=0))(x, y)
    assert_close(per, ref, np.float32, rtol=1e-6)
    # ignore the first row of every image == the images without that row
    y_ign = y.copy()
    y_ign[:, 0] = 255
    for fn in (jaxloss.dice, jaxloss.generalized_dice):
        assert_close(
            fn(x, y_ign, ignore_index=255, reduction="none"),
            fn(x[:, 1:], y[:, 1:], reduction="none"),
            np.float32,
            rtol=1e-6,
        )
    # empty class, no smoothing: the score of an empty prediction of an empty target is 1, finite gradient
    p0 = np.zeros((1, 2, 2, 1), np.float32)
    v, g = jax_value_and_grads(lambda a: jaxloss.dice(a, p0, smooth=0.0, from_logits=False), (p0,))
    assert float(v) == 0.0 and all_finite(g)
    bad = y.copy()
    bad[1, 0, 0] = C
    out = jaxloss.dice(x, bad, reduction="none")
    assert np.isnan(out[1]) and all_finite(np.asarray(out)[[0, 2]])
    err, _ = jaxloss.checked(lambda a: jaxloss.dice(a, bad))(x)
    assert err.get() is not None and "out of range" in err.get()


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignore_index_pixels_holding_nan_do_not_leak(dtype):
    """Defect (issue 14): NaN logits at pixels excluded by ignore_index gave NaN gradients. Value and
    gradient must be finite and equal to slicing those pixels out (reference: the loss on the sliced
    images, whose own values are checked against optax/NumPy above); the ignored pixels get zero gradient."""
    x, y, _ = seg_batch(dtype, seed=5)
    y_ign = y.copy()
    y_ign[:, -1] = -100
    x_nan = x.copy()
    x_nan[:, -1] = np.nan
    for fn, kw in ((jaxloss.dice, {}), (jaxloss.generalized_dice, {}), (jaxloss.tversky, dict(alpha=0.3, beta=0.7))):
        v, (g,) = jax_value_and_grads(lambda a: fn(a, y_ign, ignore_index=-100, **kw), (x_nan,))
        v_ref, (g_ref,) = jax_value_and_grads(lambda a: fn(a, y[:, :-1], **kw), (x[:, :-1],))
        assert all_finite(v) and all_finite(g), fn.__name__
        assert_close(v, v_ref, dtype)
        assert_close(g[:, :-1], g_ref, dtype)
        assert np.all(g[:, -1] == 0)


def np_generalized_dice_weighted(probs, onehot, smooth, class_weights=None, ignore_background=False):
    """float64 NumPy generalized Dice per example (Sudre et al. 2017) with user factors v_c on the automatic
    weights 1 / T_c^2 and the background channel removed first (MONAI's include_background=False)."""
    p, t = np.asarray(probs, np.float64), np.asarray(onehot, np.float64)
    v = np.ones(p.shape[-1]) if class_weights is None else np.asarray(class_weights, np.float64)
    if ignore_background:
        p, t, v = p[..., 1:], t[..., 1:], v[1:]
    ax = tuple(range(1, p.ndim - 1))
    ts = t.sum(ax)
    auto = np.where(ts > 0, 1.0 / np.where(ts > 0, ts, 1.0) ** 2, 0.0)
    auto = np.where(ts > 0, auto, auto.max(-1, keepdims=True))
    w = auto * v
    num = 2 * (w * (p * t).sum(ax)).sum(-1) + smooth
    den = (w * (p.sum(ax) + ts)).sum(-1) + smooth
    return 1 - num / den


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_dice_class_weights_and_ignore_background_against_numpy(dtype):
    """Feature (issue 14): class_weights= (factors of the automatic 1/T^2 weights) and ignore_background=
    against the float64 NumPy formula, values and finite-difference gradients, with class 2 absent from
    example 0; ignore_background equals computing on the channels 1.. of the softmax over all classes."""
    x, y, _ = seg_batch(dtype, seed=6)
    y[0] = np.where(y[0] == 2, 1, y[0])
    onehot = np.asarray(jax.nn.one_hot(y, C, dtype=np.float64))
    cw = np.array([0.5, 2.0, 1.5])
    tol = dict(rtol=1e-6, atol=1e-9) if dtype == np.float64 else {}
    for kw in (dict(class_weights=cw), dict(ignore_background=True), dict(class_weights=cw, ignore_background=True)):
        f = lambda a: np.mean(np_generalized_dice_weighted(softmax64(a), onehot, 1e-3, **kw))
        check_reference(
            lambda a: jaxloss.generalized_dice(a, y, smooth=1e-3, **kw),
            f(x),
            numeric_grads(f, (x,)),
            (x,),
            dtype,
            **tol,
        )
    assert_close(
        jaxloss.generalized_dice(x, y, ignore_background=True, reduction="none"),
        np_generalized_dice_weighted(softmax64(x), onehot, 1e-5, ignore_background=True),
        dtype,
    )
    with pytest.raises(ValueError, match="ignore_background needs at least 2 classes"):
        jaxloss.generalized_dice(x[..., :1], (y > 0).astype(np.int32), ignore_background=True)
    with pytest.raises(ValueError, match=r"class_weights must have shape \(3,\)"):
        jaxloss.generalized_dice(x, y, class_weights=np.ones(2))
    with pytest.raises(ValueError, match="class_weights must be >= 0"):
        jaxloss.generalized_dice(x, y, class_weights=np.array([1.0, -1.0, 1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dice_on_binary_maps_without_channel_axis(dtype):
    """Feature (issue 14): axis=None takes [B, H, W] foreground logits (sigmoid) with targets [B, H, W].
    References: optax.losses.binary_dice_loss (values and gradients; it averages over the batch) and the
    float64 NumPy soft Dice with optax's smooth convention 1 - (TP + s) / (TP + (FP + FN) / 2 + s);
    integer {0, 1} and float targets; tversky/jaccard agree with the [B, H, W, 1] layout."""
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(B, H, W)) * 2).astype(dtype)
    y = rng.integers(0, 2, size=(B, H, W))
    yf = y.astype(dtype)

    def np_dice(a):
        p = 1 / (1 + np.exp(-np.asarray(a, np.float64)))
        tp, ps, ts = (p * y).sum((1, 2)), p.sum((1, 2)), y.sum((1, 2))
        return np.mean(1 - (tp + 1.0) / (tp + 0.5 * (ps - tp) + 0.5 * (ts - tp) + 1.0))

    ref_v, ref_g = jax_value_and_grads(lambda a: optax.losses.binary_dice_loss(a, jnp.asarray(yf)).mean(), (x,))
    for targets in (y, yf):
        check_reference(lambda a: jaxloss.dice(a, targets, axis=None), ref_v, ref_g, (x,), dtype)
    tol = dict(rtol=1e-6, atol=1e-9) if dtype == np.float64 else {}
    check_reference(
        lambda a: jaxloss.dice(a, y, axis=None), np_dice(x), numeric_grads(np_dice, (x,)), (x,), dtype, **tol
    )
    for fn in (jaxloss.tversky, jaxloss.jaccard):
        assert_close(fn(x, y, axis=None, reduction="none"), fn(x[..., None], y, reduction="none"), dtype)
    with pytest.raises(ValueError, match="targets must have the shape of predictions"):
        jaxloss.dice(x, yf[:, :-1], axis=None)


def test_segmentation_does_not_import_sequence():
    """Issue 14: no family imports another family's private helper (segmentation used sequence._context)."""
    import inspect

    import jaxloss.segmentation as seg

    src = inspect.getsource(seg)
    assert "jaxloss.sequence" not in src and "from jaxloss import sequence" not in src


def test_domain_messages_name_the_called_loss():
    """dice and jaccard share tversky's arithmetic, but a value outside the domain is reported under the name
    the user called (it said ``tversky`` before)."""
    p = np.full((1, 3, 2), 0.5, np.float32)
    t = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]], np.float32)  # float targets outside [0, 1]
    for loss in (jaxloss.dice, jaxloss.jaccard, jaxloss.tversky, jaxloss.generalized_dice):
        assert np.isnan(loss(p, t, from_logits=False))
        err, _ = jaxloss.checked(lambda a, loss=loss: loss(a, t, from_logits=False))(p)
        message = err.get()
        assert message is not None and message.startswith(f"{loss.__name__}: targets must be"), message
        with pytest.raises(ValueError, match=f"^{loss.__name__}: smooth must be >= 0"):
            loss(p, np.clip(t, 0, 1), from_logits=False, smooth=-1.0)
