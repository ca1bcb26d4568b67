"""Objectives: a model, a loss and a regularizer composed into one pure ``objective(params, batch)``.

:func:`objective` builds an :class:`Objective` from any model (a function ``fn(params, inputs)``, a Flax
linen module or its ``.apply``, or an Equinox module whose parameters are the module itself), any jaxloss
loss and an optional :class:`jaxloss.Regularizer`. The ready objectives (:func:`least_squares`,
:func:`ridge_regression`, :func:`lasso_regression`, :func:`logistic_regression`, :func:`linear_svm`, :func:`huber_regression`,
:func:`quantile_regression`, :func:`poisson_regression`) are linear models in the jaxopt tradition, with
parameters ``{"w": [features(, outputs)], "b": [(outputs)]}`` (``obj.init_params(inputs)`` makes zeros),
the intercept ``b`` never penalised, and regularization conventions that map one-to-one onto
scikit-learn's estimators (each docstring gives the map). Minimise them with :func:`jaxloss.minimize`.

Examples:
  >>> import jax, jax.numpy as jnp, jaxloss
  >>> def model(params, x):
  ...     return x @ params["w"] + params["b"]
  >>> obj = jaxloss.objective(model, jaxloss.mse, jaxloss.l2(0.1, mask=jaxloss.not_bias))
  >>> params = {"w": jnp.array([1.0, 0.0]), "b": jnp.array(0.0)}
  >>> batch = (jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([1.0, 1.0]))
  >>> print(round(float(obj(params, batch)), 4))
  2.05
  >>> print(obj.per_sample(params, batch))
  [0. 4.]
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Mapping
from typing import Any, Callable, Literal, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _core, _models
from jaxloss import classification as _cls
from jaxloss import regression as _reg
from jaxloss import regularizers as _regs
from jaxloss._typing import Array, ArrayLike, PyTree
from jaxloss.per_sample import grads as _per_sample

__all__ = [
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
]


_BATCH_KEYS = ("inputs", "targets", "weights")


def _unpack(batch):
    if isinstance(batch, Mapping):
        keys = set(batch)
        if not {"inputs", "targets"} <= keys or not keys <= set(_BATCH_KEYS):
            raise ValueError(
                "a dict batch must have the keys 'inputs' and 'targets' (and optionally 'weights'); "
                f"got keys {sorted(map(str, keys))}"
            )
        return batch["inputs"], batch["targets"], batch.get("weights")
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError(
            "batch must be (inputs, targets) or (inputs, targets, weights); "
            f"got {type(batch).__name__} of length {len(batch) if isinstance(batch, (tuple, list)) else '?'}"
        )
    inputs, targets = batch[0], batch[1]
    weights = batch[2] if len(batch) == 3 else None
    return inputs, targets, weights


class Objective:
    """``objective(params, batch) -> scalar``: the data term ``loss(model(params, inputs), targets)`` plus
    the regularizer.

    ``batch`` is ``(inputs, targets)``, ``(inputs, targets, weights)`` or a dict with the keys ``"inputs"``,
    ``"targets"`` and optionally ``"weights"``; with weights, the data term is the loss's weighted mean
    ``sum(w * l) / sum(w)``. Pure and traceable: ``jax.grad(obj)(params, batch)``,
    ``jax.jit(obj)``. Build one with :func:`objective`.

    Attributes:
      model: the adapted model (``model(params, inputs) -> predictions``; ``model.kind`` names the
        framework), see ``jaxloss._models``.
      loss: the loss (with ``loss_kwargs`` bound).
      regularizer: the :class:`jaxloss.Regularizer` (or a plain ``params -> scalar`` function), or ``None``.
      vmap_model: whether the model is applied to one example at a time (Equinox modules).
    """

    def __init__(
        self,
        model: Any,
        loss: Callable[..., Array],
        regularizer: _regs.Regularizer | None = None,
        *,
        vmap_model: bool | None = None,
        init_params: Callable[..., PyTree] | None = None,
        **loss_kwargs: Any,
    ) -> None:
        self.model = _models.adapt(model, vmap_model)  # the one place that knows frameworks
        self.vmap_model = self.model.vmap
        if not callable(loss):
            raise TypeError(f"loss must be a function loss(predictions, targets, ...); got {loss!r}")
        self.loss_fn = loss
        self.loss_kwargs = dict(loss_kwargs)
        if regularizer is not None and not callable(regularizer):
            raise TypeError(
                f"regularizer must be a jaxloss.Regularizer or a function params -> scalar; got {regularizer!r}"
            )
        self.regularizer = regularizer
        self._init_params = init_params

    @property
    def loss(self):
        """The loss with its keyword hyperparameters bound."""
        return functools.partial(self.loss_fn, **self.loss_kwargs) if self.loss_kwargs else self.loss_fn

    # The pieces -----------------------------------------------------------------------------------------

    def predict(self, params, inputs):
        """The model's predictions for a batch of inputs."""
        return self.model(params, inputs)

    def data_term(self, params, batch, predictions=None):
        """The loss part alone: ``loss(predictions, targets, weights=weights)`` (mean over the batch)."""
        inputs, targets, weights = _unpack(batch)
        if predictions is None:
            predictions = self.predict(params, inputs)
        if weights is None:
            return self.loss(predictions, targets)
        return self.loss(predictions, targets, weights=weights)

    def penalty(self, params, predictions=None):
        """The regularizer alone (0 without one); output penalties see ``predictions``."""
        reg = self.regularizer
        if reg is None:
            return jnp.zeros(())
        if isinstance(reg, _regs.Regularizer):
            return reg(params, outputs=predictions)
        return reg(params)

    def with_aux(self, params, batch):
        """``(value, aux)`` for ``jax.value_and_grad(obj.with_aux, has_aux=True)``.

        ``aux`` is ``{"predictions": ..., "loss": data term, "penalty": regularizer, "params": params after
        the forward pass}``, so metrics need no second forward pass; ``params`` carries the updated
        non-trainable state of stateful models (linen ``batch_stats``, NNX ``BatchStat``), in the form given.
        """
        inputs, _, _ = _unpack(batch)
        predictions, after = self.model.apply(params, inputs)
        data = self.data_term(params, batch, predictions)
        if self.regularizer is None:
            return data, {"predictions": predictions, "loss": data, "penalty": jnp.zeros_like(data), "params": after}
        penalty = self.penalty(params, predictions)
        value = data + penalty
        return value, {"predictions": predictions, "loss": data, "penalty": penalty, "params": after}

    def __call__(self, params, batch):
        return self.with_aux(params, batch)[0]

    def per_sample(self, params, batch, *, chunk_size=None):
        """The data term of each example, ``[batch]``, computed by ``jax.vmap`` over one-example batches.

        Exactly ``jaxloss.per_sample_losses(obj.data_term, params, (inputs, targets), chunk_size=chunk_size)``:
        the same per-example function as every per-sample tool. Weights are not applied: with weights ``w``
        the data term is ``sum(w * l) / sum(w)`` of these. The regularizer is not included (it is not a
        per-example quantity).
        """
        inputs, targets, _ = _unpack(batch)
        return _per_sample.per_sample_losses(self.data_term, params, (inputs, targets), chunk_size=chunk_size)

    # Structure used by the drivers -------------------------------------------------------------------------

    _FIELDS = ("model", "vmap_model", "loss_fn", "loss_kwargs", "regularizer", "_init_params")

    def _copy(self, **changes):
        new = object.__new__(type(self))
        for name in self._FIELDS:
            setattr(new, name, changes.get(name, getattr(self, name)))
        return new

    def replace(self, regularizer=None):
        """The same model and loss with another regularizer."""
        return self._copy(regularizer=regularizer)

    @functools.cached_property
    def smooth(self) -> "Objective":
        """The objective without its non-smooth regularizer terms (what gradients are taken of in a
        proximal method). ``self`` when the regularizer is smooth."""
        reg = self.regularizer
        if isinstance(reg, _regs.Regularizer) and not reg.is_smooth:
            return self.replace(reg.smooth_part)
        return self

    @functools.cached_property
    def nonsmooth(self) -> Optional[_regs.Regularizer]:
        """The non-smooth regularizer terms (``l1``, ``group_lasso``, ...), or ``None``."""
        reg = self.regularizer
        return reg.nonsmooth_part if isinstance(reg, _regs.Regularizer) else None

    def init_params(self, inputs, targets=None):
        """Zero parameters of the right shapes (ready objectives only)."""
        if self._init_params is None:
            raise NotImplementedError("init_params is provided by the ready objectives; build params for your model")
        return self._init_params(inputs, targets)

    def __repr__(self):
        """``Objective(model=mlp, loss=cross_entropy(label_smoothing=0.1), regularizer=l2(strength=0.0001))``."""
        kwargs = ", ".join(f"{k}={_regs._fmt(v) if _is_hyper(v) else repr(v)}" for k, v in self.loss_kwargs.items())
        loss = _name(self.loss_fn) + (f"({kwargs})" if kwargs else "")
        m = self.model
        if m.kind == "equinox":
            model = "module.__call__"
        elif m.kind == "nnx":
            model = f"{type(m.source).__name__}.__call__"
        else:
            model = _name(m.module.apply if m.kind == "linen" else m.source)
        vmap = ", vmap_model=True" if self.vmap_model and m.kind != "equinox" else ""
        return f"Objective(model={model}, loss={loss}, regularizer={self.regularizer!r}{vmap})"


