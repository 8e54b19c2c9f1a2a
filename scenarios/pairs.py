"""A set of (user, item) pairs with vectorised membership look-ups."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class PairSet:
    """Sorted ``u * n_items + i`` keys of a CSR matrix's nonzeros, queried with ``searchsorted``."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        coo = matrix.tocoo()
        self.n_items = matrix.shape[1]
        keys = np.unique(coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64))
        self.keys = torch.from_numpy(keys)
        self.degree = torch.from_numpy(np.diff(matrix.tocsr().indptr).astype(np.int64))

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Boolean tensor of the broadcast shape of ``users`` and ``items``."""
        query = (users * self.n_items + items).reshape(-1)
        if len(self.keys) == 0:
            return torch.zeros(torch.broadcast_shapes(users.shape, items.shape), dtype=torch.bool)
        pos = torch.searchsorted(self.keys, query).clamp_(max=len(self.keys) - 1)
        return (self.keys[pos] == query).reshape(torch.broadcast_shapes(users.shape, items.shape))
