"""Fused losses: a linear layer and its loss in one pass, for output layers too large to materialise.

:func:`linear_cross_entropy` is the cross-entropy of ``hidden @ weight + bias`` computed block by block,
so that the ``[tokens, vocab]`` logits never exist in memory, neither in the forward nor in the backward
pass: the output layer of a large-vocabulary language model (Apple's Cut Cross-Entropy, Liger Kernel's
fused linear cross-entropy, PyTorch's ``linear_cross_entropy``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction

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


def _slice(x, start, size, axis):
    return None if x is None else lax.dynamic_slice_in_dim(x, start, size, axis=axis)


# ---------------------------------------------------------------------------------------------------------
# Layout: how the kernels below see their operands. On one device (or with replicated inputs) everything
# is local. Under a sharded jit, the partitioning rules at the end of this section give every device its
# rows (tokens) and its vocabulary shard; the kernels then combine [tokens]-sized statistics across the
# vocabulary shards, and parameter-sized gradients across the token shards, with collectives.
# ---------------------------------------------------------------------------------------------------------


class _Layout(NamedTuple):
    """``n_axes``: mesh axes sharding the rows; ``v_axes`` / ``v_sizes``: mesh axes (and sizes) sharding
    the vocabulary; ``vocab``: the global vocabulary size."""

    n_axes: Tuple[str, ...]
    v_axes: Tuple[str, ...]
    v_sizes: Tuple[int, ...]
    vocab: int


def _local_layout(vocab: int) -> _Layout:
    return _Layout((), (), (), vocab)


def _psum(x, axes):
    return lax.psum(x, axes) if axes else x


def _vocab_offset(layout: _Layout, local_vocab: int):
    """The global index of this device's first class (0 without vocabulary sharding)."""
    index: Any = 0
    for axis, size in zip(layout.v_axes, layout.v_sizes):
        index = index * size + lax.axis_index(axis)
    return index * local_vocab


