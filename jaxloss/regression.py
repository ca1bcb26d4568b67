"""Regression losses: elementwise functions of ``predictions`` and ``targets`` of one shape.

Every loss here takes ``(predictions, targets, *, <hyperparameters>, weights=None, where=None,
reduction="mean")``; ``reduction="none"`` returns the per-element loss. Shapes, masks, weights and dtypes
follow the jaxloss contract (see :mod:`jaxloss._core`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _core, _derivatives
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = [
    "mse",
    "mae",
    "mean_bias_error",
    "huber",
    "smooth_l1",
    "log_cosh",
    "quantile",
    "mape",
    "msle",
    "poisson_nll",
    "gaussian_nll",
    "tweedie",
    "general_robust",
    "cauchy",
    "geman_mcclure",
    "welsch",
    "smoothed_quantile",
    "concomitant_huber",
]

_LN2 = 0.6931471805599453


def mse(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Mean squared error, ``(p - t)^2`` per element.

    Args:
      predictions: float array of any shape.
      targets: float array of the same shape.
      weights: optional weights broadcastable to the predictions' shape.
      where: optional boolean mask broadcastable to the predictions' shape.
      reduction: ``"mean"`` (weighted mean over unmasked entries), ``"sum"`` or ``"none"``.

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.mse(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
      2.5
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    return ctx.reduce(jnp.square(p - t), weights=weights)


def mae(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Mean absolute error, ``|p - t|`` per element (PyTorch's ``l1_loss``).

    The gradient at ``p == t`` is 0 (the subgradient ``sign(0)``), as in PyTorch.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.mae(jnp.array([1.0, -2.0]), jnp.array([0.0, 0.0])))
      1.5
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    return ctx.reduce(jnp.abs(p - t), weights=weights)


def mean_bias_error(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Mean bias error, ``p - t`` per element: positive means over-prediction.

    A signed diagnostic rather than a loss to minimise (it is unbounded below).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.mean_bias_error(jnp.array([3.0, 1.0]), jnp.array([1.0, 1.0])))
      1.0
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    return ctx.reduce(p - t, weights=weights)


@_core.domain(delta=_core.POSITIVE)
def huber(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    delta: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Huber loss: quadratic for small errors, linear for large ones.

    ``0.5 * e^2`` if ``|e| <= delta`` else ``delta * (|e| - 0.5 * delta)``, with ``e = p - t``
    (optax's ``huber_loss`` and PyTorch's ``huber_loss``).

    Args:
      delta: the threshold (> 0); may be a traced array.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.huber(jnp.array([0.5, 3.0]), jnp.zeros(2)))
      1.3125
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(huber, delta=delta)
    # 0.5 q^2 + delta (|e| - q), q = min(|e|, delta): equals both branches and is smooth in e. The
    # derivative is the closed form clip(e, -delta, delta) (measured faster than the generic one).
    return ctx.reduce(_derivatives.huber_elementwise(p - t, ctx.cast(delta)), weights=weights)


@_core.domain(beta=_core.NONNEGATIVE)
def smooth_l1(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    beta: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Smooth L1 loss (PyTorch's ``smooth_l1_loss``): ``huber(delta=beta) / beta``.

    ``0.5 * e^2 / beta`` if ``|e| < beta`` else ``|e| - 0.5 * beta``. ``beta = 0`` gives the L1 loss
    (with a finite gradient, as in PyTorch).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.smooth_l1(jnp.array([0.5, 3.0]), jnp.zeros(2), beta=1.0))
      1.3125
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(smooth_l1, beta=beta)
    beta = ctx.cast(beta)
    abs_err = jnp.abs(p - t)
    small = abs_err < beta
    safe_beta = jnp.where(beta > 0, beta, 1.0)
    loss = jnp.where(small, 0.5 * jnp.square(jnp.where(small, abs_err, 0.0)) / safe_beta, abs_err - 0.5 * beta)
    return ctx.reduce(loss, weights=weights)


def log_cosh(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Log-cosh loss, ``log(cosh(p - t))``, computed as ``logaddexp(e, -e) - log 2`` (no overflow).

    Behaves like ``e^2 / 2`` for small errors and ``|e| - log 2`` for large ones; the gradient is
    ``tanh(e)`` (optax's ``log_cosh``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.log_cosh(jnp.array([1e4]), jnp.array([0.0]))), 2))
      9999.31
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    # Derivative written as tanh(e) (measured faster than the generic one).
    return ctx.reduce(_derivatives.log_cosh_elementwise(p - t), weights=weights)


@_core.domain(tau=_core.PROBABILITY)
def quantile(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    tau: ArrayLike = 0.5,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Quantile (pinball) loss: ``max(tau * (t - p), (tau - 1) * (t - p))``.

    Minimised by the ``tau``-quantile of the targets; ``tau = 0.5`` gives half the absolute error
    (scikit-learn's ``mean_pinball_loss`` with ``alpha=tau``).

    Args:
      tau: the quantile level in ``[0, 1]``; may be a traced array.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.quantile(jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0]), tau=0.9))
      0.5
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(quantile, tau=tau)
    tau = ctx.cast(tau)
    diff = t - p
    return ctx.reduce(jnp.maximum(tau * diff, (tau - 1.0) * diff), weights=weights)


# ---------------------------------------------------------------------------------------------------------
# Relative and log-scale errors
# ---------------------------------------------------------------------------------------------------------

_F64_EPS = float(np.finfo(np.float64).eps)


@_core.domain(eps=_core.POSITIVE)
def mape(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    eps: ArrayLike = _F64_EPS,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Mean absolute percentage error as a fraction: ``|p - t| / max(|t|, eps)`` per element.

    The result is a fraction, not a percentage (multiply by 100 for percent). The default ``eps`` is
    float64's machine epsilon (``2.2e-16``), as in scikit-learn's ``mean_absolute_percentage_error``, so a
    zero target gives a finite but huge ``|p| / 2.2e-16``; Keras's ``mean_absolute_percentage_error`` uses
    ``eps=1e-7`` and reports percent (``keras(...) / 100 == mape(..., eps=1e-7)``). The gradient with
    respect to a target of exactly 0 is that of the ``eps`` branch (finite).

    Args:
      predictions: float array of any shape.
      targets: float array of the same shape.
      eps: floor of the denominator ``|t|`` (> 0); may be traced.
      weights: optional weights broadcastable to the predictions' shape.
      where: optional boolean mask broadcastable to the predictions' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.mape(jnp.array([1.5, 1.0]), jnp.array([1.0, 2.0]))), 4))
      0.5
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(mape, eps=eps)
    eps = ctx.cast(eps)
    abs_t = jnp.abs(t)
    big = abs_t > eps
    # double where: the eps branch divides by a constant, so its second derivative has no 1/eps^3 (0 in f32)
    return ctx.reduce(jnp.abs(p - t) / jnp.where(big, abs_t, eps), weights=weights)


def _log1p_extended(x):
    """``log1p(x)`` for ``x >= -1 + eps``, continued below by its tangent there (finite, increasing).

    ``eps`` is the machine epsilon of ``x``'s dtype. Below ``-1 + eps``, where ``log1p`` is ``-inf`` or NaN,
    the value is ``log(eps) + (x - (-1 + eps)) / eps``: finite, hugely negative, with the constant slope
    ``1 / eps`` that pushes ``x`` back into the domain.
    """
    d = float(jnp.finfo(x.dtype).eps)
    lo = -1.0 + d
    inside = x >= lo
    return jnp.where(inside, jnp.log1p(jnp.where(inside, x, 0.0)), math.log(d) + (x - lo) / d)


@_core.domain(targets=_core.Interval(-1.0, low_open=True))
def msle(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Mean squared logarithmic error: ``(log1p(p) - log1p(t))^2`` per element.

    On the domain ``p, t > -1`` this is scikit-learn's ``mean_squared_log_error`` exactly; for
    non-negative inputs it equals Keras's ``mean_squared_logarithmic_error`` up to Keras's clip of inputs
    at ``1e-7``.

    Inputs ``<= -1`` are outside the domain (scikit-learn raises; Keras clips every input below at
    ``1e-7``, which also zeroes the gradient of all negative predictions). Targets ``<= -1`` give NaN (the
    jaxloss domain policy). Predictions ``<= -1`` are a decision apart, so that training can recover
    from them: they stay finite and never NaN: below ``-1 + eps`` (``eps`` the compute dtype's machine epsilon) ``log1p`` is continued by
    its tangent line, so such an entry gets a huge finite loss (order ``(x / eps)^2``) and a gradient that
    pushes it back above ``-1``. :func:`jaxloss.checked` reports them. Use a non-negative output
    (``softplus``, ``exp``) for predictions.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.msle(jnp.array([jnp.e - 1.0]), jnp.array([0.0]))), 4))
      1.0
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx.value_check(p > -1.0, "msle needs predictions and targets > -1")
    ctx = ctx.enforce(msle, targets=t)
    return ctx.reduce(jnp.square(_log1p_extended(p) - _log1p_extended(t)), weights=weights)


# ---------------------------------------------------------------------------------------------------------
# Likelihood-based losses
# ---------------------------------------------------------------------------------------------------------


@_core.domain(
    targets=_core.NONNEGATIVE, predictions=_core.when("log_input", False, _core.NONNEGATIVE), eps=_core.NONNEGATIVE
)
def poisson_nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: ArrayLike = 1e-8,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Poisson negative log-likelihood (PyTorch's ``poisson_nll_loss``), elementwise.

    With ``log_input=True`` (default) the predictions are log-rates and the loss is ``exp(x) - t * x``;
    with ``log_input=False`` they are rates and the loss is ``x - t * log(x + eps)``. With ``full=True``
    the Stirling approximation of ``log(t!)``, ``t log t - t + 0.5 log(2 pi t)``, is added for targets
    ``> 1`` (and 0 for targets ``<= 1``), exactly as PyTorch does.

    Like PyTorch, ``exp(x)`` overflows to ``inf`` for log-rates above ~88 in float32 (~709 in float64):
    such a rate is not representable. Rates ``< -eps`` with ``log_input=False`` give NaN (a negative
    rate is invalid) and are reported by :func:`jaxloss.checked`.

    Args:
      predictions: log-rates (``log_input=True``) or rates, float array of any shape.
      targets: counts (non-negative floats) of the same shape.
      log_input: static; whether the predictions are log-rates.
      full: static; whether to add the Stirling term.
      eps: added to rates inside the log when ``log_input=False`` (>= 0); may be traced.

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.poisson_nll(jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0]))), 4))
      0.8591
    """
    ctx, (x, t) = _core.prepare(
        predictions, targets, where=where, reduction=reduction, fill=(0.0 if log_input else 1.0, 1.0)
    )
    ctx = ctx.enforce(poisson_nll, dict(log_input=log_input), predictions=x, targets=t, eps=eps)
    if log_input:
        loss = jnp.exp(x) - t * x
    else:
        loss = x - t * jnp.log(x + ctx.cast(eps))
    if full:
        big = t > 1
        ts = jnp.where(big, t, 2.0)
        stirling = ts * jnp.log(ts) - ts + 0.5 * jnp.log(2.0 * math.pi * ts)
        loss = loss + jnp.where(big, stirling, 0.0)
    return ctx.reduce(loss, weights=weights)


