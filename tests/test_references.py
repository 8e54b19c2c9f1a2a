"""Reference rankings on a hand-made split with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from bench.references import most_popular, random_recall, reference_metrics
from scenarios.split import Split, interaction_matrix


@pytest.fixture
def split() -> Split:
    # 3 users x 25 items; item popularity in train: item 0 by all three users, item 1 by two
    train = interaction_matrix(np.array([0, 1, 2, 0, 1]), np.array([0, 0, 0, 1, 1]), 3, 25)
    valid = interaction_matrix(np.array([2]), np.array([1]), 3, 25)
    ood = interaction_matrix(np.array([0, 1]), np.array([24, 2]), 3, 25)
    return Split("popularity", "hand-made", train, valid, {"ood": ood})


def test_random_recall_is_k_over_available_items(split):
    # user 0 has 2 train items masked (23 left), user 1 also 2 (23 left): 20 / 23 each
    assert random_recall(split, "ood") == pytest.approx(20 / 23)


def test_reference_metrics_cover_every_test_set(split):
    refs = reference_metrics(split)
    assert set(refs) == {"ood"}
    assert set(refs["ood"]["most_popular"]) == {"recall@20", "ndcg@20"}
    assert refs["ood"]["random"]["recall@20"] == pytest.approx(20 / 23)


def test_most_popular_ranks_by_train_popularity():
    train = interaction_matrix(np.array([0, 1, 2, 3, 0, 1, 2]), np.array([0, 0, 0, 0, 1, 1, 1]), 5, 30)
    valid = interaction_matrix(np.array([4]), np.array([5]), 5, 30)
    ood = interaction_matrix(np.array([3, 4]), np.array([1, 0]), 5, 30)  # the two most popular items
    split = Split("popularity", "hand-made", train, valid, {"ood": ood})
    assert most_popular(split, "ood")["recall@20"] == pytest.approx(1.0)
    assert most_popular(split, "ood")["ndcg@20"] == pytest.approx(1.0)
