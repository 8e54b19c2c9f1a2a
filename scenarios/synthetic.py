"""The embedded simulator: known preferences, a popularity confounder, and all four shifts.

True user and item factors fix which items each user truly likes (``truth``). Each item has a
popularity propensity; exposure follows propensity ** ``confounding`` (0 = uniform exposure), and
an interaction is observed when an item is exposed *and* relevant. Every shift changes only how
the OOD test is exposed or when it is drawn, so any sampled negative can be checked against the
truth: a negative the user truly likes is a false hard negative by definition.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenarios.protocols import inverse_popularity_resample, iid_partition, item_uniform_holdout, warm_matrix
from scenarios.split import Split, interaction_matrix


@dataclass(frozen=True)
class SimulatorConfig:
    n_users: int = 600
    n_items: int = 400
    dim: int = 16
    relevant_share: float = 0.15  # share of items each user truly likes
    exposures_per_user: int = 150
    propensity_sigma: float = 1.5  # spread of the log popularity propensity
    drift: float = 0.5  # temporal: how far preferences and trends move between periods


def _world(cfg: SimulatorConfig, rng: np.random.Generator):
    users = rng.standard_normal((cfg.n_users, cfg.dim))
    items = rng.standard_normal((cfg.n_items, cfg.dim))
    log_propensity = cfg.propensity_sigma * rng.standard_normal(cfg.n_items)
    return users, items, log_propensity


def _truth(users: np.ndarray, items: np.ndarray, relevant_share: float) -> np.ndarray:
    """Each user truly likes the top ``relevant_share`` of items by affinity."""
    affinity = users @ items.T
    threshold = np.quantile(affinity, 1.0 - relevant_share, axis=1, keepdims=True)
    return affinity > threshold


def _observe(
    truth: np.ndarray, log_propensity: np.ndarray, confounding: float, cfg: SimulatorConfig, rng: np.random.Generator
) -> np.ndarray:
    """Observed (user, item) mask: exposed with probability ~ propensity ** confounding, and relevant."""
    weight = np.exp(confounding * (log_propensity - log_propensity.max()))
    p_exposed = np.minimum(1.0, cfg.exposures_per_user * weight / weight.sum())
    exposed = rng.random(truth.shape) < p_exposed[None, :]
    return exposed & truth


def simulate(shift: str, rng: np.random.Generator, confounding: float = 0.8, config: SimulatorConfig | None = None) -> Split:
    """A ``Split`` with the given shift (``popularity``, ``temporal``, ``exposure``, ``mixed``)."""
    cfg = config or SimulatorConfig()
    user_f, item_f, log_prop = _world(cfg, rng)
    truth = _truth(user_f, item_f, cfg.relevant_share)
    observed = _observe(truth, log_prop, confounding, cfg, rng)
    users, items = np.nonzero(observed)
    n_u, n_i = cfg.n_users, cfg.n_items

    if shift == "popularity":
        ood_mask = item_uniform_holdout(items, 0.2, rng)
        ood_users, ood_items = users[ood_mask], items[ood_mask]
        users, items = users[~ood_mask], items[~ood_mask]
    elif shift == "exposure":
        uniform_seen = _observe(truth, log_prop, 0.0, cfg, rng)
        ood_users, ood_items = np.nonzero(uniform_seen & ~observed)
    elif shift in ("temporal", "mixed"):
        later_users = np.sqrt(1 - cfg.drift**2) * user_f + cfg.drift * rng.standard_normal(user_f.shape)
        later_prop = np.sqrt(1 - cfg.drift**2) * log_prop + cfg.drift * cfg.propensity_sigma * rng.standard_normal(n_i)
        later = _observe(_truth(later_users, item_f, cfg.relevant_share), later_prop, confounding, cfg, rng)
        ood_users, ood_items = np.nonzero(later & ~observed)
    else:
        raise ValueError(f"unknown shift {shift!r}")

    train_idx, valid_idx, iid_idx = iid_partition(len(users), [0.7, 0.1, 0.2], rng)
    train = interaction_matrix(users[train_idx], items[train_idx], n_u, n_i)
    if shift == "mixed":  # among warm pairs only, as on real data: cold pairs would take the sample's room
        popularity = np.asarray(train.sum(axis=0)).ravel()
        warm = (popularity[ood_items] > 0) & (np.diff(train.indptr)[ood_users] > 0)
        ood_users, ood_items = ood_users[warm], ood_items[warm]
        keep = inverse_popularity_resample(ood_items, popularity, 0.5, rng)
        ood_users, ood_items = ood_users[keep], ood_items[keep]
    valid, valid_drop = warm_matrix(users[valid_idx], items[valid_idx], train)
    test_iid, iid_drop = warm_matrix(users[iid_idx], items[iid_idx], train)
    test_ood, ood_drop = warm_matrix(ood_users, ood_items, train)
    return Split(
        scenario=shift,
        dataset="synthetic",
        train=train,
        valid=valid,
        tests={"ood": test_ood, "iid": test_iid},
        meta={
            "source": "synthetic simulator",
            "simulator": {**cfg.__dict__, "confounding": confounding},
            "dropped": {"valid": valid_drop, "iid": iid_drop, "ood": ood_drop},
        },
        truth=truth,
    )
