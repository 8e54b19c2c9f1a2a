"""Benchmark fixtures: the real presets, built once per session (skipped without the data)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from scenarios import SCENARIOS
from scenarios.split import Split

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"yelp2018": "popularity", "food": "temporal"}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("NEGBENCH_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"benchmarks need the real data: set NEGBENCH_DATA (looked in {path})")
    return path


@pytest.fixture(scope="session")
def preset_splits(data_dir: Path) -> dict[str, Split]:
    splits = {}
    for dataset, scenario_name in PRESETS.items():
        scenario = SCENARIOS.create(scenario_name, dataset=dataset)
        splits[dataset] = scenario.build(data_dir, scenario.split_rng(0))
    return splits
