"""The shared core: reduction semantics, masks, dtypes, hyperparameters, and the transformations of §3
of the design (jit, grad, vmap, lax.scan, sharded jit, shard_map). Values against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from harness import all_finite, assert_close


def data(dtype=np.float32, n=8, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)).astype(dtype), rng.integers(0, c, size=n)


def _nll64(x, y):
    x = x.astype(np.float64)
    return np.log(np.exp(x).sum(-1)) - x[np.arange(len(y)), y]


def test_float64_stays_float64_and_float32_stays_float32():
    x, y = data(np.float64)
    assert jaxloss.cross_entropy(x, y).dtype == jnp.float64
    assert jaxloss.cross_entropy(x.astype(np.float32), y).dtype == jnp.float32
    assert_close(jaxloss.cross_entropy(x, y), _nll64(x, y).mean(), np.float64)


def test_where_must_be_boolean_and_broadcastable():
    x, y = data()
    with pytest.raises(TypeError, match="where must be a boolean mask; got dtype"):
        jaxloss.mse(x, x, where=np.ones(x.shape, np.float32))
    with pytest.raises(
        ValueError, match=r"where with shape \(3,\) does not broadcast to the unreduced loss, of shape \(8, 4\)"
    ):
        jaxloss.mse(x, x, where=np.ones(3, bool))


def test_weights_and_mask_combine_as_weighted_mean_over_unmasked():
    """mean = sum(w*m*l) / sum(w*m) (float64 NumPy), per-example weights on a class-axis loss."""
    x, y = data(np.float64)
    w = np.linspace(0.5, 2.0, len(y))
    m = np.array([1, 1, 0, 1, 0, 1, 1, 1], bool)
    l = _nll64(x, y)
    assert_close(jaxloss.cross_entropy(x, y, weights=w, where=m), (w * m * l).sum() / (w * m).sum(), np.float64)
    assert_close(jaxloss.cross_entropy(x, y, weights=w, where=m, reduction="none"), w * m * l, np.float64)


def test_zero_total_weight_gives_zero_not_nan():
    x, y = data()
    v, g = jax.value_and_grad(lambda a: jaxloss.cross_entropy(a, y, weights=jnp.zeros(len(y))))(x)
    assert float(v) == 0.0 and all_finite(g)


def test_hyperparameters_are_traceable():
    """label_smoothing differentiated and vmapped; d/d eps of CE = mean(smooth - nll) (float64 formula)."""
    x, y = data(np.float64)
    g = jax.grad(lambda e: jaxloss.cross_entropy(x, y, label_smoothing=e))(0.1)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64).sum(-1))
    assert_close(g, np.mean((lse - x64.mean(-1)) - _nll64(x, y)), np.float64)
    eps = jnp.array([0.0, 0.1, 0.2])
    batched = jax.vmap(lambda e: jaxloss.cross_entropy(x, y, label_smoothing=e))(eps)
    assert_close(batched, [float(jaxloss.cross_entropy(x, y, label_smoothing=float(e))) for e in eps], np.float64)


def test_lax_scan_over_batches_equals_loop():
    x, y = data(n=12)
    xs, ys = x.reshape(3, 4, -1), y.reshape(3, 4)

    def body(carry, batch):
        return carry + jaxloss.cross_entropy(*batch), None

    total, _ = jax.lax.scan(body, jnp.float32(0.0), (xs, ys))
    assert_close(total, sum(_nll64(xs[i], ys[i]).mean() for i in range(3)), np.float32)


def test_sharded_jit_equals_unsharded():
    """Inputs sharded over a 2-device mesh (virtual CPU devices): same value and gradient."""
    devices = jax.devices()
    assert len(devices) >= 2, "conftest sets --xla_force_host_platform_device_count=2"
    mesh = Mesh(np.array(devices[:2]), ("batch",))
    x, y = data()
    xs = jax.device_put(x, NamedSharding(mesh, P("batch")))
    ys = jax.device_put(y, NamedSharding(mesh, P("batch")))
    f = jax.jit(jax.value_and_grad(lambda a, b: jaxloss.cross_entropy(a, b, label_smoothing=0.1)))
    v_s, g_s = f(xs, ys)
    v, g = f(x, y)
    assert_close(v_s, v, np.float32)
    assert_close(g_s, g, np.float32)


def test_shard_map_sum_then_psum_equals_global():
    from jax import shard_map

    mesh = Mesh(np.array(jax.devices()[:2]), ("batch",))
    x, y = data()

    def local(a, b):
        return jax.lax.psum(jaxloss.cross_entropy(a, b, reduction="sum"), "batch")

    total = jax.jit(shard_map(local, mesh=mesh, in_specs=(P("batch"), P("batch")), out_specs=P()))(x, y)
    assert_close(total, _nll64(x, y).sum(), np.float32)


def test_checked_is_silent_on_valid_input():
    x, y = data()
    err, value = jax.jit(jaxloss.checked(jaxloss.cross_entropy))(x, y)
    assert err.get() is None
    assert_close(value, _nll64(x, y).mean(), np.float32)


# ---------------------------------------------------------------------------------------------------------
# Issue 14: checked mode survives cached traces; finite second derivatives; one domain policy
# ---------------------------------------------------------------------------------------------------------


def test_checked_is_not_lost_to_a_cached_trace():
    """Issue 14, defect 1: an unchecked call of a jitted loss first, then a checked call at the same shape
    (the same cached trace) must still report the out-of-range label."""
    logits = jnp.zeros((2, 3))
    step = lambda x, y: jax.jit(jaxloss.cross_entropy)(x, y)  # noqa: E731
    assert_close(step(logits, jnp.array([0, 1])), np.log(3.0), np.float32)
    err, value = jaxloss.checked(step)(logits, jnp.array([0, 5]))
    assert err.get() is not None and "labels must lie in [0, 3)" in err.get()
    assert np.isnan(float(value))
    # and the other way round: a checked trace first does not make later unchecked calls raise
    assert np.isnan(float(step(logits, jnp.array([0, 5]))))


def _focal64(z, y, gamma):
    """The sigmoid focal loss in mpmath (60 digits), an independent reference."""
    import mpmath as mp

    z = mp.mpf(z)
    p = 1 / (1 + mp.e ** (-z))
    pt = p * y + (1 - p) * (1 - y)
    ce = -(y * mp.log(p) + (1 - y) * mp.log(1 - p))
    return ce * (1 - pt) ** gamma


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_second_derivative_is_finite_and_exact(gamma):
    """Issue 14, defect 2: jax.hessian of focal at confident logits was NaN (safe_pow's exp(g log u) with
    u ~ 2e-22). Float32: finite at the issue's point and beyond; float64: equal to the mpmath second
    derivative and to optax.sigmoid_focal_loss's Hessian."""
    import mpmath as mp
    import optax

    mp.mp.dps = 60  # mp.diff picks its step from the working precision
    f32 = jax.jit(jax.hessian(lambda z: jaxloss.focal(z, 1.0, gamma=gamma)))
    for z in (50.0, 80.0, 1e4, -50.0):
        assert np.isfinite(float(f32(jnp.float32(z)))), z
    h64 = jax.jit(jax.vmap(jax.hessian(lambda z, y: jaxloss.focal(z, y, gamma=gamma)), (0, 0)))
    ho = jax.jit(jax.vmap(jax.hessian(lambda z, y: optax.sigmoid_focal_loss(z, y, gamma=gamma)), (0, 0)))
    zs = np.array([-20.0, -3.0, 0.5, 3.0, 20.0, 50.0], np.float64)
    for y in (1.0, 0.0, 0.3):
        ys = np.full_like(zs, y)
        ref = [float(mp.diff(lambda t: _focal64(t, y, gamma), z, 2)) for z in zs]
        assert_close(h64(zs, ys), ref, np.float64, rtol=1e-6, atol=1e-17)
        assert_close(ho(zs, ys), ref, np.float64, rtol=1e-6, atol=1e-17)


