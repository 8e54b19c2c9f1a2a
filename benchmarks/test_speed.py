"""Seconds per training epoch, evaluation against a bare matmul + topk, and sampler throughput.

Run: ``NEGBENCH_DATA=../shared/data python -m pytest benchmarks --benchmark-columns=mean,stddev,rounds``.
Each group holds its reference (mf's epoch; bare matmul + topk; the uniform sampler) measured in
the same run, and the run ends with every benchmark's ratio to it, so the ratios compare like
with like.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backbones import BACKBONES
from bench.evaluate import Evaluator
from bench.train import TrainConfig, train_epoch, train_pairs
from samplers import SAMPLERS

CONFIG = TrainConfig(batch_size=2048)


def _model(split, backbone: str):
    return BACKBONES.create(backbone).build(split.train, torch.Generator().manual_seed(0))


def _setup_sampler(name: str, split, model):
    sampler = SAMPLERS.create(name)
    sampler.setup(split, model, np.random.default_rng(0), torch.Generator().manual_seed(0))
    sampler.on_epoch_start(5, 10)
    return sampler


@pytest.mark.parametrize("dataset", ["yelp2018", "food"])
@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
def test_epoch_seconds(benchmark, preset_splits, dataset, backbone):
    split = preset_splits[dataset]
    model = _model(split, backbone)
    sampler = _setup_sampler("uniform", split, model)
    optimizers = [torch.optim.Adam(model.parameters(), lr=CONFIG.lr)]
    pairs = train_pairs(split)
    generator = torch.Generator().manual_seed(0)
    benchmark.group = f"epoch-{dataset}"
    benchmark.extra_info["reference"] = backbone == "mf"
    benchmark.pedantic(train_epoch, args=(model, sampler, pairs, optimizers, CONFIG, generator), rounds=3, iterations=1)


@pytest.mark.parametrize("method", ["bare_matmul_topk", "evaluator"])
def test_full_ranking(benchmark, preset_splits, method):
    split = preset_splits["yelp2018"]
    users, items = _model(split, "lightgcn").pooled()
    users, items = users.detach(), items.detach()
    evaluator = Evaluator(split.tests["iid"], [split.train, split.valid], split.item_popularity)
    eval_users = torch.from_numpy(evaluator.users)
    chunk = evaluator.chunk_size

    def bare() -> None:
        for start in range(0, len(eval_users), chunk):
            torch.topk(users[eval_users[start : start + chunk]] @ items.T, 20, dim=1)

    benchmark.group = "full-ranking-yelp2018-iid"
    benchmark.extra_info["reference"] = method == "bare_matmul_topk"
    benchmark.pedantic(bare if method == "bare_matmul_topk" else evaluator, args=() if method == "bare_matmul_topk" else (users, items), rounds=5, iterations=1)


@pytest.mark.parametrize("sampler_name", SAMPLERS.names())
def test_sampler_throughput(benchmark, preset_splits, sampler_name):
    """Negatives per second at batch 2048 on the Yelp2018 preset (LightGCN layers)."""
    split = preset_splits["yelp2018"]
    model = _model(split, "lightgcn")
    sampler = _setup_sampler(sampler_name, split, model)
    user_layers, item_layers = model.propagate()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(split.train.nnz, (2048,), generator=g)
    users, positives = (t[idx] for t in train_pairs(split))

    def draw():
        negatives = sampler.sample(users, positives, user_layers, item_layers)
        sampler.extra_loss()
        return negatives

    benchmark.group = "sampler-batch-2048-yelp2018"
    benchmark.extra_info["reference"] = sampler_name == "uniform"
    benchmark.pedantic(draw, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info["negatives_per_second"] = 2048 / benchmark.stats.stats.mean


@pytest.mark.parametrize("sampler_name", SAMPLERS.names())
def test_sampler_epoch_seconds(benchmark, preset_splits, sampler_name):
    """A full LightGCN epoch on Yelp2018 with each sampler; compare each to ``uniform``."""
    split = preset_splits["yelp2018"]
    model = _model(split, "lightgcn")
    sampler = _setup_sampler(sampler_name, split, model)
    own = sampler.parameters()
    optimizers = [torch.optim.Adam(model.parameters(), lr=CONFIG.lr)] + ([torch.optim.Adam(own, lr=sampler.learning_rate)] if own else [])
    generator = torch.Generator().manual_seed(0)
    benchmark.group = "sampler-epoch-lightgcn-yelp2018"
    benchmark.extra_info["reference"] = sampler_name == "uniform"
    benchmark.pedantic(train_epoch, args=(model, sampler, train_pairs(split), optimizers, CONFIG, generator), rounds=1, iterations=1)
