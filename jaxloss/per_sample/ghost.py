"""Ghost norms and ghost clipping for any model, found by analysing its jaxpr; dense stacks.

DP-SGD needs every example's gradient norm ``|g_i|``; the exact vmap path forms all ``B`` per-example
gradients (``B x |params|`` floats). Here the per-example loss ``l_i = fn(params, example_i as a batch of
one)`` is traced once to a jaxpr and every parameter leaf is followed to the operation that consumes it:

* ``dot_general`` (Dense, Einsum, attention projections, per-token layers): example ``i``'s gradient is
  ``G_i = sum_t a_it g_it^T`` over the free ("token") axes ``t`` of the activation ``a`` and the output
  cotangent ``g``, so ``|G_i|^2 = sum_{t,s} (a_it . a_is)(g_it . g_is)`` (the Gram identity of Li et al.
  2022); when ``T (d_in + d_out) > d_in d_out`` the direct per-example ``a_i^T g_i`` is cheaper and is
  used instead (Bu et al.'s mixed ghost norm);
* ``conv_general_dilated`` (Conv kernels): the same with ``a`` the unfolded input patches (strided
  slices of the padded input), ``t`` the output positions;
* ``gather`` from a ``[V, E]`` table (Embedding): ``|G_i|^2 = sum_{t,s} [idx_t = idx_s] (g_t . g_s)``;
* an elementwise ``add``/``sub``/``mul`` with a broadcast parameter (bias, LayerNorm/RMSNorm scale and
  shift): the per-example gradient ``sum over broadcast axes of g`` (or ``a * g``), of the parameter's size.

The activations and the output cotangents ``g`` come from ONE forward and backward pass: a zero "probe" is
added to the output of each of those operations and the summed loss is differentiated with respect to the
probes only (no weight gradient is computed in that pass). The parameter may reach its operation through
``reshape``/``transpose``/``convert_element_type``/``broadcast_in_dim`` (the latter for elementwise uses
only). Any leaf used otherwise (two uses, weight tying, a product of two parameters, a regularizer inside
``fn``, a parameter inside ``scan``/``cond``/a custom derivative rule) takes the exact per-example (vmap)
path *for that leaf alone*; :func:`ghost_plan` reports which leaves do and why.

**Clipping.** The clipped sum ``sum_i c_i G_i`` with ``c_i = min(1, C / |g_i|)`` is formed in one of two ways:

* *two-pass ghost clipping* (Li et al. 2022): a second backward pass, of ``sum_i c_i l_i``, from the same
  forward pass (its residuals serve both backward passes; the forward is not recomputed). Memory: that of
  one batch gradient plus one backward step's temporaries (less with ReLUs, below); time: one more backward
  pass of activation gradients.
* *book-keeping* (Bu et al. 2023): for each operation, its ordinary weight gradient with the stored
  output cotangents ``g`` scaled by ``c_i`` (one weight-gradient contraction per parameter, no second
  backward pass). Faster, but every ``g`` is kept until the clip factors are known.

``clipping="auto"`` (the default) chooses by a rule fitted to ``benchmarks/ghost.py`` (batch 512, CPU):
book-keeping when the outputs of the parameter operations it must keep (dense, conv, embedding sites, per
example) are at most 20% of all the values the per-example forward computes, two-pass otherwise. Measured:
the MLP (ratio 0.33) keeps 1.50x the batch gradient's temp memory by book-keeping and 0.79x by two-pass;
the CNN (0.29) 1.17x / 1.12x; the transformer (0.12) 1.10x by book-keeping and 1.23x by two-pass, which is
also the slower there (1.50x against 1.18x the batch gradient's time). Two-pass costs about a third more
flops than the batch gradient (compiled: 1.31x to 1.58x on the three models), book-keeping 1.00x to 1.24x.
:func:`ghost_plan` reports the choice.

**ReLU.** Every ``jax.nn.relu`` (a ``custom_jvp`` of ``max(x, 0)`` whose rule gives ``where(x > 0, t, 0)``,
checked once at trace time; any other rule is left alone) runs with its derivative mask kept bit-packed, 1 bit
an element, instead of the pre-activation ``x`` that ``jax.grad`` keeps (4 bytes an element). The ghost
passes keep the forward residuals longer than one batch gradient does (two-pass: through two backward passes),
so this is what brings them under the batch gradient's memory on ReLU models: MLP two-pass 1.25x -> 0.79x,
CNN 1.32x -> 1.12x (book-keeping 1.33x -> 1.17x); the values are unchanged.
The packed ReLU is a ``custom_vjp``: the ghost norms and clipped gradients are differentiable in reverse mode
(and vmap/scan/jit work), but not in forward mode (``jax.jvp`` / ``jax.jacfwd`` through them raise) for models
with a ReLU; use ``method="vmap"`` there.

Everything is pure and jit-compilable (``fn`` static). Models of any framework are accepted as
``params`` (see ``jaxloss._models``): Flax NNX / linen, Equinox, or a pytree with a function.

References:
  Goodfellow, "Efficient Per-Example Gradient Computations", arXiv:1510.01799, 2015.
  Li, Tramer, Liang, Hashimoto, "Large Language Models Can Be Strong Differentially Private Learners",
  ICLR 2022 (ghost clipping).
  Bu, Wang, Zha, Karypis, "Differentially Private Optimization on Large Model at Small Cost", ICML 2023
  (book-keeping, mixed ghost norm).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxloss import _models
from jaxloss._typing import ArrayLike
from jaxloss.per_sample import _common as _ps
from jaxloss.per_sample.clipping import ClippedGrad, _check_dp_args, _clip_factor, _dp_noise

__all__ = [
    "ghost_plan",
    "GhostPlan",
    "ghost_norms",
    "ghost_clipped_grad",
    "dense_stack_apply",
    "dense_stack_objective",
    "ghost_grad_norms",
    "ghost_clipped_mean_grad",
]

PyTree = Any
Array = jax.Array
_tmap = jax.tree_util.tree_map

# Unary operations through which a parameter may reach its use ("chain"); ``broadcast_in_dim`` spreads a
# parameter over axes (a bias), allowed only before an elementwise use.
_CHAIN = {
    "reshape",
    "transpose",
    "convert_element_type",
    "copy",
    "copy_p",
    "squeeze",
    "expand_dims",
    "reduce_precision",
    "broadcast_in_dim",
}
_INLINE = {"pjit", "jit", "closed_call", "core_call", "remat", "checkpoint"}
_ELEMENTWISE = {"add", "sub", "mul"}


def _inner(eqn):
    """``(jaxpr, consts)`` of an inlinable call equation."""
    for name in ("jaxpr", "call_jaxpr"):
        j = eqn.params.get(name)
        if j is None:
            continue
        if isinstance(j, jcore.ClosedJaxpr):
            return j.jaxpr, j.consts
        return j, ()
    return None


# ---------------------------------------------------------------------------------------------------------
# Analysis: which leaf is used where
# ---------------------------------------------------------------------------------------------------------


class _P(NamedTuple):
    """A value derived from parameter leaf ``leaf`` alone through the unary ``chain`` of equations."""

    leaf: int
    chain: tuple
    pure: bool  # no broadcast: norm-preserving (reshape / transpose / convert)


_X = "X"  # depends on the example
_C = "C"  # a constant


class _Use(NamedTuple):
    kind: str  # "dense" | "conv" | "embedding" | "elementwise"
    eqn: Any
    pos: int  # operand position of the parameter value
    chain: tuple


class _Analysis:
    def __init__(self, num_leaves):
        self.uses: Dict[int, list] = {i: [] for i in range(num_leaves)}
        self.bad: Dict[int, str] = {}
        self.sites: Dict[tuple, _Use] = {}

    def fail(self, leaf, why):
        self.bad.setdefault(leaf, why)

    def walk(self, jaxpr, taints, path=()):
        env = dict(zip(jaxpr.invars, taints))
        for v in jaxpr.constvars:
            env[v] = _C

        def read(v):
            return _C if isinstance(v, jcore.Literal) else env.get(v, _C)

        for k, eqn in enumerate(jaxpr.eqns):
            site = path + (k,)
            ins = [read(v) for v in eqn.invars]
            ps = [(j, t) for j, t in enumerate(ins) if isinstance(t, _P)]
            bad = [t for t in ins if isinstance(t, tuple) and not isinstance(t, _P)]  # ("Q", leaves)
            name = eqn.primitive.name
            inner = _inner(eqn) if name in _INLINE else None
            if inner is not None and (ps or bad):
                outs = self.walk(inner[0], ins, site)
                for v, t in zip(eqn.outvars, outs):
                    env[v] = t
                continue
            leaves = {t.leaf for _, t in ps} | {leaf for t in bad for leaf in t[1]}
            has_x = any(t == _X for t in ins)
            if not ps and not bad:
                out = _X if has_x else _C
            elif bad:
                for leaf in leaves:
                    self.fail(leaf, f"combined with another parameter-derived value in {name}")
                out = _X if has_x else ("Q", frozenset(leaves))
            elif len(ps) == 1 and not has_x and name in _CHAIN and len(eqn.invars) == 1:
                ((j, t),) = ps
                pure = t.pure and not (name == "broadcast_in_dim" and _broadcasts(eqn))
                out = _P(t.leaf, t.chain + (eqn,), pure)
            elif len(ps) == 1 and has_x:
                ((j, t),) = ps
                kind = _use_kind(eqn, j, t)
                if kind is None:
                    self.fail(t.leaf, f"used by {name} in a way the analysis does not recognise")
                else:
                    self.uses[t.leaf].append(site)
                    self.sites[site] = _Use(kind, eqn, j, t.chain)
                out = _X
            else:
                for leaf in leaves:
                    self.fail(
                        leaf,
                        f"used by {name} without an example-dependent operand"
                        if not has_x
                        else f"used twice by {name}",
                    )
                out = _X if has_x else ("Q", frozenset(leaves))
            for v in eqn.outvars:
                env[v] = out
        outs = [read(v) for v in jaxpr.outvars]
        for t in outs:
            if isinstance(t, _P):
                self.fail(t.leaf, "returned from the function directly")
            elif isinstance(t, tuple):
                for leaf in t[1]:
                    self.fail(leaf, "a parameter-only value is returned")
        return outs


def _broadcasts(eqn) -> bool:
    """Whether a ``broadcast_in_dim`` really copies values (a new axis of size > 1 or a size-1 axis grown)."""
    (x,) = eqn.invars
    return math.prod(eqn.params["shape"]) != math.prod(x.aval.shape)


def _use_kind(eqn, pos, t: _P) -> Optional[str]:
    name = eqn.primitive.name
    if name == "dot_general" and t.pure:
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        return "dense" if not lb and not rb else None
    if name == "conv_general_dilated" and t.pure and pos == 1:
        if eqn.params["feature_group_count"] == 1 and eqn.params["batch_group_count"] == 1:
            return "conv"
        return None
    if name == "gather" and t.pure and pos == 0:
        # a row lookup: slices of one full row of a [V, E] table (any index layout)
        dn = eqn.params["dimension_numbers"]
        table, idx = eqn.invars
        if (
            len(table.aval.shape) == 2
            and tuple(eqn.params["slice_sizes"]) == (1, table.aval.shape[1])
            and 0 in tuple(dn.start_index_map)
            and set(dn.collapsed_slice_dims) <= {0}
            and not tuple(getattr(dn, "operand_batching_dims", ()))
            and idx.aval.shape[-1] == len(dn.start_index_map)
        ):
            return "embedding"
        return None
    if name in _ELEMENTWISE and len(eqn.invars) == 2:
        d_shape, o_shape = tuple(eqn.invars[pos].aval.shape), tuple(eqn.outvars[0].aval.shape)
        if len(d_shape) == len(o_shape) and all(d in (1, o) for d, o in zip(d_shape, o_shape)):
            return "elementwise"
    return None


# ---------------------------------------------------------------------------------------------------------
# Tracing the per-example loss
# ---------------------------------------------------------------------------------------------------------


class _Traced(NamedTuple):
    closed: Any
    ptree: Any
    xtree: Any
    leaves: list
    xleaves: list
    analysis: _Analysis
    fallback: tuple  # leaf indices on the exact path
    ghost: tuple  # leaf indices on the ghost path
    relus: frozenset = frozenset()  # ids of the ReLU equations run by :func:`_packed_relu`


def _trace(fn, trainable, batch) -> _Traced:
    leaves, ptree = jax.tree_util.tree_flatten(trainable)
    xleaves, xtree = jax.tree_util.tree_flatten(batch)
    _ps._num_examples(batch)

    def flat_one(pl, xl):
        p = jax.tree_util.tree_unflatten(ptree, pl)
        ex = jax.tree_util.tree_unflatten(xtree, [jnp.expand_dims(x, 0) for x in xl])
        out = fn(p, ex)
        if jnp.ndim(out) != 0:
            raise TypeError(
                f"fn must return a scalar (a batch objective such as a mean loss); got shape {jnp.shape(out)}"
            )
        return out

    closed = jax.make_jaxpr(flat_one)(leaves, [x[0] for x in xleaves])
    n = len(leaves)
    an = _Analysis(n)
    an.walk(closed.jaxpr, [_P(i, (), True) for i in range(n)] + [_X] * len(xleaves))
    for i, sites in an.uses.items():
        if len(sites) > 1:
            an.fail(i, f"used by {len(sites)} operations (per-example cross terms)")
        dt = jnp.result_type(leaves[i])
        if not jnp.issubdtype(dt, jnp.floating):
            an.fail(i, f"not a real floating leaf ({dt})")
    fallback = tuple(i for i in range(n) if i in an.bad)
    ghost = tuple(i for i in range(n) if i not in an.bad and an.uses[i])
    return _Traced(closed, ptree, xtree, leaves, xleaves, an, fallback, ghost, frozenset(_relu_eqns(closed.jaxpr)))


# ---------------------------------------------------------------------------------------------------------
# ReLU with a bit-packed derivative mask
# ---------------------------------------------------------------------------------------------------------


@jax.custom_vjp
def _packed_relu(x):
    """``max(x, 0)`` with the derivative of ``jax.nn.relu`` (``1[x > 0]``) whose backward pass keeps the mask
    bit-packed (one bit per element), not the pre-activation ``x``.

    Under ``jax.grad`` of ``jax.nn.relu`` XLA keeps ``x`` (4 bytes an element) and recomputes ``x > 0`` in the
    backward pass; for the ghost passes, which keep the forward residuals through two backward passes (or the
    book-keeping cotangents), that is one activation-sized buffer per ReLU. Measured on the MLP of
    ``benchmarks/ghost.py`` at batch 512: two-pass clipping 1.25x -> 0.79x the batch gradient's temp memory."""
    return jax.lax.max(x, jnp.zeros_like(x))


