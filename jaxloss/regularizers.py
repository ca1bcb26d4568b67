"""Regularizers: pure penalties on parameter pytrees (or on model outputs) that compose with ``+`` and ``*``.

A :class:`Regularizer` is a callable ``reg(params) -> scalar``. ``reg_a + reg_b`` adds penalties,
``c * reg`` scales one (``c >= 0``), and ``sum([...])`` works. Every constructor takes ``mask=``: a pytree
of Python bools (a prefix of the params' structure: ``{"w": True, "b": False}`` masks every leaf under
``"b"``), or a predicate on the parameter path, ``mask=lambda path, leaf: ...`` or ``mask=lambda path:
...``, where ``path`` is the leaf's key path joined by ``/`` (``"params/Dense_0/kernel"``, ``"0/1"``);
:func:`not_bias` is the predicate "every parameter except biases". Leaves that are not floating-point
arrays (integers, functions in an Equinox module) are never penalised.

Conventions (stated once): ``l2(s) = 0.5 * s * ||w||^2`` (the ``1/2`` makes its gradient ``s * w``, as in
scikit-learn's ``LogisticRegression``/``PoissonRegressor`` and ``optax.add_decayed_weights``),
``l1(s) = s * ||w||_1``, ``elastic_net(s, r) = s * (r * ||w||_1 + 0.5 * (1 - r) * ||w||^2)`` (scikit-learn's
``ElasticNet``), ``group_lasso(s) = s * sum_g ||w_g||_2`` (no group-size weights).

Regularizers with a closed-form proximal operator expose it as ``reg.prox(params, step)``
(``argmin_z reg(z) + ||z - params||^2 / (2 step)``), masked leaves unchanged; sums have one when each leaf
carries at most one non-quadratic penalty plus any number of ``l2`` terms (the ``l2`` part folds in
exactly). ``reg.has_prox`` says whether it exists and ``reg.smooth_part`` / ``reg.nonsmooth_part`` split
the sum for proximal methods (:func:`jaxloss.minimize` uses them).

Penalties on model outputs (:func:`output_entropy`, :func:`confidence_penalty`) take the logits instead of
params: ``reg(logits)`` alone, or ``reg(params, outputs=logits)`` in a sum with parameter penalties, which
is what :func:`jaxloss.objective` does.

Examples:
  >>> import jax.numpy as jnp, jaxloss
  >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(5.0)}
  >>> reg = jaxloss.l2(0.1, mask=jaxloss.not_bias) + 0.5 * jaxloss.l1(1.0, mask=jaxloss.not_bias)
  >>> print(round(float(reg(params)), 4))
  1.75
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _core
from jaxloss import prox as _prox
from jaxloss._typing import ArrayLike, PyTree

__all__ = [
    "Regularizer",
    "l2",
    "l1",
    "elastic_net",
    "group_lasso",
    "orthogonal",
    "output_entropy",
    "confidence_penalty",
    "not_bias",
]

_BIAS_NAMES = frozenset({"b", "bias", "biases", "intercept", "bias_ih", "bias_hh"})


def not_bias(path: str, leaf: Any = None) -> bool:
    """Mask predicate: ``False`` for biases, ``True`` for every other parameter.

    A bias is a leaf whose last path component is ``b``, ``bias``, ``biases`` or ``intercept`` (Flax,
    Equinox and PyTorch-style names). Parameters stored positionally (``[(W, b), ...]``) have no names:
    mask them with a pytree of bools or ``lambda path, leaf: leaf.ndim > 1``.

    Examples:
      >>> import jaxloss
      >>> jaxloss.not_bias("params/Dense_0/bias"), jaxloss.not_bias("params/Dense_0/kernel")
      (False, True)
    """
    del leaf
    return path.rsplit("/", 1)[-1].lower() not in _BIAS_NAMES


def _is_float_leaf(x) -> bool:
    return _prox._is_float_leaf(x)


def _call_predicate(pred, path, leaf) -> bool:
    try:
        nargs = len(inspect.signature(pred).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        nargs = 2
    return bool(pred(path, leaf) if nargs >= 2 else pred(path))


class _TreeMask:
    """A pytree mask stored as (structure, bools): hashable and compared by value (a pytree's static data)."""

    def __init__(self, treedef, flags):
        self.treedef, self.flags = treedef, tuple(flags)

    def tree(self):
        return jax.tree_util.tree_unflatten(self.treedef, self.flags)

    def __hash__(self):
        return hash((self.treedef, self.flags))

    def __eq__(self, other):
        return isinstance(other, _TreeMask) and (self.treedef, self.flags) == (other.treedef, other.flags)


def _is_bool_leaf(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return True
    return (
        isinstance(x, (jax.Array, np.ndarray))
        and x.dtype == bool
        and x.ndim == 0
        and not isinstance(x, jax.core.Tracer)
    )


def _canonical_mask(mask):
    """``None``, a predicate, or a pytree of bools as a :class:`_TreeMask`."""
    if mask is None or isinstance(mask, _TreeMask):
        return mask
    leaves, treedef = jax.tree_util.tree_flatten(mask)
    if leaves and all(_is_bool_leaf(x) for x in leaves):
        return _TreeMask(treedef, [bool(x) for x in leaves])
    if callable(mask):
        return mask
    raise TypeError(
        "mask must be a pytree of bools (a prefix of the params' structure) or a predicate "
        f"mask(path) / mask(path, leaf); got {mask!r}"
    )


def _leaf_flags(mask, params):
    """``(paths, leaves, flags)`` for every leaf of ``params``: whether the mask selects it."""
    with_path, _ = jax.tree_util.tree_flatten_with_path(params)
    paths = [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in with_path]
    leaves = [leaf for _, leaf in with_path]
    if isinstance(mask, _TreeMask):
        mask = mask.tree()
    if mask is None:
        flags = [True] * len(leaves)
    elif callable(mask) and not isinstance(mask, (dict, list, tuple)):
        flags = [_call_predicate(mask, path, leaf) for path, leaf in zip(paths, leaves)]
    else:
        mask_leaves, mask_def = jax.tree_util.tree_flatten(mask)
        try:
            subtrees = mask_def.flatten_up_to(params)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"mask must be a pytree of bools whose structure is a prefix of the params' structure; "
                f"mask {mask_def} does not fit params {jax.tree_util.tree_structure(params)}"
            ) from e
        flags = []
        for m, sub in zip(mask_leaves, subtrees):
            if isinstance(m, jax.core.Tracer):
                raise TypeError("mask entries must be concrete Python bools, not traced arrays")
            flags.extend([bool(m)] * len(jax.tree_util.tree_leaves(sub)))
    flags = [f and _is_float_leaf(leaf) for f, leaf in zip(flags, leaves)]
    return paths, leaves, flags


def _compute(x):
    return x.astype(_core.compute_dtype(x.dtype))


def _sum_sq(x):
    x = _compute(x)
    return jnp.sum(x * x)


def _sum_abs(x):
    return jnp.sum(jnp.abs(_compute(x)))


def _orthogonal_leaf(x):
    if x.ndim < 2:
        return jnp.zeros((), _core.compute_dtype(x.dtype))
    w = _compute(x).reshape(-1, x.shape[-1])
    if w.shape[0] < w.shape[1]:  # wide: rows can be orthonormal, columns cannot
        w = w.T
    gram = w.T @ w
    return jnp.sum(jnp.square(gram - jnp.eye(gram.shape[0], dtype=gram.dtype)))


def _entropy(logits, axis):
    x = _compute(jnp.asarray(logits))
    logp = jax.nn.log_softmax(x, axis=axis)
    h = -jnp.sum(jnp.exp(logp) * logp, axis=axis)
    return jnp.mean(h)


@dataclasses.dataclass(frozen=True, eq=False)
class _Term:
    kind: str  # l2, l1, elastic_net, group_lasso, orthogonal, entropy
    strength: Any
    mask: Any = None
    options: Tuple[Tuple[str, Any], ...] = ()
    on_outputs: bool = False
    sign: float = 1.0
    ratio: Any = None  # elastic net's l1_ratio (traceable, like the strength)

    def opt(self, name):
        return dict(self.options)[name]

    @property
    def smooth(self) -> bool:
        if self.kind == "elastic_net":
            r = self.ratio
            return _core.is_concrete(r) and float(r) == 0.0
        return self.kind in ("l2", "orthogonal", "entropy")

    @property
    def has_prox(self) -> bool:
        return self.kind in ("l2", "l1", "elastic_net", "group_lasso")

    def leaf_value(self, x):
        if self.kind == "l2":
            return 0.5 * _sum_sq(x)
        if self.kind == "l1":
            return _sum_abs(x)
        if self.kind == "elastic_net":
            r = self.ratio
            return r * _sum_abs(x) + 0.5 * (1.0 - r) * _sum_sq(x)
        if self.kind == "group_lasso":
            return jnp.sum(_prox._group_norm(_compute(x), self.opt("axis")))
        if self.kind == "orthogonal":
            return _orthogonal_leaf(x)
        raise AssertionError(self.kind)

    def leaf_prox(self, x, t):
        """prox of ``t * penalty`` (``t`` = step * strength) for the non-quadratic kinds."""
        if self.kind == "l1":
            return _prox._soft_threshold_leaf(x, t)
        if self.kind == "elastic_net":
            r = self.ratio
            return _prox._elastic_net_leaf(x, t * r, t * (1.0 - r))
        if self.kind == "group_lasso":
            return _prox._group_lasso_leaf(x, t, self.opt("axis"))
        raise AssertionError(self.kind)

    def describe(self) -> str:
        """``name(strength=..., <options>, mask=...)``: how the term was built, hyperparameters by name."""
        args = [f"strength={_fmt(self.strength)}"]
        if self.ratio is not None:
            args.append(f"l1_ratio={_fmt(self.ratio)}")
        args += [f"{k}={v!r}" for k, v in self.options]
        if self.mask is not None:
            args.append(f"mask={_fmt_mask(self.mask)}")
        name = (
            "confidence_penalty"
            if self.kind == "entropy" and self.sign < 0
            else ("output_entropy" if self.kind == "entropy" else self.kind)
        )
        return f"{name}({', '.join(args)})"


def _fmt(x):
    """A hyperparameter for a repr: the number when concrete, else its shape and dtype."""
    if _core.is_concrete(x) and jnp.ndim(x) == 0:
        return repr(float(x))
    if isinstance(x, jax.core.Tracer):
        return "<traced>"
    dtype = jnp.result_type(x)
    return f"<{dtype.name}{list(jnp.shape(x))}>"


def _fmt_mask(mask):
    if isinstance(mask, _TreeMask):
        return repr(mask.tree())
    return getattr(mask, "__name__", type(mask).__name__)


class Regularizer:
    """A penalty ``params -> scalar`` built from terms; compose with ``+``, scale with ``*``.

    Build one with :func:`l2`, :func:`l1`, :func:`elastic_net`, :func:`group_lasso`, :func:`orthogonal`,
    :func:`output_entropy` or :func:`confidence_penalty`. Calling it is pure and traceable (``jax.jit``,
    ``jax.grad``, ``jax.vmap`` over params or strengths).

    Attributes:
      terms: the tuple of terms (each with its strength and mask).
    """

    def __init__(self, terms: Any) -> None:
        self.terms = tuple(terms)

    # Evaluation ---------------------------------------------------------------------------------------

    @property
    def on_outputs(self) -> bool:
        """Whether every term penalises model outputs (``reg(logits)``) rather than parameters."""
        return bool(self.terms) and all(t.on_outputs for t in self.terms)

    def __call__(self, params, outputs=None):
        """The penalty: parameter terms on ``params``, output terms on ``outputs``.

        A regularizer made only of output terms applies them to its first argument when ``outputs`` is not
        given, so ``jaxloss.output_entropy(0.1)(logits)`` works.
        """
        if outputs is None and self.on_outputs:
            outputs = params
        total = None
        param_terms = [t for t in self.terms if not t.on_outputs]
        if param_terms:
            paths, leaves, _ = _leaf_flags(None, params)
            for term in param_terms:
                _, _, flags = _leaf_flags(term.mask, params)
                parts = [term.leaf_value(x) for x, f in zip(leaves, flags) if f]
                if not parts:
                    continue
                value = term.strength * sum(parts[1:], parts[0])
                total = value if total is None else total + value
        for term in (t for t in self.terms if t.on_outputs):
            if outputs is None:
                raise ValueError(f"{term.describe()} penalises model outputs: call reg(params, outputs=logits)")
            value = term.sign * term.strength * _entropy(outputs, term.opt("axis"))
            total = value if total is None else total + value
        if total is None:
            leaves = [x for x in jax.tree_util.tree_leaves(params) if _is_float_leaf(x)]
            dtype = jnp.result_type(*leaves) if leaves else jnp.float32
            return jnp.zeros((), _core.compute_dtype(dtype))
        return total

    # Algebra ------------------------------------------------------------------------------------------

    def __add__(self, other):
        if isinstance(other, Regularizer):
            return Regularizer(self.terms + other.terms)
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return self
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, factor):
        if isinstance(factor, Regularizer):
            return NotImplemented
        _core.check_hyper(factor, "factor", low=0.0)
        return Regularizer(dataclasses.replace(t, strength=factor * t.strength) for t in self.terms)

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        return self * (1.0 / divisor)

    def __repr__(self):
        """The terms as they were built, e.g. ``l2(strength=0.0001, mask=not_bias) + l1(strength=0.01)``."""
        return " + ".join(t.describe() for t in self.terms) or "Regularizer(())"

    # Smoothness and proximal operators ------------------------------------------------------------------

    @property
    def is_smooth(self) -> bool:
        """Whether every term is differentiable (``l2``, ``orthogonal``, output penalties)."""
        return all(t.smooth for t in self.terms)

    @property
    def smooth_part(self) -> Optional["Regularizer"]:
        """The differentiable terms (``None`` if there are none)."""
        terms = [t for t in self.terms if t.smooth]
        return Regularizer(terms) if terms else None

    @property
    def nonsmooth_part(self) -> Optional["Regularizer"]:
        """The non-differentiable terms (``l1``, ``group_lasso``, ``elastic_net`` with ``l1_ratio > 0``)."""
        terms = [t for t in self.terms if not t.smooth]
        return Regularizer(terms) if terms else None

    @property
    def has_prox(self) -> bool:
        """Whether every term has a closed-form prox (:meth:`prox` still raises if two non-quadratic terms
        select the same leaf)."""
        return all(t.has_prox and not t.on_outputs for t in self.terms)

    def prox(self, params, step):
        """The proximal operator ``argmin_z reg(z) + ||z - params||^2 / (2 step)``, leaf by leaf.

        On each leaf, the ``l2`` terms that select it (total strength ``mu``) fold into the single other
        term ``g`` exactly: ``prox_{step (g + mu/2 ||.||^2)}(x) = prox_{step' g}(x / (1 + step mu))`` with
        ``step' = step / (1 + step mu)``. Leaves that no term selects are returned unchanged.

        Args:
          params: the parameter pytree.
          step: the step size (>= 0), e.g. the learning rate; traceable.

        Raises:
          NotImplementedError: a term has no closed-form prox (``orthogonal``, output penalties), or two
            non-quadratic terms select the same leaf.
        """
        for term in self.terms:
            if term.on_outputs or not term.has_prox:
                raise NotImplementedError(f"{term.describe()} has no closed-form proximal operator")
        leaves, treedef = jax.tree_util.tree_flatten(params)
        flags = [_leaf_flags(t.mask, params)[2] for t in self.terms]
        paths = _leaf_flags(None, params)[0]
        out = []
        for i, x in enumerate(leaves):
            active = [t for t, f in zip(self.terms, flags) if f[i]]
            if not active:
                out.append(x)
                continue
            quad = [t for t in active if t.kind == "l2"]
            other = [t for t in active if t.kind != "l2"]
            if len(other) > 1:
                raise NotImplementedError(
                    f"the prox of {' + '.join(t.describe() for t in other)} on parameter {paths[i]!r} has no "
                    "closed form; give the terms disjoint masks"
                )
            t = jnp.asarray(step, x.dtype)
            if quad:
                mu = sum((q.strength for q in quad[1:]), quad[0].strength)
                denom = 1.0 + t * jnp.asarray(mu, x.dtype)
                x, t = x / denom, t / denom
            if other:
                x = other[0].leaf_prox(x, t * jnp.asarray(other[0].strength, x.dtype))
            out.append(x)
        return jax.tree_util.tree_unflatten(treedef, out)