def _name(fn) -> str:
    """A function's name for a repr: ``huber``, ``Dense.apply``, ``huber(delta=2.0)`` for a partial."""
    if isinstance(fn, functools.partial):
        args = ", ".join(f"{k}={v!r}" for k, v in fn.keywords.items())
        return f"{_name(fn.func)}({args})"
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, type(sys)):
        return f"{type(owner).__name__}.{getattr(fn, '__name__', '?')}"
    return getattr(fn, "__name__", type(fn).__name__)


def _is_hyper(x) -> bool:
    """Loss hyperparameters that become pytree leaves (traceable): floats and arrays."""
    return (isinstance(x, float) or isinstance(x, (jax.Array, np.ndarray))) and not isinstance(x, bool)


def _flatten_objective(obj):
    dynamic = tuple(k for k, v in obj.loss_kwargs.items() if _is_hyper(v))
    static = tuple((k, v) for k, v in obj.loss_kwargs.items() if k not in dynamic)
    reg = obj.regularizer if isinstance(obj.regularizer, _regs.Regularizer) else None
    plain_reg = None if reg is not None else obj.regularizer
    children = (reg, tuple(obj.loss_kwargs[k] for k in dynamic))
    aux = (obj.model, obj.vmap_model, obj.loss_fn, dynamic, static, plain_reg, obj._init_params)
    return children, aux


