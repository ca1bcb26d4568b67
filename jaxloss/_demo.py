"""The main job: fit jaxloss objectives on scikit-learn's bundled datasets, print a table, plot the curves.

Run with ``make demo`` or ``python -m jaxloss demo``. It

* trains a small MLP on the 8x8 digits with ``jaxloss.cross_entropy`` through ``jaxloss.objective`` and
  ``jaxloss.fit`` (optax.adam, mini-batches) and prints its held-out accuracy;
* minimises ready objectives with ``jaxloss.minimize`` (the whole loop under ``jax.jit``): least squares,
  the lasso and Huber regression on diabetes (held-out R^2), logistic regression and a linear SVM (squared
  hinge) on breast cancer (held-out accuracy);
* prints a table (objective, dataset, final value, steps, converged, time, held-out score) and saves a
  matplotlib plot of the loss curves (Agg backend) to ``out/demo_loss_curves.png`` (``--plot PATH``).

Needs the ``examples`` extra (scikit-learn, matplotlib; tqdm for the progress bar, optional).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

DEFAULT_PLOT = pathlib.Path("out") / "demo_loss_curves.png"


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("the demo needs scikit-learn: pip install 'jaxloss[examples]'") from e
    return sklearn.datasets, sklearn.model_selection


def _split_standardize(x, y, seed, test_fraction=0.25, stratify=False, scale_y=False):
    """Train/test split; features (and optionally targets) standardised with the training statistics."""
    _, model_selection = _sklearn()
    x_tr, x_te, y_tr, y_te = model_selection.train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y if stratify else None
    )
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if scale_y:
        y_mean, y_std = y_tr.mean(), y_tr.std()
        y_tr, y_te = (y_tr - y_mean) / y_std, (y_te - y_mean) / y_std
        y_tr, y_te = y_tr.astype(np.float32), y_te.astype(np.float32)
    return x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te


def load_digits(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), standardised, split train/test."""
    datasets, _ = _sklearn()
    x, y = datasets.load_digits(return_X_y=True)
    x_tr, y_tr, x_te, y_te = _split_standardize(x, y, seed, test_fraction, stratify=True)
    return x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32)


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
    """Trains a 64-128-10 MLP on digits: ``jaxloss.objective(mlp, jaxloss.cross_entropy)`` + ``jaxloss.fit``.

    Returns ``(params, history, test_accuracy)``; ``history`` is the mean training loss of each epoch.
    """
    x_tr, y_tr, x_te, y_te = load_digits(seed)
    params = init_mlp(jax.random.PRNGKey(seed), [x_tr.shape[1], 128, 10])
    obj = jaxloss.objective(mlp, jaxloss.cross_entropy, label_smoothing=0.05)
    res = jaxloss.fit(
        obj, params, (x_tr, y_tr), optax.adam(lr), epochs, batch_size=batch_size, seed=seed, verbose=int(verbose)
    )
    accuracy = float(jnp.mean(jnp.argmax(mlp(res.params, x_te), -1) == y_te))
    return res.params, list(res.history["loss"]), accuracy


def _r2(pred, y):
    pred, y = np.asarray(pred, np.float64), np.asarray(y, np.float64)
    return 1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def _accuracy_binary(logits, y):
    return float(np.mean((np.asarray(logits) > 0) == (np.asarray(y) == 1)))


