"""Reference rankings that say how hard a test set is: random order and most-popular first.

A model that does not beat the most-popular ranking on an OOD test has learned popularity, not
preference; these figures sit next to every split description for that comparison.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.evaluate import Evaluator
from scenarios.split import Split

REFERENCE_METRICS = ("recall@20", "ndcg@20")


def random_recall(split: Split, test: str, k: int = 20) -> float:
    """Expected Recall@k of a uniformly random order of the unmasked items, averaged over users."""
    target = split.tests[test] if test != "valid" else split.valid
    masked = split.train + (split.valid if test != "valid" else 0 * split.train)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    available = split.n_items - np.diff(masked.tocsr().indptr)[users]
    return float(np.mean(np.minimum(k, available) / available))


def most_popular(split: Split, test: str) -> dict[str, float]:
    """Metrics of ranking every user's unseen items by train popularity."""
    target, masked = (split.valid, [split.train]) if test == "valid" else (split.tests[test], [split.train, split.valid])
    evaluator = Evaluator(target, masked, split.item_popularity, metrics=list(REFERENCE_METRICS))
    popularity = torch.from_numpy(split.item_popularity.astype(np.float32)).unsqueeze(1)
    return evaluator(torch.ones(split.n_users, 1), popularity).aggregate


def reference_metrics(split: Split) -> dict[str, dict[str, dict[str, float]]]:
    """{test set: {"random": {"recall@20": ...}, "most_popular": {...}}} for every test set."""
    return {
        test: {"random": {"recall@20": random_recall(split, test)}, "most_popular": most_popular(split, test)}
        for test in split.tests
    }
