"""The one thing setup.cfg cannot say: the repository's top-level ``solvers/`` folder installs as
``meanfield.solvers`` (PyPI has an unrelated package called ``solvers``, which a top-level name would
shadow or be shadowed by). Everything else is in setup.cfg."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["meanfield", "meanfield.*"]) + ["meanfield.solvers"],
      package_dir={"meanfield.solvers": "solvers"})
