"""A lasso regularization path on scikit-learn's diabetes data, solved in one vmapped, jitted call.

Run from the repository root with `python examples/objectives_regularization_path.py` (`--quick`: fewer
values of alpha and of the group-lasso strength; `--out DIR`: where the plot of the path goes).

``jaxloss.lasso_regression(alpha)`` is a pytree whose leaf is ``alpha``, so ``jax.vmap`` over ``alpha`` of
``jaxloss.minimize`` (accelerated proximal gradient, exact zeros) solves the whole path with one
compilation. The path is compared with ``sklearn.linear_model.lasso_path`` (coordinate descent, same
objective ``1/(2n) ||y - Xw||^2 + alpha ||w||_1``): the objective gap at each ``alpha`` and whether the
sparsity patterns agree. A second part selects input features of a multinomial logistic regression on
digits with ``jaxloss.group_lasso`` (one group per pixel, across the 10 classes).
"""

from __future__ import annotations

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import datasets, linear_model  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import jaxloss  # noqa: E402


def lasso_path(num_alphas, out):
    x, y = datasets.load_diabetes(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    y = (y - y.mean()) / y.std()
    alphas = np.geomspace(0.5, 1e-3, num_alphas)
    data = (jnp.asarray(x), jnp.asarray(y))
    p0 = jaxloss.lasso_regression(1.0).init_params(data[0])

    t0 = time.perf_counter()
    solve = lambda a: jaxloss.minimize(jaxloss.lasso_regression(a), p0, data, tol=1e-10, max_steps=5000)  # noqa: E731
    res = jax.vmap(solve)(jnp.asarray(alphas))
    jax.block_until_ready(res.params)
    seconds = time.perf_counter() - t0

    # scikit-learn centers the data itself when fitting an intercept; y is centered, x standardised.
    _, coefs, _ = linear_model.lasso_path(x, y, alphas=alphas, tol=1e-12, max_iter=100_000)
    print(f"lasso path on diabetes ({len(alphas)} alphas, one vmapped jaxloss.minimize: {seconds:.1f} s incl. compile)")
    print(f"{'alpha':>8s} {'nonzeros':>8s} {'steps':>6s} {'relative gap vs sklearn':>24s} {'same zeros':>10s}")
    for i, alpha in enumerate(alphas):
        obj = jaxloss.lasso_regression(float(alpha))
        ours = jax.tree_util.tree_map(lambda a: a[i], res.params)
        theirs = {"w": jnp.asarray(coefs[:, i]), "b": jnp.asarray(y.mean() - x.mean(0) @ coefs[:, i])}
        a, b = float(obj(ours, data)), float(obj(theirs, data))
        same = np.array_equal(np.asarray(ours["w"]) == 0, coefs[:, i] == 0)
        nz = int(np.sum(np.asarray(ours["w"]) != 0))
        print(f"{alpha:8.4f} {nz:8d} {int(res.num_steps[i]):6d} {abs(a - b) / abs(b):24.2e} {str(same):>10s}")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(alphas, np.asarray(res.params["w"]), "-", lw=1.5)
    ax.plot(alphas, coefs.T, "k:", lw=0.8)
    ax.set(
        xscale="log",
        xlabel="alpha",
        ylabel="coefficient",
        title="lasso path on diabetes: jaxloss (solid), scikit-learn (dotted)",
    )
    ax.title.set_fontsize(9)
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, "lasso_path.png"), dpi=100)


def group_lasso_features(strengths):
    x, y = datasets.load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    data = (jnp.asarray(x), jnp.asarray(y))
    print("\nmultinomial logistic regression on digits with a group lasso over each pixel's 10 class weights")
    print(f"{'strength':>8s} {'pixels used':>11s} {'train accuracy':>14s}")
    base = jaxloss.logistic_regression(1e-4, num_classes=10)
    weights_only = lambda path: path == "w"  # noqa: E731  (one predicate: the same structure, one compile)
    for strength in strengths:
        reg = jaxloss.group_lasso(strength, axis=-1, mask=weights_only)
        obj = jaxloss.objective(base.model, base.loss, base.regularizer + reg)
        res = jaxloss.minimize(obj, base.init_params(data[0]), data, tol=1e-6, max_steps=3000)
        used = int(np.sum(np.any(np.asarray(res.params["w"]) != 0, axis=1)))
        acc = float(jnp.mean(jnp.argmax(obj.predict(res.params, data[0]), -1) == data[1]))
        print(f"{strength:8.2f} {used:11d} {acc:14.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer alphas and strengths (the docs build)")
    parser.add_argument("--out", default="out", help="directory for the PNG plot")
    args = parser.parse_args(argv)
    lasso_path(6 if args.quick else 12, args.out)
    group_lasso_features((0.0, 0.03) if args.quick else (0.0, 0.01, 0.03, 0.1))


if __name__ == "__main__":
    main()
