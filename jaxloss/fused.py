"""Fused losses: a linear layer and its loss in one pass, for output layers too large to materialise.

:func:`linear_cross_entropy` is the cross-entropy of ``hidden @ weight + bias`` computed block by block,
so that the ``[tokens, vocab]`` logits never exist in memory, neither in the forward nor in the backward
pass: the output layer of a large-vocabulary language model (Apple's Cut Cross-Entropy, Liger Kernel's
fused linear cross-entropy, PyTorch's ``linear_cross_entropy``).
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxloss import _core

__all__ = ["linear_cross_entropy"]

DEFAULT_CHUNK_SIZE = 4096
# Row blocks of the one-pass gradient are at least this tall (or all the rows): thinner blocks would turn
# the ``[rows, hidden] @ [hidden, vocab]`` products into memory-bound matrix-vector products.
_MIN_ROWS = 64


# ---------------------------------------------------------------------------------------------------------
# Block loops with static shapes: full blocks in a fori_loop, the remainder once, outside it
# ---------------------------------------------------------------------------------------------------------


def _blocks(total: int, size: int):
    """``(number of full blocks, block size, tail size)`` for ``total`` items in blocks of ``size``."""
    size = max(1, min(size, total))
    return total // size, size, total % size


def _loop(total: int, size: int, step, carry):
    """Runs ``carry = step(carry, start, size)`` over ``[0, total)`` in blocks; the tail has a static size."""
    n_full, size, tail = _blocks(total, size)
    if n_full == 1:
        carry = step(carry, 0, size)
    elif n_full > 1:
        carry = lax.fori_loop(0, n_full, lambda i, c: step(c, i * size, size), carry)
    if tail:
        carry = step(carry, n_full * size, tail)
    return carry


def _logits(h, w, b, start, size, axis):
    """A block of ``z = h @ w + b`` in ``h``'s dtype: columns ``start:start+size`` of ``w`` (``axis=1``), or
    all columns for rows ``start:start+size`` of ``h`` (``axis=0``). Also returns the operands used."""
    dtype = h.dtype
    if axis == 1:
        w = lax.dynamic_slice_in_dim(w, start, size, axis=1)
        b = None if b is None else lax.dynamic_slice_in_dim(b, start, size)
    else:
        h = lax.dynamic_slice_in_dim(h, start, size, axis=0)
    w = w.astype(dtype)
    z = jnp.dot(h, w, preferred_element_type=dtype)
    if b is not None:
        z = z + b.astype(dtype)[None, :]
    return z, h, w


# ---------------------------------------------------------------------------------------------------------
# Path 1 (any cotangent): per-row statistics over vocabulary chunks, logits recomputed in the backward
# ---------------------------------------------------------------------------------------------------------


def _stats_forward(h, w, b, y, chunk):
    """``(logsumexp(z), z[y], sum(z))`` per row of ``z = h @ w + b``: an online log-sum-exp over chunks."""
    n = h.shape[0]

    def step(carry, start, size):
        m, s, xy, sx = carry
        z, _, _ = _logits(h, w, b, start, size, axis=1)
        m_new = jnp.maximum(m, jnp.max(z, axis=1))
        s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(z - m_new[:, None]), axis=1)
        is_y = (start + jnp.arange(size))[None, :] == y[:, None]
        xy = xy + jnp.sum(jnp.where(is_y, z, 0.0), axis=1)
        return m_new, s, xy, sx + jnp.sum(z, axis=1)

    zeros = jnp.zeros((n,), h.dtype)
    m, s, xy, sx = _loop(w.shape[1], chunk, step, (jnp.full((n,), -jnp.inf, h.dtype), zeros, zeros, zeros))
    return m + jnp.log(s), xy, sx


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _row_stats(h, w, b, y, chunk):
    return _stats_forward(h, w, b, y, chunk)


def _row_stats_fwd(h, w, b, y, chunk):
    lse, xy, sx = _stats_forward(h, w, b, y, chunk)
    return (lse, xy, sx), (h, w, b, y, lse)


def _row_stats_bwd(chunk, res, cts):
    h, w, b, y, lse = res
    g_lse, g_xy, g_sx = cts

    def step(carry, start, size):
        dh, dw, db = carry
        z, _, wc = _logits(h, w, b, start, size, axis=1)
        is_y = (start + jnp.arange(size))[None, :] == y[:, None]
        # d/dz of g_lse * lse + g_xy * z[y] + g_sx * sum(z): softmax, label indicator, ones.
        dz = g_lse[:, None] * jnp.exp(z - lse[:, None]) + g_sx[:, None] + jnp.where(is_y, g_xy[:, None], 0.0)
        dh = dh + jnp.dot(dz, wc.T, preferred_element_type=h.dtype)
        dwc = jnp.dot(h.T, dz, preferred_element_type=h.dtype)
        dw = lax.dynamic_update_slice_in_dim(dw, dwc.astype(dw.dtype), start, axis=1)
        if db is not None:
            db = lax.dynamic_update_slice_in_dim(db, jnp.sum(dz, axis=0).astype(db.dtype), start, axis=0)
        return dh, dw, db

    init = (jnp.zeros(h.shape, h.dtype), jnp.zeros(w.shape, w.dtype), None if b is None else jnp.zeros(b.shape, b.dtype))
    dh, dw, db = _loop(w.shape[1], chunk, step, init)
    return dh, dw, db, None


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


# ---------------------------------------------------------------------------------------------------------
# Path 2 (scalar result): the weighted sum of the losses, with all gradients computed in one pass
# ---------------------------------------------------------------------------------------------------------


def _weighted_total(lse, xy, sx, c1, c2, c3, vocab):
    """``sum_n c1 (lse - z_y) + c2 (lse - mean(z)) + c3 lse^2`` and its three per-row terms."""
    t1, t2, t3 = lse - xy, lse - sx / vocab, jnp.square(lse)
    return jnp.sum(c1 * t1 + c2 * t2 + c3 * t3), (t1, t2, t3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _total(h, w, b, y, c1, c2, c3, chunk):
    lse, xy, sx = _stats_forward(h, w, b, y, chunk)
    return _weighted_total(lse, xy, sx, c1, c2, c3, w.shape[1])[0]


def _row_block(n: int, vocab: int, chunk: int) -> int:
    """Rows per block so that a ``[rows, vocab]`` block holds at most ``n * chunk`` logits."""
    return max(1, min(n, (n * chunk) // max(vocab, 1)))


def _rows_fit(n: int, vocab: int, chunk: int) -> bool:
    """Whether row blocks within the memory budget are tall enough (``_MIN_ROWS``, or all the rows) for
    efficient ``[rows, hidden] @ [hidden, vocab]`` products."""
    return (n * chunk) // max(vocab, 1) >= min(n, _MIN_ROWS)


def _total_fwd(h, w, b, y, c1, c2, c3, chunk):
    """Value and all gradients in one pass over row blocks: three matrix products, like the naive path."""
    n = h.shape[0]
    vocab = w.shape[1]

    def row_step(carry, start, size):
        dh, dw, db, lse_all, xy_all, sx_all = carry
        z, hr, _ = _logits(h, w, b, start, size, axis=0)
        yr, a1, a2, a3 = (lax.dynamic_slice_in_dim(v, start, size) for v in (y, c1, c2, c3))
        m = jnp.max(z, axis=1)
        e = jnp.exp(z - m[:, None])
        s = jnp.sum(e, axis=1)
        lse = m + jnp.log(s)
        is_y = jnp.arange(vocab)[None, :] == yr[:, None]
        xy = jnp.sum(jnp.where(is_y, z, 0.0), axis=1)
        sx = jnp.sum(z, axis=1)
        g_lse = a1 + a2 + 2.0 * a3 * lse
        dz = (g_lse / s)[:, None] * e - (a2 / vocab)[:, None] - jnp.where(is_y, a1[:, None], 0.0)
        dh = lax.dynamic_update_slice_in_dim(dh, jnp.dot(dz, w.T, preferred_element_type=h.dtype), start, axis=0)

        def col_step(dw, c0, csize):  # dw[:, block] += hr.T @ dz[:, block], in place
            dzc = lax.dynamic_slice_in_dim(dz, c0, csize, axis=1)
            old = lax.dynamic_slice_in_dim(dw, c0, csize, axis=1)
            return lax.dynamic_update_slice_in_dim(dw, old + jnp.dot(hr.T, dzc, preferred_element_type=h.dtype), c0, axis=1)

        dw = _loop(vocab, chunk, col_step, dw)
        if db is not None:
            db = db + jnp.sum(dz, axis=0)
        stats = tuple(
            lax.dynamic_update_slice_in_dim(acc, v, start, axis=0) for acc, v in ((lse_all, lse), (xy_all, xy), (sx_all, sx))
        )
        return (dh, dw, db) + stats

    zeros = jnp.zeros((n,), h.dtype)
    init = (jnp.zeros(h.shape, h.dtype), jnp.zeros(w.shape, h.dtype), None if b is None else jnp.zeros(b.shape, h.dtype),
            zeros, zeros, zeros)
    dh, dw, db, lse, xy, sx = _loop(n, _row_block(n, vocab, chunk), row_step, init)
    total, terms = _weighted_total(lse, xy, sx, c1, c2, c3, vocab)
    return total, (dh, dw.astype(w.dtype), None if db is None else db.astype(b.dtype), terms)


def _total_bwd(chunk, res, g):
    dh, dw, db, terms = res
    scale = lambda x: None if x is None else (g * x).astype(x.dtype)  # noqa: E731
    return (scale(dh), scale(dw), scale(db), None) + tuple(g * t for t in terms)


_total.defvjp(_total_fwd, _total_bwd)


# ---------------------------------------------------------------------------------------------------------
# Public loss
# ---------------------------------------------------------------------------------------------------------


def _prepare(hidden, weight, labels, bias, where, reduction, ignore_index):
    """Validates the inputs; returns the loss context, rows ``h`` [N, H] (masked rows 0) and labels [N]."""
    _core.check_reduction(reduction)
    hidden = _core.float_array(hidden, "hidden")
    weight = _core.float_array(weight, "weight")
    if hidden.ndim == 0:
        raise ValueError("hidden must have at least one dimension (the hidden features); got a scalar")
    if weight.ndim != 2 or weight.shape[0] != hidden.shape[-1]:
        raise ValueError(
            f"weight must have shape (hidden, vocab) = ({hidden.shape[-1]}, vocab) for hidden of shape "
            f"{hidden.shape}; got weight.shape={weight.shape}"
        )
    vocab = weight.shape[1]
    dtypes = [hidden.dtype, weight.dtype]
    if bias is not None:
        bias = _core.float_array(bias, "bias")
        if bias.shape != (vocab,):
            raise ValueError(f"bias must have shape ({vocab},) (one per class); got bias.shape={bias.shape}")
        dtypes.append(bias.dtype)
    labels = _core.int_array(labels, "labels", "linear_cross_entropy takes integer labels only")
    loss_shape = hidden.shape[:-1]
    if labels.shape != loss_shape:
        raise ValueError(
            f"labels must have the shape of hidden without its last axis; got hidden.shape={hidden.shape} "
            f"and labels.shape={labels.shape} (expected {loss_shape})"
        )
    out_dtype = jnp.result_type(*dtypes)
    dtype = _core.compute_dtype(out_dtype)
    # The label handling of _core.prepare_classes, without the [..., vocab] logits it would need.
    mask = _core._make_mask(where, loss_shape)
    if ignore_index is not None:
        mask = _core._and_mask(mask, labels != ignore_index)
    in_range = (labels >= 0) & (labels < vocab)
    considered = in_range if mask is None else (in_range | ~mask)
    _core.value_check(
        considered, f"labels must lie in [0, {vocab}) (or equal ignore_index / be masked); found a label out of range"
    )
    ctx = _core.LossContext(tuple(loss_shape), mask, dtype, out_dtype, reduction, invalid=~considered)
    y = jnp.where(in_range if mask is None else (in_range & mask), labels, 0).astype(jnp.int32).reshape(-1)
    h = ctx.fill(hidden.astype(dtype)).reshape(-1, hidden.shape[-1])
    return ctx, h, weight, bias, y


@_core.domain(labels=_core.CLASS_LABELS, label_smoothing=_core.PROBABILITY, z_loss=_core.NONNEGATIVE)
def linear_cross_entropy(
    hidden,
    weight,
    labels,
    *,
    bias=None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    ignore_index: Optional[int] = None,
    label_smoothing=0.0,
    z_loss=0.0,
    where=None,
    weights=None,
    reduction: str = "mean",
):
    """Cross-entropy of the logits ``hidden @ weight + bias``, never materialising the ``[..., vocab]`` logits.

    The value and the gradients with respect to ``hidden``, ``weight`` and ``bias`` are those of
    ``jaxloss.cross_entropy(hidden @ weight + bias, labels, label_smoothing=, ignore_index=, z_loss=,
    where=, weights=, reduction=)`` (same formula, same weighted-mean convention), but the logits exist only
    one block at a time, in the compute dtype (float32 for bf16/f16 inputs; the result and the gradients
    are cast back to the inputs' dtypes). For ``N`` rows and ``V`` classes a block holds about
    ``N * chunk_size`` logits, instead of the ``N * V`` that the naive path keeps for the backward pass.

    Two exact algorithms, chosen statically:

    * ``reduction="mean"`` / ``"sum"`` with a float32 (or float64) ``weight``, when blocks of at least 64
      rows (or all of them) against the whole vocabulary fit in ``N * chunk_size`` logits: one pass over
      the row blocks computes the value *and* all the gradients (saved for the backward pass, which only
      scales them): three matrix products, as many as the naive path. The weight gradient is accumulated in
      place, in the buffer that becomes the gradient.
    * otherwise (``reduction="none"``; a bf16 weight, whose gradient should not be accumulated across row
      blocks in a float32 copy of the whole weight; or a vocabulary too large for such row blocks): an
      online log-sum-exp over vocabulary chunks of ``chunk_size`` classes, and a backward pass that
      recomputes each chunk of logits (four products).

    Without gradients (a plain forward) both use the online log-sum-exp: one product.

    Layout: ``weight`` is ``[hidden, vocab]``, so the logits are ``hidden @ weight`` as in the formula
    above and as in a Flax ``nn.Dense`` kernel (JAX's ``[in, out]`` convention). PyTorch's
    ``linear_cross_entropy`` takes ``nn.Linear``'s ``[vocab, hidden]``; for such a weight (or a tied
    ``nn.Embed`` table) pass ``weight.T``; under ``jit`` the transpose costs one copy of the weight, not of
    the logits.

    Args:
      hidden: float ``[..., H]``: the features of each token (any leading shape).
      weight: float ``[H, V]``: the output projection.
      labels: int ``[...]`` (``hidden``'s shape without its last axis): the class of each token. Only
        integer labels are accepted (probability targets would be a ``[..., V]`` array themselves).
      bias: optional float ``[V]``.
      chunk_size: static block size, in classes: sets the memory held by one block of logits (about
        ``N * chunk_size`` values). Any vocabulary size works (the last chunk may be shorter).
      ignore_index: labels equal to it are masked (PyTorch's habit).
      label_smoothing: ``eps`` in ``[0, 1]``: ``(1 - eps) * (lse - z_y) + eps * (lse - mean_c z_c)``;
        may be traced.
      z_loss: coefficient of the log-partition penalty ``z_loss * lse^2`` (PaLM); may be traced.
      where: optional boolean mask of tokens, broadcastable to ``labels``' shape.
      weights: optional per-token weights, broadcastable to ``labels``' shape.
      reduction: ``"mean"`` (weighted mean over unmasked tokens), ``"sum"`` or ``"none"`` (per token).

    Returns:
      a scalar, or per-token losses of ``labels``' shape for ``reduction="none"``, in the result dtype of
      ``hidden``, ``weight`` and ``bias``.

    Raises:
      TypeError: non-float ``hidden``/``weight``/``bias`` or non-integer labels. ValueError: shapes that do
      not fit, a bad ``chunk_size`` or reduction.

    Labels out of ``[0, V)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them. Works under
    ``jit``, ``vmap`` and ``grad`` (reverse mode; it is a ``jax.custom_vjp``, so forward-mode ``jvp`` is
    not available).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> hidden = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> weight = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
      >>> print(round(float(jaxloss.linear_cross_entropy(hidden, weight, jnp.array([0, 2]), chunk_size=2)), 4))
      0.6691

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2024 (Cut Cross-Entropy).
      Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training", 2024.
    """
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
    ctx, h, weight, bias, y = _prepare(hidden, weight, labels, bias, where, reduction, ignore_index)
    ctx = ctx.enforce(linear_cross_entropy, label_smoothing=label_smoothing, z_loss=z_loss)
    chunk = int(chunk_size)
    vocab = weight.shape[1]
    eps, z = ctx.cast(label_smoothing), ctx.cast(z_loss)

    one_pass = reduction != "none" and jnp.dtype(weight.dtype) == ctx.dtype and _rows_fit(h.shape[0], vocab, chunk)
    if not one_pass:
        lse, xy, sx = (a.reshape(ctx.loss_shape) for a in _row_stats(h, weight, bias, y, chunk))
        loss = (1.0 - eps) * (lse - xy) + eps * (lse - sx / vocab) + z * jnp.square(lse)
        return ctx.reduce(loss, weights=weights)

    # The reduction is linear in the per-token losses: total = sum_n a_n * loss_n, with a_n (weights, mask,
    # mean denominator) read off ctx.reduce itself so that the convention is exactly the shared one.
    zeros = jnp.zeros(ctx.loss_shape, ctx.dtype)
    _, pullback = jax.vjp(lambda l: ctx.reduce(l, weights=weights), zeros)
    (a,) = pullback(jnp.ones((), ctx.out_dtype))
    a = a.astype(ctx.dtype).reshape(-1)
    total = _total(h, weight, bias, y, a * (1.0 - eps), a * eps, a * z, chunk)
    if ctx.invalid is not None:  # an out-of-range label gives NaN, as in ctx.reduce
        total = total + jnp.where(jnp.any(ctx.invalid), jnp.nan, 0.0).astype(total.dtype)
    return total.astype(ctx.out_dtype)
