"""Contract cases for the sequence losses (full-length sequences; padding is tested in test_sequence.py)."""

import numpy as np

import jaxloss
from harness import LossCase

T, K, N, V = 6, 4, 3, 5


def ctc_inputs(rng, dtype, batch):
    labels = rng.integers(1, K, size=(batch, N))
    labels[0, 1] = labels[0, 0]  # a repeated label needs a blank between
    return (rng.normal(size=(batch, T, K)) * 2).astype(dtype), labels


def ctc_extreme(dtype):
    x = np.where(np.arange(K) == 1, 1e4, -1e4) * np.ones((2, T, 1))
    x[1, ::2] = 0.0
    return x.astype(dtype), np.array([[1, 2, 3], [2, 2, 2]])


def tokens(rng, dtype, batch):
    return (rng.normal(size=(batch, 4, V)) * 2).astype(dtype), rng.integers(0, V, size=(batch, 4))


def tokens_extreme(dtype):
    x = np.array([[[1e4, -1e4, 0.0, 5.0, 0.0], [-1e4, -1e4, 1e4, 1e4, 0.0]]], dtype)
    return np.concatenate([x, -x]), np.array([[1, 0], [4, 2]])


def logits_only(rng, dtype, batch):
    return ((rng.normal(size=(batch, V)) * 2).astype(dtype),)


CASES = [
    LossCase("ctc", jaxloss.ctc, ctc_inputs, extreme=ctc_extreme),
    LossCase(
        "sequence_cross_entropy",
        jaxloss.sequence_cross_entropy,
        tokens,
        kwargs=dict(label_smoothing=0.1),
        extreme=tokens_extreme,
    ),
    LossCase("z_loss", jaxloss.z_loss, logits_only),
]

VARIANTS = [
    LossCase(
        "ctc", jaxloss.ctc, ctc_inputs, kwargs=dict(zero_infinity=True, normalize_length=True), extreme=ctc_extreme
    ),
    LossCase(
        "sequence_cross_entropy",
        jaxloss.sequence_cross_entropy,
        tokens,
        kwargs=dict(normalize="sequences"),
        extreme=tokens_extreme,
    ),
]
CASES += VARIANTS
