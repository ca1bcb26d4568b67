"""Optimization drivers on top of optax: full-batch :func:`minimize` (mini-batch :func:`jaxloss.fit` and
:func:`jaxloss.train_step` live in :mod:`jaxloss.training`).

All three take any ``objective(params, data) -> scalar`` (a :class:`jaxloss.Objective` or a plain
function) and any parameter pytree, including an Equinox module: leaves that are not floating-point arrays
(functions, integers) are held fixed and never reach the optimizer. When the objective's regularizer has
non-smooth terms (``l1``, ``group_lasso``, ``elastic_net``), gradients are taken of the smooth part only
and the non-smooth part enters through its proximal operator, so sparse solutions have exact zeros.

Examples:
  >>> import jax.numpy as jnp, optax, jaxloss
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  >>> y = jnp.array([1.0, 2.0, 3.0])
  >>> obj = jaxloss.least_squares(fit_intercept=False)
  >>> res = jaxloss.minimize(obj, obj.init_params(x), (x, y), tol=1e-8)
  >>> print(bool(res.converged), [round(float(v), 4) for v in res.params["w"]])
  True [1.0, 2.0]
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxloss import _models
from jaxloss import prox as _prox
from jaxloss import regularizers as _regs

__all__ = ["OptimizeResult", "minimize"]


class OptimizeResult(NamedTuple):
    """What :func:`minimize` and :func:`fit` return.

    Attributes:
      params: the final parameters (same structure as the initial ones).
      value: the final objective value (for :func:`fit`: the mean loss of the last epoch).
      grad_norm: the final gradient norm; for a non-smooth regularizer, the norm of the proximal-gradient
        mapping ``(x - prox(x - t grad f(x), t)) / t``, which is 0 exactly at a minimum (for :func:`fit`:
        the last mini-batch's gradient norm).
      num_steps: the number of optimizer steps taken.
      converged: whether ``grad_norm <= tol`` was reached within ``max_steps`` (always ``False`` for
        :func:`fit`, which has no convergence test).
      history: the objective value before the first step and after each step (:func:`minimize`; NaN-padded
        to ``max_steps + 1`` entries when called under a transformation), or the mean loss per epoch
        (:func:`fit`).
      opt_state: the final optax state (``None`` for the built-in proximal gradient method).
    """

    params: Any
    value: Any
    grad_norm: Any
    num_steps: Any
    converged: Any
    history: Any
    opt_state: Any = None


# -------------------------------------------------------------------------------------------------------
# Parameters that are not arrays (Equinox modules): split them off, like equinox.partition / combine.
# -------------------------------------------------------------------------------------------------------


def _is_param(x) -> bool:
    if isinstance(x, (float, complex)) and not isinstance(x, bool):
        return True
    return isinstance(x, (jax.Array, np.ndarray, np.generic)) and jnp.issubdtype(jnp.result_type(x), jnp.inexact)


class _Static:
    """The non-array leaves and the tree structure; hashable when the leaves are (for jit caching)."""

    def __init__(self, treedef, leaves, is_param):
        self.treedef, self.leaves, self.is_param = treedef, tuple(leaves), tuple(is_param)

    def _key(self):
        return (self.treedef, self.is_param, tuple(id(x) if isinstance(x, np.ndarray) else x for x in self.leaves))

    def __hash__(self):
        try:
            return hash(self._key())
        except TypeError:
            return id(self)

    def __eq__(self, other):
        if not isinstance(other, _Static):
            return False
        try:
            return self._key() == other._key()
        except (TypeError, ValueError):
            return self is other


def _partition(tree, weak=False):
    """``(float leaves, rest)``; ``weak=True`` keeps Python floats weakly typed (hyperparameters: a float
    strength must not promote float32 data to float64)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    is_param = [_is_param(x) for x in leaves]
    convert = (lambda x: jnp.asarray(x)) if weak else (lambda x: jnp.asarray(x, dtype=jnp.result_type(x)))
    diff = [convert(x) if p else None for x, p in zip(leaves, is_param)]
    static = _Static(treedef, [None if p else x for x, p in zip(leaves, is_param)], is_param)
    return jax.tree_util.tree_unflatten(treedef, diff), static


def _combine(diff, static: _Static):
    if isinstance(static, _models.Held):  # model parameters (see jaxloss._models)
        return static.merge(diff)
    it = iter(jax.tree_util.tree_leaves(diff))
    leaves = [next(it) if p else x for x, p in zip(static.leaves, static.is_param)]
    return jax.tree_util.tree_unflatten(static.treedef, leaves)


def _tree_norm(tree):
    leaves = [jnp.sum(jnp.square(jnp.abs(x))) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.sqrt(sum(leaves[1:], leaves[0])) if leaves else jnp.zeros(())


def _tree_sub(a, b):
    return jax.tree_util.tree_map(lambda x, y: x - y, a, b)


def _tree_vdot(a, b):
    parts = [jnp.sum(x * y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))]
    return sum(parts[1:], parts[0]) if parts else jnp.zeros(())


def _split(objective, regularizer):
    """``(smooth f(params, data), non-smooth Regularizer or None)`` of ``objective + regularizer``."""
    nonsmooth = None
    f = objective
    if hasattr(objective, "smooth") and hasattr(objective, "nonsmooth"):
        f, nonsmooth = objective.smooth, objective.nonsmooth
    if regularizer is not None:
        extra_smooth = regularizer
        if isinstance(regularizer, _regs.Regularizer):
            extra_smooth = regularizer.smooth_part
            ns = regularizer.nonsmooth_part
            if ns is not None:
                nonsmooth = ns if nonsmooth is None else nonsmooth + ns
        if extra_smooth is not None:
            base = f
            f = lambda params, data: base(params, data) + extra_smooth(params)  # noqa: E731
    if nonsmooth is not None and not nonsmooth.has_prox:
        raise NotImplementedError(f"the non-smooth regularizer {nonsmooth!r} has no closed-form proximal operator")
    return f, nonsmooth


# -------------------------------------------------------------------------------------------------------
# minimize
# -------------------------------------------------------------------------------------------------------

_CACHE: "collections.OrderedDict[Any, Callable]" = collections.OrderedDict()
_CACHE_SIZE = 64


def _cached(key, build):
    try:
        hash(key)
    except TypeError:
        return build()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    fn = _CACHE[key] = build()
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fn


class _Data:
    """A function (objective or regularizer) split into its float leaves, passed to the jitted loop as
    data, and the rest, part of the compilation cache key. A new strength then reuses the compiled loop.
    Functions that are not pytrees (or whose static part is unhashable) are closed over instead."""

    def __init__(self, fn):
        self.dyn, self.static = None, None
        if fn is None:
            self.key, self._fixed = None, None
            return
        dyn, static = _partition(fn, weak=True)
        try:
            hash(static)
            hashable = hash(static) != id(static)
        except TypeError:
            hashable = False
        if hashable:
            self.dyn, self.static, self.key, self._fixed = dyn, static, static, None
        else:
            self.key, self._fixed = fn, fn

    def rebuild(self, dyn):
        return self._fixed if self.static is None else _combine(dyn, self.static)


def _optax_loop(F, G, optimizer, static, max_steps, prox_step):
    """The jitted loop for an optax optimizer (plus a proximal step when ``G`` holds a non-smooth part)."""

    def run(p0, data, tol, f_dyn, g_dyn):
        f, g = F.rebuild(f_dyn), G.rebuild(g_dyn)
        opt = optimizer if g is None else optax.chain(optimizer, _prox.transform(g, prox_step))
        opt = optax.with_extra_args_support(opt)
        fd = lambda p: f(_combine(p, static), data)  # noqa: E731
        state0 = opt.init(p0)
        from_state = optax.tree.get(state0, "value") is not None and optax.tree.get(state0, "grad") is not None
        if from_state and g is not None:
            raise ValueError("a line-search optimizer cannot be combined with proximal steps; use optimizer=None")
        vg_state = optax.value_and_grad_from_state(fd) if from_state else None

        def measure(p, v, grad, count):
            """(full objective value, gradient or gradient-mapping norm)."""
            if g is None:
                return v, _tree_norm(grad)
            t = prox_step(count) if callable(prox_step) else prox_step
            t = jnp.asarray(t, v.dtype)
            moved = g.prox(jax.tree_util.tree_map(lambda x, d: x - t * d, p, grad), t)
            return v + g(p), _tree_norm(_tree_sub(p, moved)) / t

        v0, grad0 = jax.value_and_grad(fd)(p0)
        full0, gnorm0 = measure(p0, v0, grad0, 0)
        hist = jnp.full((max_steps + 1,), jnp.nan, full0.dtype).at[0].set(full0)

        def cond(c):
            _, _, full, _, gnorm, k, _ = c
            return (k < max_steps) & (gnorm > tol) & jnp.isfinite(full)

        def body(c):
            p, state, value, grad, _, k, hist = c  # value: f(p) (g is None whenever it is used)
            updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=fd)
            p = optax.apply_updates(p, updates)
            v, grad = vg_state(p, state=state) if from_state else jax.value_and_grad(fd)(p)
            full, gnorm = measure(p, v, grad, k + 1)
            return p, state, full.astype(hist.dtype), grad, gnorm.astype(hist.dtype), k + 1, hist.at[k + 1].set(full)

        carry = (p0, state0, full0, grad0, gnorm0.astype(full0.dtype), jnp.zeros((), jnp.int32), hist)
        p, state, full, _, gnorm, k, hist = jax.lax.while_loop(cond, body, carry)
        return p, full, gnorm, k, gnorm <= tol, hist, state

    return jax.jit(run)


