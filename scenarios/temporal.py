"""Temporal shift: train on the past, test on the future."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.catalogue import LoadedDataset, assemble_split, carve, load, resolve_data_dir
from scenarios.loaders import Interactions
from scenarios.protocols import temporal_cut
from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split

TIMESTAMPED = ("ml-100k", "ml-latest-small")
ALREADY_CUT = ("food_irbench", "food_drgnn", "ml-1m", "amazon_electronic", "amazon_cd")


def temporal_parts(
    data: LoadedDataset, rng: np.random.Generator
) -> tuple[Interactions, Interactions, Interactions, Interactions, str]:
    """Train, valid, test_iid and the later (OOD) test of a temporal dataset, and the protocol text.

    Authors' split files are used as is; raw timestamps get a global cut; datasets already cut
    (without timestamps) keep their train / test and have valid and test_iid carved from train.
    """
    parts = data.parts
    if "test_iid" in parts:
        return (parts["train"], parts["valid"], parts["test_iid"], parts["test"],
                "authors' split files as is: train; valid_iid -> valid; test_iid -> iid; test -> ood")
    if "ratings" in parts:
        ratings = parts["ratings"]
        early, late = temporal_cut(ratings.timestamps, 0.7, 0.1)
        train, valid, iid = carve(ratings.select(early), rng)
        return (train, valid, iid, ratings.select(late),
                "global time cut of the positives: earliest 70 % = train period, next 10 % = gap, latest 20 % = "
                "ood; the train period split IID 70/10/20 into train / valid / test_iid; held-out sets warm")
    train, valid, iid = carve(parts["train"], rng)
    return (train, valid, iid, parts["test"],
            "the dataset's own time cut: its test -> ood; its train split IID 70/10/20 into "
            "train / valid / test_iid; held-out sets warm")


@SCENARIOS.register("temporal")
@dataclass
class TemporalShift(Scenario):
    preset = "food"
    supported = ("food", *TIMESTAMPED, *ALREADY_CUT)
    description = "global time cut: earliest 70 % train, latest 20 % test (authors' Food split as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        data = load(self.dataset, resolve_data_dir(data_dir))
        train, valid, iid, later, protocol = temporal_parts(data, rng)
        return assemble_split(self.name, data, train, valid, {"iid": iid, "ood": later}, protocol)
