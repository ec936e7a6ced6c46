"""Character GRU language model over windows cut from running text (the prose task).

The recurrent rival of ``WindowNgramDraft``: the same data (``(N, L)`` windows of codes
``1 .. V - 1``, ``V`` = 1 + the largest training code), the same two ways of drawing, but a
learned state instead of a table of the last ``order - 1`` characters, so its context reaches
back to the start of the window.

**Network**: code embedding -> one GRU layer -> logits over the codes. Code ``0`` never occurs
in a window, so it is the input-only start token: the network reads ``[0, c_1 .. c_{L-1}]`` and
is trained by teacher forcing (cross-entropy, AdamW, cosine decay, gradient norm clipped at 1)
to predict ``[c_1 .. c_L]`` on batches of training windows drawn with replacement. A window
starts anywhere in a document, so, as for the n-gram, its first characters are predicted from
little or no context.

**Drawing** uses inverse-CDF sampling from numpy uniforms (float64 probabilities), so a draw is
a pure function of the weights and the seed, whatever the batch split or thread count:

- ``sample(n, seed)``: whole windows, the chain run from the start token;
- ``substitutes(x1, seed)``: at every position of a real window, a character drawn given the
  real characters before it (one teacher-forced pass): the refiner's training corruptions
  (``wsfm.flow.discrete.corrupt``), the mistakes this model makes where it has the right
  context.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from wsfm.drafts.base import Draft, read_arrays
from wsfm.drafts.gru import net_arrays, net_state
from wsfm.drafts.window_ngram import check_windows

__all__ = ["WindowCharGRU", "WindowGRUDraft"]

_ROWS = 2048  # windows per forward pass when drawing substitutes (memory: rows x L x V)


class WindowCharGRU(nn.Module):
    """Embedding (``vocab`` codes, 0 = start) -> one GRU layer -> logits over ``vocab``."""

    def __init__(self, vocab: int, hidden: int = 256, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """tokens (B, T) long, h (1, B, hidden) or None -> logits (B, T, vocab), h."""
        out, h = self.gru(self.embed(tokens), h)
        return self.head(out), h


def _shifted(real: Tensor) -> Tensor:
    """The network's input for windows ``real`` (B, L): the start code, then ``real[:, :-1]``."""
    return torch.cat([torch.zeros((len(real), 1), dtype=torch.long), real[:, :-1]], dim=1)


def _draw(logits: Tensor, u: np.ndarray) -> np.ndarray:
    """Codes ``>= 1`` drawn from ``logits`` (..., V) by the uniforms ``u`` (...): the
    inverse CDF of the softmax over codes 1 .. V - 1 (the start code is never drawn)."""
    p = torch.softmax(logits[..., 1:].double(), dim=-1).numpy()
    cum = np.cumsum(p, axis=-1)
    target = u[..., None] * cum[..., -1:]
    return 1 + np.minimum((cum < target).sum(axis=-1), p.shape[-1] - 1)


