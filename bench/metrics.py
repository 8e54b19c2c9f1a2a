"""The metric registry: each metric says whether higher is better and how it is computed per user.

A metric sees one chunk of users at a time (``RankingChunk``) and returns one value per user, so
every statistic downstream can pair samplers user by user. List-level metrics (item coverage)
are aggregated over all users instead and have no per-user vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class RankingChunk:
    """Top-k lists of a chunk of users and what the metrics need to score them."""

    topk: torch.Tensor  # [n, K_max] item ids, best first
    hits: torch.Tensor  # [n, K_max] float, 1 where the item is a target
    n_targets: torch.Tensor  # [n] float, number of target items per user
    popularity: torch.Tensor  # [n_items] float, train popularity
    long_tail: torch.Tensor  # [n_items] bool, outside the top-20 % train items


@dataclass(frozen=True)
class Metric:
    name: str
    k: int
    higher_is_better: bool
    per_user: Callable[[RankingChunk, int], torch.Tensor] | None
    description: str


def _recall(c: RankingChunk, k: int) -> torch.Tensor:
    return c.hits[:, :k].sum(1) / c.n_targets


def _precision(c: RankingChunk, k: int) -> torch.Tensor:
    return c.hits[:, :k].sum(1) / k


def _hit(c: RankingChunk, k: int) -> torch.Tensor:
    return (c.hits[:, :k].sum(1) > 0).to(c.hits.dtype)


def _ndcg(c: RankingChunk, k: int) -> torch.Tensor:
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=c.hits.dtype))
    dcg = (c.hits[:, :k] * discount).sum(1)
    ideal_cum = torch.cumsum(discount, 0)
    n_ideal = torch.clamp(c.n_targets, max=k).long()
    return dcg / ideal_cum[n_ideal - 1]


def _mrr(c: RankingChunk, k: int) -> torch.Tensor:
    ranks = torch.arange(1, k + 1, dtype=c.hits.dtype)
    reciprocal = c.hits[:, :k] / ranks
    return reciprocal.max(1).values


def _avg_popularity(c: RankingChunk, k: int) -> torch.Tensor:
    return c.popularity[c.topk[:, :k]].mean(1)


def _long_tail_share(c: RankingChunk, k: int) -> torch.Tensor:
    return c.long_tail[c.topk[:, :k]].to(c.hits.dtype).mean(1)


def _build() -> dict[str, Metric]:
    per_user = {
        "recall": (_recall, True, "share of the user's test items in the top k"),
        "ndcg": (_ndcg, True, "discounted cumulative gain (binary gains) over the ideal"),
        "precision": (_precision, True, "share of the top k that are test items"),
        "hit": (_hit, True, "1 if any test item is in the top k"),
        "mrr": (_mrr, True, "reciprocal rank of the first test item in the top k (0 if none)"),
        "avg_pop": (_avg_popularity, False, "mean train popularity of the top k (lower: less popularity bias)"),
        "longtail": (_long_tail_share, True, "share of the top k outside the top-20 % train items"),
    }
    metrics = {}
    for k in (10, 20):
        for base, (fn, higher, text) in per_user.items():
            metrics[f"{base}@{k}"] = Metric(f"{base}@{k}", k, higher, fn, text)
        metrics[f"coverage@{k}"] = Metric(
            f"coverage@{k}", k, True, None, "share of all items recommended to at least one user"
        )
    return metrics


METRICS: dict[str, Metric] = _build()
ACCURACY_METRICS = tuple(f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit", "mrr") for k in (10, 20))


def higher_is_better(name: str) -> bool:
    return METRICS[name].higher_is_better
