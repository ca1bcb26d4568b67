"""DP-SGD with ghost clipping: a Flax NNX CNN on scikit-learn's digits, with and without privacy.

Run from the repository root::

    python examples/dp_ghost.py [--quick] [--out DIR]

The model is a small CNN (two 3x3 convolutions with 2x2 mean pooling and a dense head, as in
``benchmarks/ghost_models.py``) written in Flax NNX, trained on the 8x8 digits (1437 training, 360 test images) twice
with Adam:

* **without privacy**: ``jaxloss.train_step(objective, optax.adam(...))`` on the NNX module (updated in
  place);
* **with DP-SGD**: every step clips each example's gradient to norm ``C = 1`` and adds Gaussian noise of
  std ``sigma C`` (``sigma = 1``) to the sum, through
  ``jaxloss.clipped_mean_grad(objective, module, batch, C, sigma, key, method="ghost")``: the per-example
  norms of the convolution kernels, dense weights and biases come from one forward/backward pass by the
  ghost norm analysis of the jaxpr (no per-example gradient is formed), and the clipped sum by the
  clipping ``clipping="auto"`` picks for this model (two-pass ghost clipping or book-keeping).
  ``jaxloss.ghost_plan`` prints how each parameter is treated and which clipping is used.

It prints a table of test accuracy and time per step for both runs, and plots the distribution of the
per-example gradient norms (ghost norms on 512 training examples) of the private model before and after
training, with the clipping norm ``C`` marked: the fraction of examples above ``C`` is the fraction whose
gradient DP-SGD shortens (on this model and learning rate, nearly all of them, before and after). Privacy
accounting (the ``epsilon`` of ``sigma``, the sampling rate and the number of steps) is not done here;
use an RDP or PRV accountant such as Opacus's or Google's ``dp_accounting``.
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import jaxloss  # noqa: E402

BATCH, LR, MAX_NORM, SIGMA = 128, 3e-3, 1.0, 1.0


class NNXCNN(nnx.Module):
    """Conv 3x3 (c1) -> ReLU -> 2x2 mean pool -> Conv 3x3 (c2) -> ReLU -> pool -> Dense (k), on [B, 8, 8, 1]."""

    def __init__(self, c1, c2, k, rngs):
        self.c1 = nnx.Conv(1, c1, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(c1, c2, (3, 3), rngs=rngs)
        self.out = nnx.Linear(2 * 2 * c2, k, rngs=rngs)

    def __call__(self, x):
        def pool(h):
            b, hh, ww, c = h.shape
            return h.reshape(b, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))

        h = pool(jax.nn.relu(self.c1(x)))
        h = pool(jax.nn.relu(self.c2(h)))
        return self.out(h.reshape(h.shape[0], -1))


def _data():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # [N, 8, 8, 1]
    return train_test_split(x, digits.target, test_size=0.2, random_state=0, stratify=digits.target)


def _accuracy(obj, model, x, y):
    return float(np.mean(np.argmax(np.asarray(obj.predict(model, jnp.asarray(x))), -1) == y))


def _batches(x, y, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(x), BATCH, replace=False)
        yield jnp.asarray(x[idx]), jnp.asarray(y[idx])


def _timed(step_fn, batches):
    """Runs every batch; returns the median seconds per step after the first (compiling) one."""
    times = []
    for batch in batches:
        t0 = time.perf_counter()
        jax.block_until_ready(step_fn(batch))
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under a minute)")
    parser.add_argument("--out", default="out", help="folder for the PNG")
    args = parser.parse_args(argv)
    steps = 120 if args.quick else 600
    x_tr, x_te, y_tr, y_te = _data()
    obj = jaxloss.objective(NNXCNN(16, 32, 10, rngs=nnx.Rngs(0)), jaxloss.cross_entropy)

    # without privacy: jaxloss.train_step on the NNX module (updated in place)
    model = NNXCNN(16, 32, 10, rngs=nnx.Rngs(0))
    step = jaxloss.train_step(obj, optax.adam(LR))
    opt_state = step.init(model)

    def plain_step(batch):
        nonlocal opt_state
        _, opt_state, metrics = step(model, opt_state, batch)
        return metrics["loss"]

    plain_time = _timed(plain_step, _batches(x_tr, y_tr, steps, 1))
    plain_acc = _accuracy(obj, model, x_te, y_te)

    # with DP-SGD through ghost clipping
    dp_model = NNXCNN(16, 32, 10, rngs=nnx.Rngs(0))
    probe = (jnp.asarray(x_tr[:512]), jnp.asarray(y_tr[:512]))
    plan = jaxloss.ghost_plan(obj, dp_model, probe)
    norms_fn = jax.jit(lambda m, b: jaxloss.per_sample_grad_norms(obj, m, b, method="ghost"))
    norms_before = np.asarray(norms_fn(dp_model, probe))
    opt = optax.adam(LR)
    dp_opt_state = opt.init(nnx.state(dp_model, nnx.Param))

    @jax.jit
    def dp_update(m, opt_state, batch, key):
        out = jaxloss.clipped_mean_grad(obj, m, batch, MAX_NORM, SIGMA, key, method="ghost")
        params = nnx.state(m, nnx.Param)
        updates, opt_state = opt.update(out.grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, jnp.mean(out.losses)

    key = jax.random.PRNGKey(0)

    def dp_step(batch):
        nonlocal dp_opt_state, key
        key, sub = jax.random.split(key)
        params, dp_opt_state, loss = dp_update(dp_model, dp_opt_state, batch, sub)
        nnx.update(dp_model, params)
        return loss

    dp_time = _timed(dp_step, _batches(x_tr, y_tr, steps, 1))
    dp_acc = _accuracy(obj, dp_model, x_te, y_te)
    norms_after = np.asarray(norms_fn(dp_model, probe))

    print("parameters:", ", ".join(f"{k} {v}" for k, v in plan.kinds.items()))
    print(f"exact-path parameters: {plan.fallback or 'none'}; clipping: {plan.clipping}")
    print()
    print(f"| run ({steps} steps, batch {BATCH}) | test accuracy | ms / step |")
    print("|---|---|---|")
    print(f"| Adam, no privacy | {plain_acc:.3f} | {plain_time * 1e3:.2f} |")
    print(f"| DP-SGD (Adam), ghost clipping, C={MAX_NORM}, sigma={SIGMA} | {dp_acc:.3f} | {dp_time * 1e3:.2f} |")
    print()
    print(
        f"per-example gradient norms (median): before {np.median(norms_before):.3f}, after {np.median(norms_after):.3f}; "
        f"clipped fraction {np.mean(norms_before > MAX_NORM):.2f} -> {np.mean(norms_after > MAX_NORM):.2f}"
    )

    os.makedirs(args.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.logspace(
        np.log10(max(min(norms_before.min(), norms_after.min()), 1e-4)),
        np.log10(max(norms_before.max(), norms_after.max())),
        40,
    )
    ax.hist(norms_before, bins=bins, alpha=0.6, label="before training")
    ax.hist(norms_after, bins=bins, alpha=0.6, label="after DP-SGD")
    ax.axvline(MAX_NORM, color="k", ls="--", label=f"clipping norm C={MAX_NORM}")
    ax.set_xscale("log")
    ax.set_xlabel("per-example gradient norm (ghost)")
    ax.set_ylabel("examples")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(args.out, "dp_ghost.png")
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")
    return {"plain_acc": plain_acc, "dp_acc": dp_acc, "norms_before": norms_before, "norms_after": norms_after}


if __name__ == "__main__":
    main()
