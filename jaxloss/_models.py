"""Models as users write them: the one place in jaxloss that knows model frameworks.

Every entry point that takes a model or its parameters (:func:`jaxloss.objective`, :func:`jaxloss.minimize`,
:func:`jaxloss.fit`, :func:`jaxloss.train_step`, the ``per_sample_*`` functions, :func:`jaxloss.clipped_mean_grad`,
:func:`jaxloss.grad_statistics`, :func:`jaxloss.tracin_influence`, the ghost norms) goes through this module:

* :func:`adapt` turns what the user passes as *the model* into a :class:`Model`, a pure
  ``apply(params, inputs) -> (predictions, params_after)``:

  - a plain function ``fn(params, inputs)`` (``params`` any pytree);
  - a Flax linen module (or its bound ``module.apply``) with its variables ``{"params": ..., "batch_stats": ...}``:
    every collection other than ``params`` is passed as ``mutable`` and its update comes back in
    ``params_after``;
  - a Flax NNX module: ``params`` is the module itself or its ``nnx.State`` (full, or the ``nnx.Param`` part
    alone, merged over the objective's module); the call runs on a fresh merged copy, never mutating the
    caller's module under a trace, and ``params_after`` carries its updated state (``BatchStat``, RNG counts);
  - an Equinox module: ``params`` is the module; its ``__call__`` takes one example and is vmapped.

* :func:`partition` splits *the parameters* (whatever the user passes as ``params``) into the trainable
  arrays that are differentiated and a :class:`Held` part (other collections, static fields, the graph
  definition) that is carried; ``held.merge(trainable)`` rebuilds the parameters in the form given, and
  :func:`restore` hands an update back in that form (an NNX module is updated in place):

  ==============  ============================================  =========================================
  params          trainable (what gradients look like)          held
  ==============  ============================================  =========================================
  pytree          its float leaves (others ``None``)            the non-float leaves, the tree structure
  linen vars      ``{"params": ...}``                           the other collections (``batch_stats``)
  NNX module      the ``nnx.Param`` state (an ``nnx.State``)    the graph definition, the other state
  NNX State       its ``nnx.Param`` part                        the other state
  Equinox module  ``eqx.partition(m, eqx.is_inexact_array)[0]`` the static fields
  ==============  ============================================  =========================================

Flax and Equinox are optional: they are recognised by looking them up in ``sys.modules`` (an object can only
be one of their modules if its framework is already imported), never imported by jaxloss.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Model", "Held", "adapt", "partition", "restore", "bind", "kind_of"]

PyTree = Any


def _cls(module: str, attr: str):
    mod = sys.modules.get(module)
    return getattr(mod, attr, None) if mod is not None else None


def _isinstance(obj, module: str, attr: str) -> bool:
    """``isinstance(obj, module.attr)`` without importing ``module``."""
    cls = _cls(module, attr)
    return cls is not None and isinstance(obj, cls)


def is_nnx_module(x) -> bool:
    return _isinstance(x, "flax.nnx", "Module")


def is_nnx_state(x) -> bool:
    return _isinstance(x, "flax.nnx", "State")


def is_eqx_module(x) -> bool:
    return _isinstance(x, "equinox", "Module") and not is_nnx_module(x)


def is_linen_module(x) -> bool:
    return _isinstance(x, "flax.linen", "Module")


def _is_float_leaf(x) -> bool:
    if isinstance(x, (float, complex)) and not isinstance(x, bool):
        return True
    return isinstance(x, (jax.Array, np.ndarray, np.generic)) and jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _is_eqx_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic)) and jnp.issubdtype(jnp.result_type(x), jnp.inexact)


# ---------------------------------------------------------------------------------------------------------
# The model: apply(params, inputs) -> (predictions, params_after)
# ---------------------------------------------------------------------------------------------------------


class Model:
    """A model of any supported framework as ``apply(params, inputs) -> (predictions, params_after)``.

    Calling the model, ``model(params, inputs)``, returns the predictions alone. ``kind`` is ``"function"``,
    ``"linen"``, ``"nnx"`` or ``"equinox"``; ``vmap`` says whether the model sees one example at a time.
    Hashable (static data of a :class:`jaxloss.Objective`): adapters of the same model object in the same
    mode are equal (NNX adapters only to themselves).
    """

    def __init__(self, model, vmap_model: Optional[bool] = None):
        self.source = model
        self.graphdef, self.state = None, None
        bound = getattr(model, "__self__", None)
        if getattr(model, "__name__", None) == "apply" and is_linen_module(bound):
            model = bound  # module.apply: the module's own collection handling
        if is_nnx_module(model):
            from flax import nnx  # present: model is one of its modules

            self.kind, self.module = "nnx", None
            self.graphdef, self.state = nnx.split(model)
            self.vmap = bool(vmap_model)
        elif is_linen_module(model):
            self.kind, self.module, self.vmap = "linen", model, bool(vmap_model)
        elif is_eqx_module(model) and not callable(getattr(model, "apply", None)):
            # Equinox: the parameters are the module; its __call__ takes one example.
            self.kind, self.module, self.vmap = "equinox", None, True if vmap_model is None else bool(vmap_model)
        elif callable(model):
            self.kind, self.module, self.vmap = "function", model, bool(vmap_model)
        else:
            raise TypeError(
                "model must be a function fn(params, inputs), a Flax linen or NNX module or an Equinox module; "
                f"got {model!r}"
            )
        self.__name__ = getattr(self.source, "__name__", type(self.source).__name__)

    def _call(self, params, inputs):
        kind = self.kind
        if kind == "function":
            return self.module(params, inputs), params
        if kind == "equinox":
            return params(inputs), params
        if kind == "linen":
            variables = params
            others = [k for k in variables if k != "params"]
            if not others:
                return self.module.apply(variables, inputs), params
            out, mutated = self.module.apply(variables, inputs, mutable=others)
            new = {**variables, **mutated}
            if not isinstance(variables, dict):
                new = type(variables)(new)
            return out, new
        # NNX: run a fresh merged copy (never mutate the caller's module under a trace)
        from flax import nnx

        if is_nnx_module(params):
            graphdef, state = nnx.split(params)
            module = nnx.merge(graphdef, state, copy=True)
            out = module(inputs)
            return out, module
        if is_nnx_state(params):
            module = nnx.merge(self.graphdef, nnx.merge_state(self.state, params), copy=True)
            out = module(inputs)
            after = nnx.state(module)
            return out, _like_state(after, params)
        raise TypeError(f"an NNX objective takes an nnx.Module or its nnx.State as params; got {type(params).__name__}")

    def apply(self, params, inputs):
        """``(predictions, params_after)``: params_after has the updated non-trainable state (linen
        mutable collections, NNX ``BatchStat``...), in the form of ``params``."""
        if self.vmap:  # one example at a time (Equinox): the state is not updated
            return jax.vmap(lambda x: self._call(params, x)[0])(inputs), params
        return self._call(params, inputs)

    def __call__(self, params, inputs):
        return self.apply(params, inputs)[0]

    def _key(self):
        """Equality: the same function / linen module / framework (so that an objective's pytree structure,
        and with it a jit cache entry, is shared by objectives of the same model)."""
        if self.kind == "equinox":
            return ("equinox", self.vmap)  # the parameters are the module
        if self.kind == "nnx":
            return ("nnx", self.vmap, id(self))  # holds the module's default state
        return (self.kind, self.vmap, _Key(self.module))

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, Model) and self._key() == other._key()

    def __repr__(self):
        return f"Model({self.kind}: {self.__name__})"


def _like_state(after, given):
    """``after`` (a full nnx.State) restricted to the paths of ``given`` (a full or partial State)."""
    keys = {path for path, _ in given.flat_state()}
    flat = after.flat_state()
    if len(keys) == len(flat):
        return after
    from flax import nnx

    return nnx.State.from_flat_path([(path, v) for path, v in flat if path in keys])


def adapt(model, vmap_model: Optional[bool] = None) -> Model:
    """The :class:`Model` for what the user passed (a :class:`Model` is returned as is)."""
    if isinstance(model, Model):
        return model
    return Model(model, vmap_model)


def kind_of(fn) -> Optional[str]:
    """The framework of the model behind a batch objective (``None`` for plain functions)."""
    model = getattr(fn, "model", None)
    return model.kind if isinstance(model, Model) else None


# ---------------------------------------------------------------------------------------------------------
# The parameters: trainable arrays and the held rest
# ---------------------------------------------------------------------------------------------------------


class _Key:
    """Hashable wrapper of static data: by value when hashable, by identity otherwise."""

    def __init__(self, value):
        self.value = value
        try:
            hash(value)
            self._hashable = True
        except TypeError:
            self._hashable = False

    def __hash__(self):
        return hash(self.value) if self._hashable else id(self.value)

    def __eq__(self, other):
        if not isinstance(other, _Key):
            return False
        if self.value is other.value:
            return True
        if not (self._hashable and other._hashable):
            return False
        try:
            return bool(self.value == other.value)
        except Exception:  # noqa: BLE001 - arrays in static data compare elementwise
            return False


class Held:
    """The part of the parameters that is carried, not differentiated: ``rest`` (a pytree of arrays: other
    collections, NNX non-Param state; passed through ``jax.jit`` as data) and ``static`` (structure, graph
    definitions, non-array fields; hashable). A pytree: ``rest`` are its children."""

    def __init__(self, kind: str, rest: PyTree, static: Any):
        self.kind, self.rest, self.static = kind, rest, static

    def merge(self, trainable: PyTree) -> PyTree:
        """The parameters in the form the user gave (an NNX module is a new module)."""
        kind, rest, static = self.kind, self.rest, self.static.value
        if kind == "tree":
            treedef, statics = static
            it = iter(jax.tree_util.tree_leaves(trainable))
            leaves = [next(it) if s is _TRAINABLE else s for s in statics]
            return jax.tree_util.tree_unflatten(treedef, leaves)
        if kind == "equinox":
            import equinox as eqx

            return eqx.combine(trainable, static)
        if kind == "linen":
            order, cls = static
            merged = {**trainable, **rest}
            merged = {k: merged[k] for k in order}
            return merged if cls is dict else cls(merged)
        from flax import nnx

        if kind == "nnx_module":
            return nnx.merge(static, trainable, rest)
        return nnx.merge_state(trainable, rest)  # nnx_state

    def _key(self):
        return (self.kind, self.static, tuple(id(x) for x in jax.tree_util.tree_leaves(self.rest)))

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        if not isinstance(other, Held):
            return False
        a, b = self._key(), other._key()
        return a[:2] == b[:2] and a[2] == b[2]

    def __repr__(self):
        return f"Held({self.kind})"


_TRAINABLE = object()

jax.tree_util.register_pytree_node(
    Held, lambda h: ((h.rest,), (h.kind, h.static)), lambda aux, ch: Held(aux[0], ch[0], aux[1])
)


def partition(params: PyTree, hint=None) -> Tuple[PyTree, Held]:
    """``(trainable, held)`` with ``held.merge(trainable)`` equal to ``params`` (see the module table).

    Args:
      params: what the user passes as parameters.
      hint: the batch objective or model they belong to (a linen objective's variables split by
        collection), or ``None``.
    """
    if is_nnx_module(params):
        from flax import nnx

        graphdef, trainable, rest = nnx.split(params, nnx.Param, ...)  # type: ignore[misc]
        return trainable, Held("nnx_module", rest, _Key(graphdef))
    if is_nnx_state(params):
        from flax import nnx

        trainable, rest = nnx.split_state(params, nnx.Param, ...)
        return trainable, Held("nnx_state", rest, _Key(None))
    if is_eqx_module(params):
        import equinox as eqx

        trainable, static = eqx.partition(params, _is_eqx_array)
        return trainable, Held("equinox", None, _Key(static))
    kind = hint if isinstance(hint, str) else kind_of(hint)
    frozen = _cls("flax.core", "FrozenDict")
    is_mapping = isinstance(params, dict) or (frozen is not None and isinstance(params, frozen))
    if is_mapping and "params" in params and (kind == "linen" or (frozen is not None and isinstance(params, frozen))):
        rest = {k: v for k, v in params.items() if k != "params"}
        return {"params": params["params"]}, Held("linen", rest, _Key((tuple(params.keys()), type(params))))
    leaves, treedef = jax.tree_util.tree_flatten(params)
    is_param = [_is_float_leaf(x) for x in leaves]
    trainable = jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(x, dtype=jnp.result_type(x)) if p else None for x, p in zip(leaves, is_param)]
    )
    statics = tuple(_TRAINABLE if p else x for x, p in zip(leaves, is_param))
    return trainable, Held("tree", None, _Key((treedef, statics)))


def updated_held(params_after: PyTree, held: Held, hint=None) -> Held:
    """The held part of ``params_after`` (the params after a forward pass: updated batch statistics)."""
    if params_after is None or held.kind in ("tree", "equinox"):
        return held
    return partition(params_after, hint)[1]


def restore(params: PyTree, trainable: PyTree, held: Held) -> PyTree:
    """The new parameters in the form the user gave: an NNX module is updated in place and returned."""
    if held.kind == "nnx_module" and is_nnx_module(params):
        from flax import nnx

        nnx.update(params, trainable, held.rest)
        return params
    return held.merge(trainable)


def bind(fn: Callable, params: PyTree) -> Tuple[Callable, PyTree]:
    """``(f, trainable)`` with ``f(trainable, batch) = fn(params with trainable replaced, batch)``: a batch
    objective of the differentiated arrays alone (what the per-example functions differentiate)."""
    trainable, held = partition(params, fn)
    if held.kind == "tree" and all(s is _TRAINABLE for s in held.static.value[1]):
        return fn, params  # a pytree of float arrays: nothing to split

    def f(t, batch):
        return fn(held.merge(t), batch)

    f.model = getattr(fn, "model", None)  # type: ignore[attr-defined]
    f.unbound = fn  # type: ignore[attr-defined]
    return f, trainable
