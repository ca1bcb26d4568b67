"""The sharded contract checks, run on 8 simulated CPU devices in their own process by tests/test_sharded.py.

``python tests/sharded_checks.py [OUT.json]`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
before importing JAX (the rest of the suite keeps its devices), runs every check and writes
``{check name: [passed, message]}``. Every check compares a computation under ``jax.jit`` with its inputs
sharded by ``NamedSharding`` over a mesh of 8 devices against the same computation on one device
(relative 1e-5, float32): the registered losses (tests/cases_*.py, masks and weights sharded too), the fused
``linear_cross_entropy`` (data parallel, vocabulary parallel, both on a 2-D mesh), ``objective``,
``minimize``, ``fit``, ``train_step`` and the per-sample tools; and that the layouts hold: per-example
outputs and gradients come back sharded like their inputs, and the compiled HLO gathers no weight, no
logits and no batch.

Compile-light: the losses of one family are computed under one ``jax.jit`` (one compile per family and
layout), with batches of 8 examples.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    os.environ.setdefault("KERAS_BACKEND", "jax")

import importlib  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
RTOL, ATOL = 1e-5, 1e-6
BATCH = 8
FAMILIES = sorted(p.stem for p in HERE.glob("cases_*.py"))


def family_cases(module_name):
    """``[(check id, case)]`` of a ``cases_<family>`` module; ids are ``loss-<name>`` (``#k`` for the k-th
    further case of the same name)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    out, seen = [], {}
    for case in importlib.import_module(module_name).CASES:
        k = seen.get(case.name, 0)
        seen[case.name] = k + 1
        out.append((f"loss-{case.name}" + (f"#{k}" if k else ""), case))
    return out


def loss_check_ids():
    return [cid for family in FAMILIES for cid, _ in family_cases(family)]


# ---------------------------------------------------------------------------------------------------------


