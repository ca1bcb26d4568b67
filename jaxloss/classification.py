"""Classification losses: logits (or scores) first, labels second.

Multi-class losses reduce over a class axis (``axis=-1`` by default), so ``reduction="none"`` returns one
loss per example (the logits' shape without the class axis). Binary losses (``binary_cross_entropy``,
``focal``, ``hinge``, ``squared_hinge``) are elementwise. Integer labels are never expanded to a one-hot.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _core, _derivatives
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = [
    "cross_entropy",
    "nll",
    "binary_cross_entropy",
    "focal",
    "multiclass_focal",
    "hinge",
    "squared_hinge",
    "multiclass_hinge",
    "multi_margin",
    "smooth_labels",
    "soft_margin",
    "multilabel_soft_margin",
    "multilabel_margin",
    "poly1",
    "generalized_cross_entropy",
    "categorical_hinge",
    "perceptron",
    "multiclass_perceptron",
    "sparsemax",
    "multiclass_sparsemax",
]


def _is_label(labels, num_classes):
    """Boolean ``[..., C]``: ``class == label``; XLA fuses it into the reduction that uses it."""
    return jnp.arange(num_classes) == labels[..., None]


@_core.domain(labels=_core.CLASS_OR_PROBABILITIES, label_smoothing=_core.PROBABILITY, z_loss=_core.NONNEGATIVE)
def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    class_weights: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    z_loss: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Softmax cross-entropy with integer labels or probability targets (the dtype decides).

    Integer labels: ``lse(x) - x[y]``, computed without a one-hot. With ``label_smoothing=eps`` the loss is
    ``(1 - eps) * w[y] * (lse - x[y]) + eps / C * sum_c w[c] * (lse - x[c])`` and ``"mean"`` divides by
    ``sum w[y]`` over unmasked examples: exactly PyTorch's ``cross_entropy(weight=, label_smoothing=,
    ignore_index=)``.

    Logits of ``-inf`` (masked classes) are allowed with integer labels: finite values and gradients, as
    optax's ``safe_softmax_cross_entropy``. With label smoothing every class receives target mass, so the
    loss is then truly infinite (as in PyTorch). With probability targets the logits must be finite (use a
    large negative number such as ``-1e9`` for masked classes): a guard there would double the compiled
    temporary memory of the common case.

    Probability targets (float, the logits' shape): ``-sum_c w[c] * t'[c] * log_softmax(x)[c]`` with
    ``t' = (1 - eps) * t + eps / C``; ``"mean"`` is the plain mean over examples (as in PyTorch).

    Args:
      logits: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int ``[...]`` (logits' shape without ``axis``) or float probabilities of the logits' shape.
      axis: the class axis (static): an int, or a tuple of axes (flattened row-major in the given order;
        an integer label is then a flat index into that slice, as in optax).
      class_weights: optional ``[C]`` weight per class (``C`` the flattened class count).
      label_smoothing: ``eps`` in ``[0, 1]``; may be traced. Not with a class mask.
      ignore_index: integer labels equal to it are masked (PyTorch's ``ignore_index``; default: none).
      z_loss: coefficient ``z`` of the fused log-partition penalty ``z * logsumexp(x)^2`` added to each
        example (PaLM's auxiliary z-loss, for stable large-vocabulary training); reuses the
        log-sum-exp the cross-entropy already computes. May be traced.
      weights: optional per-example weights, broadcastable to the logits' shape without ``axis``.
      where: optional boolean mask of examples (broadcastable to the loss shape) or, with the logits' rank,
        of classes (optax's convention: masked classes are left out of the softmax; a label must not
        point at one; an example without an unmasked class is masked).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Raises:
      TypeError: labels neither integer nor float. ValueError: shapes that do not fit.

    Labels out of ``[0, C)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
      >>> print(round(float(jaxloss.cross_entropy(logits, jnp.array([0, 2]))), 4))  # (0.2395 + log 3) / 2
      0.6691
    """
    if where is not None and jnp.ndim(where) == jnp.ndim(logits) and not _core.is_zero(label_smoothing):
        raise ValueError(
            "label_smoothing spreads mass over every class: it cannot be combined with a class mask (where=)"
        )
    ctx, x, t, is_int = _core.prepare_classes(
        logits, labels, axis=axis, where=where, reduction=reduction, ignore_index=ignore_index
    )
    ctx = ctx.enforce(cross_entropy, labels=t if is_int else None, label_smoothing=label_smoothing, z_loss=z_loss)
    num_classes = x.shape[-1]
    eps = ctx.cast(label_smoothing)
    cw = _core.class_weight_array(class_weights, num_classes, ctx.dtype)
    lse = jax.nn.logsumexp(x, axis=-1)
    smoothing, z = not _core.is_zero(label_smoothing), not _core.is_zero(z_loss)
    if is_int:
        loss = lse - _core.take_class(x, t)
        w_y = None if cw is None else cw[t]
        if w_y is not None:
            loss = w_y * loss
        if smoothing:
            # mean_c w_c (lse - x_c) = lse * mean(w) - mean(w * x): no [.., C] log-softmax is formed.
            smooth = lse - jnp.mean(x, axis=-1) if cw is None else lse * jnp.mean(cw) - jnp.mean(x * cw, axis=-1)
            loss = (1.0 - eps) * loss + eps * smooth
        if z:  # like the data term, an example's z-loss counts with its class weight
            loss = loss + ctx.cast(z_loss) * jnp.square(lse) * (1.0 if w_y is None else w_y)
        return ctx.reduce(loss, weights=weights, norm=w_y)
    target = (1.0 - eps) * t + eps / num_classes if smoothing else t
    if cw is not None:
        target = target * cw
    # -sum t log_softmax(x): the form XLA fuses best (sum(t * (lse - x)) is ~15% slower on CPU; a clamp for
    # -inf logits here would double the compiled temporary memory, so probability targets need finite logits).
    # The [0, 1] check of the targets is a NaN term inside this sum (no pass of its own).
    poison = ctx.enforce_inline(cross_entropy, labels=t)
    loss = -jnp.sum(target * jax.nn.log_softmax(x, axis=-1), axis=-1) + poison
    if z:
        loss = loss + ctx.cast(z_loss) * jnp.square(lse)
    return ctx.reduce(loss, weights=weights)