@_core.domain(var=_core.NONNEGATIVE, eps=_core.NONNEGATIVE)
def gaussian_nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    var: ArrayLike,
    *,
    full: bool = False,
    eps: ArrayLike = 1e-6,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Gaussian negative log-likelihood (PyTorch's ``gaussian_nll_loss``), elementwise.

    ``0.5 * (log(v) + (p - t)^2 / v)`` (plus ``0.5 log(2 pi)`` when ``full``) with ``v = max(var, eps)``.
    As in PyTorch, the clamp acts on the value only: the gradient with respect to ``var`` is the gradient
    with respect to ``v``, passed straight through the clamp (PyTorch clamps in place under ``no_grad``),
    so a variance below ``eps`` still receives a gradient.

    ``var`` is broadcast to the predictions' shape. As in PyTorch, a ``var`` whose shape is the
    predictions' shape without its last axis (one variance per example, homoscedastic over the last
    axis) gets a trailing axis first; otherwise NumPy broadcasting applies. PyTorch raises on negative
    variances; under ``jit`` that cannot be raised, so negative (unmasked) variances give NaN and are
    reported by :func:`jaxloss.checked`.

    Args:
      predictions: predicted means, float array of any shape.
      targets: observations of the same shape.
      var: predicted variances (>= 0): an array broadcastable as described, or a Python float.
        Differentiable.
      full: static; whether to add the constant ``0.5 log(2 pi)``.
      eps: the variance floor (>= 0); may be traced.

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.gaussian_nll(jnp.array([1.0]), jnp.array([3.0]), jnp.array([2.0]))), 4))
      1.3466
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    v = _core.float_array(var, "var")
    shape = tuple(ctx.loss_shape)
    if v.shape != shape and len(shape) > 0 and v.shape == shape[:-1]:
        v = v[..., None]
    _core.check_broadcastable(v, shape, "var", target=f"the predictions, of shape {shape}")
    v = ctx.fill(jnp.broadcast_to(v.astype(ctx.dtype), shape), 1.0)
    ctx = ctx.enforce(gaussian_nll, var=v, eps=eps)
    # value max(v, eps); gradient 1 with respect to v (PyTorch's in-place no_grad clamp)
    v_c = jax.lax.stop_gradient(jnp.maximum(v, ctx.cast(eps))) + (v - jax.lax.stop_gradient(v))
    loss = 0.5 * (jnp.log(v_c) + jnp.square(p - t) / v_c)
    if full:
        loss = loss + 0.5 * math.log(2.0 * math.pi)
    return ctx.reduce(loss, weights=weights)


