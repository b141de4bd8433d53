"""The study framework: configuration, output folder, resumable runs, reports and the CLI registry.

Every study (``meanfield study``, ``regime``, ``featurelearning``, ``rntk``, ``demo``) is one module
in this package that keeps only its science:

- a :class:`Config` (frozen dataclass of :class:`Section` dataclasses, one per TOML table) whose
  fields carry their check (:func:`spec`), plus cross-field checks in ``validate`` and a size check in
  ``check_size``. :meth:`Config.load` reads the shipped default TOML, overlays the user's file and, with
  ``quick``, the config's ``[quick]`` tables; an unknown table or key, a wrong type, a value out of
  range or a missing file is a :class:`ConfigError` naming the field, raised before any work;
- a run function registered with :func:`register`, from which :mod:`meanfield.cli` builds the
  subcommand. It opens a :class:`StudyFolder` (writable check, lock, configuration guard), runs its
  independent pieces with :func:`run_tasks` (each finished run on disk at once, keyed by everything
  it depends on, verified when loaded) and writes :func:`write_report`.

So a new study needs one module here, its default TOML and a test file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import pkgutil
import re
import shutil
import sys
import tempfile
import time
import typing
import warnings
import zipfile
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Callable, ClassVar, Mapping

import numpy as np
from tqdm.auto import tqdm

from .. import checks
from ..report import atomic_file, plain, remove_stale_temp_files, software_versions, write_json, write_text

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

try:
    import fcntl
except ImportError:  # Windows: no folder lock
    fcntl = None


class ConfigError(ValueError):
    """A bad study configuration or output folder; the message names the field (the CLI exits 2)."""


class DiagnosisWarning(UserWarning):
    """A cause that undermines a study's conclusion; the report's verdict and summary carry it too."""


class DamagedRunWarning(UserWarning):
    """A run file that could not be read, or that belongs to another run; it is recomputed."""


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------

def spec(rule: Callable, *, default=dataclasses.MISSING, **options):
    """A config field checked by ``rule(value, name, **options)`` (a function of :mod:`meanfield.checks`), with an
    optional default (for keys added after configs were written)."""
    return field(default=default, metadata=dict(rule=rule, options=options))


class Section:
    """Base of the frozen dataclass of one TOML table; ``NAME`` is the table's name."""

    NAME: ClassVar[str] = ""

    def __init_subclass__(cls, name: str = "", **kwargs):
        super().__init_subclass__(**kwargs)
        cls.NAME = name or cls.NAME

    def __post_init__(self):
        for f in fields(self):
            rule = f.metadata.get("rule")
            if rule is not None:
                try:
                    value = rule(getattr(self, f.name), f"{self.NAME}.{f.name}", **f.metadata["options"])
                except ValueError as err:  # "NAME must ...", NAME possibly with an index: quote NAME
                    name, _, rest = str(err).partition(" ")
                    raise ConfigError(f"config field '{name}': {rest}") from None
                object.__setattr__(self, f.name, value)


def _section_types(cls) -> dict:
    return {f.name: typing.get_type_hints(cls)[f.name] for f in fields(cls)}


def _read_toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {where}: not valid TOML: {err}") from None


def _dotted(name: str):
    section, dot, key = name.partition(".")
    if not (dot and section and key) or "." in key:
        raise ConfigError(f"config field '{name}': must be written TABLE.KEY")
    return section, key


