"""Typed usage of jaxloss, checked by mypy (`make typecheck`, tests/typing/check_usage.py).

The correct calls must type-check; each line marked ``# expect-error: <code>`` is a deliberate mistake
that mypy must report on that line with that error code — and mypy must report nothing else. The file is
never run; it holds no ``# type: ignore``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

pred = jnp.array([0.5, 2.0, -1.0])
target = jnp.zeros(3)
logits = jnp.zeros((4, 3))
labels = jnp.array([0, 1, 2, 0])

# ---- correct calls --------------------------------------------------------------------------------------
a: jax.Array = jaxloss.huber(pred, target, delta=0.5, reduction="none")
b: jax.Array = jaxloss.mse(np.zeros(3), np.ones(3), weights=np.ones(3))
c: jax.Array = jaxloss.cross_entropy(logits, labels, label_smoothing=0.1, reduction="sum")
d: jax.Array = jaxloss.binary_cross_entropy(pred, target, from_logits=False, where=target > 0)
e: jax.Array = jax.jit(jaxloss.huber)(pred, target)
f: float = float(jaxloss.kl_divergence(jax.nn.log_softmax(logits), jax.nn.softmax(logits)))
g: jax.Array = jaxloss.linear_cross_entropy(logits, jnp.zeros((3, 7)), labels, chunk_size=4)
reg: jaxloss.Regularizer = jaxloss.l2(1e-3, mask=jaxloss.not_bias) + jaxloss.l1(1e-4)
obj: jaxloss.Objective = jaxloss.objective(lambda p, x: x @ p["w"], jaxloss.mse, reg)
params = {"w": jnp.zeros((3,))}
res: jaxloss.OptimizeResult = jaxloss.minimize(
    obj, params, (jnp.ones((4, 3)), jnp.ones(4)), optax.lbfgs(), max_steps=10
)
grads = jaxloss.per_sample_grads(obj, params, (jnp.ones((4, 3)), jnp.ones(4)), chunk_size=2)
mode: jaxloss.Reduction = "mean"
h: jax.Array = jaxloss.focal(pred, target, gamma=2.0, reduction=mode)

# ---- deliberate mistakes: each must be reported, on its line, with its code ----------------------------
jaxloss.huber(pred, target, reduction="avg")  # expect-error: arg-type
jaxloss.mse("predictions", target)  # expect-error: arg-type
jaxloss.cross_entropy(logits)  # expect-error: call-arg
jaxloss.huber(pred, target, delt=1.0)  # expect-error: call-arg
n: int = jaxloss.mse(pred, target)  # expect-error: assignment
jaxloss.huber(pred, target, 1.0)  # expect-error: call-arg
jaxloss.minimize(obj, params, (pred, target), max_steps="100")  # expect-error: arg-type
jaxloss.l2("strong")  # expect-error: arg-type
jaxloss.cross_entropy(logits, labels, reduction=None)  # expect-error: arg-type
