"""Shift diagnostics: how far a test set's item popularity is from train's (SPEC §1)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import spearmanr


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of a non-negative count vector (0 = uniform, 1 = one item takes all)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def head_items(train_popularity: np.ndarray, share: float = 0.2) -> np.ndarray:
    """Boolean mask of the top ``share`` items by train popularity (ties broken by item id)."""
    n_head = int(round(share * len(train_popularity)))
    order = np.argsort(-train_popularity, kind="stable")
    mask = np.zeros(len(train_popularity), dtype=bool)
    mask[order[:n_head]] = True
    return mask


def shift_diagnostics(train: sp.csr_matrix, test: sp.csr_matrix) -> dict[str, float]:
    """Top-20 % share, popularity Gini and Spearman correlation of train vs. one test set."""
    train_pop = np.asarray(train.sum(axis=0)).ravel()
    test_pop = np.asarray(test.sum(axis=0)).ravel()
    head = head_items(train_pop)
    return {
        "top20_share_train": float(train_pop[head].sum() / max(train_pop.sum(), 1)),
        "top20_share_test": float(test_pop[head].sum() / max(test_pop.sum(), 1)),
        "gini_train": gini(train_pop),
        "gini_test": gini(test_pop),
        "spearman": float(spearmanr(train_pop, test_pop).statistic) if test.nnz else float("nan"),
        "mean_train_popularity_of_test_items": float((train_pop[test.indices]).mean()) if test.nnz else float("nan"),
    }
