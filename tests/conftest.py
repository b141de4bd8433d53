"""One BLAS thread per test process.

The suite runs in two xdist workers on two cores; OpenBLAS's own threads in each fought the other worker (the
whole suite took 2.6 times the CPU time). The variables reach the subprocesses the tests start (CLI runs,
notebook kernels); threadpoolctl limits the BLAS already loaded in this process. Dask's workers get one thread
each from Dask itself (``distributed.nanny.pre-spawn-environ``).
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

try:  # installed with the [test] extra (scikit-learn's dependency)
    from threadpoolctl import threadpool_limits
except ImportError:
    pass
else:
    threadpool_limits(1)
