"""The shared plumbing of every jaxloss loss, written once.

A loss function in jaxloss states only its formula. Everything else lives here:

* **validation** with clear, trace-time errors that name the argument and the shapes;
* **dtypes**: float16/bfloat16 inputs are computed in float32 and the result is cast back to the
  predictions' dtype; float32 and float64 are kept as they are; non-float predictions raise ``TypeError``;
* **masks** (``where=``): masked entries are replaced by a harmless fill value *before* the formula runs
  (the "double where"), so they contribute nothing to the value, the count, or the gradient, even when
  the padding holds NaN or inf;
* **weights** (``weights=``) broadcastable to the unreduced loss, and per-entry normalisers (class weights);
* **reduction**: ``"mean"`` (the weighted mean ``sum(w*l)/sum(w)`` over unmasked entries; ``0.0`` when
  nothing is left), ``"sum"``, ``"none"``;
* **labels**: integer class labels, ``ignore_index=``, and labels out of range, which give NaN (never a
  plausible finite number) and are caught by :func:`checked`.

A loss is written as::

    def huber(predictions, targets, *, delta=1.0, weights=None, where=None, reduction="mean"):
        ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
        err = p - t
        ...
        return ctx.reduce(loss, weights=weights)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from typing import Any, Callable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

Array = jax.Array
ArrayLike = Any

REDUCTIONS = ("mean", "sum", "none")

__all__ = ["checked", "REDUCTIONS"]


# ---------------------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------------------


def check_reduction(reduction: str) -> None:
    """Raises ``ValueError`` unless ``reduction`` is one of ``"mean"``, ``"sum"``, ``"none"``."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}"
        )


def compute_dtype(dtype) -> np.dtype:
    """The dtype a loss computes in: float32 for float16/bfloat16, otherwise the dtype itself."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize < 4:
        return jnp.dtype(jnp.float32)
    return dtype


def float_array(x: ArrayLike, name: str) -> Array:
    """``x`` as a JAX array, raising ``TypeError`` unless it is floating point."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array; got dtype {x.dtype}")
    return x


def int_array(x: ArrayLike, name: str, hint: str = "") -> Array:
    """``x`` as a JAX array, raising ``TypeError`` unless it has an integer dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"{name} must be an integer array of class indices; got dtype {x.dtype}" + (f" ({hint})" if hint else "")
        )
    return x


def check_same_shape(arrays: Sequence[Array], names: Sequence[str]) -> None:
    """Raises ``ValueError`` naming both shapes when the arrays' shapes differ."""
    first = arrays[0]
    for a, n in zip(arrays[1:], names[1:]):
        if a.shape != first.shape:
            raise ValueError(
                f"{names[0]} and {n} must have the same shape; got {names[0]}.shape={first.shape} and {n}.shape={a.shape}"
            )


def check_broadcastable(x: Array, shape: Tuple[int, ...], name: str, target: str = "the unreduced loss") -> None:
    """Raises ``ValueError`` unless ``x`` broadcasts to exactly ``shape``."""
    try:
        ok = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} with shape {x.shape} does not broadcast to {target}, of shape {tuple(shape)}")


def is_concrete(x) -> bool:
    """True when ``x`` holds a known value at trace time (a Python number or a concrete array)."""
    try:
        np.asarray(x)
        return True
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError, TypeError):
        return False


def is_zero(x) -> bool:
    """True when ``x`` is known at trace time to be exactly 0 (a term scaled by it can be skipped)."""
    return x is None or (is_concrete(x) and not np.any(np.asarray(x)))


