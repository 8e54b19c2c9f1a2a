"""Every registered sampler, on every registered backbone, honours the sampler contract.

Parametrised over ``SAMPLERS.names()`` and ``BACKBONES.names()``, so a newly registered plug-in is
covered without touching this file.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backbones import BACKBONES
from bench.registry import get_params
from bench.train import TrainConfig, train
from samplers import SAMPLERS, Negatives
from sampling import draw, fresh, pairs
from scenarios.synthetic import simulate

SAMPLER_NAMES = SAMPLERS.names()
BACKBONE_NAMES = BACKBONES.names()


@pytest.fixture(scope="module")
def split():
    return simulate("popularity", np.random.default_rng(0))


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_negatives_have_the_declared_form(name, backbone, split):
    sampler, model = fresh(name, split, backbone)
    users, positives = pairs(split, 300, seed=1)
    negatives = draw(sampler, model, users, positives)
    assert isinstance(negatives, Negatives)
    assert (negatives.embeddings is not None) == type(sampler).synthesises
    if negatives.items is not None:
        items = negatives.items
        assert items.dtype == torch.int64 and items.dim() == 2 and items.shape[0] == len(users) and items.shape[1] >= 1
        assert int(items.min()) >= 0 and int(items.max()) < split.n_items
    else:
        emb = negatives.embeddings
        assert emb.is_floating_point() and emb.dim() == 3
        assert emb.shape[0] == len(users) and emb.shape[1] >= 1 and emb.shape[2] == model.item_embedding.shape[1]
        assert torch.isfinite(emb).all()
        if negatives.sources is not None:  # the real negatives it is built from, regularised by the loop
            sources = negatives.sources
            assert sources.dtype == torch.int64 and sources.dim() == 2 and sources.shape[0] == len(users)
            assert int(sources.min()) >= 0 and int(sources.max()) < split.n_items
            assert not (split.train.toarray() > 0)[users.numpy()[:, None], sources.numpy()].any()
        # a synthesised negative keeps its gradient to the model's embeddings
        emb.sum().backward()
        assert model.item_embedding.grad is not None and model.item_embedding.grad.abs().sum() > 0


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_no_train_positive_is_ever_a_negative(name, split):
    sampler, model = fresh(name, split)
    if type(sampler).synthesises:
        pytest.skip(f"{name} synthesises embeddings, not item ids")
    train_dense = split.train.toarray() > 0
    for round_ in range(10):
        users, positives = pairs(split, 4096, seed=100 + round_)
        items = draw(sampler, model, users, positives).items
        assert not train_dense[users.numpy()[:, None], items.numpy()].any()


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_same_seed_gives_the_same_negatives(name, backbone, split):
    users, positives = pairs(split, 256, seed=2)
    outputs = []
    for _ in range(2):
        sampler, model = fresh(name, split, backbone, seed=7)
        sampler.on_epoch_start(0, 3)
        with torch.no_grad():
            negatives = draw(sampler, model, users, positives)
        outputs.append(negatives.items if negatives.items is not None else negatives.embeddings)
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_short_training_run_finishes(name, backbone, split):
    ok, reason = SAMPLERS.get(name).compatible(backbone, split.scenario)
    if not ok:
        assert isinstance(reason, str) and reason.strip()
        pytest.skip(reason)
    generator = torch.Generator().manual_seed(0)
    model = BACKBONES.create(backbone).build(split.train, generator)
    result = train(
        split, model, SAMPLERS.create(name), TrainConfig(epochs=3, eval_every=1, batch_size=512),
        np.random.default_rng(0), generator, np.random.default_rng(1),
    )
    assert set(result.evaluations) >= {"valid", "ood", "iid"}
    for evaluation in result.evaluations.values():
        assert all(math.isfinite(v) for v in evaluation.aggregate.values())
    assert all(math.isfinite(h["loss"]) for h in result.history)
    for key in ("false_hard_negative_rate", "negative_popularity_percentile"):
        assert all(0.0 <= v <= 1.0 for v in result.diagnostics[key])


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_params_round_trip(name):
    sampler = SAMPLERS.create(name)
    params = get_params(sampler)
    assert set(params) == set(SAMPLERS.defaults(name))
    clone = SAMPLERS.create(name, **params)
    assert get_params(clone) == params
    assert type(clone) is type(sampler)
