"""The training loop: reproducibility, selection on valid only, and that it learns."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from backbones import BACKBONES
from bench.train import TrainConfig, TrainingDiverged, bpr_loss, train
from samplers import SAMPLERS
from scenarios.synthetic import simulate

CONFIG = TrainConfig(epochs=6, eval_every=2, patience=2, batch_size=512, lr=5e-3)


@pytest.fixture(scope="module")
def split():
    return simulate("popularity", np.random.default_rng(11))


def _run(split, backbone="mf", config=CONFIG, seed=0):
    model = BACKBONES.create(backbone, dim=16).build(split.train, torch.Generator().manual_seed(seed))
    return train(split, model, SAMPLERS.create("uniform"), config, np.random.default_rng(seed), torch.Generator().manual_seed(seed),
                 np.random.default_rng(seed + 1))


def test_same_seed_gives_identical_metrics(split):
    first, second = _run(split, "lightgcn"), _run(split, "lightgcn")
    for name in first.evaluations:
        assert first.evaluations[name].aggregate == second.evaluations[name].aggregate
        for metric, values in first.evaluations[name].per_user.items():
            np.testing.assert_array_equal(values, second.evaluations[name].per_user[metric])
    untimed = [[{k: v for k, v in h.items() if not k.endswith("_s")} for h in r.history] for r in (first, second)]
    assert untimed[0] == untimed[1]


def test_different_seed_gives_different_metrics(split):
    assert _run(split, seed=0).evaluations["ood"].aggregate != _run(split, seed=1).evaluations["ood"].aggregate


def test_selection_never_looks_at_a_test_set(split):
    """Replacing the test sets with noise changes nothing about which epoch is selected."""
    rng = np.random.default_rng(0)
    noise = sp.random(split.n_users, split.n_items, density=0.05, format="csr", random_state=rng)
    noise.data[:] = 1.0
    altered = dataclasses.replace(split, tests={"ood": noise, "iid": noise})
    original, replaced = _run(split), _run(altered)
    assert original.best_epoch == replaced.best_epoch
    assert original.evaluations["valid"].aggregate == replaced.evaluations["valid"].aggregate
    assert original.selected_on == "valid"


def test_early_stopping_reacts_to_valid(split):
    config = dataclasses.replace(CONFIG, epochs=40, eval_every=1, patience=2, lr=0.5)  # overshoots fast
    result = _run(split, config=config)
    scores = [h["valid/recall@20"] for h in result.history if "valid/recall@20" in h]
    assert len(result.history) < 40
    assert result.best_epoch == result.history[int(np.argmax(scores))]["epoch"]
    assert all(s <= max(scores) for s in scores[-2:])


def test_curves_record_every_metric_of_the_named_sets_without_changing_selection(split):
    plain = _run(split)
    traced = _run(split, config=dataclasses.replace(CONFIG, curves=("ood", "valid")))
    assert traced.best_epoch == plain.best_epoch
    assert traced.evaluations["ood"].aggregate == plain.evaluations["ood"].aggregate
    evaluated = [h for h in traced.history if "valid/recall@20" in h]
    assert len(evaluated) == len([h for h in plain.history if "valid/recall@20" in h])
    best = next(h for h in evaluated if h["epoch"] == traced.best_epoch)
    for metric, value in traced.evaluations["ood"].aggregate.items():
        assert best[f"ood/{metric}"] == pytest.approx(value)


def test_curves_name_an_unknown_set(split):
    with pytest.raises(ValueError, match="curves: no set 'test'"):
        _run(split, config=dataclasses.replace(CONFIG, curves=("test",)))


def test_training_learns_beyond_random(split):
    result = _run(split, "lightgcn", dataclasses.replace(CONFIG, epochs=30, lr=1e-2, patience=5))
    ood = result.evaluations["ood"].aggregate["recall@20"]
    random_recall = 20 / split.n_items
    assert ood > 2 * random_recall


def test_timings_and_diagnostics_are_recorded(split):
    result = _run(split)
    for key in ("sampling_s_per_epoch", "step_s_per_epoch", "eval_s_per_epoch", "epoch_s", "peak_rss_mb"):
        assert result.timings[key] > 0
    per_epoch = sum(result.timings[f"{part}_s_per_epoch"] for part in ("sampling", "step", "eval"))
    assert result.timings["epoch_s"] == pytest.approx(per_epoch)  # the final evaluation is counted apart
    assert result.timings["final_eval_s"] > 0
    rates = result.diagnostics["false_hard_negative_rate"]
    assert len(rates) == result.timings["epochs_run"] and all(0 <= r <= 1 for r in rates)
    assert result.diagnostics["false_hard_negative_exact"] is True


def test_non_finite_loss_raises(split):
    with pytest.raises(TrainingDiverged):
        _run(split, config=dataclasses.replace(CONFIG, lr=1e20, epochs=3))


def test_bpr_loss_known_value():
    user = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[2.0, 0.0]])
    negatives = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])
    expected = (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(1.0))) / 2
    assert bpr_loss(user, positive, negatives).item() == pytest.approx(expected)


def test_probe_matches_synthesised_negatives_among_possible_negatives(split):
    """A negative equal to the positive's embedding must map to some non-positive item, not the positive."""
    from bench.train import DiagnosticProbe
    from samplers.registry import Negatives

    class CopyPositive(SAMPLERS.get("uniform")):
        def sample(self, users, positives, user_layers, item_layers):
            return Negatives(embeddings=self.model.pool(item_layers)[positives].unsqueeze(1))

    model = BACKBONES.create("mf", dim=16).build(split.train, torch.Generator().manual_seed(0))
    sampler = CopyPositive()
    sampler.setup(split, model, np.random.default_rng(0), torch.Generator().manual_seed(0))
    probe = DiagnosticProbe(split, 256, np.random.default_rng(0))
    result = probe.measure(sampler, model)
    with torch.no_grad():
        items = model.pool(model.propagate()[1])
        scores = items[probe.positives] @ items.T
        scores[probe.train_rows, probe.train_cols] = -torch.inf
        nearest = scores.argmax(1)
    users, nearest = probe.users.numpy(), nearest.numpy()
    assert not split.train.toarray()[users, nearest].any()
    expected = split.truth[users, nearest].mean()
    assert result["false_hard_negative_rate"] == pytest.approx(expected)


