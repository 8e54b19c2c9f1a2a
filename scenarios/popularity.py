"""Popularity shift: the OOD test is (near) uniform over items."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.catalogue import assemble_split, carve, load, resolve_data_dir
from scenarios.loaders import Interactions
from scenarios.protocols import item_uniform_holdout
from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split


@SCENARIOS.register("popularity")
@dataclass
class PopularityShift(Scenario):
    preset = "yelp2018"
    supported = (
        "yelp2018", "douban_book", "douban_music", "amazon_beauty", "amazon_electronic", "amazon_cd",
        "ml-100k", "ml-latest-small", "ml-1m", "coat", "yahoo_r3", "food_drgnn", "food_irbench",
    )
    description = "OOD test item-uniform; train long-tailed (authors' Yelp2018 split as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        data = load(self.dataset, resolve_data_dir(data_dir))
        parts = data.parts
        if self.dataset == self.preset:
            return assemble_split(
                self.name, data, parts["train"], parts["valid"], {"iid": parts["test_iid"], "ood": parts["test"]},
                "authors' split files as is: train; valid_iid -> valid; test_iid -> iid; test -> ood",
            )
        everything = Interactions.concat(list(parts.values()))
        pool = everything.unique_pairs()
        ood = item_uniform_holdout(pool.items, 0.2, rng)
        train, valid, iid = carve(pool.select(~ood), rng)
        return assemble_split(
            self.name, data, train, valid, {"iid": iid, "ood": pool.select(ood)},
            "every part of the dataset pooled (duplicate pairs once); OOD test = item-uniform hold-out of 20 % "
            "(pick an item uniformly, then one of its interactions); the rest split IID 70/10/20 into "
            "train / valid / test_iid; held-out sets warm",
            dropped={"pool": {"duplicates_dropped": len(everything) - len(pool)}},
        )
