"""The main job: train a small classifier with ``jaxloss.cross_entropy`` and optax on real data.

Run with ``make demo`` or ``python -m jaxloss demo``. Needs the ``examples`` extra (scikit-learn for the
bundled digits dataset; tqdm for the progress bar, optional).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss


def _progress(iterable, **kwargs):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress bar is optional
        return iterable
    return tqdm(iterable, **kwargs)


def load_digits(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), standardised, split train/test."""
    try:
        from sklearn.datasets import load_digits as _load
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("the demo needs scikit-learn: pip install 'jaxloss[examples]'") from e
    x, y = _load(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    return ((x_tr - mean) / std).astype(np.float32), y_tr.astype(np.int32), ((x_te - mean) / std).astype(np.float32), y_te.astype(np.int32)


def init_mlp(key, sizes):
    """Parameters of an MLP: a list of ``(W, b)`` with He-normal weights."""
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / n_in), jnp.zeros(n_out)))
    return params


def mlp(params, x):
    """ReLU MLP; returns logits."""
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def train_classifier(epochs: int = 30, batch_size: int = 64, lr: float = 3e-3, seed: int = 0, verbose: bool = True):
    """Trains a 64-128-10 MLP on digits with ``jaxloss.cross_entropy`` and ``optax.adam``.

    Returns ``(params, history, test_accuracy)``.
    """
    x_tr, y_tr, x_te, y_te = load_digits(seed)
    key = jax.random.PRNGKey(seed)
    params = init_mlp(key, [x_tr.shape[1], 128, 10])
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(params)

    def loss_fn(p, x, y):
        return jaxloss.cross_entropy(mlp(p, x), y, label_smoothing=0.05)

    @jax.jit
    def step(p, s, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(seed)
    n = len(x_tr)
    history = []
    bar = _progress(range(epochs), desc="training", unit="epoch", disable=not verbose)
    for epoch in bar:
        order = rng.permutation(n)
        losses = []
        for i in range(0, n - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            params, opt_state, loss = step(params, opt_state, x_tr[idx], y_tr[idx])
            losses.append(float(loss))
        history.append(float(np.mean(losses)))
        if verbose:
            msg = f"epoch {epoch + 1:3d}  train cross-entropy {history[-1]:.4f}"
            (bar.write if hasattr(bar, "write") else print)(msg)
    accuracy = float(jnp.mean(jnp.argmax(mlp(params, x_te), -1) == y_te))
    return params, history, accuracy


def run_demo(args) -> int:
    t0 = time.perf_counter()
    print(f"jaxloss {jaxloss.__version__} demo on {jax.devices()[0].platform.upper()}: digits (scikit-learn), "
          "MLP 64-128-10, jaxloss.cross_entropy + optax.adam")
    _, history, accuracy = train_classifier(epochs=args.epochs, seed=args.seed)
    print(f"final train cross-entropy {history[-1]:.4f}")
    print(f"held-out accuracy: {accuracy:.4f}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxloss")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a classifier on scikit-learn's digits with jaxloss + optax")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    return 2
