"""Closed-form derivative rules for the elementwise formulas of hot losses (design section 12).

Each rule is a ``jax.custom_jvp`` of the elementwise formula only (before ``LossContext.reduce``), whose
tangent is written in closed form and is linear in the input tangents, so JAX transposes it for reverse
mode, and differentiating the tangent rule again gives the plain formula's second derivatives. Every
argument (including hyperparameters such as ``delta``) is differentiable. XLA:CPU fuses the written-out
derivative into fewer passes than the derivative of the generic formula; ``benchmarks/derivatives.py``
measures each rule against the plain formula, and a rule is kept only where it is faster.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array

_LN2 = math.log(2.0)


@jax.custom_jvp
def huber_elementwise(e: Array, delta: Array) -> Array:
    """``0.5 q^2 + delta (|e| - q)`` with ``q = min(|e|, delta)``; derivatives ``clip(e, -delta, delta)``
    (in ``e``) and ``|e| - q`` (in ``delta``)."""
    abs_err = jnp.abs(e)
    quad = jnp.minimum(abs_err, delta)
    return 0.5 * quad * quad + delta * (abs_err - quad)


@huber_elementwise.defjvp
def _huber_jvp(primals, tangents):
    e, delta = primals
    de, ddelta = tangents
    abs_err = jnp.abs(e)
    quad = jnp.minimum(abs_err, delta)
    out = 0.5 * quad * quad + delta * (abs_err - quad)
    return out, jnp.clip(e, -delta, delta) * de + (abs_err - quad) * ddelta


@jax.custom_jvp
def log_cosh_elementwise(e: Array) -> Array:
    """``|e| + log1p(exp(-2|e|)) - log 2`` (= ``log cosh e``, no overflow); derivative ``tanh(e)``."""
    a = jnp.abs(e)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - _LN2


@log_cosh_elementwise.defjvp
def _log_cosh_jvp(primals, tangents):
    (e,), (de,) = primals, tangents
    return log_cosh_elementwise(e), jnp.tanh(e) * de


@jax.custom_jvp
def bce_logits_elementwise(x: Array, y: Array) -> Array:
    """``-(y log_sigmoid(x) + (1 - y) log_sigmoid(-x)) = max(x, 0) - x y + log1p(exp(-|x|))`` (one ``exp`` and
    one ``log1p``); derivatives ``sigmoid(x) - y`` (in ``x``) and ``-x`` (in ``y``)."""
    return jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))


@bce_logits_elementwise.defjvp
def _bce_jvp(primals, tangents):
    x, y = primals
    dx, dy = tangents
    return bce_logits_elementwise(x, y), (jax.nn.sigmoid(x) - y) * dx - x * dy


def _focal_parts(x: Array, y: Array, recompute: bool = False):
    """``ce = bce(x, y)``, ``sigmoid(x)``, ``sigmoid(-x)`` and ``m = 1 - p_t = y sigmoid(-x) + (1 - y) sigmoid(x)``,
    all from one ``exp(-|x|)`` (both sigmoids without cancellation).

    ``recompute``: the same values from an expression XLA does not merge with the plain one (``min(x, -x)``
    for ``-|x|``), so that the tangent pass recomputes them instead of sharing ``exp``/``log1p``/divide
    results with the value pass, which XLA:CPU would write to memory (it does not duplicate expensive ops
    into two fusions): focal ``value_and_grad`` at 2^22, 7 fusions and 32 MiB of temporaries otherwise."""
    u = jnp.exp(jnp.minimum(x, -x) if recompute else -jnp.abs(x))
    big = 1.0 / (1.0 + u)  # sigmoid(|x|)
    small = u * big  # sigmoid(-|x|)
    pos = x >= 0
    s = jnp.where(pos, big, small)
    s_neg = jnp.where(pos, small, big)
    ce = jnp.maximum(x, 0.0) - x * y + jnp.log1p(u)
    return ce, s, s_neg, y * s_neg + (1.0 - y) * s


@jax.custom_jvp
def focal_elementwise(x: Array, y: Array, gamma: Array) -> Array:
    """``bce(x, y) * m^gamma`` with ``m = y sigmoid(-x) + (1 - y) sigmoid(x)`` (the sigmoid focal loss without
    ``alpha``); the power is :func:`jaxloss._core.safe_pow`. Tangent: ``(sigmoid(x) - y) m^gamma dx - x m^gamma dy``
    plus ``ce`` times the tangent of the power at ``dm = (1 - 2y) s (1 - s) dx + (1 - 2s) dy`` (and ``dgamma``)."""
    ce, _, _, m = _focal_parts(x, y)
    return ce * _core.safe_pow(m, gamma)


@focal_elementwise.defjvp
def _focal_jvp(primals, tangents):
    x, y, gamma = primals
    dx, dy, dgamma = tangents
    ce, s, s_neg, m = _focal_parts(x, y, recompute=True)
    dm = (1.0 - 2.0 * y) * (s * s_neg) * dx + (s_neg - s) * dy
    pw, d_pw = jax.jvp(_core.safe_pow, (m, gamma), (dm, dgamma))
    return focal_elementwise(x, y, gamma), ((s - y) * dx - x * dy) * pw + ce * d_pw


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def focal_elementwise_int(x: Array, y: Array, gamma: int) -> Array:
    """:func:`focal_elementwise` for a concrete integer ``gamma >= 0`` (optax's default 2): ``m^gamma`` as
    products, not ``exp(gamma log m)``; derivatives those of the integer power."""
    ce, _, _, m = _focal_parts(x, y)
    return ce * m**gamma


@focal_elementwise_int.defjvp
def _focal_int_jvp(gamma, primals, tangents):
    x, y = primals
    dx, dy = tangents
    ce, s, s_neg, m = _focal_parts(x, y, recompute=True)
    dm = (1.0 - 2.0 * y) * (s * s_neg) * dx + (s_neg - s) * dy
    pw = m**gamma
    d_pw = gamma * m ** (gamma - 1) * dm if gamma > 0 else jnp.zeros_like(dm)
    return focal_elementwise_int(x, y, gamma), ((s - y) * dx - x * dy) * pw + ce * d_pw


@jax.custom_jvp
def softplus_elementwise(z: Array) -> Array:
    """``log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))`` (one ``exp`` and one ``log1p``); derivative
    ``sigmoid(z)`` (the generic derivative of ``jax.nn.softplus``, a ``logaddexp``, costs two passes more)."""
    return jnp.maximum(z, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(z)))


@softplus_elementwise.defjvp
def _softplus_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    return softplus_elementwise(z), jax.nn.sigmoid(z) * dz
