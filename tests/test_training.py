"""Training loops: ``fit`` (data forms, validation, history, metrics, callbacks, early stopping, progress),
``train_step`` with line-search optimizers, and the reprs of ``Objective``, ``Regularizer``, ``FitResult``.

Each mistake a new user made (issue 13, point 5) has a test here that reproduced it first.

References: a hand-written optax loop (the same optimizer, the same batches: ``value_and_grad``,
``update``, ``apply_updates``) for trajectories; float64 NumPy formulas for the objectives, the
validation curves, the accuracies and gradient-descent trajectories; the ridge normal equations solved by
NumPy for the L-BFGS optimum; the Keras ``EarlyStopping`` rule (stop ``patience`` epochs after the minimum
of a U-shaped validation curve) for early stopping.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from harness import assert_close, assert_tree_close

N, D = 40, 3


def _regression(seed=0, n=N):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, D))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.7 + 0.1 * r.normal(size=n)
    return x, y


def _ridge_value(params, x, y, alpha):
    """float64 NumPy: 0.5 mean (x w + b - y)^2 + 0.5 alpha ||w||^2."""
    w, b = np.asarray(params["w"], np.float64), float(params["b"])
    return 0.5 * np.mean((x @ w + b - y) ** 2) + 0.5 * alpha * np.sum(w**2)


def _optax_loop(obj, params, opt, batches_per_epoch):
    """optax by hand; returns the params and the per-epoch list of (batch size, loss before the step)."""
    state = opt.init(params)
    epochs = []

    @jax.jit
    def one(params, state, b):
        v, g = jax.value_and_grad(obj)(params, b)
        u, state = opt.update(g, state, params)
        return optax.apply_updates(params, u), state, v

    for batches in batches_per_epoch:
        rec = []
        for b in batches:
            params, state, v = one(params, state, b)
            rec.append((len(jax.tree_util.tree_leaves(b)[0]), float(v)))
        epochs.append(rec)
    return params, epochs


def _weighted(rec):
    n = np.array([k for k, _ in rec], np.float64)
    return float(np.sum(n * np.array([v for _, v in rec])) / np.sum(n))


# ---------------------------------------------------------------------------------------------------------
# The mistakes of issue 13, point 5
# ---------------------------------------------------------------------------------------------------------


def test_fit_without_batch_size_is_full_batch_training():
    """Was: "ValueError: batch must be (inputs, targets) ...; got DynamicJaxprTracer of length ?"."""
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    opt = optax.sgd(0.1)
    res = jaxloss.fit(obj, obj.init_params(x), (x, y), opt, epochs=5, verbose=0)
    ref, rec = _optax_loop(obj, obj.init_params(x), opt, [[(x, y)]] * 5)
    assert res.num_steps == 5 and res.epochs == 5 and not res.converged
    assert_tree_close(res.params, ref, np.float64)
    # the epoch loss is the objective before the epoch's step: NumPy formula along the optax trajectory
    p, expected = obj.init_params(x), []
    state = opt.init(p)
    for _ in range(5):
        expected.append(_ridge_value(p, x, y, 0.1))
        u, state = opt.update(jax.grad(obj)(p, (x, y)), state, p)
        p = optax.apply_updates(p, u)
    assert_close(res.history["loss"], np.array(expected), np.float64)
    assert res.value == res.history["loss"][-1]


def test_batch_size_larger_than_the_data_is_one_batch():
    """Was: "epoch 0 had no batches (a generator is exhausted ...)"."""
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    opt = optax.sgd(0.1)
    res = jaxloss.fit(obj, obj.init_params(x), (x, y), opt, epochs=3, batch_size=64, verbose=0)
    ref, rec = _optax_loop(obj, obj.init_params(x), opt, [[(x, y)]] * 3)
    assert res.num_steps == 3
    assert_tree_close(res.params, ref, np.float64)
    assert_close(res.history["loss"], [r[0][1] for r in rec], np.float64)


def test_lbfgs_in_fit_reaches_the_normal_equations():
    """Was: "TypeError: scale_by_zoom_linesearch.<locals>.update_fn() missing 3 required keyword-only
    arguments: 'value', 'grad', and 'value_fn'"."""
    x, y = _regression()
    alpha = 0.1
    obj = jaxloss.ridge_regression(alpha)
    res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.lbfgs(), epochs=25, verbose=0)
    xa = np.hstack([x, np.ones((N, 1))])
    sol = np.linalg.solve(xa.T @ xa + np.diag([alpha * N] * D + [0.0]), xa.T @ y)
    assert_close(res.params["w"], sol[:D], np.float64, rtol=0, atol=1e-8)
    assert_close(res.params["b"], sol[D], np.float64, rtol=0, atol=1e-8)
    assert np.all(np.diff(res.history["loss"]) <= 1e-12)  # the line search never goes up on a full batch
    # a line search cannot be combined with proximal steps: a clear error, not an optax TypeError
    with pytest.raises(ValueError, match="line-search optimizer"):
        jaxloss.train_step(jaxloss.lasso_regression(0.1), optax.lbfgs(), prox_step=0.1).init(obj.init_params(x))