def _fista_loop(F, G, static, max_steps):
    """Accelerated proximal gradient (FISTA) with backtracking line search and function-value restart."""

    def run(p0, data, tol, f_dyn, g_dyn):
        f, g = F.rebuild(f_dyn), G.rebuild(g_dyn)
        fd = lambda p: f(_combine(p, static), data)  # noqa: E731
        vg = jax.value_and_grad(fd)
        total = lambda p, v: v + g(p)  # noqa: E731

        f0 = fd(p0)
        full0 = total(p0, f0)
        dtype = full0.dtype
        hist = jnp.full((max_steps + 1,), jnp.nan, dtype).at[0].set(full0)

        def prox_step(y, fy, gy, s):
            z = g.prox(jax.tree_util.tree_map(lambda a, b: a - s * b, y, gy), s)
            d = _tree_sub(z, y)
            fz = fd(z)
            ok = fz <= fy + _tree_vdot(gy, d) + _tree_vdot(d, d) / (2.0 * s) + 1e-12 * jnp.abs(fy)
            return z, fz, d, ok

        def cond(c):
            k, gnorm, full = c[0], c[5], c[3]
            return (k < max_steps) & (gnorm > tol) & jnp.isfinite(full)

        def body(c):
            k, x, y, Fx, t, _, s, hist = c
            fy, gy = vg(y)

            def bt_cond(b):
                return (~b[4]) & (b[5] < 60)

            def bt_body(b):
                s = b[0] * 0.5
                z, fz, d, ok = prox_step(y, fy, gy, s)
                return s, z, fz, d, ok, b[5] + 1

            z, fz, d, ok = prox_step(y, fy, gy, s)
            s, z, fz, d, _, _ = jax.lax.while_loop(bt_cond, bt_body, (s, z, fz, d, ok, 0))
            Fz = total(z, fz)
            gnorm = _tree_norm(d) / s  # gradient mapping at y
            # z is accepted; if the value went up, the momentum restarts from z (O'Donoghue & Candes 2015)
            restart = Fz > Fx
            t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
            beta = jnp.where(restart, 0.0, (t - 1.0) / t_new)
            y_new = jax.tree_util.tree_map(lambda a, zz: zz + beta * (zz - a), x, z)
            t_new = jnp.where(restart, 1.0, t_new).astype(t.dtype)
            return k + 1, z, y_new, Fz, t_new, gnorm.astype(dtype), s, hist.at[k + 1].set(Fz)

        # First step 1 / (curvature along the gradient), a lower bound on 1 / L that backtracking then
        # halves as needed; the step never grows again (growing it breaks the momentum).
        g0 = jax.grad(fd)(p0)
        gn0 = _tree_norm(g0)
        v = jax.tree_util.tree_map(lambda a: a / jnp.where(gn0 > 0, gn0, 1.0), g0)
        hv = jax.jvp(jax.grad(fd), (p0,), (v,))[1]
        curv = _tree_norm(hv).astype(dtype)
        s0 = jnp.where((curv > 0) & jnp.isfinite(curv), 1.0 / jnp.where(curv > 0, curv, 1.0), 1.0).astype(dtype)
        carry = (jnp.zeros((), jnp.int32), p0, p0, full0, jnp.ones((), dtype), jnp.asarray(jnp.inf, dtype), s0, hist)
        k, x, _, Fx, _, gnorm, _, hist = jax.lax.while_loop(cond, body, carry)
        return x, Fx, gnorm, k, gnorm <= tol, hist, None

    return jax.jit(run)


