"""Regression losses: elementwise functions of ``predictions`` and ``targets`` of one shape.

Every loss here takes ``(predictions, targets, *, <hyperparameters>, weights=None, where=None,
reduction="mean")``; ``reduction="none"`` returns the per-element loss. Shapes, masks, weights and dtypes
follow the jaxloss contract (see :mod:`jaxloss._core`).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxloss import _core

__all__ = ["mse", "mae", "mean_bias_error", "huber", "smooth_l1", "log_cosh", "quantile"]

_LN2 = 0.6931471805599453


def mse(predictions, targets, *, weights=None, where=None, reduction="mean"):
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


def mae(predictions, targets, *, weights=None, where=None, reduction="mean"):
    """Mean absolute error, ``|p - t|`` per element (PyTorch's ``l1_loss``).

    The gradient at ``p == t`` is 0 (the subgradient ``sign(0)``), as in PyTorch.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.mae(jnp.array([1.0, -2.0]), jnp.array([0.0, 0.0])))
      1.5
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    return ctx.reduce(jnp.abs(p - t), weights=weights)


def mean_bias_error(predictions, targets, *, weights=None, where=None, reduction="mean"):
    """Mean bias error, ``p - t`` per element: positive means over-prediction.

    A signed diagnostic rather than a loss to minimise (it is unbounded below).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.mean_bias_error(jnp.array([3.0, 1.0]), jnp.array([1.0, 1.0])))
      1.0
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    return ctx.reduce(p - t, weights=weights)


def huber(predictions, targets, *, delta=1.0, weights=None, where=None, reduction="mean"):
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
    _core.check_hyper(delta, "delta", low=0.0, low_open=True)
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    delta = ctx.cast(delta)
    abs_err = jnp.abs(p - t)
    quad = jnp.minimum(abs_err, delta)
    # 0.5 q^2 + delta (|e| - q): equals both branches and is smooth in e.
    return ctx.reduce(0.5 * quad * quad + delta * (abs_err - quad), weights=weights)


def smooth_l1(predictions, targets, *, beta=1.0, weights=None, where=None, reduction="mean"):
    """Smooth L1 loss (PyTorch's ``smooth_l1_loss``): ``huber(delta=beta) / beta``.

    ``0.5 * e^2 / beta`` if ``|e| < beta`` else ``|e| - 0.5 * beta``. ``beta = 0`` gives the L1 loss
    (with a finite gradient, as in PyTorch).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.smooth_l1(jnp.array([0.5, 3.0]), jnp.zeros(2), beta=1.0))
      1.3125
    """
    _core.check_hyper(beta, "beta", low=0.0)
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    beta = ctx.cast(beta)
    abs_err = jnp.abs(p - t)
    small = abs_err < beta
    safe_beta = jnp.where(beta > 0, beta, 1.0)
    loss = jnp.where(small, 0.5 * jnp.square(jnp.where(small, abs_err, 0.0)) / safe_beta, abs_err - 0.5 * beta)
    return ctx.reduce(loss, weights=weights)


def log_cosh(predictions, targets, *, weights=None, where=None, reduction="mean"):
    """Log-cosh loss, ``log(cosh(p - t))``, computed as ``logaddexp(e, -e) - log 2`` (no overflow).

    Behaves like ``e^2 / 2`` for small errors and ``|e| - log 2`` for large ones; the gradient is
    ``tanh(e)`` (optax's ``log_cosh``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.log_cosh(jnp.array([1e4]), jnp.array([0.0]))), 2))
      9999.31
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    e = p - t
    return ctx.reduce(jnp.logaddexp(e, -e) - _LN2, weights=weights)


def quantile(predictions, targets, *, tau=0.5, weights=None, where=None, reduction="mean"):
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
    _core.check_hyper(tau, "tau", low=0.0, high=1.0)
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
    tau = ctx.cast(tau)
    diff = t - p
    return ctx.reduce(jnp.maximum(tau * diff, (tau - 1.0) * diff), weights=weights)