def test_dict_batches_work():
    """Was: "ValueError: batch must be (inputs, targets) or (inputs, targets, weights); got dict of length ?"."""
    x, y = _regression()
    w = np.linspace(0.5, 1.5, N)
    obj = jaxloss.ridge_regression(0.1)
    params = obj.init_params(x)
    # an Objective on a dict batch equals the tuple batch (NumPy weighted-mean formula)
    r = x @ np.asarray(params["w"]) + float(params["b"]) - y
    assert_close(obj(params, {"inputs": x, "targets": y, "weights": w}), 0.5 * np.sum(w * r**2) / np.sum(w), np.float64)
    with pytest.raises(ValueError, match=r"keys 'inputs' and 'targets'.*\['x', 'y'\]"):
        obj(params, {"x": x, "y": y})
    # a list of dict batches
    opt = optax.sgd(0.1)
    batches = [{"inputs": x[:20], "targets": y[:20]}, {"inputs": x[20:], "targets": y[20:]}]
    res = jaxloss.fit(obj, params, batches, opt, epochs=2, verbose=0)
    ref, _ = _optax_loop(obj, params, opt, [batches] * 2)
    assert_tree_close(res.params, ref, np.float64)
    # a dict dataset with batch_size: shuffled like the tuple form (NumPy generator seeded by `seed`)
    res_d = jaxloss.fit(obj, params, {"inputs": x, "targets": y}, opt, epochs=2, batch_size=16, seed=3, verbose=0)
    rng = np.random.default_rng(3)
    per_epoch = []
    for _ in range(2):
        order = rng.permutation(N)
        per_epoch.append([(x[order[i : i + 16]], y[order[i : i + 16]]) for i in (0, 16)])
    ref, rec = _optax_loop(obj, params, opt, per_epoch)
    assert res_d.num_steps == 4
    assert_tree_close(res_d.params, ref, np.float64)
    assert_close(res_d.history["loss"], [_weighted(r) for r in rec], np.float64)


# ---------------------------------------------------------------------------------------------------------
# Data forms and their errors
# ---------------------------------------------------------------------------------------------------------