def _unflatten_objective(aux, children):
    model, vmap_model, loss_fn, dynamic, static, plain_reg, init_params = aux
    reg, values = children
    new = object.__new__(Objective)
    new.model, new.vmap_model, new.loss_fn, new._init_params = model, vmap_model, loss_fn, init_params
    new.loss_kwargs = {**dict(zip(dynamic, values)), **dict(static)}
    new.regularizer = reg if plain_reg is None else plain_reg
    return new


# An objective is a pytree whose leaves are its float hyperparameters (loss keyword arguments, regularizer
# strengths): jaxloss.minimize passes it through jax.jit as data, so a new strength does not recompile.
jax.tree_util.register_pytree_node(Objective, _flatten_objective, _unflatten_objective)


def objective(
    model: Any,
    loss: Callable[..., Array],
    regularizer: _regs.Regularizer | None = None,
    *,
    vmap_model: bool | None = None,
    **loss_kwargs: Any,
) -> Objective:
    """Composes a model, a loss and a regularizer into a pure ``objective(params, batch) -> scalar``.

    ``objective(params, batch) = loss(model(params, inputs), targets[, weights=weights]) + regularizer(params)``
    with ``batch = (inputs, targets)``, ``(inputs, targets, weights)`` or
    ``{"inputs": ..., "targets": ...[, "weights": ...]}``.

    Args:
      model: one of

        * a function ``fn(params, inputs) -> predictions`` (``params`` any pytree);
        * a Flax linen module or its bound ``module.apply``: ``params`` are its variables
          (``{"params": ..., "batch_stats": ...}``), exactly what ``module.init`` returns; only
          ``params`` is differentiated by jaxloss's drivers, the other collections are ``mutable`` in the
          forward pass and their updates come back from :func:`jaxloss.train_step`;
        * a Flax NNX module: ``params`` is the module itself (or its ``nnx.State``); only ``nnx.Param``
          state is differentiated, other state (``BatchStat``) is carried and updated by
          :func:`jaxloss.train_step` (the module in place, or a new State when a State was given);
        * an Equinox module: ``params`` is the module itself (pass the current module to the objective);
          its ``__call__`` takes one example and is vmapped over the batch; its inexact arrays are
          differentiated, other fields held (``eqx.partition``).
      loss: a jaxloss loss ``loss(predictions, targets, *, weights=None, ...)`` returning the batch mean
        (any function of that signature works).
      regularizer: a :class:`jaxloss.Regularizer` (penalties on outputs such as
        :func:`jaxloss.output_entropy` receive the predictions), a function ``params -> scalar``, or
        ``None``.
      vmap_model: apply the model to one example at a time (default: ``True`` for Equinox modules only).
      **loss_kwargs: hyperparameters bound to the loss (``label_smoothing=0.1``, ``delta=2.0``, ...).

    Returns:
      an :class:`Objective`, with ``.per_sample(params, batch)`` (data term per example, via ``jax.vmap``),
      ``.with_aux(params, batch) -> (value, {"predictions", "loss", "penalty"})`` for
      ``jax.value_and_grad(..., has_aux=True)``, ``.predict``, ``.data_term`` and ``.penalty``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.objective(lambda p, x: x @ p, jaxloss.cross_entropy, jaxloss.l2(1e-2))
      >>> w = jnp.zeros((3, 4))
      >>> batch = (jnp.ones((2, 3)), jnp.array([0, 3]))
      >>> print(round(float(obj(w, batch)), 4))
      1.3863
      >>> jax.grad(obj)(w, batch).shape
      (3, 4)
    """
    return Objective(model, loss, regularizer, vmap_model=vmap_model, **loss_kwargs)


