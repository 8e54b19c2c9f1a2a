"""Mixed shift: the temporal test re-sampled towards unpopular items."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.catalogue import assemble_split, load, resolve_data_dir
from scenarios.protocols import inverse_popularity_resample
from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split
from scenarios.temporal import TIMESTAMPED, temporal_parts


@SCENARIOS.register("mixed")
@dataclass
class MixedShift(Scenario):
    preset = "amazon_electronic"
    supported = ("amazon_electronic", "amazon_cd", "food", "food_irbench", "food_drgnn", "ml-1m", *TIMESTAMPED)
    description = "temporal test re-sampled with probability 1 / train popularity (Amazon Electronic as preset)"

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        data = load(self.dataset, resolve_data_dir(data_dir))
        train, valid, iid, later, protocol = temporal_parts(data, rng)
        unique_train = train.unique_pairs()
        popularity = np.bincount(unique_train.items, minlength=data.n_items)
        user_seen = np.bincount(unique_train.users, minlength=data.n_users) > 0
        # resample among warm pairs only, so cold pairs (dropped anyway) do not take the sample's room
        warm = user_seen[later.users] & (popularity[later.items] > 0)
        candidates = later.select(warm)
        keep = inverse_popularity_resample(candidates.items, popularity, 0.5, rng)
        return assemble_split(
            self.name, data, train, valid, {"iid": iid, "ood": candidates.select(keep)},
            f"{protocol}; then ood re-sampled: half of its warm pairs, without replacement, with probability "
            "proportional to 1 / train popularity of the item",
            dropped={"ood": {"cold_before_resample_dropped": int((~warm).sum()),
                             "resample_dropped": len(candidates) - len(keep)}},
        )
