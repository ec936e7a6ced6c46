"""Small MLP VAE draft, trained in torch on the CPU; sampled by decoding prior draws.

Data are standardised by their mean (D,) and one global scale before training. The
likelihood is Gaussian with a learned per-dimension log-variance, so the negative ELBO is a
proper objective with no weight to tune. Samples are decoder means (no observation noise):
smooth drafts, which the warm path widens with its own noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from wsfm.drafts.base import Draft, read_arrays

__all__ = ["VAE", "VAEDraft"]

_HPARAMS = ("latent", "hidden", "steps", "batch_size", "lr", "seed")


class VAE(nn.Module):
    """Encoder D -> hidden -> hidden -> (mu, logvar) (latent each); decoder mirrors it."""

    def __init__(self, dim: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                     nn.SiLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))
        self.log_var = nn.Parameter(torch.zeros(dim))  # (D,) observation log-variance

    def neg_elbo(self, x: Tensor, eps: Tensor) -> Tensor:
        """Mean negative ELBO (nats per sample) of x (B, D), reparameterised with eps (B, L)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, L) each
        z = mu + torch.exp(0.5 * logvar) * eps
        log_var = self.log_var.clamp(-10.0, 5.0)
        nll = 0.5 * (((x - self.decoder(z)) ** 2) * torch.exp(-log_var) + log_var
                     + math.log(2 * math.pi)).sum(dim=1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return (nll + kl).mean()


class VAEDraft(Draft):
    """A VAE with ``latent`` latent dimensions and two hidden layers of width ``hidden``.

    ``fit`` runs ``steps`` Adam steps of minibatch size ``batch_size`` at rate ``lr``;
    ``seed`` seeds the initial weights and the minibatches. ``history`` holds the training
    loss (negative ELBO, standardised units) per step after ``fit``.
    """

    kind: ClassVar[str] = "vae"

    def __init__(self, latent: int = 8, hidden: int = 256, steps: int = 2000,
                 batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> None:
        if min(latent, hidden, steps, batch_size) < 1:
            raise ValueError(f"latent, hidden, steps and batch_size must be >= 1, got "
                             f"{latent!r}, {hidden!r}, {steps!r}, {batch_size!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.latent, self.hidden, self.steps = int(latent), int(hidden), int(steps)
        self.batch_size, self.lr, self.seed = int(batch_size), float(lr), int(seed)
        self.net: VAE | None = None
        self.shift: np.ndarray | None = None  # (D,) data mean
        self.scale: float = 1.0  # global data std
        self.history: list[float] = []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in _HPARAMS)
        return f"VAEDraft({args})"

    def _standardise(self, data: np.ndarray) -> Tensor:
        assert self.shift is not None
        return torch.from_numpy((data - self.shift) / self.scale).to(torch.float32)

    def fit(self, data: np.ndarray) -> Self:
        """Train on ``data`` (N, D) for ``steps`` steps; leaves the global torch RNG alone."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] < 2:
            raise ValueError(f"data must have shape (N, D) with N >= 2, got {data.shape}")
        self.shift = data.mean(axis=0)
        self.scale = float((data - self.shift).std()) or 1.0
        x = self._standardise(data)  # (N, D)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = VAE(x.shape[1], self.latent, self.hidden)
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.history = []
        self.net.train()
        for _ in range(self.steps):
            batch = x[torch.randint(len(x), (min(self.batch_size, len(x)),), generator=gen)]
            loss = self.net.neg_elbo(batch, torch.randn(len(batch), self.latent, generator=gen))
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.history.append(loss.item())
        self.net.eval()
        return self

    def neg_elbo(self, data: np.ndarray, seed: int = 0) -> float:
        """Mean negative ELBO of ``data`` (N, D) in nats per sample, in data units."""
        net = self._fitted()
        x = self._standardise(np.asarray(data, dtype=np.float64))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            loss = net.neg_elbo(x, torch.randn(len(x), self.latent, generator=gen)).item()
        return loss + x.shape[1] * math.log(self.scale)  # change of variables from x / scale

    def _fitted(self) -> VAE:
        if self.net is None or self.shift is None:
            raise ValueError("VAEDraft is not fitted: call fit() or VAEDraft.load()")
        return self.net

    @property
    def dim(self) -> int:
        self._fitted()
        assert self.shift is not None
        return int(self.shift.shape[0])

    @property
    def cost_per_sample(self) -> float:
        """FLOPs of one decoder pass: ``2 (L H + H H + H D)`` multiply-adds, plus ``2 D``
        to undo the standardisation (activations and the latent draw are not counted)."""
        h, d = self.hidden, self.dim
        return float(2 * (self.latent * h + h * h + h * d) + 2 * d)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, D) float32 decoder means of ``z ~ N(0, I)`` drawn with ``seed``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        net = self._fitted()
        z = np.random.default_rng(seed).standard_normal((n, self.latent)).astype(np.float32)
        with torch.no_grad():
            x = net.decoder(torch.from_numpy(z)).numpy().astype(np.float64)  # (n, D)
        assert self.shift is not None
        return (x * self.scale + self.shift).astype(np.float32)

    def save(self, path: str | Path) -> None:
        net = self._fitted()
        weights = {f"w.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        hparams = {k: np.array(getattr(self, k)) for k in _HPARAMS}
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            arrays = {"kind": np.array(self.kind), "shift": np.asarray(self.shift),
                      "scale": np.array(self.scale), **hparams, **weights}
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        draft = cls(int(f["latent"]), int(f["hidden"]), int(f["steps"]),
                    int(f["batch_size"]), float(f["lr"]), int(f["seed"]))
        draft.shift, draft.scale = f["shift"].copy(), float(f["scale"])
        state = {k[2:]: torch.from_numpy(f[k].copy()) for k in f if k.startswith("w.")}
        net = VAE(len(draft.shift), draft.latent, draft.hidden)
        net.load_state_dict(state)
        draft.net = net.eval()
        return draft
