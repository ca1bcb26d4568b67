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
    with pytest.raises(ValueError, match=r"where with shape \(3,\) does not broadcast to the unreduced loss, of shape \(8, 4\)"):
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
