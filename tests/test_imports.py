"""Every module of grcf imports (so `pytest -m "not slow"` touches each one, including those the
fast tests only reach through a `grcf` subprocess)."""

import importlib
import pkgutil

import pytest

import grcf

MODULES = sorted(m.name for m in pkgutil.walk_packages(grcf.__path__, "grcf."))


def test_the_package_has_its_layers():
    assert {"grcf.data", "grcf.training", "grcf.results", "grcf.use", "grcf.pipeline", "grcf.cli"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    assert importlib.import_module(name).__name__ == name
