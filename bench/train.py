"""One training loop for every sampler: BPR over the sampler's negatives plus its extra loss.

Model selection uses ``valid`` only (the ``select_on`` option exists for parity runs with code
that selects on a test set, and is recorded in the result). Every test set is reported at the
selected epoch. Time is split into sampling, training step and evaluation.
"""
from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from backbones.registry import BackboneModel
from bench.evaluate import Evaluation, Evaluator
from samplers.registry import Negatives, Sampler
from scenarios.pairs import PairSet
from scenarios.split import Split


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 1e-3
    l2: float = 1e-4
    eval_every: int = 5
    patience: int = 3  # evaluations without improvement before stopping
    selection_metric: str = "recall@20"
    select_on: str = "valid"  # "valid", or a test set name for labelled parity runs
    eval_chunk: int = 2048
    diagnostic_pairs: int = 2048
    curves: tuple[str, ...] = ()  # sets evaluated at every evaluation, all metrics kept in the history

    def __post_init__(self) -> None:
        self.curves = tuple(self.curves)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    best_epoch: int
    selected_on: str
    evaluations: dict[str, Evaluation]  # "valid" and every test set, at the selected epoch
    history: list[dict[str, float]]
    timings: dict[str, float]
    diagnostics: dict[str, Any] = field(default_factory=dict)


