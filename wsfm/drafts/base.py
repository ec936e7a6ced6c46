"""The draft interface: a cheap generator that is fitted, sampled, saved and loaded.

A draft is saved as one ``.npz`` file of plain arrays (no pickle) holding a ``kind`` tag, so
that ``wsfm.drafts.load_draft`` can pick the class that reads it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

import numpy as np

__all__ = ["Draft", "SubstituteDraft", "read_kind"]


@runtime_checkable
class SubstituteDraft(Protocol):
    """A text draft that also draws substitutes on real text (teacher forcing): what
    ``flow.coupling: substitute`` trains on. The config names these kinds in
    ``wsfm.config.SUBSTITUTE_DRAFTS`` (tests check the two agree)."""

    def substitutes(self, x1: np.ndarray, seed: int) -> np.ndarray:
        """(N, L) int64: at each position a character drawn given the real characters of
        ``x1`` (N, L) before it."""
        ...


class Draft(ABC):
    """A fitted draft generator over vectors of size ``dim``.

    ``sample(n, seed)`` must be a pure function of the saved state and ``seed``: a loaded
    draft samples exactly what the fitted one did.
    """

    kind: ClassVar[str]  # registry name, stored in the saved file

    @abstractmethod
    def fit(self, data: np.ndarray) -> Self:
        """Fit to ``data`` (N, D); returns ``self``."""

    @abstractmethod
    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, D) samples, deterministic in ``seed``: float32 vectors, or int64 character
        codes for text drafts."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the fitted state to ``path`` (an ``.npz`` file, written as named)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> Self:
        """Read a draft written by ``save``."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """D, the size of one sample."""

    @property
    @abstractmethod
    def cost_per_sample(self) -> float:
        """Estimated floating-point operations to draw one sample (see each class)."""


def read_arrays(path: str | Path, kind: str) -> dict[str, np.ndarray]:
    """Every array of a saved draft file, after checking that it holds a draft of ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no draft file at {path}")
    with np.load(path, allow_pickle=False) as f:
        found = str(f["kind"]) if "kind" in f.files else None
        if found != kind:
            raise ValueError(f"{path} holds a draft of kind {found!r}, not {kind!r}")
        return {name: f[name] for name in f.files}


def read_kind(path: str | Path) -> str:
    """The ``kind`` tag stored in a saved draft file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no draft file at {path}")
    with np.load(path, allow_pickle=False) as f:
        if "kind" not in f.files:
            raise ValueError(f"{path} is not a saved draft: no 'kind' entry")
        return str(f["kind"])