def _packed_relu_fwd(x):
    return jax.lax.max(x, jnp.zeros_like(x)), jnp.packbits(jnp.ravel(x > 0))


def _packed_relu_bwd(packed, g):
    mask = jnp.reshape(jnp.unpackbits(packed, count=g.size), g.shape).astype(bool)
    return (jnp.where(mask, g, jnp.zeros_like(g)),)


_packed_relu.defvjp(_packed_relu_fwd, _packed_relu_bwd)


def _is_max0(jaxpr) -> bool:
    """Whether ``jaxpr`` (through single-equation call wrappers) is ``max(x, 0)`` of its one input."""
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return False
    (eqn,) = jaxpr.eqns
    x, out = jaxpr.invars[0], jaxpr.outvars[0]
    if eqn.outvars[0] is not out:
        return False
    inner = _inner(eqn) if eqn.primitive.name in _INLINE else None
    if inner is not None:
        return not inner[1] and list(eqn.invars) == [x] and _is_max0(inner[0])
    if eqn.primitive.name != "max" or len(eqn.invars) != 2:
        return False
    a, b = eqn.invars
    zero = lambda v: isinstance(v, jcore.Literal) and np.ndim(v.val) == 0 and float(v.val) == 0.0  # noqa: E731
    return (a is x and zero(b)) or (b is x and zero(a))


