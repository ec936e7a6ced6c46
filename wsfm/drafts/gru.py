"""Tiny GRU character language model used as a draft, trained on the CPU in seconds.

Tokens as in ``wsfm.drafts.ngram``: ``0`` = end (= pad code), ``1..26`` = ``a..z``, and an
input-only start token ``27``. The model reads ``[start, c_1, ..., c_L]`` and is trained by
teacher forcing to predict ``[c_1, ..., c_L, end]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from wsfm.data.words import VOCAB, encode
from wsfm.drafts.base import read_arrays
from wsfm.drafts.ngram import WordDraft, fit_lengths, words_from_data

__all__ = ["CharGRU", "GRUDraft", "net_arrays", "net_state"]

_START = VOCAB
_PARAM = "param/"  # prefix of the network's arrays in the saved file


def net_arrays(net: nn.Module) -> dict[str, Any]:
    """A network's weights as the plain arrays of a saved draft file (prefixed; typed Any
    for ``np.savez(**arrays)``, whose stub reads a keyword as ``allow_pickle``)."""
    return {_PARAM + k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def net_state(arrays: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """The state dict that :func:`net_arrays` saved among a draft file's arrays."""
    return {k[len(_PARAM):]: torch.from_numpy(v.copy()) for k, v in arrays.items()
            if k.startswith(_PARAM)}


class CharGRU(nn.Module):
    """Embedding (28 tokens) -> one GRU layer -> logits over 27 symbols."""

    def __init__(self, hidden: int = 64, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB + 1, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, tokens: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """tokens (B, T) long, h (1, B, hidden) or None -> logits (B, T, 27), h (1, B, hidden)."""
        out, h = self.gru(self.embed(tokens), h)
        return self.head(out), h


class GRUDraft(WordDraft):
    """A character GRU language model as a draft.

    Training: ``steps`` AdamW steps on batches of ``batch_size`` training words drawn with
    replacement, cross-entropy on the letters and the end symbol (pads after the end are
    ignored). Initialisation and batches are seeded with ``seed``. **Length**: as in
    ``CharNgramDraft``, a word outside the training length range is drawn again.

    Args:
        hidden: GRU width.
        embed: token embedding size.
        steps: training steps.
        batch_size: words per step.
        lr: AdamW learning rate (cosine-decayed to 0).
        temperature: sampling temperature (> 0) applied to the logits.
        seed: seeds initialisation and batch order.
    """

    kind: ClassVar[str] = "gru"
    what: ClassVar[str] = "the GRU"

    def __init__(self, hidden: int = 64, embed: int = 32, steps: int = 1500,
                 batch_size: int = 128, lr: float = 3e-3, temperature: float = 1.0,
                 seed: int = 0) -> None:
        if min(hidden, embed, steps, batch_size) < 1:
            raise ValueError(f"hidden, embed, steps and batch_size must be >= 1, got "
                             f"{hidden}, {embed}, {steps}, {batch_size}")
        if not lr > 0 or not temperature > 0:
            raise ValueError(f"lr and temperature must be > 0, got {lr!r}, {temperature!r}")
        super().__init__()
        self.hidden, self.embed, self.steps, self.batch_size = hidden, embed, steps, batch_size
        self.lr, self.temperature, self.seed = float(lr), float(temperature), int(seed)
        self.final_loss = float("nan")

    @property
    def net(self) -> CharGRU | None:
        """The trained network (None before ``fit``)."""
        return self.model

    @net.setter
    def net(self, value: CharGRU | None) -> None:
        self.model = value

    def __repr__(self) -> str:
        return (f"GRUDraft(hidden={self.hidden}, embed={self.embed}, steps={self.steps}, "
                f"temperature={self.temperature}, seed={self.seed})")

    def fit(self, data: np.ndarray | Sequence[str]) -> Self:
        """Train on ``data``: (N, L) codes (``wsfm.data.words.encode``) or words."""
        words, self.width = words_from_data(data)
        self.min_len, self.max_len = fit_lengths(words, self.width)
        self.mean_len = float(np.mean([len(w) for w in words]))
        codes = torch.from_numpy(encode(words, self.max_len + 1))  # (N, max_len + 1): ends in pad
        inputs = torch.cat([torch.full((len(words), 1), _START), codes[:, :-1]], dim=1)
        lengths = torch.tensor([len(w) for w in words])
        keep = torch.arange(self.max_len + 1)[None, :] <= lengths[:, None]  # letters + end
        gen = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = CharGRU(self.hidden, self.embed)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(self.steps):
            idx = torch.randint(len(words), (self.batch_size,), generator=gen)
            logits, _ = net(inputs[idx])
            loss = loss_fn(logits[keep[idx]], codes[idx][keep[idx]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        self.net, self.final_loss = net.eval(), float(loss.detach())
        return self

    @property
    def cost_per_sample(self) -> float:
        """FLOPs per word: per symbol a GRU step (2 x 3 gates x (embed + hidden) x hidden),
        the output layer (2 x hidden x 27) and a 27-way draw, at the training mean length."""
        self._fitted()
        per_symbol = 6 * (self.embed + self.hidden) * self.hidden + 2 * self.hidden * VOCAB
        return float((per_symbol + 2 * VOCAB) * (self.mean_len + 1))

    @torch.no_grad()
    def _draw(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """n words: ((n, max_len) long codes, (n,) lengths or -1 when no end came)."""
        net = self._fitted()
        codes = torch.zeros((n, self.max_len + 1), dtype=torch.long)
        lengths = torch.full((n,), -1, dtype=torch.long)
        alive = torch.ones(n, dtype=torch.bool)
        tok, h = torch.full((n, 1), _START, dtype=torch.long), None
        for i in range(self.max_len + 1):
            logits, h = net(tok, h)
            probs = torch.softmax(logits[:, -1].double() / self.temperature, dim=-1)
            sym = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            sym = torch.where(alive, sym, torch.zeros_like(sym))
            lengths[alive & (sym == 0)] = i
            alive &= sym != 0
            codes[:, i] = sym
            tok = sym[:, None]
            if not alive.any():
                break
        return codes[:, :self.max_len], lengths

    def _drawer(self, seed: int) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
        gen = torch.Generator().manual_seed(seed)
        def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
            codes, lengths = self._draw(m, gen)
            return codes.numpy(), lengths.numpy()

        return draw

    def save(self, path: str | Path) -> None:
        net = self._fitted()
        params = net_arrays(net)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, kind=np.array(self.kind), hidden=np.array(self.hidden),
                     embed=np.array(self.embed), steps=np.array(self.steps),
                     batch_size=np.array(self.batch_size), lr=np.array(self.lr),
                     temperature=np.array(self.temperature), seed=np.array(self.seed),
                     width=np.array(self.width), max_len=np.array(self.max_len),
                     min_len=np.array(self.min_len),
                     mean_len=np.array(self.mean_len), final_loss=np.array(self.final_loss),
                     **params)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        draft = cls(int(f["hidden"]), int(f["embed"]), int(f["steps"]),
                    int(f["batch_size"]), float(f["lr"]), float(f["temperature"]),
                    int(f["seed"]))
        draft.width, draft.max_len = int(f["width"]), int(f["max_len"])
        draft.min_len = int(f["min_len"])
        draft.mean_len, draft.final_loss = float(f["mean_len"]), float(f["final_loss"])
        net = CharGRU(draft.hidden, draft.embed)
        net.load_state_dict(net_state(f))
        draft.net = net.eval()
        return draft