def fit_ready_objectives(max_steps: int = 1000, mlp_epochs: int = 30, seed: int = 0, verbose: bool = True, names=None):
    """Fits the ready objectives and the digits MLP; returns ``(rows, curves)``.

    ``names`` (optional) selects a subset of the rows by objective name (``"least squares"``, ``"lasso"``,
    ``"Huber"``, ``"logistic regression"``, ``"linear SVM"``, ``"MLP cross-entropy"``).

    ``rows``: one dict per fit with ``objective, dataset, value, steps, converged, time, score, metric``
    (time in seconds, including compilation). ``curves``: ``{name: (x label, values)}``: the objective per
    step for :func:`jaxloss.minimize`, the mean training loss per epoch for the MLP.
    """
    datasets, _ = _sklearn()
    rows, curves = [], {}

    def record(name, dataset, res, seconds, score, metric, unit="step"):
        rows.append(
            dict(
                objective=name,
                dataset=dataset,
                value=float(res.value),
                steps=int(res.num_steps),
                converged=bool(res.converged),
                time=seconds,
                score=float(score),
                metric=metric,
            )
        )
        history = res.history["loss"] if isinstance(res.history, dict) else res.history  # fit / minimize
        curves[name] = (unit, np.asarray(history, np.float64))
        if verbose:
            print(f"  fitted {name:<20s} on {dataset:<14s} {seconds:5.1f} s")

    x, y = datasets.load_diabetes(return_X_y=True)
    diabetes = ("diabetes", *_split_standardize(x, y, seed, scale_y=True), _r2, "R^2")
    x, y = datasets.load_breast_cancer(return_X_y=True)
    cancer = ("breast cancer", *_split_standardize(x, y, seed, stratify=True), _accuracy_binary, "accuracy")
    full_batch = [
        ("least squares", jaxloss.least_squares(), diabetes),
        ("lasso", jaxloss.lasso_regression(0.02), diabetes),
        ("Huber", jaxloss.huber_regression(1.35, 1e-3), diabetes),
        ("logistic regression", jaxloss.logistic_regression(1e-2), cancer),
        ("linear SVM", jaxloss.linear_svm(1e-2, loss="squared_hinge"), cancer),
    ]
    for name, obj, (dataset, x_tr, y_tr, x_te, y_te, score, score_name) in full_batch:
        if names is not None and name not in names:
            continue
        t0 = time.perf_counter()
        res = jaxloss.minimize(obj, obj.init_params(x_tr), (x_tr, y_tr), max_steps=max_steps, tol=1e-5)
        jax.block_until_ready(res.params)
        seconds = time.perf_counter() - t0
        record(name, dataset, res, seconds, score(obj.predict(res.params, x_te), y_te), score_name)

    if names is not None and "MLP cross-entropy" not in names:
        return rows, curves
    x_tr, y_tr, x_te, y_te = load_digits(seed)
    params = init_mlp(jax.random.PRNGKey(seed), [x_tr.shape[1], 128, 10])
    obj = jaxloss.objective(mlp, jaxloss.cross_entropy, label_smoothing=0.05)
    t0 = time.perf_counter()
    fitted = jaxloss.fit(
        obj, params, (x_tr, y_tr), optax.adam(3e-3), mlp_epochs, batch_size=64, seed=seed, verbose=int(verbose)
    )
    seconds = time.perf_counter() - t0
    accuracy = float(jnp.mean(jnp.argmax(mlp(fitted.params, x_te), -1) == y_te))
    record("MLP cross-entropy", "digits", fitted, seconds, accuracy, "accuracy", unit="epoch")
    return rows, curves


def format_table(rows) -> str:
    """The results as a fixed-width text table."""
    head = f"{'objective':<20s} {'dataset':<14s} {'final value':>11s} {'steps':>6s} {'conv.':>5s} {'time (s)':>8s}  held-out"
    lines = [head, "-" * len(head)]
    for r in rows:
        conv = "yes" if r["converged"] else ("-" if r["objective"].startswith("MLP") else "no")
        lines.append(
            f"{r['objective']:<20s} {r['dataset']:<14s} {r['value']:>11.5f} {r['steps']:>6d} {conv:>5s} "
            f"{r['time']:>8.2f}  {r['metric']} {r['score']:.4f}"
        )
    return "\n".join(lines)


def plot_curves(curves, path=DEFAULT_PLOT) -> pathlib.Path:
    """Saves the loss curves (matplotlib, Agg backend) and returns the path.

    Left: full-batch objectives, relative suboptimality ``(F_k - F_min) / |F_min|`` per step (log scale).
    Right: mini-batch training loss per epoch.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, (unit, values) in curves.items():
        values = values[np.isfinite(values)]
        if unit == "step":
            best = values.min()
            gap = (values - best) / max(abs(best), 1e-12)
            keep = gap > 0
            left.semilogy(np.arange(len(values))[keep], gap[keep], label=name)
        else:
            right.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
    left.set(xlabel="step", ylabel="(F_k - F_min) / |F_min|", title="jaxloss.minimize (full batch)")
    right.set(xlabel="epoch", ylabel="mean training loss", title="jaxloss.fit (mini-batch, adam)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_demo(args) -> int:
    t0 = time.perf_counter()
    print(
        f"jaxloss {jaxloss.__version__} demo on {jax.devices()[0].platform.upper()}: scikit-learn datasets, "
        "jaxloss objectives, jaxloss.minimize / jaxloss.fit on optax"
    )
    rows, curves = fit_ready_objectives(max_steps=args.max_steps, mlp_epochs=args.epochs, seed=args.seed)
    print()
    print(format_table(rows))
    print(
        "(time includes compilation; final value: the objective on the training split; "
        "steps: optimizer steps, epochs x batches for the MLP)"
    )
    mlp_row = rows[-1]
    print(f"final train cross-entropy {mlp_row['value']:.4f}")
    print(f"held-out accuracy: {mlp_row['score']:.4f}  (digits MLP)")
    path = plot_curves(curves, args.plot)
    print(f"loss curves saved to {path}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


def cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxloss")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit jaxloss objectives on scikit-learn datasets, print a table, plot")
    demo.add_argument("--epochs", type=int, default=30, help="epochs of the digits MLP")
    demo.add_argument("--max-steps", type=int, default=1000, help="step cap of jaxloss.minimize")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plot", type=pathlib.Path, default=DEFAULT_PLOT, help="where to save the loss curves")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    return 2
