"""Per-sample gradient analysis: per-example losses, gradients and norms, DP-SGD clipping, gradient
statistics (noise scale), similarity and influence, and ghost norms for dense stacks.

**The objective.** Every function here takes a *batch objective* ``fn(params, batch) -> scalar``: ``batch``
is a pytree (an array, a tuple ``(inputs, targets)``, a dict, ...) whose leaves all share a leading example
axis, and ``fn`` is typically a mean loss over that axis — exactly what :func:`jaxloss.objective` returns.
The *per-example* value of example ``i`` is ``fn`` applied to example ``i`` alone as a batch of one
(every leaf sliced to ``x[i:i+1]``, so its leading axis has length 1); ``jax.vmap`` runs all of them at
once. The same objective therefore serves for training (``jax.grad(fn)``) and for analysis
(``per_sample_grads(fn, ...)``), and for a mean objective the mean of the per-example gradients is the
batch gradient. Models that couple the examples of a batch (batch normalisation) see each example alone.
With a :class:`jaxloss.Objective`, each example's value is its data term *plus the whole regularizer*
(so every per-example gradient contains the regularizer's gradient once; build the objective without a
regularizer to analyse the data term alone), and per-example weights in ``(inputs, targets, weights)``
cancel in a weighted mean over one example.

**Memory.** ``chunk_size=`` processes the batch in chunks of that many examples (a ``jax.lax.scan`` over
full chunks, then one call for the remainder when the batch size is not a multiple), so the peak memory
of the intermediate values is bounded by the chunk, not the batch. Functions that reduce over examples
(norms, clipping, statistics, influence) never hold more than one chunk of per-example gradients.
``chunk_size=None`` (the default) vectorises over the whole batch.

Everything is pure and jit-compilable with ``fn`` and ``chunk_size`` static, e.g.
``jax.jit(functools.partial(per_sample_grads, fn, chunk_size=64))(params, batch)``.

**Ghost norms.** For a stack of dense layers (:func:`dense_stack_apply`), :func:`ghost_grad_norms` gets
the per-example gradient norms from one backward pass without ever forming a per-example gradient, and
:func:`ghost_clipped_mean_grad` uses them for DP-SGD clipping with a second, ordinary backward pass.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _core
from jaxloss import _models

__all__ = [
    "per_sample_losses",
    "per_sample_grads",
    "per_sample_grad_norms",
    "clipped_mean_grad",
    "ClippedGrad",
    "grad_statistics",
    "grad_statistics_from_grads",
    "GradStatistics",
    "noise_scale_from_batch_sizes",
    "two_batch_noise_scale",
    "NoiseScale",
    "grad_cosine_similarity",
    "tracin_influence",
    "dense_stack_apply",
    "dense_stack_objective",
    "ghost_grad_norms",
    "ghost_clipped_mean_grad",
]

Array = jax.Array
PyTree = Any
_tmap = jax.tree_util.tree_map
_leaves = jax.tree_util.tree_leaves


# ---------------------------------------------------------------------------------------------------------
# Plumbing: example axis, chunking, per-example functions
# ---------------------------------------------------------------------------------------------------------


def _num_examples(batch: PyTree, name: str = "batch") -> int:
    """The common leading (example) axis of every leaf of ``batch``; a clear error otherwise."""
    leaves = _leaves(batch)
    if not leaves:
        raise ValueError(f"{name} has no array leaves; it needs at least one array with an example axis")
    shapes = [jnp.shape(x) for x in leaves]
    if any(len(s) == 0 for s in shapes):
        raise ValueError(f"every leaf of {name} needs a leading example axis; got leaf shapes {shapes}")
    sizes = {s[0] for s in shapes}
    if len(sizes) != 1:
        raise ValueError(f"the leaves of {name} disagree on the example axis (axis 0); got leaf shapes {shapes}")
    n = sizes.pop()
    if n == 0:
        raise ValueError(f"{name} has no examples (leaf shapes {shapes})")
    return n


def _check_chunk(chunk_size) -> Optional[int]:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    return int(chunk_size)


def _scan_chunks(chunk_fn: Callable, batch: PyTree, chunk_size: Optional[int], init: Any = ()):
    """Runs ``chunk_fn(carry, chunk) -> (carry, per_example_outputs)`` over the batch in chunks.

    ``per_example_outputs`` have the chunk's example axis first; they are concatenated back to the batch.
    Full chunks go through one ``lax.scan`` (a single compiled body, memory bounded by the chunk); a
    remainder (batch size not a multiple of the chunk) is one more call on the last examples.
    """
    n = _num_examples(batch)
    c = _check_chunk(chunk_size)
    if c is None or c >= n:
        return chunk_fn(init, batch)
    full, rem = divmod(n, c)
    head = _tmap(lambda x: jnp.reshape(x[: full * c], (full, c) + jnp.shape(x)[1:]), batch)
    carry, ys = jax.lax.scan(chunk_fn, init, head)
    ys = _tmap(lambda y: jnp.reshape(y, (full * c,) + y.shape[2:]), ys)
    if rem:
        carry, yt = chunk_fn(carry, _tmap(lambda x: x[full * c :], batch))
        ys = _tmap(lambda a, b: jnp.concatenate([a, b], axis=0), ys, yt)
    return carry, ys


def _example_fn(fn: Callable) -> Callable:
    """``fn`` on one example, given as a batch of one (every leaf re-expanded to a leading axis of 1)."""

    def one(params, example):
        out = fn(params, _tmap(lambda x: jnp.expand_dims(x, 0), example))
        if jnp.ndim(out) != 0:
            raise TypeError(f"fn must return a scalar (a batch objective such as a mean loss); got shape {jnp.shape(out)}")
        return out

    return one


def _vmapped(f: Callable) -> Callable:
    return jax.vmap(f, in_axes=(None, 0))


def _sq_norms(tree: PyTree) -> PyTree:
    """Per-example squared norm of every leaf of a tree of ``[B, ...]`` arrays: a tree of ``[B]``."""
    return _tmap(lambda g: jnp.sum(jnp.reshape(jnp.square(g), (g.shape[0], -1)), axis=1), tree)


def _sum_leaves(tree: PyTree, init=0.0):
    return sum(_leaves(tree), init)


def _tree_dtype(tree):
    """The promoted float dtype of a tree's leaves (at least float32)."""
    return jnp.result_type(jnp.float32, *[leaf.dtype for leaf in _leaves(tree)])


