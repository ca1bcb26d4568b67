"""Fenchel–Young losses: a loss built from a regularised max operator (Blondel, Martins and Niculae, 2020).

A regularisation ``Omega`` of the probability simplex defines the regularised max (the convex conjugate of
``Omega`` restricted to the simplex) and its prediction map::

    max_Omega(s) = max_{p in simplex} <p, s> - Omega(p),      y_hat(s) = grad max_Omega(s) = argmax

and the Fenchel–Young loss of scores ``s`` and a target distribution ``y`` is::

    L(s, y) = max_Omega(s) - <s, y> + Omega(y)   >= 0,   zero exactly when y_hat(s) = y,
    grad_s L = y_hat(s) - y.

``Omega = sum p log p`` (negative Shannon entropy) gives ``max_Omega = logsumexp``, ``y_hat = softmax`` and
the cross-entropy; ``Omega = (|p|^2 - 1) / 2`` (Gini) gives ``y_hat = sparsemax`` and the sparsemax loss.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = ["fenchel_young"]


def _softmax_max(s):
    return jax.nn.logsumexp(s, axis=-1)


def _neg_entropy(p):
    return jnp.sum(_core.xlogx(p), axis=-1)


def _gini(p):
    return 0.5 * (jnp.sum(p * p, axis=-1) - 1.0)


# name -> (max operator over the last axis, its regulariser Omega over the last axis); both are
# shift-equivariant (max(s + c) = max(s) + c), so they are evaluated on s - max(s).
_BUILTIN: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "softmax": (_softmax_max, _neg_entropy),
    "sparsemax": (_core.gini_max, _gini),
}


def fenchel_young(
    max_fn: Union[str, Callable[..., Any]], *, regularizer: Optional[Callable[..., Any]] = None
) -> Callable[..., Array]:
    """Builds the Fenchel–Young loss of a regularised max operator (optax's ``make_fenchel_young_loss``).

    ``loss(scores, targets) = max_fn(scores) - <scores, targets> + regularizer(targets)`` per example, over
    the class axis. Its gradient with respect to the scores is ``y_hat(scores) - targets`` with
    ``y_hat = grad max_fn`` (computed by differentiating ``max_fn``). The regulariser term does not depend
    on the scores: it makes the loss non-negative and zero at a perfect prediction, and leaves the
    gradient unchanged. Without it (``regularizer=None`` with a callable ``max_fn``) the loss is optax's
    ``make_fenchel_young_loss(max_fn)``, which differs by a function of the targets only.

    Built-in operators (``max_fn`` a string; they include their regulariser ``Omega``):

    * ``"softmax"``: ``max = logsumexp``, ``Omega(p) = sum p log p``; ``y_hat = softmax``. With integer
      labels (one-hot targets, ``Omega = 0``) this is :func:`jaxloss.cross_entropy`; with probability
      targets it is ``cross_entropy(scores, targets) - H(targets)`` = ``KL(targets || softmax(scores))``.
    * ``"sparsemax"``: ``max = max_p <p, s> + (1 - |p|^2) / 2``, ``Omega(p) = (|p|^2 - 1) / 2``;
      ``y_hat = sparsemax``. With integer labels this is :func:`jaxloss.multiclass_sparsemax`.

    Both are computed on ``scores - max(scores)`` (they are shift-equivariant), so large scores are safe.

    Args:
      max_fn: ``"softmax"``, ``"sparsemax"``, or a function of one score vector ``[C] -> scalar`` (a convex
        regularised max such as ``jax.nn.logsumexp``); it is vectorised over the other axes as optax does.
      regularizer: with a callable ``max_fn``, an optional function of one target vector ``[C] -> scalar``
        (``Omega``), vectorised the same way; not accepted with a built-in name (it has its own).

    Returns:
      ``loss(scores, targets, *, axis=-1, ignore_index=None, weights=None, where=None, reduction="mean")``:

      * ``scores``: float ``[..., C, ...]`` with the classes on ``axis`` (static);
      * ``targets``: integer class labels (the scores' shape without ``axis``; labels in ``[0, C)``, out of
        range labels give NaN and fail under :func:`jaxloss.checked`; ``ignore_index`` masks them) or
        float target distributions of the scores' shape (on the probability simplex: the built-in
        regularisers assume it; entries outside ``[0, 1]`` give NaN and fail under
        :func:`jaxloss.checked`; the sum is not checked);
      * ``weights``/``where``: per example (broadcastable to the scores' shape without ``axis``);
      * ``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Raises:
      ValueError: an unknown built-in name, or ``regularizer`` with a built-in name.
      TypeError: a ``max_fn`` that is neither a string nor callable.

    References:
      Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR 21, 2020.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> s = jnp.array([[1.0, 0.5, -1.0]])
      >>> print(round(float(jaxloss.fenchel_young("sparsemax")(s, jnp.array([1]))), 4))   # multiclass_sparsemax
      0.5625
      >>> loss = jaxloss.fenchel_young("softmax")
      >>> y = jnp.array([[0.5, 0.5, 0.0]])
      >>> print(jax.grad(loss)(s, y).round(4))                 # softmax(s) - y
      [[ 0.0741 -0.1518  0.0777]]
      >>> print(round(float(jaxloss.fenchel_young(jax.nn.logsumexp)(s, jnp.array([0]))), 4))   # cross-entropy
      0.555
    """
    if isinstance(max_fn, str):
        if max_fn not in _BUILTIN:
            raise ValueError(
                f"max_fn must be one of {', '.join(repr(k) for k in _BUILTIN)} or a function; got {max_fn!r}"
            )
        if regularizer is not None:
            raise ValueError(f"regularizer is built into max_fn={max_fn!r}; pass a callable max_fn to give your own")
        vec_max, vec_reg = _BUILTIN[max_fn]
        shift = True
        name = f"fenchel_young_{max_fn}"
    elif callable(max_fn):
        vec_max = jnp.vectorize(max_fn, signature="(n)->()")
        vec_reg = None if regularizer is None else jnp.vectorize(regularizer, signature="(n)->()")  # type: ignore[assignment]
        shift = False
        name = f"fenchel_young_{getattr(max_fn, '__name__', 'max')}"
    else:
        raise TypeError(f"max_fn must be 'softmax', 'sparsemax' or a function of a score vector; got {max_fn!r}")

    def loss(
        scores: ArrayLike,
        targets: ArrayLike,
        *,
        axis: int = -1,
        ignore_index: Optional[int] = None,
        weights: Optional[ArrayLike] = None,
        where: Optional[ArrayLike] = None,
        reduction: Reduction = "mean",
    ) -> Array:
        ctx, s, y, is_int = _core.prepare_classes(
            scores,
            targets,
            axis=axis,
            where=where,
            reduction=reduction,
            ignore_index=ignore_index,
            names=("scores", "targets"),
        )
        ctx = ctx.enforce(checked_loss, targets=y)
        if shift:
            s = s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
        if is_int:
            value = vec_max(s) - _core.take_class(s, y)
            if vec_reg is not None and not shift:  # the built-in regularisers vanish at one-hot targets
                value = value + vec_reg(jax.nn.one_hot(y, s.shape[-1], dtype=s.dtype))
        else:
            value = vec_max(s) - jnp.sum(s * y, axis=-1)
            if vec_reg is not None:
                value = value + vec_reg(y)
        return ctx.reduce(value, weights=weights)

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = (
        f"The Fenchel–Young loss of {max_fn!r} built by :func:`jaxloss.fenchel_young` (see its docstring):\n"
        "``loss(scores, targets, *, axis=-1, ignore_index=None, weights=None, where=None, reduction='mean')``.\n"
    )
    checked_loss = _core.domain(targets=_core.CLASS_OR_PROBABILITIES)(loss)
    return checked_loss