def test_safe_pow_derivatives_of_every_order_at_tiny_and_zero_bases():
    """safe_pow(u, g): value u^g; first and second derivatives g u^(g-1), g (g-1) u^(g-2) (float64 formula)
    at ordinary bases; at a base of exactly 0 the finite subgradient of the constant branch."""
    from jaxloss import _core

    u = jnp.array([0.3, 2.0, 1e-20], jnp.float64)
    for g in (0.5, 2.0, 3.0):
        ge = jnp.float64(g)
        d1 = jax.vmap(jax.grad(lambda b: _core.safe_pow(b, ge)))(u)
        d2 = jax.vmap(jax.grad(jax.grad(lambda b: _core.safe_pow(b, ge))))(u)
        un = np.asarray(u)
        assert_close(d1, g * un ** (g - 1), np.float64)
        assert_close(d2, g * (g - 1) * un ** (g - 2), np.float64)
    d2_zero = jax.grad(jax.grad(lambda b: _core.safe_pow(b, jnp.float32(0.5))))(jnp.float32(0.0))
    assert float(d2_zero) == 0.0


def test_domain_policy_issue_reproducers():
    """Issue 14, defect 3: each reproducer gives NaN (never a plausible number) and a checked error naming
    the argument; concrete hyperparameters out of range raise ValueError."""
    nan = lambda v: bool(np.isnan(np.asarray(v, np.float64)).all())  # noqa: E731
    lp = jnp.log(jnp.array([[0.5, 0.5]]))
    cases = [
        (lambda: jaxloss.kl_divergence(lp, jnp.array([[jnp.nan, -0.5]])), "targets"),
        (lambda: jaxloss.kl_divergence(lp, jnp.array([[jnp.nan, 0.0]]), log_targets=True), "targets"),
        (lambda: jaxloss.binary_cross_entropy(jnp.array([0.3]), jnp.array([-1.0])), "labels"),
        (lambda: jaxloss.binary_cross_entropy(jnp.array([1.3]), jnp.array([1.0]), from_logits=False), "logits"),
        (lambda: jax.jit(lambda d: jaxloss.huber(jnp.array([3.0]), jnp.array([0.0]), delta=d))(-1.0), "delta"),
        (lambda: jaxloss.poisson_nll(jnp.array([0.3]), jnp.array([-2.0])), "targets"),
        (lambda: jaxloss.entropy(jnp.array([[1.5, -0.5]]), from_logits=False), "logits"),
    ]
    x, x2 = jnp.array([0.5]), jnp.array([0.1])
    for name in ("hinge", "squared_hinge", "soft_margin", "perceptron", "sparsemax"):
        fn = getattr(jaxloss, name)
        cases.append((lambda fn=fn: fn(x, jnp.array([2.0])), "labels"))
        cases.append((lambda fn=fn: fn(x, jnp.array([0.5])), "labels"))
    v1, v2 = jnp.ones((1, 2)), jnp.array([[1.0, -1.0]])
    cases += [
        (lambda: jaxloss.hinge_embedding(x, jnp.array([0.5])), "labels"),
        (lambda: jaxloss.cosine_embedding(v1, v2, jnp.array([2.0])), "labels"),
        (lambda: jaxloss.margin_ranking(x, x2, jnp.array([0.5])), "labels"),
        (lambda: jaxloss.binary_cross_entropy(x, jnp.array([2.0])), "labels"),
        (lambda: jaxloss.focal(x, jnp.array([2.0])), "labels"),
        (lambda: jaxloss.multilabel_soft_margin(v1, jnp.array([[1.0, -1.0]])), "labels"),
        (lambda: jaxloss.contrastive(v1, v2, jnp.array([-1.0])), "labels"),
    ]
    for call, name in cases:
        assert nan(call()), name
        err, out = jaxloss.checked(call)()
        assert err.get() is not None and name in err.get(), (name, err.get())
    with pytest.raises(ValueError, match="delta must be > 0"):
        jaxloss.huber(jnp.array([3.0]), jnp.array([0.0]), delta=-1.0)


