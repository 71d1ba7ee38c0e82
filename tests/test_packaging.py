"""The install discovers every package of the user's folder layout (setup.py), task plugins included."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from centerpoint_suite.registry import NETWORKS, TASKS

REPO = Path(__file__).resolve().parents[1]


def _discover() -> list[str]:
    spec = importlib.util.spec_from_file_location("centerpoint_setup", REPO / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.discover()


def _package_of(module: str) -> str:
    """The package holding ``module`` (itself when it is a package's ``__init__``)."""
    spec = sys.modules[module].__spec__
    return module if spec.submodule_search_locations is not None else module.rsplit(".", 1)[0]


def test_every_registered_plugin_is_in_an_installed_package():
    packages = set(_discover())
    plugins = [TASKS.get(n) for n in TASKS.names()] + [NETWORKS.get(n) for n in NETWORKS.names()]
    for plugin in plugins:
        assert _package_of(plugin.__module__) in packages, plugin.__module__
    assert {"centerpoint_suite.cli", "centerpoint_suite.configs", "centerpoint_suite.datasets"} <= packages
