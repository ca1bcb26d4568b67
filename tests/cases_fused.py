"""Contract case for the fused loss, ``linear_cross_entropy(hidden, weight, labels)``.

The ``[H, V]`` weight (and bias) are shared by all examples, whereas the harness gives every argument an
example axis (it vmaps and slices them all); so the case binds a fixed weight and bias and varies
``hidden`` and ``labels``, whose gradients and masking the generic checks test. Gradients with respect to
the weight and bias are compared with the naive path and PyTorch in ``tests/test_fused.py``.
"""

import functools
import inspect

import jax.numpy as jnp
import numpy as np

import jaxloss
from harness import LossCase

H, V = 6, 37  # 37 classes: the chunk size 10 does not divide them, so the tail chunk is exercised

_rng = np.random.default_rng(0)
_W = _rng.normal(size=(H, V))
_B = _rng.normal(size=(V,))


@functools.wraps(jaxloss.linear_cross_entropy, assigned=())  # sets __wrapped__: the public loss it calls
def linear_cross_entropy(hidden, labels, **kw):
    """``jaxloss.linear_cross_entropy`` with the fixed ``[H, V]`` weight and ``[V]`` bias, in hidden's dtype."""
    dt = jnp.asarray(hidden).dtype
    dt = dt if jnp.issubdtype(dt, jnp.floating) else np.float32
    return jaxloss.linear_cross_entropy(
        hidden, jnp.asarray(_W, dt), labels, bias=jnp.asarray(_B, dt), chunk_size=10, **kw
    )


# functools.wraps sets __wrapped__, which inspect.signature would follow to the public (hidden, weight, labels):
# the harness reads the case's positional names from the signature, so the wrapper states its own.
linear_cross_entropy.__signature__ = inspect.signature(linear_cross_entropy, follow_wrapped=False)


def hidden_and_labels(rng, dtype, batch):
    return rng.normal(size=(batch, H)).astype(dtype), rng.integers(0, V, size=batch)


CASES = [
    LossCase(
        "linear_cross_entropy",
        linear_cross_entropy,
        hidden_and_labels,
        kwargs=dict(label_smoothing=0.1, z_loss=1e-3),
        not_applicable={
            "second_order": "a jax.custom_vjp (reverse mode only, as its docstring says): forward-mode jvp and "
            "forward-over-reverse Hessian-vector products are not defined for it"
        },
    ),
]
