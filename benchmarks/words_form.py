"""Words: continuous (one-hot) or discrete (mixture path) WS-FM? Measured in one run.

Every flow model is the same ``SeqTransformer`` size, trained with the same steps, batch and
learning-rate schedule, single-process plain PyTorch (no Ray, no DeepSpeed). Rows:

- ``draft``: the draft alone (NFE 0);
- ``cold``: noise (continuous) or all-mask (discrete) source, N steps (``--cold-nfe``);
- ``warm``: drafts at ``t0`` with the cold step ``h = 1/100`` (t0 0.9: 10 NFE, 0.96: 4 NFE).
  Pairing: ``ot`` (minibatch OT: squared L2 on one-hot / Hamming on codes: the same cost up to
  a factor 2), ``ind`` (independent), ``nearest`` (each draft with its Hamming-nearest
  training word, which on one-hot vectors is also the L2-nearest).

Discrete samplers are named ``FINAL@TEMPERATURE``: the jump distribution is
``softmax(logits / TEMPERATURE)`` and the last step takes a draw (``sample``) or the most
likely character (``argmax``); the same samplers are applied to cold and warm models.

Quality: ``wsfm.metrics.text.text_metrics`` on ``--samples`` words for each of ``--seeds``
sampling seeds (mean ± standard deviation). The reference 5-gram LM is fitted on the held-out
words; the length weights are the training words' length histogram.

Run: ``.venv/bin/python -m benchmarks.words_form`` (``--help`` for the budget).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.report import markdown_table, write_section
from wsfm.data.words import VOCAB, WordsData, decode, from_one_hot, load_words, one_hot
from wsfm.drafts import Draft
from wsfm.drafts.gru import GRUDraft
from wsfm.drafts.ngram import CharNgramDraft
from wsfm.flow import ColdPath, WarmPath, integrate, minibatch_ot
from wsfm.flow.discrete import (
    MixturePath,
    discrete_fm_loss,
    hamming_nearest,
    hamming_ot,
    jump_sample,
    mask_source,
)
from wsfm.metrics.text import CharNgramLM, text_metrics
from wsfm.models.transformer import SeqTransformer

MASK = VOCAB  # the discrete cold source's mask token
H = 0.01  # the cold run's step: N = 100
KEYS = ("valid_rate_std", "valid_rate", "novel_valid_rate", "nll_per_char", "length_tv")
Sampler = Callable[[int, int], tuple[np.ndarray, int]]  # (n, seed) -> ((n, L) codes, NFE)


@dataclass
class Setup:
    """What every row of one run shares."""

    data: WordsData
    x1: Tensor  # (N, L) long training codes
    lm: CharNgramLM
    ref_lengths: list[int]
    args: argparse.Namespace


@dataclass
class Row:
    method: str
    form: str
    variant: str
    sampler: str
    t0: float
    nfe: int
    metrics: dict[str, tuple[float, float]]  # key -> (mean, std over seeds)
    sec_per_1k: float
    train_s: float = 0.0


def make_draft(name: str, train_codes: np.ndarray) -> Draft:
    if name.startswith("ngram"):
        return CharNgramDraft(order=int(name[5:] or 2)).fit(train_codes)
    if name.startswith("gru"):
        return GRUDraft(hidden=int(name[3:] or 64), steps=800, seed=0).fit(train_codes)
    raise ValueError(f"unknown draft {name!r}")


def evaluate(setup: Setup, sample: Sampler) -> tuple[dict, float, int]:
    """Metrics (mean, std over seeds), seconds per 1,000 samples, NFE."""
    a = setup.args
    per_seed, secs, nfe = [], 0.0, 0
    for seed in range(a.seeds):
        t = time.perf_counter()
        codes, nfe = sample(a.samples, 1000 + seed)
        secs += time.perf_counter() - t
        per_seed.append(text_metrics(decode(codes), set(setup.data.train), setup.data.valid,
                                     setup.ref_lengths, setup.lm))
    out = {k: (statistics.fmean(m[k] for m in per_seed),
               statistics.pstdev([m[k] for m in per_seed])) for k in KEYS}
    return out, 1000 * secs / (a.seeds * a.samples), nfe


def train(net: torch.nn.Module, loss_fn: Callable[[Tensor, torch.Generator], Tensor],
          setup: Setup) -> float:
    """AdamW, linear warm-up then cosine decay; loss_fn(x1 batch (B, L), gen) -> loss."""
    a = setup.args
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    warm = max(1, a.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (
        1 + math.cos(math.pi * min(i, a.steps) / a.steps)))
    net.train()
    t, recent = time.perf_counter(), []
    for step in range(1, a.steps + 1):
        idx = torch.randint(len(setup.x1), (a.batch,), generator=gen)
        loss = loss_fn(setup.x1[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        recent = (recent + [loss.item()])[-50:]
        if step % max(1, a.steps // 4) == 0:
            print(f"    step {step}: loss {statistics.fmean(recent):.3f}, "
                  f"{time.perf_counter() - t:.0f}s", flush=True)
    net.eval()
    return time.perf_counter() - t


def new_net(setup: Setup, mode: str) -> SeqTransformer:
    a = setup.args
    torch.manual_seed(0)
    dim = setup.x1.shape[1] * (VOCAB if mode == "continuous" else 1)
    return SeqTransformer(dim, seq_len=setup.x1.shape[1], vocab=VOCAB, d_model=a.d_model,
                          n_layers=a.n_layers, n_heads=a.n_heads, time_dim=64, mode=mode)


def trained(setup: Setup, mode: str, name: str,
            loss_of: Callable[[SeqTransformer], Callable]) -> tuple[SeqTransformer, float]:
    """A trained network, from ``--cache`` when the same budget was trained before."""
    a = setup.args
    net = new_net(setup, mode)
    key = (f"{mode}-{name}-n{a.top_n}-s{a.steps}-b{a.batch}-lr{a.lr}-d{a.d_model}"
           f"-l{a.n_layers}-ls{a.label_smoothing}-z{a.noise}.pt")
    path = Path(a.cache) / key if a.cache else None
    if path is not None and path.is_file():
        state = torch.load(path)
        net.load_state_dict(state["net"])
        return net.eval(), float(state["secs"])
    secs = train(net, loss_of(net), setup)
    print(f"  {mode}/{name}: trained in {secs:.0f}s", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"net": net.state_dict(), "secs": secs}, path)
    return net, secs


def nearest_targets(setup: Setup, pool: Tensor) -> Tensor:
    """(P, L) the Hamming-nearest training word of each pooled draft, paired once (as the
    draft-generation stage would store it); on one-hot vectors this is the L2-nearest."""
    t = time.perf_counter()
    targets = hamming_nearest(pool, setup.x1)[1]
    print(f"  nearest training words of {len(pool)} drafts: {time.perf_counter() - t:.0f}s")
    return targets


def pick(pool: Tensor, b: int, gen: torch.Generator) -> Tensor:
    return pool[torch.randint(len(pool), (b,), generator=gen)]


def _oh(codes: Tensor) -> Tensor:
    return torch.from_numpy(one_hot(codes.numpy()))  # (B, L) -> (B, L * 27)


# --- continuous form: one-hot, widened drafts, argmax decode -------------------------------

def continuous_rows(setup: Setup, draft: Draft | None, pool: Tensor | None, dname: str,
                    variant: str) -> list[Row]:
    a, rows = setup.args, []
    cold = draft is None
    path = ColdPath() if cold else WarmPath(0.9, draft_noise=a.noise)
    couple = minibatch_ot if variant == "ot" else (lambda x0, x1: (x0, x1))
    targets = nearest_targets(setup, pool) if variant == "nearest" else None

    def loss_of(net: SeqTransformer) -> Callable:
        def loss_fn(x1: Tensor, gen: torch.Generator) -> Tensor:
            if cold:
                x1 = _oh(x1)
                x0 = torch.randn(x1.shape, generator=gen)
            elif targets is not None:
                idx = torch.randint(len(pool), (len(x1),), generator=gen)
                x0, x1 = _oh(pool[idx]), _oh(targets[idx])
            else:
                x0, x1 = couple(_oh(pick(pool, len(x1), gen)), _oh(x1))
            ps = path.sample(x0, x1, path.sample_t(len(x1), gen), gen)
            return (net(ps.x_t, ps.s) - ps.target).pow(2).mean()
        return loss_fn

    net, secs = trained(setup, "continuous", f"{dname}-{variant}", loss_of)
    grid = [(0.0, n) for n in a.cold_nfe] if cold else [(t0, 0) for t0 in a.t0s]
    for t0, n in grid:
        wp = WarmPath(t0, draft_noise=a.noise)

        def sample(n_: int, seed: int, t0=t0, n=n, wp=wp) -> tuple[np.ndarray, int]:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                if cold:
                    res = integrate(net, torch.randn((n_, net.dim), generator=gen), 0.0, 1.0,
                                    steps=n)
                else:
                    x = wp.widen(_oh(torch.from_numpy(draft.sample(n_, seed)).long()), gen)
                    res = integrate(lambda x_, t_: wp.to_velocity(net(x_, wp.to_s(t_))), x,
                                    t0, 1.0, step_size=H)
            return from_one_hot(res.x.numpy()), res.nfe

        m, spk, nfe = evaluate(setup, sample)
        rows.append(Row("cold" if cold else "warm", "continuous",
                        "noise" if cold else f"{dname} / {variant}", "argmax", t0, nfe, m,
                        spk, secs))
    return rows


# --- discrete form: mixture path, CTMC jumps ------------------------------------------------

def discrete_rows(setup: Setup, draft: Draft | None, pool: Tensor | None, dname: str,
                  variant: str) -> list[Row]:
    a, rows = setup.args, []
    cold = draft is None
    path = MixturePath(0.0 if cold else 0.9)
    couple = {"ot": hamming_ot, "ind": lambda x0, x1: (x0, x1)}.get(variant)
    targets = nearest_targets(setup, pool) if variant == "nearest" else None

    def loss_of(net: SeqTransformer) -> Callable:
        def loss_fn(x1: Tensor, gen: torch.Generator) -> Tensor:
            if cold:
                x0 = mask_source(len(x1), x1.shape[1], MASK)
            elif targets is not None:
                idx = torch.randint(len(pool), (len(x1),), generator=gen)
                x0, x1 = pool[idx], targets[idx]
            else:
                x0, x1 = couple(pick(pool, len(x1), gen), x1)
            return discrete_fm_loss(net, path, x0, x1, gen, corrupted_only=cold,
                                    label_smoothing=a.label_smoothing)
        return loss_fn

    net, secs = trained(setup, "discrete", f"{dname}-{variant}", loss_of)
    grid = [(0.0, n) for n in a.cold_nfe] if cold else [(t0, 0) for t0 in a.t0s]
    for spec in a.samplers:
        final, temp = spec.split("@")
        for t0, n in grid:
            p = MixturePath(t0)

            def sample(n_: int, seed: int, n=n, p=p, final=final,
                       temp=temp) -> tuple[np.ndarray, int]:
                gen = torch.Generator().manual_seed(seed)
                if cold:
                    x, kw = mask_source(n_, setup.x1.shape[1], MASK), {"steps": n}
                else:
                    x, kw = torch.from_numpy(draft.sample(n_, seed)).long(), {"step_size": H}
                with torch.no_grad():
                    res = jump_sample(net, x, p, generator=gen, final=final,
                                      temperature=float(temp),
                                      mask_id=MASK if cold else None, **kw)
                return res.x.numpy(), res.nfe

            m, spk, nfe = evaluate(setup, sample)
            rows.append(Row("cold" if cold else "warm", "discrete",
                            "mask" if cold else f"{dname} / {variant}", spec, t0, nfe, m,
                            spk, secs))
    return rows


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top-n", type=int, default=5000)
    p.add_argument("--drafts", default="ngram2,ngram3,ngram4",
                   help="comma list of drafts to fit and show: ngram2, ngram3, gru64, ...")
    p.add_argument("--runs", default="discrete:cold,discrete:ngram3:nearest,continuous:cold,"
                   "continuous:ngram3:nearest",
                   help="comma list of trained networks: FORM:cold or FORM:DRAFT:PAIRING "
                   "(pairing ot, ind or nearest)")
    p.add_argument("--pool", type=int, default=100_000, help="drafts drawn for training")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--noise", type=float, default=0.5, help="continuous draft widening")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--samplers", default="sample@1,argmax@0.5",
                   help="discrete: FINAL@TEMPERATURE list")
    p.add_argument("--cold-nfe", default="100,10,4,2,1")
    p.add_argument("--t0s", default="0.9,0.96,0.98,0.99", help="warm starts (NFE 10, 4, 2, 1)")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="", help="folder for trained networks (reused)")
    p.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    p.add_argument("--notes", default="", help="markdown file appended to the section")
    a = p.parse_args(argv)
    a.cold_nfe = [int(v) for v in a.cold_nfe.split(",")]
    a.t0s = [float(v) for v in a.t0s.split(",")]
    a.samplers = a.samplers.split(",")
    a.drafts = a.drafts.split(",")
    a.runs = a.runs.split(",")
    return a


def _fmt(m: tuple[float, float], pct: bool = True) -> str:
    return f"{100 * m[0]:.1f} ± {100 * m[1]:.1f}" if pct else f"{m[0]:.2f} ± {m[1]:.2f}"


def table(rows: list[Row]) -> str:
    header = ["method", "form", "source / pairing", "sampler", "t0", "NFE",
              "valid std % (primary)", "valid %", "novel valid %", "NLL/char", "length TV",
              "s / 1k", "train s"]
    body = [[r.method, r.form, r.variant, r.sampler, r.t0, r.nfe,
             _fmt(r.metrics["valid_rate_std"]), _fmt(r.metrics["valid_rate"]),
             _fmt(r.metrics["novel_valid_rate"]), _fmt(r.metrics["nll_per_char"], False),
             _fmt(r.metrics["length_tv"], False), round(r.sec_per_1k, 2), round(r.train_s)]
            for r in rows]
    return markdown_table(header, body)


def verdicts(rows: list[Row]) -> str:
    """One line per warm row at the largest ``t0 <= 0.9`` point (10 NFE): against the cold
    run at N = 100 of the same form and sampler, and against its draft (primary metric)."""
    key = "valid_rate_std"
    cold = {(r.form, r.sampler): r.metrics[key] for r in rows
            if r.method == "cold" and r.nfe == 100}
    drafts = {r.variant: r.metrics[key] for r in rows if r.method == "draft"}
    lines = []
    for r in rows:
        if r.method != "warm" or r.nfe != 10:
            continue
        (w, ws), (c, cs) = r.metrics[key], cold.get((r.form, r.sampler), (float("nan"), 0.0))
        d, ds = drafts.get(r.variant.split(" / ")[0], (float("nan"), 0.0))
        parity = "yes" if w >= c - max(cs, ws) else "no"
        beats = "yes" if w > d + 2 * (ws + ds) else "no"
        lines.append(f"- {r.form} {r.variant} ({r.sampler}), 10 NFE: {100 * w:.1f} ± "
                     f"{100 * ws:.1f}% vs cold at N=100 {100 * c:.1f} ± {100 * cs:.1f}% "
                     f"(parity: {parity}); vs its draft {100 * d:.1f} ± {100 * ds:.1f}% "
                     f"(beats it by more than 2 spreads: {beats}).")
    return "\n".join(lines)


def run(a: argparse.Namespace) -> list[Row]:
    torch.set_num_threads(a.threads)
    data = load_words(a.top_n)
    setup = Setup(data=data, x1=torch.from_numpy(data.train_codes),
                  lm=CharNgramLM(5).fit(data.test), ref_lengths=[len(w) for w in data.train],
                  args=a)
    ref = text_metrics(data.test, set(data.train), data.valid, setup.ref_lengths, setup.lm)
    rows = [Row("reference", "-", "held-out words", "-", 0.0, 0,
                {k: (v, 0.0) for k, v in ref.items()}, 0.0)]
    drafts: dict[str, tuple[Draft, Tensor]] = {}
    for name in a.drafts:
        draft = make_draft(name, data.train_codes)
        m, spk, _ = evaluate(setup, lambda n, s, d=draft: (d.sample(n, s), 0))
        rows.append(Row("draft", "-", name, "-", 0.0, 0, m, spk))
        drafts[name] = draft, torch.from_numpy(draft.sample(a.pool, seed=12345)).long()
    forms = {"discrete": discrete_rows, "continuous": continuous_rows}
    for spec in a.runs:
        form, *rest = spec.split(":")
        if rest == ["cold"]:
            rows += forms[form](setup, None, None, "cold", "cold")
        else:
            name, variant = rest
            if name not in drafts:
                raise ValueError(f"run {spec!r} needs draft {name!r} in --drafts")
            rows += forms[form](setup, *drafts[name], name, variant)
        print(table(rows), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    t = time.perf_counter()
    rows = run(a)
    total = time.perf_counter() - t
    print(verdicts(rows))
    print(f"total {total:.0f}s")
    if a.write:
        budget = (f"Budget per network: {a.steps} AdamW steps, batch {a.batch}, lr {a.lr} "
                  f"(warm-up 5%, cosine), SeqTransformer d_model {a.d_model}, {a.n_layers} "
                  f"layers, {a.n_heads} heads; top {a.top_n} words; {a.seeds} sampling seeds x "
                  f"{a.samples} samples; {a.threads} torch thread(s); whole run {total / 60:.0f} "
                  f"min.")
        notes = Path(a.notes).read_text() if a.notes else ""
        write_section("words_form", "Words: continuous or discrete WS-FM",
                      ".venv/bin/python -m benchmarks.words_form " + " ".join(
                          argv if argv is not None else __import__("sys").argv[1:]),
                      f"{budget}\n\n{table(rows)}\n\n{verdicts(rows)}\n\n{notes}")


if __name__ == "__main__":
    main()
