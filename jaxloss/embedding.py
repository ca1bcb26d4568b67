"""Metric-learning losses: similarities, pair, triplet and batch losses on embedding vectors.

The feature axis is ``axis=-1`` (``axis=`` selects another one for the pair and triplet losses).
``reduction="none"`` returns one value per vector pair / triplet (the inputs' shape without the feature
axis). The batch losses :func:`ntxent` and :func:`circle` couple the embeddings of a group: they take
``embeddings`` of shape ``[..., N, D]`` with integer ``labels`` ``[..., N]``, and every leading axis holds
independent groups (so ``jax.vmap`` over it equals a loop).

Cosine similarity follows PyTorch: ``x1 . x2 / (max(|x1|, eps) * max(|x2|, eps))``. A zero vector has
similarity 0 with everything and every value and gradient is finite (optax's ``cosine_similarity``, whose
``epsilon`` defaults to 0, gives NaN there).
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = [
    "cosine_similarity",
    "cosine_distance",
    "cosine_embedding",
    "margin_ranking",
    "hinge_embedding",
    "triplet_margin",
    "contrastive",
    "ntxent",
    "circle",
]


# ---------------------------------------------------------------------------------------------------------
# Private helpers
# ---------------------------------------------------------------------------------------------------------


def _cosine(a, b, eps):
    """PyTorch's cosine similarity over the last axis, finite (value and gradient) at zero vectors."""
    dot = jnp.sum(a * b, axis=-1)
    na = jnp.maximum(_core.safe_norm(a), eps)
    nb = jnp.maximum(_core.safe_norm(b), eps)
    # two divisions, not one by na * nb: at two zero vectors (na * nb = eps^2) the second derivative of
    # the division forms (eps^2)^4, which underflows float32 to 0 (0/0); eps^4 does not.
    return dot / na / nb


def _unit(x, eps):
    """``x / max(|x|, eps)`` over the last axis (the zero vector stays zero, with a finite gradient)."""
    return x / jnp.maximum(_core.safe_norm(x), eps)[..., None]


def _labels_of_loss_shape(ctx, labels, name):
    """Per-pair labels as floats, checked to have the unreduced loss shape, masked entries set to 1."""
    y = _core.numeric_targets(labels, name)
    if y.shape != tuple(ctx.loss_shape):
        raise ValueError(
            f"{name} must have the shape of the inputs without the feature axis, {tuple(ctx.loss_shape)}; "
            f"got {name}.shape={y.shape}"
        )
    return ctx.fill(y.astype(ctx.dtype), 1.0)


def _masked_lse(x, mask):
    """``logsumexp`` of ``x`` over the entries of ``mask`` (last axis), with a finite gradient.

    Rows without any entry give ``-inf`` in value but are replaced by a finite dummy inside (double
    ``where``); callers must discard them. Returns ``(lse, row_has_entries)``.
    """
    any_ = jnp.any(mask, axis=-1)
    z = jnp.where(mask, x, -jnp.inf)
    z = jnp.where(any_[..., None], z, 0.0)
    return jax.nn.logsumexp(z, axis=-1), any_


def _prepare_groups(embeddings, labels, where, reduction, *, per_item):
    """Validates ``embeddings [..., N, D]`` and integer ``labels [..., N]`` of a batch (group) loss.

    ``where`` with the labels' rank masks items (masked items are removed, as if sliced out); with a lower
    rank it masks whole groups (``per_item=False`` only; for a per-item loss every mask is an item mask).

    Returns ``(e, y, valid, loss_shape, group_mask, dtype, out_dtype)``: embeddings in the compute dtype
    with masked items zeroed, labels, the boolean item mask ``[..., N]``, the loss shape and the group
    mask (``None`` when ``where`` is None).
    """
    _core.check_reduction(reduction)
    e = _core.float_array(embeddings, "embeddings")
    if e.ndim < 2:
        raise ValueError(f"embeddings must have shape [..., N, D] (a group of N vectors); got shape {e.shape}")
    y = _core.int_array(labels, "labels", "group labels: equal labels mark positive pairs")
    items = e.shape[:-1]
    if y.shape != items:
        raise ValueError(
            "labels must have the shape of embeddings without the feature axis; got "
            f"embeddings.shape={e.shape} and labels.shape={y.shape} (expected {items})"
        )
    out_dtype = e.dtype
    dtype = _core.compute_dtype(out_dtype)
    loss_shape = items if per_item else items[:-1]
    item_mask, group_mask = _core.split_mask(
        where, items, groups=not per_item, what="the items (embeddings without the feature axis)"
    )
    valid = jnp.ones(items, bool) if item_mask is None else item_mask
    if group_mask is not None:
        valid = jnp.broadcast_to(group_mask[..., None], items)
    e = jnp.where(valid[..., None], e.astype(dtype), 0.0)
    y = jnp.where(valid, y, 0)
    return e, y, valid, loss_shape, group_mask, dtype, out_dtype