def _static_power(power) -> float:
    try:
        p = float(power)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        raise TypeError(
            f"tweedie: power must be a static Python number (the formula's branch depends on it); got {power!r}"
        ) from None
    if 0.0 < p < 1.0:
        raise ValueError(f"tweedie: power must be <= 0 or >= 1 (no Tweedie distribution exists in between); got {p}")
    return p


@_core.domain(
    predictions=_core.Cond("power", lambda p: float(p) != 0.0, _core.POSITIVE, "(unless power=0)"),
    targets=(
        _core.Cond("power", lambda p: 1.0 <= float(p) < 2.0, _core.NONNEGATIVE, "(for 1 <= power < 2)"),
        _core.Cond("power", lambda p: float(p) >= 2.0, _core.POSITIVE, "(for power >= 2)"),
    ),
)
def tweedie(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    power: ArrayLike = 1.5,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Tweedie unit deviance ``d(t, mu)`` (scikit-learn's ``mean_tweedie_deviance``), elementwise.

    With ``mu`` the predicted means (first argument) and ``t`` the targets::

      power = 0:  (t - mu)^2                                   (normal)
      power = 1:  2 (t log(t / mu) - t + mu)                   (Poisson; 0 log 0 = 0)
      power = 2:  2 (log(mu / t) + t / mu - 1)                 (Gamma)
      otherwise:  2 (max(t, 0)^(2-p) / ((1-p)(2-p)) - t mu^(1-p) / (1-p) + mu^(2-p) / (2-p))

    (``1 < power < 2`` compound Poisson-Gamma, ``power = 3`` inverse Gaussian, ``power < 0`` extreme
    stable). ``power`` must be a static Python number (the branch depends on it) with ``power <= 0`` or
    ``power >= 1``. Domain, as in scikit-learn: ``mu > 0`` unless ``power = 0``; ``t >= 0`` for
    ``1 <= power < 2``; ``t > 0`` for ``power >= 2``. Outside it the loss is NaN (scikit-learn raises) and
    :func:`jaxloss.checked` reports it. At ``t = 0`` the gradient with respect to ``t`` (infinite for
    ``1 <= power < 2``) is reported as that of ``-t mu^(1-p) / (1-p)`` alone (finite).

    Args:
      predictions: predicted means ``mu``.
      targets: observations ``t`` of the same shape.
      power: the Tweedie power (static Python float).

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.tweedie(jnp.array([2.0]), jnp.array([1.0]), power=1)), 4))
      0.6137
    """
    pw = _static_power(power)
    ctx, (mu, t) = _core.prepare(predictions, targets, where=where, reduction=reduction, fill=(1.0, 1.0))
    if pw == 0.0:
        return ctx.reduce(jnp.square(t - mu), weights=weights)
    ctx = ctx.enforce(tweedie, dict(power=pw), predictions=mu, targets=t)
    ok = ~ctx.invalid  # type: ignore[operator]  # set by enforce
    mu = jnp.where(ok, mu, 1.0)
    t = jnp.where(ok, t, 1.0)
    if pw == 1.0:
        dev = 2.0 * (_core.xlogx(t) - t * jnp.log(mu) - t + mu)
    elif pw == 2.0:
        dev = 2.0 * (jnp.log(mu) - jnp.log(t) + t / mu - 1.0)
    else:
        t_pos = jnp.maximum(t, 0.0) if pw < 0 else t
        dev = 2.0 * (
            _core.safe_pow(t_pos, ctx.cast(2.0 - pw)) / ((1.0 - pw) * (2.0 - pw))
            - t * jnp.power(mu, 1.0 - pw) / (1.0 - pw)
            + jnp.power(mu, 2.0 - pw) / (2.0 - pw)
        )
    return ctx.reduce(dev, weights=weights)


# ---------------------------------------------------------------------------------------------------------
# Barron's general robust loss and its named special cases
# ---------------------------------------------------------------------------------------------------------


def _exprel(u):
    """``expm1(u) / u`` with the value 1 (and the right derivative) at ``u = 0``."""
    small = jnp.abs(u) < 1e-3
    us = jnp.where(small, 1.0, u)
    series = 1.0 + u / 2.0 * (1.0 + u / 3.0 * (1.0 + u / 4.0 * (1.0 + u / 5.0)))
    return jnp.where(small, series, jnp.expm1(us) / us)


def _barron(x, alpha, scale):
    """Barron's rho(x, alpha, c), stable for every alpha (see :func:`general_robust`)."""
    z = jnp.square(x / scale)
    eps = float(jnp.finfo(z.dtype).eps)
    special = ~jnp.isfinite(alpha) | (alpha == 2.0)
    a = jnp.where(jnp.isfinite(alpha), alpha, 1.0)
    zg = jnp.where(special, 0.0, z)  # the general branch never sees the special cases' inputs
    b = jnp.maximum(jnp.abs(a - 2.0), eps)
    log_term = jnp.log1p(zg / b)
    # |a-2|/a * ((z/b + 1)^(a/2) - 1) == b * (L/2) * exprel(a L / 2) with L = log1p(z/b): no cancellation
    # near alpha = 0 (where it tends to log1p(z/2)) and no division by alpha.
    general = b * (0.5 * log_term) * _exprel(0.5 * a * log_term)
    loss = jnp.where(alpha == 2.0, 0.5 * z, general)
    loss = jnp.where(alpha == -jnp.inf, -jnp.expm1(-0.5 * z), loss)
    pos_inf = alpha == jnp.inf
    return jnp.where(pos_inf, jnp.expm1(0.5 * jnp.where(pos_inf, z, 0.0)), loss)


