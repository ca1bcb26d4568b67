"""Proximal operators on parameter pytrees, and an optax transformation that applies them.

The proximal operator of a penalty ``g`` with step ``t`` is
``prox_{t g}(x) = argmin_z g(z) + ||z - x||^2 / (2 t)``. Each operator here is closed-form, acts leaf by
leaf on a pytree (leaves that are not floating-point arrays pass through unchanged), and takes the
*effective* threshold: the step times the penalty's strength (``threshold = step * strength``), as in
jaxopt's ``prox_lasso(x, l1reg, scaling)``. A :class:`jaxloss.Regularizer` does that multiplication for
you in ``reg.prox(params, step)``.

:func:`transform` turns a regularizer (or any ``prox(params, step)``) into an optax
``GradientTransformation`` to chain after an optimizer: ``optax.chain(optax.sgd(lr),
jaxloss.prox.transform(jaxloss.l1(1e-3), lr))`` is proximal gradient descent (ISTA), and its iterates
contain exact zeros.

Examples:
  >>> import jax.numpy as jnp, jaxloss
  >>> print(jaxloss.prox.soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0))
  [-1.  0.  2.]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxloss import _core
from jaxloss._typing import ArrayLike, PyTree

if TYPE_CHECKING:
    from jaxloss.regularizers import Regularizer

__all__ = [
    "soft_threshold",
    "l2",
    "elastic_net",
    "group_lasso",
    "non_negative",
    "box",
    "transform",
    "ProxState",
    "Constraint",
    "NonNegative",
    "Box",
    "Simplex",
    "L2Ball",
]


def _is_float_leaf(x) -> bool:
    """A leaf the operators act on: a floating-point (or complex) JAX or NumPy array."""
    return isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.inexact)


def _map(fn, tree):
    return jax.tree_util.tree_map(lambda x: fn(x) if _is_float_leaf(x) else x, tree)


def _cast(value, x):
    return jnp.asarray(value, dtype=x.dtype)


# Leaf-level operators (used by jaxloss.regularizers with per-leaf masks).


def _soft_threshold_leaf(x, threshold):
    t = _cast(threshold, x)
    return jnp.where(jnp.abs(x) > t, x - jnp.sign(x) * t, jnp.zeros_like(x))  # +0.0, not -0.0


def _l2_leaf(x, scale):
    return x / (1.0 + _cast(scale, x))


def _elastic_net_leaf(x, l1, l2):
    return _soft_threshold_leaf(x, l1) / (1.0 + _cast(l2, x))


def _group_axes(x, axis):
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % x.ndim for a in axes) if x.ndim else ()


def _group_norm(x, axis):
    """Euclidean norm of each group (over ``axis``; ``None``: the whole leaf), kept dims, NaN-free at 0."""
    axes = _group_axes(x, axis)
    sq = jnp.sum(x * x, axis=axes, keepdims=True)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def _group_lasso_leaf(x, threshold, axis):
    norm = _group_norm(x, axis)
    t = _cast(threshold, x)
    shrink = 1.0 - t / jnp.where(norm > 0, norm, 1.0)
    return jnp.where(shrink > 0, shrink * x, jnp.zeros_like(x))


# Public pytree operators.


def soft_threshold(params: PyTree, threshold: ArrayLike) -> PyTree:
    """Soft-thresholding, the proximal operator of ``threshold * ||x||_1`` (the lasso).

    ``sign(x) * max(|x| - threshold, 0)`` elementwise: entries with ``|x| <= threshold`` become exactly 0.

    Args:
      params: a pytree of arrays.
      threshold: ``step * strength`` (>= 0); a scalar or an array broadcastable to every leaf; traceable.

    Returns:
      a pytree of the same structure.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.soft_threshold({"w": jnp.array([0.3, -1.5])}, 0.5)["w"])
      [ 0. -1.]
    """
    _core.check_hyper(threshold, "threshold", low=0.0)
    return _map(lambda x: _soft_threshold_leaf(x, threshold), params)


def l2(params: PyTree, scale: ArrayLike) -> PyTree:
    """The proximal operator of ``(scale / 2) * ||x||^2`` (the penalty :func:`jaxloss.l2`): ``x / (1 + scale)``.

    Args:
      params: a pytree of arrays.
      scale: ``step * strength`` (>= 0); traceable.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.l2(jnp.array([2.0, -4.0]), 1.0))
      [ 1. -2.]
    """
    _core.check_hyper(scale, "scale", low=0.0)
    return _map(lambda x: _l2_leaf(x, scale), params)


def elastic_net(params: PyTree, l1: ArrayLike, l2: ArrayLike) -> PyTree:
    """The proximal operator of ``l1 * ||x||_1 + (l2 / 2) * ||x||^2``: ``soft_threshold(x, l1) / (1 + l2)``.

    Args:
      params: a pytree of arrays.
      l1: the effective L1 threshold ``step * l1_strength`` (>= 0).
      l2: the effective L2 scale ``step * l2_strength`` (>= 0).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.elastic_net(jnp.array([3.0, 0.5]), 1.0, 1.0))
      [1. 0.]
    """
    _core.check_hyper(l1, "l1", low=0.0)
    _core.check_hyper(l2, "l2", low=0.0)
    return _map(lambda x: _elastic_net_leaf(x, l1, l2), params)


def group_lasso(params: PyTree, threshold: ArrayLike, *, axis: int | tuple[int, ...] | None = None) -> PyTree:
    """Block soft-thresholding, the proximal operator of ``threshold * sum_g ||x_g||_2``.

    ``x_g * max(1 - threshold / ||x_g||, 0)`` for each group ``g``: a group whose norm is at most
    ``threshold`` becomes exactly 0 as a whole.

    Args:
      params: a pytree of arrays.
      threshold: ``step * strength`` (>= 0); traceable.
      axis: the axis (or axes) a group spans; the groups are indexed by the other axes. ``None`` (default):
        each leaf is one group. For a weight matrix ``[in, out]``, ``axis=-1`` makes each input feature's
        row a group (feature selection).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> w = jnp.array([[3.0, 4.0], [0.3, 0.4]])
      >>> print(jaxloss.prox.group_lasso(w, 1.0, axis=-1))
      [[2.4 3.2]
       [0.  0. ]]
    """
    _core.check_hyper(threshold, "threshold", low=0.0)
    return _map(lambda x: _group_lasso_leaf(x, threshold, axis), params)


def non_negative(params: PyTree, step: ArrayLike | None = None) -> PyTree:
    """Projection onto the non-negative orthant, ``max(x, 0)`` (``optax.projections.projection_non_negative``).

    A projection is the proximal operator of a constraint's indicator, for every step, so ``step`` is
    accepted (for :func:`transform`) and ignored.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.non_negative(jnp.array([-1.0, 2.0])))
      [0. 2.]
    """
    del step
    return _map(optax.projections.projection_non_negative, params)


def box(
    params: PyTree,
    step: ArrayLike | None = None,
    *,
    lower: ArrayLike | PyTree,
    upper: ArrayLike | PyTree,
) -> PyTree:
    """Projection onto the box ``lower <= x <= upper`` (``optax.projections.projection_box``).

    Args:
      params: a pytree of arrays.
      step: ignored (a projection does not depend on the step); present so that
        ``functools.partial(box, lower=0.0, upper=1.0)`` can be given to :func:`transform`.
      lower: the lower bound, a scalar or a pytree of the params' structure.
      upper: the upper bound, likewise.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.box(jnp.array([-1.0, 0.5, 2.0]), lower=0.0, upper=1.0))
      [0.  0.5 1. ]
    """
    del step
    structure = jax.tree_util.tree_structure(params)

    def full(bound):  # a scalar (or array) bound applies to every leaf
        if jax.tree_util.tree_structure(bound) == structure:
            return bound
        return jax.tree_util.tree_map(lambda _: bound, params)

    return optax.projections.projection_box(params, full(lower), full(upper))


class ProxState(NamedTuple):
    """State of :func:`transform`: the step count, for learning-rate schedules."""

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax's states do


def _prox_fn(regularizer) -> Callable:
    if hasattr(regularizer, "prox") and callable(regularizer.prox):
        return regularizer.prox
    if callable(regularizer):
        return regularizer
    raise TypeError(
        f"transform needs a regularizer with .prox(params, step) or a function prox(params, step); got {regularizer!r}"
    )


def transform(
    regularizer: Regularizer,
    learning_rate: float | Callable[[Any], Any] | None = None,
) -> optax.GradientTransformation:
    """An optax ``GradientTransformation`` that applies a proximal step after the preceding updates.

    With ``u`` the incoming updates and ``x`` the current params, it returns ``prox(x + u, step) - x``, so
    that ``optax.apply_updates`` lands on ``prox(x + u, step)``. Chained after ``optax.sgd(lr)`` with the
    same ``lr`` this is proximal gradient descent (ISTA) on ``f + g`` where ``f`` is what the gradients
    come from and ``g`` the regularizer; coordinates that the prox zeroes are exactly 0 (``x + (0 - x)``
    is exactly 0 in floating point). After an adaptive optimizer (Adam, ...) it is the common heuristic
    "proximal Adam" with the base learning rate as the step. Differentiate only the smooth part: do not
    also include ``g`` in the loss whose gradients feed the chain.

    Args:
      regularizer: a :class:`jaxloss.Regularizer` with a closed-form ``.prox`` (``l1``, ``l2``,
        ``elastic_net``, ``group_lasso``, sums and multiples of them), or any function
        ``prox(params, step) -> params`` such as :func:`non_negative` or ``functools.partial(box, ...)``.
      learning_rate: the optimizer's learning rate (a float or an optax schedule of the step count), used
        as the proximal step; ``None`` for projections, which ignore the step.

    Returns:
      an ``optax.GradientTransformation``; its ``update`` requires ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jaxloss
      >>> opt = optax.chain(optax.sgd(0.1), jaxloss.prox.transform(jaxloss.l1(1.0), 0.1))
      >>> params = jnp.array([1.0, 0.05])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jnp.zeros(2), state, params)
      >>> print(optax.apply_updates(params, updates))
      [0.9 0. ]
    """
    prox = _prox_fn(regularizer)

    def init_fn(params):
        del params
        return ProxState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("jaxloss.prox.transform needs params: call update(updates, state, params)")
        if learning_rate is None:
            step = None
        elif callable(learning_rate):
            step = learning_rate(state.count)
        else:
            step = learning_rate
        moved = optax.apply_updates(params, updates)
        new = prox(moved, step)
        updates = jax.tree_util.tree_map(lambda n, p: (n - p) if _is_float_leaf(p) else jnp.zeros_like(p), new, params)
        return updates, ProxState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


# -------------------------------------------------------------------------------------------------------
# Constraint sets for jaxloss.minimize(constraint=...)
# -------------------------------------------------------------------------------------------------------


class Constraint:
    """A convex set for ``jaxloss.minimize(..., constraint=c)``: ``c.project(params)`` is the Euclidean
    projection onto it, ``c.prox(params, step)`` the same (a projection is the proximal operator of the
    set's indicator, for every step).

    ``mask=`` (a pytree of bools or a predicate on the parameter path, as for regularizers; default:
    every float leaf) selects the constrained leaves; the others are free. :class:`Simplex` and
    :class:`L2Ball` treat the selected leaves together as one vector. The bounds, the simplex's scale and
    the ball's radius are pytree leaves: a solution is differentiable with respect to them.
    """

    mask: Any = None

    def _selected(self, params):
        from jaxloss import regularizers as _regs  # regularizers imports this module

        _, leaves, flags = _regs._leaf_flags(_regs._canonical_mask(self.mask), params)
        return leaves, flags

    def project(self, params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        _, flags = self._selected(params)
        chosen = [x for x, f in zip(leaves, flags) if f]
        if not chosen:
            return params
        projected = iter(self._project_leaves(chosen))
        out = [next(projected) if f else x for x, f in zip(leaves, flags)]
        return jax.tree_util.tree_unflatten(treedef, out)

    def prox(self, params, step=None):
        del step
        return self.project(params)

    def violation(self, params):
        """The distance from ``params`` to the set (0 when feasible)."""
        moved = self.project(params)
        parts = [
            jnp.sum(jnp.square(a - b))
            for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(moved))
        ]
        return jnp.sqrt(sum(parts[1:], parts[0])) if parts else jnp.zeros(())

    def __call__(self, params):
        """The indicator's value on feasible points: 0 (the objective is unchanged inside the set)."""
        leaves = [x for x in jax.tree_util.tree_leaves(params) if _is_float_leaf(x)]
        return jnp.zeros((), jnp.result_type(*leaves) if leaves else jnp.float32)

    def _project_leaves(self, leaves):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def separable(self) -> bool:
        """Whether the set is a product of intervals (then prox of a separable penalty then projection is
        the prox of their sum)."""
        return False


def _register(cls, fields):
    def flatten(c):
        return tuple(getattr(c, f) for f in fields), c.mask

    def unflatten(mask, children):
        new = object.__new__(cls)
        for f, v in zip(fields, children):
            setattr(new, f, v)
        new.mask = mask
        return new

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    return cls


def _mask_key(mask):
    from jaxloss import regularizers as _regs

    return _regs._canonical_mask(mask)


class NonNegative(Constraint):
    """``x >= 0`` on the selected leaves (``scipy.optimize.nnls``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> c = jaxloss.prox.NonNegative(mask={"w": True, "b": False})
      >>> out = c.project({"w": jnp.array([-1.0, 2.0]), "b": jnp.array(-3.0)})
      >>> print(out["w"], out["b"])
      [0. 2.] -3.0
    """

    def __init__(self, *, mask: PyTree | Callable[..., bool] | None = None) -> None:
        self.mask = _mask_key(mask)

    def _project_leaves(self, leaves):
        return [jnp.maximum(x, 0) for x in leaves]

    @property
    def separable(self):
        return True

    def __repr__(self):
        return "NonNegative()" if self.mask is None else "NonNegative(mask=...)"


class Box(Constraint):
    """``lower <= x <= upper`` on the selected leaves (``scipy.optimize.lsq_linear(bounds=...)``).

    Args:
      lower: a scalar or an array broadcastable to every selected leaf (``-inf`` allowed).
      upper: a scalar or an array broadcastable to every selected leaf (``inf`` allowed).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.Box(0.0, 1.0).project(jnp.array([-1.0, 0.5, 2.0])))
      [0.  0.5 1. ]
    """

    def __init__(
        self,
        lower: ArrayLike | PyTree,
        upper: ArrayLike | PyTree,
        *,
        mask: PyTree | Callable[..., bool] | None = None,
    ) -> None:
        if (
            _core.is_concrete(lower)
            and _core.is_concrete(upper)
            and bool(np.any(np.asarray(lower) > np.asarray(upper)))
        ):
            raise ValueError(f"Box needs lower <= upper; got lower={lower}, upper={upper}")
        self.lower, self.upper, self.mask = lower, upper, _mask_key(mask)

    def _project_leaves(self, leaves):
        return [jnp.clip(x, jnp.asarray(self.lower, x.dtype), jnp.asarray(self.upper, x.dtype)) for x in leaves]

    @property
    def separable(self):
        return True

    def __repr__(self):
        return f"Box({self.lower!r}, {self.upper!r})"


class Simplex(Constraint):
    """``x >= 0, sum(x) = scale`` over the selected leaves together (``optax.projections.projection_simplex``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.Simplex().project(jnp.array([0.5, 1.5, -1.0])))
      [0. 1. 0.]
    """

    def __init__(self, scale: ArrayLike = 1.0, *, mask: PyTree | Callable[..., bool] | None = None) -> None:
        _core.check_hyper(scale, "scale", low=0.0, low_open=True)
        self.scale, self.mask = scale, _mask_key(mask)

    def _project_leaves(self, leaves):
        return list(optax.projections.projection_simplex(list(leaves), jnp.asarray(self.scale, leaves[0].dtype)))

    def __repr__(self):
        return f"Simplex({self.scale!r})"


class L2Ball(Constraint):
    """``||x||_2 <= radius`` over the selected leaves together (``optax.projections.projection_l2_ball``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.prox.L2Ball(1.0).project(jnp.array([3.0, 4.0])))
      [0.6 0.8]
    """

    def __init__(self, radius: ArrayLike = 1.0, *, mask: PyTree | Callable[..., bool] | None = None) -> None:
        _core.check_hyper(radius, "radius", low=0.0)
        self.radius, self.mask = radius, _mask_key(mask)

    def _project_leaves(self, leaves):
        sq = sum(jnp.sum(jnp.square(x)) for x in leaves)
        r = jnp.asarray(self.radius, sq.dtype)
        norm = jnp.sqrt(jnp.where(sq > 0, sq, 1.0))
        factor = jnp.where(sq > r * r, r / norm, 1.0)
        return [x * factor.astype(x.dtype) for x in leaves]

    def __repr__(self):
        return f"L2Ball({self.radius!r})"


_register(NonNegative, ())
_register(Box, ("lower", "upper"))
_register(Simplex, ("scale",))
_register(L2Ball, ("radius",))
