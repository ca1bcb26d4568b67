"""Dense stacks and ghost norms: per-example gradient norms and DP-SGD clipping without per-example
gradients."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxloss.per_sample._common import Array, _sqrt, _sum_leaves
from jaxloss.per_sample.clipping import ClippedGrad, _check_dp_args, _clip_factor, _dp_noise

__all__ = ["dense_stack_apply", "dense_stack_objective", "ghost_grad_norms", "ghost_clipped_mean_grad"]


def _check_dense(params) -> None:
    if not isinstance(params, (list, tuple)) or not params:
        raise ValueError("dense-stack params must be a non-empty list of (W, b) pairs")
    prev = None
    for i, layer in enumerate(params):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ValueError(f"dense-stack layer {i} must be a (W, b) pair; got {type(layer).__name__}")
        w, b = layer
        if jnp.ndim(w) != 2:
            raise ValueError(f"dense-stack layer {i}: W must be [d_in, d_out]; got shape {jnp.shape(w)}")
        if b is not None and jnp.shape(b) != (jnp.shape(w)[1],):
            raise ValueError(f"dense-stack layer {i}: b must be [d_out] = [{jnp.shape(w)[1]}]; got shape {jnp.shape(b)}")
        if prev is not None and jnp.shape(w)[0] != prev:
            raise ValueError(f"dense-stack layer {i}: W has d_in={jnp.shape(w)[0]} but the previous layer outputs {prev}")
        prev = jnp.shape(w)[1]


def _dense_forward(params, inputs, activation, probes=None):
    """The dense stack, returning the outputs and the input of every layer."""
    h, acts = inputs, []
    last = len(params) - 1
    for i, (w, b) in enumerate(params):
        acts.append(h)
        z = h @ w
        if b is not None:
            z = z + b
        if probes is not None:
            z = z + probes[i]
        h = z if i == last else activation(z)
    return h, acts


def dense_stack_apply(params: Sequence, inputs: Array, activation: Callable = jax.nn.relu) -> Array:
    """A stack of dense layers: ``h <- activation(h @ W + b)`` for every layer but the last, which is linear.

    This is the model interface of :func:`ghost_grad_norms`.

    Args:
      params: a list of ``(W, b)`` pairs, ``W`` of shape ``[d_in, d_out]``, ``b`` of shape ``[d_out]`` or
        ``None`` (no bias).
      inputs: ``[B, d_in]``, or ``[B, T, d_in]`` (the layers act on the last axis, e.g. per token).
      activation: an elementwise function applied after every layer but the last.

    Returns:
      the outputs, ``inputs.shape[:-1] + (d_out_last,)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> params = [(jnp.eye(2), jnp.zeros(2)), (jnp.ones((2, 1)), None)]
      >>> print(jaxloss.dense_stack_apply(params, jnp.array([[1.0, -2.0]])).tolist())
      [[1.0]]
    """
    _check_dense(params)
    return _dense_forward(params, inputs, activation)[0]


def dense_stack_objective(loss: Callable, activation: Callable = jax.nn.relu) -> Callable:
    """The mean objective of a dense stack: ``fn(params, (inputs, targets))``.

    ``fn(params, (x, y)) = mean(loss(dense_stack_apply(params, x, activation), y))``, a batch objective
    for every function of this module; per example it is ``loss`` of that example, so its per-example
    gradient norms are what :func:`ghost_grad_norms` computes with the same ``loss``.

    Args:
      loss: ``loss(outputs, targets) -> [B]``, one loss per example (e.g.
        ``functools.partial(jaxloss.cross_entropy, reduction="none")``).
      activation: the hidden activation of :func:`dense_stack_apply`.

    Returns:
      ``fn(params, batch) -> scalar``.
    """

    def fn(params, batch):
        inputs, targets = batch
        return jnp.mean(_per_example_loss(loss, dense_stack_apply(params, inputs, activation), targets))

    return fn


def _per_example_loss(loss, outputs, targets):
    losses = loss(outputs, targets)
    if jnp.shape(losses) != outputs.shape[:1]:
        raise ValueError(
            f"loss must return one value per example, shape {outputs.shape[:1]}; got shape {jnp.shape(losses)} "
            "(use reduction='none' and reduce any axis other than the example axis)"
        )
    return losses


def _ghost_layer_sq(a, d):
    """Squared per-example norms of the W and b gradients of one dense layer from its inputs ``a`` and
    pre-activation gradients ``d`` (``[B, T, d_in]`` and ``[B, T, d_out]``), without forming them when cheaper.

    ``grad W_i = sum_t a_it d_it^T``, so ``|grad W_i|^2 = <a_i a_i^T, d_i d_i^T>`` (``T x T`` Gram matrices,
    Li et al. 2022); with ``T = 1`` that is ``|a_i|^2 |d_i|^2``. When ``T^2 > d_in d_out`` the per-example
    gradient ``[B, d_in, d_out]`` is smaller than the Gram matrices and is formed instead (Bu et al.'s mixed
    ghost clipping).
    """
    _, t, d_in = a.shape
    d_out = d.shape[-1]
    if t == 1:
        w_sq = jnp.sum(jnp.square(a[:, 0]), axis=-1) * jnp.sum(jnp.square(d[:, 0]), axis=-1)
    elif t * t <= d_in * d_out:
        w_sq = jnp.sum(jnp.einsum("bti,bsi->bts", a, a) * jnp.einsum("bto,bso->bts", d, d), axis=(1, 2))
    else:
        w_sq = jnp.sum(jnp.square(jnp.einsum("bti,bto->bio", a, d)), axis=(1, 2))
    b_sq = jnp.sum(jnp.square(jnp.sum(d, axis=1)), axis=-1)
    return w_sq, b_sq


def _ghost(params, batch, loss, activation):
    _check_dense(params)
    inputs, targets = batch
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(f"inputs must be [B, d_in] or [B, ..., d_in]; got shape {inputs.shape}")
    probes = [jnp.zeros(inputs.shape[:-1] + (jnp.shape(w)[1],), jnp.result_type(inputs, w)) for w, _ in params]

    def summed(probes):
        out, acts = _dense_forward(params, inputs, activation, probes)
        losses = _per_example_loss(loss, out, targets)
        return jnp.sum(losses), (acts, losses)

    deltas, (acts, losses) = jax.grad(summed, has_aux=True)(probes)
    bsz = inputs.shape[0]
    sq = []
    for (_, b), a, d in zip(params, acts, deltas):
        w_sq, b_sq = _ghost_layer_sq(a.reshape(bsz, -1, a.shape[-1]), d.reshape(bsz, -1, d.shape[-1]))
        sq.append((w_sq, b_sq if b is not None else None))
    return sq, losses


def ghost_grad_norms(
    params: Sequence,
    batch,
    loss: Callable,
    *,
    activation: Callable = jax.nn.relu,
    per_layer: bool = False,
):
    """Per-example gradient norms of a dense stack from one backward pass, without per-example gradients.

    For a dense layer ``z = a @ W + b``, example ``i``'s gradient is ``grad W_i = a_i delta_i^T`` and
    ``grad b_i = delta_i``, with ``delta_i`` the gradient of its loss w.r.t. the pre-activation ``z_i``; so
    ``|grad W_i|^2 = |a_i|^2 |delta_i|^2`` and ``|grad b_i|^2 = |delta_i|^2`` (Goodfellow 2015). All
    ``delta`` come from ONE backward pass: the summed loss ``sum_i l_i`` is differentiated w.r.t. zero
    "probe" offsets added to every pre-activation, which gives ``delta_i = dl_i/dz_i`` exactly since
    example ``i``'s output depends only on its own input. Memory is that of the activations, never
    ``B x |params|``. Inputs with extra axes ``[B, T, d]`` (dense layers applied per token) use the Gram
    identity ``|sum_t a_t delta_t^T|^2 = <A A^T, D D^T>`` of Li et al. (2022).

    The norms equal ``per_sample_grad_norms(dense_stack_objective(loss, activation), params, batch)``.

    Args:
      params: a list of ``(W, b)`` pairs (see :func:`dense_stack_apply`); ``b`` may be ``None``.
      batch: ``(inputs, targets)``: ``inputs`` ``[B, d_in]`` or ``[B, ..., d_in]``, targets whatever
        ``loss`` takes.
      loss: ``loss(outputs, targets) -> [B]``, one loss per example (e.g.
        ``functools.partial(jaxloss.cross_entropy, reduction="none")``); it must treat examples
        independently.
      activation: the elementwise hidden activation.
      per_layer: also return the per-leaf norms, a list of ``(norm_W [B], norm_b [B] or None)`` pairs —
        the structure of ``params``, as ``per_sample_grad_norms(..., per_layer=True)`` gives.

    Returns:
      ``[B]`` global norms, or ``(global_norms, per_layer_norms)`` with ``per_layer``.

    Examples:
      >>> import functools, jax, jax.numpy as jnp, jaxloss
      >>> k1, k2 = jax.random.split(jax.random.PRNGKey(0))
      >>> params = [(jax.random.normal(k1, (3, 4)), jnp.zeros(4)), (jax.random.normal(k2, (4, 2)), jnp.zeros(2))]
      >>> batch = (jnp.arange(6.0).reshape(2, 3) / 6, jnp.array([0, 1]))
      >>> loss = functools.partial(jaxloss.cross_entropy, reduction="none")
      >>> ghost = jaxloss.ghost_grad_norms(params, batch, loss)
      >>> vmap = jaxloss.per_sample_grad_norms(jaxloss.dense_stack_objective(loss), params, batch)
      >>> print(bool(jnp.allclose(ghost, vmap, rtol=1e-5)))
      True

    References:
      Goodfellow, "Efficient Per-Example Gradient Computations", arXiv:1510.01799, 2015.
      Li, Tramer, Liang, Hashimoto, "Large Language Models Can Be Strong Differentially Private
      Learners", ICLR 2022 (ghost clipping).
    """
    sq, _ = _ghost(params, batch, loss, activation)
    total = _sum_leaves([s for pair in sq for s in pair if s is not None])
    norms = _sqrt(total)
    if not per_layer:
        return norms
    per = [tuple(None if s is None else _sqrt(s) for s in pair) for pair in sq]
    return norms, per


def ghost_clipped_mean_grad(
    params: Sequence,
    batch,
    loss: Callable,
    max_norm,
    noise_multiplier=0.0,
    key: Optional[Array] = None,
    *,
    activation: Callable = jax.nn.relu,
) -> ClippedGrad:
    """DP-SGD's clipped (noisy) mean gradient of a dense stack without per-example gradients.

    Ghost clipping (Li et al. 2022): the norms come from :func:`ghost_grad_norms`; then, since the
    gradient is linear in the per-example losses, one ordinary backward pass of
    ``sum_i stop_gradient(min(1, C / n_i)) l_i`` gives ``sum_i min(1, C / n_i) g_i``. The noise and the
    normalisation are those of :func:`clipped_mean_grad`, whose result this equals for
    ``fn = dense_stack_objective(loss, activation)``.

    Args:
      params: a list of ``(W, b)`` pairs (see :func:`dense_stack_apply`).
      batch: ``(inputs, targets)`` with ``B`` examples.
      loss: ``loss(outputs, targets) -> [B]``, one loss per example.
      max_norm: the clipping norm ``C > 0``.
      noise_multiplier: ``sigma >= 0``.
      key: a ``jax.random`` key, required when ``noise_multiplier`` may be nonzero.
      activation: the elementwise hidden activation.

    Returns:
      a :class:`ClippedGrad` ``(grads, norms, losses)``; ``grads`` has the structure of ``params``.

    References:
      Li, Tramer, Liang, Hashimoto, "Large Language Models Can Be Strong Differentially Private
      Learners", ICLR 2022.
    """
    noisy = _check_dp_args(max_norm, noise_multiplier, key)
    sq, losses = _ghost(params, batch, loss, activation)
    norms = _sqrt(_sum_leaves([s for pair in sq for s in pair if s is not None]))
    factor = jax.lax.stop_gradient(_clip_factor(norms, max_norm))
    inputs, targets = batch

    def weighted(p):
        out = _dense_forward(p, inputs, activation)[0]
        return jnp.sum(factor * _per_example_loss(loss, out, targets))

    total = jax.grad(weighted)(params)
    if noisy:
        total = optax.tree.add(total, _dp_noise(total, noise_multiplier, max_norm, key))
    n = jnp.shape(inputs)[0]
    return ClippedGrad(optax.tree.scale(1.0 / n, total), norms, losses)
