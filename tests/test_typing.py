"""Every public function and class of jaxloss is annotated (what `make typecheck` relies on): each
parameter and the return value of every name in ``jaxloss.__all__`` and ``jaxloss.prox.__all__``, and
``reduction`` is the ``Reduction`` literal wherever it appears."""

import inspect
import typing

import pytest

import jaxloss
from jaxloss import _typing

PUBLIC = [(f"jaxloss.{n}", getattr(jaxloss, n)) for n in jaxloss.__all__ if not inspect.ismodule(getattr(jaxloss, n))]
PUBLIC += [(f"jaxloss.prox.{n}", getattr(jaxloss.prox, n)) for n in jaxloss.prox.__all__]


def _callable(obj):
    if obj is _typing.Reduction:  # a type alias, not a callable
        return None
    if inspect.isclass(obj):
        return obj.__init__ if "__init__" in vars(obj) else None
    return inspect.unwrap(obj) if callable(obj) else None


@pytest.mark.parametrize("name,obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_public_signature_is_annotated(name, obj):
    fn = _callable(obj)
    if obj is _typing.Reduction:
        return
    if fn is None:
        if obj.__init__ is object.__init__:  # a base class taking no arguments (e.g. Callback)
            return
        # a generated __init__ (dataclass, NamedTuple): its fields are annotated
        assert getattr(obj, "__annotations__", None), f"{name}: a class without annotated fields"
        return
    sig = inspect.signature(fn)
    missing = [
        p for p, v in sig.parameters.items() if p not in ("self", "cls") and v.annotation is inspect.Parameter.empty
    ]
    assert not missing, f"{name}: parameters without annotations: {missing}"
    if not inspect.isclass(obj):
        assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"


@pytest.mark.parametrize("name,obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_reduction_is_the_literal(name, obj):
    fn = _callable(obj)
    if fn is None or "reduction" not in inspect.signature(fn).parameters:
        return
    hints = typing.get_type_hints(fn)
    assert hints["reduction"] == _typing.Reduction, f"{name}: reduction is {hints['reduction']}"
    assert typing.get_args(_typing.Reduction) == ("mean", "sum", "none")
