"""Run the cells of a grid in parallel, skipping those already stored, recording failures.

Each cell runs in a worker (joblib processes, or a Dask cluster through joblib's dask backend)
and writes its own record atomically, so a crash or a kill loses at most the cells in flight.
A cell is claimed with a lock file while it runs, so two runners on one results directory do
not compute the same cell twice; the lock is an ``flock``, which dies with its holder, so a lock
file left by a killed runner blocks nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from backbones import BACKBONES
from bench.grid import COMMAND_LINE_GRID, Cell, Grid
from bench.manifest import manifest
from bench.store import Store
from bench.train import train
from samplers import SAMPLERS
from scenarios import SCENARIOS


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # claimed by another live runner
    errors: dict[str, str] = field(default_factory=dict)  # failed key -> its error
    wall_s: float = 0.0


def _lock_path(store: Store, key: str) -> Path:
    return store.runs / f"{key}.lock"


@contextlib.contextmanager
def claim(store: Store, key: str) -> Iterator[bool]:
    """Hold ``<key>.lock`` while the cell runs; yields False if another live runner holds it.

    The claim is an exclusive ``flock`` on the file, taken without waiting: the kernel grants it to
    one process only and drops it when that process ends, even by SIGKILL. So no lock is ever
    stale, and none is judged by its contents (reading a file its creator had not yet written,
    or two runners breaking the same dead lock, let two runners take one cell). The file names
    its holder (host, pid) for people only.
    """
    store.runs.mkdir(parents=True, exist_ok=True)
    path = _lock_path(store, key)
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            current = os.stat(path)
            ours = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (ours.st_dev, ours.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its holder removed on release: claim the one there now
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        yield True
    finally:
        path.unlink(missing_ok=True)  # removed while still locked, then released
        os.close(fd)


def execute_cell(cell: Cell, data_dir: Path | None, run_manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Build the split, train, evaluate: the record and the per-user vectors of one cell."""
    torch.set_num_threads(max(1, run_manifest.get("threads_per_cell", 1)))
    t0 = time.perf_counter()
    scenario = SCENARIOS.create(cell.scenario.name, **dict(cell.scenario.params))
    split = scenario.build(data_dir, scenario.split_rng(cell.seed))
    model = BACKBONES.create(cell.backbone.name, **dict(cell.backbone.params)).build(
        split.train, torch.Generator().manual_seed(cell.pairing_seed("init"))
    )
    sampler = SAMPLERS.create(cell.sampler.name, **dict(cell.sampler.params))
    result = train(
        split,
        model,
        sampler,
        cell.train_config(),
        np.random.default_rng(cell.sampler_seed()),
        torch.Generator().manual_seed(cell.pairing_seed("order")),
        np.random.default_rng(cell.pairing_seed("probe")),
    )
    per_user: dict[str, np.ndarray] = {}
    metrics: dict[str, dict[str, float]] = {}
    for name, evaluation in result.evaluations.items():
        metrics[name] = evaluation.aggregate
        per_user[f"{name}/users"] = evaluation.users
        for metric, values in evaluation.per_user.items():
            per_user[f"{name}/{metric}"] = values.astype(np.float32)
    record = {
        "key": cell.key,
        "status": "done",
        "cell": cell.summary(),
        "seeds": {"seed": cell.seed, "init": cell.pairing_seed("init"), "order": cell.pairing_seed("order"), "probe": cell.pairing_seed("probe"), "sampler": cell.sampler_seed()},
        "metrics": metrics,
        "best_epoch": result.best_epoch,
        "selected_on": result.selected_on,
        "history": result.history,
        "timings": {**result.timings, "total_s": time.perf_counter() - t0},
        "diagnostics": result.diagnostics,
        "split": {
            "checksum": split.meta.get("split_checksum"),
            "sizes": split.sizes(),
            "shift": split.meta.get("diagnostics"),
            "data_checksums": split.meta.get("checksums", {}),
        },
        "manifest": run_manifest,
    }
    return record, per_user