def _flatten_regularizer(reg):
    children = tuple((t.strength, t.ratio) for t in reg.terms)
    aux = tuple((t.kind, t.mask, t.options, t.on_outputs, t.sign) for t in reg.terms)
    return children, aux


def _unflatten_regularizer(aux, children):
    return Regularizer(
        _Term(kind, strength, mask, options, on_outputs, sign, ratio)
        for (kind, mask, options, on_outputs, sign), (strength, ratio) in zip(aux, children)
    )


# A regularizer is a pytree whose leaves are its strengths (and elastic-net ratios): it can be passed
# through jax.jit / jax.vmap as data, so that changing a strength does not recompile (jaxloss.minimize).
jax.tree_util.register_pytree_node(Regularizer, _flatten_regularizer, _unflatten_regularizer)


def _term(kind, strength, mask, name, ratio=None, **options):
    _core.check_hyper(strength, name, low=0.0)
    return Regularizer([_Term(kind, strength, _canonical_mask(mask), tuple(options.items()), ratio=ratio)])


def l2(strength: ArrayLike, *, mask: PyTree | Callable[..., bool] | None = None) -> Regularizer:
    """Squared L2 penalty (ridge, weight decay): ``0.5 * strength * sum ||w||^2``.

    The ``1/2`` convention makes the gradient ``strength * w`` (scikit-learn's ``l2_reg_strength``,
    ``optax.add_decayed_weights``). scikit-learn's ``Ridge(alpha)`` on ``||y - Xw||^2 + alpha ||w||^2`` is
    ``jaxloss.ridge_regression`` with ``strength = alpha / n``.

    Args:
      strength: >= 0; traceable.
      mask: pytree of bools or predicate on the parameter path (see the module docstring).

    Prox: ``x / (1 + step * strength)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.l2(0.5)({"w": jnp.array([1.0, 2.0])}))
      1.25
    """
    return _term("l2", strength, mask, "strength")