def test_batches_forms_drop_last_and_weighted_epoch_loss():
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.01)
    opt = optax.sgd(0.05)
    batches = [(x[:30], y[:30]), (x[30:], y[30:])]
    res = jaxloss.fit(obj, obj.init_params(x), batches, opt, epochs=4, verbose=0)
    ref, rec = _optax_loop(obj, obj.init_params(x), opt, [batches] * 4)
    assert res.num_steps == 8
    assert_tree_close(res.params, ref, np.float64)
    # the epoch loss is the mean over batches weighted by their sizes (30 and 10), as Keras does
    assert_close(res.history["loss"], [_weighted(r) for r in rec], np.float64)
    # a function of the epoch gives the same run
    res2 = jaxloss.fit(obj, obj.init_params(x), lambda epoch: batches, opt, epochs=4, verbose=0)
    assert_tree_close(res2.params, ref, np.float64)
    # drop_last: 40 examples in batches of 16 are 2 steps, or 3 with the remainder of 8
    assert jaxloss.fit(obj, obj.init_params(x), (x, y), opt, epochs=2, batch_size=16, verbose=0).num_steps == 4
    res3 = jaxloss.fit(
        obj, obj.init_params(x), (x, y), opt, epochs=1, batch_size=16, drop_last=False, shuffle=False, verbose=0
    )
    ref, rec = _optax_loop(obj, obj.init_params(x), opt, [[(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])]])
    assert res3.num_steps == 3
    assert_tree_close(res3.params, ref, np.float64)
    assert_close(res3.history["loss"], [_weighted(rec[0])], np.float64)


def test_data_form_errors_are_clear():
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.01)
    p, opt = obj.init_params(x), optax.sgd(0.05)
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    with pytest.raises(ValueError, match="iterator .* exhausted after one epoch but epochs=2"):
        jaxloss.fit(obj, p, iter(batches), opt, epochs=2, verbose=0)
    assert jaxloss.fit(obj, p, iter(batches), opt, epochs=1, verbose=0).num_steps == 2
    with pytest.raises(ValueError, match=r"same number of examples.*\(40, 3\), \(39,\)"):
        jaxloss.fit(obj, p, (x, y[:-1]), opt, batch_size=8, verbose=0)
    with pytest.raises(TypeError, match=r"leading example axis .* got leaves \['float'\]"):
        jaxloss.fit(obj, p, (x, [float(v) for v in y]), opt, verbose=0)
    with pytest.raises(ValueError, match="tuple of tuples"):
        jaxloss.fit(obj, p, tuple(batches), opt, verbose=0)
    with pytest.raises(ValueError, match="list of 2 batches"):
        jaxloss.fit(obj, p, batches, opt, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        jaxloss.fit(obj, p, (x, y), opt, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epoch 0 had no batches"):
        jaxloss.fit(obj, p, lambda epoch: [], opt, verbose=0)
    with pytest.raises(TypeError, match="metrics= needs a jaxloss.Objective"):
        jaxloss.fit(lambda q, b: obj(q, b), p, (x, y), opt, metrics=["accuracy"], verbose=0)
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        jaxloss.fit(obj, p, (x, y), opt, metrics=["f2"], verbose=0)
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        jaxloss.fit(obj, p, (x, y), optax.sgd, verbose=0)
    # a monitored key that the logs do not have: an error naming the keys (Keras only warns)
    with pytest.raises(ValueError, match=r"monitors 'val_loss'.*\['loss'\].*validation_data"):
        jaxloss.fit(obj, p, (x, y), opt, epochs=2, callbacks=[jaxloss.EarlyStopping()], verbose=0)


# ---------------------------------------------------------------------------------------------------------
# Validation, metrics, history
# ---------------------------------------------------------------------------------------------------------


def _classification(seed=1, n=60):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.8 * r.normal(size=n) > 0).astype(np.int32)
    return x, y


def test_history_equals_recomputation_with_validation_and_metrics():
    x, y = _classification()
    xv, yv = _classification(seed=2, n=30)
    obj = jaxloss.logistic_regression(0.05)
    seen = []
    res = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.adam(0.1),
        epochs=4,
        batch_size=20,
        validation_data=(xv, yv),
        validation_batch_size=12,
        metrics=["accuracy"],
        verbose=0,
        callbacks=[lambda epoch, logs, state: seen.append((epoch, dict(logs), state.params))],
    )
    assert sorted(res.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert [e for e, _, _ in seen] == [0, 1, 2, 3]

    def bce(params, xs, ys):  # float64 NumPy: mean softplus(z) - y z + 0.5 * 0.05 * ||w||^2
        z = xs @ np.asarray(params["w"]) + float(params["b"])
        return np.mean(np.logaddexp(0.0, z) - ys * z) + 0.5 * 0.05 * np.sum(np.asarray(params["w"]) ** 2)

    for epoch, logs, params in seen:
        # validation on the params after the epoch: the whole set's objective and accuracy (the 12/12/6
        # batches' weighted mean equals the mean over the set)
        assert_close(res.history["val_loss"][epoch], bce(params, xv, yv), np.float64)
        z = xv @ np.asarray(params["w"]) + float(params["b"])
        assert_close(res.history["val_accuracy"][epoch], np.mean((z > 0) == (yv == 1)), np.float64)
        assert logs == {k: v[epoch] for k, v in res.history.items()}
    # training loss and accuracy: the batches of each epoch, on the params before each step (optax by hand)
    rng = np.random.default_rng(0)
    p, opt = obj.init_params(x), optax.adam(0.1)
    state = opt.init(p)
    for epoch in range(4):
        order = rng.permutation(len(y))
        losses, accs = [], []
        for i in (0, 20, 40):
            xb, yb = x[order[i : i + 20]], y[order[i : i + 20]]
            losses.append(bce(p, xb, yb))
            accs.append(np.mean(((xb @ np.asarray(p["w"]) + float(p["b"])) > 0) == (yb == 1)))
            u, state = opt.update(jax.grad(obj)(p, (xb, yb)), state, p)
            p = optax.apply_updates(p, u)
        assert_close(res.history["loss"][epoch], np.mean(losses), np.float64)
        assert_close(res.history["accuracy"][epoch], np.mean(accs), np.float64)
    assert_tree_close(res.params, p, np.float64)


def test_multiclass_accuracy_metric_and_custom_metric():
    r = np.random.default_rng(4)
    x = r.normal(size=(30, 4))
    y = r.integers(0, 3, size=30)
    obj = jaxloss.logistic_regression(0.0, num_classes=3)
    res = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.sgd(0.0),
        epochs=1,
        verbose=0,
        metrics={"acc": "accuracy", "top_logit": lambda pred, t: jnp.mean(jnp.max(pred, -1))},
    )
    # zero parameters: every logit 0, argmax picks class 0 (NumPy: the share of label 0)
    assert_close(res.history["acc"], [np.mean(y == 0)], np.float64)
    assert_close(res.history["top_logit"], [0.0], np.float64)


