"""Draft kinds: draft classes by name, and loading a saved draft by its kind tag."""

from __future__ import annotations

from pathlib import Path

from wsfm.drafts.base import Draft, read_kind
from wsfm.drafts.gmm import GMMDraft
from wsfm.drafts.gru import GRUDraft
from wsfm.drafts.ngram import CharNgramDraft
from wsfm.drafts.onehot import OneHotDraft
from wsfm.drafts.pca_gmm import PCAGMMDraft
from wsfm.drafts.vae import VAEDraft
from wsfm.drafts.window_gru import WindowGRUDraft
from wsfm.drafts.window_ngram import WindowNgramDraft

__all__ = ["DRAFTS", "get_draft", "load_draft"]

DRAFTS: dict[str, type[Draft]] = {
    GMMDraft.kind: GMMDraft,
    PCAGMMDraft.kind: PCAGMMDraft,
    VAEDraft.kind: VAEDraft,
    CharNgramDraft.kind: CharNgramDraft,
    GRUDraft.kind: GRUDraft,
    WindowNgramDraft.kind: WindowNgramDraft,
    WindowGRUDraft.kind: WindowGRUDraft,
    OneHotDraft.kind: OneHotDraft,  # wraps one of the above: not a config kind
}


def get_draft(name: str) -> type[Draft]:
    """The draft class registered under ``name`` (call it with its parameters)."""
    try:
        return DRAFTS[name]
    except KeyError:
        raise ValueError(f"unknown draft {name!r}; known: {sorted(DRAFTS)}") from None


def load_draft(path: str | Path) -> Draft:
    """Load a draft saved by any registered class, chosen by the file's ``kind`` tag."""
    kind = read_kind(path)
    if kind not in DRAFTS:
        raise ValueError(f"{path} holds a draft of unknown kind {kind!r}; known: {sorted(DRAFTS)}")
    return DRAFTS[kind].load(path)
