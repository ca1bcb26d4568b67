"""Reference tests for the sequence losses: PyTorch ``ctc_loss`` / ``cross_entropy``, optax ``ctc_loss``,
and float64 NumPy formulas (per-sequence averaging, the PaLM z-loss)."""

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

B, T, K, N = 4, 7, 5, 3


def ctc_batch(dtype, seed=0):
    """Logits [B, T, K], labels [B, N] (a repeat in row 1, junk -1 in padding), and lengths."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(B, T, K)) * 1.5).astype(dtype)
    y = rng.integers(1, K, size=(B, N))
    y[1, 1] = y[1, 0]
    input_lengths = np.array([7, 5, 6, 3])
    label_lengths = np.array([3, 2, 3, 0])
    y[np.arange(N)[None] >= label_lengths[:, None]] = -1  # padding may hold anything
    return x, y, input_lengths, label_lengths


def torch_ctc(y, il, ll, reduction="sum", zero_infinity=False):
    """PyTorch's ctc_loss on batch-major logits: log_softmax, then the time-major [T, B, K] layout."""
    yt = torch.tensor(np.where(y < 0, 1, y))
    return lambda a: F.ctc_loss(
        torch.log_softmax(a, -1).transpose(0, 1),
        yt,
        torch.tensor(il),
        torch.tensor(ll),
        blank=0,
        reduction=reduction,
        zero_infinity=zero_infinity,
    )


def paddings(lengths, size, dtype):
    return (np.arange(size)[None] >= np.asarray(lengths)[:, None]).astype(dtype)


