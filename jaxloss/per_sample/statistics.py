"""Gradient statistics (mean, variance, signal-to-noise) and the gradient noise scale."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxloss import _core, _models
from jaxloss._typing import ArrayLike
from jaxloss.per_sample._common import (
    Array,
    PyTree,
    _check_chunk,
    _example_fn,
    _num_examples,
    _safe_div,
    _scan_chunks,
    _tmap,
    _tree_dtype,
    _vmapped,
    _zero_grads,
)

__all__ = [
    "grad_statistics",
    "grad_statistics_from_grads",
    "GradStatistics",
    "noise_scale_from_batch_sizes",
    "two_batch_noise_scale",
    "NoiseScale",
]


class GradStatistics(NamedTuple):
    """Statistics of the per-example gradients of one batch (see :func:`grad_statistics`).

    Attributes:
      mean: the mean gradient (the batch gradient of a mean objective), a pytree like ``params``.
      variance: the per-parameter unbiased variance across examples (``ddof=1``), like ``params``.
      snr: the per-parameter signal-to-noise ratio ``|mean| / sqrt(variance)`` (``0`` where both are 0,
        ``inf`` where only the variance is), like ``params``.
      trace_cov: ``tr(Sigma)``, the sum of ``variance`` over all parameters (unbiased).
      grad_sq_norm: the unbiased estimate of the true gradient's squared norm,
        ``|G|^2 ~ |mean|^2 - tr(Sigma) / B`` (it can be <= 0 when the noise dominates a small batch).
      noise_scale: the simple gradient noise scale ``B_simple = trace_cov / grad_sq_norm``.
    """

    mean: PyTree
    variance: PyTree
    snr: PyTree
    trace_cov: Array
    grad_sq_norm: Array
    noise_scale: Array


def _stats_from_moments(count, mean, m2) -> GradStatistics:
    variance = optax.tree.scale(1.0 / (count - 1), m2)
    snr = _tmap(
        lambda m, v: _safe_div(jnp.abs(m), jnp.sqrt(v), jnp.where(m != 0, jnp.inf, 0.0).astype(m.dtype)), mean, variance
    )
    trace = optax.tree.sum(variance)
    mean_sq = optax.tree.norm(mean, squared=True)
    g_sq = mean_sq - trace / count
    return GradStatistics(mean, variance, snr, trace, g_sq, trace / g_sq)


def _chunk_moments(grads):
    """``(count, mean, centred sum of squares)`` of a chunk of per-example gradients."""
    mean = _tmap(lambda g: jnp.mean(g, axis=0), grads)
    m2 = _tmap(lambda g, m: jnp.sum(jnp.square(g - m), axis=0), grads, mean)
    return mean, m2


def grad_statistics_from_grads(grads: PyTree) -> GradStatistics:
    """Gradient statistics (:class:`GradStatistics`) of precomputed per-example gradients.

    Args:
      grads: a pytree whose leaves have a leading example axis of size ``B >= 2`` (e.g. the output of
        :func:`per_sample_grads`).

    Returns:
      a :class:`GradStatistics` (see :func:`grad_statistics` for the formulas).
    """
    n = _num_examples(grads, "grads")
    if n < 2:
        raise ValueError(f"gradient statistics need at least 2 examples; got {n}")
    mean, m2 = _chunk_moments(grads)
    return _stats_from_moments(n, mean, m2)


def grad_statistics(fn: Callable, params: PyTree, batch: PyTree, *, chunk_size: Optional[int] = None) -> GradStatistics:
    """Mean, per-parameter variance, signal-to-noise ratio and gradient noise scale of a batch.

    With per-example gradients ``g_i`` of ``B`` i.i.d. examples, ``G = E[g]`` and ``Sigma = Cov[g]``:
    ``mean = (1/B) sum_i g_i``; ``variance = (1/(B-1)) sum_i (g_i - mean)^2`` per parameter;
    ``tr(Sigma) ~ sum(variance)`` and ``|G|^2 ~ |mean|^2 - tr(Sigma)/B`` are unbiased (since
    ``E|mean|^2 = |G|^2 + tr(Sigma)/B``); the simple noise scale ``B_simple = tr(Sigma) / |G|^2`` (McCandlish
    et al. 2018) is their ratio. A ratio of unbiased estimates is not unbiased: to track ``B_simple`` over
    training, average ``trace_cov`` and ``grad_sq_norm`` over steps (e.g. an exponential moving average)
    and divide the averages, as the paper does.

    With ``chunk_size`` the moments are accumulated chunk by chunk (Chan et al.'s parallel update of the
    mean and centred sum of squares, stable in float32), holding one chunk of per-example gradients.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective (a mean loss).
      params: any pytree of float arrays.
      batch: a pytree whose leaves share a leading example axis of size ``B >= 2``.
      chunk_size: process ``chunk_size`` examples at a time (static).

    Returns:
      a :class:`GradStatistics` ``(mean, variance, snr, trace_cov, grad_sq_norm, noise_scale)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> st = jaxloss.grad_statistics(fn, jnp.array([1.0, 1.0]), (x, y))
      >>> print([round(float(v), 4) for v in st.variance], round(float(st.noise_scale), 4))
      [5.3333, 16.0] 2.0

    References:
      McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018.
    """
    n = _num_examples(batch)
    if n < 2:
        raise ValueError(f"gradient statistics need at least 2 examples; got {n}")
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    g = _vmapped(jax.grad(_example_fn(fn)))

    def chunk_fn(carry, chunk):
        count, mean, m2 = carry
        nb = _num_examples(chunk)
        mb, m2b = _chunk_moments(g(params, chunk))
        total = count + nb
        w = nb / total
        delta = optax.tree.sub(mb, mean)
        mean = _tmap(lambda m, d: m + d * w.astype(d.dtype), mean, delta)
        m2 = _tmap(lambda s, sb, d: s + sb + jnp.square(d) * (count * w).astype(d.dtype), m2, m2b, delta)
        return (total, mean, m2), ()

    zeros = _zero_grads(fn, params, batch)
    count = jnp.zeros((), _tree_dtype(zeros))
    (_, mean, m2), _ = _scan_chunks(chunk_fn, batch, chunk_size, (count, zeros, zeros))
    return _stats_from_moments(n, mean, m2)


class NoiseScale(NamedTuple):
    """A gradient noise scale estimate and its two unbiased components.

    Attributes:
      noise_scale: ``B_simple = trace_cov / grad_sq_norm``.
      trace_cov: the unbiased estimate of ``tr(Sigma)``, the trace of the per-example gradient covariance.
      grad_sq_norm: the unbiased estimate of ``|G|^2``, the squared norm of the true gradient.
    """

    noise_scale: Array
    trace_cov: Array
    grad_sq_norm: Array


def noise_scale_from_batch_sizes(
    small_sq_norm: ArrayLike,
    big_sq_norm: ArrayLike,
    small_batch_size: ArrayLike,
    big_batch_size: ArrayLike,
) -> NoiseScale:
    """The unbiased two-batch-size estimator of the gradient noise scale (McCandlish et al. 2018, App. A).

    From the squared norms of mean-loss gradients at two batch sizes ``b < B``
    (``E|G_b|^2 = |G|^2 + tr(Sigma)/b``)::

        |G|^2     ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
        tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)

    both unbiased; ``B_simple`` is their ratio. No per-example gradients are needed: in data-parallel
    training ``G_b`` is one device's gradient and ``G_B`` the all-reduced one. Inputs may be arrays (e.g.
    averaged over steps before the ratio, which the paper recommends since the ratio is biased).

    Args:
      small_sq_norm: ``|G_b|^2`` (or an average of several).
      big_sq_norm: ``|G_B|^2``.
      small_batch_size: ``b``.
      big_batch_size: ``B > b``.

    Returns:
      a :class:`NoiseScale` ``(noise_scale, trace_cov, grad_sq_norm)``.

    Examples:
      >>> import jaxloss
      >>> est = jaxloss.noise_scale_from_batch_sizes(3.0, 1.2, 10, 100)
      >>> print(round(float(est.noise_scale), 4), round(float(est.trace_cov), 4), round(float(est.grad_sq_norm), 4))
      20.0 20.0 1.0

    References:
      McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018, Appendix A.
    """
    _core.check_hyper(small_batch_size, "small_batch_size", low=0.0, low_open=True)
    if _core.is_concrete(small_batch_size) and _core.is_concrete(big_batch_size):
        if not np.all(np.asarray(big_batch_size) > np.asarray(small_batch_size)):
            raise ValueError(
                f"big_batch_size must exceed small_batch_size; got {big_batch_size} and {small_batch_size}"
            )
    small, big = jnp.asarray(small_sq_norm), jnp.asarray(big_sq_norm)
    dtype = jnp.result_type(small, big, jnp.float32)
    small, big = small.astype(dtype), big.astype(dtype)
    b, B = jnp.asarray(small_batch_size, dtype), jnp.asarray(big_batch_size, dtype)
    g_sq = (B * big - b * small) / (B - b)
    trace = (small - big) / (1 / b - 1 / B)
    return NoiseScale(trace / g_sq, trace, g_sq)


def two_batch_noise_scale(fn: Callable, params: PyTree, batch: PyTree, small_batch_size: int) -> NoiseScale:
    """The two-batch-size noise scale estimate from one batch, without per-example gradients.

    Splits the ``B`` examples of ``batch`` into ``B / b`` consecutive small batches of ``b =
    small_batch_size``, averages ``|grad fn(params, small_batch)|^2`` over them (a scan: one small-batch
    gradient in memory at a time), computes ``|grad fn(params, batch)|^2`` on the whole batch, and applies
    :func:`noise_scale_from_batch_sizes`. ``fn`` must be a mean over i.i.d. examples for the estimates to
    be unbiased; average the components over steps before dividing.

    Args:
      fn: ``fn(params, batch) -> scalar``, a mean objective.
      params: any pytree of float arrays.
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      small_batch_size: ``b``, a static int with ``b < B`` dividing ``B``.

    Returns:
      a :class:`NoiseScale` ``(noise_scale, trace_cov, grad_sq_norm)``.

    References:
      McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018, Appendix A.
    """
    n = _num_examples(batch)
    b = _check_chunk(small_batch_size)
    if b is None or b >= n or n % b:
        raise ValueError(f"small_batch_size must divide the batch size {n} and be smaller; got {small_batch_size!r}")
    k = n // b
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    grad = jax.grad(fn)

    def sq_norm(g):
        return optax.tree.norm(g, squared=True)

    smalls = _tmap(lambda x: jnp.reshape(x, (k, b) + jnp.shape(x)[1:]), batch)
    init = jnp.zeros((), _tree_dtype(params))
    total, _ = jax.lax.scan(lambda acc, sb: (acc + sq_norm(grad(params, sb)).astype(init.dtype), ()), init, smalls)
    return noise_scale_from_batch_sizes(total / k, sq_norm(grad(params, batch)), b, n)
