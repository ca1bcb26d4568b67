"""Type aliases used in jaxloss's public signatures (written once, here).

- ``ArrayLike`` (``jax.typing.ArrayLike``): what a loss accepts — a ``jax.Array``, a NumPy array or
  scalar, or a Python number.
- ``Array`` (``jax.Array``): what a loss returns.
- ``Reduction``: the ``reduction=`` argument, ``"mean"``, ``"sum"`` or ``"none"``; a type checker
  rejects any other string (and jaxloss raises ``ValueError`` at run time).
- ``PyTree``: a pytree of arrays (parameters, batches); JAX has no precise static type for it.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import jax
from jax.typing import ArrayLike

__all__ = ["Array", "ArrayLike", "PyTree", "Reduction"]

Array: TypeAlias = jax.Array
"""What a loss returns: a ``jax.Array`` (a scalar for ``"mean"``/``"sum"``)."""

Reduction: TypeAlias = Literal["mean", "sum", "none"]
"""The ``reduction=`` argument of every loss (``jaxloss.Reduction``): ``"mean"`` (default; the weighted
mean over unmasked entries), ``"sum"`` or ``"none"`` (unreduced). A type checker rejects any other
string; at run time an unknown string raises ``ValueError``."""

PyTree: TypeAlias = Any
"""A pytree of arrays (parameters, batches); JAX has no precise static type for it."""
