"""jaxloss: pure, jit-compilable losses, regularizers and objective builders for JAX.

Every public loss is reachable as ``jaxloss.<name>`` and from its family module
(``jaxloss.regression``, ``jaxloss.classification``, ...). ``jaxloss._core`` holds the shared contract:
``fn(predictions, targets, *, hyperparameters, weights=None, where=None, reduction="mean")``.
"""

from jaxloss import _core
from jaxloss import (
    classification,
    divergence,
    embedding,
    fused,
    objectives,
    optimize,
    per_sample,
    prox,
    ranking,
    regression,
    regularizers,
    rl,
    segmentation,
    sequence,
    training,
)
from jaxloss._core import checked
from jaxloss.classification import *  # noqa: F401,F403
from jaxloss.divergence import *  # noqa: F401,F403
from jaxloss.embedding import *  # noqa: F401,F403
from jaxloss.fused import *  # noqa: F401,F403
from jaxloss.objectives import *  # noqa: F401,F403
from jaxloss.optimize import *  # noqa: F401,F403
from jaxloss.per_sample import *  # noqa: F401,F403
from jaxloss.ranking import *  # noqa: F401,F403
from jaxloss.regression import *  # noqa: F401,F403
from jaxloss.regularizers import *  # noqa: F401,F403
from jaxloss.rl import *  # noqa: F401,F403
from jaxloss.segmentation import *  # noqa: F401,F403
from jaxloss.sequence import *  # noqa: F401,F403
from jaxloss.training import *  # noqa: F401,F403

__version__ = "0.1.0"

_MODULES = (
    regression, classification, divergence, embedding, ranking, sequence, segmentation, rl, fused,
    regularizers, objectives, optimize, training, per_sample,
)

__all__ = ["checked", "prox", *(name for module in _MODULES for name in module.__all__)]
