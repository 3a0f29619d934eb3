"""Package list for setuptools, computed from the tree so that a new subpackage can never be
left out of the wheel.  Everything else is declared in pyproject.toml.

``api/`` and ``addons/`` live at the top of the repository but install as ``proxycore.api``
and ``proxycore.addons`` (the ``package-dir`` table in pyproject.toml maps them).
"""

from setuptools import find_packages, setup

# installed package name -> directory in the repository
ROOTS = {"proxycore": "proxycore", "proxycore.api": "api", "proxycore.addons": "addons"}


def packages() -> list[str]:
    found = []
    for name, directory in ROOTS.items():
        found.append(name)
        found.extend(f"{name}.{sub}" for sub in find_packages(directory))
    return found


setup(packages=packages())