@_core.domain(scale=_core.POSITIVE)
def general_robust(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike | None = 1.0,
    scale: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Barron's general and adaptive robust loss ``rho(x, alpha, c)`` of ``x = p - t``, elementwise.

    ``rho = |alpha - 2| / alpha * (((x/c)^2 / |alpha - 2| + 1)^(alpha/2) - 1)``, with its limits
    ``0.5 (x/c)^2`` at ``alpha = 2`` (L2), ``log(0.5 (x/c)^2 + 1)`` at ``alpha = 0`` (:func:`cauchy`),
    ``1 - exp(-0.5 (x/c)^2)`` at ``alpha = -inf`` (:func:`welsch`) and ``exp(0.5 (x/c)^2) - 1`` at
    ``alpha = +inf``; ``alpha = 1`` is the Charbonnier / pseudo-Huber loss ``sqrt((x/c)^2 + 1) - 1``
    and ``alpha = -2`` :func:`geman_mcclure`.

    ``alpha`` is traceable and differentiable (it may be learned). The formula is evaluated as
    ``b * (L/2) * expm1(alpha L / 2) / (alpha L / 2)`` with ``b = |alpha - 2|``, ``L = log1p((x/c)^2 / b)``:
    exact and smooth through ``alpha = 0`` (no special case needed there), stable for large ``|alpha|``,
    and with ``b`` floored at the dtype's machine epsilon so that ``alpha`` near 2 is stable too. At
    ``alpha = 2`` and ``alpha = +-inf`` exactly the closed forms above are used; there the gradient with
    respect to ``alpha`` is 0 (near 2 the true ``alpha``-derivative grows like ``log(1 / |alpha - 2|)``
    and is unbounded at 2; learn ``alpha`` in an open range such as ``(0, 2)``, as the paper does).

    Args:
      predictions: float array of any shape.
      targets: float array of the same shape.
      alpha: the shape parameter, any real number or ``+-inf``; a traceable scalar or array broadcastable
        to the inputs.
      scale: ``c > 0``, the size of the quadratic bowl near 0; traceable, broadcastable.

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    References:
      Jonathan T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019 (Eq. 1 and its limit
      cases).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.general_robust(jnp.array([3.0]), jnp.array([0.0]), alpha=1.0)), 4))
      2.1623
      >>> print(round(float(jaxloss.general_robust(jnp.array([3.0]), jnp.array([0.0]), alpha=0.0)), 4))
      1.7047
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(general_robust, scale=scale)
    alpha, scale = ctx.cast(alpha), ctx.cast(scale)
    _core.check_broadcastable(alpha, ctx.loss_shape, "alpha")
    _core.check_broadcastable(scale, ctx.loss_shape, "scale")
    return ctx.reduce(_barron(p - t, alpha, scale), weights=weights)


