"""Ranking and recommendation losses: scores of the items of a list, with graded relevance labels.

Shapes: ``scores [..., L]`` and ``labels [..., L]`` (float, int or bool relevance; higher is more
relevant), with the items of a list on the last axis; every leading axis indexes independent lists and
``reduction="none"`` returns one loss per list, ``[...]``. :func:`bpr` is elementwise (one loss per
positive/negative score pair).

Padding and masks: ``where`` with the scores' rank (broadcastable to ``[..., L]``) masks *items*: masked
items are removed from their list, exactly as if they were sliced out (they get zero gradient, and NaN
padding cannot leak). A ``where`` of lower rank (broadcastable to ``[...]``) masks whole lists; a list mask
may also be given as an item mask of shape ``[..., 1]``. A list whose items are all masked is masked.
``weights`` are per list (broadcastable to ``[...]``), following the jaxloss contract.

A list in which the loss has no term (no valid item; for the pairwise losses, no pair of items with
different labels) gives 0 and is left out of the ``"mean"``, as if it were masked.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = ["bpr", "pairwise_logistic", "pairwise_hinge", "ranking_softmax", "listmle"]


# ---------------------------------------------------------------------------------------------------------
# Private helpers: lists with item-level masks
# ---------------------------------------------------------------------------------------------------------


def _prepare_lists(scores, labels, where, reduction):
    """Validates ``scores``/``labels`` ``[..., L]`` and splits ``where`` into a list mask and an item mask.

    Returns ``(ctx, s, y, valid)``: the context (loss shape ``[...]``, list mask), scores and labels in the
    compute dtype with masked items set to 0, and the boolean mask of valid items ``[..., L]``.
    """
    _core.check_reduction(reduction)
    s = _core.float_array(scores, "scores")
    if s.ndim == 0:
        raise ValueError("scores must have at least one dimension (the items of a list, last); got a scalar")
    y = _core.numeric_targets(labels, "labels")
    _core.check_same_shape([s, y], ["scores", "labels"])
    item_mask, list_mask = _core.split_mask(where, s.shape, what="the scores (an item mask)")
    if item_mask is not None:
        list_mask = jnp.any(item_mask, axis=-1)
    ctx, (s, y) = _core.prepare(s, y, names=("scores", "labels"), where=list_mask, reduction=reduction, axis=-1)
    valid = jnp.ones(s.shape, bool) if ctx.mask is None else jnp.broadcast_to(ctx.mask[..., None], s.shape)
    if item_mask is not None:
        valid = valid & item_mask
        s = jnp.where(valid, s, 0.0)
        y = jnp.where(valid, y, 0.0)
    return ctx, s, y, valid


def _reduce_lists(ctx, loss, has_terms, weights):
    """Reduces per-list losses, leaving out (as masked) the lists without any term of the loss."""
    mask = has_terms if ctx.mask is None else ctx.mask & has_terms
    return dataclasses.replace(ctx, mask=mask).reduce(loss, weights=weights)


# The formulas below are jitted on their own (with the validation left outside): called eagerly, a loss
# then compiles once per shape instead of once per operation; under an outer jit they are inlined.


@functools.partial(jax.jit, static_argnames=("kind",))
def _pairwise_lists(s, y, valid, margin, kind):
    """Mean of the pair loss of ``s_i - s_j`` over pairs of valid items with ``y_i > y_j``; has-pairs flag."""
    diff = s[..., :, None] - s[..., None, :]
    pair = jax.nn.softplus(-diff) if kind == "logistic" else jax.nn.relu(margin - diff)
    ordered = (y[..., :, None] > y[..., None, :]) & valid[..., :, None] & valid[..., None, :]
    n_pairs = jnp.sum(ordered, axis=(-2, -1), dtype=s.dtype)
    total = jnp.sum(jnp.where(ordered, pair, 0.0), axis=(-2, -1))
    return total / jnp.maximum(n_pairs, 1.0), n_pairs > 0


def _pairwise(loss, scores, labels, where, reduction, weights, kind, margin=0.0):
    ctx, s, y, valid = _prepare_lists(scores, labels, where, reduction)
    ctx = ctx.enforce(loss, labels=y, **({} if kind == "logistic" else dict(margin=margin)))
    loss, has_pairs = _pairwise_lists(s, y, valid, ctx.cast(margin), kind)
    return _reduce_lists(ctx, loss, has_pairs, weights)


@jax.jit
def _softmax_lists(s, y, valid):
    any_valid = jnp.any(valid, axis=-1)
    z = jnp.where(valid | ~any_valid[..., None], s, -jnp.inf)  # a list with no valid item is masked anyway
    log_p = jnp.where(valid, jax.nn.log_softmax(z, axis=-1), 0.0)
    return -jnp.sum(y * log_p, axis=-1), any_valid


@jax.jit
def _listmle_lists(s, y, valid):
    # Masked items sort first, so the reverse cumulative sums of the valid positions never include them.
    key = jnp.where(valid, -y, -jnp.inf)
    perm = jnp.argsort(key, axis=-1, stable=True)
    s_sorted = jnp.take_along_axis(s, perm, axis=-1)
    valid_sorted = jnp.take_along_axis(valid, perm, axis=-1)
    # Shifting by the list's largest valid score (a constant, which cancels) keeps the leading terms of
    # the cumulative sums near 0, where float32 is most precise (scores of order 1e4 stay accurate).
    top = jax.lax.stop_gradient(jnp.max(jnp.where(valid, s, -jnp.inf), axis=-1, keepdims=True))
    shifted = s_sorted - jnp.where(jnp.isfinite(top), top, 0.0)
    tail_lse = jax.lax.cumlogsumexp(shifted, axis=s.ndim - 1, reverse=True)
    return jnp.sum(jnp.where(valid_sorted, tail_lse - shifted, 0.0), axis=-1), jnp.any(valid, axis=-1)


# ---------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------


def bpr(
    positive_scores: ArrayLike,
    negative_scores: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Bayesian Personalised Ranking loss, elementwise: ``-log sigmoid(s_pos - s_neg)``.

    Computed as ``softplus(s_neg - s_pos)`` (``-log_sigmoid``): finite for any finite scores. The
    paper's criterion also has an L2 penalty on the parameters; add one with :mod:`jaxloss.regularizers`.
    For several negatives per positive, broadcast the positive scores to the negatives' shape first
    (``jnp.broadcast_to``); both inputs must have one shape.

    Args:
      positive_scores: float scores of the observed (preferred) items.
      negative_scores: float scores of the sampled unobserved items, same shape.
      weights: broadcastable to the scores' shape.
      where: a boolean mask, broadcastable like ``weights``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise).

    Returns:
      a scalar, or the elementwise loss for ``reduction="none"``.

    References:
      Rendle, Freudenthaler, Gantner and Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from
      Implicit Feedback", UAI 2009.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.bpr(jnp.array([2.0, 0.0]), jnp.array([1.0, 0.0]))), 4))
      0.5032
    """
    ctx, (sp, sn) = _core.prepare(
        positive_scores, negative_scores, names=("positive_scores", "negative_scores"), where=where, reduction=reduction
    )
    return ctx.reduce(jax.nn.softplus(sn - sp), weights=weights)


