"""Temporal shift: train on the past, test on the future."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split


@SCENARIOS.register("temporal")
@dataclass
class TemporalShift(Scenario):
    preset = "food"
    supported = ("food",)
    description = "global time cut: earliest 70 % train, latest 20 % test (authors' Food split as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        raise NotImplementedError("real-data popularity split")
