"""Gaussian diffusion in embedding space and its denoiser MLP (used by ``cnsdiff``, SPEC §3.5).

The process follows DiffRec (Wang et al. 2023), which the CNSDiff code reuses: a ``linear-var``
schedule whose cumulative noise variance grows linearly from ``noise_scale * noise_min`` to
``noise_scale * noise_max`` over ``steps`` steps; the denoiser predicts x0; the reverse chain uses
the posterior mean q(x_{t-1} | x_t, x0 = f(x_t, t, c)) without sampling noise.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GaussianDiffusion:
    """The fixed schedule and its closed forms; holds no trainable state."""

    def __init__(self, steps: int, noise_scale: float, noise_min: float, noise_max: float, max_beta: float = 0.999):
        if steps < 1 or not 0 < noise_min < noise_max or noise_scale <= 0:
            raise ValueError("diffusion needs steps >= 1, 0 < noise_min < noise_max and noise_scale > 0")
        self.steps = steps
        variance = np.linspace(noise_scale * noise_min, noise_scale * noise_max, steps, dtype=np.float64)
        alpha_bar = 1.0 - variance  # betas from linear variance (DiffRec's ``linear-var``)
        betas = np.concatenate([[variance[0]], np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)])
        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
        snr = abar / (1.0 - abar)
        # timestep weights of the x0-prediction ELBO, SNR(t-1) - SNR(t) (t = 0 -> 1, as DiffRec's reweight),
        # normalised to mean 1 over the steps: the raw values reach ~1e5 with the default schedule
        raw_weight = np.concatenate([[1.0], snr[:-1] - snr[1:]])
        self.raw_weight_mean = float(raw_weight.mean())

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(a, dtype=np.float32))

        self.sqrt_abar = tensor(np.sqrt(abar))
        self.sqrt_one_minus_abar = tensor(np.sqrt(1.0 - abar))
        self.coef_x0 = tensor(betas * np.sqrt(abar_prev) / (1.0 - abar))
        self.coef_xt = tensor((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar))
        self.log_var = tensor(np.log(np.concatenate([[post_var[1] if steps > 1 else post_var[0]], post_var[1:]])))
        self.weight = tensor(raw_weight / raw_weight.mean())

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, ``t`` broadcast over the leading dims of ``x0``."""
        return self.sqrt_abar[t].unsqueeze(-1) * x0 + self.sqrt_one_minus_abar[t].unsqueeze(-1) * noise

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: int) -> torch.Tensor:
        return self.coef_x0[t] * x0 + self.coef_xt[t] * xt

    def reverse(
        self,
        denoiser: "Denoiser",
        x0: torch.Tensor,
        starts: tuple[int, ...],
        condition: torch.Tensor | None,
        generator: torch.Generator,
        full_chain: bool,
    ) -> torch.Tensor:
        """``[S, B, d]``: one sample per start step s, from x_s = q(x_{s-1} | x0) through the reverse chain.

        With ``full_chain=False`` the chain runs from s down to 0, so s sets how far the result can
        move from x0; with ``full_chain=True`` it always runs all T steps (the released CNSDiff code).
        The S chains run together, one denoiser call per step over the chains still active.
        """
        order = sorted(range(len(starts)), key=lambda k: -starts[k])  # descending: active chains are a prefix
        start = torch.tensor([starts[k] for k in order], dtype=torch.long, device=x0.device)
        noise = torch.randn((len(starts), *x0.shape), generator=generator, device=generator.device).to(x0)
        noised = self.q_sample(x0.unsqueeze(0), (start - 1).clamp(min=0).unsqueeze(1).expand(-1, len(x0)), noise)
        x = torch.where((start > 0).view(-1, 1, 1), noised, x0.unsqueeze(0))
        condition_term = denoiser.condition_term(condition)
        for t in range(self.steps - 1 if full_chain else int(start.max()) - 1, -1, -1):
            k = len(starts) if full_chain else int((start > t).sum())
            time_term = denoiser.time_term(torch.tensor([t], device=x0.device))
            pred = denoiser.predict(x[:k], time_term + condition_term, generator)
            x = torch.cat([self.posterior_mean(pred, x[:k], t), x[k:]])
        return x[torch.tensor(order, device=x0.device).argsort()]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[N, dim]`` of integer timesteps ``[N]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class Denoiser(nn.Module):
    """f(x_t, t, c) -> x0: [x_t, time embedding, condition] -> tanh hidden layer -> d (DiffRec's MLP shape).

    ``normalize_input`` and ``input_dropout`` reproduce the released CNSDiff MLP (norm=True, dropout
    0.5 in training mode); the dropout mask is drawn from the generator passed to ``forward``.
    """

    def __init__(
        self,
        dim: int,
        condition_dim: int,
        hidden: int,
        time_dim: int,
        generator: torch.Generator,
        normalize_input: bool = False,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim, self.time_dim = dim, time_dim
        self.normalize_input, self.input_dropout = normalize_input, input_dropout
        self.time_layer = nn.Linear(time_dim, time_dim)
        self.hidden = nn.Linear(dim + time_dim + condition_dim, hidden)
        self.out = nn.Linear(hidden, dim)
        for layer in (self.time_layer, self.hidden, self.out):
            nn.init.xavier_normal_(layer.weight, generator=generator)
            nn.init.normal_(layer.bias, 0.0, 0.001, generator=generator)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        return self.predict(x, self.time_term(t) + self.condition_term(condition), generator)

    # The hidden layer acts on [x, time embedding, condition]; its three parts are computed apart so
    # that a reverse chain computes the condition's part once and the time's part once per step.
    def time_term(self, t: torch.Tensor) -> torch.Tensor:
        weight = self.hidden.weight[:, self.dim : self.dim + self.time_dim]
        return F.linear(self.time_layer(timestep_embedding(t, self.time_dim)), weight, self.hidden.bias)

    def condition_term(self, condition: torch.Tensor | None) -> torch.Tensor | float:
        return 0.0 if condition is None else F.linear(condition, self.hidden.weight[:, self.dim + self.time_dim :])

    def predict(self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """f given ``context`` = time_term + condition_term (broadcast over the leading dims of ``x``)."""
        if self.normalize_input:
            x = F.normalize(x, dim=-1)
        if self.input_dropout > 0:
            keep = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device) >= self.input_dropout
            x = x * keep / (1.0 - self.input_dropout)
        return self.out(torch.tanh(F.linear(x, self.hidden.weight[:, : self.dim]) + context))


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2))."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))