def _sqrt(x):
    """``sqrt`` with a finite (zero) gradient at 0."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _safe_div(num, den, zero=0.0):
    """``num / den``, and ``zero`` where ``den == 0`` (no NaN in value or gradient)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), zero)


def _group_norms(sq_tree: PyTree, depth: int) -> dict:
    """Combines per-leaf squared norms under each node at ``depth`` of the tree: ``{keystr(path): norm}``."""
    groups: dict = {}
    for path, sq in jax.tree_util.tree_flatten_with_path(sq_tree)[0]:
        key = jax.tree_util.keystr(tuple(path[:depth]))
        groups[key] = groups[key] + sq if key in groups else sq
    return {k: _sqrt(v) for k, v in groups.items()}


# ---------------------------------------------------------------------------------------------------------
# Per-example losses, gradients and norms
# ---------------------------------------------------------------------------------------------------------


def per_sample_losses(fn: Callable, params: PyTree, batch: PyTree, *, chunk_size: Optional[int] = None) -> Array:
    """The per-example values of a batch objective: ``fn(params, example_i as a batch of one)``.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective (e.g. a mean loss).
      params: any pytree of arrays.
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      chunk_size: process ``chunk_size`` examples at a time (static); ``None`` vectorises the whole batch.

    Returns:
      ``[B]``: the loss of each example.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> print(jaxloss.per_sample_losses(fn, jnp.array([1.0, 1.0]), (x, y), chunk_size=2).tolist())
      [0.0, 4.0, 4.0]
    """
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    one = _example_fn(fn)
    _, losses = _scan_chunks(lambda c, chunk: (c, _vmapped(one)(params, chunk)), batch, chunk_size)
    return losses


