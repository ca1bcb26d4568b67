"""Divergences between distributions over a class axis (``axis=-1`` by default).

``reduction="none"`` returns one divergence per distribution; ``"mean"`` is the mean over distributions,
i.e. the true per-example divergence (PyTorch's ``reduction="batchmean"``, not its element mean).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction

__all__ = ["kl_divergence", "js_divergence", "generalized_kl", "entropy"]


def _plogp_over_q(p, log_p, log_q):
    """``p * (log p - log q)``, exactly 0 where ``p == 0``, with finite gradients there (double where)."""
    nz = p > 0
    return jnp.where(nz, p * (jnp.where(nz, log_p, 0.0) - jnp.where(nz, log_q, 0.0)), 0.0)


def _prob_and_log(targets, log_targets):
    """``(t, log t)`` of targets given as probabilities or log-probabilities (``log 0`` is never formed)."""
    if log_targets:
        return jnp.exp(targets), targets
    pos = targets > 0
    return targets, jnp.log(jnp.where(pos, targets, 1.0))


@_core.domain(
    targets=(
        _core.when("log_targets", False, _core.PROBABILITY),
        _core.when("log_targets", True, _core.Interval(high=0.0)),
    )
)
def kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_targets: bool = False,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Kullback–Leibler divergence ``KL(targets || predictions) = sum_c t_c (log t_c - log p_c)``.

    The argument order and meaning are PyTorch's ``kl_div`` and optax's ``kl_divergence``: the first
    argument holds log-probabilities of the model. Zero targets contribute exactly 0, with finite
    gradients for both arguments (``0 log 0 = 0``; at ``t = 0`` the gradient with respect to ``t``, which is
    ``-inf`` mathematically, is reported as 0), also when ``log_predictions`` holds ``-inf`` there.

    Args:
      log_predictions: float ``[..., C]`` log-probabilities.
      targets: probabilities of the same shape (log-probabilities when ``log_targets=True``).
      log_targets: static; whether ``targets`` are given in log space.
      axis: the class axis.

    Returns:
      the mean KL over distributions (scalar), or one KL per distribution for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> lp = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> print(round(float(jaxloss.kl_divergence(lp, jnp.array([[1.0, 0.0]]))), 4))
      0.6931
    """
    ctx, (lp, t) = _core.prepare(
        log_predictions, targets, names=("log_predictions", "targets"), where=where, reduction=reduction, axis=axis
    )
    ctx = ctx.enforce(kl_divergence, dict(log_targets=log_targets), targets=t)
    t, log_t = _prob_and_log(t, log_targets)
    return ctx.reduce(jnp.sum(_plogp_over_q(t, log_t, lp), axis=-1), weights=weights)