def _pair_masks(y, valid, remove_diagonal=True):
    """Positive (same label, both valid, optionally ``i != j``) and negative pair masks ``[..., N, N]``."""
    same = y[..., :, None] == y[..., None, :]
    both = valid[..., :, None] & valid[..., None, :]
    pos = same & both
    if remove_diagonal:
        pos = pos & ~jnp.eye(y.shape[-1], dtype=bool)
    return pos, ~same & both


# The batch formulas are jitted on their own (validation stays outside): called eagerly, a loss then
# compiles once per shape instead of once per operation; under an outer jit they are inlined.


@jax.jit
def _ntxent_groups(e, y, valid, temperature, eps):
    """Per-group NT-Xent (mean over positive pairs) and whether the group has a positive pair."""
    u = _unit(e, eps)
    sim = jnp.einsum("...id,...jd->...ij", u, u) / temperature
    pos, neg = _pair_masks(y, valid)
    neg_lse, has_neg = _masked_lse(sim, neg)  # [..., N]
    # -log softmax of the positive against the negatives = softplus(lse_neg - s_ij); 0 without negatives.
    per_pair = jnp.where(has_neg[..., None], jax.nn.softplus(neg_lse[..., None] - sim), 0.0)
    n_pos = jnp.sum(pos, axis=(-2, -1), dtype=e.dtype)
    total = jnp.sum(jnp.where(pos, per_pair, 0.0), axis=(-2, -1))
    return total / jnp.maximum(n_pos, 1.0), n_pos > 0


@functools.partial(jax.jit, static_argnames=("remove_diagonal",))
def _circle_anchors(e, y, valid, gamma, m, remove_diagonal):
    """Per-anchor Circle loss (Keras' form) and whether the anchor has a positive and a negative."""
    dist = jax.nn.relu(1.0 - jnp.einsum("...id,...jd->...ij", e, e))
    pos, neg = _pair_masks(y, valid, remove_diagonal)
    pos_logits = gamma * jax.nn.relu(m + dist) * (dist - m)
    neg_logits = gamma * jax.nn.relu(1.0 + m - dist) * (1.0 - m - dist)
    lse_p, has_p = _masked_lse(pos_logits, pos)
    lse_n, has_n = _masked_lse(neg_logits, neg)
    has = has_p & has_n
    return jnp.where(has, jax.nn.softplus(jnp.where(has, lse_p + lse_n, 0.0)), 0.0), has


# ---------------------------------------------------------------------------------------------------------
# Similarities
# ---------------------------------------------------------------------------------------------------------


