"""The family packages' names import their module on first use and are the modules' own objects."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["models.bert", "models.density", "models.jose"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_to_its_module_object(package: str) -> None:
    module = importlib.import_module(package)
    exports = module._EXPORTS
    assert module.__all__ == sorted(exports.origin) and module.__all__
    for name in module.__all__:
        origin = importlib.import_module(exports.origin[name])
        assert getattr(module, name) is getattr(origin, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_star_import_and_unknown_names(package: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    module = importlib.import_module(package)
    assert set(module.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = module.no_such_name


def test_a_submodule_is_reachable_as_an_attribute() -> None:
    import models.density

    assert models.density.iresnet_flow.IResNetFlow is models.density.IResNetFlow
