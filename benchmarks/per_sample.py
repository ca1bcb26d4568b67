"""Benchmark of jaxloss.per_sample on an MLP: speed and compiled memory of per-example gradients.

Run from the repository root::

    python -m benchmarks.per_sample [--batch-sizes 32 128 512 1024] [--repeats 7] [--chunk-size 32]

Measures, at each batch size (medians of ``--repeats`` timed runs after a warm-up, jitted, with
``block_until_ready``):

* per-sample gradients (``per_sample_grads``, vmap) vs one batch gradient (``jax.grad``): the cost ratio;
* vmap vs a Python loop of a jitted single-example ``jax.grad`` (examples pre-sliced);
* ghost norms (``ghost_grad_norms``) vs vmap norms (``per_sample_grad_norms``), with their max relative
  difference as a correctness check;
* compiled temporary memory (``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``) of
  the norms and of ``clipped_mean_grad``, unchunked vs ``chunk_size`` vs ghost norms, next to that of one
  batch gradient.

Writes a markdown report to ``benchmarks/results/per_sample_<backend>.md`` and prints it.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss

SIZES = (64, 256, 256, 10)  # input, two hidden layers, classes


def make_problem(batch_size, seed=0):
    rng = np.random.default_rng(seed)
    params = [
        (
            jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32),
            jnp.asarray(rng.normal(size=b) * 0.1, jnp.float32),
        )
        for a, b in zip(SIZES[:-1], SIZES[1:])
    ]
    batch = (
        jnp.asarray(rng.normal(size=(batch_size, SIZES[0])), jnp.float32),
        jnp.asarray(rng.integers(0, SIZES[-1], size=batch_size), jnp.int32),
    )
    return params, batch


LOSS = functools.partial(jaxloss.cross_entropy, reduction="none")
FN = jaxloss.dense_stack_objective(LOSS, jax.nn.relu)


def median_ms(f, *args, repeats):
    jax.block_until_ready(f(*args))  # compile
    jax.block_until_ready(f(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def temp_mib(f, *args):
    stats = jax.jit(f).lower(*args).compile().memory_analysis()
    return float("nan") if stats is None else stats.temp_size_in_bytes / 2**20


def run(batch_sizes, repeats, chunk_size):
    batch_grad = jax.jit(jax.grad(FN))
    ps_grads = jax.jit(functools.partial(jaxloss.per_sample_grads, FN))
    single_grad = jax.jit(jax.grad(FN))
    vmap_norms = jax.jit(functools.partial(jaxloss.per_sample_grad_norms, FN))
    chunk_norms = jax.jit(functools.partial(jaxloss.per_sample_grad_norms, FN, chunk_size=chunk_size))
    ghost_norms = jax.jit(functools.partial(jaxloss.ghost_grad_norms, loss=LOSS))

    speed, memory = [], []
    for b in batch_sizes:
        params, batch = make_problem(b)
        t_batch = median_ms(batch_grad, params, batch, repeats=repeats)
        t_ps = median_ms(ps_grads, params, batch, repeats=repeats)
        examples = [jax.tree_util.tree_map(lambda x: x[i : i + 1], batch) for i in range(b)]
        jax.block_until_ready(examples)

        def loop(params):
            return [single_grad(params, ex) for ex in examples]

        t_loop = median_ms(loop, params, repeats=max(1, min(repeats, 3)))
        t_vn = median_ms(vmap_norms, params, batch, repeats=repeats)
        t_cn = median_ms(chunk_norms, params, batch, repeats=repeats)
        t_gn = median_ms(ghost_norms, params, batch, repeats=repeats)
        vn, gn = np.asarray(vmap_norms(params, batch)), np.asarray(ghost_norms(params, batch))
        err = float(np.max(np.abs(gn - vn) / np.maximum(vn, 1e-30)))
        speed.append((b, t_batch, t_ps, t_ps / t_batch, t_loop, t_loop / t_ps, t_vn, t_cn, t_gn, t_vn / t_gn, err))

        memory.append(
            (
                b,
                temp_mib(jax.grad(FN), params, batch),
                temp_mib(lambda p, x: jaxloss.per_sample_grad_norms(FN, p, x), params, batch),
                temp_mib(lambda p, x: jaxloss.per_sample_grad_norms(FN, p, x, chunk_size=chunk_size), params, batch),
                temp_mib(lambda p, x: jaxloss.ghost_grad_norms(p, x, LOSS), params, batch),
                temp_mib(lambda p, x: jaxloss.clipped_mean_grad(FN, p, x, 1.0), params, batch),
                temp_mib(lambda p, x: jaxloss.clipped_mean_grad(FN, p, x, 1.0, chunk_size=chunk_size), params, batch),
            )
        )
        print(f"batch {b}: done", flush=True)
    return speed, memory


def _ratio(r):
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x" if r >= 1 else f"{r:.2f}x"


def report(speed, memory, repeats, chunk_size):
    n_params = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
    dev = jax.devices()[0]
    lines = [
        "# jaxloss.per_sample benchmark",
        "",
        f"MLP {' -> '.join(map(str, SIZES))} (ReLU, {n_params:,} float32 parameters), softmax cross-entropy, "
        f"jitted; medians of {repeats} runs after warm-up (Python loop: {max(1, min(repeats, 3))} runs). "
        f"Device: {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs; jax {jax.__version__}, "
        f"Python {platform.python_version()}. Command: `python -m benchmarks.per_sample`.",
        "",
        "## Time (ms)",
        "",
        "| batch | batch grad | per-sample grads (vmap) | per-sample / batch | Python loop | loop / vmap "
        f"| vmap norms | chunked norms ({chunk_size}) | ghost norms | vmap / ghost | ghost max rel. diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, tb, tp, r1, tl, r2, tv, tc, tg, r3, err in speed:
        lines.append(
            f"| {b} | {tb:.3f} | {tp:.3f} | {_ratio(r1)} | {tl:.1f} | {_ratio(r2)} | {tv:.3f} | {tc:.3f} | {tg:.3f} "
            f"| {_ratio(r3)} | {err:.1e} |"
        )
    lines += [
        "",
        "## Compiled temporary memory (MiB, `memory_analysis().temp_size_in_bytes`)",
        "",
        f"| batch | batch grad | vmap norms | chunked norms ({chunk_size}) | ghost norms | clipped_mean_grad "
        f"| clipped_mean_grad chunked ({chunk_size}) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in memory:
        lines.append(f"| {row[0]} | " + " | ".join(f"{v:.2f}" for v in row[1:]) + " |")
    lines += [
        "",
        "Unchunked per-example paths hold `batch x params` floats of per-example gradients; with "
        "`chunk_size` the temporary memory is that of one chunk, flat in the batch size; ghost norms never "
        "form per-example gradients (activations and pre-activation gradients only). "
        "`per_sample_grads` returns `batch x params` floats, so on CPU its time is dominated by writing "
        "(and first-touching) that output; a Python loop reuses small buffers and can be competitive there. "
        "Reductions of per-example gradients (norms, clipping) avoid the big buffer with `chunk_size` "
        "or, for dense layers, ghost norms.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512, 1024])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument(
        "--out", default=None, help="markdown output (default benchmarks/results/per_sample_<backend>.md)"
    )
    args = parser.parse_args(argv)
    speed, memory = run(args.batch_sizes, args.repeats, args.chunk_size)
    text = report(speed, memory, args.repeats, args.chunk_size)
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", f"per_sample_{jax.default_backend()}.md"
    )
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
