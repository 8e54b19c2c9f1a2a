"""Popularity: p(j) proportional to pop(j) ** alpha, the user's train positives rejected (SPEC §3.2)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from samplers.candidates import reject_positives
from samplers.registry import SAMPLERS, Negatives, Sampler


@SAMPLERS.register("popularity")
@dataclass
class Popularity(Sampler):
    alpha: float = 0.75
    n_negatives: int = 1

    def setup(self, split, model, rng, generator) -> None:
        super().setup(split, model, rng, generator)
        weights = torch.from_numpy(split.item_popularity).double() ** self.alpha
        if not float(weights.sum()) > 0:
            raise ValueError("popularity sampler: no item has a positive train popularity")
        self.probabilities = weights / weights.sum()

    def _draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        flat = torch.multinomial(self.probabilities, math.prod(shape), replacement=True, generator=self.generator)
        return flat.reshape(shape)

    def sample(self, users, positives, user_layers, item_layers) -> Negatives:
        return Negatives(items=reject_positives(self.train_pairs, users, self._draw, (len(users), self.n_negatives)))
