"""Per-sample gradient analysis of a small MLP on scikit-learn's digits (8x8 images, 10 classes).

Run from the repository root with `python examples/per_sample_analysis.py` (`--quick`: fewer training
steps; `--out DIR`: where the figure goes).

It trains an MLP 64 -> 64 -> 10 with Adam on a jaxloss objective and, during training,

* measures every probe example's gradient norm with ghost norms (one backward pass, no per-example
  gradients; checked once against the vmap path),
* estimates the gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018) two ways: from
  per-example gradient statistics and with the two-batch-size estimator (no per-example gradients),
  averaging the unbiased components with an exponential moving average before the ratio,
* keeps checkpoints, and at the end names the most influential training examples (TracIn over the
  checkpoints) for a few test examples.

The figure (norm histograms, noise scale over training, test digits and their top proponents) is saved to
`out/per_sample_analysis.png`.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import jaxloss  # noqa: E402

STEPS, BATCH, LR, PROBE, EVERY, SMALL = 400, 64, 3e-3, 512, 20, 32
ACT = jax.nn.relu


def main(argv=None):
    global STEPS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer training steps (the docs build)")
    parser.add_argument("--out", default="out", help="directory for the PNG figure")
    args = parser.parse_args(argv)
    if args.quick:
        STEPS = 100
    t0 = time.perf_counter()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te, i_tr, _ = train_test_split(
        x, y, np.arange(len(y)), test_size=0.2, random_state=0, stratify=y
    )
    n_tr = len(y_tr)

    # The model: a dense stack (list of (W, b)); the objective: mean cross-entropy of its logits.
    obj = jaxloss.objective(functools.partial(jaxloss.dense_stack_apply, activation=ACT), jaxloss.cross_entropy)
    per_example_loss = functools.partial(jaxloss.cross_entropy, reduction="none")  # for ghost norms
    rng = np.random.default_rng(0)
    params = [
        (jnp.asarray(rng.normal(size=(a, b)) * np.sqrt(2.0 / a), jnp.float32), jnp.zeros(b, jnp.float32))
        for a, b in [(64, 64), (64, 10)]
    ]
    opt = optax.adam(LR)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(obj)(params, batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def analyse(params, probe):
        norms = jaxloss.ghost_grad_norms(params, probe, per_example_loss, activation=ACT)
        stats = jaxloss.grad_statistics(obj, params, probe, chunk_size=128)
        two = jaxloss.two_batch_noise_scale(obj, params, probe, SMALL)
        return norms, stats.trace_cov, stats.grad_sq_norm, two.trace_cov, two.grad_sq_norm

    probe_idx = rng.choice(n_tr, PROBE, replace=False)
    probe = (jnp.asarray(x_tr[probe_idx]), jnp.asarray(y_tr[probe_idx]))
    vmap_norms = jaxloss.per_sample_grad_norms(obj, params, probe, chunk_size=128)
    ghost_norms = jaxloss.ghost_grad_norms(params, probe, per_example_loss, activation=ACT)
    print(
        f"ghost vs vmap per-example gradient norms: max relative difference "
        f"{float(jnp.max(jnp.abs(ghost_norms - vmap_norms) / vmap_norms)):.1e}"
    )

    history, norm_snapshots, checkpoints = [], {}, []
    ema, decay = None, 0.8
    for t in range(STEPS + 1):
        if t % EVERY == 0:
            norms, tr1, g1, tr2, g2 = (np.asarray(v) for v in analyse(params, probe))
            comps = np.array([tr1, g1, tr2, g2], np.float64)
            ema = comps if ema is None else decay * ema + (1 - decay) * comps
            history.append((t, comps[0] / comps[1], ema[0] / ema[1], ema[2] / ema[3]))
            if t in (0, STEPS // 4, STEPS):
                norm_snapshots[t] = norms
            if t % (STEPS // 5) == 0 and t > 0:
                checkpoints.append(params)  # TracIn checkpoints, taken at a constant learning rate
        if t == STEPS:
            break
        idx = rng.choice(n_tr, BATCH, replace=False)
        params, opt_state, loss = step(params, opt_state, (jnp.asarray(x_tr[idx]), jnp.asarray(y_tr[idx])))

    acc = float(jnp.mean(jnp.argmax(obj.predict(params, jnp.asarray(x_te)), -1) == y_te))
    print(f"trained {STEPS} steps: last batch loss {float(loss):.3f}, test accuracy {acc:.3f}")
    t_last, _, b_per, b_two = history[-1]
    print(
        f"gradient noise scale at step {t_last} (EMA of components): per-example {b_per:.0f}, two-batch {b_two:.0f} "
        f"(training batch {BATCH})"
    )

    # TracIn: sum over checkpoints of lr * <grad l(train), grad l(test)>.
    show = [0, 1, 2]
    test_batch = (jnp.asarray(x_te[show]), jnp.asarray(y_te[show]))
    influence = jax.jit(
        functools.partial(jaxloss.tracin_influence, obj, learning_rates=[LR] * len(checkpoints), chunk_size=300)
    )
    scores = np.asarray(influence(checkpoints, (jnp.asarray(x_tr), jnp.asarray(y_tr)), test_batch))  # [n_train, 3]
    top = np.argsort(-scores, axis=0)[:3].T
    for j, test_i in enumerate(show):
        names = ", ".join(f"train #{i_tr[k]} (label {y_tr[k]}, score {scores[k, j]:.2e})" for k in top[j])
        worst = int(np.argmin(scores[:, j]))
        print(
            f"test digit {y_te[test_i]}: top proponents {names}; top opponent train #{i_tr[worst]} (label {y_tr[worst]})"
        )

    fig = plt.figure(figsize=(12, 6))
    grid = fig.add_gridspec(2, 6, height_ratios=[2.2, 1])
    ax = fig.add_subplot(grid[0, :3])
    for t, norms in norm_snapshots.items():
        ax.hist(norms, bins=40, alpha=0.5, label=f"step {t}", log=True)
    ax.set(xlabel="per-example gradient norm", ylabel="count", title=f"per-example gradient norms ({PROBE} examples)")
    ax.legend()
    ax = fig.add_subplot(grid[0, 3:])
    steps, raw, per, two = map(np.asarray, zip(*history))
    ax.plot(steps, raw, ".", color="0.6", label="per-example, one step")
    ax.plot(steps, per, label="per-example (EMA of components)")
    ax.plot(steps, two, label=f"two batch sizes {SMALL}/{PROBE} (EMA)")
    ax.axhline(BATCH, ls=":", color="k", label=f"training batch {BATCH}")
    ax.set(xlabel="step", ylabel="B_simple", yscale="log", title="gradient noise scale")
    ax.legend(fontsize=8)
    for j, test_i in enumerate(show):
        ax = fig.add_subplot(grid[1, 2 * j : 2 * j + 2])
        row = [x_te[test_i]] + [x_tr[k] for k in top[j]]
        ax.imshow(np.concatenate([r.reshape(8, 8) for r in row], axis=1), cmap="gray_r")
        ax.set_title(f"test {y_te[test_i]} | top-3 proponents", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "per_sample_analysis.png")
    fig.savefig(path, dpi=110)
    print(f"saved {os.path.basename(path)} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
