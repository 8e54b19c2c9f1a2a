"""Full-ranking evaluation: chunk-size invariance, masking, and LightGCN with zero layers = MF."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backbones import BACKBONES
from bench.evaluate import Evaluator
from scenarios.synthetic import simulate


@pytest.fixture(scope="module")
def split():
    return simulate("popularity", np.random.default_rng(3))


@pytest.fixture(scope="module")
def embeddings(split):
    g = torch.Generator().manual_seed(0)
    return torch.randn(split.n_users, 16, generator=g), torch.randn(split.n_items, 16, generator=g)


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_results_do_not_depend_on_chunk_size(split, embeddings, chunk):
    reference = Evaluator(split.tests["ood"], [split.train, split.valid], split.item_popularity, chunk_size=256)(*embeddings)
    result = Evaluator(split.tests["ood"], [split.train, split.valid], split.item_popularity, chunk_size=chunk)(*embeddings)
    np.testing.assert_array_equal(result.users, reference.users)
    for name, values in reference.per_user.items():
        np.testing.assert_array_equal(result.per_user[name], values, err_msg=name)
    assert result.aggregate == reference.aggregate


def test_masked_items_are_never_recommended(split):
    # every train item of every user scores highest, yet none may be recommended
    train = split.train.toarray()
    user_emb, item_emb = torch.from_numpy(train.astype(np.float32)) * 100.0, torch.eye(split.n_items)
    evaluator = Evaluator(split.tests["ood"], [split.train], split.item_popularity, metrics=["recall@20"])
    topk = evaluator.top_k(user_emb, item_emb)
    assert topk.shape == (len(evaluator.users), 20)
    assert not train[evaluator.users[:, None], topk].any()


def test_users_without_targets_are_not_scored(split, embeddings):
    result = Evaluator(split.tests["ood"], [split.train], split.item_popularity)(*embeddings)
    has_target = np.diff(split.tests["ood"].indptr) > 0
    np.testing.assert_array_equal(result.users, np.flatnonzero(has_target))
    assert all(len(v) == has_target.sum() for v in result.per_user.values())


def test_lightgcn_with_zero_layers_scores_like_mf(split):
    mf = BACKBONES.create("mf", dim=8).build(split.train, torch.Generator().manual_seed(5))
    lgcn = BACKBONES.create("lightgcn", dim=8, n_layers=0).build(split.train, torch.Generator().manual_seed(5))
    mu, mi = mf.pooled()
    lu, li = lgcn.pooled()
    torch.testing.assert_close(mu, lu)
    torch.testing.assert_close(mu @ mi.T, lu @ li.T)
    evaluator = Evaluator(split.tests["ood"], [split.train, split.valid], split.item_popularity)
    assert evaluator(mu, mi).aggregate == evaluator(lu, li).aggregate


def test_lightgcn_propagation_matches_dense_formula(split):
    model = BACKBONES.create("lightgcn", dim=4, n_layers=2).build(split.train, torch.Generator().manual_seed(1))
    users, items = model.propagate()
    r = torch.from_numpy(split.train.toarray())
    adjacency = torch.zeros(split.n_users + split.n_items, split.n_users + split.n_items)
    adjacency[: split.n_users, split.n_users :] = r
    adjacency[split.n_users :, : split.n_users] = r.T
    degree = adjacency.sum(1)
    inv = torch.where(degree > 0, degree.pow(-0.5), torch.zeros_like(degree))
    norm = inv[:, None] * adjacency * inv[None, :]
    x0 = torch.cat([model.user_embedding, model.item_embedding]).detach()
    expected = torch.stack([x0, norm @ x0, norm @ norm @ x0])
    torch.testing.assert_close(torch.cat([users, items], dim=1).detach(), expected, rtol=1e-4, atol=1e-5)


def test_lightgcn_gradient_matches_autograd_of_dense_propagation(split):
    model = BACKBONES.create("lightgcn", dim=4, n_layers=2).build(split.train, torch.Generator().manual_seed(2))
    users, items = model.propagate()
    (users.pow(2).sum() + items.sum()).backward()
    fast = model.user_embedding.grad.clone()
    dense = model.graph.to_dense()
    x0 = torch.cat([model.user_embedding, model.item_embedding]).detach().requires_grad_(True)
    layers = torch.stack([x0, dense @ x0, dense @ (dense @ x0)])
    (layers[:, : split.n_users].pow(2).sum() + layers[:, split.n_users :].sum()).backward()
    torch.testing.assert_close(fast, x0.grad[: split.n_users], rtol=1e-4, atol=1e-5)