@_core.domain(eps=_core.POSITIVE)
def cosine_similarity(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    eps: ArrayLike = 1e-8,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Cosine similarity of vector pairs: ``x1 . x2 / (max(|x1|, eps) * max(|x2|, eps))``.

    PyTorch's ``cosine_similarity`` (its norm clamp), and optax's ``cosine_similarity`` on non-degenerate
    inputs. A similarity, not a loss (``1 - similarity`` is :func:`cosine_distance`); with the default
    ``"mean"`` it is the mean similarity.

    Zero vectors: the similarity with a zero vector is 0 and both value and gradient are finite. The
    gradient with respect to a vector shorter than ``eps`` is that of the clamped formula above
    (``x2 / (eps * max(|x2|, eps))`` at ``x1 = 0``, the same as PyTorch); it is large, of order
    ``1 / eps``: raise ``eps`` for a gentler push away from zero.

    Args:
      x1: float ``[..., D, ...]`` with the features on ``axis``.
      x2: float array of the same shape.
      eps: the smallest norm in the denominator (> 0); may be traced.
      axis: the feature axis (static).
      weights: optional weights broadcastable to the pair shape (inputs without ``axis``).
      where: optional boolean mask of pairs, broadcastable to the pair shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one similarity per pair).

    Returns:
      a scalar, or the similarities ``[...]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x1 = jnp.array([[1.0, 0.0], [0.0, 0.0]])
      >>> x2 = jnp.array([[1.0, 1.0], [1.0, 2.0]])
      >>> print([round(float(v), 4) for v in jaxloss.cosine_similarity(x1, x2, reduction="none")])
      [0.7071, 0.0]
    """
    ctx, (a, b) = _core.prepare(x1, x2, names=("x1", "x2"), where=where, reduction=reduction, axis=axis)
    ctx = ctx.enforce(cosine_similarity, eps=eps)
    return ctx.reduce(_cosine(a, b, ctx.cast(eps)), weights=weights)


@_core.domain(eps=_core.POSITIVE)
def cosine_distance(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    eps: ArrayLike = 1e-8,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Cosine distance of vector pairs: ``1 - cosine_similarity(x1, x2)`` (optax's ``cosine_distance``).

    In ``[0, 2]``; a zero vector is at distance 1 from everything, with finite value and gradient (see
    :func:`cosine_similarity` for the ``eps`` clamp).

    Args:
      x1: float arrays of one shape, features on ``axis``.
      x2: as ``x1``.
      eps: the smallest norm in the denominator (> 0).
      axis: the feature axis (static).

    Returns:
      a scalar, or one distance per pair for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.cosine_distance(jnp.array([1.0, 0.0]), jnp.array([0.0, 3.0]))), 4))
      1.0
    """
    ctx, (a, b) = _core.prepare(x1, x2, names=("x1", "x2"), where=where, reduction=reduction, axis=axis)
    ctx = ctx.enforce(cosine_distance, eps=eps)
    return ctx.reduce(1.0 - _cosine(a, b, ctx.cast(eps)), weights=weights)


# ---------------------------------------------------------------------------------------------------------
# Pair losses
# ---------------------------------------------------------------------------------------------------------