def l1(strength: ArrayLike, *, mask: PyTree | Callable[..., bool] | None = None) -> Regularizer:
    """L1 penalty (lasso): ``strength * sum |w|``.

    Non-smooth at 0: its gradient there is 0 (JAX's ``sign(0)``); use its prox (soft-thresholding) for
    exact zeros (:func:`jaxloss.prox.transform`, :func:`jaxloss.minimize`).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> reg = jaxloss.l1(0.5)
      >>> print(reg(jnp.array([1.0, -2.0])))
      1.5
      >>> print(reg.prox(jnp.array([1.0, -0.2]), 1.0))
      [0.5 0. ]
    """
    return _term("l1", strength, mask, "strength")


def elastic_net(
    strength: ArrayLike,
    l1_ratio: ArrayLike = 0.5,
    *,
    mask: PyTree | Callable[..., bool] | None = None,
) -> Regularizer:
    """Elastic net: ``strength * (l1_ratio * ||w||_1 + 0.5 * (1 - l1_ratio) * ||w||^2)`` (scikit-learn's).

    Args:
      strength: >= 0 (scikit-learn's ``alpha``).
      l1_ratio: in ``[0, 1]``; 1 is the lasso, 0 is ``l2(strength)``.

    Prox: ``soft_threshold(x, step * strength * l1_ratio) / (1 + step * strength * (1 - l1_ratio))``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.elastic_net(1.0, 0.5)(jnp.array([2.0])))
      2.0
    """
    _core.check_hyper(l1_ratio, "l1_ratio", low=0.0, high=1.0)
    return _term("elastic_net", strength, mask, "strength", ratio=l1_ratio)


