"""Regularizers: values and gradients against float64 NumPy formulas (and optax's weight decay, SciPy's
entropy), composition with ``+`` and ``*``, masks that exclude exactly the masked parameters, and
proximal operators checked against a brute-force minimisation of their definition (SciPy)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
import scipy.stats

import jaxloss
from harness import DTYPES, assert_close, assert_tree_close


def _params(dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    return {
        "dense": {"kernel": r.normal(size=(4, 3)).astype(dtype), "bias": r.normal(size=(3,)).astype(dtype)},
        "out": {"w": r.normal(size=(3, 5)).astype(dtype), "b": r.normal(size=(5,)).astype(dtype)},
        "conv": r.normal(size=(2, 2, 3, 4)).astype(dtype),
    }


def _leaves(p):
    return [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(p)]


# float64 NumPy references, summed over all leaves.
NP_PENALTY = {
    "l2": lambda x: 0.5 * np.sum(x * x),
    "l1": lambda x: np.sum(np.abs(x)),
    "elastic_net": lambda x, r=0.3: r * np.sum(np.abs(x)) + 0.5 * (1 - r) * np.sum(x * x),
    "group_lasso": lambda x: np.linalg.norm(x),
}
MAKE = {
    "l2": lambda s, **kw: jaxloss.l2(s, **kw),
    "l1": lambda s, **kw: jaxloss.l1(s, **kw),
    "elastic_net": lambda s, **kw: jaxloss.elastic_net(s, 0.3, **kw),
    "group_lasso": lambda s, **kw: jaxloss.group_lasso(s, **kw),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(NP_PENALTY))
def test_value_and_grad_vs_numpy_formula(kind, dtype):
    """Value against the float64 NumPy formula; gradient against finite differences of that formula."""
    p = _params(dtype)
    reg = MAKE[kind](0.7)
    expected = 0.7 * sum(NP_PENALTY[kind](x) for x in _leaves(p))
    value = reg(p)
    assert value.dtype == dtype
    assert_close(value, expected, dtype)
    g = jax.grad(reg)(jax.tree_util.tree_map(jnp.asarray, p))
    ref = {
        "l2": lambda x: 0.7 * x,
        "l1": lambda x: 0.7 * np.sign(x),
        "elastic_net": lambda x: 0.7 * (0.3 * np.sign(x) + 0.7 * x),
        "group_lasso": lambda x: 0.7 * x / np.linalg.norm(x),
    }[kind]
    for a, x in zip(jax.tree_util.tree_leaves(g), _leaves(p)):
        assert_close(a, ref(x), dtype)


def test_l2_gradient_is_optax_weight_decay():
    """optax reference: grad of l2(s) is optax.add_decayed_weights(s)'s update on zero gradients."""
    p = jax.tree_util.tree_map(jnp.asarray, _params())
    tx = optax.add_decayed_weights(0.3)
    decay, _ = tx.update(jax.tree_util.tree_map(jnp.zeros_like, p), tx.init(p), p)
    assert_tree_close(jax.grad(jaxloss.l2(0.3))(p), decay, np.float64)


def test_group_lasso_axis_vs_numpy():
    w = np.random.default_rng(1).normal(size=(4, 3))
    assert_close(jaxloss.group_lasso(0.5, axis=-1)(w), 0.5 * np.linalg.norm(w, axis=1).sum(), np.float64)
    assert_close(jaxloss.group_lasso(0.5, axis=0)(w), 0.5 * np.linalg.norm(w, axis=0).sum(), np.float64)
    # The gradient at a zero group is finite (0), not NaN.
    g = jax.grad(jaxloss.group_lasso(1.0, axis=-1))(jnp.zeros((2, 3)))
    assert np.all(np.asarray(g) == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_orthogonal_vs_numpy(dtype):
    p = _params(dtype)

    def ref(x):
        if x.ndim < 2:
            return 0.0
        w = x.reshape(-1, x.shape[-1])
        if w.shape[0] < w.shape[1]:
            w = w.T
        return np.sum((w.T @ w - np.eye(w.shape[1])) ** 2)

    expected = 2.0 * sum(ref(x) for x in _leaves(p))
    assert_close(jaxloss.orthogonal(2.0)(p), expected, dtype, rtol=1e-4 if dtype == np.float32 else None)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 3)))
    assert abs(float(jaxloss.orthogonal(1.0)(q))) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_penalties_vs_scipy_entropy(dtype):
    """SciPy reference: scipy.stats.entropy of the softmax, averaged over examples."""
    logits = np.random.default_rng(2).normal(size=(6, 4)).astype(dtype)
    z = logits.astype(np.float64)
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    h = scipy.stats.entropy(probs, axis=-1).mean()
    assert_close(jaxloss.output_entropy(0.3)(logits), 0.3 * h, dtype)
    assert_close(jaxloss.confidence_penalty(0.3)(logits), -0.3 * h, dtype)
    # class axis first
    assert_close(jaxloss.output_entropy(1.0, axis=0)(logits.T), h, dtype)
    # In a sum with parameter penalties the outputs are passed separately.
    reg = jaxloss.l2(1.0) + jaxloss.output_entropy(0.3)
    w = np.ones(3, dtype)
    assert_close(reg(w, outputs=logits), 1.5 + 0.3 * h, dtype)
    with pytest.raises(ValueError, match="outputs"):
        reg(w)


