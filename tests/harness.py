"""Shared test machinery: the ``LossCase`` registry, the generic contract checks, and reference helpers.

Every public loss registers one ``LossCase`` (in a ``tests/cases_<family>.py`` module, list ``CASES``).
``tests/test_contract.py`` runs every generic check of the jaxloss contract on every case: jit equals
eager, vmap equals a loop, ``where`` equals slicing (with NaN in the masked inputs), a fully masked batch
gives 0 with zero gradients, the reductions agree, weights give the weighted mean, bf16 in gives bf16 out,
extreme inputs stay finite, and bad inputs raise. Reference values (PyTorch, optax, scikit-learn, Keras,
float64 NumPy) are checked per family in ``tests/test_<family>.py`` with :func:`torch_value_and_grads`
and :func:`assert_close`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

# float32 / float64 tolerances for comparisons against an independent implementation.
TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12)}
DTYPES = (np.float32, np.float64)


@dataclasses.dataclass
class LossCase:
    """One loss and how to make valid inputs for it.

    Attributes:
      name: the public name (``jaxloss.<name>``).
      fn: the loss.
      make: ``make(rng, dtype, batch) -> tuple of NumPy arrays``; every array has the example axis first.
      kwargs: keyword arguments used in every call (hyperparameters).
      diff: positions of the float, differentiable arguments (gradients are checked for these).
      extreme: ``extreme(dtype) -> tuple of arrays``: extreme but valid inputs (logits ±1e4, probabilities
        0 and 1, zero vectors, ...), or ``None`` when the generic inputs scaled by 1e4 are the extreme case.
      shape_error: whether a mismatched second argument must raise ``ValueError`` naming both shapes.
      int_error: whether integer predictions must raise ``TypeError``.
      bf16_rtol: tolerance of bf16 against the f32 result.
      weighted: whether the loss takes ``weights=``.
      hessian_extreme: extreme inputs for the second-order check when ``extreme`` holds points where the
        true second derivative itself overflows float32 (e.g. ``t / p^2`` at ``p = 1e-30``); ``None``: ``extreme``.
      not_applicable: ``{check name: reason}`` for generic checks that do not apply to this loss (e.g.
        ``vmap_equals_loop`` for a loss that couples the examples of a batch); the reason is required and
        such a loss must test the property's meaningful form in its own reference tests.
    """

    name: str
    fn: Callable
    make: Callable
    kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    diff: Tuple[int, ...] = (0,)
    extreme: Optional[Callable] = None
    shape_error: bool = True
    int_error: bool = True
    bf16_rtol: float = 3e-2
    weighted: bool = True
    not_applicable: Dict[str, str] = dataclasses.field(default_factory=dict)
    hessian_extreme: Optional[Callable] = None

    def __str__(self):
        return self.name

    def call(self, *arrays, **kw):
        return self.fn(*arrays, **{**self.kwargs, **kw})


def assert_close(actual, expected, dtype=np.float32, *, rtol=None, atol=None, err_msg=""):
    """``np.testing.assert_allclose`` with the dtype's default tolerances."""
    tol = dict(TOL[np.dtype(dtype)])
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), err_msg=err_msg, **tol)


def assert_tree_close(actual, expected, dtype=np.float32, **kw):
    a, b = jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected)
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        assert_close(x, y, dtype, **kw)


def all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x, np.float64)))) for x in jax.tree_util.tree_leaves(tree))


def jax_value_and_grads(fn: Callable, arrays: Sequence, argnums=(0,), **kw):
    """``(value, grads)`` of ``fn(*arrays, **kw)`` with respect to ``argnums`` (a scalar output).

    Computed under one ``jax.jit`` (``kw`` are bound statically), which compiles once instead of once per
    primitive; eager calls are compared with jitted ones by the contract's ``jit_equals_eager``.
    """
    f = jax.jit(jax.value_and_grad(lambda *a: fn(*a, **kw), argnums=tuple(argnums)))
    value, grads = f(*[jnp.asarray(a) for a in arrays])
    return np.asarray(value), [np.asarray(g) for g in grads]


