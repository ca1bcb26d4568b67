"""Contract cases for the metric-learning losses (jaxloss.embedding).

The batch losses (ntxent, circle) couple the embeddings of a group, so their inputs carry a leading axis
of independent groups: embeddings ``[G, N, D]`` with labels ``[G, N]``. vmap, where and slicing act on G.
"""

import numpy as np

import jaxloss
from harness import LossCase

D = 4
N = 6  # embeddings per group of the batch losses


def pair(rng, dtype, batch):
    return rng.normal(size=(batch, D)).astype(dtype), rng.normal(size=(batch, D)).astype(dtype)


def pair_signed(rng, dtype, batch):
    x1, x2 = pair(rng, dtype, batch)
    return x1, x2, rng.choice([-1, 1], size=batch)


def pair_binary(rng, dtype, batch):
    x1, x2 = pair(rng, dtype, batch)
    return x1, x2, rng.integers(0, 2, size=batch).astype(dtype)


def scores_signed(rng, dtype, batch):
    return (
        rng.normal(size=(batch, 3)).astype(dtype),
        rng.normal(size=(batch, 3)).astype(dtype),
        rng.choice([-1.0, 1.0], size=(batch, 3)).astype(dtype),
    )


def distances_signed(rng, dtype, batch):
    return rng.uniform(0.0, 2.0, size=(batch, 3)).astype(dtype), rng.choice([-1, 1], size=(batch, 3))


def triplets(rng, dtype, batch):
    return tuple(rng.normal(size=(batch, D)).astype(dtype) for _ in range(3))


def group_labels(rng, batch):
    """Each group: 3 classes of 2 (every embedding has a positive and a negative), shuffled."""
    return np.stack([rng.permutation(np.repeat(np.arange(3), 2)) for _ in range(batch)])


def groups(rng, dtype, batch):
    return rng.normal(size=(batch, N, 3)).astype(dtype), group_labels(rng, batch)


def unit_groups(rng, dtype, batch):
    e = rng.normal(size=(batch, N, 3))
    return (e / np.linalg.norm(e, axis=-1, keepdims=True)).astype(dtype), group_labels(rng, batch)


def extreme_pairs(dtype):
    x1 = np.array([[0, 0, 0, 0], [1e4, -1e4, 0, 1], [0, 0, 0, 0], [1e-30, 0, 0, 0]], dtype)
    x2 = np.array([[1, 2, 3, 4], [1e-4, 1e4, -1e4, 0], [0, 0, 0, 0], [1e4, 1e4, 0, 0]], dtype)
    return x1, x2


def hessian_extreme_pairs(dtype):
    """extreme_pairs without the 1e-30 vector, where the cosine's true Hessian (~1 / |x|^2) overflows float32."""
    x1, x2 = extreme_pairs(dtype)
    return x1[:3], x2[:3]


def extreme_pairs_signed(dtype):
    return (*extreme_pairs(dtype), np.array([1, -1, 1, -1]))


def extreme_pairs_binary(dtype):
    x1, x2 = extreme_pairs(dtype)
    x2[3] = x1[3]  # distance exactly 0, similar and dissimilar
    x1 = np.concatenate([x1, x1[3:]])
    x2 = np.concatenate([x2, x2[3:]])
    return x1, x2, np.array([1, 0, 1, 0, 1], dtype)


def extreme_triplets(dtype):
    a = np.array([[0, 0, 0, 0], [1e4, -1e4, 0, 1], [1, 2, 3, 4]], dtype)
    p = np.array([[0, 0, 0, 0], [-1e4, 1e4, 0, 0], [1, 2, 3, 4]], dtype)  # d(a, p) = 0 with eps = 0
    n = np.array([[0, 0, 0, 0], [1e4, -1e4, 0, 1], [0, 0, 0, 0]], dtype)
    return a, p, n


def extreme_groups(dtype):
    e = np.zeros((2, N, 3), dtype)
    e[0, 1] = [1e4, -1e4, 0]
    e[0, 2] = [1e4, -1e4, 0]
    e[1] = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0], [0, 0, -1]], dtype) * 1e4
    return e, np.array([[0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 2, 2]])


CASES = [
    LossCase(
        "cosine_similarity",
        jaxloss.cosine_similarity,
        pair,
        diff=(0, 1),
        extreme=extreme_pairs,
        hessian_extreme=hessian_extreme_pairs,
    ),
    LossCase(
        "cosine_distance",
        jaxloss.cosine_distance,
        pair,
        diff=(0, 1),
        extreme=extreme_pairs,
        hessian_extreme=hessian_extreme_pairs,
    ),
    LossCase(
        "cosine_embedding",
        jaxloss.cosine_embedding,
        pair_signed,
        kwargs=dict(margin=0.1),
        diff=(0, 1),
        extreme=extreme_pairs_signed,
        hessian_extreme=lambda d: (*hessian_extreme_pairs(d), np.array([1, -1, 1])),
    ),
    LossCase("margin_ranking", jaxloss.margin_ranking, scores_signed, kwargs=dict(margin=0.3), diff=(0, 1)),
    LossCase("hinge_embedding", jaxloss.hinge_embedding, distances_signed, kwargs=dict(margin=1.2)),
    LossCase(
        "triplet_margin",
        jaxloss.triplet_margin,
        triplets,
        kwargs=dict(margin=0.8, eps=0.0),
        diff=(0, 1, 2),
        extreme=extreme_triplets,
    ),
    LossCase(
        "contrastive",
        jaxloss.contrastive,
        pair_binary,
        kwargs=dict(margin=2.0),
        diff=(0, 1),
        extreme=extreme_pairs_binary,
    ),
    LossCase("ntxent", jaxloss.ntxent, groups, kwargs=dict(temperature=0.5), extreme=extreme_groups),
    LossCase("circle", jaxloss.circle, unit_groups, kwargs=dict(gamma=16.0, margin=0.25), extreme=extreme_groups),
]

# Variants that take other code paths: other norm degrees and the distance swap; Keras' default scale.
VARIANTS = [
    LossCase(
        "triplet_margin",
        jaxloss.triplet_margin,
        triplets,
        kwargs=dict(p=1.0, swap=True),
        diff=(0, 1, 2),
        extreme=extreme_triplets,
    ),
    LossCase(
        "triplet_margin",
        jaxloss.triplet_margin,
        triplets,
        kwargs=dict(p=3.0, margin=2.0),
        diff=(0, 1, 2),
        extreme=extreme_triplets,
    ),
    LossCase("circle", jaxloss.circle, unit_groups, kwargs=dict(remove_diagonal=False), extreme=extreme_groups),
]
CASES += VARIANTS