def test_kl_divergence_nan_targets_follow_pytorch():
    """PyTorch's kl_div propagates NaN targets (and gives a NaN for a negative target, log of a negative);
    jaxloss gives NaN for the affected distribution and keeps the others."""
    import torch

    lp = np.log(np.array([[0.5, 0.5], [0.25, 0.75]], np.float32))
    t = np.array([[np.nan, 0.5], [0.5, 0.5]], np.float32)
    ref = torch.nn.functional.kl_div(torch.tensor(lp), torch.tensor(t), reduction="none").sum(-1).numpy()
    out = np.asarray(jaxloss.kl_divergence(lp, t, reduction="none"))
    assert np.isnan(ref[0]) and np.isnan(out[0])
    assert_close(out[1], ref[1], np.float32)
    t_neg = np.array([[-0.5, 0.5]], np.float32)
    ref_neg = torch.nn.functional.kl_div(torch.tensor(lp[:1]), torch.tensor(t_neg), reduction="sum").item()
    assert np.isnan(ref_neg) and np.isnan(float(jaxloss.kl_divergence(lp[:1], t_neg)))


def test_binary_cross_entropy_probabilities_outside_unit_interval_pytorch_raises():
    """PyTorch's binary_cross_entropy raises on probabilities outside [0, 1]; under jit jaxloss cannot, so
    the entry is NaN and checked mode names the argument."""
    import torch

    with pytest.raises(RuntimeError):
        torch.nn.functional.binary_cross_entropy(torch.tensor([1.3]), torch.tensor([1.0]))
    out = jaxloss.binary_cross_entropy(
        np.array([0.3, 1.3], np.float32), np.array([1.0, 1.0], np.float32), from_logits=False, reduction="none"
    )
    assert np.isnan(float(out[1])) and np.isclose(float(out[0]), -np.log(0.3), rtol=1e-6)


