"""The runner: one record per cell, free resume, --force, kills, concurrent runners, failures, Dask."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.grid import load_grid
from bench.runner import claim, run_grid
from bench.store import Store

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^done (\d+), cached (\d+), failed (\d+), busy elsewhere (\d+) in ", re.M)


def write_grid(folder: Path, name: str = "tiny", scenarios: str = '"exposure[dataset=synthetic,confounding=0.5,1.5]"',
               seeds: int = 1, epochs: int = 2) -> Path:
    """uniform[n_negatives=1,2] x mf x the scenarios x seeds, trained for a few tiny epochs."""
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n'
        'samplers = ["uniform[n_negatives=1,2]"]\n'
        'backbones = ["mf"]\n'
        f"scenarios = [{scenarios}]\n"
        f"seeds = {seeds}\n"
        f"[train]\nepochs = {epochs}\neval_every = 1\nbatch_size = 1024\n"
    )
    return path


def snapshot(results: Path) -> dict[str, tuple[int, bytes]]:
    """name -> (mtime_ns, bytes) of every record file."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((results / "runs").glob("*.json"))}


def assert_complete(results: Path, keys: set[str]) -> None:
    """Every cell exactly once, a whole record with status done, nothing left behind."""
    runs = results / "runs"
    records = sorted(runs.glob("*.json"))
    assert {p.name[: -len(".json")] for p in records} == keys
    for path in records:
        record = json.loads(path.read_text())
        assert record["status"] == "done", record.get("error")
        assert record["key"] == path.stem
        assert record["metrics"]["ood"] and record["metrics"]["valid"]
        assert (runs / f"{path.stem}.users.npz").is_file()
    assert list(runs.glob("*.tmp")) == [] and list(runs.glob(".*tmp")) == []
    assert list(runs.glob("*.lock")) == []


def cli_summary(stderr: str) -> dict[str, int]:
    match = SUMMARY.search(stderr)
    assert match, stderr
    return dict(zip(("done", "cached", "failed", "busy"), map(int, match.groups())))


