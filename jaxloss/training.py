"""Mini-batch training on top of optax: :func:`train_step` (one jitted step) and :func:`fit` (epochs).

Both take any ``objective(params, batch) -> scalar`` (a :class:`jaxloss.Objective` or a plain function)
and any parameter pytree, including an Equinox module: leaves that are not floating-point arrays are held
fixed and never reach the optimizer (the same split as :func:`jaxloss.minimize`).

:func:`fit` is the Keras-style loop: the data as arrays (shuffled and cut into ``batch_size`` batches, or
one full batch), a list of batches or a function of the epoch; ``validation_data`` evaluated after every
epoch; a ``history`` of the training and validation loss and ``metrics`` per epoch; ``callbacks`` such as
:class:`EarlyStopping`; a tqdm progress bar in interactive sessions.

Examples:
  >>> import jax.numpy as jnp, optax, jaxloss
  >>> x = jnp.linspace(-1, 1, 16)[:, None]; y = 2.0 * x[:, 0]
  >>> obj = jaxloss.least_squares(fit_intercept=False)
  >>> res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.5), epochs=20, batch_size=4,
  ...                   validation_data=(x, y), verbose=0)
  >>> sorted(res.history), res.epochs, res.num_steps
  (['loss', 'val_loss'], 20, 80)
  >>> print(round(float(res.params["w"][0]), 3))
  2.0
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxloss import _models
from jaxloss import prox as _prox
from jaxloss._typing import Array, ArrayLike, PyTree
from jaxloss.objectives import _unpack
from jaxloss.optimize import _split, _tree_norm

__all__ = ["fit", "train_step", "TrainStep", "FitResult", "FitState", "Callback", "EarlyStopping"]


# -------------------------------------------------------------------------------------------------------
# train_step
# -------------------------------------------------------------------------------------------------------


def _has_line_search(state) -> bool:
    """Whether an optax state carries a line search's ``value``/``grad`` (``optax.lbfgs``, zoom/backtracking)."""
    return optax.tree.get(state, "value") is not None and optax.tree.get(state, "grad") is not None


