"""Similarity and influence (TracIn) of per-example gradients."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp

from jaxloss import _models
from jaxloss.per_sample._common import (
    Array,
    PyTree,
    _example_fn,
    _global_norms,
    _leaves,
    _num_examples,
    _safe_div,
    _scan_chunks,
    _vmapped,
)

__all__ = ["grad_cosine_similarity", "tracin_influence"]


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
    if jax.tree_util.tree_structure(grads) != jax.tree_util.tree_structure(other):  # type: ignore[operator]
        raise ValueError("grads and other must have the same tree structure")
    na, nb = _global_norms(grads), _global_norms(other)
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
        rates = (
            list(learning_rates)
            if not hasattr(learning_rates, "shape")
            else [learning_rates[i] for i in range(len(learning_rates))]
        )
        checkpoints = list(params)
        if len(rates) != len(checkpoints):
            raise ValueError(f"got {len(checkpoints)} checkpoints but {len(rates)} learning_rates")
    _num_examples(train_batch, "train_batch")
    _num_examples(test_batch, "test_batch")
    total: Any = None
    for w, eta in zip(checkpoints, rates):
        f, w = _models.bind(fn, w)  # Flax / Equinox models: differentiate their trainable arrays
        g = _vmapped(jax.grad(_example_fn(f)))
        test_grads = g(w, test_batch)

        def chunk_fn(carry, chunk, g=g, w=w, test_grads=test_grads):
            return carry, _pairwise_dots(g(w, chunk), test_grads)

        _, scores = _scan_chunks(chunk_fn, train_batch, chunk_size)
        scores = scores * eta
        total = scores if total is None else total + scores
    return total
