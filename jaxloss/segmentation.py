"""Overlap losses for segmentation: soft Dice, Tversky, Jaccard (IoU) and generalized Dice.

Layout: ``predictions [B, *spatial, C]`` with the classes on ``axis`` (``-1`` by default; ``axis=1`` for
``[B, C, H, W]``). Each example's score is computed per class over its spatial axes, then averaged over
the classes, so ``reduction="none"`` returns one loss per example ``[B]``. Binary maps without a channel
axis (``[B, *spatial]``, the foreground only) take ``axis=None``. ``batch_dims`` (static, 1 by
default) says how many leading axes index examples: under ``jax.vmap`` over examples pass
``batch_dims=0`` so that the single example's axes are all spatial.

Predictions are logits by default (``from_logits=True``): a softmax over the class axis, or a sigmoid when
there is a single class channel (``C = 1``, binary segmentation of the foreground). ``from_logits=False``
takes probabilities; they are not checked against summing to one (no concrete check can run under
``jax.jit``; :func:`jaxloss.checked` checks that they lie in ``[0, 1]``).

Targets are integer class labels ``[B, *spatial]`` (``{0, 1}`` when ``C = 1``) or float one-hot /
probability maps of the predictions' shape; the dtype decides. ``ignore_index`` removes pixels with that
integer label from every sum. ``where`` and ``weights`` act on examples ``[B]``.

With ``p`` the probabilities and ``t`` the targets of one class of one example, summed over its pixels:
``TP = sum p t``, ``FP = sum p (1 - t) = P - TP``, ``FN = sum (1 - p) t = T - TP`` (``P = sum p``,
``T = sum t``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = ["dice", "tversky", "jaccard", "generalized_dice"]

_TARGETS = _core.ClassIndex(probabilities=True)  # integer labels ({0, 1} for one channel) or maps in [0, 1]


def _sums(loss, predictions, targets, *, axis, from_logits, batch_dims, ignore_index, where, reduction):
    """Validates the inputs and returns ``(ctx, TP, P, T)``, each ``[*batch, C]`` summed over the pixels."""
    _core.check_reduction(reduction)
    p = _core.float_array(predictions, "predictions")
    if axis is None:  # a binary map without a channel axis: one (foreground) channel
        p = p[..., None]
        axis = -1
        t = jnp.asarray(targets)
        if jnp.issubdtype(t.dtype, jnp.floating):
            if t.shape != p.shape[:-1]:
                raise ValueError(
                    "with axis=None, targets must have the shape of predictions; got "
                    f"predictions.shape={p.shape[:-1]} and targets.shape={t.shape}"
                )
            targets = t[..., None]
    p = _core.move_axis_last(p, axis, "predictions")
    if not isinstance(batch_dims, int) or not 0 <= batch_dims < p.ndim:
        raise ValueError(
            f"batch_dims must be an int in [0, {p.ndim}) for predictions of shape {jnp.moveaxis(p, -1, axis).shape}; got {batch_dims!r}"
        )
    num_classes = p.shape[-1]
    t = jnp.asarray(targets)
    is_int = bool(jnp.issubdtype(t.dtype, jnp.integer))
    shape_in = jnp.moveaxis(p, -1, axis).shape
    if is_int:
        if t.shape != p.shape[:-1]:
            raise ValueError(
                f"integer targets must have the shape of predictions without the class axis {axis}; got "
                f"predictions.shape={shape_in} and targets.shape={t.shape} (expected {p.shape[:-1]})"
            )
    else:
        if not jnp.issubdtype(t.dtype, jnp.floating):
            raise TypeError(f"targets must be integer labels or float probability maps; got dtype {t.dtype}")
        if ignore_index is not None:
            raise ValueError("ignore_index applies to integer targets only")
        if t.shape != shape_in:
            raise ValueError(
                f"float targets must have the shape of predictions; got predictions.shape={shape_in} and targets.shape={t.shape}"
            )
        t = jnp.moveaxis(t, axis, -1)

    batch_shape = p.shape[:batch_dims]
    sum_axes = tuple(range(batch_dims, p.ndim - 1))
    ctx = _core.context(batch_shape, p.dtype, where=where, reduction=reduction)
    x = ctx.fill(p.astype(ctx.dtype))
    # ignored pixels may hold anything (NaN included): replace them before the softmax (double where)
    pixel_valid = None if ignore_index is None else (t != ignore_index)[..., None]
    if pixel_valid is not None:
        x = jnp.where(pixel_valid, x, 0.0)
    if from_logits:
        probs = jax.nn.sigmoid(x) if num_classes == 1 else jax.nn.softmax(x, axis=-1)
    else:
        probs = x
        ctx = ctx.enforce(loss, dict(from_logits=from_logits), predictions=x)

    if is_int:
        top = 2 if num_classes == 1 else num_classes
        in_range = (t >= 0) & (t < top)
        bad = ~in_range if ignore_index is None else ~in_range & (t != ignore_index)
        ctx = ctx.flag(
            bad, f"integer targets must lie in [0, {top}) (or equal ignore_index); found a label out of range"
        )
        labels = jnp.where(in_range, t, 0)
        onehot = (
            labels[..., None].astype(ctx.dtype)
            if num_classes == 1
            else jax.nn.one_hot(labels, num_classes, dtype=ctx.dtype)
        )
    else:
        onehot = ctx.fill(t.astype(ctx.dtype))
        ctx = ctx.enforce(loss, targets=onehot)
    if pixel_valid is not None:
        probs = jnp.where(pixel_valid, probs, 0.0)
        onehot = jnp.where(pixel_valid, onehot, 0.0)
    tp = jnp.sum(probs * onehot, axis=sum_axes)
    return ctx, tp, jnp.sum(probs, axis=sum_axes), jnp.sum(onehot, axis=sum_axes)


def _ratio(num, den):
    """``num / den``, and 1 (perfect agreement) where ``den == 0`` (empty prediction and target, no smoothing)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 1.0)


