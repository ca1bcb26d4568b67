"""Tests of the model adapter (jaxloss._models) through the public entry points.

References: each framework's own API (``nnx.grad`` / ``nnx.split``, ``eqx.filter_grad``, ``module.apply`` with
``mutable=``) in a Python loop over single examples for per-example gradients; a float64 NumPy log-softmax
cross-entropy of the framework's own forward pass for objective values; plain SGD ``p - lr * g`` with the
framework-native gradient for a training step; flax's own ``BatchNorm`` update (``mutable=["batch_stats"]``)
for the carried statistics.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxloss

tmap = jax.tree_util.tree_map
N, D, K = 5, 3, 3
_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(N, D)), jnp.float32)
Y = jnp.asarray(_rng.integers(0, K, size=N))


def _np_ce(logits, y):
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(y)), np.asarray(y)]))


def _ce(logits, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def _close(a, b, rtol=1e-5, atol=1e-6):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)
    assert len(jax.tree_util.tree_leaves(a)) == len(jax.tree_util.tree_leaves(b))


# ------------------------------------------------------------------------------------------------- models


class NNXNet(nnx.Module):
    def __init__(self, rngs, batch_norm=True):
        self.l1 = nnx.Linear(D, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs) if batch_norm else None
        self.l2 = nnx.Linear(4, K, rngs=rngs)

    def __call__(self, x):
        h = self.l1(x)
        if self.bn is not None:
            h = self.bn(h)
        return self.l2(jnp.tanh(h))


class LinenNet(nn.Module):
    train: bool = True

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(4)(x)
        h = nn.BatchNorm(use_running_average=not self.train, momentum=0.9)(h)
        return nn.Dense(K)(jnp.tanh(h))


class EqxNet(eqx.Module):
    lin1: eqx.nn.Linear
    lin2: eqx.nn.Linear
    act: callable = eqx.field(static=True)  # a static field: held, never differentiated
    scale: float = 2.0  # a Python float field: held too (not an inexact array)

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.lin1 = eqx.nn.Linear(D, 4, key=k1)
        self.lin2 = eqx.nn.Linear(4, K, key=k2)
        self.act = jax.nn.relu  # a custom_jvp function: not a JAX type

    def __call__(self, x):  # one example
        return self.lin2(self.act(self.lin1(x) * self.scale))


def _plain(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


PLAIN = {
    "w1": jnp.asarray(_rng.normal(size=(D, 4)), jnp.float32),
    "b1": jnp.asarray(_rng.normal(size=4), jnp.float32),
    "w2": jnp.asarray(_rng.normal(size=(4, K)), jnp.float32),
}


# ------------------------------------------------------------------------------------ the issue's repros


def test_objective_of_an_nnx_module_reproduces_issue_9():
    """issue 9: ``objective(nnx_module, ...)`` failed with '__call__() takes 2 positional arguments but 3 were
    given'; its value is the float64 cross-entropy of the module's own outputs."""
    m = NNXNet(nnx.Rngs(0), batch_norm=False)
    obj = jaxloss.objective(m, jaxloss.cross_entropy)
    assert abs(float(obj(m, (X, Y))) - _np_ce(m(X), Y)) < 1e-6
    _, state = nnx.split(m)  # the State form works too
    assert abs(float(obj(state, (X, Y))) - _np_ce(m(X), Y)) < 1e-6


def test_per_sample_grads_of_an_equinox_module_reproduces_issue_9():
    """issue 9: ``per_sample_grads(obj, eqx_module, batch)`` failed with 'custom_jvp ... is not a valid JAX
    type'; the result equals a loop of ``eqx.filter_grad`` over single examples."""
    m = EqxNet(jax.random.PRNGKey(0))
    obj = jaxloss.objective(m, jaxloss.cross_entropy)
    got = jaxloss.per_sample_grads(obj, m, (X, Y))
    for i in range(N):

        def loss(model):
            return _ce(jax.vmap(model)(X[i : i + 1]), Y[i : i + 1])

        ref = eqx.filter_grad(loss)(m)
        _close(tmap(lambda g: g[i], got), ref)
    assert got.act is jax.nn.relu or got.act is None  # static field held, not differentiated
    assert abs(float(obj(m, (X, Y))) - _np_ce(jax.vmap(m)(X), Y)) < 1e-6