# -------------------------------------------------------------------------------------------------------
# Ready objectives: linear models with parameters {"w", "b"}
# -------------------------------------------------------------------------------------------------------


def _linear(params, x):
    out = jnp.dot(x, params["w"])
    return out + params["b"] if "b" in params else out


def _weights_only(path: str) -> bool:
    return path.rsplit("/", 1)[-1] == "w"


@dataclasses.dataclass(frozen=True)
class _ZerosInit:
    """Zero parameters of a linear model (hashable: part of a ready objective's static pytree data)."""

    fit_intercept: bool
    num_outputs: Optional[int] = None
    extra: Tuple[str, ...] = ()

    def __call__(self, inputs, targets=None):
        x = jnp.asarray(inputs)
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        k = self.num_outputs
        if k is None and targets is not None and jnp.ndim(targets) == 2:
            k = jnp.shape(targets)[1]
        w_shape = (x.shape[-1],) if k is None else (x.shape[-1], k)
        params = {"w": jnp.zeros(w_shape, dtype)}
        if self.fit_intercept:
            params["b"] = jnp.zeros(() if k is None else (k,), dtype)
        params.update({name: jnp.zeros((), dtype) for name in self.extra})
        return params


def _ready(loss, regularizer, *, fit_intercept, model=_linear, num_outputs=None, extra=None, **loss_kwargs):
    init = _ZerosInit(bool(fit_intercept), num_outputs, tuple(extra or ()))
    return Objective(model, loss, regularizer, init_params=init, **loss_kwargs)


def _half_mse(predictions, targets, *, weights=None, where=None, reduction="mean"):
    """``0.5 * (p - t)^2``: the least-squares data term (scikit-learn's ``Lasso`` convention)."""
    return 0.5 * _reg.mse(predictions, targets, weights=weights, where=where, reduction=reduction)


def least_squares(*, fit_intercept: bool = True) -> Objective:
    """Ordinary least squares: ``0.5 * mean((x w + b - y)^2)``.

    The ``1/2`` is scikit-learn's ``Lasso``/``ElasticNet`` convention (``1 / (2 n) ||y - X w||^2``); the
    minimiser is ``LinearRegression``'s. Targets ``[n]`` or ``[n, k]`` (``init_params(x, y)`` sizes ``w``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.least_squares()
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([2.0, 4.0])
      >>> print(obj({"w": jnp.array([2.0]), "b": jnp.array(0.0)}, (x, y)))
      0.0
    """
    return _ready(_half_mse, None, fit_intercept=fit_intercept)


def ridge_regression(alpha: ArrayLike, *, fit_intercept: bool = True) -> Objective:
    """Ridge regression: ``0.5 * mean((x w + b - y)^2) + 0.5 * alpha * ||w||^2`` (intercept not penalised).

    Multiplying by ``2 n`` gives scikit-learn's ``Ridge`` objective ``||y - X w||^2 + alpha_sk ||w||^2`` with
    ``alpha_sk = n * alpha``.

    Args:
      alpha: the L2 strength (>= 0), :func:`jaxloss.l2` convention.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([2.0, 4.0])
      >>> print(jaxloss.ridge_regression(1.0)({"w": jnp.array([2.0]), "b": jnp.array(0.0)}, (x, y)))
      2.0
    """
    return _ready(_half_mse, _regs.l2(alpha, mask=_weights_only), fit_intercept=fit_intercept)


