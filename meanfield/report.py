"""Writing study outputs: JSON with the software versions, and matplotlib set up for files."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np


def software_versions() -> dict:
    import matplotlib
    import numba
    import scipy

    from . import __version__

    return dict(meanfield=__version__, python=sys.version.split()[0], numpy=np.__version__,
                scipy=scipy.__version__, numba=numba.__version__, matplotlib=matplotlib.__version__,
                platform=platform.platform(), cpu_count=os.cpu_count())


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path, data) -> Path:
    """Write ``data`` (NumPy values allowed) as indented JSON, atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_plain(data), indent=2) + "\n")
    tmp.replace(path)
    return path


def pyplot():
    """matplotlib.pyplot with a file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
