"""CNSDiff (Zhao et al. 2025): negatives synthesised by a conditional diffusion in embedding space (SPEC §3.5).

Per pair: the positive's pooled embedding x0 is noised to step s for every s in ``hardness_steps``
and denoised back; the candidate the user scores highest is the hard negative h; the negative is
n = lambda * h + (1 - lambda) * r with r a uniform real negative and lambda ~ Beta(a, b), (a, b)
moving linearly from ``beta_start`` to ``beta_end`` over the epoch budget (an early stop ends
the schedule where it stands). The extra loss is
``infonce_weight * InfoNCE + diffusion_weight * diffusion + causal_weight * causal``.

``variant="paper"``: the denoiser f(x_t, t, user) is trained by its own optimizer on detached
embeddings; the positive item conditions the chain as its starting point x0 rather than as a
denoiser input (a denoiser shown x0 while trained to predict x0 learns to copy it, and s then
controls nothing); the reverse chain runs from s down to 0; diffusion = per-environment losses averaged
with backdoor weights P(e) (the share of items in environment e), causal = variance of the
per-environment losses divided by their (detached) mean, so it is in loss units whatever the
embedding scale. ``variant="released"``: the authors' public code: the denoiser (input
normalised, input dropout 0.5, no user condition) is never trained, every chain runs all T steps,
causal = Gaussian KL between consecutive diffusion states, and the diffusion terms reach the
embeddings. Unset weights resolve per variant: paper 0.1 and 0.1; released the code's constants
(1e-6 times the mean raw timestep weight, and 1e-6 * 0.1 for the KL).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2

from samplers.candidates import uniform_candidates
from samplers.diffusion import Denoiser, GaussianDiffusion, normal_kl
from samplers.registry import SAMPLERS, Negatives, Sampler


def _as_tuple(value, n: int, cast=float) -> tuple:
    out = tuple(cast(v) for v in value)
    if n and len(out) != n:
        raise ValueError(f"expected {n} values, got {value!r}")
    return out


@SAMPLERS.register("cnsdiff")
@dataclass
class CNSDiff(Sampler):
    variant: str = "paper"  # "paper" or "released"
    steps: int = 20
    noise_scale: float = 0.1
    noise_min: float = 1e-4
    noise_max: float = 0.02
    hardness_steps: tuple = (10, 14, 18)
    beta_start: tuple = (1.0, 9.0)
    beta_end: tuple = (9.0, 1.0)
    infonce_weight: float = 0.3
    temperature: float = 2.0
    positive_noise: float = 0.01
    diffusion_weight: float | None = None  # None: 0.1 (paper); the released code's constant (released)
    causal_weight: float | None = None  # None: 0.1 (paper); 1e-7 (released)
    environments: str = "popularity"  # "popularity" (quantile bins) or "kmeans" (of item embeddings)
    n_environments: int = 4
    hidden: int = 64  # denoiser hidden width (and time-embedding size)

    synthesises = True

    def __post_init__(self) -> None:
        if self.variant not in ("paper", "released"):
            raise ValueError(f"cnsdiff variant must be 'paper' or 'released', got {self.variant!r}")
        if self.environments not in ("popularity", "kmeans"):
            raise ValueError(f"cnsdiff environments must be 'popularity' or 'kmeans', got {self.environments!r}")
        self.hardness_steps = _as_tuple(self.hardness_steps, 0, int)
        if not self.hardness_steps or not all(1 <= s <= self.steps for s in self.hardness_steps):
            raise ValueError(f"cnsdiff hardness_steps must lie in 1..{self.steps}, got {self.hardness_steps}")
        self.beta_start, self.beta_end = _as_tuple(self.beta_start, 2), _as_tuple(self.beta_end, 2)
        self.diffusion = GaussianDiffusion(self.steps, self.noise_scale, self.noise_min, self.noise_max)
        released = self.variant == "released"
        if self.diffusion_weight is None:
            self.diffusion_weight = 1e-6 * self.diffusion.raw_weight_mean if released else 0.1
        if self.causal_weight is None:
            self.causal_weight = 1e-7 if released else 0.1
        self.diffusion_weight, self.causal_weight = float(self.diffusion_weight), float(self.causal_weight)

    def setup(self, split, model, rng, generator) -> None:
        super().setup(split, model, rng, generator)
        dim = model.item_embedding.shape[1]
        paper = self.variant == "paper"
        self.denoiser = Denoiser(
            dim, dim if paper else 0, self.hidden, self.hidden, generator,
            normalize_input=not paper, input_dropout=0.0 if paper else 0.5,
        ).to(model.item_embedding.device)
        self.denoiser.requires_grad_(paper)
        self._beta = self.beta_start
        self._extra: torch.Tensor | None = None
        self.last_losses: dict[str, torch.Tensor] = {}
        if self.environments == "popularity":  # equal-size bins of the popularity rank (ties by item id)
            rank = np.argsort(np.argsort(split.item_popularity, kind="stable"), kind="stable")
            self._set_environments(rank * self.n_environments // self.n_items)
        else:
            self._kmeans()

    def _set_environments(self, labels: np.ndarray) -> None:
        self._environment = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        counts = np.bincount(labels, minlength=self.n_environments)
        self._prior = torch.from_numpy(counts / counts.sum()).float()

    def _kmeans(self) -> None:
        with torch.no_grad():
            items = self.model.pooled()[1].cpu().double().numpy()
        _, labels = kmeans2(items, self.n_environments, minit="++", missing="warn", rng=self.rng)
        self._set_environments(labels)

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        progress = epoch / max(n_epochs - 1, 1)
        self._beta = tuple(a + (b - a) * progress for a, b in zip(self.beta_start, self.beta_end))
        if self.environments == "kmeans":
            self._kmeans()

    def mix_weights(self, n: int) -> torch.Tensor:
        """lambda ~ Beta(a, b) as ``[n, 1]``: X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) from ``self.rng``."""
        x, y = self.rng.gamma(self._beta[0], size=n), self.rng.gamma(self._beta[1], size=n)
        return torch.from_numpy(x / np.maximum(x + y, np.finfo(float).tiny)).float().unsqueeze(1)

    def sample(self, users, positives, user_layers, item_layers) -> Negatives:
        pool, paper = self.model.pool, self.variant == "paper"
        user, positive = pool(user_layers[:, users]), pool(item_layers[:, positives])
        random_items = uniform_candidates(self.train_pairs, users, 1, self.generator)[:, 0]
        random_neg = pool(item_layers[:, random_items])
        with torch.no_grad():
            candidates = self.diffusion.reverse(
                self.denoiser, positive.detach(), self.hardness_steps, user.detach() if paper else None,
                self.generator, full_chain=not paper,
            )
            scores = torch.einsum("bd,sbd->sb", user.detach(), candidates)
            hard = candidates[scores.argmax(0), torch.arange(len(users), device=candidates.device)]
        lam = self.mix_weights(len(users)).to(hard)
        self._extra = self._loss(user, positive, positives, hard, random_neg) if torch.is_grad_enabled() else None
        return Negatives(embeddings=(lam * hard + (1.0 - lam) * random_neg).unsqueeze(1), sources=random_items.unsqueeze(1))

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, device=self.generator.device).to(like)

    def _loss(self, user, positive, positives, hard, random_neg) -> torch.Tensor:
        # InfoNCE: item anchor vs. its slightly noised copy, against every h and r of the batch
        anchor = F.normalize(positive, dim=-1)
        view = F.normalize(positive + self.positive_noise * self._randn(positive), dim=-1)
        negatives = F.normalize(torch.cat([hard, random_neg]), dim=-1)
        logits = torch.cat([(anchor * view).sum(-1, keepdim=True), anchor @ negatives.T], dim=1) / self.temperature
        infonce = F.cross_entropy(logits, torch.zeros(len(anchor), dtype=torch.long, device=anchor.device))
        diffusion, causal = self.diffusion_terms(user, positive, positives)
        self.last_losses = {"infonce": infonce.detach(), "diffusion": diffusion.detach(), "causal": causal.detach()}
        return self.infonce_weight * infonce + self.diffusion_weight * diffusion + self.causal_weight * causal

    def diffusion_terms(self, user, positive, positives) -> tuple[torch.Tensor, torch.Tensor]:
        """(timestep-weighted denoising loss, causal regulariser) on one batch of positives."""
        paper = self.variant == "paper"
        x0 = positive.detach() if paper else positive
        t = torch.randint(self.steps, (len(x0),), generator=self.generator, device=self.generator.device).to(x0.device)
        noise = self._randn(x0)
        pred = self.denoiser(self.diffusion.q_sample(x0, t, noise), t, user.detach() if paper else None, self.generator)
        loss = ((pred - x0) ** 2).mean(-1) * self.diffusion.weight.to(x0.device)[t]
        if not paper:  # the released "causal" term: KL between the prediction and the previous diffusion state
            prev = (t - 1).clamp(min=0)
            log_var = self.diffusion.log_var.to(x0.device)
            log_var_prev = torch.where(t == 0, torch.zeros_like(log_var[t]), log_var[prev]).unsqueeze(1)
            kl = normal_kl(pred, log_var[t].unsqueeze(1), self.diffusion.q_sample(x0, prev, noise), log_var_prev)
            return loss.mean(), kl.mean()
        env = self._environment.to(x0.device)[positives]
        counts = torch.bincount(env, minlength=self.n_environments)
        present = counts > 0
        per_env = (torch.zeros(self.n_environments, device=x0.device).index_add(0, env, loss) / counts.clamp(min=1))[present]
        prior = self._prior.to(x0.device)[present]
        diffusion = (prior / prior.sum() * per_env).sum()
        causal = per_env.var(unbiased=False) / per_env.mean().detach().clamp(min=1e-12)
        return diffusion, causal

    def extra_loss(self) -> torch.Tensor | None:
        return self._extra

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.denoiser.parameters()) if self.variant == "paper" else []
