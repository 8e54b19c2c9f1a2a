"""Helpers shared by the sampler tests: a sampler set up on a fresh model, and drawn train pairs."""
from __future__ import annotations

import numpy as np
import torch

from backbones import BACKBONES
from backbones.registry import BackboneModel
from samplers import SAMPLERS, Negatives, Sampler
from scenarios.split import Split


def fresh(name: str, split: Split, backbone: str = "mf", seed: int = 0, **params) -> tuple[Sampler, BackboneModel]:
    """Sampler ``name`` (with ``params``) set up on a freshly built ``backbone``, all seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    model = BACKBONES.create(backbone).build(split.train, generator)
    sampler = SAMPLERS.create(name, **params)
    sampler.setup(split, model, np.random.default_rng(seed), generator)
    return sampler, model


def pairs(split: Split, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (user, positive) train pairs drawn with replacement."""
    coo = split.train.tocoo()
    pick = np.random.default_rng(seed).choice(coo.nnz, size=n, replace=True)
    return torch.from_numpy(coo.row[pick].astype(np.int64)), torch.from_numpy(coo.col[pick].astype(np.int64))


def draw(sampler: Sampler, model: BackboneModel, users: torch.Tensor, positives: torch.Tensor) -> Negatives:
    """The sampler's negatives for a batch, at the model's current embeddings."""
    user_layers, item_layers = model.propagate()
    return sampler.sample(users, positives, user_layers, item_layers)
