"""Argument checks: one rule per kind of value, one wording, the argument named in every message.

Every public function and every study configuration checks its values with these rules, so that the
same value is accepted or refused everywhere:

- an *integer* is a Python or NumPy integer, never a bool and never a float (2.0 is refused);
- a *real* is a Python or NumPy integer or float (float32 included), never a bool, always finite;
- a *choice* is one of a fixed set of strings;
- a *list* is a list or tuple (or 1-D array) whose items each obey one of the rules above.

All rules raise :class:`ValueError` (a configuration's loader turns it into a ``ConfigError`` naming
the field) and return the value converted to a plain Python type.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from pathlib import Path

import numpy as np


def _describe(minimum, maximum, exclusive_minimum=False):
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " and ".join(parts)


def integer(value, name, minimum=None, maximum=None) -> int:
    """An integer (not a bool, not a float) in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        bounds = _describe(minimum, maximum)
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {_describe(minimum, maximum)}, got {value!r}")
    return value


def real(value, name, minimum=None, maximum=None, *, exclusive_minimum=False) -> float:
    """A finite real number (int or float of any width, not a bool) in the given range."""
    bounds = _describe(minimum, maximum, exclusive_minimum)
    what = f"a finite number{' ' + bounds if bounds else ''}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    value = float(value)
    low_bad = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if not math.isfinite(value) or low_bad or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def positive(value, name) -> float:
    """A finite real number > 0."""
    return real(value, name, 0, exclusive_minimum=True)


def choice(value, name, options) -> str:
    """One of ``options`` (strings)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def boolean(value, name) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _items(values, name, min_length):
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {values!r}")
    if len(values) < min_length:
        raise ValueError(f"{name} must have at least {min_length} item{'s' * (min_length > 1)}, got {list(values)}")
    return values


def _increasing(values, name):
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")


def integer_list(values, name, minimum=None, maximum=None, *, min_length=1, increasing=False) -> tuple:
    """A list of integers, each in [minimum, maximum]; optionally strictly increasing."""
    out = tuple(integer(v, f"{name}[{i}]", minimum, maximum) for i, v in enumerate(_items(values, name, min_length)))
    if increasing:
        _increasing(out, name)
    return out


def real_list(values, name, minimum=None, maximum=None, *, exclusive_minimum=False, min_length=1,
              increasing=False) -> tuple:
    """A list of finite real numbers, each in the given range; optionally strictly increasing."""
    out = tuple(real(v, f"{name}[{i}]", minimum, maximum, exclusive_minimum=exclusive_minimum)
                for i, v in enumerate(_items(values, name, min_length)))
    if increasing:
        _increasing(out, name)
    return out


def choice_list(values, name, options, *, min_length=1) -> tuple:
    """A list of strings, each one of ``options``."""
    return tuple(choice(v, f"{name}[{i}]", options) for i, v in enumerate(_items(values, name, min_length)))


def finite_array(value, name, *, ndim=None, shape=None) -> np.ndarray:
    """A float64 array with only finite entries, of the given number of dimensions or shape
    (``None`` in ``shape`` matches any length)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension{'s' * (ndim != 1)}, got shape {arr.shape}")
    if shape is not None and (arr.ndim != len(shape)
                              or any(s is not None and s != a for s, a in zip(shape, arr.shape))):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")
    return arr


def available_memory() -> int:
    """Bytes of memory available on this machine (MemAvailable, else physical memory)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 2**34


def fits_in_memory(n_bytes: float, name: str, what: str, available: int | None = None):
    """Refuse, naming the argument ``name``, what would need more memory than ``available`` bytes (default:
    what this machine has available)."""
    have = available_memory() if available is None else available
    if n_bytes > have:
        raise ValueError(f"{name}: {what} needs about {n_bytes / 2**30:.3g} GiB; this machine has {have / 2**30:.3g} "
                         f"GiB available")


def missing_extra(extra: str, what: str, err: ImportError) -> ImportError:
    """The one-line error for ``what`` without an optional extra of setup.cfg: the exact install command."""
    missing = err.name.partition(".")[0] if err.name else err
    return ImportError(f"{what} needs the optional extra [{extra}]: pip install -e '.[{extra}]' (missing: {missing})")


LONG_REQUEST_SECONDS = 86400.0
"""Work estimated to take longer than this (a day of wall time on this machine) is refused before it starts,
unless the caller asks for it explicitly (``allow_long=True``, the CLI's ``--allow-long``)."""


def duration(seconds: float) -> str:
    """A wall time in words: seconds, minutes, hours or days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def within_time(seconds: float, name: str, *, allow_long=False, how="allow_long=True"):
    """Refuse, naming the arguments ``name`` that set the work, a request estimated at more than
    :data:`LONG_REQUEST_SECONDS` of wall time, unless ``allow_long``."""
    if not boolean(allow_long, "allow_long") and seconds > LONG_REQUEST_SECONDS:
        raise ValueError(f"{name}: the work is estimated at about {duration(seconds)} of wall time on this machine, "
                         f"more than the limit of {duration(LONG_REQUEST_SECONDS)}; ask for less, or pass {how} to "
                         f"run it anyway")


def seed(value, name="seed"):
    """A seed: None, a non-negative integer, a list of them, a SeedSequence or a Generator."""
    if value is None or isinstance(value, (np.random.SeedSequence, np.random.Generator)):
        return value
    if isinstance(value, (list, tuple)):
        return [integer(v, f"{name}[{i}]", 0) for i, v in enumerate(value)]
    return integer(value, name, 0)