# ---------------------------------------------------------------------------------------------------- CTC


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_against_pytorch(dtype):
    """torch.nn.functional.ctc_loss (lengths style): 'none', 'sum', and 'mean' (= normalize_length=True)."""
    x, y, il, ll = ctc_batch(dtype)
    kw = dict(input_lengths=il, label_lengths=ll)
    none = F.ctc_loss(
        torch.log_softmax(torch.tensor(x), -1).transpose(0, 1),
        torch.tensor(np.where(y < 0, 1, y)),
        torch.tensor(il),
        torch.tensor(ll),
        reduction="none",
    )
    assert_close(jaxloss.ctc(x, y, reduction="none", **kw), none.numpy(), dtype)
    ref_v, ref_g = torch_value_and_grads(torch_ctc(y, il, ll, "sum"), (x,))
    check_reference(lambda a: jaxloss.ctc(a, y, reduction="sum", **kw), ref_v, ref_g, (x,), dtype)
    ref_v, ref_g = torch_value_and_grads(torch_ctc(y, il, ll, "mean"), (x,))
    check_reference(lambda a: jaxloss.ctc(a, y, normalize_length=True, **kw), ref_v, ref_g, (x,), dtype)
    # jaxloss's plain "mean" is the mean over sequences, not PyTorch's per-label-length mean
    assert_close(jaxloss.ctc(x, y, **kw), none.numpy().mean(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_against_optax(dtype):
    """optax.ctc_loss (padding style, including an interior padded frame): values and gradients."""
    x, y, il, ll = ctc_batch(dtype, seed=1)
    lpad, ypad = paddings(il, T, dtype), paddings(ll, N, dtype)
    lpad[0, 2] = 1.0  # optax skips padded frames wherever they are
    y = np.where(y < 0, 0, y)
    ref_v, ref_g = jax_value_and_grads(lambda a: jnp.sum(optax.ctc_loss(a, lpad, y, ypad)), (x,))
    kw = dict(logit_paddings=lpad, label_paddings=ypad.astype(bool), reduction="sum")
    check_reference(
        lambda a: jaxloss.ctc(a, y, **kw), ref_v, ref_g, (x,), dtype, rtol=1e-5 if dtype == np.float32 else None
    )
    assert_close(
        jaxloss.ctc(x, y, logit_paddings=lpad, label_paddings=ypad, reduction="none"),
        optax.ctc_loss(x, lpad, y, ypad),
        dtype,
        rtol=1e-5 if dtype == np.float32 else None,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_impossible_alignment_finite_where_pytorch_is_inf(dtype):
    """Too few frames (row 1: 2 frames for 'a a', which needs 3; row 3: 3 frames for 4 labels).

    PyTorch: inf. jaxloss: optax's finite log_epsilon convention (same values), finite gradients; with
    zero_infinity=True it equals PyTorch's zero_infinity=True in values and gradients.
    """
    x, y, _, _ = ctc_batch(dtype, seed=2)
    y = np.concatenate([y, np.full((B, 1), 2)], axis=1)
    y[1, :2] = 3
    y[3] = [1, 2, 3, 4]
    il, ll = np.array([7, 2, 6, 3]), np.array([3, 2, 2, 4])
    y = np.where(np.arange(N + 1)[None] < ll[:, None], y, 0)
    torch_none = torch_ctc(y, il, ll, "none")(torch.tensor(x)).numpy()
    assert np.isinf(torch_none[[1, 3]]).all() and np.isfinite(torch_none[[0, 2]]).all()
    mine = jaxloss.ctc(x, y, input_lengths=il, label_lengths=ll, reduction="none")
    assert all_finite(mine) and np.all(np.asarray(mine)[[1, 3]] > 5e4)
    assert_close(np.asarray(mine)[[0, 2]], torch_none[[0, 2]], dtype)
    opt = optax.ctc_loss(x, paddings(il, T, dtype), y, paddings(ll, N + 1, dtype))
    assert_close(mine, opt, dtype, rtol=1e-6)
    assert all_finite(jax.grad(lambda a: jaxloss.ctc(a, y, input_lengths=il, label_lengths=ll))(x))
    ref_v, ref_g = torch_value_and_grads(torch_ctc(y, il, ll, "sum", zero_infinity=True), (x,))
    check_reference(
        lambda a: jaxloss.ctc(a, y, input_lengths=il, label_lengths=ll, zero_infinity=True, reduction="sum"),
        ref_v,
        ref_g,
        (x,),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_empty_label_sequences_against_pytorch(dtype):
    """Defect (issue 14): labels of shape [B, 0] raised an internal shape error. An empty label sequence
    is the all-blank path: -sum_t log p_t(blank). Reference: PyTorch ctc_loss with target_lengths 0
    (values and gradients), and the float64 NumPy all-blank formula; unbatched [T, K] with [0] too."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(2, 5, 4)) * 1.5).astype(dtype)
    y = np.zeros((2, 0), np.int64)
    il = np.array([5, 3])
    ll = np.zeros(2, np.int64)
    ref_v, ref_g = torch_value_and_grads(torch_ctc(y, il, ll, "sum"), (x,))
    check_reference(lambda a: jaxloss.ctc(a, y, input_lengths=il, reduction="sum"), ref_v, ref_g, (x,), dtype)
    logp = np.asarray(x, np.float64) - np.log(np.exp(np.asarray(x, np.float64)).sum(-1, keepdims=True))
    blank_path = np.array([-logp[b, : il[b], 0].sum() for b in range(2)])
    assert_close(jaxloss.ctc(x, y, input_lengths=il, reduction="none"), blank_path, dtype)
    assert_close(jaxloss.ctc(x[0], y[0], reduction="none"), blank_path[0], dtype)
    # the reproducer: uniform logits, every path of 5 frames has probability 4^-5
    assert_close(jaxloss.ctc(jnp.zeros((2, 5, 4), dtype), jnp.zeros((2, 0), int)), 5 * np.log(4.0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_nonzero_blank_against_pytorch(dtype):
    """Mutation audit (issue 14): blank_id=3 (of K=5) against PyTorch's ctc_loss(blank=3), values and
    gradients, with repeats, padding and an empty sequence; labels use class 0 (a real class here)."""
    x, _, il, ll = ctc_batch(dtype, seed=8)
    rng = np.random.default_rng(8)
    y = rng.choice([0, 1, 2, 4], size=(B, N))
    y[1, 1] = y[1, 0]
    y[0, :] = [0, 0, 2]
    y[np.arange(N)[None] >= ll[:, None]] = 3  # padding holds the blank: ignored beyond the label length
    for reduction in ("sum", "none"):
        tfn = lambda a: F.ctc_loss(
            torch.log_softmax(a, -1).transpose(0, 1),
            torch.tensor(y),
            torch.tensor(il),
            torch.tensor(ll),
            blank=3,
            reduction="sum",
        )
        if reduction == "none":
            want = F.ctc_loss(
                torch.log_softmax(torch.tensor(x), -1).transpose(0, 1),
                torch.tensor(y),
                torch.tensor(il),
                torch.tensor(ll),
                blank=3,
                reduction="none",
            ).numpy()
            assert_close(
                jaxloss.ctc(x, y, input_lengths=il, label_lengths=ll, blank_id=3, reduction="none"), want, dtype
            )
        else:
            ref_v, ref_g = torch_value_and_grads(tfn, (x,))
            check_reference(
                lambda a: jaxloss.ctc(a, y, input_lengths=il, label_lengths=ll, blank_id=3, reduction="sum"),
                ref_v,
                ref_g,
                (x,),
                dtype,
            )


def test_ctc_padding_nan_vmap_jit_and_checked_mode():
    """NaN in padded frames is harmless; vmap over unbatched sequences == the batched 'none'; jit == eager;
    a blank or out-of-range label gives NaN and fails under jaxloss.checked."""
    x, y, il, ll = ctc_batch(np.float32)
    x_nan = np.where(np.arange(T)[None, :, None] < il[:, None, None], x, np.nan).astype(np.float32)
    f = jax.jit(lambda a: jaxloss.ctc(a, y, input_lengths=il, label_lengths=ll, reduction="none"))
    batched = f(x_nan)
    assert_close(
        batched, jaxloss.ctc(x, y, input_lengths=il, label_lengths=ll, reduction="none"), np.float32, rtol=1e-6
    )
    g = jax.grad(lambda a: jnp.sum(f(a)))(x_nan)
    assert all_finite(g) and np.all(
        np.asarray(g)[0 == (np.arange(T)[None, :, None] < il[:, None, None]).repeat(K, 2)] == 0
    )
    per = jax.vmap(lambda a, b, i, l: jaxloss.ctc(a, b, input_lengths=i, label_lengths=l))(x, y, il, ll)
    assert_close(per, batched, np.float32, rtol=1e-6)
    bad = y.copy()
    bad[2, 1] = 0  # the blank inside the label length
    out = jaxloss.ctc(x, bad, input_lengths=il, label_lengths=ll, reduction="none")
    assert np.isnan(out[2]) and all_finite(np.asarray(out)[[0, 1, 3]])
    err, _ = jaxloss.checked(lambda a: jaxloss.ctc(a, bad, input_lengths=il, label_lengths=ll))(x)
    assert err.get() is not None and "blank_id" in err.get()
    err, _ = jaxloss.checked(lambda a: jaxloss.ctc(a, y, input_lengths=il, label_lengths=ll))(x)
    assert err.get() is None
    with pytest.raises(ValueError, match="either logit_paddings or input_lengths"):
        jaxloss.ctc(x, y, input_lengths=il, logit_paddings=paddings(il, T, np.float32))
    with pytest.raises(TypeError, match="labels must be an integer array"):
        jaxloss.ctc(x, y.astype(np.float32))


# ------------------------------------------------------------------------------------ sequence cross-entropy

S, V = 4, 6


def token_batch(dtype, seed=3):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(3, S, V)) * 2).astype(dtype)
    y = rng.integers(0, V, size=(3, S))
    lengths = np.array([4, 2, 3])
    y[0, 1] = -100  # ignored
    return x, y, lengths


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_cross_entropy_tokens_against_pytorch(dtype):
    """normalize='tokens': torch cross_entropy(ignore_index=-100, label_smoothing) over the flattened tokens,
    padding given as lengths and as paddings."""
    x, y, lengths = token_batch(dtype)
    pad = np.arange(S)[None] >= lengths[:, None]
    y_torch = torch.tensor(np.where(pad, -100, y).reshape(-1))
    for eps in (0.0, 0.2):
        tfn = lambda a: F.cross_entropy(a.reshape(-1, V), y_torch, ignore_index=-100, label_smoothing=eps)
        ref_v, ref_g = torch_value_and_grads(tfn, (x,))
        check_reference(
            lambda a: jaxloss.sequence_cross_entropy(a, y, lengths=lengths, ignore_index=-100, label_smoothing=eps),
            ref_v,
            ref_g,
            (x,),
            dtype,
        )
    y_pad = np.where(pad, 0, y)  # same tokens masked through paddings (float) + ignore_index
    tfn = lambda a: F.cross_entropy(a.reshape(-1, V), y_torch, ignore_index=-100, reduction="sum")
    ref_v, ref_g = torch_value_and_grads(tfn, (x,))
    y_pad[0, 1] = -100
    check_reference(
        lambda a: jaxloss.sequence_cross_entropy(
            a, y_pad, paddings=pad.astype(dtype), ignore_index=-100, reduction="sum"
        ),
        ref_v,
        ref_g,
        (x,),
        dtype,
    )


def _np_sequence_mean(x, y, valid):
    """float64 NumPy: each sequence's mean token NLL, then the mean over sequences with tokens."""
    x = np.asarray(x, np.float64)
    lse = np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)
    nll = lse - np.take_along_axis(x, np.where(valid, y, 0)[..., None], -1)[..., 0]
    per = (nll * valid).sum(-1) / valid.sum(-1)
    return per.mean()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_cross_entropy_sequences_against_numpy(dtype):
    """normalize='sequences': a float64 NumPy per-sequence average (values; finite-difference gradients)."""
    x, y, lengths = token_batch(dtype)
    valid = (np.arange(S)[None] < lengths[:, None]) & (y != -100)
    ref_v = _np_sequence_mean(x, y, valid)
    ref_g = numeric_grads(lambda a: _np_sequence_mean(a, y, valid), (x,))
    check_reference(
        lambda a: jaxloss.sequence_cross_entropy(a, y, lengths=lengths, ignore_index=-100, normalize="sequences"),
        ref_v,
        ref_g,
        (x,),
        dtype,
        rtol=1e-6 if dtype == np.float64 else None,
        atol=1e-9 if dtype == np.float64 else None,
    )
    none = jaxloss.sequence_cross_entropy(
        x, y, lengths=lengths, ignore_index=-100, normalize="sequences", reduction="none"
    )
    assert none.shape == (3,)
    # a sequence without valid tokens gives 0 and is left out of the mean
    empty = jaxloss.sequence_cross_entropy(
        x, y, lengths=np.array([4, 0, 3]), ignore_index=-100, normalize="sequences", reduction="none"
    )
    assert float(empty[1]) == 0.0
    valid[1] = False
    assert_close(
        jaxloss.sequence_cross_entropy(x, y, lengths=np.array([4, 0, 3]), ignore_index=-100, normalize="sequences"),
        (np.asarray(empty)[[0, 2]]).mean(),
        dtype,
    )


# ------------------------------------------------------------------------------------------------- z-loss


@pytest.mark.parametrize("dtype", DTYPES)
def test_z_loss_against_numpy_and_fused_cross_entropy(dtype):
    """float64 NumPy logsumexp(x)^2 (PaLM) with its analytic gradient 2 lse softmax / B; and
    cross_entropy(x, y) + c * z_loss(x) == cross_entropy(x, y, z_loss=c) in values and gradients."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(5, V)) * 3).astype(dtype)
    y = rng.integers(0, V, size=5)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64).sum(-1))
    soft = np.exp(x64 - lse[:, None])
    check_reference(jaxloss.z_loss, np.mean(lse**2), [2 * lse[:, None] * soft / 5], (x,), dtype)
    assert_close(jaxloss.z_loss(x.T, axis=0, reduction="none"), lse**2, dtype)
    c = 1e-2
    fused_v, fused_g = jax_value_and_grads(lambda a: jaxloss.cross_entropy(a, y, z_loss=c), (x,))
    check_reference(lambda a: jaxloss.cross_entropy(a, y) + c * jaxloss.z_loss(a), fused_v, fused_g, (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_forward_probs_against_optax(dtype):
    """Feature (issue 14): return_forward_probs=True against optax.ctc_loss_with_forward_probs (padding
    style, an interior padded frame, a repeat, an empty label sequence). optax's logalpha_blank[t, b, n] is
    log_alpha[b, t, 2n] (at the last frame logaddexp with the label state 2n - 1) and logalpha_nonblank[t,
    b, n] is log_alpha[b, t, 2n + 1], on the states that an alignment reaches (others hold multiples of
    log_epsilon in both); the loss and its gradient are those of the plain call."""
    x, y, il, ll = ctc_batch(dtype, seed=1)
    lpad, ypad = paddings(il, T, dtype), paddings(ll, N, dtype)
    lpad[0, 2] = 1.0
    y = np.where(y < 0, 0, y)
    loss, phi, emit = optax.ctc_loss_with_forward_probs(x, lpad, y, ypad)
    kw = dict(logit_paddings=lpad, label_paddings=ypad, reduction="none")
    value, la = jaxloss.ctc(x, y, return_forward_probs=True, **kw)
    assert la.shape == (B, T, 2 * N + 1) and la.dtype == dtype
    assert_close(value, loss, dtype, rtol=1e-5 if dtype == np.float32 else None)
    la, phi, emit = np.asarray(la, np.float64), np.asarray(phi).transpose(1, 0, 2), np.asarray(emit).transpose(1, 0, 2)
    last = np.logaddexp(la[:, -1, 0::2], np.concatenate([np.full((B, 1), -np.inf), la[:, -1, 1::2]], axis=1))
    mine_phi = np.concatenate([la[:, :-1, 0::2], last[:, None]], axis=1)
    for b in range(B):
        n_lab = ll[b]
        for mine, ref in (
            (mine_phi[b, :, : n_lab + 1], phi[b, :, : n_lab + 1]),
            (la[b, :, 1 : 2 * n_lab : 2], emit[b, :, :n_lab]),
        ):
            reach = ref > -1e3
            assert np.array_equal(reach, mine > -1e3), b
            assert_close(mine[reach], ref[reach], dtype, rtol=1e-5 if dtype == np.float32 else None)
    g_plain = jax.grad(lambda a: jnp.sum(jaxloss.ctc(a, y, **kw)))(x)
    g_fwd = jax.grad(lambda a: jnp.sum(jaxloss.ctc(a, y, return_forward_probs=True, **kw)[0]))(x)
    assert_close(g_fwd, g_plain, dtype, rtol=1e-6)
    one, la1 = jaxloss.ctc(x[2], y[2, : ll[2]], return_forward_probs=True)
    assert la1.shape == (T, 2 * ll[2] + 1)
    assert_close(-np.logaddexp(la1[-1, -1], la1[-1, -2]), one, dtype)
