"""Reinforcement-learning losses: policy gradient, PPO, TD / Q-learning and value regression.

Each function takes one transition or a batch of them (any leading shape) and returns a loss to
*minimise*. Shapes follow rlax's names: ``_tm1`` is time ``t - 1``, ``_t`` is time ``t``; ``A`` is the
number of actions. Every target (advantages, bootstrapped TD targets, returns, old policy or value
estimates) goes through ``jax.lax.stop_gradient`` unless ``stop_target_gradients=False``: the gradient
then flows only into the quantity being fitted, as in rlax (``stop_target_gradients`` /
``use_stop_gradient``). The regression losses use ``0.5 * e^2`` (``loss="squared"``) or the Huber loss
with threshold ``delta`` (``loss="huber"``, DQN's error clipping), which agree for ``|e| <= delta``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from jaxloss import _core
from jaxloss._typing import Array, ArrayLike, Reduction
from jaxloss.regression import huber as _huber

__all__ = ["policy_gradient", "ppo_clip", "td_error", "q_learning", "value_loss"]

_LOSSES = ("squared", "huber")


def _regression(err, loss, delta):
    """``0.5 * err^2`` or ``huber(err, delta)``, elementwise."""
    if loss == "squared":
        return 0.5 * jnp.square(err)
    return _huber(err, jnp.zeros_like(err), delta=delta, reduction="none")


def _check_loss(loss):
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of 'squared', 'huber'; got {loss!r}")


def _target(x, stop):
    return jax.lax.stop_gradient(x) if stop else x


def _same_shape(ctx, x, name, first):
    """``x`` as a float array of the loss shape (filled at masked entries), or a ``ValueError``."""
    x = _core.float_array(x, name)
    if x.shape != tuple(ctx.loss_shape):
        raise ValueError(
            f"{name} must have shape {tuple(ctx.loss_shape)} (that of {first}); got {name}.shape={x.shape}"
        )
    return ctx.fill(x.astype(ctx.dtype))


def _discount(ctx, discount_t):
    """``discount_t`` broadcast to the loss shape (a scalar discount is common), filled at masked entries."""
    d = (
        _core.float_array(discount_t, "discount_t")
        if not isinstance(discount_t, (int, float))
        else jnp.asarray(discount_t)
    )
    _core.check_broadcastable(d, ctx.loss_shape, "discount_t")
    return ctx.fill(jnp.broadcast_to(d.astype(ctx.dtype), ctx.loss_shape))


@_core.domain(actions=_core.ClassIndex(what="action"))
def policy_gradient(
    logits: ArrayLike,
    actions: ArrayLike,
    advantages: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    stop_target_gradients: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """REINFORCE policy-gradient loss (Williams, 1992): ``-log pi(a | s) * A``.

    Shapes: ``logits [..., A]``, ``actions`` int ``[...]``, ``advantages [...]``; loss ``[...]``.

    The gradient with respect to the logits is the score-function estimator ``-A * grad log pi(a | s)``.
    ``advantages`` (returns, or returns minus a baseline) are a target: stop-gradient'ed unless
    ``stop_target_gradients=False``. rlax's ``policy_gradient_loss`` is the mean of this over time.

    Args:
      logits: float ``[..., A]`` unnormalised action preferences (``log_softmax`` is applied).
      actions: int ``[...]`` the actions taken, in ``[0, A)``.
      advantages: float ``[...]``.
      axis: the action axis of ``logits`` (static).
      stop_target_gradients: static; stop the gradient into ``advantages``.
      weights: optional weights broadcastable to ``[...]`` (e.g. importance weights).
      where: optional boolean mask broadcastable to ``[...]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      a scalar, or the per-transition losses ``[...]`` for ``reduction="none"``.

    Actions out of range give NaN; :func:`jaxloss.checked` raises on them.

    References:
      Williams, "Simple statistical gradient-following algorithms for connectionist reinforcement
      learning", Machine Learning 8, 1992.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
      >>> print(round(float(jaxloss.policy_gradient(logits, jnp.array([1]), jnp.array([2.0]))), 4))  # 2 log 4
      2.7726
    """
    ctx, x, a, _ = _core.prepare_classes(
        logits,
        actions,
        axis=axis,
        where=where,
        reduction=reduction,
        names=("logits", "actions"),
        allow_probabilities=False,
    )
    adv = _target(_same_shape(ctx, advantages, "advantages", "actions"), stop_target_gradients)
    log_pi = _core.take_class(jax.nn.log_softmax(x, axis=-1), a)
    return ctx.reduce(-log_pi * adv, weights=weights)


@_core.domain(epsilon=_core.in_range(0, 1, high_open=True))
def ppo_clip(
    log_probs: ArrayLike,
    old_log_probs: ArrayLike,
    advantages: ArrayLike,
    *,
    epsilon: ArrayLike = 0.2,
    stop_target_gradients: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """PPO's clipped surrogate objective, negated (Schulman et al., 2017), elementwise:

    ``-min(r A, clip(r, 1 - epsilon, 1 + epsilon) A)``, ``r = exp(log_probs - old_log_probs)``.

    Shapes: ``log_probs``, ``old_log_probs``, ``advantages`` all ``[...]``; loss ``[...]``.

    Equivalently ``-A min(r, 1 + epsilon)`` for ``A >= 0`` and ``-A max(r, 1 - epsilon)`` for ``A < 0``;
    it is computed in that form, so the ratio is only exponentiated where it is not clipped (a clipped
    entry has zero gradient w.r.t. ``log_probs`` and never overflows). Taking log-probabilities rather
    than ratios (rlax's ``clipped_surrogate_pg_loss``) keeps small probabilities accurate.
    ``old_log_probs`` and ``advantages`` are targets: stop-gradient'ed unless
    ``stop_target_gradients=False``.

    Args:
      log_probs: float ``[...]`` log pi(a | s) under the policy being optimised.
      old_log_probs: float ``[...]`` log pi_old(a | s) of the policy that collected the data.
      advantages: float ``[...]`` advantage estimates (often normalised per batch by the caller).
      epsilon: the clipping range in ``[0, 1)``; may be traced.
      stop_target_gradients: static; stop the gradient into ``old_log_probs`` and ``advantages``.
      weights: optional weights broadcastable to ``[...]``.
      where: optional boolean mask broadcastable to ``[...]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      a scalar, or the per-transition losses ``[...]`` for ``reduction="none"``.

    References:
      Schulman, Wolski, Dhariwal, Radford and Klimov, "Proximal Policy Optimization Algorithms", 2017.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> lp, old = jnp.log(jnp.array([0.6, 0.6])), jnp.log(jnp.array([0.4, 0.4]))   # r = 1.5
      >>> loss = jaxloss.ppo_clip(lp, old, jnp.array([1.0, -1.0]), reduction="none")
      >>> print([round(float(v), 4) for v in loss])   # A > 0: clipped at 1.2; A < 0: unclipped
      [-1.2, 1.5]
    """
    ctx, (lp, old, adv) = _core.prepare(
        log_probs,
        old_log_probs,
        advantages,
        names=("log_probs", "old_log_probs", "advantages"),
        where=where,
        reduction=reduction,
    )
    ctx = ctx.enforce(ppo_clip, epsilon=epsilon)
    old, adv = _target(old, stop_target_gradients), _target(adv, stop_target_gradients)
    eps = ctx.cast(epsilon)
    log_r = lp - old
    positive = adv >= 0
    unclipped = jnp.where(positive, log_r < jnp.log1p(eps), log_r > jnp.log1p(-eps))
    ratio = jnp.exp(jnp.where(unclipped, log_r, 0.0))
    factor = jnp.where(unclipped, ratio, jnp.where(positive, 1.0 + eps, 1.0 - eps))
    return ctx.reduce(-factor * adv, weights=weights)


@_core.domain(discount_t=_core.PROBABILITY, delta=_core.POSITIVE)
def td_error(
    v_tm1: ArrayLike,
    r_t: ArrayLike,
    discount_t: ArrayLike,
    v_t: ArrayLike,
    *,
    loss: Literal["squared", "huber"] = "squared",
    delta: ArrayLike = 1.0,
    stop_target_gradients: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """TD(0) state-value loss: the squared or Huber TD error ``r_t + discount_t * v_t - v_tm1``.

    Shapes: ``v_tm1``, ``r_t``, ``v_t`` all ``[...]``; ``discount_t`` broadcastable to ``[...]`` (a scalar
    gamma, or ``gamma * (1 - done)`` per transition); loss ``[...]``.

    The TD target ``r_t + discount_t * v_t`` is stop-gradient'ed unless ``stop_target_gradients=False``
    (semi-gradient TD, rlax's ``td_learning``). For action values see :func:`q_learning`. The loss is
    ``0.5 * delta_t^2`` (``loss="squared"``) or ``huber(delta_t, delta)``; its gradient with respect to
    ``v_tm1`` is ``-delta_t`` (clipped to ``[-delta, delta]`` for Huber).

    Args:
      v_tm1: float ``[...]`` value estimates of the states at ``t - 1`` (being fitted).
      r_t: float ``[...]`` rewards.
      discount_t: float, broadcastable to ``[...]``: discounts (0 at episode ends).
      v_t: float ``[...]`` bootstrap values of the next states (e.g. from a target network).
      loss: ``"squared"`` or ``"huber"`` (static).
      delta: the Huber threshold (> 0); may be traced.
      stop_target_gradients: static; stop the gradient into the TD target.
      weights: optional weights broadcastable to ``[...]`` (e.g. prioritised-replay importance weights).
      where: optional boolean mask broadcastable to ``[...]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      a scalar, or the per-transition losses ``[...]`` for ``reduction="none"``.

    References:
      Sutton, "Learning to predict by the methods of temporal differences", Machine Learning 3, 1988.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> # target 1 + 0.9 * 2 = 2.8, error 2.8 - 2 = 0.8: 0.5 * 0.8^2
      >>> print(round(float(jaxloss.td_error(jnp.array([2.0]), jnp.array([1.0]), 0.9, jnp.array([2.0]))), 4))
      0.32
    """
    _check_loss(loss)
    ctx, (v, r, v_next) = _core.prepare(
        v_tm1, r_t, v_t, names=("v_tm1", "r_t", "v_t"), where=where, reduction=reduction
    )
    discount = _discount(ctx, discount_t)
    ctx = ctx.enforce(td_error, discount_t=discount, delta=delta)
    target = _target(r + discount * v_next, stop_target_gradients)
    return ctx.reduce(_regression(target - v, loss, ctx.cast(delta)), weights=weights)


@_core.domain(a_tm1=_core.ClassIndex(what="action"), discount_t=_core.PROBABILITY, delta=_core.POSITIVE)
def q_learning(
    q_tm1: ArrayLike,
    a_tm1: ArrayLike,
    r_t: ArrayLike,
    discount_t: ArrayLike,
    q_t: ArrayLike,
    *,
    loss: Literal["squared", "huber"] = "squared",
    delta: ArrayLike = 1.0,
    stop_target_gradients: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Q-learning loss (Watkins, 1989; DQN, Mnih et al., 2015) on the TD error

    ``r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]``.

    Shapes: ``q_tm1 [..., A]``, ``a_tm1`` int ``[...]``, ``r_t [...]``, ``discount_t`` broadcastable to
    ``[...]``, ``q_t [..., A]``; loss ``[...]``.

    The target ``r_t + discount_t * max_a q_t[a]`` is stop-gradient'ed unless
    ``stop_target_gradients=False`` (rlax's ``q_learning``). With ``loss="huber", delta=1`` this is DQN's
    loss (its "error clipping" to ``[-1, 1]`` is the gradient of the Huber loss); pass the target network's
    values as ``q_t``. For state values see :func:`td_error`.

    Args:
      q_tm1: float ``[..., A]`` action values at ``t - 1`` (being fitted).
      a_tm1: int ``[...]`` the actions taken at ``t - 1``, in ``[0, A)``.
      r_t: float ``[...]`` rewards.
      discount_t: float, broadcastable to ``[...]``: discounts (0 at episode ends).
      q_t: float ``[..., A]`` action values at ``t`` (target network).
      loss: ``"squared"`` (``0.5 e^2``) or ``"huber"`` (static).
      delta: the Huber threshold (> 0); may be traced.
      stop_target_gradients: static; stop the gradient into the target.
      weights: optional weights broadcastable to ``[...]``.
      where: optional boolean mask broadcastable to ``[...]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      a scalar, or the per-transition losses ``[...]`` for ``reduction="none"``.

    Actions out of range give NaN; :func:`jaxloss.checked` raises on them.

    References:
      Watkins, "Learning from Delayed Rewards", PhD thesis, Cambridge, 1989.
      Mnih et al., "Human-level control through deep reinforcement learning", Nature 518, 2015.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> q_tm1, q_t = jnp.array([[1.0, 3.0]]), jnp.array([[0.0, 2.0]])
      >>> # target 1 + 0.5 * 2 = 2, error 2 - 3 = -1: 0.5 * 1^2
      >>> print(jaxloss.q_learning(q_tm1, jnp.array([1]), jnp.array([1.0]), jnp.array([0.5]), q_t))
      0.5
    """
    _check_loss(loss)
    ctx, q, a, _ = _core.prepare_classes(
        q_tm1, a_tm1, axis=-1, where=where, reduction=reduction, names=("q_tm1", "a_tm1"), allow_probabilities=False
    )
    r = _same_shape(ctx, r_t, "r_t", "a_tm1")
    q_next = _core.float_array(q_t, "q_t")
    if q_next.shape != q.shape:
        raise ValueError(f"q_t must have the shape of q_tm1; got q_tm1.shape={q.shape} and q_t.shape={q_next.shape}")
    q_next = ctx.fill(q_next.astype(ctx.dtype))
    discount = _discount(ctx, discount_t)
    ctx = ctx.enforce(q_learning, discount_t=discount, delta=delta)
    target = _target(r + discount * jnp.max(q_next, axis=-1), stop_target_gradients)
    return ctx.reduce(_regression(target - _core.take_class(q, a), loss, ctx.cast(delta)), weights=weights)


@_core.domain(delta=_core.POSITIVE, clip_epsilon=_core.NONNEGATIVE)
def value_loss(
    values: ArrayLike,
    returns: ArrayLike,
    *,
    loss: Literal["squared", "huber"] = "squared",
    delta: ArrayLike = 1.0,
    clip_epsilon: ArrayLike | None = None,
    old_values: ArrayLike | None = None,
    stop_target_gradients: bool = True,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Value-function regression to returns, optionally with PPO-style value clipping.

    Shapes: ``values``, ``returns`` (and ``old_values``) all ``[...]``; loss ``[...]``.

    Without clipping: ``l(values - returns)`` with ``l(e) = 0.5 e^2`` (``loss="squared"``) or
    ``huber(e, delta)``. With ``clip_epsilon`` (``old_values`` required), the pessimistic clipped form of
    OpenAI Baselines' PPO2: ``max(l(v - R), l(v_clip - R))`` with
    ``v_clip = old_values + clip(v - old_values, -clip_epsilon, clip_epsilon)``.

    ``returns`` and ``old_values`` are targets: stop-gradient'ed unless ``stop_target_gradients=False``.

    Args:
      values: float ``[...]`` predicted values (being fitted).
      returns: float ``[...]`` value targets (Monte-Carlo or GAE returns).
      loss: ``"squared"`` or ``"huber"`` (static).
      delta: the Huber threshold (> 0); may be traced.
      clip_epsilon: ``None`` (no clipping) or the clipping range (>= 0); may be traced.
      old_values: float ``[...]`` the values predicted when the data was collected; required with
        ``clip_epsilon`` and only used then.
      stop_target_gradients: static; stop the gradient into ``returns`` and ``old_values``.
      weights: optional weights broadcastable to ``[...]``.
      where: optional boolean mask broadcastable to ``[...]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      a scalar, or the per-element losses ``[...]`` for ``reduction="none"``.

    Raises:
      ValueError: ``clip_epsilon`` without ``old_values`` or the reverse; shapes that differ.

    References:
      Schulman et al., "Proximal Policy Optimization Algorithms", 2017; value clipping as in OpenAI
      Baselines' PPO2 (Dhariwal et al., 2017), studied by Andrychowicz et al., "What Matters in On-Policy
      Reinforcement Learning?", 2021.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> v, ret, old = jnp.array([2.0]), jnp.array([0.0]), jnp.array([1.0])
      >>> print(jaxloss.value_loss(v, ret))   # 0.5 * 2^2
      2.0
      >>> print(jaxloss.value_loss(v, ret, clip_epsilon=0.5, old_values=old))   # max(2, 0.5 * 1.5^2)
      2.0
    """
    _check_loss(loss)
    if (clip_epsilon is None) != (old_values is None):
        raise ValueError("value clipping needs both clip_epsilon and old_values (give both or neither)")
    arrays = (values, returns) if old_values is None else (values, returns, old_values)
    names = ("values", "returns", "old_values")[: len(arrays)]
    ctx, xs = _core.prepare(*arrays, names=names, where=where, reduction=reduction)
    ctx = ctx.enforce(value_loss, delta=delta, clip_epsilon=clip_epsilon)
    v, ret = xs[0], _target(xs[1], stop_target_gradients)
    d = ctx.cast(delta)
    out = _regression(v - ret, loss, d)
    if clip_epsilon is not None:
        old = _target(xs[2], stop_target_gradients)
        eps = ctx.cast(clip_epsilon)
        v_clip = old + jnp.clip(v - old, -eps, eps)
        out = jnp.maximum(out, _regression(v_clip - ret, loss, d))
    return ctx.reduce(out, weights=weights)