def group_lasso(
    strength: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = None,
    mask: PyTree | Callable[..., bool] | None = None,
) -> Regularizer:
    """Group lasso: ``strength * sum_g ||w_g||_2`` (no group-size weights).

    Args:
      strength: >= 0.
      axis: the axis (or axes) each group spans; ``None`` (default): each parameter leaf is one group.
        For a weight matrix ``[in, out]``, ``axis=-1`` groups each input feature's outgoing weights, so the
        prox removes whole input features.
      mask: see the module docstring.

    The gradient at a zero group is 0 (finite). Prox: block soft-thresholding
    (:func:`jaxloss.prox.group_lasso`).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.group_lasso(1.0, axis=-1)(jnp.array([[3.0, 4.0], [0.0, 1.0]])))
      6.0
    """
    return _term("group_lasso", strength, mask, "strength", axis=axis)


def orthogonal(strength: ArrayLike, *, mask: PyTree | Callable[..., bool] | None = None) -> Regularizer:
    """Soft orthogonality: ``strength * ||W^T W - I||_F^2`` for each parameter with ``ndim >= 2``.

    Leaves of higher rank are read as ``[prod(leading dims), last dim]`` (a conv kernel ``[h, w, in, out]``
    as ``[h w in, out]``). For a wide matrix (fewer rows than columns) the Gram matrix of the rows,
    ``W W^T``, is used, since only the rows can be orthonormal. Vectors and scalars (biases) contribute 0.
    No closed-form prox.

    References:
      Brock et al., "Neural Photo Editing with Introspective Adversarial Networks", ICLR 2017;
      Bansal et al., "Can We Gain More from Orthogonality Regularizations in Training Deep CNNs?",
      NeurIPS 2018.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.orthogonal(1.0)(jnp.eye(3)), jaxloss.orthogonal(1.0)(2 * jnp.eye(2)))
      0.0 18.0
    """
    return _term("orthogonal", strength, mask, "strength")