class WindowGRUDraft(Draft):
    """See the module docstring.

    Args:
        hidden: GRU width.
        steps: training steps.
        embed: code embedding size.
        batch_size: windows per step.
        lr: AdamW peak learning rate (cosine-decayed to 0).
        seed: seeds the initialisation and the batch order.
    """

    kind: ClassVar[str] = "window_gru"

    def __init__(self, hidden: int = 256, steps: int = 2000, embed: int = 32,
                 batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> None:
        if min(hidden, steps, embed, batch_size) < 1:
            raise ValueError(f"hidden, steps, embed and batch_size must be >= 1, got "
                             f"{hidden}, {steps}, {embed}, {batch_size}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.hidden, self.steps, self.embed = int(hidden), int(steps), int(embed)
        self.batch_size, self.lr, self.seed = int(batch_size), float(lr), int(seed)
        self.vocab = 0
        self.width = 0
        self.final_loss = float("nan")  # nats per character, the last training batch
        self.net: WindowCharGRU | None = None

    def __repr__(self) -> str:
        return (f"WindowGRUDraft(hidden={self.hidden}, steps={self.steps}, "
                f"embed={self.embed}, seed={self.seed})")

    def _fitted(self) -> WindowCharGRU:
        if self.net is None:
            raise ValueError("WindowGRUDraft is not fitted: call fit() or load()")
        return self.net

    @property
    def dim(self) -> int:
        self._fitted()
        return self.width

    @property
    def cost_per_sample(self) -> float:
        """FLOPs per window: per character a GRU step (2 x 3 gates x (embed + hidden) x
        hidden), the output layer (2 x hidden x V) and a V-way draw."""
        self._fitted()
        per_char = (6 * (self.embed + self.hidden) * self.hidden + 2 * self.hidden * self.vocab
                    + 2 * self.vocab)
        return float(per_char * self.width)

    def fit(self, data: np.ndarray) -> Self:
        """Train on ``data``: (N, L) windows of codes >= 1."""
        x = check_windows(data)
        self.vocab, self.width = int(x.max()) + 1, int(x.shape[1])
        targets = torch.from_numpy(x.astype(np.int64))
        inputs = _shifted(targets)
        gen = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = WindowCharGRU(self.vocab, self.hidden, self.embed)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        loss = torch.zeros(())
        for _ in range(self.steps):
            idx = torch.randint(len(x), (self.batch_size,), generator=gen)
            logits, _ = net(inputs[idx])
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.vocab),
                                               targets[idx].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
        self.net, self.final_loss = net.eval(), float(loss.detach())
        return self

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, width) int64 windows: the chain run from the start token."""
        net = self._fitted()
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        u = np.random.default_rng(seed).random((n, self.width))
        x = np.zeros((n, self.width), dtype=np.int64)
        tok, h = torch.zeros((n, 1), dtype=torch.long), None
        for i in range(self.width if n else 0):
            logits, h = net(tok, h)
            x[:, i] = _draw(logits[:, -1], u[:, i])
            tok = torch.from_numpy(x[:, i:i + 1])
        return x

    @torch.no_grad()
    def substitutes(self, x1: np.ndarray, seed: int) -> np.ndarray:
        """(N, L) int64: at each position, a character drawn given the real characters of
        ``x1`` (N, L) before it (teacher forcing)."""
        net = self._fitted()
        x1 = np.asarray(x1, dtype=np.int64)
        if x1.ndim != 2 or x1.shape[1] != self.width:
            raise ValueError(f"x1 must be (N, {self.width}) codes, got {x1.shape}")
        if len(x1) and not 1 <= x1.min() <= x1.max() < self.vocab:
            raise ValueError(f"x1 codes must be in [1, {self.vocab - 1}], got "
                             f"[{x1.min()}, {x1.max()}]")
        u = np.random.default_rng(seed).random(x1.shape)
        out = np.zeros_like(x1)
        for s in range(0, len(x1), _ROWS):
            logits, _ = net(_shifted(torch.from_numpy(x1[s:s + _ROWS])))
            out[s:s + _ROWS] = _draw(logits, u[s:s + _ROWS])
        return out

    @torch.no_grad()
    def nll(self, x: np.ndarray) -> float:
        """Mean negative log-likelihood in bits per character of windows ``x`` (N, L)."""
        net = self._fitted()
        x = np.asarray(x, dtype=np.int64)
        total = 0.0
        for s in range(0, len(x), _ROWS):
            real = torch.from_numpy(x[s:s + _ROWS])
            logits, _ = net(_shifted(real))
            logp = torch.log_softmax(logits[..., 1:].double(), dim=-1)
            total -= float(logp.gather(-1, (real - 1)[..., None]).sum())
        return total / max(x.size, 1) / np.log(2)

    def save(self, path: str | Path) -> None:
        net = self._fitted()
        params = net_arrays(net)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, kind=np.array(self.kind), hidden=np.array(self.hidden),
                     steps=np.array(self.steps), embed=np.array(self.embed),
                     batch_size=np.array(self.batch_size), lr=np.array(self.lr),
                     seed=np.array(self.seed), vocab=np.array(self.vocab),
                     width=np.array(self.width), final_loss=np.array(self.final_loss),
                     **params)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        draft = cls(int(f["hidden"]), int(f["steps"]), int(f["embed"]), int(f["batch_size"]),
                    float(f["lr"]), int(f["seed"]))
        draft.vocab, draft.width = int(f["vocab"]), int(f["width"])
        draft.final_loss = float(f["final_loss"])
        net = WindowCharGRU(draft.vocab, draft.hidden, draft.embed)
        net.load_state_dict(net_state(f))
        draft.net = net.eval()
        return draft
