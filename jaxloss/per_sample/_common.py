"""Plumbing shared by the per-sample tools: the example axis, chunking, the per-example function and
small tree reductions."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
PyTree = Any
_tmap = jax.tree_util.tree_map
_leaves = jax.tree_util.tree_leaves


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

    ``per_example_outputs`` have the chunk's example axis first; they are put back in the batch's order.
    Full chunks go through one ``lax.scan`` (a single compiled body, memory bounded by the chunk); a
    remainder (batch size not a multiple of the chunk) is one more call on the last examples.

    The chunks are strided: with ``full`` chunks of ``c`` examples, chunk ``j`` holds examples ``j, j + full,
    j + 2 full, ...``. The batch is viewed as ``[c, full, ...]`` and the scan walks the second axis, so a
    batch sharded on its example axis (the sharding goes to the first axis) is never gathered: each device
    processes its own examples of every chunk, ``c / devices`` at a time. (With a remainder, the full
    chunks are a slice of the batch, which a sharded batch may have to move for.)
    """
    n = _num_examples(batch)
    c = _check_chunk(chunk_size)
    if c is None or c >= n:
        return chunk_fn(init, batch)
    full, rem = divmod(n, c)
    head = _tmap(lambda x: jnp.reshape(x[: full * c] if rem else x, (c, full) + jnp.shape(x)[1:]), batch)

    def body(carry, j):
        return chunk_fn(carry, _tmap(lambda x: jax.lax.dynamic_index_in_dim(x, j, axis=1, keepdims=False), head))

    carry, ys = jax.lax.scan(body, init, jnp.arange(full))
    ys = _tmap(lambda y: jnp.reshape(jnp.swapaxes(y, 0, 1), (full * c,) + y.shape[2:]), ys)
    if rem:
        carry, yt = chunk_fn(carry, _tmap(lambda x: x[full * c :], batch))
        ys = _tmap(lambda a, b: jnp.concatenate([a, b], axis=0), ys, yt)
    return carry, ys


def _example_fn(fn: Callable) -> Callable:
    """``fn`` on one example, given as a batch of one (every leaf re-expanded to a leading axis of 1)."""

    def one(params, example):
        out = fn(params, _tmap(lambda x: jnp.expand_dims(x, 0), example))
        if jnp.ndim(out) != 0:
            raise TypeError(
                f"fn must return a scalar (a batch objective such as a mean loss); got shape {jnp.shape(out)}"
            )
        return out

    return one


def _vmapped(f: Callable) -> Callable:
    return jax.vmap(f, in_axes=(None, 0))


def _sq_norms(tree: PyTree) -> PyTree:
    """Per-example squared norm of every leaf of a tree of ``[B, ...]`` arrays: a tree of ``[B]``."""
    return _tmap(lambda g: jnp.sum(jnp.reshape(jnp.square(g), (g.shape[0], -1)), axis=1), tree)


def _sum_leaves(tree: PyTree, init=0.0):
    """The elementwise sum of a tree's leaves (e.g. per-leaf ``[B]`` norms into ``[B]``); ``optax.tree.sum``
    would also sum over the example axis."""
    return sum(_leaves(tree), init)


def _global_norms(grads: PyTree) -> Array:
    """``[B]``: the L2 norm of each example's gradient over all leaves of a tree of ``[B, ...]`` arrays."""
    return _sqrt(_sum_leaves(_sq_norms(grads)))


def _zero_grads(fn: Callable, params: PyTree, batch: PyTree) -> PyTree:
    """Zeros of the structure, shapes and dtypes of ``grad fn(params, batch)`` (no gradient is computed)."""
    return optax.tree.zeros_like(jax.eval_shape(jax.grad(fn), params, _tmap(lambda x: x[:1], batch)))


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