@_core.domain(labels=_core.CLASS_LABELS)
def nll(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Negative log-likelihood of integer labels under log-probabilities: ``-w[y] * log_probs[y]``.

    PyTorch's ``nll_loss``: with ``class_weights``, ``"mean"`` divides by ``sum w[y]`` over unmasked
    examples. Float labels raise ``TypeError`` (use :func:`cross_entropy` for probability targets).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> lp = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]]))
      >>> print(round(float(jaxloss.nll(lp, jnp.array([0, 1]))), 4))
      0.4904
    """
    ctx, lp, y, _ = _core.prepare_classes(
        log_probs,
        labels,
        axis=axis,
        where=where,
        reduction=reduction,
        ignore_index=ignore_index,
        names=("log_probs", "labels"),
        allow_probabilities=False,
    )
    cw = _core.class_weight_array(class_weights, lp.shape[-1], ctx.dtype)
    loss = -_core.take_class(lp, y)
    if cw is None:
        return ctx.reduce(loss, weights=weights)
    w_y = cw[y]
    return ctx.reduce(w_y * loss, weights=weights, norm=w_y)


def _binary_log_probs(x, from_logits):
    """``(log p, log(1 - p))`` from logits (log-sigmoid) or probabilities (clamped at -100 like PyTorch)."""
    if from_logits:
        return jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    return _core.safe_log(x), _core.safe_log(1.0 - x)


@_core.domain(
    labels=_core.PROBABILITY,
    logits=_core.when("from_logits", False, _core.PROBABILITY),
    pos_weight=_core.NONNEGATIVE,
    label_smoothing=_core.PROBABILITY,
)
def binary_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    from_logits: bool = True,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Binary cross-entropy, elementwise: ``-(pos_weight * y * log p + (1 - y) * log(1 - p))``.

    With ``from_logits=True`` (default), ``log p = log_sigmoid(x)`` and ``log(1 - p) = log_sigmoid(-x)``:
    exact for any finite logit (PyTorch's ``binary_cross_entropy_with_logits``, optax's
    ``sigmoid_binary_cross_entropy``). With ``from_logits=False`` the inputs are probabilities and each log
    is clamped at -100, as PyTorch's ``binary_cross_entropy`` does, so probabilities of exactly 0 or 1 give
    finite values and gradients.

    Args:
      logits: float array (probabilities when ``from_logits=False``).
      labels: targets in ``[0, 1]`` of the same shape (float, int or bool).
      from_logits: static.
      pos_weight: weight of the positive term, broadcastable to the inputs (PyTorch's ``pos_weight``).
      label_smoothing: ``eps``: labels become ``y * (1 - eps) + eps / 2``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))), 4))
      0.6931
      >>> print(round(float(jaxloss.binary_cross_entropy(jnp.array([0.9]), jnp.array([1.0]), from_logits=False)), 4))
      0.1054
    """
    ctx, x, y = _core.prepare_binary(
        binary_cross_entropy,
        logits,
        labels,
        signed=False,
        names=("logits", "labels"),
        where=where,
        reduction=reduction,
        options=dict(from_logits=from_logits),
    )
    ctx = ctx.enforce(binary_cross_entropy, pos_weight=pos_weight, label_smoothing=label_smoothing)
    eps = ctx.cast(label_smoothing)
    y = y * (1.0 - eps) + 0.5 * eps
    if from_logits and pos_weight is None:
        # Closed-form derivative sigmoid(x) - y (measured faster than the generic one).
        return ctx.reduce(_derivatives.bce_logits_elementwise(x, y), weights=weights)
    log_p, log_not_p = _binary_log_probs(x, from_logits)
    pos = y * log_p
    if pos_weight is not None:
        pw = ctx.cast(pos_weight)
        _core.check_broadcastable(pw, ctx.loss_shape, "pos_weight")
        pos = pw * pos
    return ctx.reduce(-(pos + (1.0 - y) * log_not_p), weights=weights)


