"""MixGCF (Huang et al. 2021): positive mixing then hop mixing of M uniform candidates (SPEC §3.4).

Per pair and layer l, alpha_l ~ U(0, 1) mixes the positive into every candidate,
e'(j, l) = alpha_l e(i+, l) + (1 - alpha_l) e(j, l); at each layer the candidate whose mixed layer
embedding the pooled user embedding scores highest is kept; the negative is the mean over layers
of the kept mixed embeddings. The selection runs without gradient; the output is rebuilt from the
layer tensors, so the gradient reaches the positive's and the picked items' embeddings. With MF
(one layer) this is DNS with positive mixing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from samplers.candidates import uniform_candidates
from samplers.registry import SAMPLERS, Negatives, Sampler


@SAMPLERS.register("mixgcf")
@dataclass
class MixGCF(Sampler):
    n_candidates: int = 32

    synthesises = True

    def sample(self, users, positives, user_layers, item_layers) -> Negatives:
        candidates = uniform_candidates(self.train_pairs, users, self.n_candidates, self.generator)  # [B, M]
        n_layers, batch = item_layers.shape[0], len(users)
        alpha = torch.rand((n_layers, batch, 1), generator=self.generator, device=self.generator.device)
        alpha = alpha.to(item_layers)
        positive = item_layers[:, positives]  # [L+1, B, d]
        with torch.no_grad():
            user = self.model.pool(user_layers[:, users])  # [B, d]
            mixed_pos = torch.einsum("bd,lbd->lb", user, positive) * alpha.squeeze(-1)  # [L+1, B]
            # one batched product per layer: never holds all [L+1, B, M, d] candidate layers at once
            cand_scores = torch.stack([torch.bmm(layer[candidates], user.unsqueeze(-1))[..., 0] for layer in item_layers])
            best = (mixed_pos.unsqueeze(-1) + (1 - alpha) * cand_scores).argmax(-1)  # [L+1, B]
        picked_items = candidates.gather(1, best.T)  # [B, L+1]
        picked = item_layers[torch.arange(n_layers, device=best.device).unsqueeze(1), picked_items.T]
        mixed = alpha * positive + (1 - alpha) * picked  # [L+1, B, d]
        return Negatives(embeddings=self.model.pool(mixed).unsqueeze(1), sources=picked_items)
