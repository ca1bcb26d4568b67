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
