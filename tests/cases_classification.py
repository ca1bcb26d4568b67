"""Contract cases for the classification losses."""

import numpy as np

import jaxloss
from harness import LossCase

C = 4


def int_labels(rng, dtype, batch):
    return rng.normal(size=(batch, C)).astype(dtype) * 2, rng.integers(0, C, size=batch)


def prob_targets(rng, dtype, batch):
    t = rng.dirichlet(np.ones(C), size=batch).astype(dtype)
    return rng.normal(size=(batch, C)).astype(dtype) * 2, t


def log_probs(rng, dtype, batch):
    x = rng.normal(size=(batch, C))
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    return lp.astype(dtype), rng.integers(0, C, size=batch)


def binary(rng, dtype, batch):
    return rng.normal(size=(batch, 3)).astype(dtype) * 2, rng.integers(0, 2, size=(batch, 3)).astype(dtype)


def binary_probs(rng, dtype, batch):
    return rng.uniform(0.02, 0.98, size=(batch, 3)).astype(dtype), rng.integers(0, 2, size=(batch, 3)).astype(dtype)


def signed(rng, dtype, batch):
    return rng.normal(size=(batch, 3)).astype(dtype) * 2, rng.choice([-1.0, 1.0], size=(batch, 3)).astype(dtype)


def extreme_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, 1e4, 1e4], [0.0, 0.0, 0.0, 0.0]], dtype)
    return x, np.array([1, 0, 3])


def extreme_probs(dtype):
    return np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0]], dtype), np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype)


def extreme_binary(dtype):
    return np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype), np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]], dtype)


def extreme_log_probs(dtype):
    return np.array([[0.0, -np.inf, -np.inf, -np.inf], [-1e4, 0.0, -1e4, -1e4]], dtype), np.array([0, 1])


def extreme_soft(dtype):
    x = np.array([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, 1e4, 1e4]], dtype)
    return x, np.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]], dtype)


CASES = [
    LossCase(
        "cross_entropy", jaxloss.cross_entropy, int_labels, kwargs=dict(label_smoothing=0.1), extreme=extreme_logits
    ),
    LossCase("nll", jaxloss.nll, log_probs, extreme=extreme_log_probs),
    LossCase(
        "binary_cross_entropy",
        jaxloss.binary_cross_entropy,
        binary,
        kwargs=dict(pos_weight=2.0),
        diff=(0, 1),
        extreme=extreme_binary,
    ),
    LossCase("focal", jaxloss.focal, binary, kwargs=dict(alpha=0.25, gamma=2.0), diff=(0, 1), extreme=extreme_binary),
    LossCase(
        "multiclass_focal",
        jaxloss.multiclass_focal,
        prob_targets,
        kwargs=dict(gamma=2.0),
        diff=(0, 1),
        extreme=extreme_soft,
    ),
    LossCase("hinge", jaxloss.hinge, signed),
    LossCase("squared_hinge", jaxloss.squared_hinge, signed),
    LossCase("multiclass_hinge", jaxloss.multiclass_hinge, int_labels, extreme=extreme_logits),
    LossCase("multi_margin", jaxloss.multi_margin, int_labels, kwargs=dict(p=2, margin=0.5), extreme=extreme_logits),
]

# Variants that take other code paths: probability targets, probabilities in.
VARIANTS = [
    LossCase(
        "cross_entropy",
        jaxloss.cross_entropy,
        prob_targets,
        kwargs=dict(label_smoothing=0.1),
        diff=(0, 1),
        extreme=extreme_soft,
    ),
    LossCase(
        "binary_cross_entropy",
        jaxloss.binary_cross_entropy,
        binary_probs,
        kwargs=dict(from_logits=False),
        diff=(0, 1),
        extreme=extreme_probs,
        bf16_rtol=5e-2,
    ),
    LossCase("multiclass_focal", jaxloss.multiclass_focal, int_labels, kwargs=dict(gamma=0.5), extreme=extreme_logits),
]
CASES += VARIANTS


# --- the wider catalog (tests/test_classification_more.py holds their reference tests) -------------------


def multilabel_targets(rng, dtype, batch):
    """Scores ``[batch, C]`` and PyTorch-style labels: a few distinct target indices, then -1 padding."""
    labels = np.full((batch, C), -1, np.int64)
    for i in range(batch):
        k = rng.integers(0, C + 1)
        labels[i, :k] = rng.permutation(C)[:k]
    return rng.normal(size=(batch, C)).astype(dtype) * 2, labels


CASES += [
    LossCase("soft_margin", jaxloss.soft_margin, signed),
    LossCase(
        "multilabel_soft_margin",
        jaxloss.multilabel_soft_margin,
        binary,
        kwargs=dict(class_weights=np.array([0.5, 1.0, 2.0])),
        diff=(0, 1),
        extreme=extreme_binary,
    ),
    LossCase("multilabel_margin", jaxloss.multilabel_margin, multilabel_targets),
]

CASES += [
    LossCase("poly1", jaxloss.poly1, int_labels, kwargs=dict(epsilon=2.0), extreme=extreme_logits),
    LossCase("poly1", jaxloss.poly1, prob_targets, kwargs=dict(epsilon=-0.5), diff=(0, 1), extreme=extreme_soft),
    LossCase(
        "generalized_cross_entropy",
        jaxloss.generalized_cross_entropy,
        int_labels,
        kwargs=dict(q=0.7),
        extreme=extreme_logits,
    ),
    LossCase(
        "generalized_cross_entropy",
        jaxloss.generalized_cross_entropy,
        prob_targets,
        kwargs=dict(q=0.4),
        diff=(0, 1),
        extreme=extreme_soft,
    ),
    LossCase("categorical_hinge", jaxloss.categorical_hinge, int_labels, extreme=extreme_logits),
    LossCase("categorical_hinge", jaxloss.categorical_hinge, prob_targets, diff=(0, 1), extreme=extreme_soft),
]

CASES += [
    LossCase("perceptron", jaxloss.perceptron, signed),
    LossCase("multiclass_perceptron", jaxloss.multiclass_perceptron, int_labels, extreme=extreme_logits),
    LossCase("sparsemax", jaxloss.sparsemax, signed),
    LossCase("multiclass_sparsemax", jaxloss.multiclass_sparsemax, int_labels, extreme=extreme_logits),
]