@functools.lru_cache(maxsize=None)
def _default_lbfgs():
    """One ``optax.lbfgs()`` instance, so that the default optimizer hits the compilation cache."""
    return optax.lbfgs()


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def minimize(
    objective: Callable,
    params,
    data,
    optimizer: Optional[optax.GradientTransformation] = None,
    *,
    max_steps: int = 500,
    tol: float = 1e-6,
    regularizer=None,
    prox_step=None,
) -> OptimizeResult:
    """Minimises ``objective(params, data)`` over ``params``, the whole loop under ``jax.jit``.

    One ``lax.while_loop`` runs until the gradient norm is at most ``tol`` (absolute, in the params'
    Euclidean norm), the value becomes non-finite, or ``max_steps`` steps have been taken. The compiled
    loop is cached; the float hyperparameters of a :class:`jaxloss.Objective` and its regularizer are
    passed as data, so ``minimize(jaxloss.lasso_regression(alpha), ...)`` over many ``alpha`` compiles once.

    Methods:

    * smooth objective: any optax optimizer (default ``optax.lbfgs()``, whose zoom line search gets the
      value function); the value and gradient found by a line search are reused.
    * non-smooth regularizer (``l1``, ``elastic_net``, ``group_lasso`` in the objective's regularizer or in
      ``regularizer=``) and ``optimizer=None``: FISTA (accelerated proximal gradient) with backtracking
      line search and function-value restart; ``grad_norm`` is then the proximal-gradient mapping norm.
    * non-smooth regularizer and an optax optimizer without line search: the optimizer's updates on the
      smooth part followed by the proximal step ``prox_step`` (its learning rate, a float or schedule), as
      in :func:`jaxloss.prox.transform`; ``prox_step`` is required.

    To minimise a non-smooth objective with plain (sub)gradients instead, pass a function that hides the
    regularizer: ``lambda p, d: obj(p, d)``.

    Args:
      objective: ``objective(params, data) -> scalar``; a :class:`jaxloss.Objective` is split into its
        smooth and non-smooth parts automatically.
      params: the initial parameters (any pytree; non-float leaves are held fixed).
      data: the full batch, e.g. ``(inputs, targets)``; passed to the objective as is.
      optimizer: an ``optax.GradientTransformation``, or ``None`` for the defaults above.
      max_steps: the step cap (static).
      tol: the gradient-norm tolerance.
      regularizer: an extra :class:`jaxloss.Regularizer` added to the objective.
      prox_step: the proximal step size for an optax optimizer with a non-smooth regularizer.

    Returns:
      an :class:`OptimizeResult` (``history`` trimmed to ``num_steps + 1`` entries outside of
      transformations).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0], [2.0], [3.0]]); y = jnp.array([1.0, 2.0, 3.5])
      >>> res = jaxloss.minimize(jaxloss.lasso_regression(0.5), {"w": jnp.zeros(1), "b": jnp.zeros(())}, (x, y), tol=1e-9)
      >>> print(bool(res.converged), round(float(res.params["w"][0]), 4))
      True 0.5
    """
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0; got {max_steps}")
    f, g = _split(objective, regularizer)
    diff, static = _models.partition(params, objective)  # Flax / Equinox models: their trainable arrays
    if g is not None and optimizer is not None and prox_step is None:
        raise ValueError(
            f"the objective has a non-smooth regularizer ({g!r}): leave optimizer=None for accelerated "
            "proximal gradient, or pass prox_step= (the optimizer's learning rate) for proximal steps"
        )
    F, G = _Data(f), _Data(g)
    if g is None:
        optimizer = _default_lbfgs() if optimizer is None else optimizer
        key = ("optax", F.key, optimizer, None, static, max_steps, None)
        run = _cached(key, lambda: _optax_loop(F, G, optimizer, static, max_steps, None))
    elif optimizer is None:
        key = ("fista", F.key, G.key, static, max_steps)
        run = _cached(key, lambda: _fista_loop(F, G, static, max_steps))
    else:
        key = ("optax", F.key, optimizer, G.key, static, max_steps, prox_step)
        run = _cached(key, lambda: _optax_loop(F, G, optimizer, static, max_steps, prox_step))
    p, value, gnorm, k, converged, hist, state = run(diff, data, tol, F.dyn, G.dyn)
    if not _is_traced(k):
        hist = hist[: int(k) + 1]
    return OptimizeResult(_combine(p, static), value, gnorm, k, converged, hist, state)