def run_cell(
    cell: Cell, results_dir: str, data_dir: str | None, run_manifest: dict[str, Any], rerun: bool = False
) -> tuple[str, str, str | None]:
    """Worker entry point: claim, run, store. Returns (key, status, error); never raises for a cell's own error.

    ``rerun`` (``--force``) computes the cell even if it is stored; a failure then keeps the
    stored record, since nothing finished is overwritten by a failed run.
    """
    store = Store(results_dir)
    with claim(store, cell.key) as mine:
        if not mine:
            return cell.key, "busy", None
        store.remove_partial(cell.key)  # temp files of a writer killed mid-write: only a holder writes
        previous = store.status(cell.key)
        if previous == "done" and not rerun:  # another runner finished it meanwhile
            return cell.key, "cached", None
        try:
            record, per_user = execute_cell(cell, Path(data_dir) if data_dir else None, run_manifest)
        except Exception as error:  # a bad cell is recorded, the grid goes on
            record = {
                "key": cell.key,
                "status": "failed",
                "cell": cell.summary(),
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
                "manifest": run_manifest,
            }
            per_user = {}
            if previous == "done":
                return cell.key, "failed", record["error"]
        store.write(record, per_user)
        return cell.key, record["status"], record.get("error")


def _matches_force(cell: Cell, patterns: list[str]) -> bool:
    labels = (cell.key, cell.sampler.label, cell.backbone.label, cell.scenario.label, cell.dataset)
    return any(label == p or fnmatch.fnmatchcase(label, p) for p in patterns for label in labels)


def run_grid(
    grid: Grid,
    results_dir: str | Path,
    data_dir: str | Path | None,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    force: list[str] | None = None,
    progress: bool = True,
    threads_per_cell: int | None = None,
) -> RunSummary:
    """Run every cell of ``grid`` not already stored; cells matching ``force`` patterns run again.

    ``threads_per_cell`` (torch threads in each cell) defaults to the cores over ``n_jobs``, which
    assumes the machine is otherwise idle; on a shared machine, or with several runners, pass 1.
    """
    store = Store(results_dir)
    if grid.name != COMMAND_LINE_GRID:
        store.write_membership(grid.name, grid.labels())
    summary = RunSummary()
    todo = []
    for cell in grid.cells:  # checked before dispatch: a stored cell never reaches a worker
        forced = bool(force) and _matches_force(cell, force)
        if store.status(cell.key) == "done" and not forced:
            summary.cached.append(cell.key)
        else:
            todo.append((cell, forced))
    threads = threads_per_cell or max(1, (os.cpu_count() or 1) // max(n_jobs, 1))
    run_manifest = manifest(n_jobs, backend) | {"threads_per_cell": threads}
    start = time.perf_counter()
    bar = tqdm(total=len(grid.cells), initial=len(summary.cached), disable=not progress, unit="cell", dynamic_ncols=True)
    bar.set_postfix(done=0, cached=len(summary.cached), failed=0)
    tasks = (
        delayed(run_cell)(cell, str(results_dir), str(data_dir) if data_dir else None, run_manifest, forced)
        for cell, forced in todo
    )
    with _backend(backend, scheduler, n_jobs):
        for key, status, error in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            {"done": summary.done, "cached": summary.cached, "failed": summary.failed, "busy": summary.busy}[status].append(key)
            if error is not None:
                summary.errors[key] = error
            bar.update(1)
            bar.set_postfix(done=len(summary.done), cached=len(summary.cached), failed=len(summary.failed))
    bar.close()
    summary.wall_s = time.perf_counter() - start
    return summary


@contextlib.contextmanager
def _backend(backend: str, scheduler: str | None, n_jobs: int) -> Iterator[None]:
    if backend == "loky":
        with parallel_config(backend="loky"):
            yield
        return
    if backend != "dask":
        raise ValueError(f"unknown backend {backend!r}; choose loky or dask")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError('the dask backend needs dask.distributed: pip install "negbench[dask]"') from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            stack.enter_context(Client(scheduler))
        else:  # no address: a local cluster, one single-threaded worker process per job
            cluster = stack.enter_context(LocalCluster(n_workers=max(n_jobs, 1), threads_per_worker=1, processes=True))
            stack.enter_context(Client(cluster))
        with parallel_config(backend="dask", wait_for_workers_timeout=60):
            yield
