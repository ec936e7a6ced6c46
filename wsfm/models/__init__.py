"""Velocity networks ``net(x (B, D), s (B,)) -> (B, D)``, by name in ``MODELS``.

- ``mlp`` (``MLPVelocity``): vectors (toy2d; digits as flat 64-vectors).
- ``unet`` (``UNetLite``): small images stored flat; one down/up level with a skip.
- ``python`` (``UserVelocity``): a user's own ``nn.Module`` (``forward(x, t)`` on the data's
  shape, on the user's clock), by import path (``wsfm.models.user``).

Left out, and why: TorchCFM and facebookresearch/flow_matching ship the guided-diffusion
U-Net (several resolutions, self-attention, dropout) and, in flow_matching's examples, a DiT
and discrete-flow Transformers. At 8x8 pixels one down-sampling step leaves 4x4 maps, where
attention and more levels buy little and cost CPU time; the text task brings its own small
Transformer. Neither an EMA of the weights nor classifier-free guidance is here yet: the
tasks are unconditional and the training budgets short.
"""

from wsfm.models.embedding import sinusoidal_embedding
from wsfm.models.kinds import MODELS, build_model
from wsfm.models.mlp import MLPVelocity
from wsfm.models.unet import UNetLite

__all__ = ["MLPVelocity", "MODELS", "UNetLite", "build_model", "sinusoidal_embedding"]