# ------------------------------------------------------------------------------------------- per framework


def test_nnx_per_sample_grads_and_norms_equal_a_loop_of_nnx_grad():
    m = NNXNet(nnx.Rngs(1))
    m.eval()  # BatchNorm on running statistics: examples independent
    obj = jaxloss.objective(m, jaxloss.cross_entropy)
    got = jaxloss.per_sample_grads(obj, m, (X, Y))
    assert isinstance(got, nnx.State)
    refs = []
    for i in range(N):
        ref = nnx.grad(lambda mod: _ce(mod(X[i : i + 1]), Y[i : i + 1]))(m)  # grads of nnx.Param only
        refs.append(ref)
        _close(tmap(lambda g: g[i], got), ref)
    norms = jaxloss.per_sample_grad_norms(obj, m, (X, Y))
    ref_norms = [np.sqrt(sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(r))) for r in refs]
    np.testing.assert_allclose(np.asarray(norms), ref_norms, rtol=1e-5)
    losses = jaxloss.per_sample_losses(obj, m, (X, Y))
    np.testing.assert_allclose(np.asarray(losses), [_np_ce(m(X[i : i + 1]), Y[i : i + 1]) for i in range(N)], rtol=1e-5)


def test_nnx_train_step_updates_the_module_in_place_and_returns_the_state_form():
    lr = 0.1
    m = NNXNet(nnx.Rngs(2))
    obj = jaxloss.objective(m, jaxloss.cross_entropy)
    ref_model = nnx.clone(m)
    grads = nnx.grad(lambda mod: _ce(mod(X), Y))(ref_model)  # also updates ref_model's BatchStat
    ref_params = tmap(lambda p, g: p - lr * g, nnx.state(ref_model, nnx.Param), grads)
    step = jaxloss.train_step(obj, optax.sgd(lr))
    out, _, metrics = step(m, step.init(m), (X, Y))
    assert out is m  # in place
    _close(nnx.state(m, nnx.Param), ref_params)
    _close(nnx.state(m, nnx.BatchStat), nnx.state(ref_model, nnx.BatchStat))
    assert float(jnp.abs(m.bn.mean[...]).sum()) > 0  # the running mean moved
    assert abs(float(metrics["loss"]) - _np_ce(NNXNet(nnx.Rngs(2))(X), Y)) < 1e-5
    # the State form: a State comes back, the module given to the objective untouched
    m2 = NNXNet(nnx.Rngs(2))
    graphdef, state = nnx.split(m2)
    new_state, _, _ = step(state, step.init(state), (X, Y))
    assert isinstance(new_state, nnx.State)
    _close(nnx.split_state(new_state, nnx.Param, ...)[0], ref_params)
    _close(nnx.split_state(new_state, nnx.Param, ...)[1], nnx.state(ref_model, nnx.BatchStat))
    res = jaxloss.fit(obj, NNXNet(nnx.Rngs(2)), [(X, Y)], optax.sgd(lr), epochs=1)
    _close(nnx.state(res.params, nnx.Param), ref_params)


