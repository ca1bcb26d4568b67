"""The one list of jaxloss's public modules, read by ``jaxloss/__init__.py``'s tests, the contract tests
and the README test.

Every public name of jaxloss is exported by exactly one module listed here (its ``__all__``) and re-exported
flat as ``jaxloss.<name>``; ``jaxloss.__all__`` is :func:`public_names` (a test checks both). The modules
of :data:`LOSS_FAMILIES` export losses: each of their names, except the helpers in :data:`NOT_LOSSES`,
needs a contract case in ``tests/cases_<family>.py`` and a row in the README's catalog table. The modules
of :data:`TOOLS` export regularizers, objectives, drivers and per-sample tools, tested in their own files.
``jaxloss.prox`` is a namespace of its own (its operators share their penalties' names, see
``docs/naming.md``) and is not flattened.

To add a module: list it here, import its names explicitly in ``jaxloss/__init__.py`` and add them to
``__all__`` there.
"""

from __future__ import annotations

import importlib
from typing import Dict, Tuple

# Modules whose public names are losses ``fn(predictions, targets, *, ..., reduction=)``.
LOSS_FAMILIES: Tuple[str, ...] = (
    "regression",
    "classification",
    "divergence",
    "embedding",
    "ranking",
    "sequence",
    "segmentation",
    "rl",
    "fused",
)

# Modules whose public names are not losses: loss constructors (fenchel_young, whose instances are checked
# against the contract in tests/test_fenchel_young.py), regularizers, objectives, optimization drivers,
# per-sample tools.
TOOLS: Tuple[str, ...] = (
    "fenchel",
    "regularizers",
    "objectives",
    "optimize",
    "implicit",
    "influence_functions",
    "training",
    "per_sample",
)

# Public names of loss families that are helpers, not losses (they have their own tests).
NOT_LOSSES = frozenset({"smooth_labels"})

# Names of ``jaxloss`` that no module's ``__all__`` lists: checked mode, the ``prox`` namespace and the
# ``Reduction`` type (``Literal["mean", "sum", "none"]``, from ``jaxloss/_typing.py``).
EXTRAS: Tuple[str, ...] = ("checked", "prox", "Reduction")


def module_names(modules: Tuple[str, ...] = LOSS_FAMILIES + TOOLS) -> Dict[str, Tuple[str, ...]]:
    """``{module: its __all__}`` for the given modules of the registry, in registry order."""
    return {m: tuple(importlib.import_module(f"jaxloss.{m}").__all__) for m in modules}


def loss_names() -> frozenset:
    """Every public loss: the names of the loss families, less :data:`NOT_LOSSES`."""
    return frozenset(n for names in module_names(LOSS_FAMILIES).values() for n in names) - NOT_LOSSES


def public_names() -> Tuple[str, ...]:
    """``jaxloss.__all__``: :data:`EXTRAS`, then every module's names in registry order."""
    return EXTRAS + tuple(n for names in module_names().values() for n in names)