# ---------------------------------------------------------------------------------------------------------
# Early stopping and callbacks
# ---------------------------------------------------------------------------------------------------------


def _u_shaped_problem():
    """1-D least squares trained towards w = 3 by gradient descent, validated against w = 1.5: the
    validation loss falls while w < 1.5 and rises after."""
    x = np.linspace(-1.0, 1.0, 21)[:, None]
    return x, 3.0 * x[:, 0], x, 1.5 * x[:, 0]


def _numpy_curves(x, y, xv, yv, lr, epochs):
    """float64 NumPy gradient descent on 0.5 mean (x w - y)^2: w after each epoch and the validation loss."""
    w, ws, val = 0.0, [], []
    for _ in range(epochs):
        w = w - lr * np.mean(x[:, 0] * (x[:, 0] * w - y))
        ws.append(w)
        val.append(0.5 * np.mean((xv[:, 0] * w - yv) ** 2))
    return np.array(ws), np.array(val)


@pytest.mark.parametrize("patience", [0, 3])
def test_early_stopping_stops_where_the_validation_curve_says(patience):
    x, y, xv, yv = _u_shaped_problem()
    lr, epochs = 0.1, 60
    ws, val = _numpy_curves(x, y, xv, yv, lr, epochs)
    best = int(np.argmin(val))
    assert 2 < best < epochs - 5 and np.all(np.diff(val[best:]) > 0)  # the curve is U-shaped
    expected_stop = best + max(patience, 1)  # Keras: patience epochs without improvement (0 acts as 1)

    obj = jaxloss.least_squares(fit_intercept=False)
    stop = jaxloss.EarlyStopping(patience=patience, restore_best=True)
    res = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.sgd(lr),
        epochs=epochs,
        validation_data=(xv, yv),
        callbacks=[stop],
        verbose=0,
    )
    assert res.epochs == expected_stop + 1 and stop.stopped_epoch == expected_stop
    assert stop.best_epoch == best
    assert_close(res.history["val_loss"], val[: expected_stop + 1], np.float64)
    assert_close(stop.best, val[best], np.float64)
    assert_close(res.params["w"][0], ws[best], np.float64)  # restored
    # without restore_best the last epoch's parameters are kept
    res2 = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.sgd(lr),
        epochs=epochs,
        validation_data=(xv, yv),
        callbacks=[jaxloss.EarlyStopping(patience=patience)],
        verbose=0,
    )
    assert_close(res2.params["w"][0], ws[expected_stop], np.float64)


