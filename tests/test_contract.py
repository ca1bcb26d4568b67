"""The jaxloss contract, checked on every registered loss (see ``tests/harness.py``)."""

import importlib
import pathlib

import pytest

import jaxloss
from harness import CHECKS, applies
from jaxloss import _registry

_HERE = pathlib.Path(__file__).parent
CASES = [case for path in sorted(_HERE.glob("cases_*.py")) for case in importlib.import_module(path.stem).CASES]


PAIRS = [(case, check) for case in CASES for check in sorted(CHECKS) if applies(case, check)]


@pytest.mark.parametrize("case,check", PAIRS, ids=[f"{c}-{k}" for c, k in PAIRS])
def test_contract(case, check):
    CHECKS[check](case)


def test_not_applicable_names_real_checks_with_reasons():
    for case in CASES:
        for check, reason in case.not_applicable.items():
            assert check in CHECKS and isinstance(reason, str) and len(reason) > 10, (case.name, check)


def test_every_loss_has_a_case():
    public = _registry.loss_names()
    registered = {c.name for c in CASES}
    assert public - registered == set(), f"losses without a contract case: {sorted(public - registered)}"
    assert registered - public == set(), (
        f"contract cases of names that are not public losses: {sorted(registered - public)}"
    )


def test_cases_call_the_public_function():
    """A case's fn is the public loss, a ``functools.partial`` of it, or a wrapper that binds a shared argument
    and names the loss it wraps (``functools.wraps`` sets ``__wrapped__``)."""
    for case in CASES:
        candidates = (case.fn, getattr(case.fn, "func", None), getattr(case.fn, "__wrapped__", None))
        assert any(getattr(jaxloss, case.name) is fn for fn in candidates), case.name