def per_sample_grads(fn: Callable, params: PyTree, batch: PyTree, *, chunk_size: Optional[int] = None) -> PyTree:
    """Per-example gradients ``grad fn(params, example_i as a batch of one)``, stacked on a leading axis.

    Equal to a Python loop of ``jax.grad(fn)(params, batch_i)`` over single-example batches; for a mean
    objective their mean is ``jax.grad(fn)(params, batch)``.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective (e.g. a mean loss).
      params: any pytree of float arrays (for Equinox, the ``eqx.partition``-ed arrays).
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      chunk_size: process ``chunk_size`` examples at a time (static); ``None`` vectorises the whole batch.
        The result is ``B`` times the size of ``params`` either way; chunking bounds the intermediates.

    Returns:
      a pytree of the structure of ``params`` whose leaves have shape ``[B, *leaf.shape]``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> print(jaxloss.per_sample_grads(fn, jnp.array([1.0, 1.0]), (x, y)).tolist())
      [[0.0, 0.0], [0.0, 8.0], [4.0, 4.0]]
    """
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    g = jax.grad(_example_fn(fn))
    _, grads = _scan_chunks(lambda c, chunk: (c, _vmapped(g)(params, chunk)), batch, chunk_size)
    return grads


def per_sample_grad_norms(
    fn: Callable,
    params: PyTree,
    batch: PyTree,
    *,
    chunk_size: Optional[int] = None,
    per_layer: Union[bool, int] = False,
):
    """Per-example gradient L2 norms, global and optionally per leaf or per layer.

    With ``chunk_size`` only one chunk of per-example gradients exists at a time: each chunk is reduced to
    its norms before the next one is computed.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective.
      params: any pytree of float arrays.
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      chunk_size: process ``chunk_size`` examples at a time (static); ``None`` vectorises the whole batch.
      per_layer: ``False``: only the global norms. ``True``: also the norm of every leaf, as a pytree of
        the structure of ``params`` with ``[B]`` leaves. An int ``depth``: also the norm over all leaves
        under each node at that depth of the params tree, as a dict keyed by
        ``jax.tree_util.keystr`` of the node's path (for a list of ``(W, b)`` layers ``depth=1`` gives
        ``{"[0]": ..., "[1]": ...}``; for Flax's ``{"params": {"Dense_0": ...}}`` use ``depth=2``).

    Returns:
      ``[B]`` global norms ``sqrt(sum over all leaves of |g_i|^2)``; with ``per_layer`` the tuple
      ``(global_norms, per_layer_norms)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> norms = jaxloss.per_sample_grad_norms(fn, jnp.array([1.0, 1.0]), (x, y))
      >>> print([round(float(n), 4) for n in norms])
      [0.0, 8.0, 5.6569]
    """
    if not isinstance(per_layer, (bool, int, np.integer)) or (not isinstance(per_layer, bool) and per_layer < 1):
        raise ValueError(f"per_layer must be False, True or a positive int depth; got {per_layer!r}")
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    g = jax.grad(_example_fn(fn))

    def chunk_fn(carry, chunk):
        return carry, _sq_norms(_vmapped(g)(params, chunk))

    _, sq = _scan_chunks(chunk_fn, batch, chunk_size)
    norms = _sqrt(_sum_leaves(sq))
    if per_layer is False:
        return norms
    if per_layer is True:
        return norms, _tmap(_sqrt, sq)
    return norms, _group_norms(sq, int(per_layer))