def check_hyper(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> None:
    """Checks a (possibly traced) hyperparameter's range; only concrete values can be checked.

    Traced values (under ``jax.grad``/``vmap`` of the hyperparameter) are not checked at trace time.
    """
    if value is None or not is_concrete(value):
        return
    v = np.asarray(value)
    if low is not None and (np.any(v <= low) if low_open else np.any(v < low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}")
    if high is not None and (np.any(v >= high) if high_open else np.any(v > high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}")


def move_axis_last(x: Array, axis: int, name: str) -> Array:
    """Moves the class/feature ``axis`` of ``x`` to the end, raising a clear error for a bad axis."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be a Python int; got {axis!r}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class/feature axis); got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for {name} of shape {x.shape}")
    return jnp.moveaxis(x, axis, -1)


# ---------------------------------------------------------------------------------------------------------
# Checked mode: catch value errors that XLA cannot raise under jit (labels out of range, ...)
# ---------------------------------------------------------------------------------------------------------

_STATE = threading.local()


def _checks_enabled() -> bool:
    return getattr(_STATE, "checks", False)


@contextlib.contextmanager
def _checks_on():
    prev = _checks_enabled()
    _STATE.checks = True
    try:
        yield
    finally:
        _STATE.checks = prev


def checked(fn: Callable) -> Callable:
    """Wraps ``fn`` (a loss, or any function calling jaxloss losses) with runtime value checks.

    Some errors cannot be raised by XLA under ``jax.jit``: a class label outside ``[0, num_classes)``, a
    negative target where the loss needs it non-negative, and so on. By default jaxloss turns such entries
    into NaN (never a plausible finite number). Inside ``checked``, the losses also emit
    :mod:`jax.experimental.checkify` checks; the wrapped function returns ``(error, output)`` exactly as
    ``checkify.checkify`` does, and works under ``jax.jit``.

    Examples:
        >>> import jax.numpy as jnp, jaxloss
        >>> err, value = jaxloss.checked(jaxloss.cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 5]))
        >>> print(err.get())  # doctest: +ELLIPSIS
        labels must lie in [0, 3) ...
    """

    inner = checkify.checkify(fn, errors=checkify.user_checks)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _checks_on():
            return inner(*args, **kwargs)

    return wrapper


def value_check(ok: Array, message: str, **fmt) -> None:
    """Emits a checkify check when checked mode is on; a no-op otherwise."""
    if _checks_enabled():
        checkify.check(jnp.all(ok), message, **fmt)


# ---------------------------------------------------------------------------------------------------------
# The loss context: mask, dtypes and reduction for one call
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a loss needs to finish: the unreduced loss shape, the mask, the dtypes and the reduction.

    Attributes:
      loss_shape: shape of the unreduced loss (the ``reduction="none"`` output).
      mask: boolean array broadcast to ``loss_shape``, or ``None`` when nothing is masked.
      dtype: the compute dtype (float32 for half-precision inputs).
      out_dtype: the dtype of the result (the predictions' dtype).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      invalid: boolean array of unmasked entries whose input values are invalid (e.g. a label out of
        range); they give NaN. ``None`` when there is nothing to flag.
    """

    loss_shape: Tuple[int, ...]
    mask: Optional[Array]
    dtype: Any
    out_dtype: Any
    reduction: str
    invalid: Optional[Array] = None

    # -- inputs ---------------------------------------------------------------------------------------

    def fill(self, x: Array, value=0.0) -> Array:
        """Replaces the masked entries of an input with ``value`` (so that they cannot give NaN).

        ``x`` has the loss shape plus any number of trailing axes (class or feature axes).
        """
        if self.mask is None:
            return x
        m = self.mask.reshape(self.mask.shape + (1,) * (x.ndim - self.mask.ndim))
        return jnp.where(m, x, jnp.asarray(value, x.dtype))

    def value_check(self, ok: Array, message: str) -> None:
        """A checked-mode check (see :func:`checked`) of unmasked entries only: masked entries may hold anything."""
        value_check(ok if self.mask is None else ok | ~self.mask, message)

    def cast(self, x: ArrayLike) -> Array:
        """``x`` (a hyperparameter or a float input) as an array of the compute dtype."""
        return jnp.asarray(x, self.dtype)

    # -- output ---------------------------------------------------------------------------------------

    def reduce(self, loss: Array, *, weights: Optional[ArrayLike] = None, norm: Optional[Array] = None) -> Array:
        """Applies weights, the mask and the reduction to the unreduced ``loss``.

        Args:
          loss: the unreduced loss, of shape ``loss_shape``.
          weights: user weights broadcastable to ``loss_shape``; they multiply the loss and, for
            ``"mean"``, the denominator: ``sum(w*l)/sum(w)``.
          norm: per-entry normaliser already folded into ``loss`` by the formula (class weights of the
            labels, as in PyTorch's weighted cross-entropy); it enters only the ``"mean"`` denominator.

        Returns:
          a scalar for ``"mean"``/``"sum"``, an array of ``loss_shape`` for ``"none"`` (masked entries 0),
          in ``out_dtype``.
        """
        loss = jnp.asarray(loss, self.dtype)
        if loss.shape != tuple(self.loss_shape):
            loss = jnp.broadcast_to(loss, self.loss_shape)
        denom = None
        if weights is not None:
            w = float_array(weights, "weights") if not isinstance(weights, (int, float)) else jnp.asarray(weights)
            check_broadcastable(w, self.loss_shape, "weights")
            w = w.astype(self.dtype)
            loss = loss * w
            denom = jnp.broadcast_to(w, self.loss_shape)
        if norm is not None:
            norm = jnp.broadcast_to(jnp.asarray(norm, self.dtype), self.loss_shape)
            denom = norm if denom is None else denom * norm
        if self.invalid is not None:
            loss = jnp.where(self.invalid, jnp.nan, loss)
        if self.mask is not None:
            loss = jnp.where(self.mask, loss, 0.0)
            if denom is not None:
                denom = jnp.where(self.mask, denom, 0.0)
        if self.reduction == "none":
            return loss.astype(self.out_dtype)
        total = jnp.sum(loss)
        if self.reduction == "sum":
            return total.astype(self.out_dtype)
        if denom is None and self.mask is None:
            # Static count: a plain mean. (Going through the count == 0 guard below costs XLA:CPU a
            # materialised broadcast of the cotangent in value_and_grad, e.g. 16 MiB more for huber at 2^22.)
            return (total / max(int(np.prod(self.loss_shape)), 1)).astype(self.out_dtype)
        if denom is not None:
            count = jnp.sum(denom)
        elif self.mask is not None:
            count = jnp.sum(self.mask, dtype=self.dtype)
        else:
            count = jnp.asarray(max(int(np.prod(self.loss_shape)), 1), self.dtype)
        safe = jnp.where(count == 0, 1.0, count)
        return jnp.where(count == 0, 0.0, total / safe).astype(self.out_dtype)


def _make_mask(where: Optional[ArrayLike], loss_shape) -> Optional[Array]:
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean mask; got dtype {where.dtype}")
    check_broadcastable(where, loss_shape, "where")
    return jnp.broadcast_to(where, loss_shape)


def _and_mask(a: Optional[Array], b: Optional[Array]) -> Optional[Array]:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def prepare(
    *arrays: ArrayLike,
    names: Sequence[str] = ("predictions", "targets"),
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    axis: Optional[int] = None,
    fill: Sequence[float] = (),
) -> Tuple[LossContext, Tuple[Array, ...]]:
    """Validates and prepares same-shaped float inputs of an elementwise or per-vector loss.

    Args:
      *arrays: the float inputs (predictions first); all must have one shape.
      names: their names, for error messages.
      where: optional boolean mask broadcastable to the unreduced loss.
      reduction: validated here.
      axis: ``None`` for an elementwise loss (the unreduced loss has the inputs' shape); an int for a loss
        over a feature axis (the axis is moved last and dropped from the loss shape).
      fill: the value each array takes at masked entries (default 0).

    Returns:
      ``(ctx, arrays)`` with the arrays in the compute dtype, masked entries filled.
    """
    check_reduction(reduction)
    xs = [float_array(a, n) for a, n in zip(arrays, names)]
    check_same_shape(xs, names)
    out_dtype = xs[0].dtype
    dtype = compute_dtype(out_dtype)
    if axis is not None:
        xs = [move_axis_last(x, axis, n) for x, n in zip(xs, names)]
        loss_shape = xs[0].shape[:-1]
    else:
        loss_shape = xs[0].shape
    ctx = LossContext(tuple(loss_shape), _make_mask(where, loss_shape), dtype, out_dtype, reduction)
    fills = list(fill) + [0.0] * (len(xs) - len(fill))
    xs = tuple(ctx.fill(x.astype(dtype), f) for x, f in zip(xs, fills))
    return ctx, xs


def prepare_classes(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = None,
    names: Tuple[str, str] = ("logits", "labels"),
    allow_probabilities: bool = True,
) -> Tuple[LossContext, Array, Array, bool]:
    """Validates and prepares the inputs of a loss over a class axis.

    ``targets`` are integer class labels (shape = logits' shape without ``axis``) or, when
    ``allow_probabilities``, float class probabilities of the logits' shape; the dtype decides.

    Integer labels: ``ignore_index`` entries are masked; labels outside ``[0, num_classes)`` that are not
    masked give NaN and fail under :func:`checked`; masked labels are replaced by 0 so that indexing is safe.

    Returns:
      ``(ctx, logits, targets, is_int)``: logits in the compute dtype with the class axis last, targets
      (int labels, or probabilities in the compute dtype with the class axis last).
    """
    check_reduction(reduction)
    logits = float_array(logits, names[0])
    out_dtype = logits.dtype
    dtype = compute_dtype(out_dtype)
    logits = move_axis_last(logits, axis, names[0])
    num_classes = logits.shape[-1]
    loss_shape = logits.shape[:-1]
    targets = jnp.asarray(targets)
    is_int = bool(jnp.issubdtype(targets.dtype, jnp.integer))
    if not is_int:
        if not allow_probabilities:
            int_array(targets, names[1], "float targets are not accepted by this loss")
        if not jnp.issubdtype(targets.dtype, jnp.floating):
            raise TypeError(f"{names[1]} must be integer class labels or float probabilities; got dtype {targets.dtype}")
        targets = move_axis_last(targets, axis, names[1]) if targets.ndim == logits.ndim else targets
        if targets.shape != logits.shape:
            raise ValueError(
                f"probability {names[1]} must have the shape of {names[0]}; got {names[0]}.shape="
                f"{jnp.moveaxis(logits, -1, axis).shape} and {names[1]}.shape={jnp.asarray(targets).shape}"
            )
        if ignore_index is not None:
            raise ValueError("ignore_index applies to integer labels only; mask probability targets with where=")
        ctx = LossContext(tuple(loss_shape), _make_mask(where, loss_shape), dtype, out_dtype, reduction)
        return ctx, ctx.fill(logits.astype(dtype)), ctx.fill(targets.astype(dtype)), False

    if targets.shape != loss_shape:
        raise ValueError(
            f"integer {names[1]} must have the shape of {names[0]} without the class axis {axis}; got "
            f"{names[0]}.shape={jnp.moveaxis(logits, -1, axis).shape} and {names[1]}.shape={targets.shape} "
            f"(expected {loss_shape})"
        )
    mask = _make_mask(where, loss_shape)
    if ignore_index is not None:
        mask = _and_mask(mask, targets != ignore_index)
    in_range = (targets >= 0) & (targets < num_classes)
    considered = in_range if mask is None else (in_range | ~mask)
    value_check(
        considered,
        f"{names[1]} must lie in [0, {num_classes}) (or equal ignore_index / be masked); "
        "found a label out of range",
    )
    invalid = ~considered
    ctx = LossContext(tuple(loss_shape), mask, dtype, out_dtype, reduction, invalid=invalid)
    safe_mask = in_range if mask is None else (in_range & mask)
    targets = jnp.where(safe_mask, targets, 0)
    return ctx, ctx.fill(logits.astype(dtype)), targets, True


# ---------------------------------------------------------------------------------------------------------
# Small numerics shared by several formulas
# ---------------------------------------------------------------------------------------------------------


def take_class(x: Array, labels: Array) -> Array:
    """``x[..., labels]`` along the last axis, without materialising a one-hot."""
    return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


def safe_log(x: Array, floor: float = -100.0) -> Array:
    """``log(x)`` clamped below at ``floor`` (PyTorch's BCE clamp), with a finite gradient at ``x = 0``."""
    tiny = jnp.exp(jnp.asarray(floor, x.dtype))
    ok = x > tiny
    return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), jnp.asarray(floor, x.dtype))


