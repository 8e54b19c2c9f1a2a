"""An example sampler that lives outside negbench, registered through the ``negbench.samplers`` entry point.

A plug-in is a dataclass subclass of ``Sampler`` whose fields are its parameters. It does not use
``@SAMPLERS.register``: the registry registers it under the entry point's name when first read.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from samplers.candidates import uniform_candidates
from samplers.registry import Negatives, Sampler


@dataclass
class ExampleSampler(Sampler):
    """The lowest-scored of ``n_candidates`` uniform candidates: an 'easy negative' sampler."""

    n_candidates: int = 2

    def sample(self, users, positives, user_layers, item_layers) -> Negatives:
        candidates = uniform_candidates(self.train_pairs, users, self.n_candidates, self.generator)
        with torch.no_grad():
            user = self.model.pool(user_layers[:, users])
            scores = torch.einsum("bd,bmd->bm", user, self.model.pool(item_layers)[candidates])
        return Negatives(items=candidates.gather(1, scores.argmin(1, keepdim=True)))
