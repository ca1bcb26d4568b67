"""The registry (``jaxloss/_registry.py``) is the one list of public modules: ``jaxloss.__all__`` equals its
names, every name is defined by one module only, and every public module of the package is in it."""

import collections
import pathlib

import jaxloss
from jaxloss import _registry

PACKAGE = pathlib.Path(jaxloss.__file__).parent


def test_public_names_are_unique_across_modules():
    owners = collections.defaultdict(list)
    for module, names in _registry.module_names().items():
        for name in names:
            owners[name].append(module)
    shared = {name: mods for name, mods in owners.items() if len(mods) > 1}
    assert not shared, f"public names exported by more than one module: {shared}"
    for module, names in _registry.module_names().items():
        assert len(set(names)) == len(names), f"jaxloss.{module}.__all__ lists a name twice"


def test_all_equals_the_registry():
    assert len(set(jaxloss.__all__)) == len(jaxloss.__all__), "jaxloss.__all__ lists a name twice"
    registry = set(_registry.public_names())
    assert set(jaxloss.__all__) - registry == set(), "in jaxloss.__all__ but in no registered module"
    assert registry - set(jaxloss.__all__) == set(), "exported by a registered module but missing from jaxloss.__all__"


def test_flat_names_are_the_module_objects():
    for module, names in _registry.module_names().items():
        mod = getattr(jaxloss, module)
        for name in names:
            assert getattr(jaxloss, name) is getattr(mod, name), f"jaxloss.{name} is not jaxloss.{module}.{name}"


def test_every_public_module_is_registered():
    on_disk = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    public = {m for m in on_disk if not m.startswith("_")}
    registered = set(_registry.LOSS_FAMILIES) | set(_registry.TOOLS) | {"prox"}
    assert public - registered == set(), (
        f"public modules missing from jaxloss/_registry.py: {sorted(public - registered)}"
    )
    assert registered - public == set(), f"registered modules that do not exist: {sorted(registered - public)}"


def test_not_losses_are_names_of_loss_families():
    family_names = {n for names in _registry.module_names(_registry.LOSS_FAMILIES).values() for n in names}
    assert _registry.NOT_LOSSES <= family_names
    assert "smooth_labels" not in _registry.loss_names() and "linear_cross_entropy" in _registry.loss_names()