def _overlay(base: dict, top: dict) -> dict:
    """``top`` over ``base``, one level of tables deep (the shape of a study config)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Config:
    """Base of a study configuration: fields are :class:`Section` dataclasses, one per TOML table.

    Subclasses set ``DEFAULT`` (the shipped TOML in ``meanfield/studies``) and may override
    ``validate`` (checks across fields) and ``check_size`` (refuse what cannot fit the machine).
    """

    DEFAULT: ClassVar[str] = ""
    SHIPPED: ClassVar[dict] = {}
    """{name: file in meanfield/studies}: further shipped configs, which ``--config NAME`` loads."""
    REPLACING_KEYS: ClassVar[dict] = {}
    """{table: keys}: a user's table that sets one of these keys replaces the shipped table instead of
    overlaying it (the keys choose between kinds of table, such as a named task or a user's own)."""

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Checks that involve several fields; raise :class:`ConfigError` naming one of them."""

    def check_size(self, memory_bytes: int):
        """Refuse, with a :class:`ConfigError` naming the field, a request that needs more memory than
        ``memory_bytes``."""

    SIZE_FIELDS: ClassVar[tuple] = ()
    """The fields that set the amount of work, named when a request is refused as too long."""
    EXTENDABLE: ClassVar[tuple] = ()
    """Dotted fields (``"sweep.widths"``) that a finished study may change in place: its runs are keyed without
    them, so a run of the same settings is reused (more widths or seeds add runs; fewer reuse a subset)."""

    def estimated_seconds(self) -> float | None:
        """A rough CPU time on one core of this machine, for a one-line warning before long work and the refusal of
        work longer than :data:`meanfield.checks.LONG_REQUEST_SECONDS` (:meth:`check_time`)."""
        return None

    def check_time(self, allow_long=False):
        """Refuse, with a :class:`ConfigError` naming :attr:`SIZE_FIELDS`, a config whose estimated wall time on
        this machine's cores is over a day, unless ``allow_long``."""
        seconds = self.estimated_seconds()
        if seconds is None:
            return
        try:
            checks.within_time(seconds / CORES, ", ".join(self.SIZE_FIELDS), allow_long=allow_long,
                               how="--allow-long (allow_long=True in Python)")
        except ValueError as err:
            raise ConfigError(f"config fields {err}") from None

    # -- reading --------------------------------------------------------------------------------------
    @classmethod
    def default_dict(cls) -> dict:
        return _read_toml(resources.files("meanfield.studies").joinpath(cls.DEFAULT).read_text(), cls.DEFAULT)

    @classmethod
    def load(cls, path=None, *, quick=False, overrides: Mapping | None = None):
        """The config of ``path`` (default: the shipped one) over the shipped defaults; ``quick`` applies the
        ``[quick]`` tables of the file in use, or the shipped ones (with a warning) if it has none; ``overrides`` maps
        "section.key" to values (the CLI's options)."""
        raw = cls.default_dict()
        quick_tables = raw.pop("quick", {})
        if path is not None and str(path) in cls.SHIPPED and not Path(path).exists():
            path = resources.files("meanfield.studies").joinpath(cls.SHIPPED[str(path)])
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as err:
                raise ConfigError(f"config file {path}: {err.strerror or err}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"config file {path}: not UTF-8 text (TOML files are UTF-8)") from None
            user = _read_toml(text, str(path))
            if "quick" in user:
                quick_tables = user.pop("quick")
            elif quick:  # one meaning of quick: the shipped reduced grid, as in Python's quick=True
                warnings.warn(f"--quick: {path} has no [quick] tables; the shipped ones apply ({cls.DEFAULT})",
                              stacklevel=2)
            for table, keys in cls.REPLACING_KEYS.items():
                if isinstance(user.get(table), dict) and any(k in user[table] for k in keys):
                    raw.pop(table, None)
            raw = _overlay(raw, user)
        cls._check_shape(quick_tables, "quick.")
        if quick:
            raw = _overlay(raw, quick_tables)
        for dotted, value in (overrides or {}).items():
            section, key = _dotted(dotted)
            raw.setdefault(section, {})[key] = value
        return cls.from_dict(raw)

    @classmethod
    def _check_shape(cls, raw: dict, prefix=""):
        """Unknown tables and keys are refused (also in [quick], used or not)."""
        types = _section_types(cls)
        if not isinstance(raw, dict):
            raise ConfigError(f"config field '{prefix.rstrip('.')}': must be a table")
        for name, table in raw.items():
            if name not in types:
                raise ConfigError(f"config field '{prefix}{name}': unknown table (known: {', '.join(types)})")
            if not isinstance(table, dict):
                raise ConfigError(f"config field '{prefix}{name}': must be a table, got {table!r}")
            known = [f.name for f in fields(types[name])]
            for key in table:
                if key not in known:
                    raise ConfigError(f"config field '{prefix}{name}.{key}': unknown key (known: {', '.join(known)})")

    @classmethod
    def from_dict(cls, raw: Mapping):
        """Build and check a config from nested dicts (all tables and keys present)."""
        raw = dict(raw)
        raw.pop("quick", None)
        cls._check_shape(raw)
        sections = {}
        for name, section_type in _section_types(cls).items():
            table = raw.get(name)
            if table is None:
                raise ConfigError(f"config field '{name}': missing table")
            missing = [f.name for f in fields(section_type) if f.name not in table
                       and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            if missing:
                raise ConfigError(f"config field '{name}.{missing[0]}': missing")
            sections[name] = section_type(**table)
        return cls(**sections)

    def as_dict(self) -> dict:
        return plain(dataclasses.asdict(self))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes):
        """A copy with changes given as ``**{"section.key": value}``, checked like a loaded config."""
        raw = self.as_dict()
        for dotted, value in changes.items():
            section, key = _dotted(dotted)
            if section not in raw:
                raise ConfigError(f"config field '{dotted}': unknown table (known: {', '.join(raw)})")
            raw[section][key] = value
        return type(self).from_dict(raw)


def refuse_if_larger(name: str, needed_bytes: float, memory_bytes: int, what: str):
    """ConfigError naming the field ``name`` when ``needed_bytes`` exceeds ``memory_bytes``."""
    try:
        checks.fits_in_memory(needed_bytes, name, what, memory_bytes)
    except ValueError as err:
        raise ConfigError(f"config field '{name}': {str(err).partition(': ')[2]}") from None


def check_diagonal_sweep(widths, horizon, n_records, table: str, records_table: str, symmetric=True):
    """The cross-field rules of a sweep of diagonal RNNs: even widths (for the symmetric initialisation), and at
    least ``n_records`` training steps at the smallest width."""
    odd = [N for N in widths if N % 2]
    if odd and symmetric:
        raise ConfigError(f"config field '{table}.widths': must be even (symmetric initialisation), got {odd[0]}")
    if horizon * widths[0] < n_records:
        raise ConfigError(f"config field '{records_table}.n_records': horizon * smallest width = "
                          f"{horizon * widths[0]:g} steps is fewer than n_records = {n_records}")


@dataclass(frozen=True)
class SeedSection(Section, name="sweep"):
    """The ``[sweep]`` table of studies whose only sweep setting is the seed of all their randomness."""

    seed: int = spec(checks.integer, minimum=0)


# ---------------------------------------------------------------------------------------------------------
# Output folder
# ---------------------------------------------------------------------------------------------------------

RUN_SECONDS = 0.01
"""One run's fixed cost in CPU seconds, whatever its size (its task, key and file: 6 ms in-process, more through
Dask), for the estimates: a request for millions of tiny runs is long too."""
MARKER = "study.json"
LOCK = ".lock"
LONG_RUN_SECONDS = 600
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else max(1, os.cpu_count() or 1)


class StudyFolder:
    """The output folder of one study run, as a context manager.

    On entry: create it, check that it is writable, take its lock (a second run into the same folder is
    refused with one line), remove the temporary files that a killed run left in it and in runs/, and guard
    it: a folder whose study.json names another study or configuration is refused (or, with ``overwrite``,
    emptied of what studies write there: runs/, study.json, report.*, *.png). A missing or damaged study.json
    is rebuilt, with a warning: the runs are kept, since :func:`run_tasks` checks each one by its key.
    Then, for work estimated to take longer than ``LONG_RUN_SECONDS``, one line says how long.
    """

    def __init__(self, out, study: str, config: Config, *, overwrite=False):
        self.path = Path(out)
        self.config = config
        self.identity = plain(dict(study=study, config=config.as_dict()))
        self.digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        self.overwrite = overwrite
        self._lock = None

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    def __enter__(self):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.path).close()  # before the lock: not named like atomic_file's files
        except OSError as err:
            raise ConfigError(f"output folder {self.path}: not writable ({err.strerror or err})") from None
        self._take_lock()
        try:
            self._guard()
            if self._lock is not None:  # only a folder this run holds: no other run is writing there
                for folder in (self.path, self.runs):
                    remove_stale_temp_files(folder)
        except BaseException:
            self._release_lock()
            raise
        seconds = self.config.estimated_seconds()
        if seconds is not None and seconds / CORES > LONG_RUN_SECONDS:
            print(f"meanfield {self.identity['study']}: estimated wall time about {checks.duration(seconds / CORES)} "
                  f"on this machine; finished runs are kept, so an interrupted run resumes", file=sys.stderr)
        return self

    def __exit__(self, *exc):
        self._release_lock()

    def _take_lock(self):
        if fcntl is None:
            return
        handle = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise ConfigError(f"output folder {self.path}: in use by another meanfield run (pid {holder}); wait for "
                              f"it to finish, or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def _release_lock(self):
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _guard(self):
        marker = self.path / MARKER
        try:
            old = json.loads(marker.read_text())
            digest = old["digest"]
        except (OSError, ValueError, TypeError, KeyError) as err:  # missing or damaged: rebuilt below
            old = None
            if any(self.runs.glob("*.npz")):
                state = "missing" if isinstance(err, FileNotFoundError) else "unreadable"
                warnings.warn(f"{marker} was {state}: rebuilt it; the runs in {self.runs} are kept, each checked "
                              f"by its key (a run of another configuration is recomputed)", stacklevel=3)
        if old is not None and digest != self.digest and self._extends(old.get("identity")):
            print(f"meanfield {self.identity['study']}: {self.path} holds this study with other "
                  f"{' or '.join(self.config.EXTENDABLE)}; its finished runs are reused", file=sys.stderr)
        elif old is not None and digest != self.digest:
            if not self.overwrite:
                what = (f"runs of {old['identity'].get('study', 'another study')} with another configuration "
                        f"(digest {old['digest']}, this one {self.digest})" if old.get("identity")
                        else "runs of an unknown configuration")
                raise ConfigError(f"output folder {self.path}: holds {what}; choose another --out, or add "
                                  f"--overwrite to discard them")
            self.clear()
        write_json(marker, dict(digest=self.digest, identity=self.identity))

    def _extends(self, old_identity) -> bool:
        """Whether ``old_identity`` is this study's with other values of the config's EXTENDABLE fields only."""
        if not self.config.EXTENDABLE or not isinstance(old_identity, dict):
            return False
        fields = [f"config.{name}" for name in self.config.EXTENDABLE]
        return without(old_identity, fields) == without(self.identity, fields)

    def clear(self):
        """Remove what studies write here (not anything else the folder may hold)."""
        shutil.rmtree(self.runs, ignore_errors=True)
        for pattern in (MARKER, "report.*", "*.png", "table.md"):
            for p in self.path.glob(pattern):
                p.unlink()


# ---------------------------------------------------------------------------------------------------------
# Independent runs, resumable
# ---------------------------------------------------------------------------------------------------------

KEY = "__run_key__"
RUN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def without(value: Mapping, dotted) -> dict:
    """A copy of the nested mapping ``value`` without the keys named by the dotted paths in ``dotted``
    (``"config.sweep.widths"``)."""
    out = dict(value)
    for path in dotted:
        head, _, rest = path.partition(".")
        if rest and isinstance(out.get(head), Mapping):
            out[head] = without(out[head], [rest])
        elif not rest:
            out.pop(head, None)
    return out


def run_key(fn: Callable, kwargs: Mapping, unkeyed=()) -> str:
    """A digest of the function and of every argument a run's result depends on: all but those named in
    ``unkeyed``, which may be dotted paths into a mapping argument (``"config.sweep.widths"``)."""
    keyed = without(kwargs, unkeyed)
    text = json.dumps([f"{fn.__module__}.{fn.__qualname__}", plain(keyed)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def save_result(path: Path, result: Mapping, key: str) -> Path:
    """Write a dict of arrays/numbers and its run key to ``path`` (.npz), atomically."""
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in result.items()}, **{KEY: np.asarray(key)})
    return Path(path)


def load_result(path: Path, key: str | None = None) -> dict:
    """Read a run file, checking its CRCs and (given ``key``) that it is the run asked for.

    Raises ``ValueError`` naming the file if it is unreadable, truncated or another run's."""
    try:
        data = np.load(path)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            out = {k: (data[k].item() if data[k].ndim == 0 else data[k]) for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"run file {path} is unreadable ({type(err).__name__}: {err})") from None
    stored = out.pop(KEY, None)
    if key is not None and stored != key:
        raise ValueError(f"run file {path} belongs to another run (key {stored}, expected {key})")
    return out


def reusable_result(path: Path, key: str, stacklevel=2) -> dict | None:
    """The run file at ``path`` if it holds ``key``'s result, else None: missing, or damaged or another run's,
    which is warned (:class:`DamagedRunWarning`) so that it is recomputed."""
    if not path.exists():
        return None
    try:
        return load_result(path, key)
    except ValueError as err:
        warnings.warn(f"{err}; recomputing it", DamagedRunWarning, stacklevel=stacklevel + 1)
        return None


def check_scheduler(address: str) -> str:
    """``address`` if Dask can read it as a scheduler's address (tcp://HOST:PORT, HOST:PORT, or another of its
    schemes), else ValueError; nothing is contacted."""
    from distributed.comm.addressing import parse_address
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        backend = get_backend(scheme)
        with contextlib.suppress(NotImplementedError):  # schemes without host and port (inproc, ucx)
            port = backend.get_address_host_port(location)[1]
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is not in 1..65535")
    except (TypeError, ValueError) as err:
        raise ValueError(f"not a Dask scheduler address (tcp://HOST:PORT): {address!r} ({err})") from None
    return address


def run_tasks(fn: Callable[..., Mapping], tasks: Mapping[str, dict], runs_dir, *, workers=None, scheduler=None,
              progress=True, desc="runs", unkeyed=()) -> dict[str, dict]:
    """Run the tasks whose valid result is not on disk yet; return {name: result} for all tasks.

    Each task is ``fn(**kwargs)`` returning a dict of arrays and numbers. Its result is written to
    ``runs_dir/NAME.npz`` as soon as it arrives, with the task's key (:func:`run_key`, over every argument
    but those in ``unkeyed``, which must not change the result, such as a thread count). A file that is
    unreadable or holds another key is reported (:class:`DamagedRunWarning`) and recomputed.

    workers : int or None
        Worker processes of the local Dask cluster (default: the number of cores); 0 runs the tasks in this
        process, one after the other, without Dask.
    scheduler : str or None
        Address of an existing Dask scheduler (``tcp://HOST:PORT``), checked before any work
        (:func:`check_scheduler`); then ``workers`` is ignored.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    if scheduler is not None:
        check_scheduler(scheduler)
    bad = [name for name in tasks if not RUN_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"run names must be letters, digits, '.', '_' and '-' only, got {bad[0]!r}")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: run_key(fn, kw, unkeyed) for name, kw in tasks.items()}
    paths = {name: runs_dir / f"{name}.npz" for name in tasks}
    results, pending = {}, {}
    for name, kw in tasks.items():
        saved = reusable_result(paths[name], keys[name], stacklevel=3)
        if saved is not None:
            results[name] = saved
            continue
        pending[name] = kw

    def finish(name, result):
        if not isinstance(result, Mapping):
            raise TypeError(f"run {name}: fn ({fn.__name__}) must return a dict of arrays, got {type(result).__name__}")
        save_result(paths[name], result, keys[name])
        results[name] = load_result(paths[name], keys[name])  # what a resumed run would read
        bar.update()

    if len(pending) < len(tasks):  # a resumed or extended study says what it kept
        print(f"{desc}: {len(tasks) - len(pending)} of {len(tasks)} runs reused from {runs_dir}", file=sys.stderr)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(pending), disable=not progress, desc=desc, unit="run")
    with bar:
        if not pending:
            return {name: results[name] for name in tasks}
        if workers == 0 and scheduler is None:
            for name, kwargs in pending.items():
                finish(name, fn(**kwargs))
            return {name: results[name] for name in tasks}
        from dask.distributed import Client, LocalCluster, as_completed

        with contextlib.ExitStack() as stack:
            if scheduler is None:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers or os.cpu_count(), threads_per_worker=1, processes=True,
                    dashboard_address=":0", silence_logs=logging.ERROR))  # any free port: 8787 may be taken
                client = stack.enter_context(Client(cluster))
            else:
                client = stack.enter_context(Client(scheduler))
            futures = {client.submit(fn, **kwargs, key=f"{name}-{keys[name]}-{os.getpid()}", pure=False): name
                       for name, kwargs in pending.items()}
            for future in as_completed(futures):
                finish(futures[future], future.result())
    return {name: results[name] for name in tasks}


def backend_workers(backend, workers, scheduler):
    """The workers for runs on ``backend``: JAX runs go one after the other in this process unless a scheduler is
    given (the device is the parallel part, and each Dask worker would take most of a GPU's memory)."""
    return 0 if backend == "jax" and scheduler is None else workers


def worker_threads(workers, scheduler) -> int:
    """Numba threads per run so that the workers together use the cores (1 on a remote scheduler)."""
    if scheduler is not None:
        return 1
    cores = os.cpu_count() or 1
    n_workers = workers if workers is not None else cores
    return max(1, cores // max(1, n_workers))


# ---------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------

def write_report(folder: StudyFolder, report: dict, markdown: str, started: float) -> Path:
    """report.json (the report with the study's identity, config digest, software versions and wall time)
    and report.md, each written atomically; returns the path of report.md."""
    full = dict(report)
    full.setdefault("study", folder.identity.get("study"))
    full.update(identity=folder.identity, digest=folder.digest, versions=software_versions(),
                wall_seconds=time.perf_counter() - started)
    write_json(folder.path / "report.json", full)
    return write_text(folder.path / "report.md", markdown)


# ---------------------------------------------------------------------------------------------------------
# Registry (the CLI's subcommands)
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Study:
    """A registered study: ``run(config, out, progress=, overwrite=[, workers=, scheduler=])`` returns the path
    of its report.

    ``config`` is its :class:`Config` class, ``arguments`` adds its own options to the subcommand's parser,
    ``parallel`` adds --workers and --scheduler, ``backends`` adds --backend (:mod:`meanfield.backends`; the run
    then takes ``backend=``), ``overrides(args)`` maps parsed options to
    {"section.key": value} config values, ``default_out(args)`` names the default output folder."""

    name: str
    help: str
    run: Callable
    config: type
    arguments: Callable | None = None
    parallel: bool = False
    overrides: Callable | None = None
    default_out: Callable | None = None
    backends: bool = False


STUDIES: dict[str, Study] = {}


def register(name, help, *, config, arguments=None, parallel=False, overrides=None, default_out=None, backends=False):
    """Decorator: register ``run`` as the study ``name`` (``meanfield NAME``)."""
    def decorate(run):
        STUDIES[name] = Study(name, help, run, config, arguments, parallel, overrides, default_out, backends)
        return run
    return decorate


def discover() -> dict[str, Study]:
    """Import every study module of this package (they register themselves) and return the registry."""
    package = sys.modules[__package__]
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "framework":
            importlib.import_module(f"{__package__}.{info.name}")
    return STUDIES
