"""The evaluation's parallel work: one :class:`EvalJob` per method, solver and sampling seed.

A job draws ``n`` samples at each of its points (a start time and a step count), times the
draw (the draft included), and scores it: the evaluator's metrics against the held-out split,
the primary metric again on the first ``reference_n`` samples where that is fewer than ``n``
(the size the real-data floor is computed at), and the copying checks
(``wsfm.metrics.copying``). Jobs are picklable and run through ``ctx.runtime.map`` (Ray
tasks under the pipeline); a worker process loads the data, evaluator, draft and networks once
and reuses them for every job it gets. A job on a node that does not see the stage's input
folders reads its node's copy of them (``job.files``, ``wsfm.taskfiles``); it writes no file.

How each method samples (``METHODS``):

- ``draft``: the draft alone (NFE 0); ``retrieval``: each draft replaced by its nearest
  training row (Euclidean; Hamming for text), NFE 0: what a look-up gives;
- ``ngram<k>`` (text): a character k-gram draft fitted here on the training words (windows
  for prose), alone;
- ``cold``, ``cold_ot``, ``reflow``: from noise (all-mask for text) at t = 0;
- ``zero_shot``: the cold model from a noised draft at t0 on its own clock;
- ``warm``: the refiner from the widened draft at t0 (rows named after its coupling); at
  t0 = 0 it is flow matching from the widened draft over the whole clock (docs/method.md);
- ``warm_reflow``: the refiner's rectified round from the widened draft at t = 0;
- ``warm_budget``: the refiner trained with ``warm_reflow``'s total optimizer steps, sampled
  as the refiner is (the equal-budget line).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsfm.config import PipelineConfig, to_dict
from wsfm.taskfiles import TaskFiles

__all__ = ["EvalJob", "METHODS", "NET_STAGE", "Point", "SeedScore", "run_eval_job"]

COPY_HELD_OUT = 10_000  # held-out rows behind the copying checks' reference (EvalEnv)
# Method -> the stage whose model.pt it samples with ("" : no network).
NET_STAGE = {"draft": "", "retrieval": "", "ngram": "", "cold": "train_baseline",
             "cold_ot": "train_cold_ot", "reflow": "train_reflow", "zero_shot": "train_baseline",
             "warm_budget": "train_refiner_budget",
             "warm": "train_refiner", "warm_reflow": "train_warm_reflow"}
METHODS = tuple(NET_STAGE)


@dataclass(frozen=True)
class Point:
    """Where to sample: from ``t0`` with ``steps`` solver steps (None: the cold step ``h``)."""

    t0: float
    steps: int | None = None


@dataclass(frozen=True)
class EvalJob:
    """``method`` (a key of ``NET_STAGE``) named ``row`` in the report, with ``solver`` at
    every point of ``points``, for one sampling ``seed``; ``inputs``: upstream folders."""

    config: PipelineConfig
    inputs: tuple[tuple[str, str], ...]
    method: str
    row: str
    solver: str
    points: tuple[Point, ...]
    seed: int
    order: int = 0  # ngram: the draft's order
    files: TaskFiles | None = None  # the inputs from the task's node (None: as named)

    def __str__(self) -> str:  # how a failed task is named
        return f"{self.row}/{self.solver} seed {self.seed}"


@dataclass(frozen=True)
class SeedScore:
    """One seed's draw at one point: its metrics, the draw's seconds (sampling and draft)
    and the seconds with scoring."""

    row: str
    t0: float
    nfe: int
    solver: str
    seed: int
    scores: dict[str, float]
    sample_seconds: float
    seconds: float


def run_eval_job(job: EvalJob) -> list[SeedScore]:
    inputs = job.inputs if job.files is None else tuple(
        (stage, str(job.files.input(folder))) for stage, folder in job.inputs)
    env = _env(json.dumps(to_dict(job.config), sort_keys=True), inputs, job.config)
    out = []
    for point in job.points:
        start = time.perf_counter()
        x, nfe = env.draw(job, point)
        drawn = time.perf_counter()
        scores = env.score(x)
        out.append(SeedScore(job.row, point.t0, nfe, job.solver, job.seed, scores,
                             drawn - start, time.perf_counter() - start))
    return out


_ENVS: dict[str, EvalEnv] = {}


def _env(key: str, inputs: tuple[tuple[str, str], ...], config: PipelineConfig) -> EvalEnv:
    """One :class:`EvalEnv` per config (``key``: its JSON) and inputs in this process."""
    full = f"{key}|{inputs}"
    if full not in _ENVS:
        _ENVS.clear()  # a worker serves one evaluation at a time: keep memory flat
        _ENVS[full] = EvalEnv(config, dict(inputs))
    return _ENVS[full]


class EvalEnv:
    """What sampling and scoring need, loaded once: data, evaluator, draft, networks.

    Of the prepared data only bounded samples are read: the pool of training rows that
    retrieval and the copying checks search, the held-out rows of the copying checks'
    reference and of the scores, the first reference rows (docs/scale.md). ``data`` is the
    description (kind, shape, text vocabulary, width; no rows)."""

    def __init__(self, config: PipelineConfig, inputs: dict[str, str]):
        from wsfm.components import judged, net_spec
        from wsfm.data.prepared import PreparedData
        from wsfm.drafts import load_draft
        from wsfm.metrics.copying import CopyingReference
        from wsfm.metrics.evaluators import load_evaluator

        self.cfg, self.inputs = config, {k: Path(v) for k, v in inputs.items()}
        self.prepared = PreparedData(self.inputs["prepare_data"])
        self.data = self.prepared.describe()
        self.evaluator = load_evaluator(self.inputs["fit_evaluator"])
        self.draft = load_draft(self.inputs["pretrain_draft"] / "draft.npz")
        self.spec = net_spec(config.model, self.data)
        self.n = config.evaluate.n_samples
        self.reference_n = min(self.n, self.prepared.rows("reference"))
        self.h = 1.0 / config.evaluate.cold_nfe
        # The training rows that retrieval and the copying checks search: at most
        # evaluate.pool_rows of them, drawn by the seed (the report says how many).
        self.pool = self.prepared.sample("train", config.evaluate.pool_rows, [config.seed, 19])[0]
        # The copying checks' reference and real data's own values: at most COPY_HELD_OUT
        # held-out rows, drawn by the seed (each is one search of the pool, in every process).
        self.copy_test = self.prepared.sample("test", COPY_HELD_OUT, [config.seed, 23])[0]
        # What every row and real data are scored against: evaluate.test_rows of them.
        self.test = judged(self.prepared, config, train=False).test
        if self.data.text is None:
            self.copy_ref = CopyingReference.fit(self.pool, self.copy_test)
        else:
            self.train_words = frozenset(self.data.text.train_words)
            self.test_words = frozenset(self.data.text.test_words)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one env per process, kept for its life
    def net(self, stage: str):
        from wsfm.bundle import load_net

        if stage not in self.inputs:
            raise ValueError(f"evaluate needs the output of {stage} for its methods")
        return load_net(self.spec, self.data.dim, self.inputs[stage] / "model.pt")

    @functools.lru_cache(maxsize=8)  # noqa: B019
    def ngram(self, order: int):
        from wsfm.drafts.ngram import CharNgramDraft
        from wsfm.drafts.window_ngram import WindowNgramDraft

        windows = self.data.text is not None and self.data.text.form == "windows"
        kind = WindowNgramDraft if windows else CharNgramDraft
        # the n-gram rival counts every training row: the whole split is read (text only)
        return kind(order=order, seed=self.cfg.seed).fit(self.prepared.take("train")[0])

    def sampler(self, method: str, solver: str, t0: float):
        """The sampler of a flow method (module docstring)."""
        from wsfm.components import make_sampler, remask_of

        flow = self.cfg.flow
        net = self.net(NET_STAGE[method])
        draft, start, noise = None, "draft", 0.0
        if method in ("warm", "warm_reflow", "warm_budget"):
            draft, noise = self.draft, flow.draft_noise
        elif method == "zero_shot":
            draft, start = self.draft, "noised_draft"
        return make_sampler(self.data, draft, net, t0, step_size=self.h, method=solver,
                            draft_noise=noise, start=start, exponent=flow.kappa_exponent,
                            temperature=flow.temperature, remask=remask_of(flow))

    def draw(self, job: EvalJob, point: Point) -> tuple[np.ndarray, int]:
        """(n, D) samples and the NFE spent."""
        n, seed = self.n, job.seed
        if job.method == "draft":
            return self.draft.sample(n, seed), 0
        if job.method == "ngram":
            return self.ngram(job.order).sample(n, seed), 0
        if job.method == "retrieval":
            return self.retrieve(self.draft.sample(n, seed)), 0
        return self.sampler(job.method, job.solver, point.t0).sample(n, seed, steps=point.steps)

    def retrieve(self, x: np.ndarray) -> np.ndarray:
        """Each row of ``x`` replaced by its nearest training row of the pool (exact, in
        bounded memory)."""
        from wsfm.flow.search import NearestSearch

        search = NearestSearch(self.pool, hamming=self.data.text is not None)
        return self.pool[search.search(x)]

    def score(self, x: np.ndarray) -> dict[str, float]:
        """The evaluator's metrics, the primary one at ``reference_n`` samples, and the
        copying checks."""
        ev, test = self.evaluator, self.test
        scores = dict(ev.score(x, test))
        if self.reference_n < len(x):
            scores[f"{ev.primary}_n{self.reference_n}"] = ev.score(x[:self.reference_n],
                                                                   test)[ev.primary]
        return {**scores, **self.copying(x)}

    def copying(self, x: np.ndarray) -> dict[str, float]:
        from wsfm.metrics.copying import copying_metrics, text_copying

        if self.data.text is None:
            return copying_metrics(x, self.pool, self.copy_ref)
        if self.data.text.form == "windows":  # the evaluator's copy32 is the copying check
            return {}
        codes = np.clip(np.asarray(x, np.int64), 0, self.data.text.vocab - 1)
        return text_copying(self.data.text.decode(codes), self.train_words, self.test_words)

    def real_data(self) -> tuple[np.ndarray, str]:
        """Real samples for the floor and the copying checks' own values, and how they were
        drawn (``EvalReport.reference_how``)."""
        m = self.reference_n
        # The floor's bias with sample size (Frechet distance, SWD) is matched, not corrected:
        # real data and every row are compared at the same n (the rows' first m samples).
        how = (f"real data ({self._real_source()}) against the held-out split, on {m} samples"
               + (f"; rows report '{self.evaluator.primary}_n{m}' on their first {m} samples "
                  "to compare with it" if m < self.n else ", as many as each method")
               + self._pool_note())
        return self.prepared.head("reference", m), how

    def held_out(self, k: int) -> np.ndarray:
        """The first ``k`` held-out rows (all of them where there are fewer)."""
        return self.prepared.head("test", k)

    def _pool_note(self) -> str:
        """Which training rows retrieval and the copying checks searched, in words."""
        n, p = self.prepared.rows("train"), len(self.pool)
        what = ("retrieval and the copying checks search" if self.data.text is None
                else "retrieval searches")
        note = (f"; {what} {p:,} of the {n:,} training rows (evaluate.pool_rows, drawn by "
                f"the seed)" if p < n else f"; {what} all {n:,} training rows")
        h, m = len(self.copy_test), self.prepared.rows("test")
        if self.data.text is None and h < m:
            note += f"; the copying checks' reference is {h:,} of the {m:,} held-out rows"
        if len(self.test) < m:
            note += (f"; every row is scored against {len(self.test):,} of the {m:,} held-out "
                     f"rows (evaluate.test_rows, drawn by the seed)")
        return note

    def _real_source(self) -> str:
        """How ``Dataset.reference`` was drawn, in words (``wsfm.data``)."""
        if self.cfg.data.kind == "toy2d":
            return "fresh draws of the task's distribution"
        if self.cfg.data.kind == "prose":
            return "windows of the real held-out topics, which the judge was not fitted on"
        if self.data.text is not None:
            return ("words drawn uniformly from every word, training and held-out, as many "
                    "as the held-out split")
        return "training rows, as many as the held-out split"

    def real_copying(self) -> dict[str, float]:
        """The copying checks' values for real data: held-out rows (vectors, images), or
        ``n`` words drawn uniformly from every word, as the data draws them (text)."""
        if self.data.text is None or self.data.text.form == "windows":
            return {f"real_{k}": v for k, v in self.copying(self.copy_test).items()}
        rng = np.random.default_rng(self.cfg.seed)
        n_train = self.prepared.rows("train")
        rows = rng.integers(n_train + self.prepared.rows("test"), size=self.n)  # train, then test
        words = np.empty((self.n, self.data.dim), dtype=self.data.train.dtype)
        train = rows < n_train
        words[train] = self.prepared.take("train", rows[train])[0]
        words[~train] = self.prepared.take("test", rows[~train] - n_train)[0]
        return {f"real_{k}": v for k, v in self.copying(words).items()}
