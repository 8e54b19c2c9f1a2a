"""Exposure shift: train on logged positives, test on randomly exposed items."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split


@SCENARIOS.register("exposure")
@dataclass
class ExposureShift(Scenario):
    preset = "yahoo_r3"
    supported = ("yahoo_r3",)
    description = "train on exposure-biased logs, test on random exposure (Yahoo! R3 as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        raise NotImplementedError("real-data popularity split")
