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
from jaxloss import implicit as _implicit
from jaxloss import prox as _prox
from jaxloss import regularizers as _regs
from jaxloss._typing import PyTree

__all__ = ["OptimizeResult", "minimize"]

ImplicitDiff = _implicit.ImplicitDiff  # exported as jaxloss.ImplicitDiff from jaxloss.implicit


CONVERGED, MAX_STEPS, NON_FINITE, LINESEARCH_FAILED, NO_PROGRESS, UNBOUNDED = range(6)
_RUNNING = -1
_REASONS = {
    CONVERGED: "converged: the gradient norm fell below tol times its scale",
    MAX_STEPS: "step cap: max_steps steps were taken before convergence",
    NON_FINITE: "non-finite: the objective or its gradient became NaN or inf (check the data and the initial params); "
    "params are the last finite iterate",
    LINESEARCH_FAILED: "line-search failure: no step decreased the objective enough",
    NO_PROGRESS: "no progress: the objective stopped decreasing before the gradient met the tolerance",
    UNBOUNDED: "possibly unbounded: the gradient is small but a Newton step of about the parameters' size remains "
    "(no minimizer, e.g. separable data without l2, or badly conditioned); add regularization",
}
STATUS_NAMES = {
    CONVERGED: "converged",
    MAX_STEPS: "max_steps",
    NON_FINITE: "non_finite",
    LINESEARCH_FAILED: "linesearch_failed",
    NO_PROGRESS: "no_progress",
    UNBOUNDED: "unbounded",
}


def _summary(x) -> str:
    try:
        a = np.asarray(x)
    except Exception:  # a tracer
        return "<traced>"
    if a.ndim == 0:
        return f"{a.item():.6g}" if a.dtype.kind == "f" else str(a.item())
    return f"<{a.dtype.name}{list(a.shape)}>"


class OptimizeResult(NamedTuple):
    """What :func:`minimize` and :func:`fit` return.

    Attributes:
      params: the final parameters (same structure as the initial ones).
      value: the final objective value (for :func:`fit`: the mean loss of the last epoch).
      grad_norm: the final gradient norm; for a non-smooth regularizer or a constraint, the norm of the
        proximal-gradient mapping ``(x - prox(x - t grad f(x), t)) / t``, which is 0 exactly at a minimum
        (for :func:`fit`: the last mini-batch's gradient norm).
      num_steps: the number of optimizer steps taken.
      converged: ``status == CONVERGED`` (always ``False`` for :func:`fit`, which has no convergence test).
      history: the objective value before the first step and after each step (:func:`minimize`; NaN-padded
        to ``max_steps + 1`` entries when called under a transformation), or the mean loss per epoch
        (:func:`fit`).
      opt_state: the final optax state (``None`` for the built-in proximal gradient method).
      status: why :func:`minimize` stopped, an int32 code: ``0`` converged, ``1`` step cap, ``2`` non-finite
        value or gradient, ``3`` line-search failure, ``4`` no progress, ``5`` possibly unbounded (see
        :attr:`reason`); ``None`` for :func:`fit`.
    """

    params: Any
    value: Any
    grad_norm: Any
    num_steps: Any
    converged: Any
    history: Any
    opt_state: Any = None
    status: Any = None

    @property
    def reason(self) -> str:
        """The readable reason for :attr:`status` (one per entry when batched by ``jax.vmap``)."""
        if self.status is None:
            return "no convergence test (mini-batch training)"
        try:
            codes = np.asarray(self.status)
        except Exception:  # traced
            return "<traced>"
        if codes.ndim == 0:
            return _REASONS[int(codes)]
        return "; ".join(f"{STATUS_NAMES[int(c)]} x{int(np.sum(codes == c))}" for c in np.unique(codes))

    def __repr__(self):
        status = (
            "None"
            if self.status is None
            else (
                STATUS_NAMES.get(int(np.asarray(self.status)), "?")
                if _summary(self.status).lstrip("-").isdigit()
                else _summary(self.status)
            )
        )
        leaves = jax.tree_util.tree_leaves(self.params)
        size = sum(int(np.size(x)) for x in leaves if hasattr(x, "shape"))
        return (
            f"OptimizeResult(status={status}, value={_summary(self.value)}, grad_norm={_summary(self.grad_norm)}, "
            f"num_steps={_summary(self.num_steps)}, params=<{len(leaves)} leaves, {size} numbers>)"
        )


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