def jitted(fn: Callable, **kw):
    """``fn`` with keyword arguments bound (static ones included), under ``jax.jit``."""
    return jax.jit(lambda *a, **traced: fn(*a, **traced, **kw))


def torch_value_and_grads(tfn: Callable, arrays: Sequence, argnums=(0,)):
    """``(value, grads)`` of the PyTorch reference ``tfn(*tensors)`` (a scalar) via autograd.

    Arrays keep their NumPy dtype (float32 or float64; integer labels become int64).
    """
    import torch

    tensors = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.integer):
            tensors.append(torch.tensor(a.astype(np.int64)))
        else:
            tensors.append(torch.tensor(a, requires_grad=i in argnums))
    out = tfn(*tensors)
    out.backward()
    return out.detach().numpy(), [tensors[i].grad.numpy() for i in argnums]


def check_reference(jfn, ref_value, ref_grads, arrays, dtype, argnums=(0,), rtol=None, atol=None, **kw):
    """Asserts that jaxloss's value and gradients equal a reference's."""
    value, grads = jax_value_and_grads(jfn, arrays, argnums, **kw)
    assert_close(value, ref_value, dtype, rtol=rtol, atol=atol, err_msg="value")
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_close(g, r, dtype, rtol=rtol, atol=atol, err_msg=f"gradient of argument {argnums[i]}")


def numeric_grads(f64_fn: Callable, arrays: Sequence, argnums=(0,), h=1e-6):
    """Central finite differences in float64 of a NumPy scalar function (an independent gradient)."""
    arrays = [
        np.array(a, dtype=np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating) else np.asarray(a)
        for a in arrays
    ]
    grads = []
    for i in argnums:
        g = np.zeros_like(arrays[i])
        it = np.nditer(arrays[i], flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[i][idx] += h
            minus[i][idx] -= h
            g[idx] = (f64_fn(*plus) - f64_fn(*minus)) / (2 * h)
        grads.append(g)
    return grads


# ---------------------------------------------------------------------------------------------------------
# Generic contract checks (run on every LossCase by tests/test_contract.py)
# ---------------------------------------------------------------------------------------------------------

BATCH = 5


def _inputs(case: LossCase, dtype=np.float32, batch=BATCH, seed=0):
    return tuple(np.asarray(a) for a in case.make(np.random.default_rng(seed), dtype, batch))


def _example_mask(case, arrays, keep):
    """A ``where`` mask over the example axis, shaped to broadcast against the unreduced loss."""
    loss_ndim = np.ndim(case.call(*arrays, reduction="none"))
    return np.asarray(keep, bool).reshape((-1,) + (1,) * (loss_ndim - 1))


def check_jit_equals_eager(case: LossCase):
    arrays = _inputs(case)
    for reduction in ("mean", "none"):
        eager = case.call(*arrays, reduction=reduction)
        jitted = jax.jit(lambda *a: case.call(*a, reduction=reduction))(*arrays)
        assert jitted.dtype == eager.dtype
        assert_close(jitted, eager, np.float32, rtol=1e-6, atol=1e-7)


def check_vmap_equals_loop(case: LossCase):
    arrays = _inputs(case)
    batched = jax.vmap(lambda *a: case.call(*a))(*arrays)
    loop = [case.call(*(a[i] for a in arrays)) for i in range(arrays[0].shape[0])]
    assert batched.shape == (arrays[0].shape[0],)
    assert_close(batched, np.stack(loop), np.float32, rtol=1e-6, atol=1e-7)


def check_where_equals_slicing(case: LossCase):
    arrays = _inputs(case)
    keep = np.array([True, False, True, True, False])
    where = _example_mask(case, arrays, keep)
    # NaN in the masked examples' float inputs must not leak into the value or the gradients.
    poisoned = tuple(
        np.where(_broadcast_keep(keep, a), a, np.nan).astype(a.dtype) if i in case.diff else a
        for i, a in enumerate(arrays)
    )
    sliced = tuple(a[keep] for a in arrays)
    v_mask, g_mask = jax_value_and_grads(case.fn, poisoned, case.diff, where=where, **case.kwargs)
    v_slice, g_slice = jax_value_and_grads(case.fn, sliced, case.diff, **case.kwargs)
    assert_close(v_mask, v_slice, np.float32, rtol=1e-5, atol=1e-6)
    for gm, gs in zip(g_mask, g_slice):
        assert all_finite(gm), "NaN/inf gradient leaked from masked entries"
        assert_close(gm[keep], gs, np.float32, rtol=1e-5, atol=1e-6)
        assert np.all(gm[~keep] == 0), "masked entries must have zero gradient"
    # sum and none agree with slicing too
    assert_close(
        case.call(*arrays, where=where, reduction="sum"), case.call(*sliced, reduction="sum"), np.float32, rtol=1e-5
    )
    none = np.asarray(case.call(*poisoned, where=where, reduction="none"))
    assert np.all(none[~keep] == 0) and all_finite(none)
    w = _weights_for(case, arrays)
    if w is not None:  # weights do not bring masked entries back
        none_w = np.asarray(case.call(*poisoned, where=where, weights=w, reduction="none"))
        assert np.all(none_w[~keep] == 0) and all_finite(none_w)
        assert_close(none_w[keep], w[keep] * none[keep], np.float32, rtol=1e-5, atol=1e-6)


def _broadcast_keep(keep, a):
    return keep.reshape((-1,) + (1,) * (a.ndim - 1))


def _weights_for(case, arrays, seed=1):
    """Random positive weights of the unreduced loss's shape (``None`` for a loss without ``weights=``)."""
    if not case.weighted:
        return None
    shape = np.shape(case.call(*arrays, reduction="none"))
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape).astype(np.float32)