class TrainStep:
    """A jitted training step ``step(params, opt_state, batch) -> (params, opt_state, metrics)``.

    Made by :func:`train_step`. ``step.init(params)`` makes the optimizer state (for the float leaves of
    ``params``, so it works for Equinox modules). ``metrics`` is ``{"loss": objective value before the
    step, "grad_norm": norm of the gradient used}`` plus whatever ``metrics_fn`` returns.
    ``step.evaluate(params, batch)`` is the jitted ``{"loss": value, **metrics_fn(...)}`` without a step.
    """

    def __init__(
        self,
        objective: Callable[[PyTree, PyTree], ArrayLike],
        optimizer: optax.GradientTransformation,
        *,
        prox_step: Any = None,
        metrics_fn: Optional[Callable[[Array, PyTree], Dict[str, ArrayLike]]] = None,
    ) -> None:
        if not callable(objective):
            raise TypeError(f"objective must be a function objective(params, batch) -> scalar; got {objective!r}")
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)); got {optimizer!r}"
            )
        self.objective = objective
        f, g = objective, None
        if prox_step is not None:
            f, g = _split(objective, None)
        opt = optimizer if g is None else optax.chain(optimizer, _prox.transform(g, prox_step))
        # Line-search optimizers (optax.lbfgs) need the value, the gradient and the value function of the
        # batch in update(); every other optimizer ignores them.
        self.optimizer = optax.with_extra_args_support(opt)
        self._f, self._g, self._metrics_fn = f, g, metrics_fn
        if metrics_fn is not None and not hasattr(f, "with_aux"):
            raise TypeError("metrics_fn needs an objective with .with_aux (a jaxloss.Objective)")
        self._jitted: Dict[Any, Any] = {}
        self._eval_jitted: Dict[Any, Any] = {}

    def init(self, params: PyTree) -> optax.OptState:
        """The optimizer state for ``params``."""
        state = self.optimizer.init(_models.partition(params, self.objective)[0])
        if self._g is not None and _has_line_search(state):
            raise ValueError(
                "a line-search optimizer (optax.lbfgs) cannot be combined with proximal steps (prox_step=); "
                "use a first-order optimizer such as optax.sgd or optax.adam"
            )
        return state

    def _value_fn(self, held, batch):
        f = self._f
        with_aux = hasattr(f, "with_aux")  # aux["params"]: updated model state (batch statistics)

        def value(q):
            full = held.merge(q)
            if with_aux:
                return f.with_aux(full, batch)
            return f(full, batch), None

        return value

    def _build(self):
        g, opt, metrics_fn = self._g, self.optimizer, self._metrics_fn

        def step(p, held, state, batch):
            value = self._value_fn(held, batch)
            (v, aux), grad = jax.value_and_grad(value, has_aux=True)(p)
            updates, state = opt.update(grad, state, p, value=v, grad=grad, value_fn=lambda q: value(q)[0])
            if g is not None:
                v = v + g(held.merge(p))
            new = optax.apply_updates(p, updates)
            metrics = {"loss": v, "grad_norm": _tree_norm(grad)}
            if metrics_fn is not None:
                metrics.update(metrics_fn(aux["predictions"], batch))
            # stateful models (linen batch_stats, NNX BatchStat): the held state after the forward pass
            held = _models.updated_held(None if aux is None else aux["params"], held, self.objective)
            return new, held, state, metrics

        return jax.jit(step)

    def _build_eval(self):
        g, metrics_fn = self._g, self._metrics_fn

        def evaluate(p, held, batch):
            v, aux = self._value_fn(held, batch)(p)
            if g is not None:
                v = v + g(held.merge(p))
            metrics = {"loss": v}
            if metrics_fn is not None:
                metrics.update(metrics_fn(aux["predictions"], batch))
            return metrics

        return jax.jit(evaluate)

    def __call__(
        self, params: PyTree, opt_state: optax.OptState, batch: PyTree
    ) -> Tuple[PyTree, optax.OptState, Dict[str, Array]]:
        diff, held = _models.partition(params, self.objective)  # Flax / Equinox models (jaxloss._models)
        fn = self._jitted.get("step")  # held is a pytree argument: jit caches by its static part
        if fn is None:
            fn = self._jitted["step"] = self._build()
        new, held, opt_state, metrics = fn(diff, held, opt_state, batch)
        return _models.restore(params, new, held), opt_state, metrics

    def evaluate(self, params: PyTree, batch: PyTree) -> Dict[str, Array]:
        """``{"loss": objective value, **metrics_fn(predictions, batch)}`` on ``batch``, no step taken."""
        diff, held = _models.partition(params, self.objective)
        fn = self._eval_jitted.get("eval")
        if fn is None:
            fn = self._eval_jitted["eval"] = self._build_eval()
        return fn(diff, held, batch)


def train_step(
    objective: Callable[[PyTree, PyTree], ArrayLike],
    optimizer: optax.GradientTransformation,
    *,
    prox_step: Any = None,
    metrics_fn: Optional[Callable[[Array, PyTree], Dict[str, ArrayLike]]] = None,
) -> TrainStep:
    """A jitted optax step: ``step(params, opt_state, batch) -> (params, opt_state, metrics)``.

    Args:
      objective: ``objective(params, batch) -> scalar``.
      optimizer: any ``optax.GradientTransformation``. Line-search optimizers (``optax.lbfgs()``) get the
        batch's value, gradient and value function; the line search then runs on each batch (a
        full batch makes it the deterministic L-BFGS of :func:`jaxloss.minimize`).
      prox_step: if given and the objective has non-smooth regularizer terms, differentiate only the smooth
        part and apply their proximal operator with this step (the learning rate, float or schedule) after
        the optimizer (exact zeros). Without it the non-smooth terms are differentiated like the rest
        (subgradients). Not combinable with a line-search optimizer.
      metrics_fn: optional ``metrics_fn(predictions, batch) -> dict`` evaluated on the forward pass
        (needs a :class:`jaxloss.Objective`), e.g. the batch accuracy.

    Returns:
      a :class:`TrainStep`; ``step.init(params)`` makes the optimizer state.

    Examples:
      >>> import jax.numpy as jnp, optax, jaxloss
      >>> obj = jaxloss.least_squares()
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([1.0, 2.0])
      >>> step = jaxloss.train_step(obj, optax.sgd(0.1))
      >>> params = obj.init_params(x)
      >>> state = step.init(params)
      >>> params, state, metrics = step(params, state, (x, y))
      >>> print(round(float(metrics["loss"]), 4))
      1.25
    """
    return TrainStep(objective, optimizer, prox_step=prox_step, metrics_fn=metrics_fn)