def _is_relu(eqn) -> bool:
    """Whether a ``custom_jvp_call`` is a ReLU with the derivative of ``jax.nn.relu``: its function is
    ``max(x, 0)`` and its JVP rule gives ``where(x > 0, t, 0)`` on values around and at 0, huge, infinite and
    NaN (checked by evaluating the rule once, at trace time)."""
    if eqn.primitive.name != "custom_jvp_call" or eqn.params.get("num_consts", 0):
        return False
    if len(eqn.invars) != 1 or len(eqn.outvars) != 1:
        return False
    aval = eqn.invars[0].aval
    dt = getattr(aval, "dtype", None)
    if dt is None or not jnp.issubdtype(dt, jnp.floating) or aval.shape != eqn.outvars[0].aval.shape:
        return False
    if dt != eqn.outvars[0].aval.dtype or not _is_max0(eqn.params["call_jaxpr"].jaxpr):
        return False
    fi = jnp.finfo(dt)
    pattern = [
        -3.0,
        -float(fi.tiny),
        -0.0,
        0.0,
        float(fi.tiny),
        2.0,
        float(fi.max),
        -float(fi.max),
        np.inf,
        -np.inf,
        np.nan,
    ]
    x = np.resize(np.asarray(pattern, dt), aval.shape)
    t = np.resize(np.asarray([1.5, -2.0, 3.0, 0.25, -1.0, 7.0, -0.5], dt), aval.shape)
    try:
        with jax.ensure_compile_time_eval():
            y, ty = jax.jvp(lambda v: _bind(eqn, [v])[0], (jnp.asarray(x),), (jnp.asarray(t),))
            y, ty = np.asarray(y), np.asarray(ty)
    except Exception:  # noqa: BLE001 - any rule that cannot be evaluated here is left alone
        return False
    return bool(
        np.array_equal(y, np.maximum(x, np.zeros((), dt)), equal_nan=True)
        and np.array_equal(ty, np.where(x > 0, t, 0).astype(dt))
    )


def _relu_eqns(jaxpr):
    """The ids of the equations of ``jaxpr`` (and of the calls :func:`_run` inlines) that :func:`_is_relu`."""
    for eqn in jaxpr.eqns:
        inner = _inner(eqn) if eqn.primitive.name in _INLINE else None
        if inner is not None:
            yield from _relu_eqns(inner[0])
        elif _is_relu(eqn):
            yield id(eqn)


def _float_size(v) -> int:
    aval = v.aval
    dt = getattr(aval, "dtype", None)
    if dt is None or not jnp.issubdtype(dt, jnp.floating):
        return 0
    return math.prod(aval.shape)


def _forward_size(jaxpr) -> int:
    """Floats computed by the per-example jaxpr (outputs of every equation but reshapes and the like)."""
    total = 0
    for eqn in jaxpr.eqns:
        inner = _inner(eqn) if eqn.primitive.name in _INLINE else None
        if inner is not None:
            total += _forward_size(inner[0])
        elif eqn.primitive.name not in _CHAIN:
            total += sum(_float_size(v) for v in eqn.outvars)
    return total


BOOKKEEPING_MAX_SHARE = 0.2


def _auto_clipping(tr: _Traced) -> str:
    """``"bookkeeping"`` when the outputs of the non-elementwise ghost sites (the cotangents book-keeping
    keeps; an elementwise site's cotangent is that of the operation it follows) are at most
    ``BOOKKEEPING_MAX_SHARE`` of the floats the per-example forward computes, else ``"two_pass"``."""
    an = tr.analysis
    kept = sum(
        _float_size(an.sites[an.uses[i][0]].eqn.outvars[0])
        for i in tr.ghost
        if an.sites[an.uses[i][0]].kind != "elementwise"
    )
    total = _forward_size(tr.closed.jaxpr)
    return "bookkeeping" if total and kept <= BOOKKEEPING_MAX_SHARE * total else "two_pass"