def bench(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished run of the 4-cell tiny grid, computed once for the tests that only read it."""
    folder = tmp_path_factory.mktemp("tiny")
    grid = load_grid(write_grid(folder))
    summary = run_grid(grid, folder / "results", None, n_jobs=1, progress=False, threads_per_cell=1)
    return grid, folder / "results", summary


def test_a_run_writes_one_record_per_cell(tiny_run):
    grid, results, summary = tiny_run
    keys = {c.key for c in grid.cells}
    assert len(keys) == 4
    assert sorted(summary.done) == sorted(keys)
    assert summary.cached == summary.failed == summary.busy == []
    assert_complete(results, keys)
    store = Store(results)
    for cell in grid.cells:
        record = store.load(cell.key)
        assert record["cell"]["sampler_label"] == cell.sampler.label
        assert record["cell"]["scenario_label"] == cell.scenario.label_without("dataset")
        assert record["seeds"]["seed"] == cell.seed
        assert record["manifest"]["threads_per_cell"] == 1
        assert record["seeds"]["init"] == cell.pairing_seed("init")
        assert record["seeds"]["sampler"] == cell.sampler_seed()
        per_user = store.per_user(cell.key)
        assert {k.split("/", 1)[1] for k in per_user if k.startswith("ood/")} - {"users"} <= set(record["metrics"]["ood"])
        assert len(per_user["ood/users"]) == len(per_user["ood/recall@20"]) > 0
        recall = record["metrics"]["ood"]["recall@20"]
        assert 0.0 <= recall <= 1.0
        assert np.isclose(per_user["ood/recall@20"].mean(), recall, atol=1e-5)


def test_paired_cells_see_the_same_split(tiny_run):
    grid, results, _ = tiny_run
    store = Store(results)
    by_scenario: dict[str, set[str]] = {}
    for cell in grid.cells:
        by_scenario.setdefault(cell.scenario.label, set()).add(store.load(cell.key)["split"]["checksum"])
    assert all(len(checksums) == 1 for checksums in by_scenario.values())  # both samplers, one split
    assert len({next(iter(c)) for c in by_scenario.values()}) == 2  # two confounding levels, two splits


def test_second_run_computes_nothing(tiny_run):
    grid, results, _ = tiny_run
    before = snapshot(results)
    npz_before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.npz")}
    summary = run_grid(grid, results, None, n_jobs=1, progress=False, threads_per_cell=1)
    assert sorted(summary.cached) == sorted(c.key for c in grid.cells)
    assert summary.done == summary.failed == summary.busy == []
    assert snapshot(results) == before
    assert {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.npz")} == npz_before


def test_force_reruns_only_matching_cells(tiny_run, tmp_path):
    grid, finished, _ = tiny_run
    results = tmp_path / "results"
    shutil.copytree(finished, results)
    before = snapshot(results)
    time.sleep(0.01)
    summary = run_grid(grid, results, None, n_jobs=1, force=["uniform[n_negatives=2]"], progress=False, threads_per_cell=1)
    forced = {c.key for c in grid.cells if c.sampler.label == "uniform[n_negatives=2]"}
    assert set(summary.done) == forced and len(forced) == 2
    assert set(summary.cached) == {c.key for c in grid.cells} - forced
    after = snapshot(results)
    for key in forced:
        assert after[f"{key}.json"][0] != before[f"{key}.json"][0]  # written again
        # same cell, same seeds: the same numbers
        assert json.loads(after[f"{key}.json"][1])["metrics"] == json.loads(before[f"{key}.json"][1])["metrics"]
    for name, value in before.items():
        if name[: -len(".json")] not in forced:
            assert after[name] == value
    assert_complete(results, {c.key for c in grid.cells})
    # a key and a glob pattern work too
    key = next(c.key for c in grid.cells if "0.5" in c.scenario.label and c.key not in forced)
    summary = run_grid(grid, results, None, force=[key, "*confounding=1.5*"], progress=False, threads_per_cell=1)
    assert set(summary.done) == {key} | {c.key for c in grid.cells if "1.5" in c.scenario.label}
    assert len(summary.done) == 3


def copy_without(finished: Path, target: Path, keys: list[str]) -> None:
    """A copy of a finished results directory whose records of ``keys`` are gone."""
    shutil.copytree(finished, target)
    for key in keys:
        for path in (target / "runs").glob(f"{key}.*"):
            path.unlink()


def test_a_cell_claimed_by_a_live_runner_is_left_to_it(tiny_run, tmp_path):
    grid, finished, _ = tiny_run
    results = tmp_path / "results"
    held, other = grid.cells[0].key, grid.cells[3].key
    copy_without(finished, results, [held, other])
    with claim(Store(results), held) as mine:
        assert mine
        summary = run_grid(grid, results, None, progress=False, threads_per_cell=1)
    assert summary.busy == [held]
    assert summary.done == [other]
    assert len(summary.cached) == 2
    assert not Store(results).json_path(held).exists()
    assert list((results / "runs").glob("*.lock")) == []  # released on exit
    summary = run_grid(grid, results, None, progress=False, threads_per_cell=1)  # the next run picks it up
    assert summary.done == [held]
    assert_complete(results, {c.key for c in grid.cells})


def test_a_claim_is_exclusive_even_before_its_holder_is_named(tmp_path):
    """The instant between creating the lock file and writing the holder into it is no opening."""
    store = Store(tmp_path)
    with claim(store, "k") as first:
        assert first
        with claim(store, "k") as second:
            assert not second
        (store.runs / "k.lock").write_text("")  # as a runner that has just created the file
        with claim(store, "k") as third:
            assert not third
        assert (store.runs / "k.lock").exists()
    with claim(store, "k") as again:  # released: free again
        assert again
    assert not (store.runs / "k.lock").exists()


def test_leftovers_of_a_dead_runner_do_not_block(tiny_run, tmp_path):
    """A lock file and half-written temp files, as a process killed mid-cell leaves them."""
    grid, finished, _ = tiny_run
    results = tmp_path / "results"
    runs = results / "runs"
    key = grid.cells[1].key
    copy_without(finished, results, [key])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (runs / f"{key}.lock").write_text(f"{os.uname().nodename} {int(dead.stdout)}\n")
    (runs / f".{key}.json.abc123.tmp").write_text('{"key": "half')
    (runs / f".{key}.users.npz.def456.tmp").write_bytes(b"PK")
    summary = run_grid(grid, results, None, progress=False, threads_per_cell=1)
    assert summary.done == [key] and len(summary.cached) == 3
    assert_complete(results, {c.key for c in grid.cells})


def test_killed_run_resumes_without_recomputing(tmp_path):
    path = write_grid(tmp_path, "kill", seeds=2)
    grid = load_grid(path)
    keys = {c.key for c in grid.cells}
    assert len(keys) == 8
    results = tmp_path / "results"
    runs = results / "runs"
    command = [sys.executable, "-m", "bench", "run", str(path), "-j", "1", "--threads", "1", "--results", str(results), "--quiet"]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not list(runs.glob("*.json")):
            assert proc.poll() is None, "the run ended before any record appeared"
            assert time.monotonic() < deadline, "no record after 180 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = snapshot(results)
    assert 1 <= len(before) < len(keys), "the kill came too late to test a resume"
    for name, (_, content) in before.items():
        record = json.loads(content)  # whatever was written is whole
        assert record["status"] == "done" and record["manifest"]["threads_per_cell"] == 1

    rerun = bench("run", str(path), "-j", "1", "--threads", "1", "--results", str(results), "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    counts = cli_summary(rerun.stderr)
    assert counts == {"done": len(keys) - len(before), "cached": len(before), "failed": 0, "busy": 0}
    assert_complete(results, keys)
    after = snapshot(results)
    for name, value in before.items():
        assert after[name] == value, f"{name} was recomputed"


def test_two_concurrent_runners_compute_each_cell_once(tmp_path):
    path = write_grid(tmp_path, "twice")
    keys = {c.key for c in load_grid(path).cells}
    results = tmp_path / "results"
    command = [sys.executable, "-m", "bench", "run", str(path), "-j", "1", "--threads", "1", "--results", str(results), "--quiet"]
    procs = [subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    counts = [cli_summary(err) for _, err in outputs]
    for c in counts:
        assert c["failed"] == 0
        assert c["done"] + c["cached"] + c["busy"] == len(keys)
    assert sum(c["done"] for c in counts) == len(keys), counts  # no cell computed twice
    assert_complete(results, keys)


def test_a_failing_cell_is_recorded_and_the_others_complete(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    path = write_grid(tmp_path, "mixed", scenarios='"exposure[dataset=synthetic]", "exposure[dataset=coat]"')
    grid = load_grid(path)
    results = tmp_path / "results"
    status = main(["run", str(path), "--results", str(results), "--data-dir", str(empty), "--quiet", "--threads", "1"])
    assert status == 1
    err = capsys.readouterr().err
    assert cli_summary(err) == {"done": 2, "cached": 0, "failed": 2, "busy": 0}
    store = Store(results)
    for cell in grid.cells:
        record = store.load(cell.key)
        if cell.dataset == "coat":
            assert record["status"] == "failed"
            assert record["error"].startswith("DataDirError: ") and "coat" in record["error"]
            assert "Traceback" in record["traceback"]
            assert record["cell"]["scenario_label"] == cell.scenario.label_without("dataset")
            assert f"failed {cell.key}: DataDirError" in err
        else:
            assert record["status"] == "done"
    assert list((results / "runs").glob("*.lock")) == []

    # the status command shows the failures and the grid as incomplete
    assert main(["status", str(path), "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out
    assert "done 2, failed 2, missing 0 of 4" in out
    assert out.count("failed ") >= 2 and "DataDirError" in out

    # a missing record is listed as missing
    done_key = next(c.key for c in grid.cells if c.dataset == "synthetic")
    store.json_path(done_key).unlink()
    main(["status", str(path), "--results", str(results)])
    out = capsys.readouterr().out
    assert "done 1, failed 2, missing 1 of 4" in out
    assert re.search(rf"^missing\s+{done_key}\b", out, re.M)


def test_failed_cells_are_retried_and_a_failure_never_replaces_a_done_record(tmp_path, data_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = write_grid(tmp_path, "coat", scenarios='"exposure[dataset=coat]"')
    grid = load_grid(path)
    keys = {c.key for c in grid.cells}
    results = tmp_path / "results"
    assert len(run_grid(grid, results, empty, progress=False, threads_per_cell=1).failed) == 2
    summary = run_grid(grid, results, data_dir, progress=False, threads_per_cell=1)  # the data is there now: retried
    assert sorted(summary.done) == sorted(keys)
    assert_complete(results, keys)
    before = snapshot(results)
    # a forced re-run that fails keeps the finished record
    summary = run_grid(grid, results, empty, force=["*"], progress=False, threads_per_cell=1)
    assert sorted(summary.failed) == sorted(keys)
    assert snapshot(results) == before


def test_status_of_a_complete_grid(tiny_run, capsys):
    grid, results, _ = tiny_run
    folder = results.parent
    assert main(["status", str(folder / "tiny.toml"), "--results", str(results), "--all"]) == 0
    out = capsys.readouterr().out
    assert "complete: done 4, failed 0, missing 0 of 4" in out and "INCOMPLETE" not in out
    assert all(cell.key in out for cell in grid.cells)


def test_dask_backend_gives_the_same_metrics_as_loky(tiny_run, tmp_path):
    pytest.importorskip("dask.distributed")
    grid, loky_results, _ = tiny_run
    summary = run_grid(grid, tmp_path / "dask", None, n_jobs=1, backend="dask", progress=False, threads_per_cell=1)
    assert sorted(summary.done) == sorted(c.key for c in grid.cells)
    assert_complete(tmp_path / "dask", {c.key for c in grid.cells})
    loky, dask = Store(loky_results), Store(tmp_path / "dask")
    for cell in grid.cells:
        a, b = loky.load(cell.key), dask.load(cell.key)
        assert b["manifest"]["backend"] == "dask"
        assert a["metrics"] == b["metrics"]
        assert a["seeds"] == b["seeds"] and a["best_epoch"] == b["best_epoch"]
        assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
