"""Per-sample gradient analysis: per-example losses, gradients and norms, DP-SGD clipping, gradient
statistics (noise scale), similarity and influence, and ghost norms for dense stacks.

**The objective.** Every function here takes a *batch objective* ``fn(params, batch) -> scalar``: ``batch``
is a pytree (an array, a tuple ``(inputs, targets)``, a dict, ...) whose leaves all share a leading example
axis, and ``fn`` is typically a mean loss over that axis — exactly what :func:`jaxloss.objective` returns.
The *per-example* value of example ``i`` is ``fn`` applied to example ``i`` alone as a batch of one
(every leaf sliced to ``x[i:i+1]``, so its leading axis has length 1); ``jax.vmap`` runs all of them at
once. The same objective therefore serves for training (``jax.grad(fn)``) and for analysis
(``per_sample_grads(fn, ...)``), and for a mean objective the mean of the per-example gradients is the
batch gradient. Models that couple the examples of a batch (batch normalisation) see each example alone.
With a :class:`jaxloss.Objective`, each example's value is its data term *plus the whole regularizer*
(so every per-example gradient contains the regularizer's gradient once; build the objective without a
regularizer to analyse the data term alone), and per-example weights in ``(inputs, targets, weights)``
cancel in a weighted mean over one example.

**Memory.** ``chunk_size=`` processes the batch in chunks of that many examples (a ``jax.lax.scan`` over
full chunks, then one call for the remainder when the batch size is not a multiple), so the peak memory
of the intermediate values is bounded by the chunk, not the batch. Functions that reduce over examples
(norms, clipping, statistics, influence) never hold more than one chunk of per-example gradients.
``chunk_size=None`` (the default) vectorises over the whole batch.

**Many devices (data parallel).** Under ``jax.jit`` with the batch sharded on its example axis
(``NamedSharding(mesh, P("data"))`` for every leaf; params replicated), the semantics are those of one
device and the work stays where the examples live: per-example losses, gradients and norms are computed on
the device that holds the example and come back sharded like the batch (with ``chunk_size`` too: the
chunks are strided across the batch, so every device processes its own examples of each chunk and the
batch is never gathered). Reductions over examples (the clipped sum of :func:`clipped_mean_grad`, the
moments of :func:`grad_statistics`) are partial sums on each device combined by one parameter-sized
all-reduce; the DP-SGD Gaussian noise is drawn once, from the one ``key``, and added once to the global
sum (its variance does not grow with the number of devices), so a sharded step gives the same numbers as
one device for the same key. ``B`` in the normalisation is the global batch size.

Everything is pure and jit-compilable with ``fn`` and ``chunk_size`` static, e.g.
``jax.jit(functools.partial(per_sample_grads, fn, chunk_size=64))(params, batch)``.

**Models.** ``params`` may be a pytree, Flax linen variables, a Flax NNX module (or State) or an Equinox
module (see ``jaxloss._models``): only the trainable arrays are differentiated, and gradients come back in
their form (an ``nnx.State`` of ``nnx.Param``, an ``eqx.partition``-ed module, linen ``{"params": ...}``).

**Ghost norms.** ``per_sample_grad_norms(..., method="ghost")`` and ``clipped_mean_grad(...,
method="ghost")`` get the per-example norms of any model from one forward/backward pass by analysing its
jaxpr, never forming per-example weight gradients, and clip by a second backward pass or by book-keeping,
chosen per model (see :mod:`jaxloss.per_sample.ghost`; :func:`ghost_plan` says which parameters take the
exact path and which clipping is used).
"""

from jaxloss.per_sample.clipping import ClippedGrad, clipped_mean_grad
from jaxloss.per_sample.ghost import (
    GhostPlan,
    dense_stack_apply,
    dense_stack_objective,
    ghost_clipped_grad,
    ghost_clipped_mean_grad,
    ghost_grad_norms,
    ghost_norms,
    ghost_plan,
)
from jaxloss.per_sample.grads import per_sample_grad_norms, per_sample_grads, per_sample_losses
from jaxloss.per_sample.influence import grad_cosine_similarity, tracin_influence
from jaxloss.per_sample.statistics import (
    GradStatistics,
    NoiseScale,
    grad_statistics,
    grad_statistics_from_grads,
    noise_scale_from_batch_sizes,
    two_batch_noise_scale,
)

__all__ = [
    "per_sample_losses",
    "per_sample_grads",
    "per_sample_grad_norms",
    "clipped_mean_grad",
    "ClippedGrad",
    "grad_statistics",
    "grad_statistics_from_grads",
    "GradStatistics",
    "noise_scale_from_batch_sizes",
    "two_batch_noise_scale",
    "NoiseScale",
    "grad_cosine_similarity",
    "tracin_influence",
    "dense_stack_apply",
    "dense_stack_objective",
    "ghost_grad_norms",
    "ghost_clipped_mean_grad",
    "ghost_plan",
    "GhostPlan",
    "ghost_norms",
    "ghost_clipped_grad",
]
