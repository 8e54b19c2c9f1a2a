"""Matrix factorisation: the embeddings themselves, one layer (L = 0)."""
from __future__ import annotations

from dataclasses import dataclass

import scipy.sparse as sp
import torch

from backbones.registry import BACKBONES, Backbone, BackboneModel


class MFModel(BackboneModel):
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.unsqueeze(0), self.item_embedding.unsqueeze(0)


@BACKBONES.register("mf")
@dataclass
class MF(Backbone):
    def build(self, train: sp.csr_matrix, generator: torch.Generator) -> BackboneModel:
        return MFModel(train.shape[0], train.shape[1], self.dim, generator)