def test_diagnostic_pairs_come_from_the_probe_randomness_alone(split):
    """Every sampler of a seed is probed on the same training pairs, whatever it draws itself."""
    chosen = []
    for name in ("uniform", "dns"):
        model = BACKBONES.create("mf", dim=16).build(split.train, torch.Generator().manual_seed(0))
        sampler = SAMPLERS.create(name)
        seen = []
        original = sampler.sample

        def spy(users, positives, user_layers, item_layers, original=original, seen=seen):
            if not torch.is_grad_enabled():  # the probe samples under no_grad; training batches do not
                seen.append((users.clone(), positives.clone()))
            return original(users, positives, user_layers, item_layers)

        sampler.sample = spy
        train(split, model, sampler, dataclasses.replace(CONFIG, epochs=1), np.random.default_rng(len(name)),
              torch.Generator().manual_seed(0), np.random.default_rng(5))
        chosen.append(seen[0])
    assert torch.equal(chosen[0][0], chosen[1][0]) and torch.equal(chosen[0][1], chosen[1][1])


def test_sources_of_synthesised_negatives_are_regularised_like_item_negatives(split):
    """L2 covers the negatives' layer-0 rows whether a sampler returns item ids or names its sources."""
    from bench.train import train_epoch, train_pairs
    from samplers.registry import Negatives, Sampler

    class Fixed(Sampler):
        def __init__(self, with_sources: bool) -> None:
            self.with_sources = with_sources

        def sample(self, users, positives, user_layers, item_layers):
            sources = (positives + 1).remainder(self.n_items).unsqueeze(1)
            embeddings = torch.zeros(len(users), 1, item_layers.shape[-1])
            return Negatives(embeddings=embeddings, sources=sources if self.with_sources else None)

    pairs = train_pairs(split)
    config = dataclasses.replace(CONFIG, batch_size=len(pairs[0]), l2=0.5)  # one batch: the loss before any step
    losses = []
    for with_sources in (False, True):
        model = BACKBONES.create("mf", dim=16).build(split.train, torch.Generator().manual_seed(0))
        sampler = Fixed(with_sources)
        sampler.setup(split, model, np.random.default_rng(0), torch.Generator().manual_seed(0))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        losses.append(train_epoch(model, sampler, pairs, [optimizer], config, torch.Generator().manual_seed(0))[0])
        rows = model.item_embedding.detach()[(pairs[1] + 1).remainder(split.n_items)]
    assert losses[1] - losses[0] == pytest.approx(config.l2 * float(rows.pow(2).sum()) / len(pairs[0]), rel=1e-4)
