"""A model bundle: draft + refiner weights + the sampler settings, in one folder.

The bundle is what ``register`` ships and what the MLflow pyfunc model loads::

    draft.npz      the draft generator (``wsfm.drafts.load_draft``)
    refiner.pt     the refiner's fp32 state dict
    sampler.json   t0, solver method, step size, draft noise, network config and D
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from wsfm.drafts import load_draft
from wsfm.models import build_model
from wsfm.sampler import DiscreteWarmStartSampler, WarmStartSampler

__all__ = ["SamplerSettings", "load_bundle", "load_net", "write_bundle"]


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


def load_bundle(folder: str | Path) -> WarmStartSampler:
    folder = Path(folder)
    for name in ("draft.npz", "refiner.pt", "sampler.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"model bundle {folder} lacks {name}")
    s = SamplerSettings(**json.loads((folder / "sampler.json").read_text()))
    net = load_net(s.model, s.dim, folder / "refiner.pt")
    draft = load_draft(folder / "draft.npz")
    if s.form == "discrete":
        return DiscreteWarmStartSampler(draft, net, s.t0, s.step_size, seq_len=s.model["seq_len"],
                                        mask_id=s.model["vocab"], exponent=s.exponent,
                                        temperature=s.temperature)
    return WarmStartSampler(draft, net, s.t0, method=s.method, step_size=s.step_size,
                            draft_noise=s.draft_noise)
