"""Full-ranking evaluation: every item scored, known items masked, metrics per user.

Users are processed in chunks of one ``matmul`` + ``topk`` each; masking and hit look-ups are
vectorised, and every per-user value depends on that user's row alone, so the results are the
same for any chunk size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from bench.metrics import METRICS, RankingChunk
from scenarios.diagnostics import head_items
from scenarios.pairs import PairSet


@dataclass
class Evaluation:
    users: np.ndarray  # evaluated users (those with at least one target), ascending
    per_user: dict[str, np.ndarray]  # metric -> value per evaluated user
    aggregate: dict[str, float]  # metric -> mean over users (or list-level value)


class Evaluator:
    """Scores one target set against fixed masks; built once per split, reused every evaluation."""

    def __init__(
        self,
        target: sp.csr_matrix,
        masked: list[sp.csr_matrix],
        train_popularity: np.ndarray,
        metrics: list[str] | None = None,
        chunk_size: int = 2048,
    ) -> None:
        self.metrics = [METRICS[m] for m in (metrics or list(METRICS))]
        self.k_max = max(m.k for m in self.metrics)
        self.chunk_size = chunk_size
        target = target.tocsr()
        self.users = np.flatnonzero(np.diff(target.indptr) > 0)
        self.n_targets = torch.from_numpy(np.diff(target.indptr)[self.users].astype(np.float32))
        self.targets = PairSet(target)
        mask = sum(masked[1:], masked[0]).tocsr() if masked else sp.csr_matrix(target.shape)
        mask.sort_indices()
        self.mask = mask
        self.popularity = torch.from_numpy(train_popularity.astype(np.float32))
        self.long_tail = torch.from_numpy(~head_items(train_popularity))

    def _ranked_chunks(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> Iterator[tuple[int, np.ndarray, torch.Tensor]]:
        """(offset, users, top-k items) per chunk, with masked items scored -inf."""
        item_t = item_emb.detach().T.contiguous()
        user_emb = user_emb.detach()
        for start in range(0, len(self.users), self.chunk_size):
            users = self.users[start : start + self.chunk_size]
            scores = user_emb[torch.from_numpy(users)] @ item_t
            rows = self.mask[users]
            row_ids = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
            scores[torch.from_numpy(row_ids), torch.from_numpy(rows.indices.astype(np.int64))] = -torch.inf
            yield start, users, torch.topk(scores, self.k_max, dim=1).indices

    def top_k(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> np.ndarray:
        """``[n evaluated users, k_max]`` recommended items, best first."""
        with torch.no_grad():
            return torch.cat([topk for _, _, topk in self._ranked_chunks(user_emb, item_emb)]).numpy()

    def __call__(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> Evaluation:
        values: dict[str, list[torch.Tensor]] = {m.name: [] for m in self.metrics if m.per_user}
        recommended = {m.k: torch.zeros(item_emb.shape[0], dtype=torch.bool) for m in self.metrics if not m.per_user}
        with torch.no_grad():
            for start, users, topk in self._ranked_chunks(user_emb, item_emb):
                user_t = torch.from_numpy(users.astype(np.int64)).unsqueeze(1)
                chunk = RankingChunk(
                    topk=topk,
                    hits=self.targets.contains(user_t, topk).float(),
                    n_targets=self.n_targets[start : start + len(users)],
                    popularity=self.popularity,
                    long_tail=self.long_tail,
                )
                for m in self.metrics:
                    if m.per_user:
                        values[m.name].append(m.per_user(chunk, m.k))
                    else:
                        recommended[m.k][topk[:, : m.k].reshape(-1)] = True
        per_user = {name: torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0) for name, parts in values.items()}
        aggregate = {name: float(v.mean()) if len(v) else float("nan") for name, v in per_user.items()}
        for m in self.metrics:
            if not m.per_user:
                aggregate[m.name] = float(recommended[m.k].float().mean())
        return Evaluation(self.users, per_user, aggregate)
