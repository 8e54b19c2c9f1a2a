"""Popularity shift: the OOD test is (near) uniform over items."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split


@SCENARIOS.register("popularity")
@dataclass
class PopularityShift(Scenario):
    preset = "yelp2018"
    supported = ("yelp2018",)
    description = "OOD test item-uniform; train long-tailed (authors' Yelp2018 split as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        raise NotImplementedError("real-data popularity split")
