"""Contract cases for the reinforcement-learning losses (a batch of transitions)."""

import numpy as np

import jaxloss
from harness import LossCase

A = 4


def pg(rng, dtype, batch):
    return (
        (rng.normal(size=(batch, A)) * 2).astype(dtype),
        rng.integers(0, A, size=batch),
        rng.normal(size=batch).astype(dtype),
    )


def pg_extreme(dtype):
    return (
        np.array([[1e4, -1e4, 0.0, 0.0], [-1e4, 1e4, 1e4, 0.0]], dtype),
        np.array([1, 3]),
        np.array([1e4, -1e4], dtype),
    )


def ppo(rng, dtype, batch):
    lp = np.log(rng.uniform(0.05, 1.0, size=batch))
    old = lp + rng.uniform(-0.5, 0.5, size=batch)
    return lp.astype(dtype), old.astype(dtype), rng.normal(size=batch).astype(dtype)


def ppo_extreme(dtype):
    lp = np.array([0.0, -1e4, -30.0, 0.0], dtype)
    old = np.array([-5.0, -1e-3, -1e4, -1e-7], dtype)
    return lp, old, np.array([-1e4, 1e4, 1.0, 1e4], dtype)  # entry 2: r = e^9970, clipped without overflow


def td(rng, dtype, batch):
    v = lambda: rng.normal(size=(batch, 2)).astype(dtype)
    return v(), v(), rng.uniform(0.0, 1.0, size=(batch, 2)).astype(dtype), v()


def q(rng, dtype, batch):
    return (
        rng.normal(size=(batch, A)).astype(dtype),
        rng.integers(0, A, size=batch),
        rng.normal(size=batch).astype(dtype),
        rng.uniform(0.0, 1.0, size=batch).astype(dtype),
        rng.normal(size=(batch, A)).astype(dtype),
    )


def td_extreme(dtype):
    """Values and rewards at +-1e4 with discounts at the ends of their domain [0, 1] (scaling the discount by
    1e4, the generic extreme input, would leave the domain)."""
    v, r, _, v2 = td(np.random.default_rng(3), dtype, 5)
    return v * 1e4, r * 1e4, np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.5], [0.5, 0.0]], dtype), v2 * 1e4


def q_extreme(dtype):
    """Q-values and rewards at +-1e4 with discounts at the ends of [0, 1]."""
    q_tm1, a, r, _, q_t = q(np.random.default_rng(3), dtype, 5)
    return q_tm1 * 1e4, a, r * 1e4, np.array([0.0, 1.0, 1.0, 0.0, 0.5], dtype), q_t * 1e4


def values(rng, dtype, batch):
    return rng.normal(size=(batch, 3)).astype(dtype) * 2, rng.normal(size=(batch, 3)).astype(dtype) * 2


NO_STOP = dict(stop_target_gradients=False)

CASES = [
    LossCase("policy_gradient", jaxloss.policy_gradient, pg, extreme=pg_extreme),
    LossCase("ppo_clip", jaxloss.ppo_clip, ppo, kwargs=dict(epsilon=0.2), extreme=ppo_extreme),
    LossCase("td_error", jaxloss.td_error, td),
    LossCase("q_learning", jaxloss.q_learning, q),
    LossCase("value_loss", jaxloss.value_loss, values),
]

# Gradients through the targets (stop_target_gradients=False) and the Huber variants.
VARIANTS = [
    LossCase("policy_gradient", jaxloss.policy_gradient, pg, kwargs=NO_STOP, diff=(0, 2), extreme=pg_extreme),
    LossCase(
        "ppo_clip", jaxloss.ppo_clip, ppo, kwargs=dict(epsilon=0.3, **NO_STOP), diff=(0, 1, 2), extreme=ppo_extreme
    ),
    LossCase(
        "td_error",
        jaxloss.td_error,
        td,
        kwargs=dict(loss="huber", delta=0.5, **NO_STOP),
        diff=(0, 1, 2, 3),
        extreme=td_extreme,
    ),
    LossCase(
        "q_learning", jaxloss.q_learning, q, kwargs=dict(loss="huber", **NO_STOP), diff=(0, 2, 3, 4), extreme=q_extreme
    ),
    LossCase("value_loss", jaxloss.value_loss, values, kwargs=dict(loss="huber", delta=0.7, **NO_STOP), diff=(0, 1)),
]
CASES += VARIANTS
