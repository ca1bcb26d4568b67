"""Closed-form derivative rules (jaxloss/_derivatives.py, design section 12) against plain formulas.

For each loss with a custom rule, forward mode (``jax.jvp``), second order (``jax.hessian``) and the
derivative with respect to a traced hyperparameter equal those of a plain float64 reference formula
written here (differentiated by JAX's generic rules) and float64 central finite differences, on random
and extreme inputs, with weights and a mask.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

RNG = np.random.default_rng(12)
N = 8
W = RNG.uniform(0.2, 2.0, size=N)
M = np.array([1, 1, 0, 1, 1, 0, 1, 1], bool)


def _reduce(l):
    wm = W * M
    return jnp.sum(jnp.where(M, l, 0.0) * wm) / jnp.sum(wm)


def ref_huber(p, t, delta):
    e = p - t
    return _reduce(jnp.where(jnp.abs(e) <= delta, 0.5 * e * e, delta * (jnp.abs(e) - 0.5 * delta)))


def ref_log_cosh(p, t):
    e = p - t
    return _reduce(jnp.abs(e) + jnp.log1p(jnp.exp(-2.0 * jnp.abs(e))) - np.log(2.0))


def ref_bce(x, y, eps):
    y = y * (1.0 - eps) + 0.5 * eps
    return _reduce(jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x))))


def ref_focal(x, y, gamma):
    ce = jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
    m = y * jax.nn.sigmoid(-x) + (1.0 - y) * jax.nn.sigmoid(x)
    return _reduce(ce * m**gamma)


def ref_soft_margin(s, y):
    # labels pass through jaxloss's documented {-1, 0, 1} -> {-1, 1} map y^2 + y - 1 (identity on -1 and 1,
    # slope 2y + 1: it enters the derivative with respect to the labels)
    return _reduce(jnp.logaddexp(0.0, -(y * y + y - 1.0) * s))


CASES = {
    "huber": (lambda a, b, h: jaxloss.huber(a, b, delta=h, weights=W, where=M), ref_huber, 0.7),
    "log_cosh": (lambda a, b, h: jaxloss.log_cosh(a, b, weights=W, where=M), lambda a, b, h: ref_log_cosh(a, b), 0.0),
    "bce": (lambda a, b, h: jaxloss.binary_cross_entropy(a, b, label_smoothing=h, weights=W, where=M), ref_bce, 0.1),
    # gamma traced (the safe_pow rule) and a concrete integer gamma (the integer-power rule)
    "focal": (lambda a, b, h: jaxloss.focal(a, b, gamma=h, weights=W, where=M), ref_focal, 1.5),
    "soft_margin": (
        lambda a, b, h: jaxloss.soft_margin(a, b, weights=W, where=M),
        lambda a, b, h: ref_soft_margin(a, b),
        0.0,
    ),
    "focal_int": (lambda a, b, h: jaxloss.focal(a, b, weights=W, where=M), lambda a, b, h: ref_focal(a, b, 2.0), 0.0),
}
NO_HYPER = ("log_cosh", "focal_int", "soft_margin")
BINARY = ("bce", "focal", "focal_int")


def inputs(name, extreme):
    a = RNG.normal(size=N) * 2.0
    if extreme:
        a = np.array([1e4, -1e4, 30.0, -30.0, 1e-8, -1e-8, 0.5, 40.0])
    b = RNG.uniform(size=N) if name in BINARY else RNG.normal(size=N)
    if name not in BINARY and extreme:
        b = np.zeros(N)
    if name == "soft_margin":  # labels in {-1, 1}
        b = np.where(RNG.uniform(size=N) < 0.5, -1.0, 1.0)
    return jnp.asarray(a), jnp.asarray(b)


def fd_grad(f, a, h=1e-6):
    g = np.zeros(N)
    for i in range(N):
        d = np.zeros(N)
        d[i] = h
        g[i] = (float(f(a + d)) - float(f(a - d))) / (2 * h)
    return g


@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_jvp_hessian_grad_match_plain_formula(name, extreme):
    """float64: value, jvp (in both inputs), grad, Hessian and hyperparameter grad equal the plain formula's."""
    lib, ref, hp = CASES[name]
    a, b = inputs(name, extreme)
    va, vb = jnp.asarray(RNG.normal(size=N)), jnp.asarray(RNG.normal(size=N))
    np.testing.assert_allclose(lib(a, b, hp), ref(a, b, hp), rtol=1e-12, atol=1e-300)
    out_l, tan_l = jax.jvp(lambda x, y: lib(x, y, hp), (a, b), (va, vb))
    out_r, tan_r = jax.jvp(lambda x, y: ref(x, y, hp), (a, b), (va, vb))
    np.testing.assert_allclose(tan_l, tan_r, rtol=1e-10, atol=1e-14)
    g_l = jax.grad(lib)(a, b, hp)
    np.testing.assert_allclose(g_l, jax.grad(ref)(a, b, hp), rtol=1e-10, atol=1e-14)
    assert np.all(np.asarray(g_l)[~M] == 0.0), "masked entries must have zero gradient"
    np.testing.assert_allclose(jax.hessian(lib)(a, b, hp), jax.hessian(ref)(a, b, hp), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        jax.jacfwd(jax.grad(lib, 1), 0)(a, b, hp), jax.jacfwd(jax.grad(ref, 1), 0)(a, b, hp), rtol=1e-10, atol=1e-14
    )
    if name not in NO_HYPER:
        g_h = jax.grad(lib, 2)(a, b, jnp.float64(hp))
        np.testing.assert_allclose(g_h, jax.grad(ref, 2)(a, b, jnp.float64(hp)), rtol=1e-10, atol=1e-14)
        h = 1e-6
        fd = (float(lib(a, b, hp + h)) - float(lib(a, b, hp - h))) / (2 * h)
        np.testing.assert_allclose(g_h, fd, rtol=1e-6, atol=1e-8)
    if not extreme:
        np.testing.assert_allclose(g_l, fd_grad(lambda x: lib(x, b, hp), a), rtol=1e-6, atol=1e-9)


