"""Uniform: one item drawn uniformly among the user's non-interacted items (SPEC §3.1)."""
from __future__ import annotations

from dataclasses import dataclass

from samplers.candidates import uniform_candidates
from samplers.registry import SAMPLERS, Negatives, Sampler


@SAMPLERS.register("uniform")
@dataclass
class Uniform(Sampler):
    n_negatives: int = 1

    def sample(self, users, positives, user_layers, item_layers) -> Negatives:
        return Negatives(items=uniform_candidates(self.train_pairs, users, self.n_negatives, self.generator))
