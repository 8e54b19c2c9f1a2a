"""One record per grid cell, written atomically, so nothing finished is ever lost or half-written.

A cell is stored as two files under ``<root>/runs/``: ``<key>.users.npz`` (per-user metric
vectors, written first) and ``<key>.json`` (everything else, written last). Each is written to a
temporary file in the same folder and renamed into place, so a reader sees either no record or a
whole one; the JSON is the commit marker, and a cell counts as stored only once it exists.

A cell belongs to every grid that lists it (keys do not depend on the grid), but its record
names only the grid that computed it, with that grid's spelling of its names;
``<root>/grids/<name>.json`` lists each run grid's cell keys with the grid's own labels, so a
report finds a grid's cells, named as the grid names them, even where another grid computed them
first (``popularity`` in one grid is ``popularity[confounding=0.8]`` in a grid that sweeps it).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a shared results folder must be readable by all
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


LABELS = ("sampler_label", "backbone_label", "scenario_label")  # a cell's names as its grid spells them


def _membership(grid: str, labels: dict[str, dict[str, str]]) -> bytes:
    """The ``grids/<grid>.json`` file of a results directory: the grid's cell keys and their labels."""
    return json.dumps({"grid": grid, "cells": sorted(labels), "labels": labels}, indent=1, sort_keys=True).encode()


