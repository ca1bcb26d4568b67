"""Reference tests of the wider classification catalog (values AND gradients, float32 and float64).

References: PyTorch (soft_margin, multilabel_soft_margin, multilabel_margin); optax (poly1, perceptron,
multiclass_perceptron, sparsemax, multiclass_sparsemax, the last also against a float64 NumPy sparsemax); Keras 3 on the
JAX backend (generalized_cross_entropy, categorical_hinge); float64 NumPy formulas from the papers where a
library has no such variant (generalized cross-entropy with probability targets, extreme logits).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from harness import DTYPES, assert_close, check_reference, jax_value_and_grads, numeric_grads, torch_value_and_grads

B, C = 6, 4


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------------------
# PyTorch references
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_margin_vs_pytorch(dtype):
    r = rng(1)
    x = (r.normal(size=(B, 3)) * 2).astype(dtype)
    y = r.choice([-1.0, 1.0], size=(B, 3)).astype(dtype)
    for reduction in ("mean", "sum"):
        v, g = torch_value_and_grads(lambda a, b: F.soft_margin_loss(a, b, reduction=reduction), [x, y])
        check_reference(jaxloss.soft_margin, v, g, [x, y], dtype, reduction=reduction)
    # {0, 1} labels mean the same as {-1, 1}; per-element values match PyTorch's "none".
    none = F.soft_margin_loss(torch.tensor(x), torch.tensor(y), reduction="none").numpy()
    assert_close(jaxloss.soft_margin(x, (y > 0).astype(np.int32), reduction="none"), none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_soft_margin_vs_pytorch(dtype):
    r = rng(2)
    x = (r.normal(size=(B, C)) * 2).astype(dtype)
    y = r.uniform(0, 1, size=(B, C)).astype(dtype)  # soft targets: the gradient w.r.t. labels is checked too
    w = r.uniform(0.5, 2.0, size=C).astype(dtype)
    v, g = torch_value_and_grads(lambda a, b: F.multilabel_soft_margin_loss(a, b, weight=torch.tensor(w)), [x, y], argnums=(0, 1))
    check_reference(jaxloss.multilabel_soft_margin, v, g, [x, y], dtype, argnums=(0, 1), class_weights=w)
    # hard {0, 1} int labels, no class weights, per-example values; the class axis may be elsewhere.
    yi = (y > 0.5).astype(np.int32)
    none = F.multilabel_soft_margin_loss(torch.tensor(x), torch.tensor(yi.astype(dtype)), reduction="none").numpy()
    assert_close(jaxloss.multilabel_soft_margin(x, yi, reduction="none"), none, dtype)
    assert_close(jaxloss.multilabel_soft_margin(x.T, yi.T, axis=0, reduction="none"), none, dtype)


def _padded_labels(r, batch):
    labels = np.full((batch, C), -1, np.int64)
    for i in range(batch):
        k = r.integers(0, C + 1)
        labels[i, :k] = r.permutation(C)[:k]
    # PyTorch's corner cases: entries after the first -1 are ignored; a target listed twice counts twice.
    labels[0] = [2, -1, 0, 1]
    labels[1] = [3, 3, -1, 1]
    labels[2] = [-1, 1, 2, 3]
    return labels


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_margin_vs_pytorch(dtype):
    r = rng(3)
    x = r.normal(size=(B, C)).astype(dtype)
    labels = _padded_labels(r, B)
    for reduction in ("mean", "sum"):
        v, g = torch_value_and_grads(lambda a, b: F.multilabel_margin_loss(a, b, reduction=reduction), [x, labels])
        check_reference(jaxloss.multilabel_margin, v, g, [x, labels], dtype, reduction=reduction)
    none = F.multilabel_margin_loss(torch.tensor(x), torch.tensor(labels), reduction="none").numpy()
    jitted = jax.jit(lambda a, b: jaxloss.multilabel_margin(a, b, reduction="none"))
    assert_close(jitted(x, labels), none, dtype)
    assert_close(jaxloss.multilabel_margin(x.T, labels.T, axis=0, reduction="none"), none, dtype)


def test_multilabel_margin_bad_labels():
    x = np.zeros((2, C), np.float32)
    labels = np.array([[0, 7, -1, -1], [1, -1, 9, 9]])  # 7 is out of range; the 9s follow a -1 and do not count
    out = np.asarray(jaxloss.multilabel_margin(x, labels, reduction="none"))
    assert np.isnan(out[0]) and out[1] == pytest.approx(3 / C)
    err, _ = jaxloss.checked(jaxloss.multilabel_margin)(x, labels)
    with pytest.raises(Exception, match="out of range"):
        err.throw()
    err, _ = jaxloss.checked(jaxloss.multilabel_margin)(x, labels, where=np.array([False, True]))
    err.throw()  # the bad example is masked: no error
    with pytest.raises(TypeError, match="integer"):
        jaxloss.multilabel_margin(x, labels.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------
# optax and Keras references (their gradients by jax.grad of the reference implementation)
# ---------------------------------------------------------------------------------------------------------


def ref_value_and_grads(ref_fn, arrays, argnums=(0,)):
    """Value and gradients of a JAX-traceable reference (optax, Keras on the JAX backend)."""
    return jax_value_and_grads(ref_fn, arrays, argnums)


def _classes(seed, dtype, scale=2.0):
    r = rng(seed)
    x = (r.normal(size=(B, C)) * scale).astype(dtype)
    return x, r.integers(0, C, size=B), r.dirichlet(np.ones(C), size=B).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poly1_vs_optax(dtype):
    import optax

    x, y, t = _classes(4, dtype)
    onehot = np.eye(C, dtype=dtype)[y]
    for eps in (2.0, -1.0):
        ref = lambda a, b: jnp.mean(optax.losses.poly_loss_cross_entropy(a, b, epsilon=eps))  # noqa: E731
        v, g = ref_value_and_grads(ref, [x, t], (0, 1))
        check_reference(jaxloss.poly1, v, g, [x, t], dtype, argnums=(0, 1), epsilon=eps)
        v, g = ref_value_and_grads(ref, [x, onehot])
        check_reference(jaxloss.poly1, v, g, [x, y], dtype, epsilon=eps)
    # epsilon is traceable: d loss / d epsilon = mean(1 - p_t), as in optax.
    d_ours = jax.grad(lambda e: jaxloss.poly1(x, y, epsilon=e))(jnp.asarray(2.0, dtype))
    d_ref = jax.grad(lambda e: jnp.mean(optax.losses.poly_loss_cross_entropy(x, onehot, epsilon=e)))(jnp.asarray(2.0, dtype))
    assert_close(d_ours, d_ref, dtype)


def _keras_gce(y, x, q):
    import keras

    return jnp.mean(keras.losses.categorical_generalized_cross_entropy(y, jax.nn.softmax(x, axis=-1), q=q))


def _gce_np(x, t, q):
    """Zhang & Sabuncu (2018), float64 NumPy: mean over examples of sum_c t_c (1 - p_c^q) / q."""
    x = np.asarray(x, np.float64)
    log_p = x - x.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    return np.mean(np.sum(t * -np.expm1(q * log_p), -1) / q)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_cross_entropy_vs_keras(dtype):
    x, y, t = _classes(5, dtype)
    for q in (0.7, 0.3, 1.0):
        v, g = ref_value_and_grads(lambda a: _keras_gce(y, a, q), [x])
        check_reference(jaxloss.generalized_cross_entropy, v, g, [x, y], dtype, q=q)
    # q = 1 is the mean absolute error of the true-class probability.
    p = np.exp(x - x.max(-1, keepdims=True).astype(np.float64))
    p = p / p.sum(-1, keepdims=True)
    assert_close(jaxloss.generalized_cross_entropy(x, y, q=1.0, reduction="none"), 1 - p[np.arange(B), y], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_cross_entropy_probability_targets_vs_numpy_formula(dtype):
    """Soft targets against the float64 NumPy formula of Zhang & Sabuncu (2018), with finite differences."""
    x, _, t = _classes(6, dtype)
    q = 0.7
    v = _gce_np(x, t, q)
    g = numeric_grads(lambda a, b: _gce_np(a, b, q), [x, t], (0, 1))
    tol = dict(rtol=1e-7, atol=1e-9) if dtype == np.float64 else {}
    check_reference(jaxloss.generalized_cross_entropy, v, g, [x, t], dtype, argnums=(0, 1), q=q, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generalized_cross_entropy_stable_when_p_y_underflows(dtype):
    """p_y = exp(-300) underflows (even in float64 after the power): loss -> 1/q, gradient -> 0, no NaN."""
    x = np.array([[0.0, -300.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype)
    y = np.array([1, 2])
    q = 0.7
    v, (g,) = jax_value_and_grads(lambda a: jaxloss.generalized_cross_entropy(a, y, q=q, reduction="sum"), [x])
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert_close(v, 1 / q + (1 - 0.25**q) / q, dtype)
    assert_close(g[0], np.zeros(C), dtype, atol=1e-30)


def _keras_hinge(t, s):
    import keras

    return jnp.mean(keras.losses.categorical_hinge(t, s))


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_hinge_vs_keras(dtype):
    x, y, t = _classes(7, dtype, scale=1.0)
    x[0] = [-0.5, 0.3, -1.2, -0.1]  # every other score negative: Keras' max includes the 0 of the true slot
    y[0] = 1
    x[1] = [0.9, -0.4, 0.1, 0.3]
    y[1] = 2
    onehot = np.eye(C, dtype=dtype)[y]
    v, g = ref_value_and_grads(_keras_hinge, [onehot, x], (1,))
    check_reference(jaxloss.categorical_hinge, v, g, [x, y], dtype)
    check_reference(jaxloss.categorical_hinge, v, g, [x, onehot], dtype)
    # probability targets, gradient w.r.t. both arguments
    v, (gt, gx) = ref_value_and_grads(_keras_hinge, [t, x], (0, 1))
    check_reference(jaxloss.categorical_hinge, v, [gx, gt], [x, t], dtype, argnums=(0, 1))


def test_hyperparameter_ranges():
    x, y = np.zeros((2, C), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match="epsilon"):
        jaxloss.poly1(x, y, epsilon=-2.0)
    for q in (0.0, 1.5):
        with pytest.raises(ValueError, match="q must be"):
            jaxloss.generalized_cross_entropy(x, y, q=q)
    err, _ = jaxloss.checked(jaxloss.categorical_hinge)(x, np.array([0, 4]))
    with pytest.raises(Exception, match="out of range"):
        err.throw()


@pytest.mark.parametrize("dtype", DTYPES)
def test_perceptron_and_binary_sparsemax_vs_optax(dtype):
    import optax

    r = rng(8)
    x = (r.normal(size=(B, 3)) * 1.5).astype(dtype)
    y01 = r.integers(0, 2, size=(B, 3))
    signed = (2 * y01 - 1).astype(dtype)
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.perceptron_loss(a, signed)), [x])
    check_reference(jaxloss.perceptron, v, g, [x, signed], dtype)
    check_reference(jaxloss.perceptron, v, g, [x, y01], dtype)  # {0, 1} labels read as {-1, 1}
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.sparsemax_loss(a, y01)), [x])
    check_reference(jaxloss.sparsemax, v, g, [x, y01], dtype)
    check_reference(jaxloss.sparsemax, v, g, [x, signed], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiclass_perceptron_vs_optax(dtype):
    import optax

    x, y, _ = _classes(9, dtype)
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.multiclass_perceptron_loss(a, y)), [x])
    check_reference(jaxloss.multiclass_perceptron, v, g, [x, y], dtype)


def _sparsemax_np(z):
    """Sparsemax (Martins & Astudillo, 2016) in float64 NumPy, one vector at a time."""
    z = np.asarray(z, np.float64)
    zs = np.sort(z)[::-1]
    cs = np.cumsum(zs)
    k = np.arange(1, z.size + 1)
    kz = k[1 + k * zs > cs].max()
    return np.maximum(z - (cs[kz - 1] - 1) / kz, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiclass_sparsemax_vs_optax_and_numpy(dtype):
    import optax

    x, y, _ = _classes(10, dtype, scale=1.0)
    x[0] = 0.0  # a tie of every class: sparsemax is uniform
    # optax's simplex projection breaks on float32 input when x64 is enabled (its custom JVP returns a float32
    # tangent for a float64 primal), so its reference is evaluated in float64 for both dtypes.
    v, g = ref_value_and_grads(lambda a: jnp.mean(optax.losses.multiclass_sparsemax_loss(a, y)), [x.astype(np.float64)])
    check_reference(jaxloss.multiclass_sparsemax, v, g, [x, y], dtype)
    # the gradient is sparsemax(s) - one_hot(y) (float64 NumPy sparsemax), per example
    p = np.stack([_sparsemax_np(row) for row in x])
    (grad,) = jax_value_and_grads(jaxloss.multiclass_sparsemax, [x, y], reduction="sum")[1]
    assert_close(grad, p - np.eye(C)[y], dtype)
    # the loss in closed form: <p, s> + (1 - |p|^2) / 2 - s_y
    x64 = x.astype(np.float64)
    loss = np.sum(p * x64, -1) + 0.5 * (1 - np.sum(p * p, -1)) - x64[np.arange(B), y]
    assert_close(jaxloss.multiclass_sparsemax(x, y, reduction="none"), loss, dtype)


def test_multiclass_sparsemax_hessian_is_sparsemax_jacobian():
    """Second order through the custom JVP: the Hessian is diag(S) - 1_S 1_S^T / |S| (support S)."""
    s = np.array([1.0, 0.5, -1.0, 0.8])
    p = _sparsemax_np(s)
    support = (p > 0).astype(np.float64)
    expected = np.diag(support) - np.outer(support, support) / support.sum()
    hess = jax.hessian(lambda a: jaxloss.multiclass_sparsemax(a, np.array(1)))(jnp.asarray(s))
    assert_close(hess, expected, np.float64)