def xlogx(x: Array) -> Array:
    """``x * log(x)`` with value and gradient 0 at ``x = 0`` (the gradient there is a finite subgradient)."""
    pos = x > 0
    return jnp.where(pos, x * jnp.log(jnp.where(pos, x, 1.0)), 0.0)


def safe_pow(base: Array, exponent: Array) -> Array:
    """``base ** exponent`` for ``base >= 0`` with a finite gradient at ``base = 0`` (also for exponent < 1)."""
    pos = base > 0
    return jnp.where(pos, jnp.exp(exponent * jnp.log(jnp.where(pos, base, 1.0))), jnp.where(exponent == 0, 1.0, 0.0))


def safe_norm(x: Array, axis: int = -1, ord: float = 2.0) -> Array:
    """The ``ord``-norm over ``axis`` with a finite (zero) gradient at the zero vector."""
    ax = jnp.abs(x)
    if ord == 2:
        # sqrt(sq + tiny) - sqrt(tiny): exactly 0 at the zero vector with gradient x / sqrt(sq + tiny), finite
        # everywhere, and sqrt(sq) to rounding elsewhere; no select, which XLA:CPU would not fuse.
        tiny = jnp.finfo(x.dtype).tiny
        return jnp.sqrt(jnp.sum(x * x, axis=axis) + tiny) - np.sqrt(tiny).astype(x.dtype)
    if ord == 1:
        return jnp.sum(ax, axis=axis)
    if ord == np.inf:
        return jnp.max(ax, axis=axis)
    s = jnp.sum(safe_pow(ax, jnp.asarray(ord, x.dtype)), axis=axis)
    return safe_pow(s, jnp.asarray(1.0 / ord, x.dtype))


