"""Benchmark fixtures: the real presets, built once per session (skipped without the data), and a
summary of every group against its reference measured in the same run."""
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


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Each benchmark's mean over its group's reference (``extra_info["reference"]``), same run."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [b for b in getattr(session, "benchmarks", []) if b.stats is not None]
    if not benchmarks:
        return
    terminalreporter.section("ratios to the reference of each group (same run)")
    for group in sorted({b.group for b in benchmarks}):
        members = [b for b in benchmarks if b.group == group]
        reference = next((b for b in members if b.extra_info.get("reference")), None)
        terminalreporter.write_line(f"{group} (reference: {reference.name if reference else 'none'})")
        for bench in sorted(members, key=lambda b: b.stats.mean):
            ratio = f"{bench.stats.mean / reference.stats.mean:6.2f}x" if reference else "      "
            rate = bench.extra_info.get("negatives_per_second")
            extra = f"  {rate:,.0f} negatives/s" if rate else ""
            terminalreporter.write_line(f"  {bench.name:<55} {bench.stats.mean:9.4f} s  {ratio}{extra}")
