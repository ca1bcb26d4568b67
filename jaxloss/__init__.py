"""jaxloss: pure, jit-compilable losses, regularizers and objective builders for JAX.

Every public loss is reachable as ``jaxloss.<name>`` and from its family module
(``jaxloss.regression``, ``jaxloss.classification``, ...). ``jaxloss._core`` holds the shared contract:
``fn(predictions, targets, *, hyperparameters, weights=None, where=None, reduction="mean")``.
The modules and what they export are listed once, in ``jaxloss/_registry.py``; the names follow
``docs/naming.md``.
"""

from jaxloss import prox
from jaxloss._core import checked
from jaxloss._typing import Reduction
from jaxloss.classification import (
    binary_cross_entropy,
    categorical_hinge,
    cross_entropy,
    focal,
    generalized_cross_entropy,
    hinge,
    multi_margin,
    multiclass_focal,
    multiclass_hinge,
    multiclass_perceptron,
    multiclass_sparsemax,
    multilabel_margin,
    multilabel_soft_margin,
    nll,
    perceptron,
    poly1,
    smooth_labels,
    soft_margin,
    sparsemax,
    squared_hinge,
)
from jaxloss.divergence import entropy, generalized_kl, js_divergence, kl_divergence
from jaxloss.embedding import (
    circle,
    contrastive,
    cosine_distance,
    cosine_embedding,
    cosine_similarity,
    hinge_embedding,
    margin_ranking,
    ntxent,
    triplet_margin,
)
from jaxloss.fenchel import fenchel_young
from jaxloss.fused import linear_cross_entropy
from jaxloss.implicit import ImplicitDiff
from jaxloss.influence_functions import influence
from jaxloss.objectives import (
    Objective,
    huber_regression,
    lasso_regression,
    least_squares,
    linear_svm,
    logistic_regression,
    objective,
    poisson_regression,
    quantile_regression,
    ridge_regression,
)
from jaxloss.optimize import OptimizeResult, minimize
from jaxloss.per_sample import (
    ClippedGrad,
    GhostPlan,
    GradStatistics,
    NoiseScale,
    clipped_mean_grad,
    dense_stack_apply,
    dense_stack_objective,
    ghost_clipped_grad,
    ghost_clipped_mean_grad,
    ghost_grad_norms,
    ghost_norms,
    ghost_plan,
    grad_cosine_similarity,
    grad_statistics,
    grad_statistics_from_grads,
    noise_scale_from_batch_sizes,
    per_sample_grad_norms,
    per_sample_grads,
    per_sample_losses,
    tracin_influence,
    two_batch_noise_scale,
)
from jaxloss.ranking import bpr, listmle, pairwise_hinge, pairwise_logistic, ranking_softmax
from jaxloss.regression import (
    cauchy,
    concomitant_huber,
    gaussian_nll,
    geman_mcclure,
    general_robust,
    huber,
    log_cosh,
    mae,
    mape,
    mean_bias_error,
    mse,
    msle,
    poisson_nll,
    quantile,
    smooth_l1,
    smoothed_quantile,
    tweedie,
    welsch,
)
from jaxloss.regularizers import (
    Regularizer,
    confidence_penalty,
    elastic_net,
    group_lasso,
    l1,
    l2,
    not_bias,
    orthogonal,
    output_entropy,
)
from jaxloss.rl import policy_gradient, ppo_clip, q_learning, td_error, value_loss
from jaxloss.segmentation import dice, generalized_dice, jaccard, tversky
from jaxloss.sequence import ctc, sequence_cross_entropy, z_loss
from jaxloss.training import Callback, EarlyStopping, FitResult, FitState, TrainStep, fit, train_step

__version__ = "0.1.0"

# Equal to jaxloss._registry.public_names() (tests/test_registry.py): written out for readers and type checkers.
__all__ = [
    # checked mode, the jaxloss.prox namespace, the type of reduction=
    "checked",
    "prox",
    "Reduction",
    # jaxloss.regression
    "mse",
    "mae",
    "mean_bias_error",
    "huber",
    "smooth_l1",
    "log_cosh",
    "quantile",
    "mape",
    "msle",
    "poisson_nll",
    "gaussian_nll",
    "tweedie",
    "general_robust",
    "cauchy",
    "geman_mcclure",
    "welsch",
    "smoothed_quantile",
    "concomitant_huber",
    # jaxloss.classification
    "cross_entropy",
    "nll",
    "binary_cross_entropy",
    "focal",
    "multiclass_focal",
    "hinge",
    "squared_hinge",
    "multiclass_hinge",
    "multi_margin",
    "smooth_labels",
    "soft_margin",
    "multilabel_soft_margin",
    "multilabel_margin",
    "poly1",
    "generalized_cross_entropy",
    "categorical_hinge",
    "perceptron",
    "multiclass_perceptron",
    "sparsemax",
    "multiclass_sparsemax",
    # jaxloss.divergence
    "kl_divergence",
    "js_divergence",
    "generalized_kl",
    "entropy",
    # jaxloss.embedding
    "cosine_similarity",
    "cosine_distance",
    "cosine_embedding",
    "margin_ranking",
    "hinge_embedding",
    "triplet_margin",
    "contrastive",
    "ntxent",
    "circle",
    # jaxloss.ranking
    "bpr",
    "pairwise_logistic",
    "pairwise_hinge",
    "ranking_softmax",
    "listmle",
    # jaxloss.sequence
    "ctc",
    "sequence_cross_entropy",
    "z_loss",
    # jaxloss.segmentation
    "dice",
    "tversky",
    "jaccard",
    "generalized_dice",
    # jaxloss.rl
    "policy_gradient",
    "ppo_clip",
    "td_error",
    "q_learning",
    "value_loss",
    # jaxloss.fenchel
    "fenchel_young",
    # jaxloss.fused
    "linear_cross_entropy",
    # jaxloss.regularizers
    "Regularizer",
    "l2",
    "l1",
    "elastic_net",
    "group_lasso",
    "orthogonal",
    "output_entropy",
    "confidence_penalty",
    "not_bias",
    # jaxloss.objectives
    "Objective",
    "objective",
    "least_squares",
    "ridge_regression",
    "lasso_regression",
    "logistic_regression",
    "linear_svm",
    "huber_regression",
    "quantile_regression",
    "poisson_regression",
    # jaxloss.optimize
    "OptimizeResult",
    "minimize",
    # jaxloss.implicit, jaxloss.influence_functions
    "ImplicitDiff",
    "influence",
    # jaxloss.training
    "fit",
    "train_step",
    "TrainStep",
    "FitResult",
    "FitState",
    "Callback",
    "EarlyStopping",
    # jaxloss.per_sample
    "per_sample_losses",
    "per_sample_grads",
    "per_sample_grad_norms",
    "clipped_mean_grad",
    "ClippedGrad",
    "grad_statistics",
    "grad_statistics_from_grads",
    "GradStatistics",
    "noise_scale_from_batch_sizes",
    "two_batch_noise_scale",
    "NoiseScale",
    "grad_cosine_similarity",
    "tracin_influence",
    "dense_stack_apply",
    "dense_stack_objective",
    "ghost_grad_norms",
    "ghost_clipped_mean_grad",
    "ghost_plan",
    "GhostPlan",
    "ghost_norms",
    "ghost_clipped_grad",
]
