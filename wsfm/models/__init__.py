"""Velocity networks ``net(x, s)``."""

from wsfm.models.embedding import sinusoidal_embedding
from wsfm.models.mlp import MLPVelocity
from wsfm.models.registry import MODELS, build_model

__all__ = ["MLPVelocity", "MODELS", "build_model", "sinusoidal_embedding"]