# ---------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------


class GhostPlan(NamedTuple):
    """How :func:`ghost_norms` treats every trainable leaf.

    Attributes:
      kinds: ``{keystr(path): kind}`` with kind ``"dense"``, ``"conv"``, ``"embedding"``,
        ``"elementwise"`` (ghost), ``"exact"`` (the per-example vmap path) or ``"unused"``.
      reasons: ``{keystr(path): why}`` for the leaves on the exact path.
      clipping: what ``clipping="auto"`` of :func:`ghost_clipped_grad` does for this model:
        ``"bookkeeping"`` or ``"two_pass"`` (see the module docstring).
    """

    kinds: Dict[str, str]
    reasons: Dict[str, str]
    clipping: str = "two_pass"

    @property
    def fallback(self):
        """The paths of the leaves that take the exact per-example path."""
        return sorted(self.reasons)


def ghost_plan(fn: Callable, params: PyTree, batch: PyTree) -> GhostPlan:
    """Which parameter leaves get ghost norms, of which kind, and which take the exact path and why.

    Args:
      fn: ``fn(params, batch) -> scalar``, a batch objective (e.g. a :class:`jaxloss.Objective`).
      params: the parameters (any pytree, a Flax NNX or Equinox module, linen variables).
      batch: a pytree whose leaves share a leading example axis.

    Returns:
      a :class:`GhostPlan`; ``plan.fallback`` lists the leaves on the exact path.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> def fn(p, b):
      ...     h = jnp.tanh(b[0] @ p["w"] + p["b"])
      ...     return jnp.mean((h @ p["w"].T).sum(-1) - b[1]) ** 2  # w used twice: exact path
      >>> p = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> plan = jaxloss.ghost_plan(fn, p, (jnp.ones((4, 3)), jnp.zeros(4)))
      >>> plan.kinds
      {"['b']": 'elementwise', "['w']": 'exact'}
    """
    f, trainable = _models.bind(fn, params)
    tr = _trace(f, trainable, batch)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(trainable)[0]]
    kinds, reasons = {}, {}
    for i, path in enumerate(paths):
        if i in tr.analysis.bad:
            kinds[path], reasons[path] = "exact", tr.analysis.bad[i]
        elif not tr.analysis.uses[i]:
            kinds[path] = "unused"
        else:
            kinds[path] = tr.analysis.sites[tr.analysis.uses[i][0]].kind
    return GhostPlan(kinds, reasons, _auto_clipping(tr))


# ---------------------------------------------------------------------------------------------------------
# Running: one probed forward/backward pass
# ---------------------------------------------------------------------------------------------------------


def _bind(eqn, invals):
    params = eqn.primitive.get_bind_params(eqn.params)
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **params)
    return out if eqn.primitive.multiple_results else [out]


def _squeezed_dot(eqn, invals):
    """A ``dot_general`` with the size-1 free axes of its operands squeezed out, its output reshaped back.

    The same values; but under ``vmap`` over single-example batches a ``[1, K] x [K, N]`` product batches to
    ``[B, K] x [K, N]`` with the example axis in front, where the unsqueezed one leaves XLA a unit axis in
    a transposed layout and a copy of every activation cotangent in the backward pass (measured on the MLP of
    ``benchmarks/ghost.py``: +25% temp memory)."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    ops, dims = [], []
    for x, c, bt in ((invals[0], lc, lb), (invals[1], rc, rb)):
        drop = [d for d in range(x.ndim) if x.shape[d] == 1 and d not in c and d not in bt]
        keep = [d for d in range(x.ndim) if d not in drop]
        ops.append(jnp.reshape(x, [x.shape[d] for d in keep]) if drop else x)
        dims.append([tuple(keep.index(d) for d in c), tuple(keep.index(d) for d in bt)])
    if all(o is x for o, x in zip(ops, invals)):
        return _bind(eqn, invals)
    out = jax.lax.dot_general(
        ops[0],
        ops[1],
        ((dims[0][0], dims[1][0]), (dims[0][1], dims[1][1])),
        precision=eqn.params.get("precision"),
        preferred_element_type=eqn.params.get("preferred_element_type"),
    )
    return [jnp.reshape(out, eqn.outvars[0].aval.shape)]


def _run(jaxpr, consts, args, sites, probes, record, path=(), summarize=None, relus=frozenset()):
    """Evaluates ``jaxpr``; at every probed site adds ``probes[site]`` to the output and records the
    operands in ``record[site]``; the equations whose ids are in ``relus`` run as :func:`_packed_relu`."""
    env = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for k, eqn in enumerate(jaxpr.eqns):
        site = path + (k,)
        invals = [read(v) for v in eqn.invars]
        inner = _inner(eqn) if eqn.primitive.name in _INLINE else None
        if inner is not None and any(s[: len(site)] == site for s in sites):
            outs = _run(inner[0], inner[1], invals, sites, probes, record, site, summarize, relus)
        elif id(eqn) in relus:
            outs = [_packed_relu(invals[0])]
        else:
            outs = _squeezed_dot(eqn, invals) if eqn.primitive.name == "dot_general" else _bind(eqn, invals)
            if site in sites:
                use = sites[site]
                others = [x for j, x in enumerate(invals) if j != use.pos]
                record[site] = summarize(site, use, others) if summarize is not None else others
                outs = [outs[0] + probes[site]]
        for v, x in zip(eqn.outvars, outs):
            if not isinstance(v, jcore.DropVar):
                env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _replay(chain, x):
    for eqn in chain:
        (x,) = _bind(eqn, [x])
    return x


def _site_fn(use: _Use, others):
    """``leaf -> batched output of the site`` given the batched other operands (for its VJP)."""

    def out(leaf):
        d = _replay(use.chain, leaf)

        def one(*xs):
            vals = list(xs)
            vals.insert(use.pos, d)
            return _bind(use.eqn, vals)[0]

        return jax.vmap(one)(*others)

    return out


def _f32(x):
    """``x`` in at least float32 (norms of half-precision values are accumulated in float32)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _gram_sq(gram, g):
    """Per-example ``sum_{t,s} gram[t, s] (g g^T)[t, s]``: the Gram identity for ``|a^T g|^2`` given ``a a^T``."""
    return jnp.einsum("bts,bts->b", gram, jnp.einsum("btn,bsn->bts", g, g))


def _to_rows(x, front, back):
    """``x [B, ...]`` with the per-example axes ``front`` first (flattened to T) and ``back`` last (to K)."""
    b = x.shape[0]
    x = jnp.transpose(x, (0,) + tuple(1 + d for d in front) + tuple(1 + d for d in back))
    t = math.prod(x.shape[1 : 1 + len(front)])
    return jnp.reshape(x, (b, t, -1))