# -------------------------------------------------------------------------------------------------------
# Callbacks
# -------------------------------------------------------------------------------------------------------


class FitState:
    """What callbacks see and may change during :func:`fit`.

    Attributes:
      params: the current parameters (a callback may replace them, e.g. to restore the best ones).
      opt_state: the current optimizer state.
      epoch: the epoch just finished (0-based).
      history: ``{name: [value per epoch]}`` so far.
      stop_training: set to ``True`` to stop after this epoch.
    """

    def __init__(self, params: PyTree, opt_state: Any) -> None:
        self.params, self.opt_state = params, opt_state
        self.epoch = -1
        self.history: Dict[str, list] = {}
        self.stop_training = False


class Callback:
    """Base class of :func:`fit` callbacks; override any of the three hooks.

    ``on_epoch_end(epoch, logs, state)`` gets the epoch's ``logs`` (``{"loss": ..., "val_loss": ...,
    metrics ...}``, Python floats) and the :class:`FitState`; setting ``state.stop_training = True`` (or
    returning ``True``) stops training. A plain function ``fn(epoch, logs, state)`` in ``callbacks=`` is
    used as ``on_epoch_end``.
    """

    def on_train_begin(self, state: FitState) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: Dict[str, float], state: FitState) -> Optional[bool]:
        """Called after every epoch (after validation)."""
        return None

    def on_train_end(self, state: FitState) -> None:
        """Called once after the last epoch (also after an early stop)."""


class _FunctionCallback(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs, state):
        return self.fn(epoch, logs, state)


_MAX_WORDS = ("acc", "auc", "precision", "recall", "ndcg", "f1", "r2", "return")


