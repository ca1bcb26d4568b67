"""Test configuration: float64 available (tests pass float32 arrays explicitly), Keras on its JAX backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