def test_linen_batch_stats_carried_not_differentiated():
    lr = 0.1
    module = LinenNet()
    variables = module.init(jax.random.PRNGKey(0), X)
    obj = jaxloss.objective(module, jaxloss.cross_entropy)

    def ref_loss(params):
        out, upd = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, X, mutable=["batch_stats"])
        return _ce(out, Y), upd

    (value, upd), grads = jax.value_and_grad(ref_loss, has_aux=True)(variables["params"])
    assert abs(float(obj(variables, (X, Y))) - float(value)) < 1e-6
    step = jaxloss.train_step(obj, optax.sgd(lr))
    new, _, _ = step(variables, step.init(variables), (X, Y))
    assert set(new) == {"params", "batch_stats"}
    _close(new["params"], tmap(lambda p, g: p - lr * g, variables["params"], grads))
    _close(new["batch_stats"], upd["batch_stats"])  # flax's own BatchNorm update, not a gradient step
    # per-example gradients of the eval-mode module: only {"params"}, equal to a loop of jax.grad
    eval_obj = jaxloss.objective(LinenNet(train=False), jaxloss.cross_entropy)
    got = jaxloss.per_sample_grads(eval_obj, new, (X, Y))
    assert set(got) == {"params"}
    for i in range(N):
        ref = jax.grad(
            lambda p: _ce(
                LinenNet(train=False).apply({"params": p, "batch_stats": new["batch_stats"]}, X[i : i + 1]),
                Y[i : i + 1],
            )
        )(new["params"])
        _close(tmap(lambda g: g[i], got["params"]), ref)


def test_plain_function_and_equinox_through_every_entry_point():
    obj = jaxloss.objective(_plain, jaxloss.cross_entropy)
    assert abs(float(obj(PLAIN, (X, Y))) - _np_ce(_plain(PLAIN, X), Y)) < 1e-6
    got = jaxloss.per_sample_grads(obj, PLAIN, (X, Y))
    for i in range(N):
        _close(tmap(lambda g: g[i], got), jax.grad(lambda p: _ce(_plain(p, X[i : i + 1]), Y[i : i + 1]))(PLAIN))
    m = EqxNet(jax.random.PRNGKey(3))
    eobj = jaxloss.objective(m, jaxloss.cross_entropy)
    ref = [eqx.filter_grad(lambda mod: _ce(jax.vmap(mod)(X[i : i + 1]), Y[i : i + 1]))(m) for i in range(N)]
    ref_norms = np.array([np.sqrt(sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(r))) for r in ref])
    out = jaxloss.clipped_mean_grad(eobj, m, (X, Y), max_norm=0.5)
    np.testing.assert_allclose(np.asarray(out.norms), ref_norms, rtol=1e-5)
    clip = np.minimum(1.0, 0.5 / ref_norms)
    expect = tmap(lambda *gs: sum(c * g for c, g in zip(clip, gs)) / N, *ref)
    _close(out.grads, expect, rtol=1e-5, atol=1e-7)
    st = jaxloss.grad_statistics(eobj, m, (X, Y))
    _close(st.mean, tmap(lambda *gs: sum(gs) / N, *ref), rtol=1e-5, atol=1e-7)
    infl = jaxloss.tracin_influence(eobj, m, (X[:2], Y[:2]), (X[2:4], Y[2:4]))
    dots = [
        [
            sum(
                float(jnp.vdot(a, b))
                for a, b in zip(jax.tree_util.tree_leaves(ref[i]), jax.tree_util.tree_leaves(ref[j]))
            )
            for j in (2, 3)
        ]
        for i in (0, 1)
    ]
    np.testing.assert_allclose(np.asarray(infl), dots, rtol=1e-5)
    # minimize and fit keep the module form; the static fields come back unchanged
    res = jaxloss.minimize(eobj, m, (X, Y), optax.sgd(0.1), max_steps=1, tol=0.0)
    assert isinstance(res.params, EqxNet) and res.params.act is jax.nn.relu
    full = eqx.filter_grad(lambda mod: _ce(jax.vmap(mod)(X), Y))(m)
    _close(
        eqx.filter(res.params, eqx.is_inexact_array),
        tmap(lambda p, g: p - 0.1 * g, eqx.filter(m, eqx.is_inexact_array), full),
    )


def test_adapter_rejects_a_non_model():
    with pytest.raises(TypeError, match="model must be"):
        jaxloss.objective(3, jaxloss.mse)