def _class_mean(ctx, per_class, class_weights):
    """The (class-weighted) mean over the last axis: ``sum_c w_c l_c / sum_c w_c``."""
    if class_weights is None:
        return jnp.mean(per_class, axis=-1)
    cw = _core.class_weight_array(class_weights, per_class.shape[-1], ctx.dtype)
    return jnp.sum(per_class * cw, axis=-1) / jnp.sum(cw)


@_core.domain(
    predictions=_core.when("from_logits", False, _core.PROBABILITY),
    targets=_TARGETS,
    alpha=_core.NONNEGATIVE,
    beta=_core.NONNEGATIVE,
    smooth=_core.NONNEGATIVE,
    epsilon=_core.NONNEGATIVE,
)
def tversky(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike | None = 0.5,
    beta: ArrayLike = 0.5,
    smooth: ArrayLike = 1.0,
    epsilon: ArrayLike = 0.0,
    axis: int = -1,
    from_logits: bool = True,
    batch_dims: int = 1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Tversky loss (Salehi et al., 2017), per example: the class mean of ``1 - TI_c`` with

    ``TI_c = (TP + smooth) / (TP + alpha * FP + beta * FN + smooth + epsilon)``

    (see the module docstring for ``TP``, ``FP``, ``FN``). ``alpha`` weighs false positives and ``beta``
    false negatives, as in the paper and optax's ``dice_loss(alpha=, beta=)`` (which equals this with the
    same ``smooth``); ``beta > alpha`` favours recall (the paper uses ``alpha=0.3, beta=0.7``).
    ``alpha = beta = 0.5`` is :func:`dice`, ``alpha = beta = 1`` is :func:`jaccard`.

    Keras 3's ``keras.losses.tversky(y_true, y_pred, alpha, beta)`` applies its ``alpha`` to
    ``sum(y_true * (1 - y_pred))``, i.e. to the false *negatives* (its docstring says false positives): it
    equals this loss with ``alpha`` and ``beta`` swapped, ``smooth=0`` and ``epsilon=1e-7``, on one channel.

    Args:
      predictions: float ``[B, *spatial, C]`` logits (probabilities if ``from_logits=False``), classes on
        ``axis``.
      targets: int labels ``[B, *spatial]`` or float maps of the predictions' shape.
      alpha: weight of false positives (>= 0); may be traced.
      beta: weight of false negatives (>= 0); may be traced.
      smooth: added to the numerator and the denominator (>= 0; 1 by default, as optax): keeps the
        gradient alive for empty classes and makes an empty prediction of an empty class score 1.
      epsilon: added to the denominator only (>= 0), to guard the division when ``smooth = 0``. When the
        denominator is exactly 0 the score is 1 (loss 0): an empty prediction of an empty class is perfect.
      axis: the class axis (static); ``None`` for a binary map without a channel axis: predictions
        ``[B, *spatial]`` (foreground logits through a sigmoid, or probabilities) with targets of the same
        shape (integer labels in {0, 1} or float maps), the same as a channel axis of size 1 (optax's
        ``binary_dice_loss``).
      from_logits: static; logits (softmax, or sigmoid for ``C = 1``) or probabilities.
      batch_dims: static; how many leading axes index examples (the other non-class axes are summed).
      class_weights: optional ``[C]``; the class mean becomes ``sum_c w_c l_c / sum_c w_c`` (a zero weight
        drops a class, e.g. the background).
      ignore_index: integer targets equal to it are left out of every sum.
      weights: optional per-example weights ``[B]``.
      where: optional boolean mask of examples ``[B]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).

    Returns:
      a scalar, or the per-example losses ``[*batch]`` for ``reduction="none"``.

    Integer targets out of range give NaN for their example; :func:`jaxloss.checked` raises on them.

    References:
      Salehi, Erdogmus and Gholipour, "Tversky loss function for image segmentation using 3D fully
      convolutional deep networks", MLMI 2017.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> p = jnp.array([[[0.9], [0.2], [0.6]]])            # one example, 3 pixels, 1 channel
      >>> t = jnp.array([[[1.0], [0.0], [0.0]]])
      >>> # TP = 0.9, FP = 0.8, FN = 0.1: 1 - 0.9 / (0.9 + 0.3 * 0.8 + 0.7 * 0.1)
      >>> print(round(float(jaxloss.tversky(p, t, alpha=0.3, beta=0.7, smooth=0.0, from_logits=False)), 4))
      0.2562
    """
    return _tversky(
        tversky,
        predictions,
        targets,
        alpha=alpha,
        beta=beta,
        smooth=smooth,
        epsilon=epsilon,
        axis=axis,
        from_logits=from_logits,
        batch_dims=batch_dims,
        class_weights=class_weights,
        ignore_index=ignore_index,
        weights=weights,
        where=where,
        reduction=reduction,
    )


def _tversky(
    loss,
    predictions,
    targets,
    *,
    alpha,
    beta,
    smooth,
    epsilon,
    axis,
    from_logits,
    batch_dims,
    class_weights,
    ignore_index,
    weights,
    where,
    reduction,
):
    """The Tversky index loss; ``loss`` (tversky, dice or jaccard) names the function in domain messages."""
    ctx, tp, ps, ts = _sums(
        loss,
        predictions,
        targets,
        axis=axis,
        from_logits=from_logits,
        batch_dims=batch_dims,
        ignore_index=ignore_index,
        where=where,
        reduction=reduction,
    )
    hypers = dict(smooth=smooth, epsilon=epsilon)
    if loss is tversky:
        hypers.update(alpha=alpha, beta=beta)
    ctx = ctx.enforce(loss, **hypers)
    s = ctx.cast(smooth)
    den = tp + ctx.cast(alpha) * (ps - tp) + ctx.cast(beta) * (ts - tp) + s + ctx.cast(epsilon)
    per_class = 1.0 - _ratio(tp + s, den)
    return ctx.reduce(_class_mean(ctx, per_class, class_weights), weights=weights)


@_core.domain(
    predictions=_core.when("from_logits", False, _core.PROBABILITY),
    targets=_TARGETS,
    smooth=_core.NONNEGATIVE,
    epsilon=_core.NONNEGATIVE,
)
def dice(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    smooth: ArrayLike = 1.0,
    epsilon: ArrayLike = 0.0,
    axis: int = -1,
    from_logits: bool = True,
    batch_dims: int = 1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Soft Dice loss (Milletari et al., 2016), per example: the class mean of ``1 - D_c`` with

    ``D_c = (2 TP + 2 smooth) / (P + T + 2 smooth + 2 epsilon)``

    i.e. :func:`tversky` with ``alpha = beta = 1/2`` (``(TP + s) / (TP + (FP + FN) / 2 + s + e)``), which
    is exactly optax's ``dice_loss`` with the same ``smooth`` (averaged over classes). Keras 3's
    ``keras.losses.dice`` (``1 - 2 TP / (P + T + 1e-7)``) is ``smooth=0, epsilon=5e-8`` on one channel.

    Unlike optax's ``dice_loss(apply_softmax=False)``, which checks that the probabilities sum to one with
    a Python ``if`` on array values and therefore raises under ``jax.jit``, ``from_logits=False`` here is
    jittable (see the module docstring).

    Args: as :func:`tversky` (without ``alpha``, ``beta``).

    Returns:
      a scalar, or the per-example losses ``[*batch]`` for ``reduction="none"``.

    References:
      Milletari, Navab and Ahmadi, "V-Net: Fully Convolutional Neural Networks for Volumetric Medical
      Image Segmentation", 3DV 2016.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> p = jnp.array([[[0.9], [0.2], [0.6]]])
      >>> t = jnp.array([[[1.0], [0.0], [0.0]]])
      >>> print(round(float(jaxloss.dice(p, t, smooth=0.0, from_logits=False)), 4))   # 1 - 1.8 / 2.7
      0.3333
      >>> # the same binary map without a channel axis
      >>> print(round(float(jaxloss.dice(p[..., 0], jnp.array([[1, 0, 0]]), smooth=0.0, from_logits=False, axis=None)), 4))
      0.3333
    """
    return _tversky(
        dice,
        predictions,
        targets,
        alpha=0.5,
        beta=0.5,
        smooth=smooth,
        epsilon=epsilon,
        axis=axis,
        from_logits=from_logits,
        batch_dims=batch_dims,
        class_weights=class_weights,
        ignore_index=ignore_index,
        weights=weights,
        where=where,
        reduction=reduction,
    )