def bpr_loss(user: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean over pairs and negatives of -log sigmoid(s(u, i+) - s(u, j)); ``negatives`` is [B, K, d]."""
    pos = (user * positive).sum(-1, keepdim=True)
    neg = torch.einsum("bd,bkd->bk", user, negatives)
    return F.softplus(neg - pos).mean()


def _negative_embeddings(negatives: Negatives, items_pooled: torch.Tensor) -> torch.Tensor:
    if negatives.items is not None:
        return items_pooled[negatives.items]
    return negatives.embeddings


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class DiagnosticProbe:
    """Each epoch, what the sampler picks for a fixed subset of training pairs (SPEC §4).

    A picked item is a false hard negative when the user truly likes it (synthetic data: exact)
    or when it is one of the user's held-out positives (real data). A synthesised negative counts
    as the real item nearest to it by inner product among the items that could be negatives of
    that user, i.e. not the user's train positives (otherwise a negative mixed from the positive
    would be matched to the positive itself).
    """

    def __init__(self, split: Split, n_pairs: int, rng: np.random.Generator) -> None:
        coo = split.train.tocoo()
        pick = np.sort(rng.choice(coo.nnz, size=min(n_pairs, coo.nnz), replace=False))
        users = coo.row[pick].astype(np.int64)
        self.users = torch.from_numpy(users)
        self.positives = torch.from_numpy(coo.col[pick].astype(np.int64))
        self.exact = split.truth is not None
        relevant = sp.csr_matrix(split.truth) if self.exact else split.held_out()
        self.relevant = PairSet(relevant)
        rows = split.train[users]
        self.train_rows = torch.from_numpy(np.repeat(np.arange(len(users)), np.diff(rows.indptr)))
        self.train_cols = torch.from_numpy(rows.indices.astype(np.int64))
        pop = split.item_popularity
        rank = np.argsort(np.argsort(pop, kind="stable"), kind="stable")
        self.percentile = torch.from_numpy((rank / max(len(pop) - 1, 1)).astype(np.float32))

    def measure(self, sampler: Sampler, model: BackboneModel) -> dict[str, float]:
        with torch.no_grad():
            users_l, items_l = model.propagate()
            negatives = sampler.sample(self.users, self.positives, users_l, items_l)
            if negatives.items is not None:
                chosen = negatives.items
            else:
                scores = negatives.embeddings @ model.pool(items_l).T  # [P, K, n_items]
                scores[self.train_rows, :, self.train_cols] = -torch.inf
                chosen = scores.argmax(-1)
        return {
            "false_hard_negative_rate": float(self.relevant.contains(self.users.unsqueeze(1), chosen).float().mean()),
            "negative_popularity_percentile": float(self.percentile[chosen].mean()),
        }


def train_pairs(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """(users, items) of every train interaction."""
    coo = split.train.tocoo()
    return torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))


def train_epoch(
    model: BackboneModel,
    sampler: Sampler,
    pairs: tuple[torch.Tensor, torch.Tensor],
    optimizers: list[torch.optim.Optimizer],
    config: TrainConfig,
    generator: torch.Generator,
    epoch: int = 0,
) -> tuple[float, float, float]:
    """One pass over the shuffled train pairs: (mean loss, sampling seconds, step seconds)."""
    model.train()
    pair_users, pair_items = pairs
    n_pairs = len(pair_users)
    order = torch.randperm(n_pairs, generator=generator)
    epoch_loss, sampling_s, step_s = 0.0, 0.0, 0.0
    for start in range(0, n_pairs, config.batch_size):
        t0 = time.perf_counter()
        idx = order[start : start + config.batch_size]
        users, positives = pair_users[idx], pair_items[idx]
        user_layers, item_layers = model.propagate()
        t1 = time.perf_counter()
        negatives = sampler.sample(users, positives, user_layers, item_layers)
        t2 = time.perf_counter()
        users_pooled, items_pooled = model.pool(user_layers), model.pool(item_layers)
        loss = bpr_loss(users_pooled[users], items_pooled[positives], _negative_embeddings(negatives, items_pooled))
        reg_rows = [model.user_embedding[users], model.item_embedding[positives]]
        negative_rows = negatives.items if negatives.items is not None else negatives.sources
        if negative_rows is not None:
            reg_rows.append(model.item_embedding[negative_rows])
        loss = loss + config.l2 * sum(r.pow(2).sum() for r in reg_rows) / len(users)
        extra = sampler.extra_loss()
        if extra is not None:
            loss = loss + extra
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss is {loss.item()} at epoch {epoch}")
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        epoch_loss += loss.item() * len(users)
        sampling_s += t2 - t1
        step_s += (t1 - t0) + (time.perf_counter() - t2)
    return epoch_loss / n_pairs, sampling_s, step_s


def train(
    split: Split,
    model: BackboneModel,
    sampler: Sampler,
    config: TrainConfig,
    rng: np.random.Generator,
    generator: torch.Generator,
    probe_rng: np.random.Generator,
) -> TrainResult:
    """Train ``model`` with ``sampler`` on ``split``.

    ``generator`` fixes the batch order and ``probe_rng`` the diagnostic pairs, both shared by
    every sampler of a seed (paired comparisons); the sampler draws from ``rng``.
    """
    sampler_generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    sampler.setup(split, model, rng, sampler_generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    own = sampler.parameters()
    sampler_optimizer = torch.optim.Adam(own, lr=sampler.learning_rate) if own else None  # its own optimizer
    popularity = split.item_popularity
    evaluators = {"valid": Evaluator(split.valid, [split.train], popularity, chunk_size=config.eval_chunk)}
    for name, test in split.tests.items():
        evaluators[name] = Evaluator(test, [split.train, split.valid], popularity, chunk_size=config.eval_chunk)
    for option, names in (("select_on", [config.select_on]), ("curves", config.curves)):
        for name in names:
            if name not in evaluators:
                raise ValueError(f"{option}: no set {name!r} in this split; sets: {', '.join(evaluators)}")
    probe = DiagnosticProbe(split, config.diagnostic_pairs, probe_rng)

    pairs = train_pairs(split)
    optimizers = [optimizer] + ([sampler_optimizer] if sampler_optimizer is not None else [])

    history: list[dict[str, float]] = []
    diagnostics: dict[str, list[float]] = {"false_hard_negative_rate": [], "negative_popularity_percentile": []}
    totals = {"sampling_s": 0.0, "step_s": 0.0, "eval_s": 0.0, "diagnostics_s": 0.0}
    best_score, best_epoch, best_embeddings, stale = -math.inf, -1, None, 0
    epochs_run = 0
    for epoch in range(config.epochs):
        sampler.on_epoch_start(epoch, config.epochs)
        t0 = time.perf_counter()
        for key, value in probe.measure(sampler, model).items():
            diagnostics[key].append(value)
        totals["diagnostics_s"] += time.perf_counter() - t0

        epoch_loss, sampling_s, step_s = train_epoch(model, sampler, pairs, optimizers, config, generator, epoch)
        totals["sampling_s"] += sampling_s
        totals["step_s"] += step_s
        epochs_run = epoch + 1
        entry = {"epoch": epoch, "loss": epoch_loss, "sampling_s": sampling_s, "step_s": step_s}

        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            t0 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                user_emb, item_emb = model.pooled()
            score = evaluators[config.select_on](user_emb, item_emb).aggregate[config.selection_metric]
            entry[f"{config.select_on}/{config.selection_metric}"] = score
            for name in config.curves:
                entry.update({f"{name}/{m}": v for m, v in evaluators[name](user_emb, item_emb).aggregate.items()})
            totals["eval_s"] += time.perf_counter() - t0
            if score > best_score:
                best_score, best_epoch, stale = score, epoch, 0
                best_embeddings = (user_emb.clone(), item_emb.clone())
            else:
                stale += 1
        history.append(entry)
        if stale >= config.patience:
            break

    t0 = time.perf_counter()
    evaluations = {name: ev(*best_embeddings) for name, ev in evaluators.items()}
    final_eval_s = time.perf_counter() - t0  # once per run: not part of the cost of an epoch
    timings = {
        "epochs_run": epochs_run,
        "sampling_s_per_epoch": totals["sampling_s"] / epochs_run,
        "step_s_per_epoch": totals["step_s"] / epochs_run,
        "eval_s_per_epoch": totals["eval_s"] / epochs_run,
        "epoch_s": (totals["sampling_s"] + totals["step_s"] + totals["eval_s"]) / epochs_run,
        "final_eval_s": final_eval_s,
        "diagnostics_s": totals["diagnostics_s"],
        "peak_rss_mb": _peak_rss_mb(),
    }
    diag: dict[str, Any] = dict(diagnostics)
    diag["false_hard_negative_exact"] = probe.exact
    for key, values in diagnostics.items():
        diag[f"{key}_mean"] = float(np.mean(values))
    return TrainResult(best_epoch, config.select_on, evaluations, history, timings, diag)


def train_config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
