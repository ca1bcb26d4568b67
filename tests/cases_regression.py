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


# --- issue 3: relative, log-scale, likelihood, Tweedie and robust losses --------------------------------


def nonzero_targets(rng, dtype, batch):
    t = rng.uniform(0.5, 2.0, size=(batch, 3)) * rng.choice([-1.0, 1.0], size=(batch, 3))
    return rng.normal(size=(batch, 3)).astype(dtype), t.astype(dtype)


def extreme_mape(dtype):
    return np.array([[1e4, -1e4, 0.0], [3.0, 0.0, -1e4]], dtype), np.array(
        [[0.0, 1e4, 0.0], [-1e-30, 1e-4, 1e4]], dtype
    )


def nonneg_pair(rng, dtype, batch):
    return rng.uniform(0.0, 3.0, size=(batch, 3)).astype(dtype), rng.uniform(0.0, 3.0, size=(batch, 3)).astype(dtype)


def extreme_msle(dtype):
    return np.array([[1e4, 0.0, -0.999], [0.0, 1e-30, 1e4]], dtype), np.array(
        [[0.0, 1e4, 0.0], [-0.999, 1e4, 1e4]], dtype
    )


def log_rates_counts(rng, dtype, batch):
    return rng.normal(size=(batch, 3)).astype(dtype), rng.poisson(2.0, size=(batch, 3)).astype(dtype)


def rates_counts(rng, dtype, batch):
    return rng.uniform(0.1, 3.0, size=(batch, 3)).astype(dtype), rng.poisson(2.0, size=(batch, 3)).astype(dtype)


def extreme_log_rates(dtype):
    # exp(x) of a log-rate above ~88 overflows float32 (as in PyTorch): 80 is the largest tested here.
    return np.array([[-1e4, 80.0, 0.0], [-1e4, -80.0, 20.0]], dtype), np.array(
        [[1e4, 0.0, 1.0], [0.0, 1e4, 2.0]], dtype
    )


def extreme_rates(dtype):
    return np.array([[0.0, 1e4, 1e-30], [0.0, 0.0, 1e4]], dtype), np.array([[1e4, 0.0, 1.0], [0.0, 1e4, 1e4]], dtype)


def gaussian_inputs(rng, dtype, batch):
    p, t = pair(rng, dtype, batch)
    return p, t, rng.uniform(0.1, 2.0, size=(batch, 3)).astype(dtype)


def extreme_gaussian(dtype):
    p = np.array([[1e4, -1e4, 0.0], [1e4, 0.0, 5.0]], dtype)
    t = np.array([[0.0, 1e4, 0.0], [-1e4, 0.0, 5.0]], dtype)
    var = np.array([[0.0, 1e4, 1e-30], [1e4, 0.0, 0.0]], dtype)
    return p, t, var


def tweedie_inputs(rng, dtype, batch):
    t = rng.uniform(0.0, 3.0, size=(batch, 3))
    t[0, 0] = 0.0  # a zero target (valid for 1 <= power < 2)
    return rng.uniform(0.2, 3.0, size=(batch, 3)).astype(dtype), t.astype(dtype)


def positive_pair(rng, dtype, batch):
    return rng.uniform(0.2, 3.0, size=(batch, 3)).astype(dtype), rng.uniform(0.2, 3.0, size=(batch, 3)).astype(dtype)


def extreme_tweedie(dtype):
    return np.array([[1e-6, 1e4, 1e4], [1.0, 1e-6, 0.5]], dtype), np.array([[0.0, 0.0, 1e4], [1e4, 1e-6, 0.0]], dtype)


def extreme_gamma(dtype):
    return np.array([[1e-6, 1e4, 1e4], [1.0, 1e-6, 0.5]], dtype), np.array([[1e-6, 1e-6, 1e4], [1e4, 1e-6, 3.0]], dtype)


CASES += [
    LossCase("mape", jaxloss.mape, nonzero_targets, diff=(0, 1), extreme=extreme_mape),
    LossCase("msle", jaxloss.msle, nonneg_pair, diff=(0, 1), extreme=extreme_msle),
    LossCase(
        "poisson_nll",
        jaxloss.poisson_nll,
        log_rates_counts,
        kwargs=dict(full=True),
        diff=(0, 1),
        extreme=extreme_log_rates,
    ),
    LossCase("gaussian_nll", jaxloss.gaussian_nll, gaussian_inputs, diff=(0, 2), extreme=extreme_gaussian),
    LossCase("tweedie", jaxloss.tweedie, tweedie_inputs, kwargs=dict(power=1.5), diff=(0, 1), extreme=extreme_tweedie),
    LossCase("general_robust", jaxloss.general_robust, pair, kwargs=dict(alpha=0.5, scale=0.8), diff=(0, 1)),
    LossCase("cauchy", jaxloss.cauchy, pair, kwargs=dict(scale=0.8), diff=(0, 1)),
    LossCase("geman_mcclure", jaxloss.geman_mcclure, pair, kwargs=dict(scale=0.8), diff=(0, 1)),
    LossCase("welsch", jaxloss.welsch, pair, kwargs=dict(scale=0.8), diff=(0, 1)),
    # variants that take other code paths
    LossCase(
        "poisson_nll",
        jaxloss.poisson_nll,
        rates_counts,
        kwargs=dict(log_input=False),
        diff=(0, 1),
        extreme=extreme_rates,
    ),
    LossCase("tweedie", jaxloss.tweedie, tweedie_inputs, kwargs=dict(power=1), diff=(0, 1), extreme=extreme_tweedie),
    LossCase("tweedie", jaxloss.tweedie, positive_pair, kwargs=dict(power=2), diff=(0, 1), extreme=extreme_gamma),
    LossCase("general_robust", jaxloss.general_robust, pair, kwargs=dict(alpha=0.0), diff=(0, 1)),
    LossCase("general_robust", jaxloss.general_robust, pair, kwargs=dict(alpha=2.0), diff=(0, 1)),
    LossCase("general_robust", jaxloss.general_robust, pair, kwargs=dict(alpha=-np.inf), diff=(0, 1)),
]


# --- issue 14: the losses of the ready objectives, public ------------------------------------------------


def huber_scale_inputs(rng, dtype, batch):
    p, t = pair(rng, dtype, batch)
    return p, t, rng.uniform(0.3, 2.0, size=(batch, 3)).astype(dtype)


def extreme_huber_scale(dtype):
    p = np.array([[1e4, -1e4, 0.0], [1e4, 0.0, 5.0]], dtype)
    t = np.array([[0.0, 1e4, 0.0], [-1e4, 0.0, 5.0]], dtype)
    return p, t, np.array([[1e-4, 1e4, 1e-4], [1e4, 1e-4, 1.0]], dtype)


CASES += [
    LossCase("smoothed_quantile", jaxloss.smoothed_quantile, pair, kwargs=dict(tau=0.8, smoothing=0.6), diff=(0, 1)),
    LossCase("smoothed_quantile", jaxloss.smoothed_quantile, pair, kwargs=dict(tau=0.3, smoothing=0.0), diff=(0, 1)),
    LossCase(
        "concomitant_huber",
        jaxloss.concomitant_huber,
        huber_scale_inputs,
        kwargs=dict(delta=0.9),
        diff=(0, 1, 2),
        extreme=extreme_huber_scale,
    ),
]
