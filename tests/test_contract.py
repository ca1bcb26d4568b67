"""The jaxloss contract, checked on every registered loss (see ``tests/harness.py``)."""

import importlib
import pathlib

import pytest

import jaxloss
from harness import CHECKS, applies

_HERE = pathlib.Path(__file__).parent
CASES = [case for path in sorted(_HERE.glob("cases_*.py")) for case in importlib.import_module(path.stem).CASES]

# Public names of the loss families that are helpers, not losses (they have their own tests).
NOT_LOSSES = {"smooth_labels"}
FAMILIES = ("regression", "classification", "divergence", "embedding", "ranking", "sequence", "segmentation", "rl")


PAIRS = [(case, check) for case in CASES for check in sorted(CHECKS) if applies(case, check)]


@pytest.mark.parametrize("case,check", PAIRS, ids=[f"{c}-{k}" for c, k in PAIRS])
def test_contract(case, check):
    CHECKS[check](case)


def test_not_applicable_names_real_checks_with_reasons():
    for case in CASES:
        for check, reason in case.not_applicable.items():
            assert check in CHECKS and isinstance(reason, str) and len(reason) > 10, (case.name, check)


def test_every_loss_has_a_case():
    public = {n for fam in FAMILIES for n in getattr(jaxloss, fam).__all__} - NOT_LOSSES
    registered = {c.name for c in CASES}
    assert public - registered == set(), f"losses without a contract case: {sorted(public - registered)}"


def test_cases_call_the_public_function():
    for case in CASES:
        fn = getattr(case.fn, "func", case.fn)
        assert getattr(jaxloss, case.name) is fn, case.name