def test_ctc_written_out_recursion_derivatives_equal_optax():
    """The CTC step's written-out derivative (jaxloss/sequence.py ``_ctc_update``): float64 jvp, gradient,
    Hessian-vector products (w.r.t. the logits) and the gradient w.r.t. ``log_epsilon`` equal those of optax's
    ``ctc_loss`` (generic derivatives of its own recursion), with padded frames and labels."""
    import optax

    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, 7, 4)))
    y = jnp.asarray([[1, 2, 2], [3, 1, 0]])
    fp = jnp.asarray([[0.0] * 7, [0.0] * 5 + [1.0] * 2])
    lp = jnp.asarray([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    v = jnp.asarray(rng.normal(size=x.shape))

    def lib(x, eps=-1e5):
        return jaxloss.ctc(x, y, logit_paddings=fp, label_paddings=lp, log_epsilon=eps, reduction="sum")

    def ref(x, eps=-1e5):
        return jnp.sum(optax.ctc_loss(x, fp, y, lp, log_epsilon=eps))

    np.testing.assert_allclose(lib(x), ref(x), rtol=1e-12)
    np.testing.assert_allclose(jax.jvp(lib, (x,), (v,))[1], jax.jvp(ref, (x,), (v,))[1], rtol=1e-10)
    np.testing.assert_allclose(jax.grad(lib)(x), jax.grad(ref)(x), rtol=1e-10, atol=1e-13)
    hvp_l = jax.jvp(jax.grad(lib), (x,), (v,))[1]
    hvp_r = jax.jvp(jax.grad(ref), (x,), (v,))[1]
    np.testing.assert_allclose(hvp_l, hvp_r, rtol=1e-8, atol=1e-12)
    # an impossible alignment (3 frames for labels 1, 2, 2): the loss depends on log_epsilon
    short = jnp.asarray([[0.0] * 3 + [1.0] * 4, [0.0] * 7])
    g_l = jax.grad(lambda e: jaxloss.ctc(x, y, logit_paddings=short, label_paddings=lp, log_epsilon=e, reduction="sum"))
    g_r = jax.grad(lambda e: jnp.sum(optax.ctc_loss(x, short, y, lp, log_epsilon=e)))
    np.testing.assert_allclose(g_l(-30.0), g_r(-30.0), rtol=1e-8)
    assert abs(float(g_l(-30.0))) > 0.5