@_core.domain(labels=_core.PROBABILITY, alpha=_core.PROBABILITY, gamma=_core.NONNEGATIVE)
def focal(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike | None = None,
    gamma: ArrayLike = 2.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Sigmoid focal loss (Lin et al., 2017), elementwise.

    ``alpha_t * (1 - p_t)^gamma * bce(x, y)`` with ``p_t = p y + (1 - p)(1 - y)`` and
    ``alpha_t = alpha y + (1 - alpha)(1 - y)``. ``1 - p_t = y sigmoid(-x) + (1 - y) sigmoid(x)`` is
    computed without cancellation, and the power has a finite gradient at 0 for any ``gamma >= 0``.
    Defaults follow optax's ``sigmoid_focal_loss`` (``alpha=None``: no class balancing; the paper uses 0.25).

    Args:
      alpha: ``None`` or the positive-class weight in ``[0, 1]``.
      gamma: the focusing exponent ``>= 0``; ``gamma = 0`` is the binary cross-entropy.

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.focal(jnp.array([0.0]), jnp.array([1.0]), gamma=2.0)), 4))
      0.1733
    """
    ctx, x, y = _core.prepare_binary(
        focal, logits, labels, signed=False, names=("logits", "labels"), where=where, reduction=reduction
    )
    ctx = ctx.enforce(focal, alpha=alpha, gamma=gamma)
    # ce * (1 - p_t)^gamma with a closed-form derivative (measured faster than the generic one); a concrete
    # integer gamma (the default 2) is an integer power.
    g = np.asarray(gamma) if _core.is_concrete(gamma) else None
    if g is not None and g.ndim == 0 and float(g) in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0):
        loss = _derivatives.focal_elementwise_int(x, y, int(g))
    else:
        loss = _derivatives.focal_elementwise(x, y, ctx.cast(gamma))
    if alpha is not None:
        a = ctx.cast(alpha)
        loss = (a * y + (1.0 - a) * (1.0 - y)) * loss
    return ctx.reduce(loss, weights=weights)


@_core.domain(labels=_core.CLASS_OR_PROBABILITIES, alpha=_core.NONNEGATIVE, gamma=_core.NONNEGATIVE)
def multiclass_focal(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    alpha: ArrayLike | None = None,
    gamma: ArrayLike = 2.0,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Softmax focal loss: ``-sum_c alpha_c * t_c * (1 - p_c)^gamma * log p_c`` per example.

    Keras' ``CategoricalFocalCrossentropy`` (there ``alpha=0.25`` by default). ``labels`` are integer
    classes (no one-hot is formed) or probability targets. ``1 - p_c`` is ``-expm1(log p_c)``, accurate
    when ``p_c`` is close to 1.

    Args:
      alpha: ``None`` (1), a scalar, or a ``[C]`` per-class weight.
      gamma: focusing exponent ``>= 0``; 0 gives the cross-entropy.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.multiclass_focal(jnp.zeros((1, 2)), jnp.array([0]), gamma=2.0)), 4))
      0.1733
    """
    ctx, x, t, is_int = _core.prepare_classes(
        logits, labels, axis=axis, where=where, reduction=reduction, ignore_index=ignore_index
    )
    ctx = ctx.enforce(multiclass_focal, labels=t if is_int else None, alpha=alpha, gamma=gamma)
    log_p = jax.nn.log_softmax(x, axis=-1)
    gamma = ctx.cast(gamma)
    a = None if alpha is None else ctx.cast(alpha)
    if is_int:
        lp_y = _core.take_class(log_p, t)
        loss = -_core.safe_pow(-jnp.expm1(lp_y), gamma) * lp_y
        if a is not None:
            loss = (a[t] if a.ndim == 1 else a) * loss
        return ctx.reduce(loss, weights=weights)
    per_class = -t * _core.safe_pow(-jnp.expm1(log_p), gamma) * log_p
    if a is not None:
        per_class = a * per_class
    poison = ctx.enforce_inline(multiclass_focal, labels=t)  # the [0, 1] check, in the pass that reads t
    return ctx.reduce(jnp.sum(per_class, axis=-1) + poison, weights=weights)


