"""A model bundle: draft + refiner weights + the sampler settings, in one folder.

The bundle is what ``register`` ships and what the MLflow pyfunc model loads::

    draft.npz      the draft generator (``wsfm.drafts.load_draft``)
    refiner.pt     the refiner's fp32 state dict
    sampler.json   t0, solver method, step size, draft noise, network config, D and what one
                   sample is (``kind``: a vector, an image of ``shape`` (C, H, W), or text
                   codes over ``alphabet``)

:class:`BundleModel` draws from a bundle with per-request overrides and returns samples in
their natural form: (n, D) arrays for vectors, (n, C, H, W) arrays for images, strings for text.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wsfm.drafts import Draft, load_draft
from wsfm.models import build_model
from wsfm.sampler import DiscreteWarmStartSampler, WarmStartSampler, build_sampler

__all__ = ["KINDS", "BundleModel", "SamplerSettings", "bundle_sampler", "decode_text",
           "load_bundle", "load_net", "read_settings", "write_bundle"]

KINDS = ("vector", "image", "text")


@dataclass(frozen=True)
class SamplerSettings:
    t0: float
    method: str
    step_size: float
    draft_noise: float
    dim: int
    model: dict  # the network spec: wsfm.components.net_spec
    form: str = "continuous"  # or "discrete": character codes, CTMC jump sampler
    exponent: float = 1.0  # discrete: kappa(s) = s ** exponent
    temperature: float = 1.0  # discrete: softmax temperature of the jumps
    kind: str = "vector"  # what one sample is: one of KINDS
    shape: tuple[int, ...] = ()  # image: (C, H, W) with C*H*W == dim
    alphabet: str = ""  # text: the characters of codes 1.., code 0 is the pad
    remask: float = 0.0  # discrete: > 0 runs the remasking sampler from the draft

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sampler settings: unknown kind {self.kind!r}; known: {KINDS}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.kind == "image" and (len(self.shape) != 3
                                     or int(np.prod(self.shape)) != self.dim):
            raise ValueError(f"sampler settings: image shape {self.shape} does not hold "
                             f"dim={self.dim} values as (C, H, W)")
        if self.kind == "text" and (self.form != "discrete" or not self.alphabet):
            raise ValueError("sampler settings: text needs form='discrete' and an alphabet")


def load_net(spec: dict, dim: int, weights: str | Path) -> nn.Module:
    """Build the network of ``spec`` (``wsfm.components.net_spec``) and load fp32 weights
    (plain PyTorch: no DeepSpeed needed)."""
    cfg = dict(spec)
    kind = cfg.pop("kind")
    net = build_model(kind, dim=dim, **cfg)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def write_bundle(out: Path, draft_file: Path, weights: Path, settings: SamplerSettings) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(draft_file, out / "draft.npz")
    shutil.copyfile(weights, out / "refiner.pt")
    (out / "sampler.json").write_text(json.dumps(asdict(settings), indent=2))
    return out


def read_settings(folder: str | Path) -> SamplerSettings:
    """The bundle's ``sampler.json`` (checked: a file of another layout is named)."""
    path = Path(folder) / "sampler.json"
    if not path.is_file():
        raise FileNotFoundError(f"model bundle {folder} lacks sampler.json")
    fields = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(SamplerSettings)}
    if set(fields) - known:
        raise ValueError(f"{path}: unknown keys {sorted(set(fields) - known)}")
    return SamplerSettings(**fields)


def load_bundle(folder: str | Path) -> WarmStartSampler | DiscreteWarmStartSampler:
    folder = Path(folder)
    for name in ("draft.npz", "refiner.pt", "sampler.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"model bundle {folder} lacks {name}")
    s = read_settings(folder)
    return bundle_sampler(s, load_draft(folder / "draft.npz"),
                          load_net(s.model, s.dim, folder / "refiner.pt"))


def bundle_sampler(s: SamplerSettings, draft: Draft | None,
                   net: nn.Module) -> WarmStartSampler | DiscreteWarmStartSampler:
    """The sampler that ``s`` describes, built by ``wsfm.sampler.build_sampler``, the factory
    that evaluation's ``wsfm.components.make_sampler`` uses too: what was measured is what
    is shipped. Text codes: L is the network's ``seq_len`` and the mask id its ``vocab`` (one
    past the codes, as ``wsfm.data.base.TextInfo.mask_id``)."""
    codes = (s.model["seq_len"], s.model["vocab"]) if s.form == "discrete" else None
    return build_sampler(draft, net, s.t0, step_size=s.step_size, dim=s.dim, codes=codes,
                         method=s.method, draft_noise=s.draft_noise, exponent=s.exponent,
                         temperature=s.temperature, remask=s.remask)


def decode_text(codes: np.ndarray, alphabet: str) -> list[str]:
    """(n, L) integer codes -> n strings: code k >= 1 is ``alphabet[k - 1]``; each string
    stops at its first pad (code 0)."""
    out = []
    for row in np.asarray(codes, dtype=np.int64):
        chars = []
        for code in row:
            if code == 0:
                break
            if not 1 <= code <= len(alphabet):
                raise ValueError(f"code {code} lies outside the alphabet of {len(alphabet)}")
            chars.append(alphabet[code - 1])
        out.append("".join(chars))
    return out


class BundleModel:
    """A loaded bundle that samples with per-request overrides of ``t0``, ``steps`` and
    ``method`` (the sampler is rebuilt for an override; the draft and network are shared)."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.sampler = load_bundle(folder)  # checks the files
        self.settings = read_settings(folder)
        self._draft, self._net = self.sampler.draft, self.sampler.refiner

    def sample(self, n: int, seed: int, *, t0: float | None = None, steps: int | None = None,
               method: str | None = None) -> np.ndarray | list[str]:
        """(n, D) float32 for vectors, (n, C, H, W) float32 for images, n strings for text."""
        s = self.settings
        if method is not None and s.form == "discrete":
            raise ValueError(f"method={method!r}: a text model samples by jumps, it has no "
                             "ODE method to choose")
        changes: dict[str, Any] = {k: v for k, v in (("t0", t0), ("method", method))
                                   if v is not None}
        sampler = (bundle_sampler(dataclasses.replace(s, **changes), self._draft, self._net)
                   if changes else self.sampler)
        x, _ = sampler.sample(int(n), int(seed), steps=steps)
        if s.kind == "image":
            return x.reshape(len(x), *s.shape)
        if s.kind == "text":
            return decode_text(x, s.alphabet)
        return x
