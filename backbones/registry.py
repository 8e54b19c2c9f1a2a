"""The backbone plug-in kind: a parameter dataclass that builds a ``BackboneModel``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import scipy.sparse as sp
import torch
from torch import nn

from bench.registry import Registry


class BackboneModel(nn.Module):
    """Layer-0 user and item embeddings plus a propagation that returns every layer.

    ``propagate()`` returns ``(users [L+1, n_users, d], items [L+1, n_items, d])``; the pooled view
    (mean over layers) is what scores a pair, by inner product.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.user_embedding = nn.Parameter(torch.empty(n_users, dim))
        self.item_embedding = nn.Parameter(torch.empty(n_items, dim))
        for weight in (self.user_embedding, self.item_embedding):
            nn.init.xavier_uniform_(weight, generator=generator)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @staticmethod
    def pool(layers: torch.Tensor) -> torch.Tensor:
        return layers.mean(dim=0)

    def pooled(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.propagate()
        return self.pool(users), self.pool(items)


@dataclass
class Backbone:
    """Base of the registered backbone parameters."""

    dim: int = 64

    name: ClassVar[str]

    def build(self, train: sp.csr_matrix, generator: torch.Generator) -> BackboneModel:
        raise NotImplementedError


BACKBONES: Registry[Backbone] = Registry("backbone", "negbench.backbones")
