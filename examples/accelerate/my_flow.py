"""A flow-matching model trained outside WS-FM, by its own loop: the user's side of
`examples/accelerate` (README, "Accelerate a model you already have").

The network follows the convention of flow_matching and TorchCFM: forward(x, t) with x (B, D)
or (B, C, H, W), t (B,) in [0, 1], noise at 0 and data at 1, returning the velocity dx/dt.
Nothing here imports WS-FM except the data generator, so that the model learns the checkerboard
that `accelerate.yaml` refines towards (`benchmarks/accelerate.py` passes other data in).

    python my_flow.py --steps 3000 --out my_flow.pt
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn


class VelocityMLP(nn.Module):
    """v(x, t): an MLP on x (flattened, so that images of ``dim`` values work too) and a
    sinusoidal embedding of t."""

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 3, freqs: int = 16):
        super().__init__()
        self.freqs = freqs
        layers: list[nn.Module] = [nn.Linear(dim + 2 * freqs, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.freqs, dtype=x.dtype, device=x.device)
        angles = t[:, None] * (2.0 ** k)[None] * math.pi
        h = torch.cat([x.flatten(1), angles.sin(), angles.cos()], dim=1)
        return self.body(h).view(x.shape)


def train(steps: int, batch: int = 512, seed: int = 0, data: torch.Tensor | None = None,
          lr: float = 2e-3, **net_kwargs: int) -> VelocityMLP:
    """Conditional flow matching from N(0, I) with independent pairs: the plain recipe.
    ``data`` (N, D): what to learn (default: the pipeline's checkerboard)."""
    torch.manual_seed(seed)
    if data is None:
        from wsfm.data.toy2d import make_toy2d  # the same checkerboard as the pipeline's data

        data = torch.from_numpy(make_toy2d("checkerboard", 50_000, seed=seed))
    net = VelocityMLP(dim=data.shape[1], **net_kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        x1 = data[torch.randint(len(data), (batch,))]
        x0, t = torch.randn_like(x1), torch.rand(batch)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = ((net(xt, t) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default="my_flow.pt")
    args = parser.parse_args()
    torch.save(train(args.steps).state_dict(), args.out)
    print(f"wrote {args.out}")
