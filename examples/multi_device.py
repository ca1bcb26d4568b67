"""Training a small language model on 8 devices: data parallel and vocabulary parallel.

The output layer of a language model, ``hidden @ weight`` with ``weight`` of shape ``[hidden, vocab]``,
produces ``[tokens, vocab]`` logits: at 8192 tokens and a 131072-token vocabulary that is 4 GiB in float32,
kept again for the backward pass. :func:`jaxloss.linear_cross_entropy` computes the same loss and gradients
block by block, and under ``jax.jit`` with sharded inputs it runs on each device's shards:

* **data parallel** — tokens sharded over the mesh (``P("data")`` for the token ids, ``P("data", None)``
  for the hidden states), parameters replicated: each device works on its own tokens, and the weight
  gradient is summed across devices once;
* **vocabulary parallel** — the output weight sharded on its vocabulary axis (``P(None, "model")``),
  tokens replicated: each device computes the log-sum-exp and the label logit over its own classes and
  the devices combine ``[tokens]``-sized statistics; no device holds the whole weight, its gradient or
  logits wider than its shard;
* **both** on a 2-D mesh ``(data=4, model=2)``.

No mesh or axis name is passed to the loss: the shardings of its inputs say it all. This example trains a
small next-token model (embedding, one tanh layer, output projection) on a synthetic Markov-chain corpus on
8 simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set below before JAX is
imported), in each layout with the fused loss and, for comparison, the naive
``cross_entropy(hidden @ weight)``, and prints the per-device compiled temporary memory of one training
step and the loss. All layouts reach the same loss (they compute the same numbers); the memory column is
the point. The figure shows the loss curves and the memory per device.

Run from the repository root::

    python examples/multi_device.py            # ~1 min on a laptop CPU
    python examples/multi_device.py --quick    # a smoke run (a few steps)
    python examples/multi_device.py --out DIR  # where the PNG goes (default: out/)
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jaxloss  # noqa: E402


def corpus(rng, vocab, tokens):
    """Token pairs (previous, next) from a sparse random Markov chain over ``vocab`` tokens."""
    succ = rng.integers(0, vocab, size=(vocab, 4))  # each token has 4 likely successors
    seq = np.empty(tokens + 1, np.int32)
    seq[0] = 0
    for i in range(tokens):
        seq[i + 1] = succ[seq[i], rng.integers(0, 4)] if rng.uniform() < 0.9 else rng.integers(0, vocab)
    return seq[:-1], seq[1:]


def init(rng, vocab, dim):
    return {
        "embed": (rng.normal(size=(vocab, dim)) * 0.5).astype(np.float32),
        "w1": (rng.normal(size=(dim, dim)) / np.sqrt(dim)).astype(np.float32),
        "out": (rng.normal(size=(dim, vocab)) / np.sqrt(dim)).astype(np.float32),
    }


def hidden_states(params, prev):
    return jnp.tanh(params["embed"][prev] @ params["w1"])


def fused_loss(params, prev, nxt, chunk):
    return jaxloss.linear_cross_entropy(hidden_states(params, prev), params["out"], nxt, chunk_size=chunk)


def naive_loss(params, prev, nxt, chunk):
    return jaxloss.cross_entropy(hidden_states(params, prev) @ params["out"], nxt)


def make_step(loss, opt, chunk):
    def step(params, state, prev, nxt):
        value, grads = jax.value_and_grad(loss)(params, prev, nxt, chunk)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    return jax.jit(step, donate_argnums=(0, 1))


def layouts(devices):
    mesh1 = Mesh(np.array(devices), ("data",))
    meshv = Mesh(np.array(devices), ("model",))
    mesh2 = Mesh(np.array(devices).reshape(4, 2), ("data", "model"))
    n = lambda m, *s: NamedSharding(m, P(*s))  # noqa: E731
    # shardings of (embed, w1, out) and of the token ids
    return {
        "one device": None,
        "data parallel": (dict(embed=n(mesh1), w1=n(mesh1), out=n(mesh1)), n(mesh1, "data")),
        "vocabulary parallel": (dict(embed=n(meshv), w1=n(meshv), out=n(meshv, None, "model")), n(meshv)),
        "data x vocabulary (4 x 2)": (dict(embed=n(mesh2), w1=n(mesh2), out=n(mesh2, None, "model")), n(mesh2, "data")),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps at a small size (a smoke run)")
    parser.add_argument("--out", default="out", help="directory of the PNG")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    vocab, dim, tokens, steps, chunk = (1024, 32, 512, 5, 128) if args.quick else (8192, 64, 4096, 60, 1024)
    rng = np.random.default_rng(0)
    prev, nxt = corpus(rng, vocab, tokens)
    params0 = init(rng, vocab, dim)
    opt = optax.adam(3e-2)
    devices = jax.devices()[:8]
    one = jax.sharding.SingleDeviceSharding(devices[0])

    rows, curves = [], {}
    for name, layout in layouts(devices).items():
        psh, tsh = (dict(embed=one, w1=one, out=one), one) if layout is None else layout
        for path, loss in (("fused", fused_loss), ("naive", naive_loss)):
            params = {k: jax.device_put(v, psh[k]) for k, v in params0.items()}
            state = opt.init(params)
            toks = [jax.device_put(a, tsh) for a in (prev, nxt)]
            step = make_step(loss, opt, chunk)
            mem = step.lower(params, state, *toks).compile().memory_analysis().temp_size_in_bytes / 2**20
            history = []
            for _ in range(steps if path == "fused" else 1):  # the naive path: one step, for its memory and loss
                params, state, value = step(params, state, *toks)
                history.append(float(value))
            out_spec = params["out"].sharding.spec if hasattr(params["out"].sharding, "spec") else "(one device)"
            rows.append((name, path, mem, history[0], history[-1], str(out_spec)))
            if path == "fused":
                curves[name] = history

    print(
        f"{vocab=} {dim=} {tokens=} {steps=} chunk_size={chunk}; per-device compiled temp memory of one training step"
    )
    print(
        f"{'layout':28s} {'loss path':9s} {'temp MiB/device':>16s} {'loss step 1':>12s} {'loss last':>10s}  weight sharding"
    )
    for name, path, mem, first, last, spec in rows:
        last_s = f"{last:10.4f}" if path == "fused" else f"{'':10s}"
        print(f"{name:28s} {path:9s} {mem:16.2f} {first:12.4f} {last_s}  {spec}")

    os.makedirs(args.out, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, hist in curves.items():
        ax1.plot(np.arange(1, len(hist) + 1), hist, label=name)
    ax1.set(xlabel="step", ylabel="mean next-token cross-entropy", title="linear_cross_entropy, 8 CPU devices")
    ax1.legend()
    names = list(curves)
    x = np.arange(len(names))
    for path, off in (("fused", -0.2), ("naive", 0.2)):
        ax2.bar(x + off, [m for n in names for (nm, p, m, *_) in rows if nm == n and p == path], 0.4, label=path)
    ax2.set_xticks(x, [n.replace(" (", "\n(").replace(" parallel", "\nparallel") for n in names], fontsize=8)
    ax2.set(ylabel="compiled temp MiB per device", title="memory of one training step")
    ax2.legend()
    fig.tight_layout()
    path = os.path.join(args.out, "multi_device.png")
    fig.savefig(path, dpi=100)
    print(f"figure: {path}; {time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