def check_fully_masked(case: LossCase):
    arrays = _inputs(case)
    where = _example_mask(case, arrays, np.zeros(arrays[0].shape[0], bool))
    w = _weights_for(case, arrays)
    for reduction in ("mean", "sum"):
        value, grads = jax_value_and_grads(case.fn, arrays, case.diff, where=where, reduction=reduction, **case.kwargs)
        assert float(value) == 0.0
        for g in grads:
            assert all_finite(g) and np.all(g == 0)
    # the unreduced loss is exactly 0 at masked entries, with and without weights
    for weights in (None, w) if w is not None else (None,):
        kw = {} if weights is None else dict(weights=weights)
        none = np.asarray(case.call(*arrays, where=where, reduction="none", **kw))
        assert np.all(none == 0), (
            f"reduction='none' must be exactly 0 at masked entries (weights={weights is not None})"
        )
        if weights is not None:
            assert float(case.call(*arrays, where=where, weights=weights)) == 0.0


def check_reductions(case: LossCase):
    arrays = _inputs(case)
    none = np.asarray(case.call(*arrays, reduction="none"), np.float64)
    assert none.shape[0] == arrays[0].shape[0]
    assert_close(case.call(*arrays, reduction="sum"), none.sum(), np.float32, rtol=1e-5, atol=1e-5)
    assert_close(case.call(*arrays, reduction="mean"), none.mean(), np.float32, rtol=1e-5, atol=1e-6)
    if case.weighted:
        w = np.random.default_rng(1).uniform(0.5, 2.0, none.shape).astype(np.float32)
        assert_close(case.call(*arrays, weights=w, reduction="none"), w * none, np.float32, rtol=1e-5, atol=1e-6)
        assert_close(case.call(*arrays, weights=w), (w * none).sum() / w.sum(), np.float32, rtol=1e-5, atol=1e-6)


def check_bf16(case: LossCase):
    arrays = _inputs(case)
    half = tuple(jnp.asarray(a, jnp.bfloat16) if i in case.diff else a for i, a in enumerate(arrays))
    # reference: the same bf16-rounded inputs computed in float32
    ref_inputs = tuple(np.asarray(jnp.asarray(h, jnp.float32)) if i in case.diff else h for i, h in enumerate(half))
    out = case.call(*half)
    assert out.dtype == jnp.bfloat16, out.dtype
    assert_close(out, case.call(*ref_inputs), np.float32, rtol=case.bf16_rtol, atol=case.bf16_rtol)