def class_weight_array(class_weights: Optional[ArrayLike], num_classes: int, dtype) -> Optional[Array]:
    """Validates ``class_weights`` (shape ``[num_classes]``) and casts it to ``dtype``; ``None`` passes."""
    if class_weights is None:
        return None
    cw = jnp.asarray(class_weights)
    if cw.shape != (num_classes,):
        raise ValueError(f"class_weights must have shape ({num_classes},) (one per class); got shape {cw.shape}")
    return cw.astype(dtype)


def numeric_targets(labels: ArrayLike, name: str = "labels") -> Array:
    """Targets that may be given as int, bool or float (e.g. binary labels), as a float array."""
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        return labels
    if jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
        return labels.astype(jnp.float32)
    raise TypeError(f"{name} must be numeric (float, int or bool); got dtype {labels.dtype}")


def signed_labels(labels: ArrayLike, name: str = "labels") -> Array:
    """Binary labels as floats in {-1, 1}: accepts {-1, 1} or {0, 1} (0 maps to -1), int, bool or float.

    Only the values -1, 0 and 1 are meaningful; other (soft) values are not binary labels.
    """
    labels = numeric_targets(labels, name)
    # y^2 + y - 1 maps 0 -> -1, 1 -> 1, -1 -> -1 with arithmetic only: a select here would stop XLA:CPU from
    # fusing the loss into its reduction (an extra pass and a full-size temporary).
    return labels * labels + labels - 1


