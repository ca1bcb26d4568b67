"""Closed-form derivative rules (design section 12): ``value_and_grad`` at 2^22 float32 elements of the plain
formula ("plain": the elementwise formula differentiated by JAX's generic rules, reduced by the same fused
``_core.full_sum`` as jaxloss, so that only the derivative rule differs), jaxloss (with the rule), optax, and
the plain formula under ``jnp.mean`` (XLA:CPU's YNNPACK reduction, what jaxloss computed before the fused
sum), in one process, interleaved round-robin, median of repeats. A rule is kept only where
``jaxloss / plain < 1``.

    python -m benchmarks.derivatives [--repeats 21] [--size 4194304] [--torch-compile]

``--torch-compile`` adds PyTorch's ``torch.compile`` (forward + ``backward()``) of the same loss, timed after
the JAX candidates of each loss (PyTorch's OpenMP threads spin after a call and would slow a JAX call that
follows), with a fresh dynamo cache per loss, static shapes, both warm-up calls compiled before timing, and
a check that nothing recompiles while timed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from benchmarks.run import _dynamo_graphs, _warm_up_torch
from jaxloss import _core


def _huber_el(p, t):
    a = jnp.abs(p - t)
    q = jnp.minimum(a, 1.0)
    return 0.5 * q * q + (a - q)


def _log_cosh_el(p, t):
    e = p - t
    return jnp.logaddexp(e, -e) - 0.6931471805599453


def _bce_el(x, y):
    return -(y * jax.nn.log_sigmoid(x) + (1.0 - y) * jax.nn.log_sigmoid(-x))


def _focal_el(x, y, gamma=2.0):
    m = y * jax.nn.sigmoid(-x) + (1.0 - y) * jax.nn.sigmoid(x)
    return _bce_el(x, y) * m**gamma


def _fused_mean(el):
    return lambda a, b: _core.full_sum(el(a, b)) / a.size


def _jnp_mean(el):
    return lambda a, b: jnp.mean(el(a, b))


CASES = {
    "huber": (_huber_el, lambda p, t: jaxloss.huber(p, t), lambda p, t: jnp.mean(optax.huber_loss(p, t, delta=1.0))),
    "log_cosh": (_log_cosh_el, lambda p, t: jaxloss.log_cosh(p, t), lambda p, t: jnp.mean(optax.log_cosh(p, t))),
    "binary_cross_entropy": (
        _bce_el,
        lambda x, y: jaxloss.binary_cross_entropy(x, y),
        lambda x, y: jnp.mean(optax.sigmoid_binary_cross_entropy(x, y)),
    ),
    "focal": (
        _focal_el,
        lambda x, y: jaxloss.focal(x, y, gamma=2.0),
        lambda x, y: jnp.mean(optax.sigmoid_focal_loss(x, y, gamma=2.0)),
    ),
}


def _torch_losses():
    import torch
    import torch.nn.functional as F

    def huber(p, t):
        return F.huber_loss(p, t, delta=1.0)

    def log_cosh(p, t):  # the stable formula (no built-in)
        e = (p - t).abs()
        return (e + F.softplus(-2.0 * e) - math.log(2.0)).mean()

    def bce(x, y):
        return F.binary_cross_entropy_with_logits(x, y)

    def focal(x, y, gamma=2.0):  # torchvision's sigmoid_focal_loss without alpha (as the JAX cases), mean
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        return (ce * (1 - p_t) ** gamma).mean()

    return torch, {"huber": huber, "log_cosh": log_cosh, "binary_cross_entropy": bce, "focal": focal}


def _time_torch_compile(torch, fn, inputs, repeats):
    """Median ms of ``torch.compile(fn)`` forward + backward w.r.t. the first input, and whether it recompiled."""
    torch._dynamo.reset()
    compiled = torch.compile(fn, dynamic=False)
    a = torch.from_numpy(np.array(inputs[0])).requires_grad_(True)
    rest = [torch.from_numpy(np.array(v)) for v in inputs[1:]]

    def step():
        a.grad = None
        compiled(a, *rest).backward()

    _warm_up_torch(step)  # the first calls after compiling ran 20-40 ms for a few hundred ms
    graphs = _dynamo_graphs(torch)
    ts = []
    for _ in range(repeats):
        step()
        s = time.perf_counter()
        step()
        ts.append(time.perf_counter() - s)
    return statistics.median(ts) * 1e3, _dynamo_graphs(torch) != graphs


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--size", type=int, default=2**22)
    ap.add_argument("--torch-compile", action="store_true", help="add torch.compile forward + backward")
    ap.add_argument("--torch-threads", type=int, default=0, help="PyTorch's intra-op threads (default: its own)")
    args = ap.parse_args(argv)
    torch, torch_fns = _torch_losses() if args.torch_compile else (None, {})
    if torch is not None and args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    p = jax.random.normal(k1, (args.size,), jnp.float32) * 2.0
    t = jax.random.normal(k2, (args.size,), jnp.float32)
    y = (t > 0).astype(jnp.float32)
    print(
        f"value_and_grad, {args.size} float32 elements, {jax.devices()[0].platform}, median of {args.repeats} interleaved runs"
    )
    head = "| loss | plain ms | jaxloss ms | optax ms | plain, jnp.mean ms | jaxloss/plain | jaxloss/optax |"
    if torch is not None:
        head += f" torch.compile ms ({torch.get_num_threads()} threads) | jaxloss/torch.compile |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, (el, lib, ox) in CASES.items():
        inputs = (p, y) if name in ("binary_cross_entropy", "focal") else (p, t)
        fns = (_fused_mean(el), lib, ox, _jnp_mean(el))
        jitted = [jax.jit(jax.value_and_grad(f)) for f in fns]
        for f in jitted:
            jax.block_until_ready(f(*inputs))
        times = [[] for _ in jitted]
        for _ in range(args.repeats):
            for f, ts in zip(jitted, times):
                jax.block_until_ready(f(*inputs))
                s = time.perf_counter()
                jax.block_until_ready(f(*inputs))
                ts.append(time.perf_counter() - s)
        m = [statistics.median(ts) * 1e3 for ts in times]
        line = f"| {name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} | {m[1] / m[0]:.2f} | {m[1] / m[2]:.2f} |"
        if torch is not None:
            time.sleep(0.2)
            tc, recompiled = _time_torch_compile(torch, torch_fns[name], [np.asarray(v) for v in inputs], args.repeats)
            line += f" {tc:.2f}{' (recompiled while timed!)' if recompiled else ''} | {m[1] / tc:.2f} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
