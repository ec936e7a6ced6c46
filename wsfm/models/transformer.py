"""A small Transformer encoder over character positions, for the words task.

Two forms, one architecture (``mode``):

- ``"continuous"``: reads the flat one-hot ``(B, seq_len * vocab)`` (position-major, as
  ``wsfm.data.words.one_hot``; any real values, e.g. widened drafts) and returns a velocity
  of the same shape;
- ``"discrete"``: reads the flat codes ``(B, seq_len)`` as float32 integers in
  ``[0, vocab]`` (``vocab`` is the mask token of a masked source) and returns flat logits
  ``(B, seq_len * vocab)`` over the clean character at each position.

Each position becomes a token: a linear map of its one-hot (continuous) or an embedding of
its code (discrete), plus a learned position embedding plus an MLP of the sinusoidal time
embedding. Pre-norm encoder layers with GELU, a final LayerNorm and a linear head.

``rel_pos``: every attention head also adds a learned bias for the signed offset ``j - i``
between the attending position ``i`` and the attended ``j``. Measured before the prose task
began: on 64-character windows, learned absolute positions alone left a model near unigram
quality, and a bias that ignores the sign of the offset wrote mirrored text.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from wsfm.models.embedding import sinusoidal_embedding

__all__ = ["MODES", "SeqTransformer"]

MODES = ("continuous", "discrete")


class SeqTransformer(nn.Module):
    """``net(x (B, D), s (B,)) -> (B, seq_len * vocab)`` over ``seq_len`` positions.

    Args:
        dim: D, the flat input size: ``seq_len * vocab`` (continuous) or ``seq_len``
            (discrete).
        seq_len: number of positions.
        vocab: symbols per position (27: pad + a..z); the discrete input also accepts
            ``vocab`` itself, the mask token.
        d_model, n_layers, n_heads: encoder width, depth and heads.
        time_dim: size of the sinusoidal embedding of ``s`` (even).
        mode: ``"continuous"`` or ``"discrete"``.
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout inside the encoder layers.
        rel_pos: add a learned per-head bias on the signed offset to the attention scores.
    """

    def __init__(self, dim: int, seq_len: int = 12, vocab: int = 27, d_model: int = 128,
                 n_layers: int = 3, n_heads: int = 4, time_dim: int = 64,
                 mode: Literal["continuous", "discrete"] = "continuous", ff_mult: int = 4,
                 dropout: float = 0.0, rel_pos: bool = False) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {list(MODES)}")
        if min(seq_len, vocab, d_model, n_layers, n_heads, ff_mult) < 1:
            raise ValueError("seq_len, vocab, d_model, n_layers, n_heads and ff_mult must be "
                             ">= 1")
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if time_dim < 2 or time_dim % 2:
            raise ValueError(f"time_dim must be even and >= 2, got {time_dim!r}")
        expect = seq_len * vocab if mode == "continuous" else seq_len
        if dim != expect:
            raise ValueError(f"mode {mode!r} with seq_len={seq_len}, vocab={vocab} needs "
                             f"dim={expect}, got dim={dim}")
        self.dim, self.seq_len, self.vocab, self.mode = dim, seq_len, vocab, mode
        self.out_dim = seq_len * vocab
        self.time_dim = time_dim
        if mode == "continuous":
            self.inp: nn.Module = nn.Linear(vocab, d_model)
        else:
            self.inp = nn.Embedding(vocab + 1, d_model)  # + the mask token
        self.pos = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        self.time = nn.Sequential(nn.Linear(time_dim, d_model), nn.SiLU(),
                                  nn.Linear(d_model, d_model))
        if rel_pos:  # own layers: torch's encoder mishandles a per-head bias in eval mode
            self.encoder: nn.Module = _BiasedEncoder(d_model, n_heads, ff_mult, dropout,
                                                     n_layers)
        else:
            layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_mult * d_model, dropout,
                                               activation="gelu", batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.n_heads = n_heads
        self.rel_bias = nn.Parameter(torch.zeros(n_heads, 2 * seq_len - 1)) if rel_pos else None

    def _tokens(self, x: Tensor) -> Tensor:
        """Flat input (B, D) -> token embeddings (B, seq_len, d_model)."""
        if self.mode == "continuous":
            return self.inp(x.reshape(x.shape[0], self.seq_len, self.vocab))
        if x.dtype.is_floating_point:
            raise ValueError(f"discrete input must be long codes, got {x.dtype}")
        codes = x
        if codes.numel() and (codes.min() < 0 or codes.max() > self.vocab):
            raise ValueError(f"discrete input codes must lie in [0, {self.vocab}]")
        return self.inp(codes)

    def _attention_bias(self, dtype: torch.dtype) -> Tensor:
        """(heads, L, L) additive attention bias from the signed offsets ``j - i``."""
        assert self.rel_bias is not None
        idx = torch.arange(self.seq_len, device=self.rel_bias.device)
        offset = idx[None, :] - idx[:, None] + self.seq_len - 1  # (L, L): j - i, shifted
        return self.rel_bias[:, offset].to(dtype)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        """x (B, D), s (B,) or a scalar -> (B, seq_len * vocab): the velocity (continuous)
        or the logits of the clean character at each position (discrete)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        if s.dim() == 0:
            s = s.expand(x.shape[0])
        dtype = self.pos.dtype
        temb = self.time(sinusoidal_embedding(s, self.time_dim).to(dtype))  # (B, d_model)
        h = self._tokens(x.to(dtype) if self.mode == "continuous" else x)
        h = h + self.pos[None] + temb[:, None, :]  # (B, seq_len, d_model)
        if self.rel_bias is not None:
            h = self.norm(self.encoder(h, self._attention_bias(dtype)))
        else:
            h = self.norm(self.encoder(h))
        return self.head(h).reshape(x.shape[0], self.out_dim)  # (B, seq_len * vocab)


class _BiasedLayer(nn.Module):
    """A pre-norm encoder layer (as ``nn.TransformerEncoderLayer`` with ``norm_first``, GELU)
    whose attention scores get an additive per-head bias (heads, L, L)."""

    def __init__(self, d_model: int, n_heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(),
                                nn.Dropout(dropout), nn.Linear(ff_mult * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        b, length, d = h.shape
        q, k, v = (self.qkv(self.norm1(h)).reshape(b, length, 3, self.n_heads, -1)
                   .permute(2, 0, 3, 1, 4))  # 3 x (B, H, L, d_head)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None],
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.out(a.transpose(1, 2).reshape(b, length, d)))
        return h + self.drop(self.ff(self.norm2(h)))


class _BiasedEncoder(nn.Module):
    def __init__(self, d_model: int, n_heads: int, ff_mult: int, dropout: float,
                 n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_BiasedLayer(d_model, n_heads, ff_mult, dropout)
                                    for _ in range(n_layers))

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        for layer in self.layers:
            h = layer(h, bias)
        return h