@_core.domain(
    predictions=_core.when("from_logits", False, _core.PROBABILITY),
    targets=_TARGETS,
    smooth=_core.NONNEGATIVE,
    epsilon=_core.NONNEGATIVE,
)
def jaccard(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    smooth: ArrayLike = 1.0,
    epsilon: ArrayLike = 0.0,
    axis: int = -1,
    from_logits: bool = True,
    batch_dims: int = 1,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Soft Jaccard (IoU) loss, per example: the class mean of ``1 - J_c`` with

    ``J_c = (TP + smooth) / (P + T - TP + smooth + epsilon)``

    i.e. :func:`tversky` with ``alpha = beta = 1`` (intersection over union of the soft masks).

    Args: as :func:`tversky` (without ``alpha``, ``beta``).

    Returns:
      a scalar, or the per-example losses ``[*batch]`` for ``reduction="none"``.

    References:
      Rahman and Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
      Segmentation", ISVC 2016.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> p = jnp.array([[[0.9], [0.2], [0.6]]])
      >>> t = jnp.array([[[1.0], [0.0], [0.0]]])
      >>> print(round(float(jaxloss.jaccard(p, t, smooth=0.0, from_logits=False)), 4))   # 1 - 0.9 / 1.8
      0.5
    """
    return _tversky(
        jaccard,
        predictions,
        targets,
        alpha=1.0,
        beta=1.0,
        smooth=smooth,
        epsilon=epsilon,
        axis=axis,
        from_logits=from_logits,
        batch_dims=batch_dims,
        class_weights=class_weights,
        ignore_index=ignore_index,
        weights=weights,
        where=where,
        reduction=reduction,
    )


@_core.domain(
    predictions=_core.when("from_logits", False, _core.PROBABILITY), targets=_TARGETS, smooth=_core.NONNEGATIVE
)
def generalized_dice(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    smooth: ArrayLike = 1e-5,
    axis: int = -1,
    from_logits: bool = True,
    batch_dims: int = 1,
    class_weights: ArrayLike | None = None,
    ignore_background: bool = False,
    ignore_index: int | None = None,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Generalized Dice loss (Sudre et al., 2017), per example:

    ``GDL = 1 - (2 sum_c w_c TP_c + smooth) / (sum_c w_c (P_c + T_c) + smooth)``, ``w_c = v_c / T_c^2``

    The class weights are the inverse squared target volumes of each example, so small structures count
    as much as large ones. A class absent from an example's targets (``T_c = 0``, where ``1 / T_c^2`` is
    infinite) gets the largest ``1 / T^2`` of the classes that are present (MONAI's rule), so predicting it
    is penalised like a false positive of the rarest present class; when no class is present all of them
    are 1. ``v_c`` are the user's ``class_weights`` (1 by default), multiplying these automatic weights
    (0 drops a class from both sums). ``ignore_background=True`` removes class 0 (the first channel) before
    anything is computed, as MONAI's ``include_background=False``; the softmax still runs over every class.
    ``smooth`` is small by default (``1e-5``, as MONAI) because the weighted sums scale like ``1 / T``: a
    smooth of 1 would swamp the score for large images.

    Args: as :func:`tversky` (without ``alpha``, ``beta``, ``epsilon``), and
      class_weights: optional ``[C]`` non-negative factors ``v_c`` of the automatic weights (given for all
        ``C`` classes, also with ``ignore_background``).
      ignore_background: static; leave class 0 out (needs ``C >= 2``).

    Returns:
      a scalar, or the per-example losses ``[*batch]`` for ``reduction="none"``.

    References:
      Sudre, Li, Vercauteren, Ourselin and Cardoso, "Generalised Dice overlap as a deep learning loss
      function for highly unbalanced segmentations", DLMIA 2017.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> p = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])   # 3 pixels, 2 classes
      >>> t = jnp.array([[0, 1, 1]])
      >>> # w = (1, 1/4): 1 - 2 (0.9 + 1.2 / 4) / (1.7 + 1 + (1.3 + 2) / 4)
      >>> print(round(float(jaxloss.generalized_dice(p, t, smooth=0.0, from_logits=False)), 4))
      0.3191
      >>> # the background left out: class 1 alone, 1 - 2 * 1.2 / (1.3 + 2)
      >>> print(round(float(jaxloss.generalized_dice(p, t, smooth=0.0, from_logits=False, ignore_background=True)), 4))
      0.2727
    """
    ctx, tp, ps, ts = _sums(
        generalized_dice,
        predictions,
        targets,
        axis=axis,
        from_logits=from_logits,
        batch_dims=batch_dims,
        ignore_index=ignore_index,
        where=where,
        reduction=reduction,
    )
    ctx = ctx.enforce(generalized_dice, smooth=smooth)
    num_classes = tp.shape[-1]
    _core.check_hyper(class_weights, "class_weights", low=0.0)
    cw = _core.class_weight_array(class_weights, num_classes, ctx.dtype)
    if ignore_background:
        if num_classes < 2:
            raise ValueError(
                f"ignore_background needs at least 2 classes (class 0 is the background); got {num_classes}"
            )
        tp, ps, ts = tp[..., 1:], ps[..., 1:], ts[..., 1:]
        cw = None if cw is None else cw[1:]
    present = ts > 0
    w = 1.0 / jnp.square(jnp.where(present, ts, 1.0))
    w_max = jnp.max(jnp.where(present, w, 0.0), axis=-1, keepdims=True)
    w = jnp.where(present, w, jnp.where(w_max > 0, w_max, 1.0))
    if cw is not None:
        w = w * cw
    s = ctx.cast(smooth)
    score = _ratio(2.0 * jnp.sum(w * tp, axis=-1) + s, jnp.sum(w * (ps + ts), axis=-1) + s)
    return ctx.reduce(1.0 - score, weights=weights)