# ---------------------------------------------------------------------------------------------------------
# DP-SGD clipping
# ---------------------------------------------------------------------------------------------------------


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
    leaves, treedef = jax.tree_util.tree_flatten(grads)
    keys = jax.random.split(key, max(len(leaves), 1))
    noise = [
        jax.random.normal(k, g.shape, g.dtype) * jnp.asarray(noise_multiplier * max_norm, g.dtype)
        for k, g in zip(keys, leaves)
    ]
    return jax.tree_util.tree_unflatten(treedef, noise)


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
    max_norm,
    noise_multiplier=0.0,
    key: Optional[Array] = None,
    *,
    chunk_size: Optional[int] = None,
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
      params: any pytree of float arrays.
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      max_norm: the clipping norm ``C > 0``; may be traced.
      noise_multiplier: ``sigma >= 0``; may be traced.
      key: a ``jax.random`` key for the noise.
      chunk_size: process ``chunk_size`` examples at a time (static).

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
    noisy = _check_dp_args(max_norm, noise_multiplier, key)
    fn, params = _models.bind(fn, params)  # Flax / Equinox models: differentiate their trainable arrays
    n = _num_examples(batch)
    vg = _vmapped(jax.value_and_grad(_example_fn(fn)))

    def chunk_fn(acc, chunk):
        losses, grads = vg(params, chunk)
        norms = _sqrt(_sum_leaves(_sq_norms(grads)))
        factor = _clip_factor(norms, max_norm)
        acc = _tmap(lambda a, g: a + jnp.tensordot(factor.astype(g.dtype), g, axes=1), acc, grads)
        return acc, (norms, losses)

    init = _tmap(jnp.zeros_like, jax.eval_shape(jax.grad(fn), params, _tmap(lambda x: x[:1], batch)))
    total, (norms, losses) = _scan_chunks(chunk_fn, batch, chunk_size, init)
    if noisy:
        total = _tmap(jnp.add, total, _dp_noise(total, noise_multiplier, max_norm, key))
    return ClippedGrad(_tmap(lambda t: t / jnp.asarray(n, t.dtype), total), norms, losses)


# ---------------------------------------------------------------------------------------------------------
# Gradient statistics and the gradient noise scale
# ---------------------------------------------------------------------------------------------------------


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
    variance = _tmap(lambda s: s / (count - 1), m2)
    snr = _tmap(lambda m, v: _safe_div(jnp.abs(m), jnp.sqrt(v), jnp.where(m != 0, jnp.inf, 0.0).astype(m.dtype)), mean, variance)
    trace = _sum_leaves(_tmap(jnp.sum, variance))
    mean_sq = _sum_leaves(_tmap(lambda m: jnp.sum(m * m), mean))
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
        delta = _tmap(jnp.subtract, mb, mean)
        mean = _tmap(lambda m, d: m + d * w.astype(d.dtype), mean, delta)
        m2 = _tmap(lambda s, sb, d: s + sb + jnp.square(d) * (count * w).astype(d.dtype), m2, m2b, delta)
        return (total, mean, m2), ()

    zeros = _tmap(jnp.zeros_like, jax.eval_shape(jax.grad(fn), params, _tmap(lambda x: x[:1], batch)))
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


def noise_scale_from_batch_sizes(small_sq_norm, big_sq_norm, small_batch_size, big_batch_size) -> NoiseScale:
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
            raise ValueError(f"big_batch_size must exceed small_batch_size; got {big_batch_size} and {small_batch_size}")
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
        return _sum_leaves(_tmap(lambda x: jnp.sum(jnp.square(x)), g))

    smalls = _tmap(lambda x: jnp.reshape(x, (k, b) + jnp.shape(x)[1:]), batch)
    init = jnp.zeros((), _tree_dtype(params))
    total, _ = jax.lax.scan(lambda acc, sb: (acc + sq_norm(grad(params, sb)).astype(init.dtype), ()), init, smalls)
    return noise_scale_from_batch_sizes(total / k, sq_norm(grad(params, batch)), b, n)


# ---------------------------------------------------------------------------------------------------------
# Similarity and influence
# ---------------------------------------------------------------------------------------------------------


def _pairwise_dots(a: PyTree, b: PyTree) -> Array:
    """``[Na, Nb]`` dot products between the flattened per-example gradients of two trees."""
    dots = [
        jnp.einsum("ip,jp->ij", x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1))
        for x, y in zip(_leaves(a), _leaves(b))
    ]
    return sum(dots[1:], dots[0])


