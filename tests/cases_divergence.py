"""Contract cases for the divergences."""

import numpy as np

import jaxloss
from harness import LossCase

C = 4


def dists(rng, dtype, batch):
    x = rng.normal(size=(batch, C))
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    t = rng.dirichlet(np.ones(C), size=batch)
    t[0, 1] = 0.0  # a zero target
    t /= t.sum(-1, keepdims=True)
    return lp.astype(dtype), t.astype(dtype)


def extreme(dtype):
    lp = np.array([[0.0, -np.inf, -np.inf, -np.inf], [-1e4, -1e4, 0.0, -1e4]], dtype)
    t = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype)
    return lp, t


CASES = [
    LossCase("kl_divergence", jaxloss.kl_divergence, dists, diff=(0, 1), extreme=extreme),
    LossCase("js_divergence", jaxloss.js_divergence, dists, diff=(0, 1), extreme=extreme),
]


# --- issue 3: generalized KL and entropy ----------------------------------------------------------------


def measures(rng, dtype, batch):
    p = rng.gamma(2.0, 1.0, size=(batch, C))
    t = rng.gamma(2.0, 1.0, size=(batch, C))
    t[0, 1] = 0.0  # a zero target
    return p.astype(dtype), t.astype(dtype)


def extreme_measures(dtype):
    p = np.array([[1e-30, 1e4, 1.0, 0.0], [1e4, 1e-30, 1e-30, 1e4]], dtype)
    t = np.array([[1e4, 0.0, 0.0, 0.0], [1e-30, 1e4, 0.0, 1e4]], dtype)
    return p, t


def hessian_extreme_measures(dtype):
    """Extreme measures whose true Hessian (t / p^2) fits float32: p >= 1e-12 where t > 0."""
    p = np.array([[1e-12, 1e4, 1.0, 0.0], [1e4, 1e-12, 1e-30, 1e4]], dtype)
    t = np.array([[1e4, 0.0, 0.0, 0.0], [1e-30, 1e4, 0.0, 1e4]], dtype)
    return p, t


def logits_only(rng, dtype, batch):
    return ((rng.normal(size=(batch, C)) * 2).astype(dtype),)


def probs_only(rng, dtype, batch):
    q = rng.dirichlet(np.ones(C), size=batch)
    q[0] = [0.0, 0.3, 0.7, 0.0]  # zero probabilities
    return (q.astype(dtype),)


def extreme_entropy_logits(dtype):
    return (np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, 1e4, 1e4], [0.0, -np.inf, -np.inf, 3.0]], dtype),)


def extreme_entropy_probs(dtype):
    return (np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [1e-30, 0.0, 1.0, 0.0]], dtype),)


CASES += [
    LossCase(
        "generalized_kl",
        jaxloss.generalized_kl,
        measures,
        diff=(0, 1),
        extreme=extreme_measures,
        hessian_extreme=hessian_extreme_measures,
    ),
    LossCase("entropy", jaxloss.entropy, logits_only, extreme=extreme_entropy_logits, shape_error=False),
    LossCase(
        "entropy",
        jaxloss.entropy,
        probs_only,
        kwargs=dict(from_logits=False),
        extreme=extreme_entropy_probs,
        shape_error=False,
    ),
]