@_core.domain(labels=_core.BINARY_ANY, margin=_core.in_range(-1, 1), eps=_core.POSITIVE)
def cosine_embedding(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    eps: ArrayLike = 1e-8,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Cosine embedding loss (PyTorch's ``cosine_embedding_loss``), one value per pair.

    ``1 - cos(x1, x2)`` for similar pairs (``y = 1``), ``max(0, cos(x1, x2) - margin)`` for dissimilar
    ones (``y = -1``), with the cosine of :func:`cosine_similarity`.

    Labels are ``{-1, 1}`` or ``{0, 1}`` (0 is read as -1, as in :func:`jaxloss.hinge`); int, bool or
    float. PyTorch gives a loss of 0 to a label 0, which jaxloss does not copy.

    The cosine clamps each norm at ``eps`` (PyTorch's ``cosine_similarity``); PyTorch's
    ``cosine_embedding_loss`` uses ``sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12))`` instead. The two agree
    except for vectors of norm below about ``1e-6``.

    Args:
      x1: float ``[..., D, ...]`` with the features on ``axis``.
      x2: as ``x1``.
      labels: ``[...]`` (the pair shape): 1 similar, -1 (or 0) dissimilar.
      margin: in ``[-1, 1]``; may be traced.
      eps: the smallest norm in the cosine's denominator (> 0).
      axis: the feature axis (static).
      weights: per pair, broadcastable to the pair shape.
      where: a boolean mask, broadcastable like ``weights``.

    Returns:
      a scalar, or one loss per pair for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x1 = jnp.array([[1.0, 0.0], [1.0, 0.0]])
      >>> x2 = jnp.array([[0.0, 1.0], [1.0, 1.0]])
      >>> print(round(float(jaxloss.cosine_embedding(x1, x2, jnp.array([1, -1]), margin=0.5)), 4))
      0.6036
    """
    ctx, (a, b) = _core.prepare(x1, x2, names=("x1", "x2"), where=where, reduction=reduction, axis=axis)
    y = _labels_of_loss_shape(ctx, labels, "labels")
    ctx = ctx.enforce(cosine_embedding, labels=y, margin=margin, eps=eps)
    y = _core.to_signed(y)
    cos = _cosine(a, b, ctx.cast(eps))
    loss = jnp.where(y > 0, 1.0 - cos, jax.nn.relu(cos - ctx.cast(margin)))
    return ctx.reduce(loss, weights=weights)


@_core.domain(labels=_core.BINARY_ANY)
def margin_ranking(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Margin ranking loss (PyTorch's ``margin_ranking_loss``), elementwise: ``max(0, -y (x1 - x2) + margin)``.

    ``y = 1`` means ``x1`` should rank above ``x2``, ``y = -1`` (or 0, read as -1) the reverse.

    Args:
      x1: float scores of one shape.
      x2: as ``x1``.
      labels: the same shape, ``{-1, 1}`` or ``{0, 1}``; int, bool or float.
      margin: the required gap (any real; PyTorch's default 0); may be traced.

    Returns:
      a scalar, or the elementwise loss for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.margin_ranking(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([1, -1]), margin=0.2))
      0.35
    """
    ctx, (a, b, y) = _core.prepare(
        x1,
        x2,
        _core.numeric_targets(labels),
        names=("x1", "x2", "labels"),
        where=where,
        reduction=reduction,
        fill=(0.0, 0.0, 1.0),
    )
    ctx = ctx.enforce(margin_ranking, labels=y)
    y = _core.to_signed(y)
    return ctx.reduce(jax.nn.relu(-y * (a - b) + ctx.cast(margin)), weights=weights)


@_core.domain(labels=_core.BINARY_ANY, margin=_core.NONNEGATIVE)
def hinge_embedding(
    inputs: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Hinge embedding loss (PyTorch's ``hinge_embedding_loss``), elementwise.

    ``x`` for ``y = 1`` and ``max(0, margin - x)`` for ``y = -1``, where ``x`` is typically a distance
    between two embeddings (small for similar pairs, at least ``margin`` for dissimilar ones). Labels are
    ``{-1, 1}`` or ``{0, 1}`` (0 read as -1).

    Args:
      inputs: float array (e.g. pair distances).
      labels: the same shape, ``{-1, 1}`` or ``{0, 1}``.
      margin: ``>= 0``; may be traced.

    Returns:
      a scalar, or the elementwise loss for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.hinge_embedding(jnp.array([0.25, 0.25]), jnp.array([1, -1])))
      0.5
    """
    ctx, (x, y) = _core.prepare(
        inputs,
        _core.numeric_targets(labels),
        names=("inputs", "labels"),
        where=where,
        reduction=reduction,
        fill=(0.0, 1.0),
    )
    ctx = ctx.enforce(hinge_embedding, labels=y, margin=margin)
    y = _core.to_signed(y)
    return ctx.reduce(jnp.where(y > 0, x, jax.nn.relu(ctx.cast(margin) - x)), weights=weights)


def _pairwise_distance(a, b, p, eps):
    """PyTorch's ``pairwise_distance``: ``|a - b + eps|_p`` over the last axis (finite gradient at 0)."""
    return _core.safe_norm(a - b + eps, axis=-1, ord=p, fast_forward=True)


@_core.domain(margin=_core.NONNEGATIVE)
def triplet_margin(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    p: ArrayLike = 2.0,
    eps: ArrayLike = 1e-6,
    swap: bool = False,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Triplet margin loss (PyTorch's ``triplet_margin_loss``), one value per triplet.

    ``max(0, d(a, p) - d(a, n) + margin)`` with ``d(x, y) = |x - y + eps|_p`` (PyTorch's
    ``pairwise_distance``: ``eps`` is added to the difference). With ``swap=True`` the negative distance
    is ``min(d(a, n), d(p, n))`` (the distance swap of Balntas et al.). Every distance has a finite
    gradient, also where ``x - y + eps`` is the zero vector.

    Args:
      anchor: float arrays of one shape, features on ``axis``.
      positive: as ``anchor``.
      negative: as ``anchor``.
      margin: ``>= 0``; may be traced.
      p: the norm degree, a Python number ``> 0`` (or ``inf``); static.
      eps: added to every difference (PyTorch's default 1e-6); may be traced.
      swap: use the distance swap (static).
      axis: the feature axis (static).

    Returns:
      a scalar, or one loss per triplet for ``reduction="none"``.

    References:
      Balntas et al., "Learning local feature descriptors with triplets and shallow convolutional neural
      networks", BMVC 2016. Schroff et al., "FaceNet", CVPR 2015.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> a, pos, neg = jnp.array([0.0, 0.0]), jnp.array([3.0, 4.0]), jnp.array([1.0, 0.0])
      >>> print(round(float(jaxloss.triplet_margin(a, pos, neg, eps=0.0)), 4))
      5.0
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > 0:
        raise ValueError(f"p must be a Python number > 0 (the norm degree, static); got {p!r}")
    ctx, (a, pos, neg) = _core.prepare(
        anchor,
        positive,
        negative,
        names=("anchor", "positive", "negative"),
        where=where,
        reduction=reduction,
        axis=axis,
    )
    ctx = ctx.enforce(triplet_margin, margin=margin)
    eps = ctx.cast(eps)
    d_pos = _pairwise_distance(a, pos, p, eps)
    d_neg = _pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = jnp.minimum(d_neg, _pairwise_distance(pos, neg, p, eps))
    return ctx.reduce(jax.nn.relu(d_pos - d_neg + ctx.cast(margin)), weights=weights)


@_core.domain(labels=_core.PROBABILITY, margin=_core.NONNEGATIVE)
def contrastive(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Pairwise contrastive loss (Hadsell, Chopra & LeCun, 2006), one value per pair.

    ``y * d^2 + (1 - y) * max(0, margin - d)^2`` with ``d = |x1 - x2|_2`` the Euclidean distance.

    Conventions: ``y = 1`` marks a *similar* pair (pulled together), ``y = 0`` a dissimilar one (pushed
    beyond ``margin``); soft labels in ``[0, 1]`` interpolate. There is no factor 1/2: the paper writes
    ``(1 - Y) 1/2 D^2 + Y 1/2 max(0, m - D)^2`` with ``Y = 0`` for similar pairs, which is half of this loss
    with the labels flipped (this form is the one of TensorFlow Addons' ``contrastive_loss``). The
    gradient is finite at ``d = 0`` (the distance's gradient there is taken as 0).

    Args:
      x1: float arrays of one shape, features on ``axis``.
      x2: as ``x1``.
      labels: ``[...]`` (the pair shape): 1 similar, 0 dissimilar; int, bool or float.
      margin: ``>= 0``; may be traced.
      axis: the feature axis (static).

    Returns:
      a scalar, or one loss per pair for ``reduction="none"``.

    References:
      Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant Mapping", CVPR 2006.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x1 = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> x2 = jnp.array([[0.6, 0.8], [0.3, 0.4]])
      >>> print(round(float(jaxloss.contrastive(x1, x2, jnp.array([1, 0]), margin=1.0)), 4))
      0.625
    """
    ctx, (a, b) = _core.prepare(x1, x2, names=("x1", "x2"), where=where, reduction=reduction, axis=axis)
    y = _labels_of_loss_shape(ctx, labels, "labels")
    ctx = ctx.enforce(contrastive, labels=y, margin=margin)
    diff = a - b
    d = _core.safe_norm(diff)
    loss = y * jnp.sum(diff * diff, axis=-1) + (1.0 - y) * jnp.square(jax.nn.relu(ctx.cast(margin) - d))
    return ctx.reduce(loss, weights=weights)


# ---------------------------------------------------------------------------------------------------------
# Batch losses
# ---------------------------------------------------------------------------------------------------------


@_core.domain(temperature=_core.POSITIVE, eps=_core.POSITIVE)
def ntxent(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    eps: ArrayLike = 1e-8,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """NT-Xent / InfoNCE loss of SimCLR (optax's ``ntxent``), one value per group of embeddings.

    Within a group of ``N`` embeddings, ``s_ij = cos(e_i, e_j) / temperature``; every ordered pair
    ``(i, j)``, ``i != j``, with equal labels is a positive pair, and pairs with different labels are the
    negatives of ``i``. The group's loss is the mean over its positive pairs of

    ``-log(exp(s_ij) / (exp(s_ij) + sum_{k: label_k != label_i} exp(s_ik)))``

    (the other positives of ``i`` are not in the denominator: optax's convention, after
    pytorch-metric-learning's ``NTXentLoss``). For ``[N, D]`` embeddings this equals optax's ``ntxent``.

    Shapes: ``embeddings [..., N, D]``, integer ``labels [..., N]``; the leading axes hold independent
    groups and ``reduction="none"`` returns ``[...]``.

    Masks: ``where`` of the labels' shape ``[..., N]`` masks single embeddings, which are removed from the
    group as if sliced out; a ``where`` of lower rank, broadcastable to ``[...]``, masks whole groups. A
    group without any positive pair has no loss term: it gives 0 and is left out of the ``"mean"`` (like
    a masked group); optax gives NaN there.

    Args:
      embeddings: float ``[..., N, D]``.
      labels: integer ``[..., N]``; equal labels mark positive pairs.
      temperature: ``> 0``; may be traced.
      eps: the smallest norm in the cosine (see :func:`cosine_similarity`).
      weights: optional per-group weights, broadcastable to ``[...]``.
      where: item mask ``[..., N]`` or group mask (lower rank).
      reduction: ``"mean"`` (over groups), ``"sum"`` or ``"none"`` (one value per group).

    Returns:
      a scalar, or ``[...]`` for ``reduction="none"``.

    References:
      Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.
      van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> e = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
      >>> print(round(float(jaxloss.ntxent(e, jnp.array([0, 0, 1, 1]), temperature=0.5)), 4))
      0.2899
    """
    e, y, valid, loss_shape, group_mask, dtype, out_dtype = _prepare_groups(
        embeddings, labels, where, reduction, per_item=False
    )
    loss, has_pairs = _ntxent_groups(e, y, valid, jnp.asarray(temperature, dtype), jnp.asarray(eps, dtype))
    ctx = _core.context(loss_shape, out_dtype, where=group_mask, reduction=reduction, extra_mask=has_pairs)
    ctx = ctx.enforce(ntxent, temperature=temperature, eps=eps)
    return ctx.reduce(loss, weights=weights)


@_core.domain(gamma=_core.POSITIVE)
def circle(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 80.0,
    margin: ArrayLike = 0.4,
    remove_diagonal: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Circle loss (Sun et al., CVPR 2020) with Keras 3's ``keras.losses.circle`` semantics, one value per anchor.

    For anchor ``i`` of a group, with ``d_ij = max(1 - e_i . e_j, 0)`` (cosine distance of L2-normalised
    embeddings), positives ``P_i`` (same label, ``j != i`` when ``remove_diagonal``) and negatives ``N_i``
    (other labels):

    ``softplus(logsumexp_{j in P_i} gamma a_p (d_ij - m) + logsumexp_{k in N_i} gamma a_n (1 - m - d_ik))``

    with ``a_p = max(m + d_ij, 0)`` and ``a_n = max(1 + m - d_ik, 0)`` (the paper's optima ``O_p = 1 + m``,
    ``O_n = -m`` and margins ``1 - m``, ``m`` in similarity form). As in Keras, the weights ``a_p, a_n``
    are differentiated through (not stopped), and the embeddings are used as given: pass L2-normalised
    embeddings (Keras expects a ``UnitNormalization`` layer before the loss).

    Shapes: ``embeddings [..., N, D]``, integer ``labels [..., N]``; leading axes hold independent groups;
    ``reduction="none"`` returns ``[..., N]``. An anchor without a positive or without a negative has no
    loss term: it gives 0 and is left out of the ``"mean"``, as Keras' ``Circle`` does (its mask keeps
    anchors with a positive loss). ``where`` (broadcastable to ``[..., N]``) removes masked embeddings
    entirely, as anchors and as positives/negatives of the others (as if sliced out); ``[..., 1]`` masks
    whole groups. Keras' cross-batch ``ref_embeddings``/``ref_labels`` are not supported.

    Args:
      embeddings: float ``[..., N, D]``, L2-normalised.
      labels: integer ``[..., N]`` class labels.
      gamma: the scale ``> 0`` (Keras' default 80); may be traced.
      margin: the relaxation ``m`` (Keras' default 0.4); may be traced.
      remove_diagonal: drop ``j = i`` from the positives (static).
      weights: optional per-anchor weights, broadcastable to ``[..., N]``.
      where: optional boolean mask of embeddings, broadcastable to ``[..., N]``.

    Returns:
      a scalar, or one loss per anchor ``[..., N]`` for ``reduction="none"``.

    References:
      Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization", CVPR 2020.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> e = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]])
      >>> print(round(float(jaxloss.circle(e, jnp.array([0, 0, 1, 1]), gamma=2.0)), 4))
      1.1711
    """
    e, y, valid, loss_shape, _, dtype, out_dtype = _prepare_groups(embeddings, labels, where, reduction, per_item=True)
    loss, has = _circle_anchors(
        e, y, valid, jnp.asarray(gamma, dtype), jnp.asarray(margin, dtype), bool(remove_diagonal)
    )
    ctx = _core.context(loss_shape, out_dtype, reduction=reduction, extra_mask=has)
    ctx = ctx.enforce(circle, gamma=gamma)
    return ctx.reduce(loss, weights=weights)