@_core.domain(labels=_core.REAL)
def pairwise_logistic(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Pairwise logistic (RankNet) loss: mean over ordered pairs of ``log(1 + exp(-(s_i - s_j)))``.

    Per list, over every pair of valid items ``(i, j)`` with ``label_i > label_j`` (ties make no pair):
    ``sum softplus(s_j - s_i) / (number of such pairs)``. The pair term is TF-Ranking's
    ``PairwiseLogisticLoss``; the normalisation differs: TF-Ranking's default divides the sum over all
    pairs of the batch by the batch's number of pairs, jaxloss averages within each list and then over
    lists (so every list counts equally, whatever its number of pairs). A list without any pair gives 0
    and is left out of the ``"mean"``.

    Args:
      scores: float ``[..., L]``.
      labels: relevance ``[..., L]`` (float, int or bool).
      weights: per-list weights, broadcastable to ``[...]``.
      where: item mask ``[..., L]`` (masked items are removed) or list mask of lower rank.
      reduction: ``"mean"`` (over lists), ``"sum"`` or ``"none"`` (one loss per list).

    Returns:
      a scalar, or ``[...]`` for ``reduction="none"``.

    References:
      Burges et al., "Learning to Rank using Gradient Descent", ICML 2005.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.pairwise_logistic(jnp.array([2.0, 1.0, 0.0]), jnp.array([2, 0, 1]))), 4))
      0.5845
    """
    return _pairwise(pairwise_logistic, scores, labels, where, reduction, weights, "logistic")


@_core.domain(labels=_core.REAL, margin=_core.NONNEGATIVE)
def pairwise_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Pairwise hinge (RankSVM) loss: mean over ordered pairs of ``max(0, margin - (s_i - s_j))``.

    Pairs and normalisation as in :func:`pairwise_logistic` (pairs of valid items with
    ``label_i > label_j``, averaged per list); with ``margin=1`` the pair term is TF-Ranking's
    ``PairwiseHingeLoss``.

    Args:
      scores: float ``[..., L]``.
      labels: relevance ``[..., L]``.
      margin: ``>= 0``; may be traced.

    Returns:
      a scalar, or one loss per list for ``reduction="none"``.

    References:
      Herbrich, Graepel and Obermayer, "Large Margin Rank Boundaries for Ordinal Regression", 2000.
      Joachims, "Optimizing Search Engines using Clickthrough Data", KDD 2002.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.pairwise_hinge(jnp.array([2.0, 1.0, 0.0]), jnp.array([2, 0, 1]))), 4))
      0.6667
    """
    return _pairwise(pairwise_hinge, scores, labels, where, reduction, weights, "hinge", margin)


