"""Mini-batch training on top of optax: :func:`train_step` (one jitted step) and :func:`fit` (epochs).

Both take any ``objective(params, batch) -> scalar`` (a :class:`jaxloss.Objective` or a plain function)
and any parameter pytree, including an Equinox module: leaves that are not floating-point arrays are held
fixed and never reach the optimizer (the same split as :func:`jaxloss.minimize`).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxloss import _models
from jaxloss import prox as _prox
from jaxloss.optimize import OptimizeResult, _split, _tree_norm

__all__ = ["fit", "train_step", "TrainStep"]




class TrainStep:
    """A jitted training step ``step(params, opt_state, batch) -> (params, opt_state, metrics)``.

    Made by :func:`train_step`. ``step.init(params)`` makes the optimizer state (for the trainable arrays of
    ``params``: float leaves, an Equinox module's arrays, linen ``{"params"}``, NNX ``nnx.Param``; see
    ``jaxloss._models``). Non-trainable state (linen ``batch_stats``, NNX ``BatchStat``) is carried and its
    update after the forward pass returned; an NNX module is updated in place and returned. ``metrics`` is ``{"loss": objective value before the
    step, "grad_norm": norm of the gradient used}`` plus whatever ``metrics_fn`` returns.
    """

    def __init__(self, objective, optimizer, *, prox_step=None, metrics_fn=None):
        self.objective = objective
        f, g = objective, None
        if prox_step is not None:
            f, g = _split(objective, None)
        self.optimizer = optimizer if g is None else optax.chain(optimizer, _prox.transform(g, prox_step))
        self._f, self._g, self._metrics_fn = f, g, metrics_fn
        self._step = None

    def init(self, params):
        """The optimizer state for ``params``."""
        return self.optimizer.init(_models.partition(params, self.objective)[0])

    def _build(self):
        f, g, opt, metrics_fn = self._f, self._g, self.optimizer, self._metrics_fn
        with_aux = hasattr(f, "with_aux")
        if metrics_fn is not None and not with_aux:
            raise TypeError("metrics_fn needs an objective with .with_aux (a jaxloss.Objective)")

        def step(p, held, state, batch):
            def value(q):
                full = held.merge(q)
                if with_aux:
                    return f.with_aux(full, batch)
                return f(full, batch), None

            (v, aux), grad = jax.value_and_grad(value, has_aux=True)(p)
            if g is not None:
                v = v + g(held.merge(p))
            updates, state = opt.update(grad, state, p)
            new = optax.apply_updates(p, updates)
            metrics = {"loss": v, "grad_norm": _tree_norm(grad)}
            if metrics_fn is not None:
                metrics.update(metrics_fn(aux["predictions"], batch))
            # stateful models (linen batch_stats, NNX BatchStat): the held state after the forward pass
            held = _models.updated_held(aux["params"] if with_aux else None, held, self.objective)
            return new, held, state, metrics

        return jax.jit(step)

    def __call__(self, params, opt_state, batch):
        diff, held = _models.partition(params, self.objective)  # Flax / Equinox models (jaxloss._models)
        if self._step is None:
            self._step = self._build()
        new, held, opt_state, metrics = self._step(diff, held, opt_state, batch)
        return _models.restore(params, new, held), opt_state, metrics


def train_step(objective, optimizer, *, prox_step=None, metrics_fn=None) -> TrainStep:
    """A jitted optax step: ``step(params, opt_state, batch) -> (params, opt_state, metrics)``.

    Args:
      objective: ``objective(params, batch) -> scalar``.
      optimizer: any ``optax.GradientTransformation`` (not a line-search one: a mini-batch step has no
        value function to search).
      prox_step: if given and the objective has non-smooth regularizer terms, differentiate only the smooth
        part and apply their proximal operator with this step (the learning rate, float or schedule) after
        the optimizer (exact zeros). Without it the non-smooth terms are differentiated like the rest
        (subgradients).
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


def _progress(iterable, enabled, **kwargs):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress bar is optional
        return iterable
    return tqdm(iterable, **kwargs)


def _batches_for_epoch(batches, epoch, batch_size, rng, drop_last):
    if batch_size is not None:
        arrays = tuple(batches)
        n = len(arrays[0])
        order = rng.permutation(n)
        stop = n - batch_size + 1 if drop_last else n
        return [tuple(a[order[i : i + batch_size]] for a in arrays) for i in range(0, max(stop, 0), batch_size)]
    if callable(batches):
        return batches(epoch)
    return batches


def fit(
    objective,
    params,
    batches,
    optimizer,
    epochs: int = 1,
    *,
    batch_size: Optional[int] = None,
    seed: int = 0,
    drop_last: bool = True,
    prox_step=None,
    progress: bool = False,
    callback: Optional[Callable] = None,
) -> OptimizeResult:
    """Mini-batch training for ``epochs`` epochs with a loss history.

    Args:
      objective: ``objective(params, batch) -> scalar``.
      params: the initial parameters.
      batches: one of

        * a re-iterable collection of batches (a list), used in order every epoch;
        * a function ``epoch -> iterable of batches``;
        * with ``batch_size``: the whole dataset as a tuple of arrays ``(inputs, targets[, weights])``,
          shuffled every epoch (NumPy generator seeded by ``seed``) and cut into batches.
      optimizer: an optax ``GradientTransformation``.
      epochs: the number of passes.
      batch_size: see ``batches``; ``drop_last`` drops an incomplete last batch (one shape, one compile).
      prox_step: see :func:`train_step`.
      progress: show a tqdm progress bar over epochs (if tqdm is installed).
      callback: optional ``callback(epoch, params, mean_loss)`` after each epoch.

    Returns:
      an :class:`OptimizeResult` whose ``history`` is the mean loss per epoch (a NumPy array) and whose
      ``value`` is its last entry; ``converged`` is ``False``.

    Examples:
      >>> import jax.numpy as jnp, optax, jaxloss
      >>> x = jnp.linspace(-1, 1, 8)[:, None]; y = 3.0 * x[:, 0]
      >>> obj = jaxloss.least_squares(fit_intercept=False)
      >>> res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.5), epochs=50, batch_size=4)
      >>> print(res.num_steps, round(float(res.params["w"][0]), 3))
      100 3.0
    """
    step = train_step(objective, optimizer, prox_step=prox_step)
    opt_state = step.init(params)
    rng = np.random.default_rng(seed)
    history = []
    num_steps = 0
    grad_norm = jnp.asarray(jnp.nan)
    bar = _progress(range(epochs), progress, desc="fit", unit="epoch")
    for epoch in bar:
        losses = []
        for batch in _batches_for_epoch(batches, epoch, batch_size, rng, drop_last):
            params, opt_state, metrics = step(params, opt_state, batch)
            losses.append(metrics["loss"])
            grad_norm = metrics["grad_norm"]
            num_steps += 1
        if not losses:
            raise ValueError(f"epoch {epoch} had no batches (a generator is exhausted after one epoch: pass a list or a function)")
        mean = float(np.mean(np.asarray(jax.device_get(losses), dtype=np.float64)))
        history.append(mean)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{mean:.4f}")
        if callback is not None:
            callback(epoch, params, mean)
    history = np.asarray(history)
    value = history[-1] if len(history) else np.nan
    return OptimizeResult(params, value, grad_norm, num_steps, False, history, opt_state)