def test_domain_table_is_generated_from_the_declarations():
    from jaxloss import _core

    rows = _core.domain_table()
    table = {(loss, arg): (kind, text) for loss, arg, kind, text in rows}
    assert table[("huber", "delta")] == ("hyperparameter", "> 0")
    assert table[("hinge", "labels")] == ("input", "in {-1, 0, 1}")
    assert table[("binary_cross_entropy", "labels")] == ("input", "in [0, 1]")
    assert table[("poisson_nll", "targets")] == ("input", ">= 0")
    assert "Domain:" in jaxloss.huber.__doc__ and "delta: > 0" in jaxloss.huber.__doc__


def test_class_axis_tuple_and_class_masks_equal_optax():
    """axis= as a tuple of class axes and per-class where= masks (optax 0.2.8's softmax_cross_entropy and
    softmax_cross_entropy_with_integer_labels, the reference); masked classes hold NaN, which must not leak."""
    import optax

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)  # classes on axes (1, 3): 15 classes
    y = rng.integers(0, 15, size=(2, 4))
    t = rng.dirichlet(np.ones(15), size=(2, 4)).reshape(2, 4, 3, 5).transpose(0, 2, 1, 3).astype(np.float32)
    ref_int = optax.losses.softmax_cross_entropy_with_integer_labels(x, y, axis=(1, 3))
    ref_prob = optax.losses.softmax_cross_entropy(x, t, axis=(1, 3))
    assert_close(jaxloss.cross_entropy(x, y, axis=(1, 3), reduction="none"), ref_int, np.float32)
    assert_close(jaxloss.cross_entropy(x, t, axis=(1, 3), reduction="none"), ref_prob, np.float32)

    logits = rng.normal(size=(4, 6)).astype(np.float32)
    cm = rng.uniform(size=(4, 6)) < 0.7
    labels = np.array([np.flatnonzero(row)[0] for row in cm])
    probs = rng.dirichlet(np.ones(6), size=4).astype(np.float32) * cm
    probs /= probs.sum(-1, keepdims=True)
    poisoned = np.where(cm, logits, np.nan).astype(np.float32)
    ref_i = optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels, where=cm)
    ref_p = optax.losses.softmax_cross_entropy(logits, probs, where=cm)
    v, g = jax.value_and_grad(lambda a: jaxloss.cross_entropy(a, labels, where=cm, reduction="sum"))(poisoned)
    assert_close(v, np.sum(ref_i), np.float32)
    g_ref = jax.grad(lambda a: optax.losses.softmax_cross_entropy_with_integer_labels(a, labels, where=cm).sum())(
        logits
    )
    assert_close(np.where(cm, g, 0.0), np.where(cm, g_ref, 0.0), np.float32)
    assert all_finite(g) and np.all(np.asarray(g)[~cm] == 0)
    assert_close(jaxloss.cross_entropy(poisoned, probs, where=cm, reduction="none"), ref_p, np.float32)
    # a label on a masked class is invalid; an example without any class is masked (0)
    bad = labels.copy()
    bad[0] = np.flatnonzero(~cm[0])[0] if (~cm[0]).any() else 0
    if (~cm[0]).any():
        out = jaxloss.cross_entropy(logits, bad, where=cm, reduction="none")
        assert np.isnan(float(out[0])) and all_finite(out[1:])
    none_left = cm.copy()
    none_left[1] = False
    out = jaxloss.cross_entropy(logits, labels, where=none_left, reduction="none")
    assert float(out[1]) == 0.0
    with pytest.raises(ValueError, match="label_smoothing"):
        jaxloss.cross_entropy(logits, labels, where=cm, label_smoothing=0.1)