def _vocab_chunk(chunk: int, layout: _Layout) -> int:
    """Classes per chunk on one device: the chunk is divided among the vocabulary shards, so that the
    devices together hold the logits that one device holds unsharded."""
    shards = int(np.prod(layout.v_sizes, dtype=np.int64)) if layout.v_sizes else 1
    return max(1, -(-chunk // shards))


def _target_coef(t, u_c, classes, kind):
    """``d ty / d z`` on a block: the label indicator (integer labels) or ``u_c * t`` (probabilities)."""
    if kind == "labels":
        return classes[None, :] == t[:, None]
    return u_c[None, :] * t


def _times(coef, x, kind):
    """``coef * x`` for a block (``coef`` as returned by :func:`_target_coef`)."""
    return jnp.where(coef, x, 0.0) if kind == "labels" else coef * x


def _logits_block(h, w, b):
    """``h @ w + b`` in ``h``'s dtype (``w`` and ``b`` are cast block by block)."""
    z = jnp.dot(h, w.astype(h.dtype), preferred_element_type=h.dtype)
    return z if b is None else z + b.astype(h.dtype)[None, :]


# ---------------------------------------------------------------------------------------------------------
# Local kernels. Per row of z = h @ w + b they compute
#   lse = logsumexp_c z_c,   ty = z_y (labels) or sum_c u_c t_c z_c (probabilities),   su = sum_c u_c z_c
# (u: the class weights, ones without them) and the gradients of any combination of these.
# ---------------------------------------------------------------------------------------------------------


def _stats_local(h, w, b, u, t, *, chunk, kind, layout):
    """``(lse, ty, su)`` per row: an online log-sum-exp over vocabulary chunks, then across shards."""
    n, local_vocab = h.shape[0], w.shape[1]
    offset = _vocab_offset(layout, local_vocab)

    def step(carry, start, size):
        m, s, ty, su = carry
        z = _logits_block(h, _slice(w, start, size, 1), _slice(b, start, size, 0))
        u_c = _slice(u, start, size, 0).astype(h.dtype)
        t_c = t if kind == "labels" else _slice(t, start, size, 1)
        coef = _target_coef(t_c, u_c, offset + start + jnp.arange(size), kind)
        m_new = jnp.maximum(m, jnp.max(z, axis=1))
        s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(z - m_new[:, None]), axis=1)
        return m_new, s, ty + jnp.sum(_times(coef, z, kind), axis=1), su + jnp.dot(z, u_c)

    zeros = jnp.zeros((n,), h.dtype)
    init = (jnp.full((n,), -jnp.inf, h.dtype), zeros, zeros, zeros)
    m, s, ty, su = _loop(local_vocab, _vocab_chunk(chunk, layout), step, init)
    if layout.v_axes:  # [tokens]-sized collectives: the running max, then the rescaled sums
        m_all = lax.pmax(m, layout.v_axes)
        s, ty, su = lax.psum((s * jnp.exp(m - m_all), ty, su), layout.v_axes)
        m = m_all
    return m + jnp.log(s), ty, su


def _stats_bwd_local(h, w, b, u, t, lse, g_lse, g_ty, g_su, *, chunk, kind, layout):
    """Gradients of ``sum_n g_lse lse + g_ty ty + g_su su``, recomputing each chunk of logits."""
    local_vocab = w.shape[1]
    offset = _vocab_offset(layout, local_vocab)

    def step(carry, start, size):
        dh, dw, db = carry
        w_c = _slice(w, start, size, 1)
        z = _logits_block(h, w_c, _slice(b, start, size, 0))
        u_c = _slice(u, start, size, 0).astype(h.dtype)
        t_c = t if kind == "labels" else _slice(t, start, size, 1)
        coef = _target_coef(t_c, u_c, offset + start + jnp.arange(size), kind)
        dz = (
            g_lse[:, None] * jnp.exp(z - lse[:, None])
            + g_su[:, None] * u_c[None, :]
            + _times(coef, g_ty[:, None], kind)
        )
        dh = dh + jnp.dot(dz, w_c.astype(h.dtype).T, preferred_element_type=h.dtype)
        # this chunk's weight and bias gradients, summed over the token shards (parameter-sized, chunk by
        # chunk, so that no device holds a partial gradient of the whole weight)
        dw_c, db_c = _psum((jnp.dot(h.T, dz, preferred_element_type=h.dtype), jnp.sum(dz, axis=0)), layout.n_axes)
        dw = lax.dynamic_update_slice_in_dim(dw, dw_c.astype(dw.dtype), start, axis=1)
        db = lax.dynamic_update_slice_in_dim(db, db_c.astype(db.dtype), start, axis=0)
        return dh, dw, db

    init = (jnp.zeros(h.shape, h.dtype), jnp.zeros(w.shape, w.dtype), jnp.zeros(b.shape, b.dtype))
    dh, dw, db = _loop(local_vocab, _vocab_chunk(chunk, layout), step, init)
    # the hidden gradient sums over the vocabulary shards: one [tokens, hidden] collective
    return _psum(dh, layout.v_axes), dw, db


def _row_block(n: int, vocab: int, chunk: int) -> int:
    """Rows per block so that a ``[rows, vocab]`` block holds at most ``n * chunk`` logits."""
    return max(1, min(n, (n * chunk) // max(vocab, 1)))


def _rows_fit(n: int, vocab: int, chunk: int) -> bool:
    """Whether row blocks within the memory budget are tall enough (``_MIN_ROWS``, or all the rows) for
    efficient ``[rows, hidden] @ [hidden, vocab]`` products."""
    return (n * chunk) // max(vocab, 1) >= min(n, _MIN_ROWS)


def _one_pass_local(h, w, b, u, t, k_lse, k_ty, k_su, k_sq, *, chunk, kind, layout):
    """``(lse, ty, su)`` and the gradients of ``sum_n k_lse lse + k_ty ty + k_su su + k_sq lse^2`` in one
    pass over row blocks against the (local) vocabulary: three matrix products, like the naive path."""
    if layout.n_axes:
        # Tokens sharded: the one-pass weight gradient would be a partial sum of the whole (local) weight
        # on every device before its reduction; the two-pass form reduces it chunk by chunk instead.
        lse, ty, su = _stats_local(h, w, b, u, t, chunk=chunk, kind=kind, layout=layout)
        grads = _stats_bwd_local(
            h, w, b, u, t, lse, k_lse + 2.0 * k_sq * lse, k_ty, k_su, chunk=chunk, kind=kind, layout=layout
        )
        return (lse, ty, su) + grads
    n, local_vocab = h.shape[0], w.shape[1]
    offset = _vocab_offset(layout, local_vocab)
    classes = offset + jnp.arange(local_vocab)
    u = u.astype(h.dtype)
    v_axes = layout.v_axes

    def row_step(carry, start, size):
        dh, dw, db, lse_all, ty_all, su_all = carry
        hr = _slice(h, start, size, 0)
        z = _logits_block(hr, w, b)
        tr = _slice(t, start, size, 0)
        a_lse, a_ty, a_su, a_sq = (_slice(k, start, size, 0) for k in (k_lse, k_ty, k_su, k_sq))
        m = jnp.max(z, axis=1)
        if v_axes:
            m = lax.pmax(m, v_axes)
        e = jnp.exp(z - m[:, None])
        coef = _target_coef(tr, u, classes, kind)
        s, ty, su = _psum((jnp.sum(e, axis=1), jnp.sum(_times(coef, z, kind), axis=1), jnp.dot(z, u)), v_axes)
        lse = m + jnp.log(s)
        g_lse = a_lse + 2.0 * a_sq * lse
        dz = (g_lse / s)[:, None] * e + a_su[:, None] * u[None, :] + _times(coef, a_ty[:, None], kind)
        # this block's rows of the hidden gradient, summed over the vocabulary shards ([rows, hidden])
        dh_r = _psum(jnp.dot(dz, w.astype(h.dtype).T, preferred_element_type=h.dtype), v_axes)
        dh = lax.dynamic_update_slice_in_dim(dh, dh_r, start, axis=0)

        def col_step(dw, c0, csize):  # dw[:, block] += hr.T @ dz[:, block], in place
            dzc = lax.dynamic_slice_in_dim(dz, c0, csize, axis=1)
            old = lax.dynamic_slice_in_dim(dw, c0, csize, axis=1)
            return lax.dynamic_update_slice_in_dim(
                dw, old + jnp.dot(hr.T, dzc, preferred_element_type=h.dtype), c0, axis=1
            )

        dw = _loop(local_vocab, _vocab_chunk(chunk, layout), col_step, dw)
        db = db + jnp.sum(dz, axis=0)
        stats = tuple(
            lax.dynamic_update_slice_in_dim(acc, v, start, axis=0)
            for acc, v in ((lse_all, lse), (ty_all, ty), (su_all, su))
        )
        return (dh, dw, db) + stats

    zeros = jnp.zeros((n,), h.dtype)
    init = (jnp.zeros(h.shape, h.dtype), jnp.zeros(w.shape, h.dtype), jnp.zeros(b.shape, h.dtype), zeros, zeros, zeros)
    # Row blocks sized from the global vocabulary: a device's block is its share of one device's block.
    dh, dw, db, lse, ty, su = _loop(n, _row_block(n, layout.vocab, chunk), row_step, init)
    return lse, ty, su, dh, dw.astype(w.dtype), db.astype(b.dtype)


# ---------------------------------------------------------------------------------------------------------
# Partitioning rules: the kernels as custom-partitioned operations, so that a plain ``jax.jit`` with
# ``NamedSharding`` inputs runs them on local shards (no all-gather of the weight or of logits). Rows
# (tokens) keep the mesh axes that shard ``hidden``'s first axis, classes those that shard ``weight``'s
# second axis (an axis used for both goes to the vocabulary; the rows are then gathered, which moves
# [tokens, hidden] data, never logits). The hidden axis is never split. Under ``vmap`` the operations
# fall back to the vmapped local kernels.
# ---------------------------------------------------------------------------------------------------------


def _spec_axes(sharding, dim: int, size: int, mesh) -> Tuple[str, ...]:
    """The mesh axes that shard dimension ``dim`` (of global ``size``); none if it does not divide evenly."""
    if not isinstance(sharding, NamedSharding):
        return ()
    spec = tuple(sharding.spec)
    entry = spec[dim] if dim < len(spec) else None
    axes = () if entry is None else ((entry,) if isinstance(entry, str) else tuple(entry))
    shards = int(np.prod([mesh.shape[a] for a in axes], dtype=np.int64)) if axes else 1
    return axes if size % shards == 0 else ()


def _partition_layout(mesh, arg_shapes):
    h, w = arg_shapes[0], arg_shapes[1]
    v_axes = _spec_axes(w.sharding, 1, w.shape[1], mesh)
    n_axes = tuple(a for a in _spec_axes(h.sharding, 0, h.shape[0], mesh) if a not in v_axes)
    if n_axes and h.shape[0] % int(np.prod([mesh.shape[a] for a in n_axes])):
        n_axes = ()
    layout = _Layout(n_axes, v_axes, tuple(mesh.shape[a] for a in v_axes), w.shape[1])
    n, v = (n_axes or None), (v_axes or None)
    named = lambda *spec: NamedSharding(mesh, P(*spec))  # noqa: E731
    return layout, dict(row=named(n), h=named(n, None), w=named(None, v), vec=named(v), probs=named(n, v))


def _operand_shardings(sh, kind):
    return (sh["h"], sh["w"], sh["vec"], sh["vec"], sh["row"] if kind == "labels" else sh["probs"])


def _rule(kind, extra_in, outs):
    t = "n" if kind == "labels" else "n v"
    return f"n k, k v, v, v, {t}{', n' * extra_in} -> {outs}"


def _def_op(local, n_rows_in, outs, out_kinds):
    """A custom-partitioned operation running ``local(h, w, b, u, t, *rows, chunk=, kind=, layout=)``."""

    @functools.partial(custom_partitioning, static_argnums=(0, 1))
    def op(chunk, kind, *args):
        return local(*args, chunk=chunk, kind=kind, layout=_local_layout(args[1].shape[1]))

    def partition(chunk, kind, mesh, arg_shapes, result_shape):
        layout, sh = _partition_layout(mesh, arg_shapes)
        args = _operand_shardings(sh, kind) + (sh["row"],) * n_rows_in
        results = tuple(sh[k] for k in out_kinds)
        return mesh, functools.partial(local, chunk=chunk, kind=kind, layout=layout), results, args

    def rule(chunk, kind, mesh, operand_types, result_types):
        return _rule(kind, n_rows_in, outs), dict(
            reduction_factors=tuple(f for f in ("k", "v") if f not in outs.replace(",", " ").split())
        )

    op.def_partition(partition=partition, sharding_rule=rule)

    def call(chunk, kind, *args):
        plain = functools.partial(local, chunk=chunk, kind=kind, layout=_local_layout(args[1].shape[-1]))
        f = custom_vmap(lambda *a: op(chunk, kind, *a))

        @f.def_vmap
        def _(axis_size, in_batched, *a):  # no batching rule for a custom partitioning: vmap the kernel
            local_fn = functools.partial(local, chunk=chunk, kind=kind, layout=_local_layout(a[1].shape[-1]))
            out = jax.vmap(local_fn, in_axes=[0 if bat else None for bat in in_batched], axis_size=axis_size)(*a)
            return out, (True,) * len(out)

        # Higher-order derivatives (differentiating the backward pass) go through the plain kernel.
        g = jax.custom_jvp(lambda *a: tuple(f(*a)))
        g.defjvp(lambda primals, tangents: (tuple(f(*primals)), jax.jvp(plain, primals, tangents)[1]))
        return tuple(g(*args))

    return call


_stats = _def_op(_stats_local, 0, "n, n, n", ("row", "row", "row"))
_stats_bwd = _def_op(_stats_bwd_local, 4, "n k, k v, v", ("h", "w", "vec"))
_one_pass = _def_op(_one_pass_local, 4, "n, n, n, n k, k v, v", ("row", "row", "row", "h", "w", "vec"))


# ---------------------------------------------------------------------------------------------------------
# Differentiation rules. Path 1 (any cotangent): per-row statistics, logits recomputed in the backward.
# Path 2 (a scalar total): value and every gradient from one pass, saved for the backward.
# Class weights ``u`` and probability targets ``t`` are constants here (the public function says so).
# ---------------------------------------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _row_stats(h, w, b, u, t, chunk, kind):
    return _stats(chunk, kind, h, w, b, u, t)


def _row_stats_fwd(h, w, b, u, t, chunk, kind):
    lse, ty, su = _stats(chunk, kind, h, w, b, u, t)
    return (lse, ty, su), (h, w, b, u, t, lse)


def _zero_cotangent(x):
    return np.zeros(x.shape, jax.dtypes.float0) if not jnp.issubdtype(x.dtype, jnp.inexact) else jnp.zeros_like(x)


def _row_stats_bwd(chunk, kind, res, cts):
    h, w, b, u, t, lse = res
    dh, dw, db = _stats_bwd(chunk, kind, h, w, b, u, t, lse, *cts)
    return dh, dw, db, jnp.zeros_like(u), _zero_cotangent(t)


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


def _combine(lse, ty, su, k_lse, k_ty, k_su, k_sq):
    terms = (lse, ty, su, jnp.square(lse))
    return jnp.sum(k_lse * lse + k_ty * ty + k_su * su + k_sq * terms[3]), terms


@functools.partial(jax.custom_vjp, nondiff_argnums=(9, 10))
def _total(h, w, b, u, t, k_lse, k_ty, k_su, k_sq, chunk, kind):
    return _combine(*_stats(chunk, kind, h, w, b, u, t), k_lse, k_ty, k_su, k_sq)[0]


def _total_fwd(h, w, b, u, t, k_lse, k_ty, k_su, k_sq, chunk, kind):
    lse, ty, su, dh, dw, db = _one_pass(chunk, kind, h, w, b, u, t, k_lse, k_ty, k_su, k_sq)
    total, terms = _combine(lse, ty, su, k_lse, k_ty, k_su, k_sq)
    return total, (dh, dw, db, terms, u, t)


def _total_bwd(chunk, kind, res, g):
    dh, dw, db, terms, u, t = res
    scale = lambda x: (g * x).astype(x.dtype)  # noqa: E731
    return (scale(dh), scale(dw), scale(db), jnp.zeros_like(u), _zero_cotangent(t)) + tuple(g * x for x in terms)


_total.defvjp(_total_fwd, _total_bwd)


# ---------------------------------------------------------------------------------------------------------
# Public loss
# ---------------------------------------------------------------------------------------------------------


def _prepare(hidden, weight, labels, bias, where, reduction, ignore_index):
    """Validates the inputs; returns the loss context, rows ``h`` [N, H] (masked rows 0), the weight, the
    bias, the targets (labels [N] or probabilities [N, V]) and whether they are integer labels."""
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
    loss_shape = hidden.shape[:-1]
    out_dtype = jnp.result_type(*dtypes)
    dtype = _core.compute_dtype(out_dtype)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):  # probability targets [..., V]
        if labels.shape != loss_shape + (vocab,):
            raise ValueError(
                f"probability labels must have the shape of hidden with its last axis replaced by the vocabulary, "
                f"{loss_shape + (vocab,)}; got hidden.shape={hidden.shape}, weight.shape={weight.shape} and "
                f"labels.shape={labels.shape}"
            )
        if ignore_index is not None:
            raise ValueError("ignore_index applies to integer labels only; mask probability targets with where=")
        ctx = _core.context(loss_shape, out_dtype, where=where, reduction=reduction)
        t = ctx.fill(labels.astype(dtype))
        return ctx, ctx.fill(hidden.astype(dtype)).reshape(-1, hidden.shape[-1]), weight, bias, t, labels
    labels = _core.int_array(labels, "labels", "linear_cross_entropy takes integer labels or float probabilities")
    if labels.shape != loss_shape:
        raise ValueError(
            f"labels must have the shape of hidden without its last axis; got hidden.shape={hidden.shape} "
            f"and labels.shape={labels.shape} (expected {loss_shape})"
        )
    # The label handling of every class-axis loss, without the [..., vocab] logits it would need.
    ctx, y = _core.prepare_labels(
        labels,
        vocab,
        loss_shape=loss_shape,
        where=where,
        ignore_index=ignore_index,
        dtype=dtype,
        out_dtype=out_dtype,
        reduction=reduction,
    )
    y = y.astype(jnp.int32).reshape(-1)
    h = ctx.fill(hidden.astype(dtype)).reshape(-1, hidden.shape[-1])
    return ctx, h, weight, bias, y, labels


# CLASS_LABELS (not CLASS_OR_PROBABILITIES: probability targets have the vocabulary's width, not hidden's);
# its check of float labels is still the probability range [0, 1].
@_core.domain(labels=_core.CLASS_LABELS, label_smoothing=_core.PROBABILITY, z_loss=_core.NONNEGATIVE)
def linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Cross-entropy of the logits ``hidden @ weight + bias``, never materialising the ``[..., vocab]`` logits.

    The value and the gradients with respect to ``hidden``, ``weight`` and ``bias`` are those of
    ``jaxloss.cross_entropy(hidden @ weight + bias, labels, class_weights=, label_smoothing=,
    ignore_index=, z_loss=, where=, weights=, reduction=)`` (same formula, same weighted-mean conventions,
    for integer labels and for probability targets alike), but the logits exist only one block at a time,
    in the compute dtype (float32 for bf16/f16 inputs; the result and the gradients are cast back to the
    inputs' dtypes). For ``N`` rows and ``V`` classes a block holds about ``N * chunk_size`` logits, instead
    of the ``N * V`` that the naive path keeps for the backward pass.

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

    **Many devices.** Under ``jax.jit`` with ``NamedSharding`` inputs nothing else is needed (no mesh or
    axis argument): the blocks are custom-partitioned operations that run on each device's shards.

    * Vocabulary parallel (``weight`` sharded on its vocabulary axis, ``P(None, "v")``; ``bias`` and
      ``class_weights`` ``P("v")``): each device computes its chunks' log-sum-exp, label logit and sums
      over its own classes, combined across the shards by collectives over ``[tokens]``-sized statistics;
      in the backward pass each device forms the gradient of its weight shard (which comes back sharded
      like the weight) and the partial hidden gradients are summed (``[tokens, hidden]``). No device
      holds the whole weight, its gradient or a block of logits wider than its share: the vocabulary chunk
      and the row blocks are those of one device, divided among the vocabulary shards, so that per-device
      memory falls with the number of shards.
    * Data parallel (``hidden``, ``labels``, ``where``, ``weights`` sharded on tokens, ``P("b", ...)``):
      each device works on its own rows; the loss and ``hidden``'s gradient keep the token sharding, and
      the weight gradient (replicated, like a replicated weight) is summed across the token shards once.
    * Both at once on a 2-D mesh (tokens on one axis, vocabulary on another). An axis that shards both the
      tokens and the vocabulary is used for the vocabulary (the rows are gathered: ``[tokens, hidden]``
      data moves, never logits). The hidden axis is never split (a sharded one is gathered).

    Under ``vmap`` the blocks run as vmapped single-device code.

    Layout: ``weight`` is ``[hidden, vocab]``, so the logits are ``hidden @ weight`` as in the formula
    above and as in a Flax ``nn.Dense`` kernel (JAX's ``[in, out]`` convention). PyTorch's
    ``linear_cross_entropy`` takes ``nn.Linear``'s ``[vocab, hidden]``; for such a weight (or a tied
    ``nn.Embed`` table) pass ``weight.T``; under ``jit`` the transpose costs one copy of the weight, not of
    the logits.

    Args:
      hidden: float ``[..., H]``: the features of each token (any leading shape).
      weight: float ``[H, V]``: the output projection.
      labels: int ``[...]`` (``hidden``'s shape without its last axis), the class of each token in
        ``[0, V)``; or float probability targets ``[..., V]`` (each row a distribution over the classes),
        read chunk by chunk like the weight. Gradients do not flow into probability targets (they are data).
      bias: optional float ``[V]``.
      chunk_size: static block size, in classes: sets the memory held by one block of logits (about
        ``N * chunk_size`` values). Any vocabulary size works (the last chunk may be shorter).
      class_weights: optional ``[V]`` weight per class (PyTorch's ``weight=``): integer labels give
        ``w[y] * (lse - z_y)`` and ``"mean"`` divides by ``sum w[y]``; probability targets weight each
        class's term, and ``"mean"`` is the plain mean (as in :func:`jaxloss.cross_entropy`). Not
        differentiated.
      ignore_index: labels equal to it are masked (PyTorch's habit); integer labels only.
      label_smoothing: ``eps`` in ``[0, 1]``: ``(1 - eps) * (lse - z_y) + eps * (lse - mean_c z_c)`` (with
        class weights, :func:`jaxloss.cross_entropy`'s form); may be traced.
      z_loss: coefficient of the log-partition penalty ``z_loss * lse^2`` (PaLM; weighted by ``w[y]`` with
        class weights and integer labels); may be traced.
      where: optional boolean mask of tokens, broadcastable to ``labels``' shape (without the class axis).
      weights: optional per-token weights, broadcastable to the tokens' shape.
      reduction: ``"mean"`` (weighted mean over unmasked tokens), ``"sum"`` or ``"none"`` (per token).

    Returns:
      a scalar, or per-token losses of the tokens' shape for ``reduction="none"``, in the result dtype of
      ``hidden``, ``weight`` and ``bias``.

    Raises:
      TypeError: non-float ``hidden``/``weight``/``bias`` or labels neither integer nor float.
      ValueError: shapes that do not fit, a bad ``chunk_size`` or reduction.

    Labels out of ``[0, V)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them. Works under
    ``jit``, ``vmap`` and ``grad`` (reverse mode; it is a ``jax.custom_vjp``, so forward-mode ``jvp`` is
    not available).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> hidden = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> weight = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
      >>> print(round(float(jaxloss.linear_cross_entropy(hidden, weight, jnp.array([0, 2]), chunk_size=2)), 4))
      0.6691
      >>> probs = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # the same targets as probabilities
      >>> print(round(float(jaxloss.linear_cross_entropy(hidden, weight, probs, chunk_size=2)), 4))
      0.6691

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2024 (Cut Cross-Entropy).
      Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training", 2024.
    """
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
    ctx, h, weight, bias, t, labels = _prepare(hidden, weight, labels, bias, where, reduction, ignore_index)
    ctx = ctx.enforce(linear_cross_entropy, labels=labels, label_smoothing=label_smoothing, z_loss=z_loss)
    is_int = t.ndim == 1 and jnp.issubdtype(t.dtype, jnp.integer)
    t = t if is_int else t.reshape(-1, weight.shape[1])
    chunk, kind = int(chunk_size), "labels" if is_int else "probs"
    vocab = weight.shape[1]
    eps, zl = ctx.cast(label_smoothing), ctx.cast(z_loss)
    cw = _core.class_weight_array(class_weights, vocab, ctx.dtype)
    u = jnp.ones((vocab,), ctx.dtype) if cw is None else cw
    b = jnp.zeros((vocab,), weight.dtype) if bias is None else bias

    # Per token: loss = k_lse * lse + k_ty * ty + k_su * su + k_sq * lse^2 (see the kernels above).
    mean_u = 1.0 if cw is None else jnp.mean(cw)
    if is_int:
        w_y = None if cw is None else cw[t]
        wy = 1.0 if w_y is None else w_y
        k_lse, k_ty, k_sq = (1.0 - eps) * wy + eps * mean_u, -(1.0 - eps) * wy, zl * wy
    else:
        w_y, tu = None, jnp.sum(t, axis=-1) if cw is None else t @ cw
        k_lse, k_ty, k_sq = (1.0 - eps) * tu + eps * mean_u, -(1.0 - eps), zl
    k_su = -eps / vocab
    norm = None if w_y is None else w_y.reshape(ctx.loss_shape)
    n = h.shape[0]
    k_lse, k_ty, k_su, k_sq = (jnp.broadcast_to(jnp.asarray(k, ctx.dtype), (n,)) for k in (k_lse, k_ty, k_su, k_sq))

    one_pass = reduction != "none" and jnp.dtype(weight.dtype) == ctx.dtype and _rows_fit(n, vocab, chunk)
    if not one_pass:
        lse, ty, su = _row_stats(h, weight, b, u, t, chunk, kind)
        loss = (k_lse * lse + k_ty * ty + k_su * su + k_sq * jnp.square(lse)).reshape(ctx.loss_shape)
        return ctx.reduce(loss, weights=weights, norm=norm)

    # The reduction is linear in the per-token losses: total = sum_n a_n * loss_n, with a_n (weights, mask,
    # mean denominator) read off ctx.reduce itself so that the convention is exactly the shared one.
    zeros = jnp.zeros(ctx.loss_shape, ctx.dtype)
    _, pullback = jax.vjp(lambda l: ctx.reduce(l, weights=weights, norm=norm), zeros)
    (a,) = pullback(jnp.ones((), ctx.out_dtype))
    a = a.astype(ctx.dtype).reshape(-1)
    total = _total(h, weight, b, u, t, a * k_lse, a * k_ty, a * k_su, a * k_sq, chunk, kind)
    if ctx.invalid is not None:  # an out-of-range label gives NaN, as in ctx.reduce
        total = total + jnp.where(jnp.any(ctx.invalid), jnp.nan, 0.0).astype(total.dtype)
    return total.astype(ctx.out_dtype)