class Store:
    """The records of one results directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"

    def json_path(self, key: str) -> Path:
        return self.runs / f"{key}.json"

    def users_path(self, key: str) -> Path:
        return self.runs / f"{key}.users.npz"

    def membership_path(self, grid: str) -> Path:
        return self.root / "grids" / f"{grid}.json"

    def write_membership(self, grid: str, labels: dict[str, dict[str, str]]) -> None:
        """Record that grid ``grid`` consists of the cells keyed in ``labels`` (key -> ``LABELS``),
        replacing an earlier definition."""
        payload = _membership(grid, labels)
        _atomic_write(self.membership_path(grid), lambda h: h.write(payload))

    def memberships(self) -> dict[str, dict[str, dict[str, str]]]:
        """Grid name -> {cell key -> its labels in that grid}, for every grid run into this directory.

        A list written before labels were kept maps its keys to no labels (the records' own apply).
        """
        folder = self.root / "grids"
        if not folder.exists():
            return {}
        out = {}
        for path in sorted(folder.glob("*.json")):
            with open(path) as handle:
                data = json.load(handle)
            labels = data.get("labels", {})
            out[data["grid"]] = {key: labels.get(key, {}) for key in data["cells"]}
        return out

    def status(self, key: str) -> str | None:
        """``done``, ``failed`` or None (never run, or interrupted before its record was written)."""
        path = self.json_path(key)
        if not path.exists():
            return None
        return self.load(key).get("status")

    def write(self, record: dict[str, Any], per_user: dict[str, np.ndarray] | None = None) -> None:
        key = record["key"]
        if per_user:
            _atomic_write(self.users_path(key), lambda h: np.savez_compressed(h, **per_user))
        payload = json.dumps(record, indent=1, sort_keys=True, default=_json_default).encode()
        _atomic_write(self.json_path(key), lambda h: h.write(payload))

    def remove_partial(self, key: str) -> None:
        """Delete temporary files of ``key`` left by a writer that died before its rename."""
        for path in self.runs.glob(f".{key}.*.tmp"):
            path.unlink(missing_ok=True)

    def load(self, key: str) -> dict[str, Any]:
        with open(self.json_path(key)) as handle:
            return json.load(handle)

    def per_user(self, key: str) -> dict[str, np.ndarray]:
        """Per-user vectors keyed ``"<test set>/<metric>"``, plus ``"<test set>/users"``."""
        with np.load(self.users_path(key)) as data:
            return {name: data[name] for name in data.files}

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.runs.exists():
            return
        for path in sorted(self.runs.glob("*.json")):
            with open(path) as handle:
                yield json.load(handle)

    def table(self, status: str = "done") -> pd.DataFrame:
        """Tidy scores: one row per (cell, test set, metric), with the cell's description and cost."""
        rows = []
        for rec in self.records():
            if rec.get("status") != status:
                continue
            cell = rec["cell"]
            for test_set, values in rec.get("metrics", {}).items():
                for metric, value in values.items():
                    rows.append(
                        {
                            "grid": cell.get("grid", ""),
                            "key": rec["key"],
                            "sampler": cell["sampler_label"],
                            "backbone": cell["backbone_label"],
                            "scenario": cell.get("scenario_label", cell["scenario"]),
                            "dataset": cell["dataset"],
                            "seed": cell["seed"],
                            "test_set": test_set,
                            "metric": metric,
                            "value": value,
                            "epoch_s": rec.get("timings", {}).get("epoch_s", float("nan")),
                            "false_hard_negative_rate": rec.get("diagnostics", {}).get(
                                "false_hard_negative_rate_mean", float("nan")
                            ),
                            "selected_on": rec.get("selected_on", "valid"),
                            "grid_cells": cell.get("grid_cells", 0),
                        }
                    )
        columns = ["grid", "key", "sampler", "backbone", "scenario", "dataset", "seed", "test_set",
                   "metric", "value", "epoch_s", "false_hard_negative_rate", "selected_on",
                   "grid_cells"]
        table = pd.DataFrame(rows, columns=columns)
        memberships = self.memberships()
        if not memberships:
            return table
        # a listed grid holds exactly its listed cells, named as it names them; a record no list
        # holds keeps its own grid
        listed = [_relabel(table[table["key"].isin(cells)], cells).assign(grid=grid, grid_cells=len(cells))
                  for grid, cells in memberships.items()]
        claimed = set().union(*memberships.values())
        unlisted = table[~table["grid"].isin(list(memberships)) & ~table["key"].isin(claimed)]
        return pd.concat(listed + [unlisted], ignore_index=True)


def _relabel(table: pd.DataFrame, labels: dict[str, dict[str, str]]) -> pd.DataFrame:
    """``table`` with each cell's sampler, backbone and scenario named by ``labels`` where it names them."""
    table = table.copy()
    for label in LABELS:
        column = label.removesuffix("_label")
        given = table["key"].map(lambda key: labels.get(key, {}).get(label))
        table[column] = given.fillna(table[column])
    return table


def export_records(store: Store, grid: str, labels: dict[str, dict[str, str]], archive: str | Path,
                   per_user: bool = True) -> int:
    """Write grid ``grid``'s finished records of the cells keyed in ``labels`` to a ``.tar.gz``; return their number.

    The archive holds ``runs/<key>.*`` (JSON and per-user vectors) and ``grids/<grid>.json`` as a
    results directory does, so ``bench report --results ARCHIVE`` reads it, and unpacking it into
    a results directory lets the grid resume from it. ``per_user=False`` leaves the per-user vectors
    out (they are most of the bytes): the report read back is the same except for the per-user
    tests of ``leaderboard.csv``.
    """
    done = [k for k in labels if store.status(k) == "done"]
    archive = Path(archive)
    membership = _membership(grid, labels)

    def write(handle) -> None:
        with tarfile.open(fileobj=handle, mode="w:gz") as tar:
            info = tarfile.TarInfo(f"grids/{grid}.json")
            info.size, info.mode = len(membership), 0o644
            tar.addfile(info, io.BytesIO(membership))
            for key in done:
                for path in [store.json_path(key)] + ([store.users_path(key)] if per_user else []):
                    if path.exists():
                        tar.add(path, arcname=f"runs/{path.name}")

    _atomic_write(archive, write)
    return len(done)


@contextlib.contextmanager
def open_results(path: str | Path) -> Iterator[Store]:
    """A Store for a results directory, or for an archive written by ``export_records`` (unpacked to a temp dir)."""
    path = Path(path)
    if not path.is_file():
        yield Store(path)
        return
    try:
        tar = tarfile.open(path, "r:*")
    except tarfile.TarError as error:
        raise ValueError(f"{path}: not a results directory or a records archive ({error})") from None
    with tar, tempfile.TemporaryDirectory(prefix="negbench-records-") as tmp:
        tar.extractall(tmp, filter="data")
        yield Store(tmp)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a record")