def _scaled_sq(loss, predictions, targets, scale, where, reduction):
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(loss, scale=scale)
    scale = ctx.cast(scale)
    _core.check_broadcastable(scale, ctx.loss_shape, "scale")
    return ctx, jnp.square((p - t) / scale)


@_core.domain(scale=_core.POSITIVE)
def cauchy(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Cauchy (Lorentzian) loss ``log(0.5 (x/c)^2 + 1)``, ``x = p - t``: :func:`general_robust` at ``alpha = 0``.

    Barron's normalisation (curvature ``1/c^2`` at 0, like ``0.5 (x/c)^2``); other texts scale it
    differently (e.g. ``c^2/2 log(1 + (x/c)^2)``).

    References:
      Jonathan T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.cauchy(jnp.array([2.0]), jnp.array([0.0]), scale=2.0)), 4))
      0.4055
    """
    ctx, z = _scaled_sq(cauchy, predictions, targets, scale, where, reduction)
    return ctx.reduce(jnp.log1p(0.5 * z), weights=weights)


@_core.domain(scale=_core.POSITIVE)
def geman_mcclure(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Geman-McClure loss ``2 (x/c)^2 / ((x/c)^2 + 4)``, ``x = p - t``: :func:`general_robust` at ``alpha = -2``.

    Bounded by 2; Barron's normalisation (curvature ``1/c^2`` at 0).

    References:
      Jonathan T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.geman_mcclure(jnp.array([2.0]), jnp.array([0.0]))), 4))
      1.0
    """
    ctx, z = _scaled_sq(geman_mcclure, predictions, targets, scale, where, reduction)
    return ctx.reduce(2.0 * z / (z + 4.0), weights=weights)


