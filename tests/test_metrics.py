"""Metrics against values computed by hand on small rankings."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from bench.evaluate import Evaluator
from bench.metrics import METRICS, higher_is_better


def _evaluate_fixed_ranking(ranking: list[int], targets: list[int], n_items: int = 30):
    """One user whose scores produce ``ranking`` (best first); nothing masked."""
    scores = torch.zeros(n_items)
    for position, item in enumerate(ranking):
        scores[item] = float(n_items - position)
    user = scores.unsqueeze(0)
    items = torch.eye(n_items)
    target = sp.csr_matrix((np.ones(len(targets)), ([0] * len(targets), targets)), shape=(1, n_items))
    popularity = np.arange(n_items, dtype=np.int64)  # item i has popularity i
    empty = sp.csr_matrix((1, n_items))
    return Evaluator(target, [empty], popularity)(user, items)


def test_hand_computed_values_at_10():
    ranking = list(range(20))  # items 0..19 in order
    result = _evaluate_fixed_ranking(ranking, targets=[1, 4, 25])  # hits at ranks 2 and 5; 25 unranked
    agg = result.aggregate
    assert agg["recall@10"] == pytest.approx(2 / 3)
    assert agg["precision@10"] == pytest.approx(2 / 10)
    assert agg["hit@10"] == 1.0
    assert agg["mrr@10"] == pytest.approx(1 / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert agg["ndcg@10"] == pytest.approx(dcg / idcg)
    assert agg["avg_pop@10"] == pytest.approx(np.mean(range(10)))
    assert agg["coverage@10"] == pytest.approx(10 / 30)


def test_ideal_dcg_uses_at_most_k_targets():
    ranking = list(range(20))
    targets = list(range(12))  # 12 targets, all in the top 12
    agg = _evaluate_fixed_ranking(ranking, targets).aggregate
    assert agg["ndcg@10"] == pytest.approx(1.0)
    assert agg["recall@10"] == pytest.approx(10 / 12)
    assert agg["precision@10"] == pytest.approx(1.0)


def test_no_hit_gives_zero_and_long_tail_share():
    ranking = list(range(29, 9, -1))  # items 29..10: the most popular first
    agg = _evaluate_fixed_ranking(ranking, targets=[0]).aggregate
    for name in ("recall@20", "ndcg@20", "hit@20", "mrr@20", "precision@20"):
        assert agg[name] == 0.0
    # top-20 % of 30 items by popularity = items 24..29; the top 20 holds 6 of them
    assert agg["longtail@20"] == pytest.approx(14 / 20)


def test_each_metric_declares_its_direction():
    assert higher_is_better("recall@20") and higher_is_better("ndcg@10")
    assert not higher_is_better("avg_pop@20")
    assert all(isinstance(m.higher_is_better, bool) for m in METRICS.values())
