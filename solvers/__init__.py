"""Generic numerical solvers (fixed points, ODEs, self-consistent equations): numpy and scipy only, nothing
about networks. Installed as ``meanfield.solvers`` (see setup.py)."""