class EarlyStopping(Callback):
    """Stops :func:`fit` when a monitored quantity has stopped improving (Keras's ``EarlyStopping``).

    After each epoch the monitored value ``v`` is an improvement when ``v < best - min_delta`` (mode
    ``"min"``) or ``v > best + min_delta`` (``"max"``). Training stops at the end of the epoch that makes
    ``patience`` consecutive epochs without improvement (``patience=0`` behaves like 1, as in Keras: the
    first epoch without improvement stops).

    Args:
      monitor: a key of the logs: ``"val_loss"`` (default; needs ``validation_data``), ``"loss"``, or a
        metric such as ``"val_accuracy"``. A key missing from the logs raises ``ValueError`` (Keras only
        warns).
      min_delta: the smallest change that counts as an improvement (>= 0).
      patience: epochs without improvement before stopping (>= 0).
      mode: ``"min"``, ``"max"`` or ``"auto"``: ``"max"`` when the name contains ``acc``, ``auc``,
        ``precision``, ``recall``, ``ndcg``, ``f1``, ``r2`` or ``return``, else ``"min"``.
      baseline: training stops if the monitored value does not beat this within ``patience`` epochs.
      restore_best: at the end of training (stopped early or not) set the parameters to those of the best
        epoch. Unlike Keras's ``restore_best_weights``, this also applies when no early stop happened;
        the optimizer state is not restored.
      start_from_epoch: epochs to wait before monitoring (warm-up).

    Attributes:
      best: the best monitored value; ``best_epoch``: its epoch (0-based; ``None`` before any);
      stopped_epoch: the epoch at which training was stopped (``None`` if it was not).

    Examples:
      >>> import jax.numpy as jnp, optax, jaxloss
      >>> x = jnp.linspace(-1, 1, 8)[:, None]; y = x[:, 0]
      >>> obj = jaxloss.least_squares(fit_intercept=False)
      >>> stop = jaxloss.EarlyStopping(monitor="loss", min_delta=1e-3)
      >>> res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(1.0), epochs=100, callbacks=[stop], verbose=0)
      >>> res.epochs < 100, stop.stopped_epoch == res.epochs - 1
      (True, True)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        baseline: Optional[float] = None,
        restore_best: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
        if min_delta < 0 or patience < 0 or start_from_epoch < 0:
            raise ValueError(
                f"min_delta, patience and start_from_epoch must be >= 0; got {min_delta}, {patience}, {start_from_epoch}"
            )
        if mode == "auto":
            mode = "max" if any(w in monitor.lower() for w in _MAX_WORDS) else "min"
        self.monitor, self.min_delta, self.patience, self.mode = monitor, float(min_delta), int(patience), mode
        self.baseline, self.restore_best, self.start_from_epoch = baseline, bool(restore_best), int(start_from_epoch)
        self._reset()

    def _reset(self):
        self.best = np.inf if self.mode == "min" else -np.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_epoch: Optional[int] = None
        self.best_params = None
        self.stopped_epoch: Optional[int] = None
        self.wait = 0

    def _better(self, value, reference):
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, state: FitState) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Dict[str, float], state: FitState) -> Optional[bool]:
        if self.monitor not in logs:
            hint = " (pass validation_data= to fit)" if self.monitor.startswith("val_") else ""
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not in the logs {sorted(logs)}{hint}")
        if epoch < self.start_from_epoch:
            return None
        value = float(logs[self.monitor])
        if self.best_params is None:
            self.best_params = state.params  # Keras keeps the first monitored epoch's weights too
        self.wait += 1
        if self._better(value, self.best):
            self.best, self.best_epoch, self.best_params = value, epoch, state.params
            self.wait = 0
            return None
        if self.wait >= max(self.patience, 1) and epoch > 0:
            self.stopped_epoch = epoch
            state.stop_training = True
        return None

    def on_train_end(self, state: FitState) -> None:
        if self.restore_best and self.best_params is not None:
            state.params = self.best_params


# -------------------------------------------------------------------------------------------------------
# fit
# -------------------------------------------------------------------------------------------------------


class FitResult(NamedTuple):
    """What :func:`fit` returns (its first seven fields are those of :class:`jaxloss.OptimizeResult`).

    Attributes:
      params: the final parameters (those of the best epoch with ``EarlyStopping(restore_best=True)``).
      value: the last epoch's training loss (``history["loss"][-1]``).
      grad_norm: the last mini-batch's gradient norm.
      num_steps: the number of optimizer steps taken.
      converged: always ``False`` (``fit`` has no convergence test; see :class:`EarlyStopping`).
      history: ``{name: np.ndarray of one value per epoch}``, Keras's ``History.history``: ``"loss"``
        (the training objective, the mean over the epoch's batches weighted by batch size, on the
        parameters before each step), each metric, and ``"val_loss"``/``"val_<metric>"`` on the
        parameters after the epoch.
      opt_state: the final optax state.
      epochs: the number of epochs run (less than requested after an early stop).
    """

    params: Any
    value: Any
    grad_norm: Any
    num_steps: int
    converged: bool
    history: Dict[str, np.ndarray]
    opt_state: Any
    epochs: int

    def __repr__(self):
        parts = [f"epochs={self.epochs}", f"num_steps={self.num_steps}"]
        parts += [f"{k}={v[-1]:.6g}" for k, v in self.history.items() if len(v)]
        n = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(_models.partition(self.params)[0]))
        return f"FitResult({', '.join(parts)}, params=<{n} numbers>)"


def _accuracy(predictions, targets):
    """Top-1 accuracy: integer labels ``[...]`` and logits ``[..., classes]``, or binary logits and {0, 1}
    targets of the same shape (logit > 0 predicts 1)."""
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.ndim == targets.ndim + 1:
        hit = jnp.argmax(predictions, axis=-1) == targets
    elif predictions.shape == targets.shape:
        hit = (predictions > 0) == (targets > 0.5)
    else:
        raise ValueError(
            f"accuracy needs logits [..., classes] with labels [...], or binary logits and targets of one shape; "
            f"got predictions {predictions.shape} and targets {targets.shape}"
        )
    dtype = predictions.dtype if jnp.issubdtype(predictions.dtype, jnp.floating) else jnp.float32
    return jnp.mean(hit.astype(dtype))


_NAMED_METRICS = {"accuracy": _accuracy, "acc": _accuracy}


def _metric_fns(metrics) -> Dict[str, Callable]:
    if metrics is None:
        return {}
    items = (
        metrics.items()
        if isinstance(metrics, Mapping)
        else [(m if isinstance(m, str) else getattr(m, "__name__", None), m) for m in metrics]
    )
    out = {}
    for name, fn in items:
        if isinstance(fn, str):
            if fn not in _NAMED_METRICS:
                raise ValueError(
                    f"unknown metric {fn!r}: pass one of {sorted(_NAMED_METRICS)} or a function fn(predictions, targets)"
                )
            fn = _NAMED_METRICS[fn]
        if not callable(fn) or not name:
            raise TypeError(
                f"metrics must be names or named functions fn(predictions, targets), or a dict name -> fn; got {metrics!r}"
            )
        if name in ("loss", "grad_norm") or name.startswith("val_"):
            raise ValueError(f"metric name {name!r} is reserved")
        out[name] = fn
    return out


def _is_array(x) -> bool:
    return isinstance(x, (np.ndarray, jax.Array))


def _num_examples(batch) -> int:
    """The leading size of a batch's first array (1 for a batch without arrays)."""
    for leaf in jax.tree_util.tree_leaves(batch):
        if np.ndim(leaf) >= 1:
            return int(np.shape(leaf)[0])
    return 1