def test_composition_add_scale_sum():
    p = jax.tree_util.tree_map(jnp.asarray, _params())
    a, b = jaxloss.l2(0.1), jaxloss.l1(0.2)
    assert_close((a + 3.0 * b)(p), a(p) + 3 * b(p), np.float64)
    assert_close((b * 2.0)(p), 2 * b(p), np.float64)
    assert_close((b / 4.0)(p), b(p) / 4, np.float64)
    assert_close(sum([a, b, jaxloss.orthogonal(0.5)])(p), a(p) + b(p) + jaxloss.orthogonal(0.5)(p), np.float64)
    assert "l2(strength=0.1)" in repr(a + b) and "l1(strength=0.2)" in repr(a + b)
    # jit and traced strengths
    assert_close(jax.jit(a + b)(p), a(p) + b(p), np.float64)
    by_strength = jax.vmap(lambda s: jaxloss.l1(s)(p))(jnp.array([0.0, 1.0, 2.0]))
    assert_close(by_strength, np.array([0.0, 1.0, 2.0]) * float(jaxloss.l1(1.0)(p)), np.float64)
    assert_close(jax.grad(lambda s: jaxloss.l2(s)(p))(1.0), float(jaxloss.l2(1.0)(p)), np.float64)


def test_grad_of_sum_is_sum_of_grads():
    p = jax.tree_util.tree_map(jnp.asarray, _params())
    parts = [
        jaxloss.l2(0.1),
        jaxloss.l1(0.2, mask=jaxloss.not_bias),
        jaxloss.orthogonal(0.05),
        jaxloss.group_lasso(0.3),
    ]
    total = jax.grad(sum(parts))(p)
    expected = functools.reduce(lambda x, y: jax.tree_util.tree_map(jnp.add, x, y), [jax.grad(r)(p) for r in parts])
    assert_tree_close(total, expected, np.float64)


MASKS = {
    "predicate(path)": lambda path: not path.endswith("bias") and not path.endswith("/b"),
    "predicate(path, leaf)": lambda path, leaf: leaf.ndim > 1,
    "not_bias": jaxloss.not_bias,
    "pytree prefix": {"dense": {"kernel": True, "bias": False}, "out": {"w": True, "b": False}, "conv": True},
}


@pytest.mark.parametrize("kind", ["l2", "l1", "group_lasso", "orthogonal"])
@pytest.mark.parametrize("mask_name", sorted(MASKS))
def test_mask_excludes_exactly_the_masked_parameters(kind, mask_name):
    """Masked leaves: no value, zero gradient, unchanged by the prox; unmasked leaves: as without a mask."""
    p = jax.tree_util.tree_map(jnp.asarray, _params())
    make = {**MAKE, "orthogonal": lambda s, **kw: jaxloss.orthogonal(s, **kw)}[kind]
    masked, full = make(0.4, mask=MASKS[mask_name]), make(0.4)
    keep = {"dense/kernel": True, "dense/bias": False, "out/w": True, "out/b": False, "conv": True}
    kept = {k: v for k, v in {"dense/kernel": p["dense"]["kernel"], "out/w": p["out"]["w"], "conv": p["conv"]}.items()}
    assert_close(masked(p), full(kept), np.float64)
    g_masked, g_full = jax.grad(masked)(p), jax.grad(full)(p)
    flat_m = dict(zip(["conv", "dense/bias", "dense/kernel", "out/b", "out/w"], jax.tree_util.tree_leaves(g_masked)))
    flat_f = dict(zip(["conv", "dense/bias", "dense/kernel", "out/b", "out/w"], jax.tree_util.tree_leaves(g_full)))
    for name, on in keep.items():
        if on:
            assert_close(flat_m[name], flat_f[name], np.float64)
        else:
            assert np.all(np.asarray(flat_m[name]) == 0), name
    if full.has_prox:
        out = masked.prox(p, 0.5)
        ref = full.prox(p, 0.5)
        for (path, a), b, x in zip(
            jax.tree_util.tree_flatten_with_path(out)[0], jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(p)
        ):
            name = jax.tree_util.keystr(path, simple=True, separator="/")
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b if keep[name] else x), err_msg=name)


