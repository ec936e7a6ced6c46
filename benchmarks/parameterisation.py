"""Which parameterisation trains the warm refiner best? One run, every variant, same budget.

    .venv/bin/python -m benchmarks.parameterisation [--steps 2000] [--train-seeds 1]

Toy2d checkerboard, draft ``GMMDraft(4)`` widened by 0.2, minibatch-OT pairs, MLP 256x3. All
variants train on the *same* stream of pairs and times (precomputed once), from the same
initial weights, with the same optimiser and schedule; only what the network sees and what
it regresses on differ:

- ``a`` velocity in s-units ``x1 - x~``, input ``s`` (``WarmPath.sample(...).target``);
- ``b`` the t-velocity ``u = (x1 - x~) / (1 - t0)``, input absolute ``t`` (the naive choice);
- ``c`` the endpoint ``x1``, input ``s``; velocity ``(x1_hat - x) / (1 - s)`` (clamped);
- ``d`` velocity in s-units, input absolute ``t``.

- ``e`` as ``a`` with the network's output multiplied by a fixed 0.1 (the output scale that
  ``b`` gets implicitly from ``1 - t0``, but the same for every ``t0``);
- ``cold`` and ``cold x0.1``: the cold baseline (noise source, independent pairs, ``t0 = 0``)
  without and with that output scale, to see whether the effect is specific to warm starts.

Sampling goes through ``WarmStartSampler`` (Euler) with each variant wrapped to return an
s-velocity; quality is sliced Wasserstein-2 against 5,000 held-out points.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks.report import markdown_table, write_section
from wsfm.data.toy2d import make_toy2d
from wsfm.drafts import GMMDraft
from wsfm.flow import WarmPath, minibatch_ot
from wsfm.metrics import sliced_wasserstein
from wsfm.models import MLPVelocity
from wsfm.sampler import WarmStartSampler

T0S = (0.9, 0.96)
DRAFT_NOISE, H, N_EVAL, SEEDS = 0.2, 0.01, 5000, (10_000, 10_001, 10_002)
ENDPOINT_CLAMP = 1e-3  # floor on 1 - s when turning an endpoint into a velocity


@dataclass(frozen=True)
class Variant:
    label: str
    time: str  # "s" (rescaled) or "t" (absolute): the network's time input
    target: str  # "velocity_s", "velocity_t" or "endpoint"
    out_scale: float = 1.0  # prediction = out_scale * MLP(x, time)


VARIANTS = {
    "a": Variant("velocity x1-x~ (s-units), input s [current]", "s", "velocity_s"),
    "b": Variant("t-velocity (x1-x~)/(1-t0), input t [naive]", "t", "velocity_t"),
    "c": Variant("endpoint x1, input s", "s", "endpoint"),
    "d": Variant("velocity x1-x~ (s-units), input t", "t", "velocity_s"),
    "e": Variant("as a, output x 0.1", "s", "velocity_s", 0.1),
}
COLD = {"cold": Variant("cold: velocity x1-x0, input t", "s", "velocity_s"),
        "cold x0.1": Variant("cold, output x 0.1", "s", "velocity_s", 0.1)}


class AsSVelocity(nn.Module):
    """Wraps a trained net of any variant as ``v(x (B, D), s (B,)) -> (B, D)`` in s-units."""

    def __init__(self, net: MLPVelocity, variant: Variant, t0: float) -> None:
        super().__init__()
        self.net, self.variant, self.t0, self.dim = net, variant, t0, net.dim

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        t = self.t0 + s * (1.0 - self.t0)
        out = self.variant.out_scale * self.net(x, s if self.variant.time == "s" else t)
        if self.variant.target == "velocity_s":
            return out
        if self.variant.target == "velocity_t":
            return out * (1.0 - self.t0)
        return (out - x) / (1.0 - s).clamp(min=ENDPOINT_CLAMP)[:, None]


def make_stream(train: np.ndarray, draft: GMMDraft | None, steps: int, batch: int,
                seed: int) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``steps`` batches of (source (B, 2), paired data (B, 2), s (B,)): widened drafts with
    minibatch-OT pairs, or (``draft=None``) N(0, I) noise with independent pairs."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(train)
    drafts = None if draft is None else torch.from_numpy(draft.sample(steps * batch, seed + 1))
    widener = WarmPath(0.0, draft_noise=DRAFT_NOISE)
    stream = []
    for k in range(steps):
        x1 = data[torch.randint(len(data), (batch,), generator=gen)]
        if drafts is None:
            x0 = torch.randn(batch, 2, generator=gen)
        else:
            x0 = widener.widen(drafts[k * batch:(k + 1) * batch], generator=gen)
            x0, x1 = minibatch_ot(x0, x1)
        stream.append((x0, x1, torch.rand(batch, generator=gen)))
    return stream


def train(variant: Variant, t0: float, stream: list, seed: int, lr: float = 2e-3,
          warmup: int = 100) -> MLPVelocity:
    """Train one network of ``variant`` on ``stream`` (lists of (x0, x1, s) batches)."""
    torch.manual_seed(seed)
    net = MLPVelocity(2, hidden=256, depth=3, time_dim=32)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    n = len(stream)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warmup) * (
        0.1 + 0.45 * (1 + np.cos(np.pi * min(1.0, k / n)))))
    for x0, x1, s in stream:
        x_t = (1 - s[:, None]) * x0 + s[:, None] * x1
        t = t0 + (1.0 - t0) * s
        out = variant.out_scale * net(x_t, s if variant.time == "s" else t)
        target = {"velocity_s": x1 - x0, "velocity_t": (x1 - x0) / (1.0 - t0),
                  "endpoint": x1}[variant.target]
        loss = torch.mean((out - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def scores(draw, test: np.ndarray) -> list[float]:
    """SWD of ``draw(seed)`` against ``test`` for each sampling seed."""
    return [sliced_wasserstein(draw(seed), test, seed=0) for seed in SEEDS]


def evaluate(var: Variant, t0: float, net: MLPVelocity, draft: GMMDraft | None,
             test: np.ndarray) -> list[list[float]]:
    """Scores at the cold step h (100, 10 or 4 NFE), at NFE 2 and at NFE 1."""
    sampler = WarmStartSampler(draft, AsSVelocity(net, var, t0), t0, "euler", step_size=H,
                               draft_noise=0.0 if draft is None else DRAFT_NOISE)
    return [scores(lambda s: sampler.sample(N_EVAL, s, steps=n)[0], test) for n in (None, 2, 1)]


def run(steps: int, batch: int, train_seeds: int) -> tuple[list[list], dict[str, float]]:
    torch.set_num_threads(1)  # shared, busy cores: one thread is fastest and repeatable
    train_set = make_toy2d("checkerboard", 50_000, seed=0)
    test = make_toy2d("checkerboard", N_EVAL, seed=1)
    draft = GMMDraft(4, seed=0).fit(train_set)
    ref = {"data": statistics.fmean(scores(lambda s: make_toy2d("checkerboard", N_EVAL, s),
                                           test)),
           "draft": statistics.fmean(scores(lambda s: draft.sample(N_EVAL, s), test))}
    jobs = [(k, v, t0, True) for t0 in T0S for k, v in VARIANTS.items()]
    jobs += [(k, v, 0.0, False) for k, v in COLD.items()]
    results: dict[int, list] = {i: [] for i in range(len(jobs))}  # per job: per train seed
    for ts in range(train_seeds):
        streams = {True: make_stream(train_set, draft, steps, batch, seed=100 + ts),
                   False: make_stream(train_set, None, steps, batch, seed=200 + ts)}
        for i, (key, var, t0, warm) in enumerate(jobs):
            start = time.perf_counter()
            net = train(var, t0, streams[warm], seed=ts)
            results[i].append(evaluate(var, t0, net, draft if warm else None, test))
            means = [round(statistics.fmean(q), 4) for q in results[i][-1]]
            print(f"seed {ts} {key} t0={t0}: {means} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    rows = []
    for i, (key, var, t0, _) in enumerate(jobs):
        per_nfe = [[q for seed_res in results[i] for q in seed_res[j]] for j in range(3)]
        cells = [f"{statistics.fmean(q):.4f} ± {statistics.pstdev(q):.4f}" for q in per_nfe]
        by_seed = " / ".join(f"{statistics.fmean(r[0]):.3f}" for r in results[i])
        nfe = math.ceil((1 - t0) / H - 1e-9)
        rows.append([key, var.label, t0, nfe, *cells, by_seed])
    return rows, ref


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--train-seeds", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = p.parse_args()
    start = time.perf_counter()
    rows, ref = run(args.steps, args.batch, args.train_seeds)
    header = ["", "variant", "t0", "NFE at h=0.01", "SWD at h=0.01", "SWD at NFE 2",
              "SWD at NFE 1", "h=0.01 per train seed"]
    table = markdown_table(header, rows)
    print(table)
    print(ref, f"total {time.perf_counter() - start:.0f} s")
    if args.no_write:
        return
    body = (f"Toy2d checkerboard. MLP 256x3, {args.steps} AdamW steps (lr 2e-3, no weight "
            f"decay, warm-up 100, cosine to 10%), batch {args.batch}, one torch thread. Warm: "
            f"draft GMM-4 + noise {DRAFT_NOISE}, minibatch OT; cold: N(0, I), independent "
            f"pairs. Every warm variant trains on the same pairs and times from the same "
            f"initial weights (the cold rows share theirs). Euler through `WarmStartSampler`; "
            f"SWD (256 projections) of {N_EVAL} samples against {N_EVAL} held-out points, mean "
            f"± std over {args.train_seeds} training seed(s) x 3 sampling seeds; the last "
            f"column has the mean per training seed. Reference: held-out data "
            f"{ref['data']:.4f}, the draft {ref['draft']:.4f}; lower is better."
            f"\n\n{table}\n\n{CONCLUSION}")
    write_section("parameterisation", "Parameterisation of the warm refiner (toy2d)",
                  ".venv/bin/python -m benchmarks.parameterisation" + (
                      f" --train-seeds {args.train_seeds}" if args.train_seeds != 1 else ""),
                  body)


CONCLUSION = """\
**Conclusion.** The time input does not matter: input `s` (a) and absolute `t` (d) give the
same quality. The target's scale does: the "naive" t-velocity (b), 1/(1 - t0) times larger,
trains a clearly better refiner than the s-unit velocity (a) at both t0, and (e) shows that
this is an output-scale effect, not a virtue of t-units: multiplying the network's output by
a fixed 0.1, so that the network regresses a 10x larger version of the same O(1), t0-free
target, matches (b) at both t0. The same output scale leaves the cold baseline at 100 NFE
unchanged within its spread, so it can serve both models without tilting the comparison.
Endpoint prediction (c) is the worst, at about the draft's own SWD: its velocity divides by
1 - s and its loss down-weights late times. Choice: keep the velocity in s-units with input
`s` (`WarmPath`'s target), and scale the network's output (0.1 here) for cold and warm
alike; endpoint prediction is not added."""

if __name__ == "__main__":
    main()
