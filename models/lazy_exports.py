"""A family package's public names, each imported from its module on first use (PEP 562).

So that importing one light module of a family (its signature names, its SavedModel reader, its
tokenizer) runs the package's `__init__` without building its Keras model code: the service loads
a SavedModel without importing the code that wrote it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any


class LazyExports:
    """The names a package re-exports, by the module that defines each.

    Args:
        package: the package's `__name__`.
        modules: module name -> the names the package takes from it.

    Example:
        >>> _EXPORTS = LazyExports(__name__, {"models.jose.tokenizer": ["Tokenizer"]})
        >>> def __getattr__(name: str) -> Any:
        ...     return _EXPORTS.resolve(name)
    """

    def __init__(self, package: str, modules: Mapping[str, Sequence[str]]) -> None:
        self.package = package
        self.modules = frozenset(modules)
        self.origin = {name: module for module, names in modules.items() for name in names}
        self.names = sorted(self.origin)

    def resolve(self, name: str) -> Any:
        """The package attribute `name`: a re-exported name or one of those modules."""
        submodule = f"{self.package}.{name}"
        if submodule in self.modules:
            return importlib.import_module(submodule)
        module = self.origin.get(name)
        if module is None:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[self.package], name, value)  # later lookups skip __getattr__
        return value
