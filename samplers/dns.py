"""DNS (Zhang et al. 2013): of M uniform candidates, the one the current model scores highest (SPEC §3.3)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from samplers.candidates import uniform_candidates
from samplers.registry import SAMPLERS, Negatives, Sampler


@SAMPLERS.register("dns")
@dataclass
class DNS(Sampler):
    n_candidates: int = 32

    def sample(self, users, positives, user_layers, item_layers) -> Negatives:
        candidates = uniform_candidates(self.train_pairs, users, self.n_candidates, self.generator)
        with torch.no_grad():
            user = self.model.pool(user_layers[:, users])
            scores = torch.einsum("bd,bmd->bm", user, self.model.pool(item_layers)[candidates])
        return Negatives(items=candidates.gather(1, scores.argmax(1, keepdim=True)))
