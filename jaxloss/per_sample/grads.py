"""Per-example losses, gradients and gradient norms."""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Union

import jax
import numpy as np

from jaxloss import _models
from jaxloss.per_sample import ghost as _ghost
from jaxloss.per_sample._common import (
    Array,
    PyTree,
    _example_fn,
    _group_norms,
    _scan_chunks,
    _sq_norms,
    _sqrt,
    _sum_leaves,
    _tmap,
    _vmapped,
)

__all__ = ["per_sample_losses", "per_sample_grads", "per_sample_grad_norms"]


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
    method: Literal["vmap", "ghost"] = "vmap",
) -> Array | tuple[Array, Any]:
    """Per-example gradient L2 norms, global and optionally per leaf or per layer.

    With ``chunk_size`` only one chunk of per-example gradients exists at a time: each chunk is reduced to
    its norms before the next one is computed.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective.
      params: any pytree of float arrays, or a model (Flax NNX / linen variables / Equinox).
      batch: a pytree whose leaves share a leading example axis of size ``B``.
      chunk_size: process ``chunk_size`` examples at a time (static); ``None`` vectorises the whole batch.
      per_layer: ``False``: only the global norms. ``True``: also the norm of every leaf, as a pytree of
        the structure of ``params`` with ``[B]`` leaves. An int ``depth``: also the norm over all leaves
        under each node at that depth of the params tree, as a dict keyed by
        ``jax.tree_util.keystr`` of the node's path (for a list of ``(W, b)`` layers ``depth=1`` gives
        ``{"[0]": ..., "[1]": ...}``; for Flax's ``{"params": {"Dense_0": ...}}`` use ``depth=2``).
      method: ``"vmap"`` (the default: exact per-example gradients, ``jax.vmap`` of ``jax.grad``) or
        ``"ghost"``: the ghost norm analysis of :mod:`jaxloss.per_sample.ghost` (the same norms up to float
        rounding from one forward/backward pass, without per-example weight gradients; much less time and
        memory for large models, see ``benchmarks/ghost.py``). The default stays the exact path because
        it works for every function (the ghost path falls back to it per leaf, see :func:`ghost_plan`).

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
    if _ghost.is_ghost(method):  # the ghost norm analysis (jaxloss.per_sample.ghost)
        return _ghost.ghost_norms(fn, params, batch, chunk_size=chunk_size, per_layer=per_layer)
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