def lasso_regression(alpha: ArrayLike, *, fit_intercept: bool = True) -> Objective:
    """The lasso: ``0.5 * mean((x w + b - y)^2) + alpha * ||w||_1``, exactly scikit-learn's ``Lasso(alpha)``.

    Non-smooth: :func:`jaxloss.minimize` solves it by accelerated proximal gradient, giving exact zeros.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([2.0, 4.0])
      >>> print(jaxloss.lasso_regression(0.5)({"w": jnp.array([2.0]), "b": jnp.array(0.0)}, (x, y)))
      1.0
    """
    return _ready(_half_mse, _regs.l1(alpha, mask=_weights_only), fit_intercept=fit_intercept)


def logistic_regression(
    l2: ArrayLike = 0.0, *, num_classes: int | None = None, fit_intercept: bool = True
) -> Objective:
    """L2-regularised logistic regression: ``mean(cross-entropy) + 0.5 * l2 * ||w||^2``.

    Binary (``num_classes`` ``None`` or 2): ``w`` is ``[features]``, labels in {0, 1}, the data term is
    :func:`jaxloss.binary_cross_entropy` of the logit ``x w + b``. Multinomial (``num_classes >= 3``): ``w``
    is ``[features, classes]``, integer labels, :func:`jaxloss.cross_entropy` of the softmax logits.
    scikit-learn's ``LogisticRegression(C)`` (lbfgs, L2; multinomial for more than two classes) minimises
    the same function with ``l2 = 1 / (C * n)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.logistic_regression(0.1)
      >>> x, y = jnp.array([[1.0], [-1.0]]), jnp.array([1, 0])
      >>> print(round(float(obj(obj.init_params(x), (x, y))), 4))
      0.6931
    """
    reg = _regs.l2(l2, mask=_weights_only)
    if num_classes is None or num_classes == 2:
        return _ready(_cls.binary_cross_entropy, reg, fit_intercept=fit_intercept)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    return _ready(_cls.cross_entropy, reg, fit_intercept=fit_intercept, num_outputs=num_classes)


def linear_svm(
    l2: ArrayLike = 1.0,
    *,
    loss: Literal["hinge", "squared_hinge"] = "hinge",
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
) -> Objective:
    """Linear support vector machine: ``mean(hinge(y, x w + b)) + 0.5 * l2 * ||w||^2``.

    Args:
      l2: the L2 strength (>= 0).
      loss: ``"hinge"`` (:func:`jaxloss.hinge`, non-smooth) or ``"squared_hinge"``
        (:func:`jaxloss.squared_hinge`, differentiable).
      penalize_intercept: also penalise ``b``. scikit-learn's ``LinearSVC`` (liblinear) treats the
        intercept as a feature and penalises it: ``LinearSVC(C, loss="squared_hinge", dual=False)`` equals
        ``linear_svm(1 / (C * n), loss="squared_hinge", penalize_intercept=True)``.

    Labels in {0, 1} or {-1, 1}.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.linear_svm(0.1, loss="squared_hinge")
      >>> x, y = jnp.array([[1.0], [-1.0]]), jnp.array([1, 0])
      >>> print(obj({"w": jnp.array([0.5]), "b": jnp.array(0.0)}, (x, y)))
      0.2625
    """
    losses = {"hinge": _cls.hinge, "squared_hinge": _cls.squared_hinge}
    if loss not in losses:
        raise ValueError(f"loss must be one of {sorted(losses)}; got {loss!r}")
    mask = None if penalize_intercept else _weights_only
    return _ready(losses[loss], _regs.l2(l2, mask=mask), fit_intercept=fit_intercept)


def _huber_log_scale(predictions, targets, *, delta, weights=None, where=None, reduction="mean"):
    """:func:`jaxloss.concomitant_huber` of ``predictions = (p, log sigma)`` (the model's two outputs)."""
    mean, log_scale = predictions
    return _reg.concomitant_huber(
        mean, targets, jnp.exp(log_scale), delta=delta, weights=weights, where=where, reduction=reduction
    )


def _linear_with_scale(params, x):
    mean = _linear(params, x)
    return mean, jnp.broadcast_to(params["log_scale"], mean.shape)


