"""The sampler plug-in kind: the base class, the negatives it returns, and the registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from backbones.registry import BackboneModel
from bench.registry import Registry
from scenarios.split import Split
from scenarios.pairs import PairSet


@dataclass
class Negatives:
    """Either item ids ``[B, K]`` or synthesised pooled-space embeddings ``[B, K, d]``.

    ``sources`` (``[B, S]`` item ids, with embeddings only) names the real items a synthesised
    negative is built from, so the training loop regularises their rows as it does an item-id
    negative's, and the L2 term is the same for every sampler family.
    """

    items: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    sources: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.items is None) == (self.embeddings is None):
            raise ValueError("Negatives holds exactly one of items or embeddings")
        if self.sources is not None and self.items is not None:
            raise ValueError("Negatives.sources goes with embeddings; item-id negatives are their own sources")


@dataclass
class Sampler:
    """Base class: turns a batch of (user, positive) pairs and the current embeddings into negatives.

    ``setup`` receives the split, the model and the randomness of the cell; ``sample`` must not
    loop in Python over the batch. Selection happens without gradient; the chosen negative's
    embedding keeps its gradient (the training loop looks item ids up itself).
    """

    name: ClassVar[str]
    synthesises: ClassVar[bool] = False  # True when ``sample`` returns embeddings
    learning_rate: ClassVar[float] = 1e-3  # for the sampler's own parameters, if any

    def setup(self, split: Split, model: BackboneModel, rng: np.random.Generator, generator: torch.Generator) -> None:
        self.split = split
        self.model = model
        self.rng = rng
        self.generator = generator
        self.train_pairs = PairSet(split.train)
        self.n_items = split.n_items

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """Called before each epoch (0-based); schedules live here."""

    def sample(
        self, users: torch.Tensor, positives: torch.Tensor, user_layers: torch.Tensor, item_layers: torch.Tensor
    ) -> Negatives:
        raise NotImplementedError

    def extra_loss(self) -> torch.Tensor | None:
        """A loss term added to BPR for the last sampled batch (None when the sampler has none)."""
        return None

    def parameters(self) -> list[torch.nn.Parameter]:
        """The sampler's own trainable parameters (trained by their own optimizer)."""
        return []

    @classmethod
    def compatible(cls, backbone: str, scenario: str) -> tuple[bool, str]:
        return True, ""


SAMPLERS: Registry[Sampler] = Registry("sampler", "negbench.samplers")