def grad_cosine_similarity(grads: PyTree, other: Optional[PyTree] = None) -> Array:
    """Cosine similarities between per-example gradients (flattened over all leaves).

    ``S[i, j] = <g_i, h_j> / (|g_i| |h_j|)``, with ``S[i, j] = 0`` when either gradient is zero (finite,
    no NaN); values are clipped to ``[-1, 1]``.

    Args:
      grads: a pytree whose leaves have a leading example axis ``N`` (e.g. from :func:`per_sample_grads`).
      other: optionally a second such pytree (same structure, ``M`` examples); default ``grads``.

    Returns:
      ``[N, M]`` (``[N, N]`` without ``other``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> g = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
      >>> print([[round(float(v), 4) for v in row] for row in jaxloss.grad_cosine_similarity(g)])
      [[1.0, 0.7071, 0.0], [0.7071, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    other = grads if other is None else other
    if jax.tree_util.tree_structure(grads) != jax.tree_util.tree_structure(other):
        raise ValueError("grads and other must have the same tree structure")
    na = _sqrt(_sum_leaves(_sq_norms(grads)))
    nb = _sqrt(_sum_leaves(_sq_norms(other)))
    return jnp.clip(_safe_div(_pairwise_dots(grads, other), na[:, None] * nb[None, :]), -1.0, 1.0)


def tracin_influence(
    fn: Callable,
    params: Union[PyTree, Sequence[PyTree]],
    train_batch: PyTree,
    test_batch: PyTree,
    *,
    learning_rates: Optional[Sequence[float]] = None,
    chunk_size: Optional[int] = None,
) -> Array:
    """TracIn influence scores of training examples on test examples.

    ``TracIn(z, z') = sum_t eta_t <grad l(w_t, z), grad l(w_t, z')>`` over checkpoints ``w_t`` with learning
    rates ``eta_t`` (Pruthi et al. 2020, TracInCP). A positive score means a gradient step on the training
    example ``z`` lowers the loss of the test example ``z'`` (a "proponent"); negative, an "opponent".
    Per-example losses follow the batch-of-one convention of this module.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective.
      params: one params pytree (then the score is the plain dot product, ``eta = 1``), or, when
        ``learning_rates`` is given, a Python sequence of checkpoints (one params pytree each).
      train_batch: ``N`` training examples (a pytree with a leading example axis).
      test_batch: ``M`` test examples.
      learning_rates: optional ``[T]`` learning rates, one per checkpoint in ``params``.
      chunk_size: process the training examples ``chunk_size`` at a time (static): only one chunk of
        training gradients (and all ``M`` test gradients) is held at a time.

    Returns:
      ``[N, M]`` influence scores.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> train = (jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([0.0, 0.0]))
      >>> test = (jnp.array([[1.0, 1.0]]), jnp.array([0.0]))
      >>> print(jaxloss.tracin_influence(fn, jnp.array([1.0, 1.0]), train, test).tolist())
      [[8.0], [32.0]]

    References:
      Pruthi, Liu, Kale, Sundararajan, "Estimating Training Data Influence by Tracing Gradient Descent",
      NeurIPS 2020.
    """
    if learning_rates is None:
        checkpoints, rates = [params], [1.0]
    else:
        if not isinstance(params, (list, tuple)):
            raise ValueError("with learning_rates, params must be a list or tuple of checkpoints")
        rates = list(learning_rates) if not hasattr(learning_rates, "shape") else [learning_rates[i] for i in range(len(learning_rates))]
        checkpoints = list(params)
        if len(rates) != len(checkpoints):
            raise ValueError(f"got {len(checkpoints)} checkpoints but {len(rates)} learning_rates")
    _num_examples(train_batch, "train_batch")
    _num_examples(test_batch, "test_batch")
    total = None
    for w, eta in zip(checkpoints, rates):
        f, w = _models.bind(fn, w)  # Flax / Equinox models: differentiate their trainable arrays
        g = _vmapped(jax.grad(_example_fn(f)))
        test_grads = g(w, test_batch)
        _, scores = _scan_chunks(lambda c, chunk: (c, _pairwise_dots(g(w, chunk), test_grads)), train_batch, chunk_size)
        scores = scores * eta
        total = scores if total is None else total + scores
    return total


# ---------------------------------------------------------------------------------------------------------
# Dense stacks and ghost norms
# ---------------------------------------------------------------------------------------------------------


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
    for (w, b), a, d in zip(params, acts, deltas):
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
        total = _tmap(jnp.add, total, _dp_noise(total, noise_multiplier, max_norm, key))
    n = jnp.shape(inputs)[0]
    return ClippedGrad(_tmap(lambda t: t / jnp.asarray(n, t.dtype), total), norms, losses)
