"""Contract cases for the segmentation losses ([B, H, W, C] predictions, per-example scores)."""

import numpy as np

import jaxloss
from harness import LossCase

H, W, C = 3, 3, 3


def logits_labels(rng, dtype, batch):
    return (rng.normal(size=(batch, H, W, C)) * 2).astype(dtype), rng.integers(0, C, size=(batch, H, W))


def probs_soft(rng, dtype, batch):
    p = rng.dirichlet(np.ones(C), size=(batch, H, W))
    t = rng.dirichlet(np.ones(C) * 0.5, size=(batch, H, W))
    return p.astype(dtype), t.astype(dtype)


def probs_extreme(dtype):
    p = np.zeros((2, H, W, C), dtype)
    p[..., 0] = 1.0
    p[1, 0, 0] = [0.0, 0.0, 1.0]
    t = np.zeros((2, H, W, C), dtype)
    t[..., 1] = 1.0
    return p, t


def binary(rng, dtype, batch):
    return (rng.normal(size=(batch, 4, 4, 1)) * 2).astype(dtype), rng.integers(0, 2, size=(batch, 4, 4, 1)).astype(
        dtype
    )


def labels_missing_class(rng, dtype, batch):
    x, y = logits_labels(rng, dtype, batch)
    y[0] = np.where(y[0] == 2, 0, y[0])  # class 2 absent from example 0
    return x, y


CASES = [
    LossCase("dice", jaxloss.dice, logits_labels),
    LossCase(
        "tversky",
        jaxloss.tversky,
        probs_soft,
        kwargs=dict(alpha=0.3, beta=0.7, from_logits=False),
        diff=(0, 1),
        extreme=probs_extreme,
    ),
    LossCase("jaccard", jaxloss.jaccard, binary, kwargs=dict(smooth=0.5)),
    LossCase("generalized_dice", jaxloss.generalized_dice, labels_missing_class),
]
