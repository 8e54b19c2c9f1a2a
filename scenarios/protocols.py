"""Seeded split protocols of SPEC §1, shared by real datasets and the simulator.

Every function works on parallel ``users`` / ``items`` arrays (one entry per interaction) and
returns index arrays or masks, so the scenarios stay short and the protocols are tested once.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scenarios.split import interaction_matrix


def iid_partition(n: int, fractions: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Split ``range(n)`` at random into parts of the given fractions (the last takes the rest)."""
    order = rng.permutation(n)
    bounds = np.round(np.cumsum(fractions[:-1]) * n).astype(int)
    return [np.sort(part) for part in np.split(order, bounds)]


def item_uniform_holdout(items: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Mask of a test set that is (near) uniform over items.

    Equivalent to repeatedly picking an item uniformly among those with interactions left, then
    one of its interactions, until ``share`` of all interactions are picked; the picks are drawn
    in multinomial rounds so no Python loop runs per interaction.
    """
    n_items = int(items.max()) + 1 if len(items) else 0
    capacity = np.bincount(items, minlength=n_items).astype(np.int64)
    taken = np.zeros(n_items, dtype=np.int64)
    remaining = int(round(share * len(items)))
    while remaining > 0:
        active = np.flatnonzero(taken < capacity)
        draws = rng.multinomial(remaining, np.full(len(active), 1.0 / len(active)))
        room = capacity[active] - taken[active]
        accepted = np.minimum(draws, room)
        taken[active] += accepted
        remaining -= int(accepted.sum())
    # within each item, take ``taken[i]`` of its interactions in a random order
    order = np.lexsort((rng.random(len(items)), items))
    sorted_items = items[order]
    starts = np.searchsorted(sorted_items, np.arange(n_items))
    rank = np.arange(len(items)) - starts[sorted_items]
    mask = np.zeros(len(items), dtype=bool)
    mask[order[rank < taken[sorted_items]]] = True
    return mask


def temporal_cut(timestamps: np.ndarray, train_share: float = 0.7, gap_share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Masks (train, test) of a global time cut: earliest ``train_share``, latest after the gap."""
    order = np.argsort(timestamps, kind="stable")
    n = len(timestamps)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    train = rank < int(round(train_share * n))
    test = rank >= int(round((train_share + gap_share) * n))
    return train, test


def inverse_popularity_resample(
    items: np.ndarray, train_popularity: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """Indices of a sample without replacement with probability proportional to 1 / popularity."""
    weights = 1.0 / np.maximum(train_popularity[items], 1).astype(np.float64)
    size = max(1, int(round(share * len(items))))
    return np.sort(rng.choice(len(items), size=size, replace=False, p=weights / weights.sum()))


def warm_matrix(
    users: np.ndarray, items: np.ndarray, train: sp.csr_matrix
) -> tuple[sp.csr_matrix, dict[str, int]]:
    """Test matrix restricted to users and items seen in train, minus train pairs, with drop counts."""
    n_users, n_items = train.shape
    user_seen = np.diff(train.indptr) > 0
    item_seen = np.bincount(train.indices, minlength=n_items) > 0
    in_range = (users < n_users) & (items < n_items)
    warm = in_range.copy()
    warm[in_range] = user_seen[users[in_range]] & item_seen[items[in_range]]
    test = interaction_matrix(users[warm], items[warm], n_users, n_items)
    overlap = test.multiply(train)
    n_overlap = int(overlap.nnz)
    if n_overlap:
        test = (test - overlap).tocsr()
        test.eliminate_zeros()
    return test, {"cold_dropped": int((~warm).sum()), "train_overlap_dropped": n_overlap}