def _as_dataset(data, name):
    """``(pytree of arrays, n)`` for the whole dataset (arrays, a tuple of arrays, a dict of arrays)."""
    if isinstance(data, tuple) and data and all(isinstance(d, (tuple, list)) for d in data):
        raise ValueError(
            f"{name} is a tuple of tuples: pass a list of batches [(inputs, targets), ...], or the whole dataset "
            "as one tuple of arrays (inputs, targets) with batch_size="
        )
    leaves = jax.tree_util.tree_leaves(data)
    bad = sorted({type(x).__name__ for x in leaves if not _is_array(x) or np.ndim(x) == 0})
    if not leaves or bad:
        raise TypeError(
            f"{name} as a dataset must be arrays with a leading example axis (an array, a tuple (inputs, targets"
            f"[, weights]) or a dict of arrays); got leaves {bad or 'none'}"
        )
    sizes = {int(np.shape(x)[0]) for x in leaves}
    if len(sizes) != 1:
        shapes = [tuple(np.shape(x)) for x in leaves]
        raise ValueError(
            f"the arrays of {name} must have the same number of examples (leading size); got shapes {shapes}"
        )
    return data, sizes.pop()


def _slices(n, batch_size, drop_last):
    """Start/stop of each batch: all full batches, and the remainder unless ``drop_last`` (a dataset
    smaller than ``batch_size`` is always one batch)."""
    if batch_size is None or batch_size >= n:
        return [(0, n)]
    stop = n - n % batch_size if drop_last else n
    return [(i, min(i + batch_size, n)) for i in range(0, stop, batch_size)]


