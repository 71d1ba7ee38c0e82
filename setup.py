"""Package discovery for the folder layout the project keeps (everything else is in pyproject.toml).

The user's top-level folders install under one import name: ``tasks/`` -> ``centerpoint_suite.tasks``,
``datasets/`` -> ``centerpoint_suite.datasets``, ``cli/``, ``configs/`` likewise. setuptools' own
``packages.find`` cannot map several folders under one prefix, so this walks each mapped folder
for packages (folders with an ``__init__.py``): a new task package needs no packaging edit.
"""

from pathlib import Path

from setuptools import setup

PACKAGE_DIR = {
    "centerpoint_suite": "centerpoint_suite",
    "centerpoint_suite.tasks": "tasks",
    "centerpoint_suite.datasets": "datasets",
    "centerpoint_suite.cli": "cli",
    "centerpoint_suite.configs": "configs",
}


def discover() -> list[str]:
    here = Path(__file__).resolve().parent
    found = []
    for name, folder in PACKAGE_DIR.items():
        root = here / folder
        for init in sorted(root.rglob("__init__.py")):
            found.append(".".join([name, *init.parent.relative_to(root).parts]))
    return found


if __name__ == "__main__":  # as setuptools runs it; tests import discover() alone
    setup(package_dir=PACKAGE_DIR, packages=discover())
