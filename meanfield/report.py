"""Writing study outputs: JSON with the software versions, and matplotlib set up for files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import sys
import tempfile
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


def plain(value):
    """``value`` with NumPy types, tuples and paths turned into JSON types (non-finite floats: None)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _umask() -> int:
    """The process's umask, read once at import (setting and restoring it is not thread-safe)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


FILE_MODE = 0o666 & ~_umask()
"""The mode of the files written here: what a plain open() gives (mkstemp's temporary files have 0600)."""
TEMP_SUFFIX = ".meanfield-partial"
TEMP_NAME = re.compile(r"\..+-[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))
"""The names of :func:`atomic_file`'s temporary files: ".NAME-", mkstemp's 8 characters and TEMP_SUFFIX (no
user's file is named so)."""


@contextlib.contextmanager
def atomic_file(path, mode="w"):
    """A file handle whose content appears at ``path`` only when complete: written to a temporary file of a
    unique name in the same folder, flushed to disk, then renamed over ``path`` (removed on any error).

    Any OSError (a full disk) is raised again with ``path`` as its filename, not the temporary file's."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, mode) as handle:
                with contextlib.suppress(OSError):  # file systems without modes (some FUSE and CIFS mounts)
                    os.chmod(tmp, FILE_MODE)
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err


def remove_stale_temp_files(folder):
    """Remove the temporary files of :func:`atomic_file` that a killed process left in ``folder``; only for a
    folder that no live process writes to (one whose lock is held)."""
    for p in Path(folder).glob(".*"):
        if TEMP_NAME.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_file(path) as handle:
        handle.write(text)
    return Path(path)


def write_json(path, data) -> Path:
    """Write ``data`` (NumPy values allowed) as indented JSON, atomically."""
    return write_text(path, json.dumps(plain(data), indent=2) + "\n")


def legend(ax, **options):
    """``ax.legend(**options)`` when the axes hold labelled artists (a panel with none, such as one whose
    crossings were all bounds, gets no empty legend and no matplotlib warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def width_ticks(ax, widths):
    """Label a log width axis at the widths, and nowhere else (minor labels such as "3x10^2 4x10^2" collide when
    the widths span a narrow range)."""
    ax.minorticks_off()
    ax.set_xticks(list(widths), [str(int(n)) for n in widths], fontsize=8)


def pyplot():
    """matplotlib.pyplot, its backend left as the user has it: a notebook keeps its inline figures, and without a
    display matplotlib falls back to its file-only Agg backend by itself."""
    import matplotlib.pyplot as plt

    return plt