def check_extreme(case: LossCase):
    if case.extreme is not None:
        arrays = tuple(np.asarray(a) for a in case.extreme(np.float32))
    else:
        arrays = tuple(a * 1e4 if i in case.diff else a for i, a in enumerate(_inputs(case)))
    value, grads = jax_value_and_grads(case.fn, arrays, case.diff, **case.kwargs)
    assert all_finite(value), f"non-finite value {value}"
    assert all_finite(grads), "non-finite gradient"


def check_errors(case: LossCase):
    import pytest

    arrays = _inputs(case)
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'"):
        case.call(*arrays, reduction="avg")
    if case.int_error:
        with pytest.raises(TypeError, match="must be a floating-point array"):
            case.call(np.ones(arrays[0].shape, np.int32), *arrays[1:])
    if case.shape_error and len(arrays) > 1:
        bad = arrays[1][:-1]
        with pytest.raises(ValueError) as info:
            case.call(arrays[0], bad, *arrays[2:])
        assert str(tuple(bad.shape)) in str(info.value), str(info.value)


def _mean_of(case, arrays, i, **kw):
    """The mean loss as a function of argument ``i`` alone (the others fixed)."""

    def f(x):
        a = list(arrays)
        a[i] = x
        return case.fn(*a, **{**case.kwargs, **kw})

    return f


def check_second_order(case: LossCase):
    """Hessian-vector products (forward over reverse) of the mean loss are finite on the extreme inputs and
    on ordinary inputs with a mask and weights, for every differentiable argument; on the ordinary inputs
    the forward-mode derivative ``jvp`` equals the reverse-mode ``grad . v`` (the hook for losses with
    custom derivative rules). One jitted function per input set computes everything."""
    ordinary = _inputs(case)
    keep = np.array([True, False, True, True, False])
    mw = dict(where=_example_mask(case, ordinary, keep))
    w = _weights_for(case, ordinary)
    if w is not None:
        mw["weights"] = w
    if case.hessian_extreme is not None:
        extreme = tuple(np.asarray(a) for a in case.hessian_extreme(np.float32))
    elif case.extreme is not None:
        extreme = tuple(np.asarray(a) for a in case.extreme(np.float32))
    else:
        extreme = tuple(a * 1e4 if i in case.diff else a for i, a in enumerate(ordinary))

    def derivatives(arrays, dirs, kw):
        out = []
        for i, v in zip(case.diff, dirs):
            f = _mean_of(case, arrays, i, **kw)
            _, hvp = jax.jvp(jax.grad(f), (arrays[i],), (v,))
            _, fwd = jax.jvp(f, (arrays[i],), (v,))
            rev = jnp.vdot(jax.grad(f)(arrays[i]), v)
            out.append((hvp, fwd, rev))
        return out

    rng = np.random.default_rng(7)
    for arrays, kw, name in ((extreme, {}, "extreme"), (ordinary, mw, "ordinary")):
        arrays = tuple(jnp.asarray(a) for a in arrays)
        dirs = [jnp.asarray(rng.normal(size=np.shape(arrays[i])), arrays[i].dtype) for i in case.diff]
        res = jax.jit(lambda a, d: derivatives(a, d, kw))(arrays, dirs)
        for i, (hvp, fwd, rev) in zip(case.diff, res):
            assert all_finite(hvp), f"non-finite Hessian-vector product w.r.t. argument {i} on the {name} inputs"
            if name == "ordinary":
                assert_close(fwd, rev, np.float32, rtol=1e-4, atol=1e-5, err_msg=f"jvp != grad . v (argument {i})")


def _positional_names(case):
    import inspect

    params = inspect.signature(case.fn).parameters.values()
    return [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]


def _inject(a, bad):
    """``a`` with ``bad`` at the first entry of example 1 (floats where ``bad`` is not an integer)."""
    a = np.array(a)
    if np.issubdtype(a.dtype, np.integer) and not np.issubdtype(np.asarray(bad).dtype, np.integer):
        a = a.astype(np.float32)
    a[(1,) + (0,) * (a.ndim - 1)] = bad
    return a


