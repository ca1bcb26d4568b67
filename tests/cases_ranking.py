"""Contract cases for the ranking losses (jaxloss.ranking): lists of L items, one loss per list."""

import numpy as np

import jaxloss
from harness import LossCase

L = 5


def score_pairs(rng, dtype, batch):
    return rng.normal(size=(batch, 3)).astype(dtype), rng.normal(size=(batch, 3)).astype(dtype)


def lists(rng, dtype, batch):
    """Scores [batch, L] and graded labels in {0, 1, 2, 3} with ties; every list has ordered pairs."""
    y = rng.integers(0, 4, size=(batch, L))
    y[:, 0], y[:, 1] = 3, 0
    y = np.stack([rng.permutation(row) for row in y])
    return (rng.normal(size=(batch, L)) * 2).astype(dtype), y


def float_lists(rng, dtype, batch):
    s, y = lists(rng, dtype, batch)
    return s, (y / 3.0).astype(dtype)


def extreme_lists(dtype):
    s = np.array(
        [[1e4, -1e4, 0, 1e4, -1e4], [0, 0, 0, 0, 0], [1e4, 1e4, 1e4, 1e4, 1e4], [-1e4, 1e4, -1e4, 1e4, 0]], dtype
    )
    y = np.array([[0, 3, 1, 2, 0], [1, 1, 1, 1, 1], [0, 1, 2, 3, 4], [3, 0, 2, 0, 1]])
    return s, y


def extreme_float_lists(dtype):
    s, y = extreme_lists(dtype)
    return s, (y / 4.0).astype(dtype)


def extreme_pairs(dtype):
    return np.array([[1e4, -1e4, 0.0], [0.0, 5.0, -1e4]], dtype), np.array([[-1e4, 1e4, 0.0], [0.0, 5.0, 1e4]], dtype)


CASES = [
    LossCase("bpr", jaxloss.bpr, score_pairs, diff=(0, 1), extreme=extreme_pairs),
    LossCase("pairwise_logistic", jaxloss.pairwise_logistic, lists, extreme=extreme_lists),
    LossCase("pairwise_hinge", jaxloss.pairwise_hinge, lists, kwargs=dict(margin=0.5), extreme=extreme_lists),
    LossCase("ranking_softmax", jaxloss.ranking_softmax, lists, extreme=extreme_lists),
    LossCase("listmle", jaxloss.listmle, lists, extreme=extreme_lists),
]

# Float (graded) labels take the same paths; ranking_softmax's labels are differentiable.
VARIANTS = [
    LossCase("ranking_softmax", jaxloss.ranking_softmax, float_lists, diff=(0, 1), extreme=extreme_float_lists),
    LossCase("listmle", jaxloss.listmle, float_lists, extreme=extreme_lists),
]
CASES += VARIANTS
