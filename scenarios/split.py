"""The ``Split``: what every scenario produces and everything downstream consumes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp


def interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary CSR matrix of (user, item) pairs; duplicates collapse to one."""
    data = np.ones(len(users), dtype=np.float32)
    m = sp.csr_matrix((data, (np.asarray(users, np.int64), np.asarray(items, np.int64))), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


@dataclass
class Split:
    """Train / IID valid / test sets of one scenario on one dataset.

    ``tests`` holds at least ``"ood"``, and ``"iid"`` where the data has one. ``truth`` is the
    true relevance matrix on synthetic data (None on real data), so false negatives are exact.
    """

    scenario: str
    dataset: str
    train: sp.csr_matrix
    valid: sp.csr_matrix
    tests: dict[str, sp.csr_matrix]
    meta: dict[str, Any] = field(default_factory=dict)
    truth: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def item_popularity(self) -> np.ndarray:
        """Train interaction count of every item."""
        return np.asarray(self.train.sum(axis=0)).ravel().astype(np.int64)

    def held_out(self) -> sp.csr_matrix:
        """Every positive outside train (valid and all tests): the real-data false-negative oracle."""
        total = self.valid.copy()
        for test in self.tests.values():
            total = total + test
        total.data[:] = 1.0
        return total.tocsr()

    def checksum(self) -> str:
        """sha256 over the exact content of every set, in a fixed order."""
        digest = hashlib.sha256()
        for name, m in [("train", self.train), ("valid", self.valid), *sorted(self.tests.items())]:
            m = m.tocsr()
            m.sort_indices()
            digest.update(name.encode())
            digest.update(np.asarray(m.shape, np.int64).tobytes())
            digest.update(m.indptr.astype(np.int64).tobytes())
            digest.update(m.indices.astype(np.int64).tobytes())
        if self.truth is not None:
            digest.update(np.packbits(self.truth.astype(bool)).tobytes())
        return digest.hexdigest()

    def sizes(self) -> dict[str, dict[str, int]]:
        out = {}
        for name, m in [("train", self.train), ("valid", self.valid), *sorted(self.tests.items())]:
            out[name] = {
                "interactions": int(m.nnz),
                "users": int(np.count_nonzero(np.diff(m.indptr))),
                "items": int(np.count_nonzero(np.bincount(m.indices, minlength=self.n_items))),
            }
        return out