def check_domain(case: LossCase):
    """For every declared input domain: one out-of-domain value in one unmasked example gives NaN in that
    example's unreduced loss only (the other entries equal the clean call), an error naming the argument
    under ``jaxloss.checked``, and nothing at all when that example is masked. For every declared
    hyperparameter range: a concrete value outside raises ``ValueError``, a traced one gives NaN and a
    checked error naming it."""
    import pytest

    import jaxloss

    dom = case.fn.domain
    arrays = _inputs(case)
    names = _positional_names(case)
    options = dom.options(case.kwargs)
    clean = np.asarray(case.call(*arrays, reduction="none"), np.float64)
    keep = np.ones(arrays[0].shape[0], bool)
    keep[1] = False
    where = _example_mask(case, arrays, keep)
    clean_masked = np.asarray(case.call(*arrays, where=where, reduction="none"), np.float64)
    tested = 0
    for name in dom.inputs:
        for spec in dom.specs(name, case.kwargs):
            i = names.index(name)
            bad_arrays = list(arrays)
            is_index = type(spec).__name__ == "ClassIndex"
            bad_arrays[i] = _inject(arrays[i], spec.bad_value(np.asarray(arrays[i]).dtype if is_index else np.float32))
            out = np.asarray(case.call(*bad_arrays, reduction="none"), np.float64)
            assert np.isnan(out[1]).any(), f"{name}={bad_arrays[i][1]} gave {out[1]}, not NaN"
            others = np.delete(out, 1, axis=0)
            np.testing.assert_array_equal(others, np.delete(clean, 1, axis=0), err_msg="other examples changed")
            same = np.isnan(out[1]) | (out[1] == clean[1])
            assert np.all(same), "entries of the example other than NaN changed"
            err, _ = jaxloss.checked(lambda *a: case.call(*a, reduction="none"))(*bad_arrays)
            assert err.get() is not None and name in err.get(), (name, err.get())
            err, masked = jaxloss.checked(lambda *a: case.call(*a, where=where, reduction="none"))(*bad_arrays)
            assert err.get() is None, f"a masked entry was checked: {err.get()}"
            np.testing.assert_array_equal(np.asarray(masked, np.float64), clean_masked)
            tested += 1
    for name in dom.hypers:
        if dom.defaults.get(name) is None and name not in case.kwargs:
            continue  # an optional feature (e.g. clip_epsilon, which needs old_values): tested where it is used
        for spec in dom.specs(name, case.kwargs):
            bad = float(spec.bad_value(np.float32))
            with pytest.raises(ValueError, match=name):
                case.call(*arrays, **{name: bad})
            f = lambda h, *a: case.call(*a, reduction="none", **{name: h})  # noqa: E731
            out = np.asarray(jax.jit(f)(jnp.float32(bad), *arrays))
            assert np.isnan(out).any(), f"traced {name}={bad} gave {out}, not NaN"
            err, _ = jax.jit(jaxloss.checked(f))(jnp.float32(bad), *arrays)
            assert err.get() is not None and name in err.get(), (name, err.get())
            tested += 1
    assert tested > 0, f"no declared domain applies to {case} ({options})"


CHECKS = {
    "jit_equals_eager": check_jit_equals_eager,
    "vmap_equals_loop": check_vmap_equals_loop,
    "where_equals_slicing": check_where_equals_slicing,
    "fully_masked": check_fully_masked,
    "reductions": check_reductions,
    "bf16": check_bf16,
    "extreme": check_extreme,
    "errors": check_errors,
    "second_order": check_second_order,
    "domain": check_domain,
}


def applies(case: LossCase, check: str) -> bool:
    """Whether ``check`` runs on ``case``: not declared not applicable, and the domain check only for a loss
    with a declared domain."""
    if check in case.not_applicable:
        return False
    if check != "domain":
        return True
    dom = getattr(case.fn, "domain", None)
    if dom is None:
        return False
    optional = {n for n in dom.hypers if dom.defaults.get(n) is None and n not in case.kwargs}
    return any(dom.specs(n, case.kwargs) for n in [*dom.inputs, *dom.hypers] if n not in optional)