@_core.domain(labels=_core.BINARY_ANY)
def hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Binary hinge loss, elementwise: ``max(0, 1 - y * s)``.

    ``labels`` may be in {-1, 1} or {0, 1} (0 is read as -1); int, bool or float (optax's ``hinge_loss``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.hinge(jnp.array([0.5, -2.0]), jnp.array([1, 0])))
      0.25
    """
    ctx, s, y = _core.prepare_binary(hinge, scores, labels, signed=True, where=where, reduction=reduction)
    return ctx.reduce(jnp.maximum(1.0 - y * s, 0.0), weights=weights)


@_core.domain(labels=_core.BINARY_ANY)
def squared_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Squared hinge loss, elementwise: ``max(0, 1 - y * s)^2``, labels in {-1, 1} or {0, 1}.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.squared_hinge(jnp.array([0.5, -2.0]), jnp.array([1, 0])))
      0.125
    """
    ctx, s, y = _core.prepare_binary(squared_hinge, scores, labels, signed=True, where=where, reduction=reduction)
    return ctx.reduce(jnp.square(jax.nn.relu(1.0 - y * s)), weights=weights)


@_core.domain(labels=_core.CLASS_LABELS)
def multiclass_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Crammer–Singer multiclass hinge: ``max_j (s_j + [j != y]) - s_y`` per example (optax's
    ``multiclass_hinge_loss``).

    References:
      Crammer and Singer, "On the Algorithmic Implementation of Multiclass Kernel-based Vector
      Machines", JMLR 2001.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.multiclass_hinge(jnp.array([[1.0, 0.5, -1.0]]), jnp.array([0])))
      0.5
    """
    ctx, s, y, _ = _core.prepare_classes(
        scores,
        labels,
        axis=axis,
        where=where,
        reduction=reduction,
        ignore_index=ignore_index,
        names=("scores", "labels"),
        allow_probabilities=False,
    )
    is_y = _is_label(y, s.shape[-1])
    loss = jnp.max(jnp.where(is_y, s, s + 1.0), axis=-1) - _core.take_class(s, y)
    return ctx.reduce(loss, weights=weights)


@_core.domain(labels=_core.CLASS_LABELS)
def multi_margin(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    p: ArrayLike = 1,
    margin: ArrayLike = 1.0,
    class_weights: ArrayLike | None = None,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """PyTorch's ``multi_margin_loss``: ``w[y] / C * sum_{j != y} max(0, margin - s_y + s_j)^p``.

    ``"none"`` and ``"sum"`` equal PyTorch's. ``"mean"`` follows the jaxloss contract for class weights,
    ``sum_i l_i / sum_i w[y_i]`` (PyTorch divides by the number of examples instead); without
    ``class_weights`` both are the plain mean.

    Args:
      p: 1 or 2 (static).
      margin: the margin (may be traced).
      class_weights: optional ``[C]`` per-class weight.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.multi_margin(jnp.array([[1.0, 0.5, -1.0]]), jnp.array([0]))), 4))
      0.1667
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2; got {p!r}")
    ctx, s, y, _ = _core.prepare_classes(
        scores,
        labels,
        axis=axis,
        where=where,
        reduction=reduction,
        ignore_index=ignore_index,
        names=("scores", "labels"),
        allow_probabilities=False,
    )
    num_classes = s.shape[-1]
    cw = _core.class_weight_array(class_weights, num_classes, ctx.dtype)
    gap = jax.nn.relu(ctx.cast(margin) - _core.take_class(s, y)[..., None] + s)
    if p == 2:
        gap = gap * gap
    loss = jnp.sum(jnp.where(_is_label(y, num_classes), 0.0, gap), axis=-1) / num_classes
    if cw is None:
        return ctx.reduce(loss, weights=weights)
    w_y = cw[y]
    return ctx.reduce(w_y * loss, weights=weights, norm=w_y)