def huber_regression(
    delta: ArrayLike = 1.35,
    l2: ArrayLike = 0.0,
    *,
    fit_scale: bool = False,
    fit_intercept: bool = True,
) -> Objective:
    """Robust regression with the Huber loss.

    ``fit_scale=False``: ``mean(huber(x w + b, y, delta)) + 0.5 * l2 * ||w||^2`` (residuals in the
    targets' units). ``fit_scale=True``: scikit-learn's ``HuberRegressor`` objective, which estimates the
    residual scale ``sigma = exp(params["log_scale"])`` jointly (Owen 2007):
    ``mean(sigma + 2 sigma huber((y - x w - b) / sigma, delta)) + 0.5 * l2 * ||w||^2``, the mean of
    :func:`jaxloss.concomitant_huber`.
    ``HuberRegressor(epsilon=delta, alpha)`` equals it with ``l2 = 2 * alpha / n`` (its objective is ``n``
    times this one), and its ``scale_`` is ``sigma``.

    References:
      Owen, "A robust hybrid of lasso and ridge regression", Contemporary Mathematics 443, 2007.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.huber_regression(delta=1.0)
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([0.5, 5.0])
      >>> print(obj(obj.init_params(x), (x, y)))
      2.3125
    """
    _core.check_hyper(delta, "delta", low=0.0, low_open=True)
    reg = _regs.l2(l2, mask=_weights_only)
    if fit_scale:
        return _ready(
            _huber_log_scale,
            reg,
            fit_intercept=fit_intercept,
            model=_linear_with_scale,
            extra=("log_scale",),
            delta=delta,
        )
    return _ready(_reg.huber, reg, fit_intercept=fit_intercept, delta=delta)


def quantile_regression(
    tau: ArrayLike = 0.5,
    l1: float | Array = 0.0,
    *,
    smoothing: float | Array = 0.0,
    fit_intercept: bool = True,
) -> Objective:
    """Linear quantile regression: ``mean(pinball_tau(y - x w - b)) + l1 * ||w||_1``.

    scikit-learn's ``QuantileRegressor(quantile=tau, alpha=l1)`` minimises exactly this (as a linear
    program). The pinball loss is non-smooth; ``smoothing=mu > 0`` replaces it by its Moreau envelope
    :func:`jaxloss.smoothed_quantile` (a Huber-like rounding of the kink of width ``mu``), which is below
    the pinball loss by at most ``mu * max(tau, 1 - tau)^2 / 2`` per example, so minimising with ``mu``
    decreasing towards 0 (each solve warm-started) reaches the exact minimum to that accuracy.

    Args:
      tau: the quantile in ``(0, 1)``.
      l1: the L1 strength on ``w`` (>= 0).
      smoothing: ``mu >= 0``; 0 uses :func:`jaxloss.quantile` itself.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.quantile_regression(0.9)
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([1.0, -1.0])
      >>> print(obj(obj.init_params(x), (x, y)))
      0.5
    """
    _core.check_hyper(tau, "tau", low=0.0, high=1.0, low_open=True, high_open=True)
    _core.check_hyper(smoothing, "smoothing", low=0.0)
    reg = _regs.l1(l1, mask=_weights_only) if not (_core.is_concrete(l1) and float(l1) == 0.0) else None
    if _core.is_concrete(smoothing) and float(smoothing) == 0.0:
        return _ready(_reg.quantile, reg, fit_intercept=fit_intercept, tau=tau)
    return _ready(_reg.smoothed_quantile, reg, fit_intercept=fit_intercept, tau=tau, smoothing=smoothing)


def poisson_regression(l2: ArrayLike = 0.0, *, fit_intercept: bool = True) -> Objective:
    """Poisson regression (log link): ``mean(exp(x w + b) - y (x w + b)) + 0.5 * l2 * ||w||^2``.

    Counts ``y >= 0``; the model's output is the log-rate and the data term is
    :func:`jaxloss.poisson_nll` (``log_input=True``, without the ``log(y!)`` constant). This is half the mean Poisson deviance up to a
    constant in ``w``, so scikit-learn's ``PoissonRegressor(alpha)`` (``1 / (2 n) sum deviance +
    alpha / 2 ||w||^2``) has the same minimiser with ``l2 = alpha``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> obj = jaxloss.poisson_regression()
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([1.0, 3.0])
      >>> print(obj(obj.init_params(x), (x, y)))
      1.0
    """
    return _ready(_reg.poisson_nll, _regs.l2(l2, mask=_weights_only), fit_intercept=fit_intercept)
