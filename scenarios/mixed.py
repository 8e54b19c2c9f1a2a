"""Mixed shift: the temporal test re-sampled towards unpopular items."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split


@SCENARIOS.register("mixed")
@dataclass
class MixedShift(Scenario):
    preset = "amazon_electronic"
    supported = ("amazon_electronic",)
    description = "temporal test re-sampled with probability 1 / train popularity (Amazon Electronic as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        raise NotImplementedError("real-data popularity split")
