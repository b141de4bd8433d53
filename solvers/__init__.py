"""Generic numerical solvers (fixed points, ODEs, self-consistent equations); nothing RNN-specific."""
