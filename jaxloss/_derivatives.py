"""Closed-form derivative rules for the elementwise formulas of hot losses (design section 12).

Each rule is a ``jax.custom_jvp`` of the elementwise formula only (before ``LossContext.reduce``), whose
tangent is written in closed form and is linear in the input tangents, so JAX transposes it for reverse
mode, and differentiating the tangent rule again gives the plain formula's second derivatives. Every
argument (including hyperparameters such as ``delta``) is differentiable. XLA:CPU fuses the written-out
derivative into fewer passes than the derivative of the generic formula; ``benchmarks/derivatives.py``
measures each rule against the plain formula, and a rule is kept only where it is faster.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

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