@_core.domain(
    targets=(
        _core.when("log_targets", False, _core.PROBABILITY),
        _core.when("log_targets", True, _core.Interval(high=0.0)),
    )
)
def js_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_targets: bool = False,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Jensen–Shannon divergence ``0.5 KL(p || m) + 0.5 KL(t || m)``, ``m = (p + t) / 2``, in nats.

    Takes the same arguments as :func:`kl_divergence` (log-predictions first) and is symmetric in the two
    distributions; it lies in ``[0, log 2]``. Zero probabilities on either side contribute exactly 0 with
    finite gradients: where a probability is 0, the derivative of its own ``u log(u / m)`` term (``-inf``
    mathematically) is taken as 0, and only the finite part through ``m`` remains.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> lp = jnp.log(jnp.array([[1.0, 0.0]]))
      >>> print(round(float(jaxloss.js_divergence(lp, jnp.array([[0.0, 1.0]]))), 4))
      0.6931
    """
    ctx, (lp, t) = _core.prepare(
        log_predictions, targets, names=("log_predictions", "targets"), where=where, reduction=reduction, axis=axis
    )
    ctx = ctx.enforce(js_divergence, dict(log_targets=log_targets), targets=t)
    p = jnp.exp(lp)
    t, log_t = _prob_and_log(t, log_targets)
    m = 0.5 * (p + t)
    pos_m = m > 0
    log_m = jnp.log(jnp.where(pos_m, m, 1.0))
    js = 0.5 * (_plogp_over_q(p, lp, log_m) + _plogp_over_q(t, log_t, log_m))
    return ctx.reduce(jnp.sum(js, axis=-1), weights=weights)


@_core.domain(predictions=_core.NONNEGATIVE, targets=_core.NONNEGATIVE)
def generalized_kl(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Generalized KL (I-)divergence between non-negative measures: ``sum_c t_c log(t_c / p_c) - t_c + p_c``.

    ``D(targets || predictions)`` for unnormalised non-negative measures (intensities, counts, spectra,
    NMF reconstructions); the elementwise term is SciPy's ``scipy.special.kl_div(t, p)``. Unlike
    :func:`kl_divergence`, both arguments are measures, not logs, and need not sum to 1; on probability
    vectors it equals the KL divergence. It is 0 exactly when ``p == t``.

    Zero targets contribute ``p_c`` (``0 log 0 = 0``) with finite gradients (there the ``t log(t/p)``
    part contributes 0 to the gradient with respect to ``t``, whose true value is ``-inf``, as in
    :func:`kl_divergence`). A zero prediction where the target is positive gives ``+inf`` (the true
    value). Negative entries are outside the domain: NaN, reported by :func:`jaxloss.checked`.

    Args:
      predictions: non-negative float ``[..., C]`` (the model's measure).
      targets: non-negative float of the same shape.
      axis: the axis summed over (static).
      weights: optional weights broadcastable to the inputs' shape without ``axis``.
      where: optional boolean mask of the same shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one divergence per measure).

    Returns:
      a scalar, or one divergence per measure for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.generalized_kl(jnp.array([[1.0, 2.0]]), jnp.array([[2.0, 0.0]]))), 4))
      2.3863
    """
    ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction, axis=axis, fill=(1.0, 1.0))
    ctx = ctx.enforce(generalized_kl, predictions=p, targets=t)
    ok = (p >= 0) & (t >= 0)
    # log p only where t > 0 (elsewhere t log(t/p) is 0), and t log t through xlogx: tiny values must not
    # reach log's second derivative (1/x^2 underflows to 0/0).
    t_safe = jnp.where(ok, t, 1.0)
    pos = (p > 0) & (t_safe > 0)
    log_p = jnp.where(pos, jnp.log(jnp.where(pos, p, 1.0)), 0.0)
    term = _core.xlogx(t_safe) - t_safe * log_p - t + p
    term = jnp.where((t_safe > 0) & ~(p > 0), jnp.inf, term)  # a positive target under a zero prediction
    return ctx.reduce(jnp.sum(term, axis=-1), weights=weights)


@_core.domain(logits=_core.when("from_logits", False, _core.PROBABILITY))
def entropy(
    logits: ArrayLike,
    *,
    axis: int = -1,
    from_logits: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Shannon entropy ``H = -sum_c q_c log q_c`` (nats) of the distribution ``q`` along ``axis``.

    ``q = softmax(logits)`` (``H = -sum softmax(x) * log_softmax(x)``, finite for logits of any size,
    including ``-inf`` for excluded classes); with ``from_logits=False`` the input is ``q`` itself
    (probabilities, not renormalised; ``0 log 0 = 0`` with a finite gradient; the gradient is that of
    ``-sum q log q`` with the ``q_c`` as free variables, not projected onto the simplex).

    As a loss term: *minimising* the entropy sharpens the distribution (entropy minimisation, e.g. for
    semi-supervised learning). For a confidence penalty (Pereyra et al., 2017) or an exploration bonus
    (entropy-regularised RL) *subtract* it: ``loss = task_loss - beta * jaxloss.entropy(logits)``.

    Args:
      logits: float ``[..., C]`` logits (probabilities when ``from_logits=False``).
      axis: the class axis (static).
      from_logits: static.
      weights: optional weights broadcastable to the shape without ``axis``.
      where: optional boolean mask of distributions.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one entropy per distribution).

    Returns:
      a scalar, or one entropy per distribution for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.entropy(jnp.zeros((1, 4)))), 4))
      1.3863
      >>> print(round(float(jaxloss.entropy(jnp.array([[0.5, 0.5, 0.0]]), from_logits=False)), 4))
      0.6931
    """
    ctx, (x,) = _core.prepare(logits, names=("logits",), where=where, reduction=reduction, axis=axis)
    ctx = ctx.enforce(entropy, dict(from_logits=from_logits), logits=x)
    if from_logits:
        log_q = jax.nn.log_softmax(x, axis=-1)
        q = jnp.exp(log_q)
        nz = q > 0
        h = -jnp.sum(jnp.where(nz, q * jnp.where(nz, log_q, 0.0), 0.0), axis=-1)
    else:
        h = -jnp.sum(_core.xlogx(x), axis=-1)
    return ctx.reduce(h, weights=weights)
