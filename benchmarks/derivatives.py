"""Closed-form derivative rules (design section 12): ``value_and_grad`` at 2^22 float32 elements of the plain
formula ("before": the elementwise formula differentiated by JAX's generic rules, as jaxloss computed it
before the rule), jaxloss (with the rule) and optax, in one process, interleaved round-robin, median of
repeats. A rule is kept only where ``jaxloss / plain < 1``.

    python -m benchmarks.derivatives [--repeats 21] [--size 4194304]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import jaxloss


def _plain_huber(p, t):
    a = jnp.abs(p - t)
    q = jnp.minimum(a, 1.0)
    return jnp.mean(0.5 * q * q + (a - q))


def _plain_log_cosh(p, t):
    e = p - t
    return jnp.mean(jnp.logaddexp(e, -e) - 0.6931471805599453)


def _plain_bce(x, y):
    return jnp.mean(-(y * jax.nn.log_sigmoid(x) + (1.0 - y) * jax.nn.log_sigmoid(-x)))


CASES = {
    "huber": (_plain_huber, lambda p, t: jaxloss.huber(p, t), lambda p, t: jnp.mean(optax.huber_loss(p, t, delta=1.0))),
    "log_cosh": (_plain_log_cosh, lambda p, t: jaxloss.log_cosh(p, t), lambda p, t: jnp.mean(optax.log_cosh(p, t))),
    "binary_cross_entropy": (
        _plain_bce,
        lambda x, y: jaxloss.binary_cross_entropy(x, y),
        lambda x, y: jnp.mean(optax.sigmoid_binary_cross_entropy(x, y)),
    ),
}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--size", type=int, default=2**22)
    args = ap.parse_args(argv)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    p = jax.random.normal(k1, (args.size,), jnp.float32) * 2.0
    t = jax.random.normal(k2, (args.size,), jnp.float32)
    y = (t > 0).astype(jnp.float32)
    print(
        f"value_and_grad, {args.size} float32 elements, {jax.devices()[0].platform}, median of {args.repeats} interleaved runs"
    )
    print("| loss | plain formula ms | jaxloss ms | optax ms | jaxloss/plain | jaxloss/optax |")
    print("|---|---|---|---|---|---|")
    for name, fns in CASES.items():
        inputs = (p, y) if name == "binary_cross_entropy" else (p, t)
        jitted = [jax.jit(jax.value_and_grad(f)) for f in fns]
        for f in jitted:
            jax.block_until_ready(f(*inputs))
        times = [[] for _ in jitted]
        for _ in range(args.repeats):
            for f, ts in zip(jitted, times):
                s = time.perf_counter()
                jax.block_until_ready(f(*inputs))
                ts.append(time.perf_counter() - s)
        m = [statistics.median(ts) * 1e3 for ts in times]
        print(f"| {name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[1] / m[0]:.2f} | {m[1] / m[2]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
