"""Contract cases for the regression losses."""

import numpy as np

import jaxloss
from harness import LossCase


def pair(rng, dtype, batch):
    return rng.normal(size=(batch, 3)).astype(dtype), rng.normal(size=(batch, 3)).astype(dtype)


CASES = [
    LossCase("mse", jaxloss.mse, pair, diff=(0, 1)),
    LossCase("mae", jaxloss.mae, pair, diff=(0, 1)),
    LossCase("mean_bias_error", jaxloss.mean_bias_error, pair, diff=(0, 1)),
    LossCase("huber", jaxloss.huber, pair, kwargs=dict(delta=0.7), diff=(0, 1)),
    LossCase("smooth_l1", jaxloss.smooth_l1, pair, kwargs=dict(beta=0.7), diff=(0, 1)),
    LossCase("log_cosh", jaxloss.log_cosh, pair, diff=(0, 1)),
    LossCase("quantile", jaxloss.quantile, pair, kwargs=dict(tau=0.8), diff=(0, 1)),
]
