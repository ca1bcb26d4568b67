"""Tuning ridge and lasso strengths by gradient descent on a held-out loss (diabetes).

Run from the repository root::

    python examples/hyperparameter_tuning.py [--quick] [--out DIR]

``jaxloss.minimize`` is differentiable: ``jax.grad`` of a validation loss with respect to the
regularization strength goes through the solve by implicit differentiation (the stationarity condition
for ridge, the proximal-gradient fixed point for the lasso), never through the solver's loop. Here the
strength is tuned by gradient descent on ``log(alpha)`` (Adam), minimising the mean squared error on a
validation split, and compared with scikit-learn's ``RidgeCV`` (efficient leave-one-out over a grid) and
``LassoCV`` (5-fold cross-validation over a path) on the training + validation data. The table gives each
method's chosen strength (in jaxloss's convention: ``ridge_regression(alpha)`` is ``Ridge(alpha * n)``, ``lasso_regression``
is scikit-learn's) and the R^2 on a test split none of them saw; the plot shows the validation loss
against ``alpha`` with the gradient-descent iterates on it.
"""

from __future__ import annotations

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxloss  # noqa: E402


def load(seed=0):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    x_rest, x_te, y_rest, y_te = train_test_split(x, y, test_size=0.25, random_state=seed)
    x_tr, x_va, y_tr, y_va = train_test_split(x_rest, y_rest, test_size=1 / 3, random_state=seed)
    sx = StandardScaler().fit(x_rest)
    my, sy = y_rest.mean(), y_rest.std()
    f = lambda a, b: (jnp.asarray(sx.transform(a)), jnp.asarray((b - my) / sy))  # noqa: E731
    return f(x_tr, y_tr), f(x_va, y_va), f(x_te, y_te), (sx.transform(x_rest), (y_rest - my) / sy)


def r2(params, data):
    pred = data[0] @ params["w"] + params["b"]
    return float(1 - jnp.sum((pred - data[1]) ** 2) / jnp.sum((data[1] - data[1].mean()) ** 2))


def tune(make, train, val, log_alpha0, steps, lr=0.1):
    """Adam on log(alpha) of the validation MSE through the solve; returns the trajectory."""
    p0 = make(1.0).init_params(train[0])
    mse = jaxloss.least_squares()

    def val_loss(log_alpha):
        res = jaxloss.minimize(make(jnp.exp(log_alpha)), p0, train, tol=1e-10, max_steps=5000)
        return mse(res.params, val), res.converged

    vg = jax.jit(jax.value_and_grad(val_loss, has_aux=True))
    opt = optax.adam(lr)
    u = jnp.asarray(log_alpha0)
    state = opt.init(u)
    path = []
    for _ in range(steps):
        (v, ok), g = vg(u)
        path.append((float(jnp.exp(u)), float(v), bool(ok)))
        upd, state = opt.update(g, state)
        u = optax.apply_updates(u, upd)
    (v, ok), _ = vg(u)
    path.append((float(jnp.exp(u)), float(v), bool(ok)))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer gradient steps (< 1 min)")
    parser.add_argument("--out", default=".", help="directory for the plot")
    args = parser.parse_args(argv)
    from sklearn.linear_model import LassoCV, RidgeCV

    train, val, test, (x_rest, y_rest) = load()
    steps = 15 if args.quick else 60
    rows = []
    curves = {}
    for name, make, a0 in (
        ("ridge", jaxloss.ridge_regression, np.log(1.0)),
        ("lasso", jaxloss.lasso_regression, np.log(0.2)),
    ):
        t0 = time.perf_counter()
        path = tune(make, train, val, a0, steps)
        seconds = time.perf_counter() - t0
        alpha = path[-1][0]
        # refit on train + validation with the chosen strength, score on test
        rest = (jnp.asarray(x_rest), jnp.asarray(y_rest))
        obj = make(alpha)
        params = jaxloss.minimize(obj, obj.init_params(rest[0]), rest, tol=1e-10, max_steps=5000).params
        rows.append(
            (f"{name}: gradient descent on val. loss", alpha, path[-1][1], r2(params, test), f"{seconds:.1f} s")
        )
        grid = np.geomspace(1e-4, 10.0, 40) if name == "ridge" else np.geomspace(1e-4, 1.0, 40)
        sweep = jax.jit(
            jax.vmap(
                lambda a: jaxloss.least_squares()(
                    jaxloss.minimize(make(a), obj.init_params(train[0]), train, tol=1e-10, max_steps=5000).params, val
                )
            )
        )
        curves[name] = (grid, np.asarray(sweep(jnp.asarray(grid))), path)
        t0 = time.perf_counter()
        if name == "ridge":
            sk = RidgeCV(alphas=np.geomspace(1e-4, 10.0, 100) * len(y_rest)).fit(x_rest, y_rest)
            sk_alpha = sk.alpha_ / len(y_rest)
        else:
            sk = LassoCV(cv=5, alphas=100, tol=1e-8, max_iter=100_000).fit(x_rest, y_rest)
            sk_alpha = sk.alpha_
        seconds = time.perf_counter() - t0
        sk_params = {"w": jnp.asarray(sk.coef_), "b": jnp.asarray(sk.intercept_)}
        val_at = float(
            jaxloss.least_squares()(
                jaxloss.minimize(make(sk_alpha), obj.init_params(train[0]), train, tol=1e-10, max_steps=5000).params,
                val,
            )
        )
        rows.append(
            (f"{name}: scikit-learn {type(sk).__name__}", sk_alpha, val_at, r2(sk_params, test), f"{seconds:.1f} s")
        )

    print(f"{'method':<42s} {'alpha':>10s} {'val. loss':>10s} {'test R^2':>9s} {'time':>8s}")
    for name, alpha, v, score, t in rows:
        print(f"{name:<42s} {alpha:10.4g} {v:10.4f} {score:9.4f} {t:>8s}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, (grid, vals, path)) in zip(axes, curves.items()):
        ax.semilogx(grid, vals, "-", color="0.5", label="validation loss (sweep)")
        ax.semilogx([p[0] for p in path], [p[1] for p in path], "o-", ms=3, label="gradient descent on log alpha")
        ax.set(xlabel="alpha", ylabel="0.5 * validation MSE", title=f"{name} on diabetes")
        ax.legend()
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "hyperparameter_tuning.png")
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}")
    return rows


if __name__ == "__main__":
    main()
