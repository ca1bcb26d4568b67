"""The models of the ghost-clipping benchmark, tests and example: an MLP, a small CNN (two Conv layers +
pooling + Dense) and a small transformer (token embedding, learned positions, 2 blocks of multi-head
attention with a padding mask + MLP, pre-LayerNorm, masked mean pooling, a Dense head), each written in Flax
NNX and in Equinox (the Equinox versions take one example, as Equinox models do), plus a plain-function MLP.

``build(framework, arch, batch_size, size="tiny", seed=0)`` returns ``(objective, params, batch)`` with
``objective = jaxloss.objective(model, jaxloss.cross_entropy)`` and ``params`` the model itself (NNX,
Equinox) or a params dict (``"plain"``). Batches: MLP ``(x [B, d], y)``, CNN ``(x [B, 8, 8, 1] (NHWC) or
[B, 1, 8, 8] (Equinox, CHW), y)``, transformer ``((tokens [B, T], mask [B, T]), y)`` with random lengths
``>= 2`` (padding after them).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxloss

SIZES = {
    # mlp: (d_in, hidden, classes); cnn: (channels 1, channels 2, classes); transformer: (vocab, d, heads, T, classes)
    "tiny": {"mlp": (8, 16, 4), "cnn": (4, 8, 4), "transformer": (11, 16, 2, 8, 4)},
    "bench": {"mlp": (64, 512, 10), "cnn": (16, 32, 10), "transformer": (1000, 64, 4, 32, 10)},
}


def _pool(x):
    """2x2 mean pooling of ``[..., H, W, C]`` (NHWC)."""
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // 2, 2, w // 2, 2, c).mean(axis=(-4, -2))


def _attend(q, k, v, mask, heads):
    """Multi-head attention of ``[..., T, d]`` with a key padding mask ``[..., T]``."""
    *lead, t, d = q.shape
    split = lambda z: z.reshape(*lead, t, heads, d // heads)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    s = jnp.einsum("...qhd,...khd->...hqk", q, k) / np.sqrt(d // heads)
    s = jnp.where(mask[..., None, None, :], s, -1e9)
    a = jax.nn.softmax(s, axis=-1)
    return jnp.einsum("...hqk,...khd->...qhd", a, v).reshape(*lead, t, d)


# ----------------------------------------------------------------------------------------------- Flax NNX


class NNXMLP(nnx.Module):
    def __init__(self, d, h, k, rngs):
        self.l1, self.l2, self.l3 = (
            nnx.Linear(d, h, rngs=rngs),
            nnx.Linear(h, h, rngs=rngs),
            nnx.Linear(h, k, rngs=rngs),
        )

    def __call__(self, x):
        return self.l3(jax.nn.relu(self.l2(jax.nn.relu(self.l1(x)))))


class NNXCNN(nnx.Module):
    def __init__(self, c1, c2, k, rngs):
        self.c1 = nnx.Conv(1, c1, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(c1, c2, (3, 3), rngs=rngs)
        self.out = nnx.Linear(2 * 2 * c2, k, rngs=rngs)

    def __call__(self, x):  # [B, 8, 8, 1]
        h = _pool(jax.nn.relu(self.c1(x)))
        h = _pool(jax.nn.relu(self.c2(h)))
        return self.out(h.reshape(h.shape[0], -1))


class NNXBlock(nnx.Module):
    def __init__(self, d, heads, rngs):
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.q, self.k, self.v, self.o = (nnx.Linear(d, d, rngs=rngs) for _ in range(4))
        self.up, self.down = nnx.Linear(d, 4 * d, rngs=rngs), nnx.Linear(4 * d, d, rngs=rngs)
        self.heads = heads

    def __call__(self, x, mask):
        h = self.ln1(x)
        x = x + self.o(_attend(self.q(h), self.k(h), self.v(h), mask, self.heads))
        return x + self.down(jax.nn.gelu(self.up(self.ln2(x))))


class NNXTransformer(nnx.Module):
    def __init__(self, vocab, d, heads, t, k, rngs):
        self.embed = nnx.Embed(vocab, d, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (t, d)))
        self.blocks = nnx.List([NNXBlock(d, heads, rngs) for _ in range(2)])
        self.ln = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, k, rngs=rngs)

    def __call__(self, inputs):
        tokens, mask = inputs
        x = self.embed(tokens) + self.pos[...]
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln(x)
        m = mask[..., None].astype(x.dtype)
        return self.head(jnp.sum(x * m, axis=-2) / jnp.maximum(jnp.sum(m, axis=-2), 1.0))


# ------------------------------------------------------------------------------------------------ Equinox


class EqxMLP(eqx.Module):
    layers: list

    def __init__(self, d, h, k, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.layers = [eqx.nn.Linear(d, h, key=k1), eqx.nn.Linear(h, h, key=k2), eqx.nn.Linear(h, k, key=k3)]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


class EqxCNN(eqx.Module):
    c1: eqx.nn.Conv2d
    c2: eqx.nn.Conv2d
    out: eqx.nn.Linear

    def __init__(self, c1, c2, k, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.c1 = eqx.nn.Conv2d(1, c1, 3, padding=1, key=k1)
        self.c2 = eqx.nn.Conv2d(c1, c2, 3, padding=1, key=k2)
        self.out = eqx.nn.Linear(2 * 2 * c2, k, key=k3)

    def __call__(self, x):  # [1, 8, 8] (CHW)
        def pool(z):
            c, h, w = z.shape
            return z.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))

        h = pool(jax.nn.relu(self.c1(x)))
        h = pool(jax.nn.relu(self.c2(h)))
        return self.out(h.reshape(-1))


class EqxBlock(eqx.Module):
    ln1: eqx.nn.LayerNorm
    ln2: eqx.nn.LayerNorm
    q: eqx.nn.Linear
    k: eqx.nn.Linear
    v: eqx.nn.Linear
    o: eqx.nn.Linear
    up: eqx.nn.Linear
    down: eqx.nn.Linear
    heads: int = eqx.field(static=True)

    def __init__(self, d, heads, key):
        ks = jax.random.split(key, 6)
        self.ln1, self.ln2 = eqx.nn.LayerNorm(d), eqx.nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (eqx.nn.Linear(d, d, key=kk) for kk in ks[:4])
        self.up, self.down = eqx.nn.Linear(d, 4 * d, key=ks[4]), eqx.nn.Linear(4 * d, d, key=ks[5])
        self.heads = heads

    def __call__(self, x, mask):  # [T, d], [T]
        per_token = lambda f, z: jax.vmap(f)(z)  # noqa: E731
        h = per_token(self.ln1, x)
        a = _attend(per_token(self.q, h), per_token(self.k, h), per_token(self.v, h), mask, self.heads)
        x = x + per_token(self.o, a)
        return x + per_token(self.down, jax.nn.gelu(per_token(self.up, per_token(self.ln2, x))))


class EqxTransformer(eqx.Module):
    embed: eqx.nn.Embedding
    pos: jax.Array
    blocks: list
    ln: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, vocab, d, heads, t, k, key):
        ks = jax.random.split(key, 5)
        self.embed = eqx.nn.Embedding(vocab, d, key=ks[0])
        self.pos = 0.02 * jax.random.normal(ks[1], (t, d))
        self.blocks = [EqxBlock(d, heads, ks[2]), EqxBlock(d, heads, ks[3])]
        self.ln = eqx.nn.LayerNorm(d)
        self.head = eqx.nn.Linear(d, k, key=ks[4])

    def __call__(self, inputs):  # one example: tokens [T], mask [T]
        tokens, mask = inputs
        x = jax.vmap(self.embed)(tokens) + self.pos
        for block in self.blocks:
            x = block(x, mask)
        x = jax.vmap(self.ln)(x)
        m = mask[:, None].astype(x.dtype)
        return self.head(jnp.sum(x * m, axis=0) / jnp.maximum(jnp.sum(m), 1.0))


# ---------------------------------------------------------------------------------------- plain function


def plain_mlp(params, x):
    h = x
    for w, b in params[:-1]:
        h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return h @ w + b


def _plain_params(d, h, k, seed):
    rng = np.random.default_rng(seed)
    sizes = [d, h, h, k]
    return [
        (
            jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32),
            jnp.asarray(0.1 * rng.normal(size=b), jnp.float32),
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]


# ------------------------------------------------------------------------------------------------- build


def make_batch(framework, arch, batch_size, size="tiny", seed=0):
    rng = np.random.default_rng(seed + 1)
    dims = SIZES[size][arch]
    k = dims[-1]
    y = jnp.asarray(rng.integers(0, k, size=batch_size))
    if arch == "mlp":
        return jnp.asarray(rng.normal(size=(batch_size, dims[0])), jnp.float32), y
    if arch == "cnn":
        x = jnp.asarray(rng.normal(size=(batch_size, 8, 8, 1)), jnp.float32)
        return (jnp.transpose(x, (0, 3, 1, 2)) if framework == "equinox" else x), y
    vocab, _, _, t, _ = dims
    tokens = jnp.asarray(rng.integers(0, vocab, size=(batch_size, t)))
    lengths = rng.integers(2, t + 1, size=batch_size)
    mask = jnp.asarray(np.arange(t)[None, :] < lengths[:, None])
    return (tokens, mask), y


def make_model(framework, arch, size="tiny", seed=0):
    dims = SIZES[size][arch]
    if framework == "nnx":
        cls = {"mlp": NNXMLP, "cnn": NNXCNN, "transformer": NNXTransformer}[arch]
        return cls(*dims, rngs=nnx.Rngs(seed))
    if framework == "equinox":
        cls = {"mlp": EqxMLP, "cnn": EqxCNN, "transformer": EqxTransformer}[arch]
        model = cls(*dims, key=jax.random.PRNGKey(seed))
        # float32 weights also when jax_enable_x64 is on (Equinox initialises in the default float dtype)
        return jax.tree_util.tree_map(lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, model)
    if framework == "plain" and arch == "mlp":
        return _plain_params(*dims, seed)
    raise ValueError(f"no {framework} {arch}")


def build(framework, arch, batch_size, size="tiny", seed=0):
    """``(objective, params, batch)`` of a model of the benchmark (see the module docstring)."""
    model = make_model(framework, arch, size, seed)
    if framework == "plain":
        return (
            jaxloss.objective(plain_mlp, jaxloss.cross_entropy),
            model,
            make_batch(framework, arch, batch_size, size, seed),
        )
    return jaxloss.objective(model, jaxloss.cross_entropy), model, make_batch(framework, arch, batch_size, size, seed)
