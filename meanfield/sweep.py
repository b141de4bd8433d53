"""Run independent tasks with Dask and keep every finished result on disk, so a study can resume.

Each task is ``fn(**kwargs)`` returning a dict of arrays and numbers; its result is written to
``runs_dir/NAME.npz`` as soon as it arrives (write to a temporary file, then an atomic rename), and a
task whose file exists is not run again. The client writes the files, so workers need no shared
file system: the same code runs on a local cluster of processes or on any Dask cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from tqdm.auto import tqdm


def save_result(path: Path, result: Mapping) -> Path:
    """Write a dict of arrays/numbers to ``path`` (.npz) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in result.items()})
    os.replace(tmp, path)
    return path


def load_result(path: Path) -> dict:
    with np.load(path) as data:
        return {k: (data[k].item() if data[k].ndim == 0 else data[k]) for k in data.files}


def run_tasks(fn: Callable[..., Mapping], tasks: Mapping[str, dict], runs_dir, *, workers=None,
              scheduler=None, progress=True, desc="tasks") -> dict[str, Path]:
    """Run the tasks not already on disk; return {name: result path} for all tasks.

    workers : int or None
        Worker processes of the local cluster (default: the number of cores); 0 runs the tasks in this
        process, one after the other, without Dask.
    scheduler : str or None
        Address of an existing Dask scheduler (``tcp://HOST:PORT``); then ``workers`` is ignored.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: runs_dir / f"{name}.npz" for name in tasks}
    pending = {name: kw for name, kw in tasks.items() if not paths[name].exists()}
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(pending), disable=not progress, desc=desc, unit="task")
    with bar:
        if not pending:
            return paths
        if workers == 0 and scheduler is None:
            for name, kwargs in pending.items():
                save_result(paths[name], fn(**kwargs))
                bar.update()
            return paths
        from dask.distributed import Client, LocalCluster, as_completed

        with contextlib.ExitStack() as stack:
            if scheduler is None:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers or os.cpu_count(), threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR))
                client = stack.enter_context(Client(cluster))
            else:
                client = stack.enter_context(Client(scheduler))
            futures = {client.submit(fn, **kwargs, key=f"{name}-{os.getpid()}", pure=False): name
                       for name, kwargs in pending.items()}
            for future in as_completed(futures):
                save_result(paths[futures[future]], future.result())
                bar.update()
    return paths
