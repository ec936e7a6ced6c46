"""Small untrained bundles of each kind (vector, image, text) for model and registry tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wsfm.bundle import SamplerSettings, write_bundle
from wsfm.data.words import ALPHABET
from wsfm.drafts import CharNgramDraft, GMMDraft
from wsfm.models import build_model

WORDS = ["cat", "dog", "bird", "fish", "horse", "mouse", "cow", "pig", "goat", "duck"]
SEQ_LEN = 6


def make_bundle(kind: str, out: Path, seed: int = 0) -> Path:
    """An untrained bundle of ``kind``: a fitted draft and a freshly initialised network."""
    work = out.parent / f"{out.name}-parts"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if kind == "text":
        draft = CharNgramDraft(order=2, alpha=0.1, seed=seed).fit(WORDS)
        spec = {"kind": "transformer", "d_model": 16, "n_layers": 1, "n_heads": 2,
                "time_dim": 8, "seq_len": draft.dim, "vocab": len(ALPHABET) + 1,
                "mode": "discrete"}
        extra = {"form": "discrete", "kind": "text", "alphabet": ALPHABET}
    else:
        dim, shape = (2, ()) if kind == "vector" else (16, (1, 4, 4))
        draft = GMMDraft(n_components=2, seed=seed).fit(
            np.clip(rng.normal(size=(400, dim)), -1, 1).astype(np.float32))
        spec = {"kind": "mlp", "hidden": 16, "depth": 2, "time_dim": 8, "out_scale": 1.0}
        extra = {"kind": kind, "shape": shape}
    net = build_model(spec["kind"], dim=draft.dim,
                      **{k: v for k, v in spec.items() if k != "kind"})
    draft.save(work / "draft.npz")
    torch.save(net.state_dict(), work / "model.pt")
    settings = SamplerSettings(t0=0.8, method="euler", step_size=0.1, draft_noise=0.05,
                               dim=draft.dim, model=spec, **extra)
    return write_bundle(out, work / "draft.npz", work / "model.pt", settings)