# ---------------------------------------------------------------------------------------------------------
# A context for a loss whose unreduced shape is not an input's shape (sequence and segmentation losses)
# ---------------------------------------------------------------------------------------------------------


def context(
    loss_shape: Sequence[int],
    dtype,
    *,
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    invalid: Optional[Array] = None,
    extra_mask: Optional[Array] = None,
) -> LossContext:
    """A :class:`LossContext` for a loss whose unreduced shape ``loss_shape`` is not an input's shape.

    ``dtype`` is the predictions' dtype (the compute dtype is derived from it); ``where`` (the user's mask,
    broadcastable to ``loss_shape``) is combined with ``extra_mask`` (entries that the loss itself leaves
    out, e.g. sequences without any valid token). ``reduction`` is validated here.
    """
    check_reduction(reduction)
    mask = _make_mask(where, loss_shape)
    if extra_mask is not None:
        mask = _and_mask(mask, jnp.broadcast_to(extra_mask, tuple(loss_shape)))
    return LossContext(tuple(loss_shape), mask, compute_dtype(dtype), jnp.dtype(dtype), reduction, invalid)


# ---------------------------------------------------------------------------------------------------------
# Regularised max operators over the last axis (multiclass_sparsemax, fenchel_young)
# ---------------------------------------------------------------------------------------------------------


def sparsemax(z: Array) -> Array:
    """The sparsemax projection of ``z`` onto the simplex along the last axis (Martins & Astudillo, 2016).

    ``p = max(z - tau, 0)`` with ``tau`` chosen so that ``sum p = 1``: sort ``z`` in decreasing order, the
    support is the ``k`` largest entries with ``1 + k z_(k) > sum_{i<=k} z_(i)``, and
    ``tau = (sum_{i<=k} z_(i) - 1) / k``. Differentiable (the support is locally constant).
    """
    z = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))  # sparsemax is shift-invariant
    z_sorted = -jnp.sort(-z, axis=-1)
    cumsum = jnp.cumsum(z_sorted, axis=-1)
    k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    support = jnp.sum(1.0 + k * z_sorted > cumsum, axis=-1, keepdims=True)  # >= 1: the top entry is always in
    tau = (jnp.take_along_axis(cumsum, support - 1, axis=-1) - 1.0) / support.astype(z.dtype)
    return jax.nn.relu(z - tau)


@jax.custom_jvp
def gini_max(z: Array) -> Array:
    """The Gini-entropy conjugate ``max_{p in simplex} <p, z> + (1 - |p|^2) / 2``; its gradient is sparsemax(z)."""
    p = sparsemax(z)
    return jnp.sum(p * z, axis=-1) + 0.5 * (1.0 - jnp.sum(p * p, axis=-1))


@gini_max.defjvp
def _gini_max_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    p = sparsemax(z)
    value = jnp.sum(p * z, axis=-1) + 0.5 * (1.0 - jnp.sum(p * p, axis=-1))
    return value, jnp.sum(p * dz, axis=-1)