# -- the full reduction (_core.full_sums: one fused pass on CPU) -------------------------------------------

FAST_N = 3 * 2**14  # above _core._MIN_FAST_SUM and a multiple of its row length: the CPU path is taken


@pytest.mark.parametrize("shape", [(FAST_N,), (96, 512), (3, 2**14 + 1)])
def test_full_sums_equal_float64_numpy_with_jnp_sum_derivatives(shape):
    """Values against float64 NumPy; jvp, grad and Hessian-vector products against ``jnp.sum``'s (the
    derivatives are exact: the sum is linear); under vmap equal to a loop. The last shape (no row length
    divides it) takes the plain sum."""
    from jaxloss import _core

    rng = np.random.default_rng(3)
    a = rng.normal(size=shape).astype(np.float32) * 3.0
    b = rng.uniform(size=shape).astype(np.float32)
    s1, s2 = jax.jit(_core.full_sums)(jnp.asarray(a), jnp.asarray(b))
    assert_close(s1, a.astype(np.float64).sum(), np.float32, rtol=1e-6, atol=1e-3)
    assert_close(s2, b.astype(np.float64).sum(), np.float32, rtol=1e-6, atol=1e-3)

    def f(x, y):
        s, c = _core.full_sums(jnp.sin(x) * y, y * y)
        return s / c

    def g(x, y):
        return jnp.sum(jnp.sin(x) * y) / jnp.sum(y * y)

    v = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    args = (jnp.asarray(a), jnp.asarray(b))
    for argnum in (0, 1):
        fa = lambda z, h=f, i=argnum: h(*[z if j == i else args[j] for j in range(2)])  # noqa: E731
        ga = lambda z, h=g, i=argnum: h(*[z if j == i else args[j] for j in range(2)])  # noqa: E731
        assert_close(jax.jvp(fa, (args[argnum],), (v,))[1], jax.jvp(ga, (args[argnum],), (v,))[1], np.float32)
        assert_close(jax.grad(fa)(args[argnum]), jax.grad(ga)(args[argnum]), np.float32, rtol=1e-5)
        hf = jax.jvp(jax.grad(fa), (args[argnum],), (v,))[1]
        hg = jax.jvp(jax.grad(ga), (args[argnum],), (v,))[1]
        assert_close(hf, hg, np.float32, rtol=1e-4, atol=1e-9)
    batched = jax.vmap(lambda x: _core.full_sum(x))(jnp.stack([args[0], 2 * args[0]]))
    assert_close(
        batched,
        np.array([a.astype(np.float64).sum(), 2 * a.astype(np.float64).sum()]),
        np.float32,
        rtol=1e-6,
        atol=1e-3,
    )


