"""Griffe extension: a loss's docstring as it is at run time, with the "Domain" section that
``@_core.domain`` appends (griffe reads the source text, which does not have it)."""

from __future__ import annotations

import importlib
import inspect

import griffe


class RuntimeDomains(griffe.Extension):
    def on_function_instance(self, *, func: griffe.Function, **kwargs) -> None:
        module_path, _, name = func.path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module_path), name)
        except Exception:  # not importable here: keep the static docstring
            return
        if getattr(obj, "domain", None) is None or not obj.__doc__ or func.docstring is None:
            return
        func.docstring.value = inspect.cleandoc(obj.__doc__)
