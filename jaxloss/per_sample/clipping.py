"""DP-SGD: the clipped, noisy mean of per-example gradients."""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxloss import _core, _models
from jaxloss._typing import ArrayLike
from jaxloss.per_sample._common import (
    Array,
    PyTree,
    _example_fn,
    _global_norms,
    _num_examples,
    _scan_chunks,
    _tmap,
    _vmapped,
    _zero_grads,
)

__all__ = ["clipped_mean_grad", "ClippedGrad"]


class ClippedGrad(NamedTuple):
    """The result of :func:`clipped_mean_grad` and :func:`ghost_clipped_mean_grad`.

    Attributes:
      grads: the (noisy) mean of the clipped per-example gradients, a pytree like ``params``.
      norms: ``[B]`` per-example gradient norms *before* clipping (the norms clipped by).
      losses: ``[B]`` per-example losses (their mean is the batch loss of a mean objective).
    """

    grads: PyTree
    norms: Array
    losses: Array


def _dp_noise(grads: PyTree, noise_multiplier, max_norm, key) -> PyTree:
    """Isotropic Gaussian noise of std ``noise_multiplier * max_norm`` for every entry of ``grads``."""

    def sampler(k, shape, dtype):
        return jax.random.normal(k, shape, dtype) * jnp.asarray(noise_multiplier * max_norm, dtype)

    return optax.tree.random_like(key, grads, sampler)


def _check_dp_args(max_norm, noise_multiplier, key) -> bool:
    """Validates the DP-SGD arguments; returns whether noise is to be added."""
    _core.check_hyper(max_norm, "max_norm", low=0.0, low_open=True)
    _core.check_hyper(noise_multiplier, "noise_multiplier", low=0.0)
    if _core.is_concrete(noise_multiplier) and np.all(np.asarray(noise_multiplier) == 0):
        return False
    if key is None:
        raise ValueError("clipped_mean_grad needs a PRNG key= when noise_multiplier may be nonzero")
    return True


def _clip_factor(norms, max_norm):
    """``min(1, max_norm / norm)``, written as ``max_norm / max(norm, max_norm)``: 1 at a zero gradient."""
    return max_norm / jnp.maximum(norms, max_norm)


def clipped_mean_grad(
    fn: Callable,
    params: PyTree,
    batch: PyTree,
    max_norm: ArrayLike,
    noise_multiplier: ArrayLike = 0.0,
    key: Optional[Array] = None,
    *,
    chunk_size: Optional[int] = None,
    method: Literal["vmap", "ghost"] = "vmap",
) -> ClippedGrad:
    """DP-SGD's gradient: clip every per-example gradient to norm ``max_norm``, average, add noise.

    ``g_i`` is the per-example gradient (see :func:`per_sample_grads`), ``n_i = |g_i|`` its global L2
    norm over all leaves of ``params``, and with ``C = max_norm``, ``sigma = noise_multiplier``::

        grads = (sum_i g_i * min(1, C / n_i) + N(0, sigma^2 C^2 I)) / B

    the Gaussian mechanism of Abadi et al. (2016), Algorithm 1: noise of std ``sigma * C`` is added to the
    *sum* of the clipped gradients, so the noise on the returned mean has std ``sigma * C / B`` per
    coordinate, where ``B`` is the number of examples in ``batch`` (the lot size). A zero gradient is left
    as it is (no division by its norm). With ``noise_multiplier=0`` (statically) no noise is drawn and
    ``key`` may be ``None``; otherwise ``key`` is required. Privacy accounting is not done here.

    A drop-in for ``jax.grad`` in an optax step::

        out = clipped_mean_grad(obj, params, batch, 1.0, 1.1, key)
        updates, opt_state = opt.update(out.grads, opt_state, params)

    With ``chunk_size`` the clipped gradients are summed chunk by chunk, so the memory is that of one
    chunk of per-example gradients plus one accumulator, whatever the batch size.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective.
      params: any pytree of float arrays, or a model (Flax NNX / linen variables / Equinox).
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      max_norm: the clipping norm ``C > 0``; may be traced.
      noise_multiplier: ``sigma >= 0``; may be traced.
      key: a ``jax.random`` key for the noise.
      chunk_size: process ``chunk_size`` examples at a time (static).
      method: ``"vmap"`` (the default: exact per-example gradients) or ``"ghost"``: ghost norms and
        ghost clipping for any model (:mod:`jaxloss.per_sample.ghost`): the same result up to float
        rounding without per-example weight gradients, at a fraction of the time and memory for large
        models (``benchmarks/ghost.py``).

    Returns:
      a :class:`ClippedGrad` ``(grads, norms, losses)``: the noisy clipped mean gradient (like ``params``),
      the ``[B]`` norms before clipping, and the ``[B]`` per-example losses.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> out = jaxloss.clipped_mean_grad(fn, jnp.array([1.0, 1.0]), (x, y), max_norm=1.0)
      >>> print([round(float(v), 4) for v in out.grads], [round(float(n), 4) for n in out.norms])
      [0.2357, 0.569] [0.0, 8.0, 5.6569]

    References:
      Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
    """
    from jaxloss.per_sample import ghost as _ghost  # (it imports this module)

    if _ghost.is_ghost(method):
        return _ghost.ghost_clipped_grad(fn, params, batch, max_norm, noise_multiplier, key, chunk_size=chunk_size)
    noisy = _check_dp_args(max_norm, noise_multiplier, key)
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    n = _num_examples(batch)
    vg = _vmapped(jax.value_and_grad(_example_fn(fn)))

    def chunk_fn(acc, chunk):
        losses, grads = vg(params, chunk)
        norms = _global_norms(grads)
        factor = _clip_factor(norms, max_norm)
        acc = _tmap(lambda a, g: a + jnp.tensordot(factor.astype(g.dtype), g, axes=1), acc, grads)
        return acc, (norms, losses)

    init = _zero_grads(fn, params, batch)
    total, (norms, losses) = _scan_chunks(chunk_fn, batch, chunk_size, init)
    if noisy:
        total = optax.tree.add(total, _dp_noise(total, noise_multiplier, max_norm, key))
    return ClippedGrad(optax.tree.scale(1.0 / n, total), norms, losses)
