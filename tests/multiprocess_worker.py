"""One process of tests/test_multiprocess.py: a data-parallel DP-SGD training step across processes.

``python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.json`` joins a
``jax.distributed`` job on 127.0.0.1:PORT (CPU collectives: gloo), holds its half of a global batch,
builds the global batch array over a mesh of every process's device, and runs 3 jitted steps of
``clipped_mean_grad`` (a jaxloss ``objective`` with ``cross_entropy``, clipping and Gaussian noise) and an
optax update. ``NUM_PROCESSES=1`` (``PROCESS_ID`` and ``PORT`` ignored) runs the same steps on one device,
without ``jax.distributed``: the reference. Process 0 writes the final parameters to ``OUT.json``.
"""

from __future__ import annotations

import json
import os
import sys

B, D, C, STEPS = 16, 5, 3, 3


def data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype(np.float32)
    y = rng.integers(0, C, B).astype(np.int32)
    params = {"w": (rng.normal(size=(D, C)) * 0.5).astype(np.float32), "b": np.zeros(C, np.float32)}
    return x, y, params


def main(pid: int, nproc: int, port: int, out: str):
    os.environ.pop("XLA_FLAGS", None)  # one CPU device per process
    import jax

    if nproc > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid, initialization_timeout=120
        )
    import jax.numpy as jnp  # noqa: F401
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxloss

    x, y, params = data()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    share = B // nproc
    local = slice(pid * share, (pid + 1) * share) if nproc > 1 else slice(None)
    # each process holds only its half of the global batch
    batch = tuple(jax.make_array_from_process_local_data(rows, a[local], (B,) + a.shape[1:]) for a in (x, y))
    params = jax.tree_util.tree_map(lambda a: jax.make_array_from_process_local_data(rep, a), params)

    obj = jaxloss.objective(lambda p, x: x @ p["w"] + p["b"], jaxloss.cross_entropy, label_smoothing=0.1)
    opt = optax.sgd(0.5)

    @jax.jit
    def step(params, state, batch, key):
        out = jaxloss.clipped_mean_grad(obj, params, batch, max_norm=0.5, noise_multiplier=0.3, key=key)
        updates, state = opt.update(out.grads, state, params)
        return optax.apply_updates(params, updates), state, jnp.mean(out.losses)

    state = opt.init(params)
    losses = []
    for i in range(STEPS):
        params, state, loss = step(params, state, batch, jax.random.PRNGKey(i))
        losses.append(float(np.asarray(loss.addressable_data(0))))
    result = {k: np.asarray(v.addressable_data(0)).tolist() for k, v in params.items()}
    result["losses"] = losses
    result["devices"] = len(jax.devices())
    if pid == 0:
        with open(out, "w") as f:
            json.dump(result, f)
    if nproc > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