def test_elementwise_value_and_grad_needs_no_temporaries_on_cpu():
    """The mean reduction fuses with the loss and its gradient: ``value_and_grad`` of huber and binary
    cross-entropy compiles with no temporary array (XLA:CPU's YNNPACK sum would write ``p - t`` to memory:
    4 * FAST_N bytes and more), masked and weighted means included, and never with more than optax's."""
    import optax

    rng = np.random.default_rng(4)
    p = jnp.asarray(rng.normal(size=FAST_N).astype(np.float32))
    t = jnp.asarray(rng.normal(size=FAST_N).astype(np.float32))
    y = (t > 0).astype(jnp.float32)
    m = t > -1.0
    w = jnp.asarray(rng.uniform(size=FAST_N).astype(np.float32))

    def temp(fn, *args):
        c = jax.jit(jax.value_and_grad(fn)).lower(*args).compile()
        return c.memory_analysis().temp_size_in_bytes

    small = 4 * FAST_N // 8
    assert temp(lambda a: jaxloss.huber(a, t), p) < small
    assert temp(lambda a: jaxloss.huber(a, t, where=m, weights=w), p) < small
    assert temp(lambda a: jaxloss.binary_cross_entropy(a, y), p) < small
    assert temp(lambda a: jaxloss.binary_cross_entropy(a, y), p) <= temp(
        lambda a: jnp.mean(optax.sigmoid_binary_cross_entropy(a, y)), p
    )


def test_domain_check_of_probability_targets_needs_no_boolean_temporary_on_cpu():
    """The [0, 1] check of traced probability targets (a ``[N, C]`` comparison reduced over the class axis) is
    fused with its comparisons: no ``[N, C]`` boolean in memory at 8192x1000 (compile only; XLA:CPU's
    reduce-window of a plain ``jnp.any`` wrote one, N * C bytes), and a flagged example still gives NaN."""
    f = jax.jit(lambda a, b: jaxloss.cross_entropy(a, b, reduction="none"))
    spec = jax.ShapeDtypeStruct((8192, 1000), jnp.float32)
    assert f.lower(spec, spec).compile().memory_analysis().temp_size_in_bytes < 8192 * 1000 // 8
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(size=(16, 100)).astype(np.float32))
    t = rng.random((16, 100)).astype(np.float32)
    t = t / t.sum(-1, keepdims=True)
    t[3, 7] = 1.5
    out = np.asarray(f(x, jnp.asarray(t)))
    assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()


@pytest.mark.parametrize(
    "name", ["cross_entropy", "multiclass_focal", "poly1", "generalized_cross_entropy", "categorical_hinge"]
)
def test_inline_domain_check_of_probability_targets(name):
    """The [0, 1] check that shares the loss's own pass over probability targets (``enforce_inline``) flags
    exactly the examples with an entry outside [0, 1] (negative, > 1, NaN, +-inf), accepts 0, 1 and -0.0,
    never flags a masked example, and fails under checked mode naming ``labels``. Valid rows: PyTorch's
    ``cross_entropy`` with probability targets for cross_entropy; for the others, the same loss of the valid
    rows alone."""
    fn = getattr(jaxloss, name)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    t = rng.random((8, 5)).astype(np.float32)
    t /= t.sum(-1, keepdims=True)
    t[0, 1], t[1, 2], t[2, 0], t[3, 4], t[4, 3] = -0.5, 1.5, np.nan, np.inf, -np.inf
    t[5] = [-0.0, 1.0, 0.0, 0.0, 0.0]
    out = np.asarray(jax.jit(lambda a, b: fn(a, b, reduction="none"))(x, t))
    assert np.isnan(out[:5]).all() and np.isfinite(out[5:]).all()
    ref = np.asarray(fn(x[5:], t[5:], reduction="none"))
    if name == "cross_entropy":
        import torch

        ref = torch.nn.functional.cross_entropy(torch.tensor(x[5:]), torch.tensor(t[5:]), reduction="none").numpy()
    assert_close(out[5:], ref, np.float32)
    keep = np.array([False, True, False, False, False, True, True, True])
    masked = np.asarray(fn(x, t, where=jnp.asarray(keep), reduction="none"))
    assert np.isnan(masked[1]) and (masked[~keep] == 0).all() and np.isfinite(masked[5:]).all()
    assert np.isfinite(float(fn(x, t, where=jnp.asarray(np.arange(8) >= 5))))
    err, _ = jaxloss.checked(jax.jit(lambda a, b: fn(a, b)))(x, t)
    assert err.get() is not None and "labels" in err.get()
    err, _ = jaxloss.checked(jax.jit(lambda a, b: fn(a, b)))(x[5:], t[5:])
    assert err.get() is None
