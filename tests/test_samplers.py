"""Known answers for the samplers of SPEC §3 (popularity, dns, mixgcf, cnsdiff)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from backbones import BACKBONES
from bench.train import TrainConfig, train
from samplers import SAMPLERS
from samplers.candidates import uniform_candidates
from scenarios.split import Split
from scenarios.synthetic import simulate
from sampling import fresh, pairs


@pytest.fixture(scope="module")
def split():
    return simulate("popularity", np.random.default_rng(0))


def tiny_split(dense: np.ndarray) -> Split:
    train = sp.csr_matrix(dense.astype(np.float32))
    empty = sp.csr_matrix(dense.shape, dtype=np.float32)
    return Split("popularity", "hand-made", train, empty, {"ood": empty})


# --- popularity -----------------------------------------------------------------------------------


def test_popularity_frequencies_follow_pop_to_the_alpha():
    # item j is a train positive of the last pop[j] users; user 0 holds only item 5; item 6 has pop 0
    pop = np.array([1, 2, 4, 6, 8, 10, 0])
    dense = (np.arange(10)[:, None] >= 10 - pop[None, :]).astype(np.float32)
    split = tiny_split(dense)
    assert (split.item_popularity == pop).all()
    sampler, model = fresh("popularity", split, n_negatives=40_000)
    users = torch.zeros(1, dtype=torch.long)
    layers = model.propagate()
    counts = np.bincount(sampler.sample(users, users, *layers).items.numpy().ravel(), minlength=7)
    assert counts[5] == 0 and counts[6] == 0  # the user's positive, and an item nobody interacted with
    allowed = pop[:5].astype(float)
    expected = allowed**0.75 / (allowed**0.75).sum() * counts[:5].sum()
    assert chisquare(counts[:5], expected).pvalue > 0.001
    # the test has power: the frequencies are not those of pop ** 1 nor uniform
    assert chisquare(counts[:5], allowed / allowed.sum() * counts[:5].sum()).pvalue < 1e-6
    assert chisquare(counts[:5]).pvalue < 1e-6


# --- dns ------------------------------------------------------------------------------------------


def test_dns_keeps_the_highest_scoring_candidate():
    # 4 users, 12 items; item j scores j for user 0 and 11 - j for the others; items 11 and 0 are
    # positives of user 0 and of users 1-3 respectively, so the best negatives are 10 and 1
    dense = np.zeros((4, 12), dtype=np.float32)
    dense[0, 11] = dense[1:, 0] = 1
    split = tiny_split(dense)
    sampler, model = fresh("dns", split, seed=3)
    with torch.no_grad():
        model.user_embedding.zero_()
        model.user_embedding[0, 0] = 1.0
        model.user_embedding[1:, 1] = 1.0
        model.item_embedding.zero_()
        model.item_embedding[:, 0] = torch.arange(12.0)
        model.item_embedding[:, 1] = 11.0 - torch.arange(12.0)
    users = torch.tensor([0, 1, 2, 3] * 64)
    replay = torch.Generator().manual_seed(3)
    replay.set_state(sampler.generator.get_state())
    chosen = sampler.sample(users, users, *model.propagate()).items[:, 0]
    candidates = uniform_candidates(sampler.train_pairs, users, sampler.n_candidates, replay)
    scores = torch.where(users[:, None] == 0, candidates.double(), 11.0 - candidates.double())
    expected = candidates.gather(1, scores.argmax(1, keepdim=True))[:, 0]
    assert torch.equal(chosen, expected)
    best = torch.where(users == 0, 10, 1)
    drawn = (candidates == best[:, None]).any(1)
    assert drawn.float().mean() > 0.85  # P(the best of 11 items is among 32 draws) = 1 - (10/11)**32
    assert torch.equal(chosen[drawn], best[drawn])  # ... and then it is the one kept
    assert not ((users == 0) & (chosen == 11)).any() and not ((users > 0) & (chosen == 0)).any()


# --- mixgcf ---------------------------------------------------------------------------------------


def _reconstruct_mixing(output, positive_layers, candidate_layers, user):
    """Per pair, the alpha_l that express ``output`` as mean_l(alpha_l p_l + (1 - alpha_l) c_l).

    ``c_l`` is the candidate the pooled user scores highest at layer l (hop mixing with one alpha
    per pair and layer shared by the candidates picks the same one whatever alpha is).
    Returns (alphas [B, L+1], residual [B]).
    """
    n_layers = positive_layers.shape[0]
    best = torch.einsum("bd,lbmd->lbm", user, candidate_layers).argmax(-1)  # [L+1, B]
    picked = candidate_layers.gather(2, best[..., None, None].expand(-1, -1, 1, candidate_layers.shape[-1]))[:, :, 0]
    design = ((positive_layers - picked) / n_layers).permute(1, 2, 0)  # [B, d, L+1]
    target = (output - picked.mean(0)).unsqueeze(-1)  # [B, d, 1]
    alphas = torch.linalg.lstsq(design.double(), target.double()).solution[..., 0]
    residual = (design.double() @ alphas.unsqueeze(-1) - target.double()).norm(dim=(1, 2))
    return alphas, residual / output.norm(dim=-1).double()


def test_mixgcf_output_is_hop_and_positive_mixing(split):
    sampler, model = fresh("mixgcf", split, backbone="lightgcn", seed=4)
    users, positives = pairs(split, 400, seed=5)
    replay = torch.Generator().manual_seed(4)
    replay.set_state(sampler.generator.get_state())
    user_layers, item_layers = model.propagate()
    output = sampler.sample(users, positives, user_layers, item_layers).embeddings
    assert output.shape == (400, 1, 64)
    candidates = uniform_candidates(sampler.train_pairs, users, sampler.n_candidates, replay)
    with torch.no_grad():
        alphas, residual = _reconstruct_mixing(
            output[:, 0], item_layers[:, positives], item_layers[:, candidates], model.pool(user_layers)[users]
        )
    assert residual.max() < 1e-4  # in the span, with the hop structure
    assert alphas.min() > -1e-4 and alphas.max() < 1 + 1e-4  # positive mixing weights in [0, 1]
    assert alphas.std(dim=1).mean() > 0.1  # one alpha per layer, not one per pair
    assert abs(alphas.mean() - 0.5) < 0.05  # alpha ~ U(0, 1)
    # the gradient reaches the positive's and the picked items' embeddings
    output.sum().backward()
    assert model.item_embedding.grad[positives].abs().sum() > 0


def test_mixgcf_on_mf_is_positive_mixed_dns(split):
    dns, model = fresh("dns", split, seed=6)
    mix, _ = fresh("mixgcf", split, seed=6)
    mix.model = model  # same embeddings; same generator seed, so the same candidates
    users, positives = pairs(split, 500, seed=7)
    layers = model.propagate()
    picked = dns.sample(users, positives, *layers).items[:, 0]
    output = mix.sample(users, positives, *layers).embeddings[:, 0].detach()
    with torch.no_grad():
        p, c = model.item_embedding[positives], model.item_embedding[picked]
        alpha = ((output - c) * (p - c)).sum(-1) / ((p - c) ** 2).sum(-1)
        assert torch.allclose(alpha[:, None] * p + (1 - alpha[:, None]) * c, output, atol=1e-6)
    assert alpha.min() >= -1e-5 and alpha.max() <= 1 + 1e-5


# --- cnsdiff --------------------------------------------------------------------------------------


def test_cnsdiff_diffusion_loss_falls_with_its_optimizer(split):
    sampler, model = fresh("cnsdiff", split, seed=8)
    params = sampler.parameters()
    assert params and all(p.requires_grad for p in params)
    optimizer = torch.optim.Adam(params, lr=type(sampler).learning_rate)
    users, positives = pairs(split, 512, seed=9)
    with torch.no_grad():
        user, item = model.pooled()
    user, positive = user[users], item[positives]

    def fixed_loss() -> float:  # the same timesteps and noise every time
        sampler.generator = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(sum(sampler.diffusion_terms(user, positive, positives)))

    training = torch.Generator().manual_seed(10)
    before = fixed_loss()
    for _ in range(150):
        sampler.generator = training
        diffusion, causal = sampler.diffusion_terms(user, positive, positives)
        optimizer.zero_grad()
        (sampler.diffusion_weight * diffusion + sampler.causal_weight * causal).backward()
        optimizer.step()
    assert fixed_loss() < 0.5 * before
    # the paper variant's diffusion trains the denoiser only: the model's embeddings get no gradient
    item_layers = model.propagate()[1]
    sum(sampler.diffusion_terms(user, model.pool(item_layers)[positives], positives)).backward()
    assert model.item_embedding.grad is None


class _GaussianDenoiser:
    """The exact posterior mean E[x0 | x_t] for x0 ~ N(0, v I): a denoiser that knows nothing of the user."""

    def __init__(self, diffusion, variance: float) -> None:
        self.diffusion, self.variance = diffusion, variance

    def condition_term(self, condition):
        return 0.0

    def time_term(self, t):
        abar = self.diffusion.sqrt_abar[t] ** 2
        return (abar.sqrt() * self.variance / (abar * self.variance + 1 - abar)).view(-1, 1)

    def predict(self, x, context, generator):
        return context * x


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_cnsdiff_hardness_is_set_by_the_start_step(split, variant):
    # Items drawn from N(0, v I), users aligned with their positives; a denoiser that shrinks towards
    # the prior mean. When the chain runs from s to 0 (paper), a noisier start (larger s) yields a
    # negative the user scores lower; when every chain runs all T steps (released), s hardly matters.
    sampler, _ = fresh("cnsdiff", split, seed=11, variant=variant)
    gen = torch.Generator().manual_seed(12)
    variance = 0.002
    positive = variance**0.5 * torch.randn((4000, 64), generator=gen)
    user = positive + variance**0.5 * torch.randn((4000, 64), generator=gen)
    steps = (2, 6, 10, 14, 18)
    with torch.no_grad():
        candidates = sampler.diffusion.reverse(
            _GaussianDenoiser(sampler.diffusion, variance), positive, steps, None,
            torch.Generator().manual_seed(13), full_chain=variant == "released",
        )
    score = torch.einsum("bd,sbd->sb", user, candidates).mean(1)
    distance = (candidates - positive).norm(dim=-1).mean(1)
    positive_score = (user * positive).sum(-1).mean()
    if variant == "paper":
        gaps = score[:-1] - score[1:]
        assert (gaps > 0.02 * positive_score).all(), score  # strictly and clearly monotone
        assert (distance[1:] > distance[:-1]).all()
        assert score[0] < positive_score
    else:
        assert (score.max() - score.min()) < 0.1 * (positive_score - score.mean()), score


def test_cnsdiff_beta_schedule_moves_from_random_to_generated(split):
    sampler, _ = fresh("cnsdiff", split, seed=14)
    means = []
    for epoch in range(10):
        sampler.on_epoch_start(epoch, 10)
        lam = sampler.mix_weights(20_000)
        assert lam.shape == (20_000, 1) and lam.min() >= 0 and lam.max() <= 1
        means.append(float(lam.mean()))
    assert abs(means[0] - 0.1) < 0.01 and abs(means[-1] - 0.9) < 0.01
    assert all(b > a for a, b in zip(means, means[1:]))


def _train_recording_denoiser(split, variant: str, seed: int):
    """Train 2 epochs; return the sampler and its denoiser weights right after ``train`` set it up."""
    generator = torch.Generator().manual_seed(seed)
    model = BACKBONES.create("mf").build(split.train, generator)
    sampler = SAMPLERS.create("cnsdiff", variant=variant)
    initial = {}
    setup = sampler.setup

    def recording_setup(*args):
        setup(*args)
        initial.update({k: v.clone() for k, v in sampler.denoiser.state_dict().items()})

    sampler.setup = recording_setup
    result = train(split, model, sampler, TrainConfig(epochs=2, eval_every=1, batch_size=512), np.random.default_rng(seed), generator,
                   np.random.default_rng(seed + 1))
    assert initial and all(np.isfinite(h["loss"]) for h in result.history)
    return sampler, initial


def test_cnsdiff_released_never_trains_its_denoiser(split):
    sampler, initial = _train_recording_denoiser(split, "released", seed=15)
    assert sampler.parameters() == []
    assert all(torch.equal(initial[k], v) for k, v in sampler.denoiser.state_dict().items())
    # the paper variant, trained the same way, does move its denoiser
    sampler, initial = _train_recording_denoiser(split, "paper", seed=15)
    assert sampler.parameters()
    assert not all(torch.equal(initial[k], v) for k, v in sampler.denoiser.state_dict().items())


def test_cnsdiff_released_terms_reach_the_embeddings(split):
    sampler, model = fresh("cnsdiff", split, seed=16, variant="released")
    assert sampler.diffusion_weight == pytest.approx(1e-6 * sampler.diffusion.raw_weight_mean)
    users, positives = pairs(split, 256, seed=17)
    user_layers, item_layers = model.propagate()
    diffusion, kl = sampler.diffusion_terms(model.pool(user_layers)[users], model.pool(item_layers)[positives], positives)
    assert torch.isfinite(diffusion) and torch.isfinite(kl) and kl > 0
    (diffusion + kl).backward()
    assert model.item_embedding.grad is not None and model.item_embedding.grad.abs().sum() > 0


@pytest.mark.parametrize("environments", ["popularity", "kmeans"])
def test_cnsdiff_environments(split, environments):
    sampler, model = fresh("cnsdiff", split, seed=18, environments=environments, n_environments=4)
    sampler.on_epoch_start(0, 3)
    labels = sampler._environment.numpy()
    assert labels.shape == (split.n_items,) and labels.min() >= 0 and labels.max() < 4
    if environments == "popularity":  # equal-size bins, popularity increasing with the bin
        assert (np.bincount(labels) == split.n_items // 4).all()
        pop = split.item_popularity
        assert all(pop[labels == e].max() <= pop[labels == e + 1].min() for e in range(3))
    users, positives = pairs(split, 512, seed=19)
    negatives = sampler.sample(users, positives, *model.propagate())
    extra = sampler.extra_loss()
    assert negatives.embeddings.shape == (512, 1, 64) and torch.isfinite(extra)
    assert set(sampler.last_losses) == {"infonce", "diffusion", "causal"}


def test_cnsdiff_rejects_bad_parameters():
    with pytest.raises(ValueError, match="variant"):
        SAMPLERS.create("cnsdiff", variant="other")
    with pytest.raises(ValueError, match="hardness_steps"):
        SAMPLERS.create("cnsdiff", hardness_steps=(10, 30))
    assert SAMPLERS.create("cnsdiff", hardness_steps="6:12").hardness_steps == (6, 12)  # as a grid writes it
    assert SAMPLERS.create("cnsdiff", beta_start=[2, 8]).beta_start == (2.0, 8.0)