def smooth_labels(labels: ArrayLike, alpha: ArrayLike, *, num_classes: int | None = None) -> Array:
    """Label smoothing: ``(1 - alpha) * one_hot + alpha / C``.

    Args:
      labels: one-hot / probability targets ``[..., C]`` (float), or integer labels with ``num_classes``.
      alpha: smoothing in ``[0, 1]``; may be traced.
      num_classes: required for integer labels.

    Returns:
      float targets ``[..., C]``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.smooth_labels(jnp.array([1]), 0.2, num_classes=2))
      [[0.1 0.9]]
    """
    _core.check_hyper(alpha, "alpha", low=0.0, high=1.0)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if num_classes is None:
            raise ValueError("smooth_labels needs num_classes for integer labels")
        labels = jax.nn.one_hot(labels, num_classes)
    elif not jnp.issubdtype(labels.dtype, jnp.floating):
        raise TypeError(f"labels must be integer labels or float one-hot targets; got dtype {labels.dtype}")
    c = labels.shape[-1]
    alpha = jnp.asarray(alpha, labels.dtype)
    return (1.0 - alpha) * labels + alpha / c


# ---------------------------------------------------------------------------------------------------------
# The wider catalog: PyTorch's soft-margin and multi-label margin losses, PolyLoss, generalized
# cross-entropy, Keras' categorical hinge, perceptron and sparsemax losses.
# ---------------------------------------------------------------------------------------------------------


@_core.domain(labels=_core.BINARY_ANY)
def soft_margin(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Soft-margin (logistic) loss, elementwise: ``log(1 + exp(-y * s))``.

    PyTorch's ``soft_margin_loss``, computed as ``softplus(-y * s)`` (exact for any finite score).
    ``labels`` may be in {-1, 1} or {0, 1} (0 is read as -1); int, bool or float.

    Args:
      scores: float array.
      labels: binary labels of the same shape.
      weights: optional weights broadcastable to the inputs.
      where: optional boolean mask broadcastable to the inputs.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise).

    Returns:
      a scalar, or the elementwise losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.soft_margin(jnp.array([0.0, 2.0]), jnp.array([1, 0]))), 4))
      1.41
    """
    ctx, s, y = _core.prepare_binary(soft_margin, scores, labels, signed=True, where=where, reduction=reduction)
    # softplus with the closed-form derivative sigmoid (measured faster than the generic one)
    return ctx.reduce(_derivatives.softplus_elementwise(-y * s), weights=weights)


@_core.domain(labels=_core.PROBABILITY)
def multilabel_soft_margin(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Multi-label one-versus-all logistic loss: the mean over classes of the weighted BCE-with-logits.

    Per example: ``-1/C * sum_c w[c] * (y_c * log_sigmoid(x_c) + (1 - y_c) * log_sigmoid(-x_c))``,
    PyTorch's ``multilabel_soft_margin_loss(weight=)``. ``"mean"`` is the plain mean over examples (as in
    PyTorch): class weights act inside each example's mean, not as a normaliser.

    Args:
      logits: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: targets in ``[0, 1]`` of the logits' shape (float, int or bool; soft targets allowed).
      class_weights: optional ``[C]`` weight per class.
      axis: the class axis (static).
      weights: optional per-example weights, broadcastable to the logits' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.multilabel_soft_margin(jnp.array([[0.0, 2.0]]), jnp.array([[1, 0]]))), 4))
      1.41
    """
    ctx, x, y = _core.prepare_binary(
        multilabel_soft_margin,
        logits,
        labels,
        signed=False,
        names=("logits", "labels"),
        axis=axis,
        where=where,
        reduction=reduction,
    )
    per_class = -(y * jax.nn.log_sigmoid(x) + (1.0 - y) * jax.nn.log_sigmoid(-x))
    cw = _core.class_weight_array(class_weights, x.shape[-1], ctx.dtype)
    if cw is not None:
        per_class = per_class * cw
    return ctx.reduce(jnp.mean(per_class, axis=-1), weights=weights)


