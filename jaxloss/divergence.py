"""Divergences between distributions over a class axis (``axis=-1`` by default).

``reduction="none"`` returns one divergence per distribution; ``"mean"`` is the mean over distributions,
i.e. the true per-example divergence (PyTorch's ``reduction="batchmean"``, not its element mean).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxloss import _core

__all__ = ["kl_divergence", "js_divergence"]

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


def kl_divergence(log_predictions, targets, *, log_targets=False, axis=-1, weights=None, where=None, reduction="mean"):
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
    t, log_t = _prob_and_log(t, log_targets)
    return ctx.reduce(jnp.sum(_plogp_over_q(t, log_t, lp), axis=-1), weights=weights)


def js_divergence(log_predictions, targets, *, log_targets=False, axis=-1, weights=None, where=None, reduction="mean"):
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
    p = jnp.exp(lp)
    t, log_t = _prob_and_log(t, log_targets)
    m = 0.5 * (p + t)
    pos_m = m > 0
    log_m = jnp.log(jnp.where(pos_m, m, 1.0))
    js = 0.5 * (_plogp_over_q(p, lp, log_m) + _plogp_over_q(t, log_t, log_m))
    return ctx.reduce(jnp.sum(js, axis=-1), weights=weights)