def test_early_stopping_min_delta_mode_and_baseline():
    x, y, xv, yv = _u_shaped_problem()
    lr, epochs = 0.1, 60
    ws, val = _numpy_curves(x, y, xv, yv, lr, epochs)
    obj = jaxloss.least_squares(fit_intercept=False)
    # min_delta: an improvement must beat the best by more than min_delta (NumPy replay of that rule)
    delta = 2e-3
    best, wait, stop_at = np.inf, 0, None
    for e, v in enumerate(val):
        wait += 1
        if v < best - delta:
            best, wait = v, 0
        elif wait >= 1 and e > 0:
            stop_at = e
            break
    stop = jaxloss.EarlyStopping(min_delta=delta)
    res = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.sgd(lr),
        epochs=epochs,
        validation_data=(xv, yv),
        callbacks=[stop],
        verbose=0,
    )
    assert stop_at is not None and res.epochs == stop_at + 1
    # mode "max" on the negated curve stops at the same epoch as "min" on the curve
    neg = jaxloss.EarlyStopping(monitor="val_neg", mode="max", patience=2)
    res_neg = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.sgd(lr),
        epochs=epochs,
        validation_data=(xv, yv),
        metrics={"neg": lambda p, t: -0.5 * jnp.mean((p - t) ** 2)},
        callbacks=[neg],
        verbose=0,
    )
    assert res_neg.epochs == int(np.argmin(val)) + 2 + 1
    assert jaxloss.EarlyStopping(monitor="val_accuracy").mode == "max"
    # a baseline that is never beaten stops after `patience` epochs
    res_b = jaxloss.fit(
        obj,
        obj.init_params(x),
        (x, y),
        optax.sgd(lr),
        epochs=epochs,
        validation_data=(xv, yv),
        callbacks=[jaxloss.EarlyStopping(baseline=0.0, patience=4)],
        verbose=0,
    )
    assert res_b.epochs == 4
    with pytest.raises(ValueError, match="mode must be"):
        jaxloss.EarlyStopping(mode="up")


def test_function_callback_can_stop_and_see_state():
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    calls = []

    def cb(epoch, logs, state):
        calls.append((epoch, sorted(logs), state.epoch, len(state.history["loss"])))
        return epoch == 2  # True stops

    res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.1), epochs=10, callbacks=[cb], verbose=0)
    assert res.epochs == 3 and res.num_steps == 3
    assert calls == [(0, ["loss"], 0, 1), (1, ["loss"], 1, 2), (2, ["loss"], 2, 3)]


def test_non_finite_loss_stops_with_a_warning():
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.0)
    with pytest.warns(RuntimeWarning, match="training loss is (inf|nan) at epoch"):
        res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(1e3), epochs=200, verbose=0)
    assert res.epochs < 200 and not np.isfinite(res.history["loss"][-1])
    assert np.all(np.isfinite(res.history["loss"][:-1]))


# ---------------------------------------------------------------------------------------------------------
# Progress and reprs
# ---------------------------------------------------------------------------------------------------------