def output_entropy(strength: ArrayLike, *, axis: int = -1) -> Regularizer:
    """Entropy of the predicted distribution: ``strength * mean_examples H(softmax(logits))``.

    Minimising it sharpens predictions (entropy minimisation for semi-supervised learning). A penalty on
    outputs: ``reg(logits)``, or add it to an objective, which passes the model's predictions.

    Args:
      strength: >= 0.
      axis: the class axis of the logits.

    References:
      Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.output_entropy(1.0)(jnp.zeros((3, 2)))), 4))
      0.6931
    """
    _core.check_hyper(strength, "strength", low=0.0)
    return Regularizer([_Term("entropy", strength, None, (("axis", axis),), on_outputs=True)])


def confidence_penalty(strength: ArrayLike, *, axis: int = -1) -> Regularizer:
    """Confidence penalty: ``-strength * mean_examples H(softmax(logits))``; it rewards high entropy.

    Adding it to a cross-entropy objective discourages over-confident (low-entropy) predictions, an
    alternative to label smoothing. A penalty on outputs (see :func:`output_entropy`).

    References:
      Pereyra et al., "Regularizing Neural Networks by Penalizing Confident Output Distributions",
      ICLR 2017 workshop.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(round(float(jaxloss.confidence_penalty(1.0)(jnp.zeros((3, 2)))), 4))
      -0.6931
    """
    _core.check_hyper(strength, "strength", low=0.0)
    return Regularizer([_Term("entropy", strength, None, (("axis", axis),), on_outputs=True, sign=-1.0)])