@_core.domain(labels=_core.ClassIndex(what="target class (then -1 padding)"))
def multilabel_margin(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Multi-label margin loss: each target class must beat each non-target class by a margin of 1.

    PyTorch's ``multilabel_margin_loss``. ``labels`` has the scores' shape and holds, per example, the
    target class indices followed by ``-1`` padding; only the indices before the first ``-1`` count. With
    ``J`` those targets and ``C`` the number of classes, the loss of an example is
    ``sum_{j in J} sum_{i not in J} max(0, 1 - (s[j] - s[i])) / C``. A target listed twice counts twice,
    as in PyTorch; an example whose first label is ``-1`` has no targets and loss 0. Computed with masks
    (no loop over values), so it jits and vmaps.

    Args:
      scores: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int array of the scores' shape: target indices, then ``-1`` padding.
      axis: the class axis of both arrays (static).
      weights: optional per-example weights, broadcastable to the scores' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Raises:
      TypeError: non-integer labels. ValueError: labels whose shape differs from the scores'.

    A label before the first ``-1`` that lies outside ``[0, C)`` makes its example's loss NaN;
    :func:`jaxloss.checked` raises on it.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> s = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> print(round(float(jaxloss.multilabel_margin(s, jnp.array([[3, 0, -1, 1]]))), 4))
      0.85
    """
    labels = _core.int_array(labels, "labels", "target class indices padded with -1")
    scores = _core.float_array(scores, "scores")
    _core.check_same_shape([scores, labels], ("scores", "labels"))
    ctx, (s,) = _core.prepare(scores, names=("scores",), axis=axis, where=where, reduction=reduction)
    lab = ctx.fill(_core.move_axis_last(labels, axis, "labels"), -1)
    num_classes = s.shape[-1]
    active = jnp.cumprod(lab != -1, axis=-1) > 0  # the labels before the first -1
    in_range = (lab >= 0) & (lab < num_classes)
    bad = jnp.any(active & ~in_range, axis=-1)
    ctx = ctx.flag(bad, f"labels must lie in [0, {num_classes}) before the first -1; found a label out of range")
    active = active & in_range
    lab = jnp.where(active, lab, 0)
    is_target = jnp.any(active[..., :, None] & _is_label(lab, num_classes), axis=-2)  # [..., C]
    s_target = jnp.take_along_axis(s, lab, axis=-1)  # [..., K]: the score of each listed target
    gaps = jax.nn.relu(1.0 - (s_target[..., :, None] - s[..., None, :]))  # [..., K, C]
    pairs = active[..., :, None] & ~is_target[..., None, :]
    return ctx.reduce(jnp.sum(jnp.where(pairs, gaps, 0.0), axis=(-2, -1)) / num_classes, weights=weights)


@_core.domain(labels=_core.CLASS_OR_PROBABILITIES, epsilon=_core.at_least(-1))
def poly1(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Poly-1 loss (PolyLoss): the softmax cross-entropy plus ``epsilon * (1 - p_t)`` per example.

    Integer labels: ``-log p_y + epsilon * (1 - p_y)``, computed from ``log p_y = x_y - logsumexp(x)``
    without a one-hot; ``1 - p_y = -expm1(log p_y)`` stays accurate when ``p_y`` is close to 1.
    Logits of ``-inf`` (masked classes) are allowed with integer labels: finite values and gradients, as
    optax's ``safe_softmax_cross_entropy``. With label smoothing every class receives target mass, so the
    loss is then truly infinite (as in PyTorch). With probability targets the logits must be finite (use a
    large negative number such as ``-1e9`` for masked classes): a guard there would double the compiled
    temporary memory of the common case.

    Probability targets (float, the logits' shape): ``-sum_c t_c log p_c + epsilon * sum_c t_c (1 - p_c)``,
    optax's ``poly_loss_cross_entropy``.

    Args:
      logits: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int ``[...]`` (logits' shape without ``axis``) or float probabilities of the logits' shape.
      epsilon: coefficient of the first polynomial term, ``>= -1`` (so that the coefficient ``1 + epsilon``
        of ``(1 - p_t)`` in the expansion stays non-negative); the paper uses 2 for ImageNet
        classification and -1 for detection. May be traced.
      axis: the class axis (static).
      ignore_index: integer labels equal to it are masked.
      weights: optional per-example weights, broadcastable to the logits' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Labels out of ``[0, C)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them.

    References:
      Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions",
      ICLR 2022.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.poly1(jnp.zeros((1, 2)), jnp.array([0]), epsilon=2.0)), 4))
      1.6931
    """
    ctx, x, t, is_int = _core.prepare_classes(
        logits, labels, axis=axis, where=where, reduction=reduction, ignore_index=ignore_index
    )
    ctx = ctx.enforce(poly1, labels=t if is_int else None, epsilon=epsilon)
    eps = ctx.cast(epsilon)
    if is_int:
        lp_y = _core.take_class(x, t) - jax.nn.logsumexp(x, axis=-1)
        return ctx.reduce(-lp_y - eps * jnp.expm1(lp_y), weights=weights)
    log_p = jax.nn.log_softmax(x, axis=-1)
    loss = -jnp.sum(t * log_p, axis=-1) - eps * jnp.sum(t * jnp.expm1(log_p), axis=-1)
    return ctx.reduce(loss + ctx.enforce_inline(poly1, labels=t), weights=weights)


@_core.domain(labels=_core.CLASS_OR_PROBABILITIES, q=_core.in_range(0, 1, low_open=True))
def generalized_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    q: ArrayLike = 0.7,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Generalized cross-entropy, a noise-robust loss: ``(1 - p_y^q) / q`` per example, from logits.

    ``p_y^q`` is ``exp(q * log_softmax(x)_y)``, so the loss is ``-expm1(q * log p_y) / q``: finite with a
    finite gradient when ``p_y`` underflows to 0 (the loss tends to ``1/q``). ``q -> 0`` gives the
    cross-entropy, ``q = 1`` the mean absolute error ``1 - p_y``. Probability targets (float, the logits'
    shape) give ``sum_c t_c (1 - p_c^q) / q``. Keras 3's ``categorical_generalized_cross_entropy`` takes
    probabilities and integer labels and defaults to ``q=0.5``; here the inputs are logits and the default
    is the paper's ``q = 0.7``.

    Args:
      logits: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int ``[...]`` (logits' shape without ``axis``) or float probabilities of the logits' shape.
      q: the exponent, in ``(0, 1]``. May be traced.
      axis: the class axis (static).
      ignore_index: integer labels equal to it are masked.
      weights: optional per-example weights, broadcastable to the logits' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Labels out of ``[0, C)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them.

    References:
      Zhang and Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural Networks with Noisy
      Labels", NeurIPS 2018.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.generalized_cross_entropy(jnp.zeros((1, 4)), jnp.array([0]), q=0.5)), 4))
      1.0
    """
    ctx, x, t, is_int = _core.prepare_classes(
        logits, labels, axis=axis, where=where, reduction=reduction, ignore_index=ignore_index
    )
    ctx = ctx.enforce(generalized_cross_entropy, labels=t if is_int else None, q=q)
    q = ctx.cast(q)
    if is_int:
        lp_y = _core.take_class(x, t) - jax.nn.logsumexp(x, axis=-1)
        return ctx.reduce(-jnp.expm1(q * lp_y) / q, weights=weights)
    log_p = jax.nn.log_softmax(x, axis=-1)
    poison = ctx.enforce_inline(generalized_cross_entropy, labels=t)
    return ctx.reduce(-jnp.sum(t * jnp.expm1(q * log_p), axis=-1) / q + poison, weights=weights)


@_core.domain(labels=_core.CLASS_OR_PROBABILITIES)
def categorical_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Keras' categorical hinge: ``max(0, 1 + neg - pos)`` per example.

    With targets ``t`` (one-hot or probabilities, the scores' shape), ``pos = sum_c t_c s_c`` and
    ``neg = max_c (1 - t_c) s_c``, exactly Keras 3's ``categorical_hinge``. Integer labels ``y`` give the
    same numbers without a one-hot: ``pos = s_y`` and ``neg = max(0, max_{j != y} s_j)``. The 0 in ``neg``
    is Keras' convention (the true class's slot ``(1 - 1) * s_y`` enters the max); it differs from the
    textbook ``1 + max_{j != y} s_j - s_y`` only when every other score is negative, and never for
    non-negative scores such as probabilities or ReLU outputs, Keras' customary inputs.

    Args:
      scores: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int ``[...]`` (scores' shape without ``axis``) or float one-hot/probability targets of the
        scores' shape.
      axis: the class axis (static).
      ignore_index: integer labels equal to it are masked.
      weights: optional per-example weights, broadcastable to the scores' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Labels out of ``[0, C)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.categorical_hinge(jnp.array([[0.7, 0.2, 0.1]]), jnp.array([1]))), 4))
      1.5
    """
    ctx, s, t, is_int = _core.prepare_classes(
        scores,
        labels,
        axis=axis,
        where=where,
        reduction=reduction,
        ignore_index=ignore_index,
        names=("scores", "labels"),
    )
    ctx = ctx.enforce(categorical_hinge, labels=t if is_int else None)
    if is_int:
        pos = _core.take_class(s, t)
        neg = jnp.max(jnp.where(_is_label(t, s.shape[-1]), 0.0, s), axis=-1)
    else:
        pos = jnp.sum(t * s, axis=-1) - ctx.enforce_inline(categorical_hinge, labels=t)
        neg = jnp.max((1.0 - t) * s, axis=-1)
    return ctx.reduce(jax.nn.relu(1.0 + neg - pos), weights=weights)


@_core.domain(labels=_core.BINARY_ANY)
def perceptron(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Binary perceptron loss, elementwise: ``max(0, -y * s)``.

    optax's ``perceptron_loss``. ``labels`` may be in {-1, 1} or {0, 1} (0 is read as -1); int, bool or
    float.

    Args:
      scores: float array.
      labels: binary labels of the same shape.
      weights: optional weights broadcastable to the inputs.
      where: optional boolean mask broadcastable to the inputs.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise).

    Returns:
      a scalar, or the elementwise losses for ``reduction="none"``.

    References:
      Rosenblatt, "The Perceptron: A Probabilistic Model for Information Storage and Organization in the
      Brain", Psychological Review, 1958.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.perceptron(jnp.array([0.5, 2.0]), jnp.array([1, 0]))), 4))
      1.0
    """
    ctx, s, y = _core.prepare_binary(perceptron, scores, labels, signed=True, where=where, reduction=reduction)
    return ctx.reduce(jax.nn.relu(-y * s), weights=weights)


@_core.domain(labels=_core.CLASS_LABELS)
def multiclass_perceptron(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Multiclass perceptron loss: ``max_j s_j - s_y`` per example (optax's ``multiclass_perceptron_loss``).

    Args:
      scores: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int ``[...]``, the scores' shape without ``axis``.
      axis: the class axis (static).
      ignore_index: labels equal to it are masked.
      weights: optional per-example weights, broadcastable to the scores' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Labels out of ``[0, C)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them.

    References:
      Collins, "Discriminative Training Methods for Hidden Markov Models: Theory and Experiments with
      Perceptron Algorithms", EMNLP 2002.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.multiclass_perceptron(jnp.array([[1.0, 0.5, -1.0]]), jnp.array([1]))), 4))
      0.5
    """
    ctx, s, y, _ = _core.prepare_classes(
        scores,
        labels,
        axis=axis,
        where=where,
        reduction=reduction,
        ignore_index=ignore_index,
        names=("scores", "labels"),
        allow_probabilities=False,
    )
    return ctx.reduce(jnp.max(s, axis=-1) - _core.take_class(s, y), weights=weights)


@_core.domain(labels=_core.BINARY_ANY)
def sparsemax(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Binary sparsemax loss, elementwise: ``sparse_plus(-y * s)``.

    ``sparse_plus(z)`` is 0 for ``z <= -1``, ``(z + 1)^2 / 4`` for ``-1 < z < 1`` and ``z`` for ``z >= 1``
    (:func:`jax.nn.sparse_plus`); the loss is 0 exactly when ``sparse_sigmoid(s)`` equals the 0/1 label.
    optax's ``sparsemax_loss``. ``labels`` may be in {-1, 1} or {0, 1}; int, bool or float.

    Args:
      scores: float array.
      labels: binary labels of the same shape.
      weights: optional weights broadcastable to the inputs.
      where: optional boolean mask broadcastable to the inputs.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise).

    Returns:
      a scalar, or the elementwise losses for ``reduction="none"``.

    References:
      Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR 2020 (Sec. 4.4).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.sparsemax(jnp.array([0.0, 2.0]), jnp.array([1, 0]))), 4))
      1.125
    """
    ctx, s, y = _core.prepare_binary(sparsemax, scores, labels, signed=True, where=where, reduction=reduction)
    return ctx.reduce(jax.nn.sparse_plus(-y * s), weights=weights)


@_core.domain(labels=_core.CLASS_LABELS)
def multiclass_sparsemax(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Multiclass sparsemax loss: ``<p, s> + (1 - |p|^2) / 2 - s_y`` per example, ``p = sparsemax(s)``.

    The Fenchel-Young loss of the Gini entropy (optax's ``multiclass_sparsemax_loss``): non-negative, zero
    exactly when ``sparsemax(s)`` is the one-hot of ``y``, with gradient ``sparsemax(s) - one_hot(y)``
    (exact, by a custom JVP; the Hessian is sparsemax's Jacobian). Computed on ``s - s_y`` (the loss is
    shift-invariant), so large scores do not cancel.

    Args:
      scores: float ``[..., C, ...]`` with the classes on ``axis``.
      labels: int ``[...]``, the scores' shape without ``axis``.
      axis: the class axis (static).
      ignore_index: labels equal to it are masked.
      weights: optional per-example weights, broadcastable to the scores' shape without ``axis``.
      where: optional boolean mask of examples.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or per-example losses for ``reduction="none"``.

    Labels out of ``[0, C)`` (and not ignored) give NaN; :func:`jaxloss.checked` raises on them.

    References:
      Martins and Astudillo, "From Softmax to Sparsemax: A Sparse Model of Attention and Multi-Label
      Classification", ICML 2016.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.multiclass_sparsemax(jnp.array([[1.0, 0.5, -1.0]]), jnp.array([1]))), 4))
      0.5625
    """
    ctx, s, y, _ = _core.prepare_classes(
        scores,
        labels,
        axis=axis,
        where=where,
        reduction=reduction,
        ignore_index=ignore_index,
        names=("scores", "labels"),
        allow_probabilities=False,
    )
    return ctx.reduce(_core.gini_max(s - _core.take_class(s, y)[..., None]), weights=weights)