def _combine(diff, static: _Static | _models.Held):
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


def _progress_hook(progress):
    """``(every, fn)`` for the host callback of ``minimize(progress=...)``, or ``None``."""
    if progress is None or progress is False or (isinstance(progress, int) and progress <= 0):
        return None
    if callable(progress):
        return 1, progress
    return int(progress), _show


def _show(k, value, gnorm):
    print(f"minimize step {int(k):6d}  value {float(value):.10g}  grad_norm {float(gnorm):.3e}", flush=True)


def _report(hook, k, full, gnorm):
    if hook is not None:
        every, fn = hook
        jax.lax.cond(k % every == 0, lambda a: jax.debug.callback(fn, *a), lambda a: None, (k, full, gnorm))


_PATIENCE = 20  # steps without a new best value or gradient norm before "no progress" (L-BFGS)
_PATIENCE_FISTA = 50  # FISTA's gradient mapping at the extrapolated point oscillates more


def _next_status(k, full, gnorm, thr, best, stall, ls_failed, max_steps, monotone=True, patience=_PATIENCE):
    """(status, best, stall) after a step: the stopping rules in their order of precedence. ``best`` is
    the (lowest value, lowest gradient norm) so far; "no progress" is ``_PATIENCE`` steps improving
    neither (float32 values stagnate near a minimum while the gradient still falls), for monotone methods
    only (line searches, FISTA), not oscillating ones such as Adam."""
    best_v, best_g = best
    improved = (full < best_v) | (gnorm < best_g)
    best = (jnp.minimum(best_v, full), jnp.minimum(best_g, gnorm))
    stall = jnp.where(improved, 0, stall + 1)
    status = jnp.where(
        ~(jnp.isfinite(full) & jnp.isfinite(gnorm)),
        NON_FINITE,
        jnp.where(
            gnorm <= thr,
            CONVERGED,
            jnp.where(
                ls_failed,
                LINESEARCH_FAILED,
                jnp.where((stall >= patience) & monotone, NO_PROGRESS, jnp.where(k >= max_steps, MAX_STEPS, _RUNNING)),
            ),
        ),
    )
    return status.astype(jnp.int32), best, stall


def _initial_status(full0, gnorm0, thr, max_steps):
    status = jnp.where(
        ~(jnp.isfinite(full0) & jnp.isfinite(gnorm0)),
        NON_FINITE,
        jnp.where(gnorm0 <= thr, CONVERGED, MAX_STEPS if max_steps == 0 else _RUNNING),
    )
    return status.astype(jnp.int32)


def _threshold(tol, atol, full0, gnorm0):
    """The convergence threshold: ``max(atol, tol * max(||g_0||, |f_0|))``, relative to the scale of the
    objective and of its initial gradient (unchanged by rescaling the objective)."""
    scale = jnp.maximum(gnorm0, jnp.abs(full0))
    return jnp.maximum(
        jnp.asarray(atol, full0.dtype), jnp.asarray(tol, full0.dtype) * jnp.where(jnp.isfinite(scale), scale, 0.0)
    )