class _Batches:
    """Resolves :func:`fit`'s ``batches`` argument once; ``epoch_batches(epoch)`` gives that epoch's."""

    def __init__(self, data, batch_size, drop_last, shuffle, seed, epochs, name="batches"):
        if batch_size is not None and (
            not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
        self.name, self.batch_size, self.drop_last, self.shuffle = name, batch_size, drop_last, shuffle
        self.rng = np.random.default_rng(seed)
        self.kind, self.data = None, data
        if callable(data) and not _is_array(data):
            self.kind = "function"
        elif isinstance(data, list) and not (batch_size is not None and data and all(_is_array(d) for d in data)):
            if batch_size is not None:
                raise ValueError(
                    f"batch_size= cuts a dataset of arrays into batches, but {name} is a list of {len(data)} batches; "
                    "drop batch_size, or pass the arrays as a tuple (inputs, targets)"
                )
            if not data:
                raise ValueError(f"{name} is an empty list")
            self.kind = "list"
        elif _is_array(data) or isinstance(data, (tuple, list, Mapping)):
            self.kind = "dataset"
            self.data, self.n = _as_dataset(tuple(data) if isinstance(data, list) else data, name)
        elif isinstance(data, Iterator):
            if epochs > 1:
                raise ValueError(
                    f"{name} is an iterator (e.g. a generator), which is exhausted after one epoch but epochs={epochs}; "
                    "pass a list of batches, a function epoch -> batches, or the arrays with batch_size="
                )
            self.kind = "iterable"
        elif hasattr(data, "__iter__"):
            self.kind = "iterable"
        else:
            raise TypeError(
                f"{name} must be arrays (an array, a tuple or a dict of arrays), a list of batches, a function "
                f"epoch -> batches, or an iterable of batches; got {type(data).__name__}"
            )
        if self.kind != "dataset" and batch_size is not None:
            raise ValueError(
                f"batch_size= needs {name} as arrays (a tuple or dict of arrays); got a {self.kind} of batches"
            )

    def epoch_batches(self, epoch):
        if self.kind == "function":
            return self.data(epoch)
        if self.kind != "dataset":
            return self.data
        spans = _slices(self.n, self.batch_size, self.drop_last)
        if len(spans) == 1 and spans[0] == (0, self.n):
            return [self.data]  # the whole dataset is one batch: no copy, no shuffle needed
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return [jax.tree_util.tree_map(lambda a, idx=order[i:j]: a[idx], self.data) for i, j in spans]


def _interactive() -> bool:
    """A Python prompt, ``python -i`` or a Jupyter/IPython kernel."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def _format_logs(logs):
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


class _Progress:
    """verbose 0: silent; 1: a tqdm bar over epochs (falls back to 2 without tqdm); 2: one line per epoch."""

    def __init__(self, verbose, epochs):
        self.verbose, self.epochs, self.bar = verbose, epochs, None
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is optional
                self.verbose = 2
            else:
                self.bar = tqdm(total=epochs, desc="fit", unit="epoch")

    def update(self, epoch, logs):
        if self.bar is not None:
            self.bar.set_postfix_str(_format_logs(logs), refresh=False)
            self.bar.update(1)
        elif self.verbose == 2:
            print(f"epoch {epoch + 1}/{self.epochs} - {_format_logs(logs)}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _weighted_means(records):
    """``{name: sum(n_b * v_b) / sum(n_b)}`` over ``records = [(n_b, {name: v_b})]`` in float64."""
    if not records:
        return {}
    sizes = np.asarray([n for n, _ in records], np.float64)
    values = jax.device_get([m for _, m in records])
    return {k: float(np.sum(sizes * np.asarray([m[k] for m in values], np.float64)) / np.sum(sizes)) for k in values[0]}


def fit(
    objective: Callable[[PyTree, PyTree], ArrayLike],
    params: PyTree,
    batches: Any,
    optimizer: optax.GradientTransformation,
    epochs: int = 1,
    *,
    batch_size: Optional[int] = None,
    validation_data: Any = None,
    validation_batch_size: Optional[int] = None,
    metrics: Union[None, Sequence, Mapping] = None,
    callbacks: Sequence[Union[Callback, Callable[..., Any]]] = (),
    verbose: Optional[int] = None,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    prox_step: Any = None,
) -> FitResult:
    """Mini-batch training for ``epochs`` epochs, with validation, metrics history and callbacks.

    Each epoch runs :func:`train_step` over the epoch's batches, evaluates ``validation_data`` with the
    parameters after the epoch, records the epoch's logs in ``history`` and calls the callbacks. If the
    training loss of an epoch is not finite, training stops there with a ``RuntimeWarning``.

    Args:
      objective: ``objective(params, batch) -> scalar``: a :class:`jaxloss.Objective` (batches
        ``(inputs, targets[, weights])`` or dicts with keys ``"inputs"``, ``"targets"``[, ``"weights"``]) or
        any function.
      params: the initial parameters (any pytree; an Equinox module).
      batches: one of

        * the whole dataset as arrays: an array, a tuple ``(inputs, targets[, weights])`` or a dict of
          arrays, all with the same leading (example) size. With ``batch_size`` it is shuffled every epoch
          (``shuffle``, NumPy generator seeded by ``seed``) and cut into batches; without ``batch_size`` (or
          with a ``batch_size`` at least the number of examples) the whole dataset is one batch
          (full-batch training; Keras would default to 32);
        * a list of batches, used in order every epoch;
        * a function ``epoch -> iterable of batches``;
        * an iterator of batches (a generator) for ``epochs=1`` only (it is exhausted after one pass).
      optimizer: an optax ``GradientTransformation``; line-search optimizers such as ``optax.lbfgs()`` work
        (each step's line search runs on its batch: use full batches for a deterministic L-BFGS).
      epochs: the maximum number of passes (callbacks may stop earlier).
      batch_size: see ``batches``. ``drop_last`` drops an incomplete last batch when there is at least one
        full batch (one shape, one compilation); with ``drop_last=False`` it is trained on as well.
      validation_data: data evaluated after each epoch, in the forms of ``batches`` (arrays are cut into
        ``validation_batch_size`` batches, default ``batch_size``, in order, nothing dropped); gives
        ``"val_loss"`` and ``"val_<metric>"``. The value is the mean over batches weighted by batch size,
        which is the objective on the whole set when its data term is a mean.
      metrics: names (``"accuracy"``: top-1 from logits, or binary from logits > 0) or functions
        ``fn(predictions, targets) -> scalar`` (a list, named by ``__name__``, or a dict name -> fn), computed
        on each batch's forward pass and averaged over the epoch weighted by batch size. Needs a
        :class:`jaxloss.Objective`.
      callbacks: :class:`Callback` objects (:class:`EarlyStopping`, ...) or functions
        ``fn(epoch, logs, state)`` called after every epoch.
      verbose: ``0`` silent, ``1`` a tqdm progress bar over epochs with the latest logs (one printed line
        per epoch if tqdm is not installed), ``2`` one printed line per epoch. ``None`` (default): ``1`` in
        interactive sessions (a Python prompt, IPython, Jupyter), else ``0``.
      shuffle: shuffle the arrays every epoch (with ``batch_size``).
      seed: the seed of the shuffling.
      drop_last: see ``batch_size``.
      prox_step: see :func:`train_step`.

    Returns:
      a :class:`FitResult` with ``params``, ``history`` (``{"loss": [...], "val_loss": [...], ...}``, one
      value per epoch run), ``epochs`` (the number run), ``num_steps`` and the final ``opt_state``.

    Raises:
      ValueError: ``batch_size`` not a positive integer; dataset arrays of different lengths; an iterator
        with ``epochs > 1``; an epoch without batches; ``batch_size`` with a list of batches.
      TypeError: ``metrics`` with an objective that is not a :class:`jaxloss.Objective`.

    Examples:
      >>> import jax.numpy as jnp, optax, jaxloss
      >>> x = jnp.linspace(-1, 1, 8)[:, None]; y = 3.0 * x[:, 0]
      >>> obj = jaxloss.least_squares(fit_intercept=False)
      >>> res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.5), epochs=50, batch_size=4, verbose=0)
      >>> print(res.num_steps, round(float(res.params["w"][0]), 3))
      100 3.0
    """
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer; got {epochs!r}")
    fns = _metric_fns(metrics)
    metrics_fn = None
    if fns:
        if not hasattr(objective, "with_aux"):
            raise TypeError("metrics= needs a jaxloss.Objective (it computes them from the model's predictions)")

        def metrics_fn(predictions, batch):
            targets = _unpack(batch)[1]
            return {name: fn(predictions, targets) for name, fn in fns.items()}

    step = train_step(objective, optimizer, prox_step=prox_step, metrics_fn=metrics_fn)
    train = _Batches(batches, batch_size, drop_last, shuffle, seed, epochs)
    val = None
    if validation_data is not None:
        vbs = validation_batch_size if validation_batch_size is not None else batch_size
        val = _Batches(
            validation_data,
            vbs if _is_array(validation_data) or isinstance(validation_data, (tuple, Mapping)) else None,
            False,
            False,
            0,
            epochs,
            name="validation_data",
        )
    cbs = [c if isinstance(c, Callback) else _FunctionCallback(c) for c in callbacks]
    bad = [c for c in cbs if isinstance(c, _FunctionCallback) and not callable(c.fn)]
    if bad:
        raise TypeError(
            f"callbacks must be jaxloss.Callback objects or functions fn(epoch, logs, state); got {bad[0].fn!r}"
        )
    if verbose is None:
        verbose = 1 if _interactive() else 0

    state = FitState(params, step.init(params))
    num_steps, grad_norm, epoch = 0, jnp.asarray(jnp.nan), -1
    for cb in cbs:
        cb.on_train_begin(state)
    progress = _Progress(verbose, epochs)
    try:
        for epoch in range(epochs):
            records = []
            for batch in train.epoch_batches(epoch):
                state.params, state.opt_state, m = step(state.params, state.opt_state, batch)
                grad_norm = m.pop("grad_norm")
                records.append((_num_examples(batch), m))
                num_steps += 1
            if not records:
                raise ValueError(
                    f"epoch {epoch} had no batches: {train.name} gave none (an exhausted iterator, or a function "
                    "epoch -> batches that returned an empty iterable)"
                )
            logs = _weighted_means(records)
            if val is not None:
                vrec = [(_num_examples(b), step.evaluate(state.params, b)) for b in val.epoch_batches(epoch)]
                if not vrec:
                    raise ValueError("validation_data gave no batches")
                logs.update({f"val_{k}": v for k, v in _weighted_means(vrec).items()})
            state.epoch = epoch
            for k, v in logs.items():
                state.history.setdefault(k, []).append(v)
            progress.update(epoch, logs)
            for cb in cbs:
                if cb.on_epoch_end(epoch, dict(logs), state) is True:
                    state.stop_training = True
            if not np.isfinite(logs["loss"]):
                warnings.warn(
                    f"fit: the training loss is {logs['loss']} at epoch {epoch}; training stopped "
                    "(a smaller learning rate, or a loss outside its inputs' domain?)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                state.stop_training = True
            if state.stop_training:
                break
    finally:
        progress.close()
    for cb in cbs:
        cb.on_train_end(state)
    history = {k: np.asarray(v, np.float64) for k, v in state.history.items()}
    value = history["loss"][-1] if history else np.nan
    return FitResult(state.params, value, grad_norm, num_steps, False, history, state.opt_state, epoch + 1)