def test_verbose_levels(capsys):
    x, y = _regression()
    obj = jaxloss.ridge_regression(0.1)
    res = jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.1), epochs=2, validation_data=(x, y), verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"epoch {e + 1}/2 - loss: {res.history['loss'][e]:.4g} - val_loss: {res.history['val_loss'][e]:.4g}"
        for e in range(2)
    ]
    # default (verbose=None) outside an interactive session: nothing on stdout or stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.1), epochs=2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    # verbose=1: a tqdm bar on stderr with the last logs
    jaxloss.fit(obj, obj.init_params(x), (x, y), optax.sgd(0.1), epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert "fit: 100%" in err and "2/2" in err and "loss:" in err


def test_reprs_show_hyperparameters():
    reg = jaxloss.l2(1e-4, mask=jaxloss.not_bias) + jaxloss.elastic_net(0.1, 0.3) + jaxloss.group_lasso(0.2, axis=0)
    assert repr(reg) == (
        "l2(strength=0.0001, mask=not_bias) + elastic_net(strength=0.1, l1_ratio=0.3) + "
        "group_lasso(strength=0.2, axis=0)"
    )
    assert repr(jaxloss.l1(0.5, mask={"w": True, "b": False})) == "l1(strength=0.5, mask={'b': False, 'w': True})"
    assert repr(jaxloss.output_entropy(0.1)) == "output_entropy(strength=0.1, axis=-1)"
    assert repr(jaxloss.l2(jnp.ones(3, jnp.float32))) == "l2(strength=<float32[3]>)"

    def mlp(params, x):
        return x @ params

    obj = jaxloss.objective(mlp, jaxloss.cross_entropy, jaxloss.l2(1e-4), label_smoothing=0.1)
    assert repr(obj) == "Objective(model=mlp, loss=cross_entropy(label_smoothing=0.1), regularizer=l2(strength=0.0001))"
    assert repr(jaxloss.huber_regression(1.35, 1e-3)) == (
        "Objective(model=_linear, loss=huber(delta=1.35), regularizer=l2(strength=0.001, mask=_weights_only))"
    )
    x, y = _regression()
    res = jaxloss.fit(
        jaxloss.ridge_regression(0.1),
        jaxloss.ridge_regression(0.1).init_params(x),
        (x, y),
        optax.sgd(0.1),
        epochs=2,
        verbose=0,
    )
    assert repr(res) == f"FitResult(epochs=2, num_steps=2, loss={res.history['loss'][-1]:.6g}, params=<4 numbers>)"


def test_equinox_module_through_fit_with_validation_and_restore_best():
    """An Equinox module (with a function leaf) keeps its type; restored params are the best epoch's, and
    val_loss equals the NumPy mean squared error of the module's predictions on those params."""
    import equinox as eqx

    x, y = _regression(n=24)
    xv, yv = _regression(seed=5, n=12)
    model = eqx.nn.MLP(D, "scalar", width_size=4, depth=1, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    obj = jaxloss.objective(model, jaxloss.mse)
    seen = []
    stop = jaxloss.EarlyStopping(patience=100, restore_best=True)  # never stops: restores the best at the end
    res = jaxloss.fit(
        obj,
        model,
        (x, y),
        optax.adam(0.05),
        epochs=6,
        batch_size=8,
        validation_data=(xv, yv),
        callbacks=[stop, lambda e, logs, st: seen.append(st.params)],
        verbose=0,
    )
    assert isinstance(res.params, eqx.nn.MLP) and res.params.activation is jax.nn.tanh and res.epochs == 6
    val = [np.mean((np.asarray(jax.vmap(m)(xv), np.float64) - yv) ** 2) for m in seen]
    assert_close(res.history["val_loss"], val, np.float64)
    best = int(np.argmin(val))
    assert stop.best_epoch == best and stop.stopped_epoch is None
    assert_tree_close(eqx.filter(res.params, eqx.is_array), eqx.filter(seen[best], eqx.is_array), np.float64)
