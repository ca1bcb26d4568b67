"""linear_cross_entropy: the cross-entropy of ``hidden @ weight + bias`` without materialising the logits.

References: PyTorch's ``torch.nn.functional.linear_cross_entropy`` (reference path, weight ``[V, H]``) and
jaxloss's own ``cross_entropy`` on the materialised logits (the "naive" path the fused loss must equal;
``cross_entropy`` itself is checked against PyTorch in test_classification.py). Odd vocabulary sizes and
chunk sizes that do not divide them exercise the tail chunk; ``reduction="none"`` and bf16 weights take the
recomputing path, ``"mean"``/``"sum"`` with float32/float64 weights the one-pass-gradient path. The generic
contract checks run on its case in ``tests/cases_fused.py`` (``tests/test_contract.py``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import harness
import jaxloss
from harness import assert_close

H, V = 6, 37  # 37 classes: no chunk size below divides it


def _data(dtype, n=9, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    h = (rng.normal(size=(n, H)) * scale).astype(dtype)
    w = (rng.normal(size=(H, V)) * scale).astype(dtype)
    b = rng.normal(size=(V,)).astype(dtype)
    y = rng.integers(0, V, size=n)
    return h, w, b, y


def _naive(h, w, b, y, **kw):
    return jaxloss.cross_entropy(h @ w + b, y, **kw)


def _fused(h, w, b, y, **kw):
    return jaxloss.linear_cross_entropy(h, w, y, bias=b, **kw)


def _value_and_grads(fn, h, w, b, y, **kw):
    f = lambda h, w, b: jnp.sum(fn(h, w, b, y, **kw))  # noqa: E731
    v, g = jax.jit(jax.value_and_grad(f, (0, 1, 2)))(h, w, b)
    return np.asarray(v), [np.asarray(x) for x in g]


OPTIONS = [
    dict(),
    dict(label_smoothing=0.2, z_loss=1e-2),
    dict(ignore_index=3, label_smoothing=0.1),
    dict(where="mask", weights="weights", z_loss=1e-3),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "dtype,options", [(np.float32, i) for i in range(len(OPTIONS))] + [(np.float64, 1), (np.float64, 3)]
)
def test_equals_naive_cross_entropy(dtype, options, reduction):
    """Value and grads (hidden, weight, bias) equal jaxloss.cross_entropy on the materialised logits."""
    h, w, b, y = _data(dtype)
    kw = dict(OPTIONS[options], reduction=reduction)
    rng = np.random.default_rng(1)
    if kw.get("where") == "mask":
        kw["where"] = rng.uniform(size=y.shape) > 0.3
        kw["weights"] = rng.uniform(0.5, 2.0, size=y.shape).astype(dtype)
    if "ignore_index" in kw:
        y[[1, 4]] = 3
    v2, g2 = _value_and_grads(_naive, h, w, b, y, **kw)
    rtol = 2e-5 if dtype == np.float32 else 1e-10
    # chunk 8: vocabulary chunks (recomputing backward); chunk 64: one row block (one-pass gradients)
    for chunk in (8, 64):
        v1, g1 = _value_and_grads(_fused, h, w, b, y, chunk_size=chunk, **kw)
        assert_close(v1, v2, dtype, rtol=rtol, atol=rtol)
        for a, c, name in zip(g1, g2, ("hidden", "weight", "bias")):
            assert_close(a, c, dtype, rtol=rtol, atol=rtol, err_msg=f"{name}, chunk {chunk}")
    # the plain forward (no gradient) takes the online log-sum-exp path
    assert_close(_fused(h, w, b, y, chunk_size=8, **kw), _naive(h, w, b, y, **kw), dtype, rtol=rtol, atol=rtol)


def test_algorithm_choice():
    """The shapes used in these tests reach both algorithms (see linear_cross_entropy's docstring)."""
    from jaxloss import fused

    assert not fused._rows_fit(9, V, 8) and fused._rows_fit(9, V, 64)  # test_equals_naive_cross_entropy
    assert fused._row_block(200, V, 20) == 108  # test_chunk_sizes_and_no_bias: two row blocks, one a tail
    assert not fused._rows_fit(200, V, 5) and fused._rows_fit(200, V, 20)
    assert fused._rows_fit(8192, 131072, 4096) and fused._row_block(8192, 131072, 4096) == 256  # the benchmark


@pytest.mark.parametrize("dtype", harness.DTYPES)
def test_pytorch_linear_cross_entropy(dtype):
    """Reference: torch.nn.functional.linear_cross_entropy (weight [V, H], so jaxloss's weight.T)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("this PyTorch has no linear_cross_entropy")
    h, w, b, y = _data(dtype)
    y[2] = 5
    for reduction in ("mean", "sum"):
        kw = dict(label_smoothing=0.1, ignore_index=5, reduction=reduction)

        def tfn(h, w, b, y):
            return F.linear_cross_entropy(h, w.T, y, linear_bias=b, **kw)

        ref_v, ref_g = harness.torch_value_and_grads(tfn, (h, w, b, y), argnums=(0, 1, 2))
        harness.check_reference(
            lambda h, w, b, y: jaxloss.linear_cross_entropy(h, w, y, bias=b, chunk_size=10, **kw),
            ref_v,
            ref_g,
            (h, w, b, y),
            dtype,
            argnums=(0, 1, 2),
            rtol=1e-5 if dtype == np.float32 else None,
        )


def test_chunk_sizes_and_no_bias():
    """Any chunk size (1, dividing or not, larger than the vocabulary) gives the naive values."""
    h, w, b, y = _data(np.float64, n=200)  # chunk 20: row blocks of 108 rows, the second a tail of 92
    v2, g2 = _value_and_grads(
        lambda h, w, b, y, **kw: jaxloss.cross_entropy(h @ w, y, **kw), h, w, b, y, label_smoothing=0.3
    )
    for chunk in (1, 5, 20, 37, 1000):
        for reduction in ("mean", "none"):
            fn = lambda h, w, b, y, **kw: jaxloss.linear_cross_entropy(h, w, y, chunk_size=chunk, **kw)  # noqa: E731
            v1, g1 = _value_and_grads(fn, h, w, b, y, label_smoothing=0.3, reduction=reduction)
            scale = 1.0 if reduction == "mean" else len(y)
            assert_close(v1, v2 * scale, np.float64, err_msg=f"chunk {chunk}")
            for a, c in zip(g1[:2], g2[:2]):
                assert_close(a, c * scale, np.float64, err_msg=f"chunk {chunk}")
            assert np.all(g1[2] == 0)


def test_vmap_grad_and_traced_hyperparameters():
    """vmap over sequences, grad w.r.t. label_smoothing / z_loss, equal the naive path's."""
    rng = np.random.default_rng(2)
    h = rng.normal(size=(3, 5, H)).astype(np.float32)
    w, b = _data(np.float32)[1:3]
    y = rng.integers(0, V, size=(3, 5))
    for reduction in ("mean", "none"):

        def loss(fn, h, w, y, eps, z):
            return jnp.sum(
                jax.vmap(lambda hh, yy: fn(hh, w, b, yy, label_smoothing=eps, z_loss=z, reduction=reduction))(h, y)
            )

        fused = jax.jit(jax.value_and_grad(lambda *a: loss(_fused, *a[:3], *a[3:]), (0, 1, 3, 4)))
        naive = jax.value_and_grad(lambda *a: loss(_naive, *a[:3], *a[3:]), (0, 1, 3, 4))
        args = (h, w, y, jnp.float32(0.1), jnp.float32(0.01))
        (v1, g1), (v2, g2) = fused(*args), naive(*args)
        assert_close(v1, v2, np.float32, rtol=1e-5)
        for a, c in zip(g1, g2):
            assert_close(a, c, np.float32, rtol=1e-5, atol=1e-6)


def test_bfloat16_inputs_are_reduced_in_float32():
    """bf16 in: bf16 value and gradients, equal to float32 on the same (bf16-rounded) inputs."""
    h, w, b, y = (jnp.asarray(a, jnp.bfloat16) if a.dtype != np.int64 else a for a in _data(np.float32))
    up = [jnp.asarray(a, jnp.float32) for a in (h, w, b)]
    for reduction in ("mean", "none"):
        v1, g1 = jax.value_and_grad(lambda *a: jnp.sum(_fused(*a, y, chunk_size=8, reduction=reduction)), (0, 1, 2))(
            h, w, b
        )
        v2, g2 = jax.value_and_grad(lambda *a: jnp.sum(_naive(*a, y, reduction=reduction)), (0, 1, 2))(*up)
        assert v1.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in g1)
        assert_close(v1, v2, np.float32, rtol=1e-2, atol=1e-2)
        for a, c in zip(g1, g2):
            assert_close(a, c, np.float32, rtol=2e-2, atol=1e-2)
    # bf16 hidden with a float32 weight: float32 result (the result dtype of the inputs), one-pass gradients
    v1, g1 = jax.value_and_grad(lambda h: _fused(h, up[1], up[2], y, chunk_size=64), 0)(h)
    v2, g2 = jax.value_and_grad(lambda h: _naive(h, up[1], up[2], y))(up[0])
    assert v1.dtype == jnp.float32 and g1.dtype == jnp.bfloat16
    assert_close(v1, v2, np.float32, rtol=1e-5)
    assert_close(g1, g2, np.float32, rtol=2e-2, atol=1e-2)