def main(out_path):
    import jax
    import jax.numpy as jnp
    import optax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, str(HERE.parent))
    import jaxloss

    devices = jax.devices()
    assert len(devices) == 8, devices
    mesh = Mesh(np.array(devices), ("d",))
    one = jax.sharding.SingleDeviceSharding(devices[0])
    results = {}

    def named(*spec, m=mesh):
        return NamedSharding(m, P(*spec))

    def batch_sharded(tree, n=BATCH):
        """Every array with a leading axis of ``n`` sharded on it, the rest replicated."""
        return jax.tree_util.tree_map(
            lambda x: jax.device_put(x, named("d") if np.ndim(x) and np.shape(x)[0] == n else named()), tree
        )

    def on_one(tree):
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, one), tree)

    def close(a, b, what):
        for i, (x, y) in enumerate(zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))):
            x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
            np.testing.assert_allclose(x64, y64, rtol=RTOL, atol=ATOL, err_msg=f"{what}, leaf {i}")

    def spec0(x):
        s = getattr(x, "sharding", None)
        return tuple(s.spec)[:1] if isinstance(s, NamedSharding) else None

    def record(name, fn):
        try:
            msg = fn()
            results[name] = [True, msg or ""]
        except Exception as e:  # noqa: BLE001 - the message goes to the test
            results[name] = [False, f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"]

    def gathers(hlo, min_elements):
        found = []
        for m in re.finditer(r"= \w+\[([\d,]*)\][^ ]* all-gather(?:-start)?\(", hlo):
            if int(np.prod([int(d) for d in m.group(1).split(",") if d])) >= min_elements:
                found.append(m.group(0))
        return found

    # -- 1. every registered loss ------------------------------------------------------------------------
    keep = np.array([True, False, True, True, False, True, True, True])
    for family in FAMILIES:
        cases = family_cases(family)
        inputs = {}
        for cid, case in cases:
            arrays = tuple(np.asarray(a) for a in case.make(np.random.default_rng(0), np.float32, BATCH))
            none = jax.eval_shape(lambda *a, c=case: c.call(*a, reduction="none"), *arrays)
            where = keep.reshape((-1,) + (1,) * (len(none.shape) - 1))
            w = np.random.default_rng(1).uniform(0.5, 2.0, none.shape).astype(np.float32) if case.weighted else None
            inputs[cid] = (arrays, where, w)

        def compute(inputs, cases=cases):
            out = {}
            for cid, case in cases:
                arrays, where, w = inputs[cid]
                extra = {} if w is None else {"weights": w}

                def f(*diff, case=case, arrays=arrays, where=where, extra=extra):
                    full = list(arrays)
                    for i, d in zip(case.diff, diff):
                        full[i] = d
                    return case.call(*full, where=where, **extra)

                value, grads = jax.value_and_grad(f, argnums=tuple(range(len(case.diff))))(
                    *[arrays[i] for i in case.diff]
                )
                out[cid] = (value, grads, case.call(*arrays, where=where, reduction="none"))
            return out

        fn = jax.jit(compute)
        try:
            single = fn(on_one(inputs))
            sharded = fn(batch_sharded(inputs))
        except Exception as e:  # noqa: BLE001
            for cid, _ in cases:
                results[cid] = [False, f"{family} failed to run: {type(e).__name__}: {e}"]
            continue
        for cid, _ in cases:

            def check(cid=cid, sharded=sharded, single=single):
                close(sharded[cid], single[cid], cid)
                layout = [spec0(g) for g in sharded[cid][1]] + [spec0(sharded[cid][2])]
                assert all(s == ("d",) for s in layout), (
                    f"gradients / per-example losses not sharded on the batch: {layout}"
                )
                return "equal; gradients and per-example losses sharded on the batch"

            record(cid, check)

    # -- 2. linear_cross_entropy: data, vocabulary and 2-D parallel ------------------------------------
    N, H, V = 16, 8, 64
    rng = np.random.default_rng(2)
    h = rng.normal(size=(N, H)).astype(np.float32)
    w = rng.normal(size=(H, V)).astype(np.float32)
    b = rng.normal(size=(V,)).astype(np.float32)
    y = rng.integers(0, V, N)
    y[[1, 6]] = 5
    probs = rng.dirichlet(np.ones(V) * 0.5, size=N).astype(np.float32)
    mask = rng.uniform(size=N) > 0.2
    tok_w = rng.uniform(0.5, 2.0, N).astype(np.float32)
    cw = rng.uniform(0.5, 2.0, V).astype(np.float32)
    mesh2 = Mesh(np.array(devices).reshape(4, 2), ("b", "v"))
    layouts = {
        "data": dict(rows=named("d"), w=named(), vec=named()),
        "vocab": dict(rows=named(), w=named(None, "d"), vec=named("d")),
        "2d": dict(rows=named("b", m=mesh2), w=named(None, "v", m=mesh2), vec=named("v", m=mesh2)),
    }
    variants = {
        "labels": dict(t=y, kw=dict(label_smoothing=0.1, z_loss=1e-3, ignore_index=5)),
        "class_weights": dict(t=y, kw=dict(label_smoothing=0.1), cw=True),
        "probs": dict(t=probs, kw=dict(label_smoothing=0.1, z_loss=1e-3), cw=True),
        "bf16": dict(t=y, kw=dict(label_smoothing=0.1), bf16=True),
    }
    for vname, var in variants.items():

        def lce(h, w, b, t, mask, tok_w, cw, var=var):
            """value_and_grad of the mean (one pass, chunk 64) and of the summed per-token losses (chunk 4)."""
            outs = []
            for reduction, chunk in (("mean", 64), ("none", 4)):

                def f(h, w, b, reduction=reduction, chunk=chunk):
                    out = jaxloss.linear_cross_entropy(
                        h,
                        w,
                        t,
                        bias=b,
                        chunk_size=chunk,
                        where=mask,
                        weights=tok_w,
                        class_weights=cw,
                        reduction=reduction,
                        **var["kw"],
                    )
                    return jnp.sum(out.astype(jnp.float32))

                outs.append(jax.value_and_grad(f, (0, 1, 2))(h, w, b))
            return outs

        fn = jax.jit(lce)
        dt = jnp.bfloat16 if var.get("bf16") else np.float32
        args = (
            jnp.asarray(h, dt),
            jnp.asarray(w, dt),
            jnp.asarray(b, dt),
            var["t"],
            mask,
            tok_w,
            cw if var.get("cw") else None,
        )
        single = fn(*on_one(args))
        for lname, lay in layouts.items():

            def check(lname=lname, lay=lay, args=args, single=single, fn=fn, var=var):
                rows, vec = lay["rows"], lay["vec"]
                t_sharding = (
                    rows
                    if np.ndim(args[3]) == 1
                    else NamedSharding(
                        rows.mesh, P(rows.spec[0] if rows.spec else None, vec.spec[0] if vec.spec else None)
                    )
                )
                shard = [rows, lay["w"], vec, t_sharding, rows, rows, vec]
                outs = fn(*[a if a is None else jax.device_put(a, s) for a, s in zip(args, shard)])
                tol = dict(rtol=2e-2, atol=2e-2) if var.get("bf16") else dict(rtol=RTOL, atol=ATOL)
                for (value, grads), (ref_v, ref_g), red in zip(outs, single, ("mean", "none")):
                    for x, ref, what in zip(
                        (value,) + tuple(grads), (ref_v,) + tuple(ref_g), ("value", "dh", "dw", "db")
                    ):
                        np.testing.assert_allclose(
                            np.asarray(x, np.float64), np.asarray(ref, np.float64), **tol, err_msg=f"{red}: {what}"
                        )
                    for g, s, what in zip(grads, shard[:3], ("hidden", "weight", "bias")):
                        assert g.sharding.is_equivalent_to(s, g.ndim), (
                            f"{red}: {what} gradient {g.sharding.spec} != {s.spec}"
                        )
                return "equal (mean: one pass; none: vocabulary chunks); gradients sharded like hidden / weight / bias"

            record(f"linear_cross_entropy-{vname}-{lname}", check)

    def lce_hlo():
        n, hd, v, chunk = 1024, 256, 16384, 1024  # one-pass row blocks of 64 rows on one device
        shapes = [((n, hd), jnp.float32), ((hd, v), jnp.float32), ((n,), jnp.int32)]

        def compiled(fn, shardings):
            args = [jax.ShapeDtypeStruct(s, d, sharding=sh) for (s, d), sh in zip(shapes, shardings)]
            return jax.jit(jax.value_and_grad(fn, (0, 1))).lower(*args).compile()

        fused = lambda h, w, y: jaxloss.linear_cross_entropy(h, w, y, chunk_size=chunk)  # noqa: E731
        naive = lambda h, w, y: jaxloss.cross_entropy(h @ w, y)  # noqa: E731
        mib = lambda c: c.memory_analysis().temp_size_in_bytes / 2**20  # noqa: E731
        single = mib(compiled(fused, [one] * 3))
        vp = compiled(fused, [named(), named(None, "d"), named()])
        dp = compiled(fused, [named("d", None), named(), named("d")])
        naive_vp = compiled(naive, [named(), named(None, "d"), named()])
        big = min(hd * v, n * v) // 8 + 1
        assert not gathers(vp.as_text(), big), gathers(vp.as_text(), big)
        assert not gathers(dp.as_text(), big), gathers(dp.as_text(), big)
        target = single / 8 + n * hd * 4 / 2**20
        assert mib(vp) <= target, (mib(vp), target)
        assert mib(dp) <= single / 3, (mib(dp), single)  # falls with the token shard (1/4 at the benchmark size)
        return (
            f"temp MiB per device: one device {single:.2f}, vocabulary parallel {mib(vp):.2f} (target {target:.2f}), "
            f"data parallel {mib(dp):.2f}; naive vocabulary parallel {mib(naive_vp):.2f}; no large all-gather"
        )

    record("linear_cross_entropy-hlo-memory", lce_hlo)

    # -- 3. objective, minimize, fit, train_step and the per-sample tools --------------------------------
    B = 32
    x = rng.normal(size=(B, 5)).astype(np.float32)
    labels = rng.integers(0, 3, B)
    params = {"w": (rng.normal(size=(5, 3)) * 0.3).astype(np.float32), "b": np.zeros(3, np.float32)}
    model = lambda p, x: x @ p["w"] + p["b"]  # noqa: E731
    obj = jaxloss.objective(model, jaxloss.cross_entropy, jaxloss.l2(1e-2))
    data = (x, labels)
    data_sh, data_one = batch_sharded(data, B), on_one(data)
    params_one = on_one(params)
    params_rep = jax.tree_util.tree_map(lambda a: jax.device_put(a, named()), params)

    def both(fn, *args):
        return fn(params_one, data_one, *args), fn(params_rep, data_sh, *args)

    def check_same(name, fn, batch_leaves=False):
        def run():
            a, s = both(jax.jit(fn))
            close(s, a, name)
            if batch_leaves:  # per-example outputs stay where the examples live
                specs = {spec0(leaf) for leaf in jax.tree_util.tree_leaves(batch_leaves(s))}
                assert specs == {("d",)}, f"per-example outputs not sharded on the batch: {specs}"
                return "equal; per-example outputs sharded on the batch"
            return "equal"

        record(name, run)

    check_same("objective", lambda p, d: jax.value_and_grad(obj)(p, d))
    check_same("train_step", lambda p, d: jaxloss.train_step(obj, optax.adam(0.1))(p, optax.adam(0.1).init(p), d)[::2])
    for chunk in (None, 8):
        tag = f"chunk{chunk}"
        check_same(
            f"per_sample_grads-{tag}",
            lambda p, d, c=chunk: jaxloss.per_sample_grads(obj, p, d, chunk_size=c),
            batch_leaves=lambda out: out,
        )
        check_same(
            f"per_sample_grad_norms-{tag}",
            lambda p, d, c=chunk: jaxloss.per_sample_grad_norms(obj, p, d, chunk_size=c, per_layer=True),
            batch_leaves=lambda out: out,
        )
        check_same(
            f"clipped_mean_grad-{tag}",
            lambda p, d, c=chunk: jaxloss.clipped_mean_grad(obj, p, d, 0.5, 1.0, jax.random.PRNGKey(3), chunk_size=c),
            batch_leaves=lambda out: (out.norms, out.losses),
        )
        check_same(f"grad_statistics-{tag}", lambda p, d, c=chunk: jaxloss.grad_statistics(obj, p, d, chunk_size=c))

        def no_batch_gather(c=chunk):
            hlo = (
                jax.jit(lambda p, d: jaxloss.per_sample_grad_norms(obj, p, d, chunk_size=c))
                .lower(params_rep, data_sh)
                .compile()
                .as_text()
            )
            found = [g for g in gathers(hlo, 1) if f"[{B}," in g or f"[{B}]" in g]
            assert not found, found
            return "no all-gather of the batch in the compiled HLO"

        record(f"per_sample_no_batch_gather-{tag}", no_batch_gather)

    def minimize_check():
        a = jaxloss.minimize(obj, params_one, data_one, max_steps=30)
        s = jaxloss.minimize(obj, params_rep, data_sh, max_steps=30)
        close(s.params, a.params, "minimize params")
        close(s.value, a.value, "minimize value")
        return f"equal after {int(a.num_steps)} L-BFGS steps"

    record("minimize", minimize_check)

    def fit_check():
        halves = [(x[:16], labels[:16]), (x[16:], labels[16:])]
        a = jaxloss.fit(obj, params_one, [on_one(hb) for hb in halves], optax.adam(0.05), epochs=3, verbose=0)
        s = jaxloss.fit(
            obj, params_rep, [batch_sharded(hb, 16) for hb in halves], optax.adam(0.05), epochs=3, verbose=0
        )
        close(s.params, a.params, "fit params")
        close(s.history["loss"], a.history["loss"], "fit history")
        return "equal params and loss history over 3 epochs of 2 batches"

    record("fit", fit_check)

    def noise_check():
        sigma, clip, keys = 1.0, 0.5, jax.random.split(jax.random.PRNGKey(7), 400)

        def noise(p, d, ks):
            clean = jaxloss.clipped_mean_grad(obj, p, d, clip).grads
            noisy = jax.vmap(lambda k: jaxloss.clipped_mean_grad(obj, p, d, clip, sigma, k).grads)(ks)
            return jax.tree_util.tree_map(lambda n, c: n - c, noisy, clean)

        f = jax.jit(noise)
        a, s = f(params_one, data_one, keys), f(params_rep, data_sh, keys)
        close(s, a, "noise")  # the same draw as on one device
        samples = np.concatenate([np.asarray(leaf).reshape(len(keys), -1) for leaf in jax.tree_util.tree_leaves(s)], 1)
        var, expected = float(np.mean(samples**2)), (sigma * clip / B) ** 2
        # 400 keys x 18 coordinates: the relative standard error of the variance is sqrt(2 / 7200) = 1.7%
        assert abs(var / expected - 1) < 0.1, (var, expected)
        return f"noise variance {var:.3e} vs (sigma C / B)^2 = {expected:.3e} (once, not per device: 8x would be {8 * expected:.3e})"

    record("clipped_mean_grad-noise-variance", noise_check)

    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sharded_results.json")