@_core.domain(scale=_core.POSITIVE)
def welsch(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Welsch (Leclerc) loss ``1 - exp(-0.5 (x/c)^2)``, ``x = p - t``: :func:`general_robust` at ``alpha = -inf``.

    Bounded by 1; Barron's normalisation (curvature ``1/c^2`` at 0).

    References:
      Jonathan T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.welsch(jnp.array([2.0]), jnp.array([0.0]), scale=2.0)), 4))
      0.3935
    """
    ctx, z = _scaled_sq(welsch, predictions, targets, scale, where, reduction)
    return ctx.reduce(-jnp.expm1(-0.5 * z), weights=weights)


# ---------------------------------------------------------------------------------------------------------
# Smoothed losses of the ready objectives (quantile regression, Huber regression with a fitted scale)
# ---------------------------------------------------------------------------------------------------------


@_core.domain(tau=_core.PROBABILITY, smoothing=_core.NONNEGATIVE)
def smoothed_quantile(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    tau: ArrayLike = 0.5,
    smoothing: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Smoothed quantile (pinball) loss: the Moreau envelope of :func:`quantile` with parameter ``mu``.

    With ``r = t - p`` and ``mu = smoothing``::

        tau * r - mu * tau^2 / 2                if r > tau * mu
        r^2 / (2 mu)                            if (tau - 1) * mu <= r <= tau * mu
        (tau - 1) * r - mu * (1 - tau)^2 / 2    if r < (tau - 1) * mu

    i.e. ``min_z pinball_tau(z) + (r - z)^2 / (2 mu)``: the kink of the pinball loss at 0 is rounded by a
    parabola on an interval of width ``mu``, the slopes ``tau`` and ``tau - 1`` are kept outside. It is
    differentiable with a ``1 / mu``-Lipschitz gradient, lies below the pinball loss by at most
    ``mu * max(tau, 1 - tau)^2 / 2``, and equals it for ``smoothing=0``. For ``tau = 1/2`` it is
    ``huber(delta=mu / 2) / mu``. It is the smooth surrogate that :func:`jaxloss.quantile_regression` uses
    with ``smoothing=``.

    Args:
      predictions: float array of any shape.
      targets: float array of the same shape.
      tau: the quantile level in ``[0, 1]``; may be traced.
      smoothing: ``mu >= 0``, the width of the rounded zone; may be traced. ``0`` is the pinball loss.
      weights: optional weights broadcastable to the predictions' shape.
      where: optional boolean mask broadcastable to the predictions' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise).

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    References:
      Moreau, "Proximite et dualite dans un espace hilbertien", 1965; Zheng, "Gradient descent algorithms
      for quantile regression with smooth approximation", 2011.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> # r = 1 > tau mu = 0.45: 0.9 - 0.5 * 0.81 / 2; r = 0.2 in the parabola: 0.04 / 1
      >>> print(jaxloss.smoothed_quantile(jnp.zeros(2), jnp.array([1.0, 0.2]), tau=0.9, smoothing=0.5, reduction="none"))
      [0.6975 0.04  ]
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    ctx = ctx.enforce(smoothed_quantile, tau=tau, smoothing=smoothing)
    tau, mu = ctx.cast(tau), ctx.cast(smoothing)
    r = t - p
    # c: r clipped to the parabola's interval; outside it the loss continues linearly from its ends.
    c = jnp.clip(r, (tau - 1.0) * mu, tau * mu)
    d = r - c
    safe_mu = jnp.where(mu > 0, mu, 1.0)  # mu = 0: c = 0, no parabola
    return ctx.reduce(0.5 * c * c / safe_mu + tau * d - jnp.minimum(d, 0.0), weights=weights)


@_core.domain(scale=_core.POSITIVE, delta=_core.POSITIVE)
def concomitant_huber(
    predictions: ArrayLike,
    targets: ArrayLike,
    scale: ArrayLike,
    *,
    delta: ArrayLike = 1.35,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Huber loss with a jointly estimated scale (Owen's concomitant scale; scikit-learn's ``HuberRegressor``).

    With ``r = t - p`` and ``s = scale > 0``::

        s * (1 + 2 * huber(r / s, delta))  =  s + r^2 / s                    if |r| <= delta * s
                                              s + 2 delta |r| - delta^2 s    otherwise

    Unlike :func:`huber`, whose threshold is in the targets' units, the threshold here is ``delta`` scale
    units, and the loss is jointly convex in ``(p, s)``: minimising it over the predictions *and* the
    scale estimates both (Owen 2007, Huber's "Proposal 2"). scikit-learn's ``HuberRegressor(epsilon=delta)``
    minimises its sum (with ``s = scale_``) plus the L2 penalty; :func:`jaxloss.huber_regression` with
    ``fit_scale=True`` is that objective with ``s = exp(params["log_scale"])``.

    Args:
      predictions: float array of any shape.
      targets: float array of the same shape.
      scale: ``s > 0``, broadcastable to the predictions' shape (a Python float, a scalar or per-element
        scales); differentiable. Non-positive (unmasked) scales give NaN and are reported by
        :func:`jaxloss.checked`.
      delta: the threshold in scale units (> 0; scikit-learn's ``epsilon``, 1.35 by default: 95%
        efficiency at the normal); may be traced.
      weights: optional weights broadcastable to the predictions' shape.
      where: optional boolean mask broadcastable to the predictions' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (elementwise).

    Returns:
      a scalar, or an array of the predictions' shape for ``reduction="none"``.

    References:
      Owen, "A robust hybrid of lasso and ridge regression", Contemporary Mathematics 443, 2007;
      Huber, "Robust Statistics", 1981 (section 7.7).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> # s = 2: r = 1 is inside (2 + 1/2), r = 6 outside (2 + 2 * 1.35 * 6 - 1.35^2 * 2)
      >>> print(jaxloss.concomitant_huber(jnp.zeros(2), jnp.array([1.0, 6.0]), 2.0, reduction="none"))
      [ 2.5   14.555]
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    s = _core.float_array(scale, "scale") if not isinstance(scale, (int, float)) else jnp.asarray(scale, ctx.dtype)
    shape = tuple(ctx.loss_shape)
    _core.check_broadcastable(s, shape, "scale", target=f"the predictions, of shape {shape}")
    s = ctx.fill(jnp.broadcast_to(s.astype(ctx.dtype), shape), 1.0)
    ctx = ctx.enforce(concomitant_huber, scale=s, delta=delta)
    s = jnp.where(ctx.invalid, 1.0, s)  # type: ignore[arg-type]  # set by enforce
    delta = ctx.cast(delta)
    abs_r = jnp.abs(t - p)
    q = jnp.minimum(abs_r, delta * s)
    # s + q^2 / s + 2 delta (|r| - q): equals both branches and is smooth in r and s.
    loss = s + q * q / s + 2.0 * delta * (abs_r - q)
    return ctx.reduce(loss, weights=weights)