def _padded(x, padding, lhs_dilation, dn):
    """A convolution's input ``[N, *spatial, C]`` (``lhs_spec`` layout in), dilated and padded as the
    convolution sees it."""
    spec = dn.lhs_spec
    xt = jnp.transpose(x, (spec[0],) + tuple(spec[2:]) + (spec[1],))  # N, spatial..., C
    cfg = [(0, 0, 0)] + [(lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation)] + [(0, 0, 0)]
    return jax.lax.pad(xt, jnp.zeros((), xt.dtype), cfg)


def _windows(padded_shape, filt, strides, rhs_dilation):
    """``(start, limit, strides)`` of the strided slice of the padded spatial axes that every filter offset
    sees (one per offset), the output's spatial shape being ``(limit - start - 1) // stride + 1``."""
    nd = len(filt)
    out = [(padded_shape[k] - (filt[k] - 1) * rhs_dilation[k] - 1) // strides[k] + 1 for k in range(nd)]
    wins = []
    for offs in itertools.product(*[range(f) for f in filt]):
        start = [o * rhs_dilation[k] for k, o in enumerate(offs)]
        wins.append((start, [start[k] + (out[k] - 1) * strides[k] + 1 for k in range(nd)], list(strides)))
    return wins, out


def _conv_rule(f, t, c, n, p) -> str:
    """The cheapest way to a conv kernel's per-example norm in flops: the direct ``|a^T g|^2 = sum_o |x_o^T
    g|^2`` (``"direct"``, ``f t c n``) or the Gram identity with ``a a^T`` by :func:`_conv_gram`
    (``"gram_slices"``, ``f t^2 c``, or ``"gram_pixels"``, ``p^2 c``; each plus ``t^2 n`` for ``g g^T``)
    (``f`` filter offsets, ``t`` output positions, ``c``/``n`` input/output channels, ``p`` padded pixels)."""
    costs = {"direct": f * t * c * n, "gram_slices": f * t * t * c + t * t * n, "gram_pixels": p * p * c + t * t * n}
    return min(costs, key=costs.__getitem__)  # (ties: the first, direct)


def _conv_cols(xp, filt, strides, rhs_dilation):
    """The strided slices ``x_o [B, M T, C]`` of the padded input ``xp [B, M, *S, C]``, one per filter offset."""
    b, m, sp, c = xp.shape[0], xp.shape[1], xp.shape[2:-1], xp.shape[-1]
    wins, out = _windows(sp, filt, strides, rhs_dilation)
    t = m * math.prod(out)
    for start, limit, st in wins:
        x = jax.lax.slice(xp, [0, 0] + start + [0], [b, m] + limit + [c], [1, 1] + st + [1])
        yield _f32(jnp.reshape(x, (b, t, c)))


def _conv_gram(xp, filt, strides, rhs_dilation, rule):
    """``a a^T [B, M T, M T]`` of the unfolded input (never formed) of the padded input ``xp [B, M, *S, C]``:
    ``sum_o x_o x_o^T`` over the offsets' strided slices (``rule="gram_slices"``) or read off the Gram of
    the padded input's pixels, ``(a a^T)[t, s] = sum_o (x x^T)[t + o, s + o]`` (``"gram_pixels"``)."""
    if rule == "gram_slices":
        return sum(jnp.einsum("btk,bsk->bts", x, x) for x in _conv_cols(xp, filt, strides, rhs_dilation))
    b, m, sp, c = xp.shape[0], xp.shape[1], xp.shape[2:-1], xp.shape[-1]
    wins, out = _windows(sp, filt, strides, rhs_dilation)
    t, p = m * math.prod(out), m * math.prod(sp)
    x2 = _f32(jnp.reshape(xp, (b, p, c)))
    pix = jnp.reshape(jnp.einsum("bpk,bqk->bpq", x2, x2), (b, m) + sp + (m,) + sp)
    gram = 0.0
    for start, limit, st in wins:
        lo, hi, step = [0, 0] + start + [0] + start, [b, m] + limit + [m] + limit, [1, 1] + st + [1] + st
        gram = gram + jax.lax.slice(pix, lo, hi, step)
    return jnp.reshape(gram, (b, t, t))


def _conv_direct_sq(xp, g, filt, strides, rhs_dilation):
    """``|a^T g|^2 = sum_o |x_o^T g|^2`` per example, ``g [B, M T, N]``, the unfolded ``a`` never formed."""
    cols = _conv_cols(xp, filt, strides, rhs_dilation)
    return sum(jnp.sum(jnp.square(jnp.einsum("btk,btn->bkn", x, g)), axis=(1, 2)) for x in cols)


def _dense_rows(use: _Use, a):
    """The activation ``a [B, ...]`` of a dense site as rows ``[B, T, K]`` and the site's ``N``."""
    (lc, rc), _ = use.eqn.params["dimension_numbers"]
    xc = lc if use.pos == 1 else rc
    xfree = [d for d in range(a.ndim - 1) if d not in xc]
    d_shape = use.eqn.invars[use.pos].aval.shape
    dc = rc if use.pos == 1 else lc
    n = math.prod(d for k, d in enumerate(d_shape) if k not in dc)
    return _to_rows(a, xfree, list(xc)), n


def _conv_geometry(use: _Use):
    p = use.eqn.params
    dn = p["dimension_numbers"]
    rhs_shape = use.eqn.invars[1].aval.shape
    return p, dn, [rhs_shape[d] for d in dn.rhs_spec[2:]]


def _site_summary(use: _Use, others):
    """What the norm of a site needs of its other operands, computed in the forward pass: the activation's
    squared norm (one token) or Gram matrix ``a a^T`` where those are used (the activation itself is then
    not kept for the norm), else the operands."""
    if use.kind == "dense":
        a2, n = _dense_rows(use, others[0])
        _, t, k = a2.shape
        a2 = _f32(a2)
        if t == 1:
            return ("sq", jnp.sum(jnp.square(a2[:, 0]), -1))
        if t * (k + n) <= k * n:
            return ("gram", jnp.einsum("btk,bsk->bts", a2, a2))
        return ("rows", a2)
    if use.kind == "conv":
        p, dn, filt = _conv_geometry(use)
        xp = jax.vmap(lambda x: _padded(x, p["padding"], p["lhs_dilation"], dn))(others[0])  # [B, M, *S, C]
        out_sp = [use.eqn.outvars[0].aval.shape[d] for d in dn.out_spec[2:]]
        m, c, n = xp.shape[1], xp.shape[-1], use.eqn.outvars[0].aval.shape[dn.out_spec[1]]
        rule = _conv_rule(math.prod(filt), m * math.prod(out_sp), c, n, m * math.prod(xp.shape[2:-1]))
        if rule == "direct":
            return ("padded", xp)
        return ("gram", _conv_gram(xp, filt, p["window_strides"], p["rhs_dilation"], rule))
    return ("others", others)


def _site_sq(use: _Use, summary, g, leaf):
    """Per-example squared gradient norm ``[B]`` of the leaf at one site, from its forward summary (see
    :func:`_site_summary`) and its output cotangent ``g``."""
    eqn = use.eqn
    what, val = summary
    if use.kind == "dense":
        (lc, rc), _ = eqn.params["dimension_numbers"]
        xc = lc if use.pos == 1 else rc
        dnd = len(eqn.invars[use.pos].aval.shape)
        nfree_d = dnd - len(xc)
        ond = g.ndim - 1
        nfree_x = ond - nfree_d
        if use.pos == 1:  # out = (x free..., D free...)
            g2 = _to_rows(g, list(range(nfree_x)), list(range(nfree_x, ond)))
        else:  # out = (D free..., x free...)
            g2 = _to_rows(g, list(range(nfree_d, ond)), list(range(nfree_d)))
        g2 = _f32(g2)
        if what == "sq":
            return val * jnp.sum(jnp.square(g2[:, 0]), -1)
        if what == "gram":
            return _gram_sq(val, g2)
        return jnp.sum(jnp.square(jnp.einsum("btk,btn->bkn", val, g2)), axis=(1, 2))
    if use.kind == "conv":
        p, dn, filt = _conv_geometry(use)
        b = g.shape[0]
        out_order = (dn.out_spec[0],) + tuple(dn.out_spec[2:]) + (dn.out_spec[1],)
        g2 = jnp.transpose(g, (0,) + tuple(1 + d for d in out_order))
        g2 = jnp.reshape(g2, (b, -1, g2.shape[-1]))
        g2 = _f32(g2)
        if what == "gram":
            return _gram_sq(val, g2)
        return _conv_direct_sq(val, g2, filt, p["window_strides"], p["rhs_dilation"])
    others = val
    if use.kind == "embedding":
        (idx,) = others
        dn = eqn.params["dimension_numbers"]
        table_rows = eqn.invars[0].aval.shape[0]
        b = idx.shape[0]
        idx = jnp.reshape(idx[..., list(dn.start_index_map).index(0)], (b, -1))
        offset = list(dn.offset_dims)
        lookup = [d for d in range(g.ndim - 1) if d not in offset]
        gg = _f32(_to_rows(g, lookup, offset))  # [B, T, E]
        if "FILL" in str(eqn.params.get("mode", "")).upper():
            valid = (idx >= 0) & (idx < table_rows)
            gg = gg * valid[..., None].astype(gg.dtype)
        idx = jnp.clip(idx, 0, table_rows - 1)
        same = (idx[:, :, None] == idx[:, None, :]).astype(gg.dtype)
        return _gram_sq(same, gg)
    # elementwise: the per-example gradient of the (broadcast) operand, mapped back to the leaf
    name = eqn.primitive.name
    if name == "mul":
        gd = g * others[0]
    elif name == "sub" and use.pos == 1:
        gd = -g
    else:
        gd = g
    d_shape = tuple(eqn.invars[use.pos].aval.shape)
    spread = tuple(1 + k for k, (d, o) in enumerate(zip(d_shape, gd.shape[1:])) if d == 1 and o != 1)
    if spread:  # lax's implicit broadcasting of size-1 axes
        gd = jnp.sum(gd, axis=spread, keepdims=True)
    _, vjp = jax.vjp(lambda w: _replay(use.chain, w), leaf)
    per = jax.vmap(lambda c: vjp(c)[0])(gd)
    per = _f32(per)
    return jnp.sum(jnp.reshape(jnp.square(per), (per.shape[0], -1)), axis=1)


def _pass(tr: _Traced, leaves, xleaves, weights_fn=None, clipping="bookkeeping"):
    """One probed forward/backward pass over a batch: ``(losses [B], sq [leaf -> [B]], grads or None)``.

    With ``weights_fn(sq_total) -> c [B]`` the book-keeping clipped sum ``sum_i c_i g_i`` is returned too.
    """
    an = tr.analysis
    sites = {an.uses[i][0]: an.sites[an.uses[i][0]] for i in tr.ghost}
    leaf_of = {an.uses[i][0]: i for i in tr.ghost}
    jaxpr, consts = tr.closed.jaxpr, tr.closed.consts
    shapes = {s: (u.eqn.outvars[0].aval.shape, u.eqn.outvars[0].aval.dtype) for s, u in sites.items()}
    b = xleaves[0].shape[0]
    probes = {s: jnp.zeros((b,) + sh, dt) for s, (sh, dt) in shapes.items()}

    two_pass = weights_fn is not None and clipping == "two_pass"
    keep = weights_fn is not None and not two_pass  # book-keeping: the operands of every site are kept
    what = {}  # site -> the kind of its summary (static)

    def summarize(site, use, others):  # per example (inside vmap): as a batch of one
        kind, val = _site_summary(use, [x[None] for x in others])
        what[site] = kind
        val = _tmap(lambda v: v[0], val)
        return (val, others) if keep else (val, None)

    def one(pr, vals, xl):
        record = {}
        (loss,) = _run(jaxpr, consts, list(vals) + list(xl), sites, pr, record, summarize=summarize, relus=tr.relus)
        return loss, record

    def batched(pr, vals):
        return jax.vmap(one, in_axes=(0, None, 0))(pr, list(vals), xleaves)

    if two_pass:  # one forward; its residuals serve both backward passes
        losses, vjp, record = jax.vjp(batched, probes, tuple(leaves), has_aux=True)
        gs, _ = vjp(jnp.ones_like(losses))  # (the weight gradients of this pass are dead code under jit)
    else:
        losses, vjp, record = jax.vjp(lambda pr: batched(pr, leaves), probes, has_aux=True)
        (gs,) = vjp(jnp.ones_like(losses))
    sq = {leaf_of[s]: _site_sq(u, (what[s], record[s][0]), gs[s], leaves[leaf_of[s]]) for s, u in sites.items()}
    fb_grads = None
    if tr.fallback:
        fb_idx = tr.fallback

        def loss_fb(fb_vals, xl):
            vals = list(leaves)
            for i, v in zip(fb_idx, fb_vals):
                vals[i] = v
            return _run(jaxpr, consts, vals + list(xl), {}, {}, {})[0]

        fb_vals = [leaves[i] for i in fb_idx]
        fb_grads = jax.vmap(jax.grad(loss_fb), in_axes=(None, 0))(fb_vals, xleaves)
        for i, gi in zip(fb_idx, fb_grads):
            gi32 = _f32(gi)
            sq[i] = jnp.sum(jnp.reshape(jnp.square(gi32), (b, -1)), axis=1)
    if weights_fn is None:
        return losses, sq, None
    c = weights_fn(_ps._sum_leaves(list(sq.values()), jnp.zeros((b,), jnp.float32)))
    if two_pass:  # ghost clipping: the backward pass of sum_i c_i l_i, from the same forward residuals
        _, grads = vjp(jax.lax.stop_gradient(c).astype(losses.dtype))
        return losses, sq, dict(enumerate(grads))
    grads = {}
    for s, u in sites.items():
        i = leaf_of[s]
        g = gs[s]
        cg = g * jnp.reshape(c, (b,) + (1,) * (g.ndim - 1)).astype(g.dtype)
        _, vjp_site = jax.vjp(_site_fn(u, record[s][1]), leaves[i])
        grads[i] = vjp_site(cg)[0]
    if tr.fallback:
        for i, gi in zip(tr.fallback, fb_grads):  # type: ignore[arg-type]
            grads[i] = jnp.tensordot(c.astype(gi.dtype), gi, axes=1)
    return losses, sq, grads


def is_ghost(method) -> bool:
    """Validates the ``method=`` of :func:`jaxloss.per_sample_grad_norms` / :func:`jaxloss.clipped_mean_grad`."""
    if method not in ("vmap", "ghost"):
        raise ValueError(f"method must be 'vmap' (exact per-example gradients) or 'ghost'; got {method!r}")
    return method == "ghost"


def ghost_norms(
    fn: Callable,
    params: PyTree,
    batch: PyTree,
    *,
    chunk_size: Optional[int] = None,
    per_layer: Union[bool, int] = False,
) -> Any:
    """Per-example gradient norms by the ghost norm analysis (see the module docstring).

    Equal (up to float rounding) to :func:`jaxloss.per_sample_grad_norms`, which calls this with
    ``method="ghost"``; arguments and returns are those of that function.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> print([round(float(n), 4) for n in jaxloss.ghost_norms(fn, jnp.array([1.0, 1.0]), (x, y))])
      [0.0, 8.0, 5.6569]
    """
    if not isinstance(per_layer, (bool, int, np.integer)) or (not isinstance(per_layer, bool) and per_layer < 1):
        raise ValueError(f"per_layer must be False, True or a positive int depth; got {per_layer!r}")
    f, trainable = _models.bind(fn, params)
    tr = _trace(f, trainable, batch)
    n_leaves = len(tr.leaves)

    def chunk_fn(carry, chunk):
        _, sq, _ = _pass(tr, tr.leaves, jax.tree_util.tree_leaves(chunk))
        b = _ps._num_examples(chunk)
        return carry, [sq.get(i, jnp.zeros((b,), jnp.float32)) for i in range(n_leaves)]

    _, sq = _ps._scan_chunks(chunk_fn, batch, chunk_size)
    norms = _ps._sqrt(_ps._sum_leaves(sq))
    if per_layer is False:
        return norms
    sq_tree = jax.tree_util.tree_unflatten(tr.ptree, sq)
    if per_layer is True:
        return norms, _tmap(_ps._sqrt, sq_tree)
    return norms, _ps._group_norms(sq_tree, int(per_layer))


def ghost_clipped_grad(
    fn: Callable,
    params: PyTree,
    batch: PyTree,
    max_norm: ArrayLike,
    noise_multiplier: ArrayLike = 0.0,
    key: Optional[jax.Array] = None,
    *,
    chunk_size: Optional[int] = None,
    clipping: str = "auto",
) -> ClippedGrad:
    """DP-SGD's clipped (noisy) mean gradient by ghost norms and ghost clipping or book-keeping (module docstring).

    ``clipping``: ``"auto"`` (the default: the rule of the module docstring, reported by
    :func:`ghost_plan`), ``"two_pass"`` (ghost clipping: a second backward pass from the same forward; the
    least memory) or ``"bookkeeping"`` (no second backward pass; keeps the parameter operations' output
    cotangents). All three give the same result up to float rounding; measured in ``benchmarks/ghost.py``.

    Equal (up to float rounding) to :func:`jaxloss.clipped_mean_grad`, which calls this with
    ``method="ghost"``; arguments and returns are those of that function.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> fn = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), jnp.array([1.0, 0.0, 0.0])
      >>> out = jaxloss.ghost_clipped_grad(fn, jnp.array([1.0, 1.0]), (x, y), max_norm=1.0)
      >>> print([round(float(v), 4) for v in out.grads])
      [0.2357, 0.569]
    """
    noisy = _check_dp_args(max_norm, noise_multiplier, key)
    if clipping not in ("auto", "bookkeeping", "two_pass"):
        raise ValueError(f"clipping must be 'auto', 'bookkeeping' or 'two_pass'; got {clipping!r}")
    f, trainable = _models.bind(fn, params)
    tr = _trace(f, trainable, batch)
    n = _ps._num_examples(batch)
    if clipping == "auto":
        clipping = _auto_clipping(tr)

    def weights(sq_total):  # c_i / n: the mean is taken in the weights (no extra pass over the gradient)
        return _clip_factor(_ps._sqrt(sq_total), max_norm) / n

    def chunk_fn(acc, chunk):
        losses, sq, grads = _pass(tr, tr.leaves, jax.tree_util.tree_leaves(chunk), weights, clipping)
        acc = [a + grads[i].astype(a.dtype) if i in grads else a for i, a in enumerate(acc)]
        return acc, (_ps._sqrt(_ps._sum_leaves(list(sq.values()), jnp.zeros(losses.shape, jnp.float32))), losses)

    init = [jnp.zeros(jnp.shape(x), jnp.result_type(x)) for x in tr.leaves]
    total, (norms, losses) = _ps._scan_chunks(chunk_fn, batch, chunk_size, init)
    total = jax.tree_util.tree_unflatten(tr.ptree, total)
    if noisy:
        noise = _dp_noise(total, noise_multiplier, max_norm, key)
        total = _tmap(lambda t, z: t + z / jnp.asarray(n, t.dtype), total, noise)
    return ClippedGrad(total, norms, losses)


# ---------------------------------------------------------------------------------------------------------
# Dense stacks (the model format of the first ghost functions; now a case of the general analysis)
# ---------------------------------------------------------------------------------------------------------


def _check_dense(params) -> None:
    if not isinstance(params, (list, tuple)) or not params:
        raise ValueError("dense-stack params must be a non-empty list of (W, b) pairs")
    prev = None
    for i, layer in enumerate(params):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ValueError(f"dense-stack layer {i} must be a (W, b) pair; got {type(layer).__name__}")
        w, b = layer
        if jnp.ndim(w) != 2:
            raise ValueError(f"dense-stack layer {i}: W must be [d_in, d_out]; got shape {jnp.shape(w)}")
        if b is not None and jnp.shape(b) != (jnp.shape(w)[1],):
            raise ValueError(
                f"dense-stack layer {i}: b must be [d_out] = [{jnp.shape(w)[1]}]; got shape {jnp.shape(b)}"
            )
        if prev is not None and jnp.shape(w)[0] != prev:
            raise ValueError(
                f"dense-stack layer {i}: W has d_in={jnp.shape(w)[0]} but the previous layer outputs {prev}"
            )
        prev = jnp.shape(w)[1]


def _dense_forward(params, inputs, activation):
    """The dense stack's outputs."""
    h = inputs
    last = len(params) - 1
    for i, (w, b) in enumerate(params):
        z = h @ w
        if b is not None:
            z = z + b
        h = z if i == last else activation(z)
    return h


def dense_stack_apply(params: Sequence, inputs: Array, activation: Callable = jax.nn.relu) -> Array:
    """A stack of dense layers: ``h <- activation(h @ W + b)`` for every layer but the last, which is linear.

    This is the model interface of :func:`ghost_grad_norms`.

    Args:
      params: a list of ``(W, b)`` pairs, ``W`` of shape ``[d_in, d_out]``, ``b`` of shape ``[d_out]`` or
        ``None`` (no bias).
      inputs: ``[B, d_in]``, or ``[B, T, d_in]`` (the layers act on the last axis, e.g. per token).
      activation: an elementwise function applied after every layer but the last.

    Returns:
      the outputs, ``inputs.shape[:-1] + (d_out_last,)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> params = [(jnp.eye(2), jnp.zeros(2)), (jnp.ones((2, 1)), None)]
      >>> print(jaxloss.dense_stack_apply(params, jnp.array([[1.0, -2.0]])).tolist())
      [[1.0]]
    """
    _check_dense(params)
    return _dense_forward(params, inputs, activation)


def dense_stack_objective(loss: Callable, activation: Callable = jax.nn.relu) -> Callable:
    """The mean objective of a dense stack: ``fn(params, (inputs, targets))``.

    ``fn(params, (x, y)) = mean(loss(dense_stack_apply(params, x, activation), y))``, a batch objective
    for every function of this module; per example it is ``loss`` of that example, so its per-example
    gradient norms are what :func:`ghost_grad_norms` computes with the same ``loss``.

    Args:
      loss: ``loss(outputs, targets) -> [B]``, one loss per example (e.g.
        ``functools.partial(jaxloss.cross_entropy, reduction="none")``).
      activation: the hidden activation of :func:`dense_stack_apply`.

    Returns:
      ``fn(params, batch) -> scalar``.
    """

    def fn(params, batch):
        inputs, targets = batch
        return jnp.mean(_per_example_loss(loss, dense_stack_apply(params, inputs, activation), targets))

    return fn


def _per_example_loss(loss, outputs, targets):
    losses = loss(outputs, targets)
    if jnp.shape(losses) != outputs.shape[:1]:
        raise ValueError(
            f"loss must return one value per example, shape {outputs.shape[:1]}; got shape {jnp.shape(losses)} "
            "(use reduction='none' and reduce any axis other than the example axis)"
        )
    return losses


def ghost_grad_norms(
    params: Sequence,
    batch: PyTree,
    loss: Callable,
    *,
    activation: Callable = jax.nn.relu,
    per_layer: bool = False,
) -> Array | tuple[Array, Any]:
    """Deprecated: ``per_sample_grad_norms(dense_stack_objective(loss, activation), params, batch,
    method="ghost")``, which this calls (any model works there).

    Args:
      params: a list of ``(W, b)`` pairs (see :func:`dense_stack_apply`); ``b`` may be ``None``.
      batch: ``(inputs, targets)``.
      loss: ``loss(outputs, targets) -> [B]``, one loss per example.
      activation: the elementwise hidden activation.
      per_layer: also return the per-leaf norms, a list of ``(norm_W, norm_b or None)`` pairs.

    Returns:
      ``[B]`` global norms, or ``(global_norms, per_layer_norms)`` with ``per_layer``.

    Examples:
      >>> import functools, jax, jax.numpy as jnp, jaxloss
      >>> k1, k2 = jax.random.split(jax.random.PRNGKey(0))
      >>> params = [(jax.random.normal(k1, (3, 4)), jnp.zeros(4)), (jax.random.normal(k2, (4, 2)), jnp.zeros(2))]
      >>> batch = (jnp.arange(6.0).reshape(2, 3) / 6, jnp.array([0, 1]))
      >>> loss = functools.partial(jaxloss.cross_entropy, reduction="none")
      >>> ghost = jaxloss.ghost_grad_norms(params, batch, loss)
      >>> vmap = jaxloss.per_sample_grad_norms(jaxloss.dense_stack_objective(loss), params, batch)
      >>> print(bool(jnp.allclose(ghost, vmap, rtol=1e-5)))
      True
    """
    _check_dense(params)
    return ghost_norms(dense_stack_objective(loss, activation), params, batch, per_layer=bool(per_layer))


def ghost_clipped_mean_grad(
    params: Sequence,
    batch: PyTree,
    loss: Callable,
    max_norm: ArrayLike,
    noise_multiplier: ArrayLike = 0.0,
    key: Array | None = None,
    *,
    activation: Callable = jax.nn.relu,
) -> ClippedGrad:
    """Deprecated: ``clipped_mean_grad(dense_stack_objective(loss, activation), params, batch, max_norm,
    noise_multiplier, key, method="ghost")``, which this calls (any model works there).

    Args:
      params: a list of ``(W, b)`` pairs (see :func:`dense_stack_apply`).
      batch: ``(inputs, targets)`` with ``B`` examples.
      loss: ``loss(outputs, targets) -> [B]``, one loss per example.
      max_norm: the clipping norm ``C > 0``.
      noise_multiplier: ``sigma >= 0``.
      key: a ``jax.random`` key, required when ``noise_multiplier`` may be nonzero.
      activation: the elementwise hidden activation.

    Returns:
      a :class:`ClippedGrad` ``(grads, norms, losses)``; ``grads`` has the structure of ``params``.
    """
    _check_dense(params)
    return ghost_clipped_grad(dense_stack_objective(loss, activation), params, batch, max_norm, noise_multiplier, key)
