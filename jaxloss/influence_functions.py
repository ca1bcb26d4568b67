"""Influence functions (Koh & Liang, 2017): the effect of removing one training example on a test loss,
without retraining.

At a minimizer ``theta`` of ``R(theta) = sum_j w_j l_j(theta) / sum_j w_j + r(theta)`` (a
:class:`jaxloss.Objective` on ``(inputs, targets[, weights])``, unweighted: ``w_j = 1``), removing
training example ``i`` (``w_i -> 0``) moves the solution by, to first order,
``delta theta_i = w_i H^{-1} (grad l_i - grad L) / sum_j w_j`` (``H`` the Hessian of ``R``, ``grad L``
the gradient of the data term), so the test loss ``T`` changes by

``influence[i] = w_i (v . grad l_i - v . grad L) / sum_j w_j``  with  ``v = H^{-1} grad T``.

**Sign convention**: ``influence[i] > 0`` means removing example ``i`` *raises* the test loss (the example
helps the test set); ``< 0``: removing it lowers the test loss (a harmful example, e.g. a mislabelled
one). Koh & Liang's ``I_up,loss(z, z_test)`` (the effect of *up-weighting*) is ``-n * influence`` for
unweighted data. The ``- v . grad L`` term (zero without a regularizer) is the same for every example:
it keeps the exact mean-over-``n - 1`` normalisation of leave-one-out retraining.

``v`` is computed once per test set with the linear solver of :mod:`jaxloss.implicit` (a direct solve
for small models, else conjugate gradient with Hessian-vector products); the ``v . grad l_i`` are
forward-mode derivatives of the per-example losses, ``chunk_size`` examples at a time (never an
``[n, parameters]`` matrix).

When to use which: :func:`influence` asks "what if this example had not been in the training set" at a
converged solution of a (nearly) convex objective: linear models, the ready objectives, small networks
trained to convergence (with ``damping`` for a non-convex loss). :func:`jaxloss.tracin_influence`
follows the training trajectory instead (gradient dot products at checkpoints): no Hessian, no
convergence assumption, cheap for large networks, but it answers "how much did this example's gradient
steps lower that test loss", a different question.

References:
  Koh & Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Callable, Optional

import jax
import jax.flatten_util
import jax.numpy as jnp

from jaxloss import _models
from jaxloss import implicit as _implicit
from jaxloss._typing import Array, PyTree

if TYPE_CHECKING:
    from jaxloss.objectives import Objective

__all__ = ["influence"]


def _leading(tree) -> int:
    sizes = {int(x.shape[0]) for x in jax.tree_util.tree_leaves(tree) if getattr(x, "ndim", 0) >= 1}
    if len(sizes) != 1:
        raise ValueError(f"train_data leaves must share one leading (example) axis; got lengths {sorted(sizes)}")
    return sizes.pop()


def influence(
    objective: Objective,
    params: PyTree,
    train_data: PyTree,
    test_data: PyTree,
    *,
    damping: float = 0.0,
    test_loss: Optional[Callable] = None,
    chunk_size: Optional[int] = None,
    implicit_diff: Optional[_implicit.ImplicitDiff] = None,
) -> Array:
    """The first-order change of the test loss when each training example is removed (Koh & Liang 2017).

    ``influence[i] = w_i (v . grad l_i - v . grad L) / sum_j w_j`` with ``v = (H + damping I)^{-1} grad T``
    (the module docstring derives it). Positive: removing example ``i`` raises the test loss.

    Use it at a converged solution of a (nearly) convex objective ("what if this example had not been in
    the training set"); use :func:`jaxloss.tracin_influence` for a network along its training trajectory
    (no Hessian, no convergence assumption; "how much did this example's steps lower that test loss").

    Args:
      objective: a :class:`jaxloss.Objective` (smooth: no ``l1``/``group_lasso`` terms) that ``params``
        minimises on ``train_data``.
      params: the trained parameters (a minimizer; for a network, trained to convergence): a pytree, Flax
        linen variables (collections other than ``params``, e.g. ``batch_stats``, are held fixed), an NNX
        module or state (its ``nnx.Param`` state is differentiated) or an Equinox module.
      train_data: ``(inputs, targets)`` or ``(inputs, targets, weights)``, ``n`` examples.
      test_data: the test batch; the test loss is ``objective.data_term(params, test_data)`` (the mean
        loss, no regularizer) unless ``test_loss(params) -> scalar`` is given.
      damping: ``lambda >= 0`` added to the Hessian's diagonal (needed when it is singular or indefinite,
        e.g. a neural network); biases the result towards a gradient dot product.
      test_loss: optional ``test_loss(params) -> scalar`` replacing the default.
      chunk_size: training examples per forward-mode pass (static); ``None``: all at once.
      implicit_diff: a :class:`jaxloss.ImplicitDiff` for the inverse-Hessian product (its ``damping`` is
        replaced by ``damping``); a failed solve gives NaN (never a plausible number).

    Returns:
      ``[n]`` predicted ``T(theta_without_i) - T(theta)``; positive: removing the example raises the test
      loss.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0.1, 0.9, 2.2, 2.8])
      >>> obj = jaxloss.least_squares()
      >>> params = jaxloss.minimize(obj, obj.init_params(x), (x, y), tol=1e-10).params
      >>> scores = jaxloss.influence(obj, params, (x, y), (jnp.array([[4.0]]), jnp.array([4.0])))
      >>> print([round(float(s), 3) for s in scores])  # NumPy: v = H^-1 grad T, v . grad l_i / n
      [-0.001, 0.0, 0.017, -0.016]
    """
    for attr in ("per_sample", "data_term", "smooth"):
        if not hasattr(objective, attr):
            raise TypeError(f"influence needs a jaxloss.Objective (per-example losses); got {objective!r}")
    if getattr(objective, "nonsmooth", None) is not None:
        raise NotImplementedError(f"influence needs a smooth objective; {objective.nonsmooth!r} is not differentiable")
    if not damping >= 0:
        raise ValueError(f"damping must be >= 0; got {damping}")
    n = _leading(train_data)
    if n == 0:
        raise ValueError("train_data has no examples")
    # Plain pytrees, Flax linen variables (batch_stats carried), NNX modules or states, Equinox modules: the
    # trainable arrays are differentiated, the rest is held (jaxloss._models, as in every entry point).
    diff, held = _models.partition(params, objective)
    opts = dataclasses.replace(implicit_diff or _implicit.ImplicitDiff(), damping=float(damping))
    chunk = None if chunk_size is None or int(chunk_size) >= n else int(chunk_size)
    return _scores(objective, diff, held, train_data, test_data, test_loss=test_loss, chunk_size=chunk, opts=opts)


@functools.partial(jax.jit, static_argnames=("test_loss", "chunk_size", "opts"))
def _scores(objective, diff, held, train_data, test_data, *, test_loss, chunk_size, opts):
    n = _leading(train_data)

    def full(p):
        return held.merge(p)

    def objective_value(p):
        return objective(full(p), train_data)

    if test_loss is None:
        test_value = lambda p: objective.data_term(full(p), test_data)  # noqa: E731
    else:
        test_value = lambda p: test_loss(full(p))  # noqa: E731
    g_test = jax.grad(test_value)(diff)
    flat_g, unravel = jax.flatten_util.ravel_pytree(g_test)

    def hvp(v):
        return jax.flatten_util.ravel_pytree(jax.jvp(jax.grad(objective_value), (diff,), (unravel(v),))[1])[0]

    v = unravel(_implicit.linear_solve(hvp, flat_g, symmetric=True, options=opts))

    inputs, targets = train_data[0], train_data[1]
    weights = train_data[2] if len(train_data) == 3 else None

    def directional(chunk):
        """``v . grad l_i`` for the examples of ``chunk``: one forward-mode pass."""
        return jax.jvp(lambda p: objective.per_sample(full(p), chunk), (diff,), (v,))[1]

    if chunk_size is None:
        d = directional((inputs, targets))
    else:
        pad = (-n) % chunk_size

        def chunks(a):
            a = jnp.asarray(a)
            a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) if pad else a
            return a.reshape((-1, chunk_size) + a.shape[1:])

        d = jax.lax.map(directional, jax.tree_util.tree_map(chunks, (inputs, targets))).reshape(-1)[:n]
    if weights is None:
        w = jnp.ones((n,), d.dtype)
    else:
        w = jnp.broadcast_to(jnp.asarray(weights, d.dtype), (n,))
    total = jnp.sum(w)
    mean_d = jnp.sum(w * d) / total  # v . grad L
    return w * (d - mean_d) / total
