"""Implicit differentiation of solutions: the linear solves behind ``jax.grad`` through :func:`jaxloss.minimize`
and :func:`jaxloss.influence`.

A solution ``x*(theta)`` of an optimality condition ``F(x*, theta) = 0`` has the derivative
``dx*/dtheta = -(dF/dx)^{-1} dF/dtheta`` (implicit function theorem). :func:`jaxloss.minimize` uses

* for a smooth objective ``f``: the stationarity condition ``F = grad_x f(x, theta)``, whose Jacobian is
  the Hessian (symmetric: conjugate gradient with Hessian-vector products, or a direct solve when small);
* for a non-smooth regularizer ``g`` (``l1``, ``elastic_net``, ``group_lasso``) or a constraint: the
  fixed point of the proximal-gradient map, ``F = x - prox_{s g}(x - s grad_x f(x, theta))`` (GMRES, or a
  direct solve when small); ``g``'s own hyperparameters (strengths, bounds, radii) are in ``theta`` too.

The derivative is a ``jax.custom_jvp`` rule around the solve whose linear system goes through
``jax.lax.custom_linear_solve``, so forward mode (``jax.jvp``), reverse mode (``jax.grad``: JAX transposes
the rule, solving the transposed system) and ``jax.vmap`` all work, and the solver's loop is never
differentiated (never unrolled). The solver's starting point gets no derivative (the solution does not
depend on it). The derivative of the optimal value is the envelope theorem, ``dF*/dtheta = dF/dtheta``
at ``x*``, which needs no linear solve.

Options are given as ``minimize(..., implicit_diff=jaxloss.ImplicitDiff(...))``.

Decisions:
  * A linear solve whose relative residual ``||A v - b|| / ||b||`` exceeds ``check`` (an indefinite or
    singular Hessian: no isolated minimum, e.g. an unregularised separable problem) gives NaN
    derivatives (``on_failure="nan"``, default): never a plausible wrong number. ``"warn"`` keeps the
    result and issues a ``RuntimeWarning`` with the residual (through a host callback), ``"ignore"`` keeps
    it silently. ``report=fn`` calls ``fn(relative_residual)`` on the host after every solve.
  * ``solver="auto"``: a direct dense solve (``jnp.linalg.solve`` on the Jacobian materialised by one
    batched Jacobian-vector product per parameter) for at most ``direct_max`` (100) parameters, else
    conjugate gradient (stationarity) or GMRES (fixed point), whose cost grows with the iterations, not
    the parameters; up to ``fallback_max`` (500) parameters an iterative solve that misses ``check`` is
    redone directly (an ill-conditioned system; under ``jax.vmap`` the ``lax.cond`` becomes a select and
    both solves run), beyond that it fails. Measured on 2000 examples
    (``benchmarks/solvers.py``, ridge): materialising the Hessian costs as much as conjugate gradient at
    ~100 parameters, 2-20 times more at 150-400.
  * ``damping`` adds ``damping * I`` to the Jacobian (a ridge on the Hessian, e.g. for a non-convex
    network); with ``damping > 0`` the derivative is that of the damped system, not the exact one.

Examples:
  >>> import jax, jax.numpy as jnp, jaxloss
  >>> x = jnp.array([[1.0], [2.0], [3.0]]); y = jnp.array([1.0, 2.0, 2.5])
  >>> def val_w(alpha):
  ...     obj = jaxloss.ridge_regression(alpha, fit_intercept=False)
  ...     return jaxloss.minimize(obj, obj.init_params(x), (x, y), tol=1e-10).params["w"][0]
  >>> # w*(alpha) = mean(x y) / (mean(x^2) + alpha), so dw*/dalpha = -mean(x y) / mean(x^2)^2 at 0:
  >>> print(round(float(jax.jit(jax.grad(val_w))(0.0)), 4), round(-(12.5 / 3) / (14 / 3) ** 2, 4))
  -0.1913 -0.1913
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["ImplicitDiff"]


@dataclasses.dataclass(frozen=True)
class ImplicitDiff:
    """Options of the implicit derivative of :func:`jaxloss.minimize` and of :func:`jaxloss.influence`.

    Attributes:
      solver: ``"auto"``, ``"direct"``, ``"cg"`` (symmetric systems only) or ``"gmres"``.
      tol: relative tolerance of the iterative solvers.
      maxiter: their iteration cap (``None``: 10 times the number of parameters, at most 2000).
      damping: ``lambda >= 0`` added to the diagonal of the Jacobian (Hessian).
      check: the relative residual above which a solve counts as failed.
      on_failure: ``"nan"`` (failed solves give NaN derivatives), ``"warn"`` or ``"ignore"``.
      report: optional ``report(relative_residual)`` called on the host after each solve.
      direct_max: ``"auto"`` solves directly up to this many parameters.
      fallback_max: ``"auto"`` redoes a failed iterative solve directly up to this many parameters.
    """

    solver: str = "auto"
    tol: float = 1e-10
    maxiter: Optional[int] = None
    damping: float = 0.0
    check: float = 1e-6
    on_failure: str = "nan"
    report: Optional[Callable] = None
    direct_max: int = 100
    fallback_max: int = 500

    def __post_init__(self):
        if self.solver not in ("auto", "direct", "cg", "gmres"):
            raise ValueError(f"solver must be one of 'auto', 'direct', 'cg', 'gmres'; got {self.solver!r}")
        if self.on_failure not in ("nan", "warn", "ignore"):
            raise ValueError(f"on_failure must be one of 'nan', 'warn', 'ignore'; got {self.on_failure!r}")
        if not self.damping >= 0:
            raise ValueError(f"damping must be >= 0; got {self.damping}")


def _tree_norm(tree):
    leaves = [jnp.sum(jnp.square(jnp.abs(x))) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.sqrt(sum(leaves[1:], leaves[0])) if leaves else jnp.zeros(())


def _size(tree) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(tree))


def _warn(residual):
    warnings.warn(
        f"jaxloss: the linear solve of an implicit derivative did not converge (relative residual {float(residual):.3g}); "
        "the Hessian may be singular or indefinite (add l2 regularization or ImplicitDiff(damping=...))",
        RuntimeWarning,
        stacklevel=2,
    )


def _direct(matvec, b):
    flat_b, unravel = ravel_pytree(b)
    n = flat_b.shape[0]
    mv = lambda v: ravel_pytree(matvec(unravel(v)))[0]  # noqa: E731
    cols = jax.vmap(mv)(jnp.eye(n, dtype=flat_b.dtype))  # row i = A e_i = column i of A
    return unravel(jnp.linalg.solve(cols.T, flat_b))


def _iterative(matvec, b, method, opts: ImplicitDiff):
    n = _size(b)
    maxiter = opts.maxiter if opts.maxiter is not None else min(10 * n, 2000)
    if method == "cg":
        return jax.scipy.sparse.linalg.cg(matvec, b, tol=opts.tol, atol=0.0, maxiter=maxiter)[0]
    restart = min(n, 50)
    return jax.scipy.sparse.linalg.gmres(
        matvec, b, tol=opts.tol, atol=0.0, restart=restart, maxiter=max(maxiter // restart, 1) + 1
    )[0]


def _relative_residual(matvec, x, b):
    r = jax.tree_util.tree_map(lambda a, c: a - c, matvec(x), b)
    bn = _tree_norm(b)
    return _tree_norm(r) / jnp.where(bn > 0, bn, 1.0)


def _with_fallback(solve_fn, opts: ImplicitDiff):
    """``solve_fn``, redone by a direct solve when its residual misses ``opts.check`` (``lax.cond``: the
    direct solve runs only then; under ``vmap`` both run)."""

    def solve(matvec, b):
        x = solve_fn(matvec, b)
        ok = _relative_residual(matvec, x, b) <= opts.check
        return jax.lax.cond(ok, lambda: x, lambda: _direct(matvec, b))

    return solve


def _checked(solve_fn, opts: ImplicitDiff):
    """``solve_fn(matvec, b)`` followed by the residual check and the failure policy."""

    def solve(matvec, b):
        x = solve_fn(matvec, b)
        rel = _relative_residual(matvec, x, b)
        ok = rel <= opts.check
        if opts.report is not None:
            jax.debug.callback(opts.report, rel)
        if opts.on_failure == "nan":
            x = jax.tree_util.tree_map(lambda a: jnp.where(ok, a, jnp.nan), x)
        elif opts.on_failure == "warn":
            jax.lax.cond(ok, lambda r: None, lambda r: jax.debug.callback(_warn, r), rel)
        return x

    return solve


def linear_solve(matvec: Callable, b: Any, *, symmetric: bool, options: Optional[ImplicitDiff] = None):
    """Solves ``(A + damping I) x = b`` for a linear ``matvec`` on pytrees, differentiably.

    Through ``jax.lax.custom_linear_solve``: JAX differentiates and transposes the solve without
    differentiating the solver. ``symmetric=True`` allows conjugate gradient.
    """
    opts = options or ImplicitDiff()
    if opts.damping:
        base = matvec
        matvec = lambda v: jax.tree_util.tree_map(lambda a, c: a + opts.damping * c, base(v), v)  # noqa: E731
    method, fallback = opts.solver, False
    if method == "auto":
        n = _size(b)
        method = "direct" if n <= opts.direct_max else ("cg" if symmetric else "gmres")
        fallback = method != "direct" and n <= opts.fallback_max
    if method == "cg" and not symmetric:
        raise ValueError(
            "solver='cg' needs a symmetric system; the proximal fixed point is not: use 'gmres' or 'direct'"
        )
    raw = _direct if method == "direct" else functools.partial(_iterative, method=method, opts=opts)
    if fallback:
        raw = _with_fallback(raw, opts)
    solve = _checked(raw, opts)
    return jax.lax.custom_linear_solve(matvec, b, solve, transpose_solve=solve, symmetric=symmetric)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def attach(spec, x, value, aux, theta):
    """``(x, value)`` unchanged, with the implicit derivative with respect to ``theta``.

    ``spec`` has ``optimality(x, aux, theta)`` (zero at the solution), ``total(x, theta)`` (the objective
    value, for the envelope theorem), ``symmetric`` and ``options``. ``x``, ``value`` and ``aux`` (e.g. a
    step size) get no derivative of their own.
    """
    del spec, aux, theta
    return x, value


@attach.defjvp
def _attach_jvp(spec, primals, tangents):
    x, value, aux, theta = primals
    dtheta = tangents[3]
    rhs = jax.jvp(lambda th: spec.optimality(x, aux, th), (theta,), (dtheta,))[1]
    dvalue = jax.jvp(lambda th: spec.total(x, th), (theta,), (dtheta,))[1]
    matvec = lambda v: jax.jvp(lambda y: spec.optimality(y, aux, theta), (x,), (v,))[1]  # noqa: E731
    # One flat vector: the transpose of custom_linear_solve needs a right-hand side that is linear in
    # the tangents as a whole (a leaf that does not depend on theta would be a constant zero).
    flat_x, unravel = ravel_pytree(x)
    flat_rhs = ravel_pytree(jax.tree_util.tree_map(lambda r, p: r.astype(p.dtype), rhs, x))[0]
    flat_mv = lambda v: ravel_pytree(matvec(unravel(v)))[0].astype(flat_x.dtype)  # noqa: E731
    dx = unravel(linear_solve(flat_mv, -flat_rhs, symmetric=spec.symmetric, options=spec.options))
    return (x, value), (dx, jnp.asarray(dvalue, value.dtype))