def test_mask_errors_and_non_float_leaves():
    p = {"w": jnp.ones(3), "n": jnp.arange(3), "f": jnp.tanh}
    # integer and non-array leaves are never penalised (Equinox modules hold functions)
    assert_close(jaxloss.l1(1.0)({"w": jnp.ones(3), "n": jnp.arange(3)}), 3.0, np.float64)
    assert_close(jaxloss.l2(1.0)(jax.tree_util.tree_leaves(p)), 1.5, np.float64)
    with pytest.raises(ValueError, match="prefix"):
        jaxloss.l1(1.0, mask={"x": True})({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="strength"):
        jaxloss.l1(-1.0)
    with pytest.raises(ValueError, match="l1_ratio"):
        jaxloss.elastic_net(1.0, 1.5)
    with pytest.raises(ValueError, match="factor"):
        -1.0 * jaxloss.l1(1.0)


def _brute_prox(np_penalty, x, step):
    """argmin_z step * penalty(z) + ||z - x||^2 / 2, by SciPy (Powell, then polished), float64."""
    obj = lambda z: step * np_penalty(z.reshape(x.shape)) + 0.5 * np.sum((z - x.ravel()) ** 2)  # noqa: E731
    res = scipy.optimize.minimize(obj, x.ravel(), method="Powell", options=dict(xtol=1e-12, ftol=1e-14, maxiter=100000))
    return res.x.reshape(x.shape), obj(res.x)


PROX_CASES = {
    "l2": (lambda: jaxloss.l2(0.8), lambda z: 0.4 * np.sum(z * z)),
    "l1": (lambda: jaxloss.l1(0.8), lambda z: 0.8 * np.sum(np.abs(z))),
    "elastic_net": (
        lambda: jaxloss.elastic_net(0.8, 0.6),
        lambda z: 0.8 * (0.6 * np.sum(np.abs(z)) + 0.2 * np.sum(z * z)),
    ),
    "group_lasso": (lambda: jaxloss.group_lasso(0.8, axis=-1), lambda z: 0.8 * np.linalg.norm(z, axis=-1).sum()),
    "l1+l2": (lambda: jaxloss.l1(0.8) + jaxloss.l2(0.5), lambda z: 0.8 * np.sum(np.abs(z)) + 0.25 * np.sum(z * z)),
    "2*group_lasso+l2": (
        lambda: 2.0 * jaxloss.group_lasso(0.4) + jaxloss.l2(0.3),
        lambda z: 0.8 * np.linalg.norm(z) + 0.15 * np.sum(z * z),
    ),
}


@pytest.mark.parametrize("name", sorted(PROX_CASES))
def test_prox_is_the_argmin_of_its_definition(name):
    """SciPy brute force: the prox attains the minimum of step*reg(z) + ||z - x||^2/2, exact zeros included."""
    make, np_pen = PROX_CASES[name]
    x = np.random.default_rng(3).normal(size=(3, 2)) * np.array([[1.0, 0.3]])
    step = 0.7
    z = np.asarray(make().prox(jnp.asarray(x), step))
    _, best = _brute_prox(np_pen, x, step)
    obj = step * np_pen(z) + 0.5 * np.sum((z - x) ** 2)
    assert obj <= best + 1e-10, (obj, best)
    # the optimality condition: 0 in step * subgradient + (z - x); for smooth coordinates it is exact
    if name == "l1":
        np.testing.assert_allclose(z, np.sign(x) * np.maximum(np.abs(x) - 0.56, 0), atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prox_dtype_and_no_closed_form(dtype):
    x = jnp.asarray(np.linspace(-1, 1, 6).astype(dtype))
    assert jaxloss.l1(0.5).prox(x, 0.2).dtype == dtype
    with pytest.raises(NotImplementedError, match="orthogonal"):
        jaxloss.orthogonal(1.0).prox(x, 0.1)
    with pytest.raises(NotImplementedError, match="closed form"):
        (jaxloss.l1(1.0) + jaxloss.group_lasso(1.0)).prox(x, 0.1)
    # disjoint masks: each leaf gets its own prox
    p = {"a": x, "b": x}
    reg = jaxloss.l1(1.0, mask={"a": True, "b": False}) + jaxloss.group_lasso(1.0, mask={"a": False, "b": True})
    out = reg.prox(p, 0.1)
    assert_close(out["a"], jaxloss.prox.soft_threshold(x, 0.1), dtype)
    assert_close(out["b"], jaxloss.prox.group_lasso(x, 0.1), dtype)
    assert not (jaxloss.l1(1.0) + jaxloss.orthogonal(1.0)).has_prox


def test_smooth_and_nonsmooth_parts():
    reg = jaxloss.l2(0.1) + jaxloss.l1(0.2) + jaxloss.elastic_net(0.3, 0.0) + jaxloss.group_lasso(0.4)
    assert not reg.is_smooth
    assert [t.kind for t in reg.smooth_part.terms] == ["l2", "elastic_net"]
    assert [t.kind for t in reg.nonsmooth_part.terms] == ["l1", "group_lasso"]
    assert jaxloss.l2(1.0).nonsmooth_part is None and jaxloss.l1(1.0).smooth_part is None