@_core.domain(labels=_core.NONNEGATIVE)
def ranking_softmax(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Listwise softmax loss (optax's ``ranking_softmax_loss``): ``-sum_i y_i log softmax(s)_i`` per list.

    The softmax runs over the valid items of the list only. Labels are not normalised (as in optax; a
    list of all-zero labels gives 0 and counts in the ``"mean"``, as in optax). optax's ``weights`` are
    per item (they multiply the labels); jaxloss's are per list, as everywhere: for item weights, pass
    ``labels * item_weights``. A list without any valid item is left out of the ``"mean"``.

    Args:
      scores: float ``[..., L]``.
      labels: relevance ``[..., L]`` (float, int or bool).
      weights: per-list weights, broadcastable to ``[...]``.
      where: item mask ``[..., L]`` or list mask of lower rank.

    Returns:
      a scalar, or one loss per list for ``reduction="none"``.

    References:
      Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach", ICML 2007.
      Bruch et al., "An Analysis of the Softmax Cross Entropy Loss for Learning-to-Rank", SIGIR 2019.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.ranking_softmax(jnp.array([2.0, 1.0, 0.0]), jnp.array([1, 0, 0]))), 4))
      0.4076
    """
    ctx, s, y, valid = _prepare_lists(scores, labels, where, reduction)
    ctx = ctx.enforce(ranking_softmax, labels=y)
    loss, any_valid = _softmax_lists(s, y, valid)
    return _reduce_lists(ctx, loss, any_valid, weights)


@_core.domain(labels=_core.REAL)
def listmle(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """ListMLE (Xia et al., ICML 2008): negative Plackett–Luce log-likelihood of the label order.

    With ``pi`` the permutation of the valid items sorting ``labels`` descending:
    ``sum_k [log sum_{m >= k} exp(s_{pi(m)}) - s_{pi(k)}]`` per list (a sum over positions, as in the
    paper). Computed with ``argsort`` and a reverse cumulative ``logsumexp`` (``lax.cumlogsumexp``): exact
    for any finite scores and jittable.

    Ties: items of equal label keep their order in the list (a stable sort: the earlier item is ranked
    higher). TF-Ranking breaks ties at random instead; a deterministic rule keeps the loss a pure function.
    Masked items are left out of the permutation.

    Args:
      scores: float ``[..., L]``.
      labels: relevance ``[..., L]`` (float, int or bool).
      weights: per-list weights, broadcastable to ``[...]``.
      where: item mask ``[..., L]`` or list mask of lower rank.

    Returns:
      a scalar, or one loss per list for ``reduction="none"``.

    References:
      Xia, Liu, Wang, Zhang and Li, "Listwise Approach to Learning to Rank: Theory and Algorithm",
      ICML 2008.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.listmle(jnp.array([2.0, 1.0, 0.0]), jnp.array([2, 0, 1]))), 4))
      1.7209
    """
    ctx, s, y, valid = _prepare_lists(scores, labels, where, reduction)
    ctx = ctx.enforce(listmle, labels=y)
    loss, any_valid = _listmle_lists(s, y, valid)
    return _reduce_lists(ctx, loss, any_valid, weights)
