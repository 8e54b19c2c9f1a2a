"""Drawing items that are not train positives of their user, without a Python loop over the batch."""
from __future__ import annotations

from typing import Callable

import torch

from scenarios.pairs import PairSet


def reject_positives(
    train: PairSet,
    users: torch.Tensor,
    draw: Callable[[tuple[int, ...]], torch.Tensor],
    shape: tuple[int, int],
    max_rounds: int = 100,
) -> torch.Tensor:
    """``shape = [B, M]`` items from ``draw``, redrawn where they are train positives of their user."""
    if bool((train.degree[users] >= train.n_items).any()):
        raise ValueError("a user has interacted with every item: no negative exists")
    column = users.reshape(-1, 1)
    items = draw(shape)
    for _ in range(max_rounds):
        bad = train.contains(column, items)
        n_bad = int(bad.sum())
        if n_bad == 0:
            return items
        items[bad] = draw((n_bad,))
    raise RuntimeError(f"rejection sampling did not converge in {max_rounds} rounds")


def uniform_candidates(train: PairSet, users: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``[B, n]`` items drawn uniformly among each user's non-interacted items."""
    return reject_positives(
        train, users, lambda shape: torch.randint(train.n_items, shape, generator=generator), (len(users), n)
    )