def test_labels_out_of_range_and_errors():
    h, w, b, y = _data(np.float32)
    y[0] = V
    assert np.isnan(jaxloss.linear_cross_entropy(h, w, y))
    assert np.isnan(jaxloss.linear_cross_entropy(h, w, y, reduction="none")[0])
    err, _ = jaxloss.checked(jaxloss.linear_cross_entropy)(h, w, y)
    with pytest.raises(Exception, match="labels must lie in"):
        err.throw()
    y[0] = 0
    with pytest.raises(ValueError, match=r"probability labels must have .*\(9, 37\).*labels.shape=\(9,\)"):
        jaxloss.linear_cross_entropy(h, w, y.astype(np.float32))  # float labels are probability targets
    with pytest.raises(TypeError, match="integer labels or float probabilities"):
        jaxloss.linear_cross_entropy(h, w, y.astype(np.complex64))
    with pytest.raises(ValueError, match="ignore_index applies to integer labels only"):
        jaxloss.linear_cross_entropy(h, w, np.full((9, V), 1.0 / V, np.float32), ignore_index=0)
    with pytest.raises(ValueError, match=r"class_weights"):
        jaxloss.linear_cross_entropy(h, w, y, class_weights=np.ones(V - 1, np.float32))
    with pytest.raises(ValueError, match=r"\(6, vocab\).*weight.shape=\(37, 6\)"):
        jaxloss.linear_cross_entropy(h, w.T, y)
    with pytest.raises(ValueError, match=r"bias.shape=\(36,\)"):
        jaxloss.linear_cross_entropy(h, w, y, bias=b[:-1])
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.linear_cross_entropy(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        jaxloss.linear_cross_entropy(h, w, y, label_smoothing=1.5)


def _temp_bytes(fn, *args):
    return jax.jit(jax.value_and_grad(fn, (0, 1))).lower(*args).compile().memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("reduction", ["mean", "none"])  # one-pass row blocks / recomputed vocabulary chunks
def test_compiled_memory_is_far_below_the_naive_path(reduction):
    """Compiled temp memory of value_and_grad (compile only, nothing runs): the [N, V] logits are never held."""
    n, hidden, vocab, chunk = 1024, 64, 8192, 512
    args = (
        jax.ShapeDtypeStruct((n, hidden), jnp.float32),
        jax.ShapeDtypeStruct((hidden, vocab), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    fused = _temp_bytes(
        lambda h, w, y: jnp.sum(jaxloss.linear_cross_entropy(h, w, y, chunk_size=chunk, reduction=reduction)), *args
    )
    naive = _temp_bytes(lambda h, w, y: jnp.sum(jaxloss.cross_entropy(h @ w, y, reduction=reduction)), *args)
    logits_bytes = n * vocab * 4
    assert naive >= logits_bytes  # the naive path keeps at least the logits for its backward pass
    assert fused * 8 <= naive, (fused, naive)
    assert fused <= 4 * n * chunk * 4 + 8 * n * hidden * 4, (fused, naive)  # a few blocks, no [N, V] array


def _targets(kind, y, dtype, seed=3):
    """Integer labels, or probability targets (Dirichlet rows) for the same tokens."""
    if kind == "labels":
        return y
    return np.random.default_rng(seed).dirichlet(np.ones(V) * 0.3, size=len(y)).astype(dtype)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("kind,class_weights", [("labels", True), ("probs", False), ("probs", True)])
def test_class_weights_and_probability_targets_equal_naive(kind, class_weights, reduction):
    """class_weights= and probability targets: value and grads equal jaxloss.cross_entropy on the logits,
    on both algorithms (chunk 8: recomputed chunks; chunk 64: one pass), with smoothing, z-loss and a mask."""
    h, w, b, y = _data(np.float32)
    t = _targets(kind, y, np.float32)
    rng = np.random.default_rng(4)
    kw = dict(
        label_smoothing=0.1,
        z_loss=1e-3,
        reduction=reduction,
        where=rng.uniform(size=len(y)) > 0.2,
        weights=rng.uniform(0.5, 2.0, size=len(y)).astype(np.float32),
    )
    if class_weights:
        kw["class_weights"] = rng.uniform(0.2, 3.0, size=V).astype(np.float32)
    v2, g2 = _value_and_grads(_naive, h, w, b, t, **kw)
    for chunk in (8, 64):
        v1, g1 = _value_and_grads(_fused, h, w, b, t, chunk_size=chunk, **kw)
        assert_close(v1, v2, np.float32, rtol=2e-5, atol=2e-5, err_msg=f"chunk {chunk}")
        for a, c, name in zip(g1, g2, ("hidden", "weight", "bias")):
            assert_close(a, c, np.float32, rtol=2e-5, atol=2e-5, err_msg=f"{name}, chunk {chunk}")


@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_pytorch_class_weights_and_probability_targets(kind):
    """Reference: torch.nn.functional.cross_entropy(h @ w + b, target, weight=, label_smoothing=) in float64."""
    torch = pytest.importorskip("torch")
    h, w, b, y = _data(np.float64)
    t = _targets(kind, y, np.float64)
    cw = np.random.default_rng(5).uniform(0.2, 3.0, size=V)
    for reduction in ("mean", "sum"):

        def tfn(h, w, b, t):
            return torch.nn.functional.cross_entropy(
                h @ w + b, t, weight=torch.tensor(cw), label_smoothing=0.2, reduction=reduction
            )

        ref_v, ref_g = harness.torch_value_and_grads(tfn, (h, w, b, t), argnums=(0, 1, 2))
        harness.check_reference(
            lambda h, w, b, t: jaxloss.linear_cross_entropy(
                h, w, t, bias=b, class_weights=cw, label_smoothing=0.2, chunk_size=10, reduction=reduction
            ),
            ref_v,
            ref_g,
            (h, w, b, t),
            np.float64,
            argnums=(0, 1, 2),
        )
