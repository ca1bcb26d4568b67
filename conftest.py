"""Test configuration (tests and the doctests of jaxloss/): float64 available (tests pass float32 arrays explicitly), Keras on its JAX backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
# Two virtual CPU devices, so that sharded jit and shard_map are tested without a GPU.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# tests/typing/usage.py is read by mypy (make typecheck), never run: --doctest-modules would import it.
collect_ignore = ["tests/typing"]