def _keep(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def _unbounded_check(fd, p, grad, gnorm, status, tol):
    """Flags a 'solution' with a small gradient from which a Newton step along the gradient is still
    long compared with the parameters (the objective decreasing towards an asymptote: no minimizer)."""
    safe = jnp.where(gnorm > 0, gnorm, 1.0)
    v = jax.tree_util.tree_map(lambda a: a / safe.astype(a.dtype), grad)
    hv = jax.jvp(jax.grad(fd), (p,), (v,))[1]
    curv = _tree_vdot(v, hv).astype(gnorm.dtype)
    delta = gnorm / jnp.where(curv > 0, curv, 1.0)
    size = 1.0 + _tree_norm(p).astype(gnorm.dtype)
    suspicious = (gnorm > 0) & (curv > 0) & (delta > jnp.sqrt(jnp.asarray(tol, gnorm.dtype)) * size)
    return jnp.where((status == CONVERGED) & suspicious, UNBOUNDED, status).astype(jnp.int32)


def _optax_loop(F, G, optimizer, static, max_steps, prox_step, hook):
    """The jitted loop for an optax optimizer (plus a proximal step when ``G`` holds a non-smooth part or a
    constraint)."""

    def run(p0, data, tol, atol, f_dyn, g_dyn):
        f, g = F.rebuild(f_dyn), G.rebuild(g_dyn)
        opt = optimizer if g is None else optax.chain(optimizer, _prox.transform(g, prox_step))
        opt = optax.with_extra_args_support(opt)
        fd = lambda p: f(_combine(p, static), data)  # noqa: E731
        state0 = opt.init(p0)
        from_state = optax.tree.get(state0, "value") is not None and optax.tree.get(state0, "grad") is not None
        if from_state and g is not None:
            raise ValueError(
                "a line-search optimizer cannot be combined with proximal steps or constraints; use optimizer=None"
            )
        vg_state = optax.value_and_grad_from_state(fd) if from_state else None
        has_info = optax.tree.get(state0, "info") is not None

        def step_size(count):
            t = prox_step(count) if callable(prox_step) else prox_step
            return jnp.asarray(1.0 if t is None else t)

        def measure(p, v, grad, count):
            """(full objective value, gradient or gradient-mapping norm)."""
            if g is None:
                return v, _tree_norm(grad)
            t = step_size(count).astype(v.dtype)
            moved = g.prox(jax.tree_util.tree_map(lambda x, d: x - t * d, p, grad), t)
            return v + g(p), _tree_norm(_tree_sub(p, moved)) / t

        v0, grad0 = jax.value_and_grad(fd)(p0)
        full0, gnorm0 = measure(p0, v0, grad0, 0)
        dtype = full0.dtype
        gnorm0 = gnorm0.astype(dtype)
        thr = _threshold(tol, atol, full0, gnorm0)
        hist = jnp.full((max_steps + 1,), jnp.nan, dtype).at[0].set(full0)
        status0 = _initial_status(full0, gnorm0, thr, max_steps)

        def cond(c):
            return c[-1] == _RUNNING

        def body(c):
            p, state, value, full, grad, _, k, hist, best, stall, _ = c
            updates, new_state = opt.update(grad, state, p, value=value, grad=grad, value_fn=fd)
            new = optax.apply_updates(p, updates)
            v, new_grad = vg_state(new, state=new_state) if from_state else jax.value_and_grad(fd)(new)
            new_full, gnorm = measure(new, v, new_grad, k + 1)
            new_full, gnorm = new_full.astype(dtype), gnorm.astype(dtype)
            ls_failed = jnp.asarray(False)
            if has_info:
                info = optax.tree.get(new_state, "info")
                ls_failed = (info.decrease_error > 0) & ~(new_full < full)
            finite = jnp.isfinite(new_full) & jnp.isfinite(gnorm)
            accept = finite & ~ls_failed
            status, best, stall = _next_status(
                k + 1, new_full, gnorm, thr, best, stall, ls_failed, max_steps, from_state
            )
            _report(hook, k + 1, new_full, gnorm)
            p, state = _keep(accept, new, p), _keep(accept, new_state, state)
            value, grad = _keep(accept, v, value), _keep(accept, new_grad, grad)
            kept_full = jnp.where(accept, new_full, full)
            gnorm = jnp.where(accept, gnorm, c[5])
            return p, state, value, kept_full, grad, gnorm, k + 1, hist.at[k + 1].set(new_full), best, stall, status

        zero = jnp.zeros((), jnp.int32)
        carry = (p0, state0, v0, full0, grad0, gnorm0, zero, hist, (full0, gnorm0), zero, status0)
        p, state, _, full, grad, gnorm, k, hist, _, _, status = jax.lax.while_loop(cond, body, carry)
        if g is None:
            status = _unbounded_check(fd, p, grad, gnorm, status, tol)
        return p, full, gnorm, k, status, hist, state, step_size(k).astype(dtype)

    return jax.jit(run)


def _fista_loop(F, G, static, max_steps, hook):
    """Accelerated proximal gradient (FISTA) with backtracking line search and function-value restart;
    ``G`` is the non-smooth part: a regularizer, a constraint, or both (see :class:`_ProxPart`)."""

    def run(p0, data, tol, atol, f_dyn, g_dyn):
        f, g = F.rebuild(f_dyn), G.rebuild(g_dyn)
        fd = lambda p: f(_combine(p, static), data)  # noqa: E731
        vg = jax.value_and_grad(fd)
        total = lambda p, v: v + g(p)  # noqa: E731

        if isinstance(g, _ProxPart) and g.constraint is not None:
            p0 = g.constraint.project(p0)  # a feasible start
        f0, g0 = vg(p0)
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
            return c[-1] == _RUNNING

        def body(c):
            k, x, y, Fx, t, gn_old, s, hist, best, stall, _ = c
            fy, gy = vg(y)

            def bt_cond(b):
                return (~b[4]) & (b[5] < 60)

            def bt_body(b):
                s = b[0] * 0.5
                z, fz, d, ok = prox_step(y, fy, gy, s)
                return s, z, fz, d, ok, b[5] + 1

            z, fz, d, ok = prox_step(y, fy, gy, s)
            s, z, fz, d, ok, _ = jax.lax.while_loop(bt_cond, bt_body, (s, z, fz, d, ok, 0))
            Fz = total(z, fz).astype(dtype)
            gnorm = (_tree_norm(d) / s).astype(dtype)  # gradient mapping at y
            status, best, stall = _next_status(
                k + 1, Fz, gnorm, thr, best, stall, ~ok, max_steps, True, _PATIENCE_FISTA
            )
            _report(hook, k + 1, Fz, gnorm)
            finite = jnp.isfinite(Fz) & jnp.isfinite(gnorm)
            # z is accepted; if the value went up, the momentum restarts from z (O'Donoghue & Candes 2015)
            restart = Fz > Fx
            t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
            beta = jnp.where(restart, 0.0, (t - 1.0) / t_new)
            y_new = jax.tree_util.tree_map(lambda a, zz: zz + beta * (zz - a), x, z)
            t_new = jnp.where(restart, 1.0, t_new).astype(t.dtype)
            z = _keep(finite, z, x)
            return (
                k + 1,
                z,
                y_new,
                jnp.where(finite, Fz, Fx),
                t_new,
                jnp.where(finite, gnorm, gn_old),
                s,
                hist.at[k + 1].set(Fz),
                best,
                stall,
                status,
            )

        # First step 1 / (curvature along the gradient), a lower bound on 1 / L that backtracking then
        # halves as needed; the step never grows again (growing it breaks the momentum).
        gn0 = _tree_norm(g0)
        v = jax.tree_util.tree_map(lambda a: a / jnp.where(gn0 > 0, gn0, 1.0), g0)
        hv = jax.jvp(jax.grad(fd), (p0,), (v,))[1]
        curv = _tree_norm(hv).astype(dtype)
        s0 = jnp.where((curv > 0) & jnp.isfinite(curv), 1.0 / jnp.where(curv > 0, curv, 1.0), 1.0).astype(dtype)
        moved0 = g.prox(jax.tree_util.tree_map(lambda a, b: a - s0 * b, p0, g0), s0)
        gm0 = (_tree_norm(_tree_sub(p0, moved0)) / s0).astype(dtype)
        thr = _threshold(tol, atol, full0, gm0)
        status0 = _initial_status(full0, gm0, thr, max_steps)
        zero = jnp.zeros((), jnp.int32)
        carry = (zero, p0, p0, full0, jnp.ones((), dtype), gm0, s0, hist, (full0, gm0), zero, status0)
        k, x, _, Fx, _, gnorm, s, hist, _, _, status = jax.lax.while_loop(cond, body, carry)
        return x, Fx, gnorm, k, status, hist, None, s

    return jax.jit(run)


class _ProxPart:
    """The non-smooth part of an objective for proximal methods: a regularizer with a closed-form prox,
    a constraint, or a separable regularizer followed by a box/non-negativity projection (exact for
    separable terms on a product of intervals). A pytree of both parts' leaves."""

    def __init__(self, reg, constraint):
        self.reg, self.constraint = reg, constraint

    def __call__(self, params):
        return self.reg(params) if self.reg is not None else self.constraint(params)

    def prox(self, params, step):
        if self.reg is not None:
            params = self.reg.prox(params, step)
        if self.constraint is not None:
            params = self.constraint.project(params)
        return params

    def __repr__(self):
        return " + ".join(repr(x) for x in (self.reg, self.constraint) if x is not None)


jax.tree_util.register_pytree_node(_ProxPart, lambda p: ((p.reg, p.constraint), None), lambda _, c: _ProxPart(*c))


def _nonsmooth(g, constraint):
    if constraint is None:
        return g
    if not isinstance(constraint, _prox.Constraint):
        raise TypeError(
            f"constraint must be a jaxloss.prox constraint (NonNegative, Box, Simplex, L2Ball); got {constraint!r}"
        )
    if g is not None:
        separable = isinstance(g, _regs.Regularizer) and all(t.kind in ("l1", "elastic_net", "l2") for t in g.terms)
        if not (constraint.separable and separable):
            raise NotImplementedError(
                f"the proximal operator of {g!r} under {constraint!r} has no closed form here; a non-smooth "
                "regularizer combines only with NonNegative or Box (and l1 / elastic_net terms)"
            )
    return _ProxPart(g, constraint)


@functools.lru_cache(maxsize=None)
def _default_lbfgs():
    """One ``optax.lbfgs()`` instance, so that the default optimizer hits the compilation cache."""
    return optax.lbfgs()


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_data(data):
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        shape = np.shape(leaf)
        if len(shape) >= 1 and shape[0] == 0:
            where = jax.tree_util.keystr(path) or "data"
            raise ValueError(f"minimize got empty data: {where} has shape {tuple(shape)} (no examples)")


class _Implicit:
    """The optimality condition of a solve, for :func:`jaxloss.implicit.attach`."""

    def __init__(self, F, G, static, dstatic, options):
        self.F, self.G, self.static, self.dstatic = F, G, static, dstatic
        self.symmetric = G.static is None and G._fixed is None
        self.options = options

    def _f(self, x, theta):
        f_dyn, _, ddata = theta
        f = self.F.rebuild(f_dyn)
        return f(_combine(x, self.static), _combine(ddata, self.dstatic))

    def total(self, x, theta):
        v = self._f(x, theta)
        if self.symmetric:
            return v
        return v + self.G.rebuild(theta[1])(x)

    def optimality(self, x, step, theta):
        grad = jax.grad(self._f)(x, theta)
        if self.symmetric:
            return grad
        g = self.G.rebuild(theta[1])
        moved = g.prox(jax.tree_util.tree_map(lambda a, b: a - step.astype(a.dtype) * b, x, grad), step)
        return _tree_sub(x, moved)


def minimize(
    objective: Callable[..., Any],
    params: PyTree,
    data: PyTree,
    optimizer: Optional[optax.GradientTransformation] = None,
    *,
    max_steps: int = 500,
    tol: float = 1e-6,
    atol: float = 0.0,
    regularizer: _regs.Regularizer | None = None,
    constraint: _prox.Constraint | None = None,
    prox_step: float | Callable[[Any], Any] | None = None,
    progress: int | Callable[..., Any] | None = None,
    implicit_diff: Optional[_implicit.ImplicitDiff] = None,
) -> OptimizeResult:
    """Minimises ``objective(params, data)`` over ``params``, the whole loop under ``jax.jit``; the
    solution is differentiable (implicitly).

    One ``lax.while_loop`` runs until one of these holds (``result.status`` says which, ``result.reason``
    in words):

    * **converged**: the gradient norm (or proximal-gradient mapping norm) is at most
      ``max(atol, tol * max(||g_0||, |f_0|))``, relative to the initial gradient and objective value, so
      the criterion does not change when the objective or the parameters are rescaled;
    * **step cap**: ``max_steps`` steps;
    * **non-finite**: the value or gradient became NaN/inf (the last finite iterate is returned; a NaN in
      the data stops at step 0 with this status);
    * **line-search failure**: the line search (L-BFGS's zoom search, FISTA's backtracking) found no
      acceptable step;
    * **no progress**: 20 steps (FISTA: 50) without a new lowest value or gradient norm (line-search
      optimizers and FISTA only);
    * **possibly unbounded**: the solver stopped with a small gradient but a Newton step along the
      gradient is still long compared with the parameters: the objective decreases towards an asymptote
      (one-class or separable logistic regression without l2) or is badly conditioned. ``converged`` is
      then ``False``. Checked for smooth objectives that met the tolerance (one extra Hessian-vector
      product).

    Empty data (a leading axis of length 0) raises ``ValueError``.

    Methods:

    * smooth objective: any optax optimizer (default ``optax.lbfgs()``, whose zoom line search gets the
      value function); the value and gradient found by a line search are reused.
    * non-smooth regularizer (``l1``, ``elastic_net``, ``group_lasso``) or a ``constraint`` and
      ``optimizer=None``: FISTA (accelerated proximal / projected gradient) with backtracking line search
      and function-value restart; ``grad_norm`` is then the proximal-gradient mapping norm.
    * the same with an optax optimizer without line search: its updates on the smooth part followed by the
      proximal step (or projection) with step ``prox_step`` (its learning rate, a float or schedule), as in
      :func:`jaxloss.prox.transform`.

    Differentiation: ``jax.grad``, ``jax.jvp`` and ``jax.vmap`` of ``result.params`` and ``result.value``
    work with respect to the float hyperparameters of the objective, its regularizer and the constraint
    (they are pytree leaves: strengths, ``delta``, bounds, radius) and to the float leaves of ``data``
    (inputs, targets, example weights), by implicit differentiation of the stationarity condition or of
    the proximal-gradient fixed point (:mod:`jaxloss.implicit`); never by unrolling the loop. The
    solution does not depend on the initial ``params`` (zero derivative). Check ``result.converged``:
    the derivative is that of the exact solution, accurate to the solve's accuracy. A failed linear
    solve gives NaN derivatives by default (``implicit_diff``). Values closed over by a plain Python
    objective function are not differentiated (JAX raises): pass them in ``data`` or use a pytree.

    Args:
      objective: ``objective(params, data) -> scalar``; a :class:`jaxloss.Objective` is split into its
        smooth and non-smooth parts automatically.
      params: the initial parameters (any pytree; non-float leaves are held fixed).
      data: the full batch, e.g. ``(inputs, targets[, weights])``; passed to the objective as is.
      optimizer: an ``optax.GradientTransformation``, or ``None`` for the defaults above.
      max_steps: the step cap (static).
      tol: the relative gradient tolerance (see above).
      atol: an absolute floor of the gradient threshold (default 0).
      regularizer: an extra :class:`jaxloss.Regularizer` added to the objective.
      constraint: a :class:`jaxloss.prox.Constraint` (``NonNegative``, ``Box``, ``Simplex``, ``L2Ball``):
        projected FISTA (or projected steps of ``optimizer``).
      prox_step: the proximal step size for an optax optimizer with a non-smooth regularizer or constraint.
      progress: ``k`` (an int) prints the step, value and gradient norm every ``k`` steps from inside the
        compiled loop (a host callback); a function ``fn(step, value, grad_norm)`` is called every step
        instead. Off by default.
      implicit_diff: a :class:`jaxloss.ImplicitDiff` (linear solver, tolerance, damping, failure policy)
        for derivatives of the solution.

    Returns:
      an :class:`OptimizeResult` (``history`` trimmed to ``num_steps + 1`` entries outside of
      transformations).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0], [2.0], [3.0]]); y = jnp.array([1.0, 2.0, 3.5])
      >>> res = jaxloss.minimize(jaxloss.lasso_regression(0.5), {"w": jnp.zeros(1), "b": jnp.zeros(())}, (x, y), tol=1e-9)
      >>> print(res.reason)
      converged: the gradient norm fell below tol times its scale
      >>> print(round(float(res.params["w"][0]), 4))
      0.5
      >>> # the lasso weight's derivative in alpha: -1 / var(x) on the active set
      >>> dw = jax.grad(lambda a: jaxloss.minimize(jaxloss.lasso_regression(a), res.params, (x, y), tol=1e-9).params["w"][0])
      >>> print(round(float(dw(0.5)), 4))
      -1.5
    """
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0; got {max_steps}")
    _check_data(data)
    f, g = _split(objective, regularizer)
    g = _nonsmooth(g, constraint)
    diff, static = _models.partition(params, objective)  # Flax / Equinox models: their trainable arrays
    if g is not None and optimizer is not None and prox_step is None:
        if constraint is not None and g.reg is None:
            prox_step = 1.0  # a projection ignores the step
        else:
            raise ValueError(
                f"the objective has a non-smooth regularizer ({g!r}): leave optimizer=None for accelerated "
                "proximal gradient, or pass prox_step= (the optimizer's learning rate) for proximal steps"
            )
    hook = _progress_hook(progress)
    F, G = _Data(f), _Data(g)
    if g is None:
        optimizer = _default_lbfgs() if optimizer is None else optimizer
        key: tuple = ("optax", F.key, optimizer, None, static, max_steps, None, hook)
        run = _cached(key, lambda: _optax_loop(F, G, optimizer, static, max_steps, None, hook))
    elif optimizer is None:
        key = ("fista", F.key, G.key, static, max_steps, hook)
        run = _cached(key, lambda: _fista_loop(F, G, static, max_steps, hook))
    else:
        key = ("optax", F.key, optimizer, G.key, static, max_steps, prox_step, hook)
        run = _cached(key, lambda: _optax_loop(F, G, optimizer, static, max_steps, prox_step, hook))
    ddata, dstatic = _partition(data)
    stop = jax.lax.stop_gradient
    p, value, gnorm, k, status, hist, state, step = run(
        stop(diff), _combine(stop(ddata), dstatic), tol, atol, stop(F.dyn), stop(G.dyn)
    )
    spec = _Implicit(F, G, static, dstatic, implicit_diff)
    p, value = _implicit.attach(spec, p, value, step, (F.dyn, G.dyn, ddata))
    if not _is_traced(k):
        hist = hist[: int(k) + 1]
    return OptimizeResult(_combine(p, static), value, gnorm, k, status == CONVERGED, hist, state, status)
