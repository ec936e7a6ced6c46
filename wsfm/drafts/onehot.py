"""A word draft's samples as flat one-hot vectors: the draft of the continuous form of text.

The pipelines refine words in the discrete form (character codes). The continuous form, which
``benchmarks/words_form.py`` compares it with, flows on one-hot vectors
(``wsfm.data.text.one_hot_dataset``); :class:`OneHotDraft` wraps a fitted code draft (an
n-gram, a GRU) so that ``WarmStartSampler`` draws its drafts in that form.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from wsfm.data.words import VOCAB, from_one_hot, one_hot
from wsfm.drafts.base import Draft, read_arrays
from wsfm.drafts.gru import GRUDraft
from wsfm.drafts.ngram import CharNgramDraft

__all__ = ["CODE_DRAFTS", "OneHotDraft"]

_INNER = "inner."  # prefix of the wrapped draft's arrays in the saved file

# The drafts whose samples are character codes: what a one-hot draft can wrap. Named here, not
# looked up in wsfm.drafts.kinds, which lists OneHotDraft itself (no import circle).
CODE_DRAFTS: dict[str, type[Draft]] = {CharNgramDraft.kind: CharNgramDraft,
                                       GRUDraft.kind: GRUDraft}


class OneHotDraft(Draft):
    """``sample(n, seed)`` is ``one_hot(inner.sample(n, seed))``: (n, L * vocab) float32.

    Args:
        inner: a code draft (``sample`` returns (n, L) int64 codes in ``[0, vocab)``).
        vocab: symbols per position (27: pad + a..z).
    """

    kind: ClassVar[str] = "one_hot"

    def __init__(self, inner: Draft, vocab: int = VOCAB) -> None:
        self.inner, self.vocab = inner, int(vocab)

    def __repr__(self) -> str:
        return f"OneHotDraft({self.inner!r}, vocab={self.vocab})"

    def fit(self, data: np.ndarray) -> Self:
        """Fit the wrapped draft on ``data``: (N, L * vocab) one-hot rows (or scores: the
        argmax at each position is taken)."""
        self.inner.fit(from_one_hot(data, self.vocab))
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        return one_hot(self.inner.sample(n, seed), self.vocab)

    @property
    def dim(self) -> int:
        return self.inner.dim * self.vocab

    @property
    def cost_per_sample(self) -> float:
        return self.inner.cost_per_sample  # writing the one-hot rows is not counted

    def save(self, path: str | Path) -> None:
        """One ``.npz``: the wrapped draft's own arrays (``inner.``-prefixed) and the vocab."""
        with tempfile.TemporaryDirectory(prefix="wsfm-onehot-") as tmp:
            inner = Path(tmp) / "inner.npz"
            self.inner.save(inner)
            with np.load(inner, allow_pickle=False) as f:
                arrays: dict[str, Any] = {_INNER + name: f[name] for name in f.files}
        arrays.update(kind=np.array(self.kind), vocab=np.array(self.vocab))
        with open(path, "wb") as out:  # a file object keeps numpy from appending ".npz"
            np.savez(out, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a one-hot draft; the wrapped draft must be one of :data:`CODE_DRAFTS`."""
        f = read_arrays(path, cls.kind)
        inner_kind = str(f.get(_INNER + "kind"))
        if inner_kind not in CODE_DRAFTS:
            raise ValueError(f"{path}: a one-hot draft must wrap a code draft "
                             f"({sorted(CODE_DRAFTS)}), not one of kind {inner_kind!r}")
        with tempfile.TemporaryDirectory(prefix="wsfm-onehot-") as tmp:
            inner = Path(tmp) / "inner.npz"
            arrays: dict[str, Any] = {name[len(_INNER):]: a for name, a in f.items()
                                      if name.startswith(_INNER)}
            with open(inner, "wb") as out:
                np.savez(out, **arrays)
            return cls(CODE_DRAFTS[inner_kind].load(inner), int(f["vocab"]))
