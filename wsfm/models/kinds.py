"""Model kinds: velocity networks by name."""

from __future__ import annotations

from torch import nn

from wsfm.models.mlp import MLPVelocity
from wsfm.models.transformer import SeqTransformer
from wsfm.models.unet import UNetLite
from wsfm.models.user import UserVelocity

__all__ = ["MODELS", "build_model"]

MODELS: dict[str, type[nn.Module]] = {"mlp": MLPVelocity, "unet": UNetLite,
                                      "transformer": SeqTransformer, "python": UserVelocity}


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Instantiate the network registered under ``name`` with ``kwargs``."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None
    return cls(**kwargs)
