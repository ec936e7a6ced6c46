"""Pipeline configuration: one dataclass per component, loaded strictly from YAML.

A pipeline YAML maps onto :class:`PipelineConfig`. The sections are pydantic dataclasses
(``extra="forbid"``, strict types): an unknown key, a wrong type or a bad value is a
:class:`ConfigError` of one line that names the file and the dotted key, raised before
anything runs. Strict means no coercion: an int is no bool and a bool no int; an int is a
fine float, and so is a string that parses as one (PyYAML reads ``1e-3``, without a dot, as
a string). ``profiles:`` holds named overlays (``--profile smoke``) that are deep-merged onto
the base document and validated with it; errors in values that a profile set name
``profiles.<name>.key``. Constructing a section and ``dataclasses.replace`` validate the same
way, raising a one-line :class:`ConfigError` without a file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic.dataclasses
import yaml
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from wsfm.errors import UserError

__all__ = [
    "ConfigError",
    "DataConfig",
    "DraftConfig",
    "EvalConfig",
    "FlowConfig",
    "GateConfig",
    "ModelConfig",
    "PipelineConfig",
    "ResourceConfig",
    "ShardsConfig",
    "TrainConfig",
    "flatten",
    "load_pipeline",
    "to_dict",
]


class ConfigError(UserError):
    """A pipeline file is missing, malformed, or holds a bad key or value; or a section was
    constructed (or ``dataclasses.replace``-d) with a bad value."""


def _yaml_float(value: Any) -> Any:
    """``"1e-3"`` -> 0.001: PyYAML reads exponents without a dot as strings."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _no_bool(value: Any) -> Any:
    """Literal ints: pydantic would take ``True`` as ``1``."""
    if isinstance(value, bool):
        raise PydanticCustomError("literal_error", "a bool is not one of the choices")
    return value


Float = Annotated[float, BeforeValidator(_yaml_float)]
_STRICT = ConfigDict(extra="forbid", strict=True)


def _section(cls: type) -> type:
    """``cls`` as a strict pydantic dataclass whose direct construction (and so
    ``dataclasses.replace``) raises a one-line :class:`ConfigError`."""
    cls = pydantic.dataclasses.dataclass(config=_STRICT)(cls)
    validate = cls.__init__

    @functools.wraps(validate)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            validate(self, *args, **kwargs)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, cls)) from None

    setattr(cls, "__init__", __init__)  # noqa: B010  # replaces the generated one
    return cls


DATA_KINDS = ("toy2d", "digits", "glyphs", "words", "prose", "npy", "parquet", "webdataset",
              "image_folder", "text_lines")
USER_KINDS = ("npy", "parquet", "webdataset", "image_folder", "text_lines")
# character codes: the discrete path, Hamming couplings
TEXT_KINDS = ("words", "prose", "text_lines")


@_section
class DataConfig:
    """Where the samples come from: a built-in task, or users' own data (``path``)."""

    kind: Literal["toy2d", "digits", "glyphs", "words", "prose", "npy", "parquet",
                  "webdataset", "image_folder", "text_lines"] = "toy2d"
    name: str = "checkerboard"  # toy2d dataset: checkerboard, moons, 8gaussians, rings
    n_train: int = 20000  # toy2d: samples drawn for training
    n_test: int = 5000  # toy2d: held-out samples drawn
    seed: int = 0
    test_fraction: Float = 0.2  # real data: share held out for evaluation, fixed by seed
    top_n: int = 5000  # words: the N most frequent words
    max_len: int = 12  # words / text_lines: characters per sequence (padded); prose: window
    stride: int = 8  # prose: a training window starts every `stride` characters
    per_glyph: int = 16  # glyphs: renderings of each character of each face (wsfm.data.glyphs)
    path: str = ""  # user data: .npy file, Parquet file/folder/glob, image folder, text file;
    # prose: documents (optional)
    column: str = ""  # parquet: the column of samples (a fixed-length list of numbers per row)
    image_column: str = ""  # parquet: instead, a binary column of encoded images (PNG, JPEG)
    key: str = ""  # parquet: a column of unique row keys that decide the split (default: file:row)
    # webdataset: the member holding each sample, by extension (npy, png, ...)
    urls: str = ""  # webdataset: tars (a file, folder, glob or brace pattern; space-separated)
    image_size: list[int] = field(default_factory=lambda: [8, 8])  # image_folder: H, W
    channels: int = 1  # image_folder: 1 (grayscale) or 3 (RGB)

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"n_train and n_test must be >= 1, got {self.n_train}, {self.n_test}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.kind == "webdataset":
            if not self.urls or not self.key or self.path:
                raise ValueError("data kind 'webdataset' needs 'urls' (the tars) and 'key' (the "
                                 "member holding each sample: npy, png, ...), and no 'path'")
        elif self.kind in USER_KINDS and not self.path:
            raise ValueError(f"data kind {self.kind!r} needs 'path'")
        if self.kind == "parquet" and bool(self.column) == bool(self.image_column):
            raise ValueError("data kind 'parquet' needs 'column' (the column of samples) or "
                             "'image_column' (a column of encoded images), not both")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"image_size must be [height, width], got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.top_n < 10 or self.max_len < 1 or self.stride < 1 or self.per_glyph < 1:
            raise ValueError("top_n must be >= 10, max_len, stride and per_glyph >= 1")

    @property
    def is_text(self) -> bool:
        return self.kind in TEXT_KINDS

    @property
    def is_users(self) -> bool:
        """Whether the samples come from users' files (checked before any work)."""
        return self.kind in USER_KINDS or (self.kind == "prose" and bool(self.path))


# Drafts that draw substitutes on real text (coupling ``substitute``): the window drafts of
# running text and the words' character n-gram.
SUBSTITUTE_DRAFTS = ("ngram", "window_ngram", "window_gru")


@_section
class DraftConfig:
    """The draft generator. Each kind reads only its own fields (see ``wsfm.components``)."""

    kind: Literal["gmm", "pca_gmm", "vae", "ngram", "gru", "window_ngram",
                  "window_gru"] = "gmm"
    n_components: int = 4  # gmm, pca_gmm
    covariance_type: Literal["full", "diag", "tied", "spherical"] = "full"  # gmm, pca_gmm
    n_pca: int = 8  # pca_gmm
    latent: int = 8  # vae
    hidden: int = 256  # vae, gru, window_gru
    steps: int = 2000  # vae, gru, window_gru: training steps
    order: int = 2  # ngram, window_ngram: 2 = bigram
    # Every kind is fitted on at most this many training rows, drawn by the seed (all of
    # them when the split is smaller): the fit's memory does not grow with the data.
    fit_rows: int = 200_000

    def __post_init__(self) -> None:
        if min(self.n_components, self.n_pca, self.latent, self.hidden, self.steps,
               self.fit_rows) < 1:
            raise ValueError("draft sizes, steps and fit_rows must be >= 1")
        if self.order < 1:
            raise ValueError(f"order must be >= 1, got {self.order}")


@_section
class FlowConfig:
    t0: Float = 0.9
    draft_noise: Float = 0.0
    sigma_min: Float = 0.0
    # substitute (text: prose windows, words): no pairing; the refiner learns to undo masks
    # and the draft's own mistakes made on real text (wsfm.flow.discrete, "Corruption").
    coupling: Literal["independent", "minibatch_ot", "nearest", "substitute"] = "minibatch_ot"
    # Text (discrete form): kappa(s) = s ** kappa_exponent on the mixture path; the softmax
    # temperature of the sampler's jumps. Couplings use Hamming distance there.
    kappa_exponent: Float = 1.0
    temperature: Float = 1.0
    # coupling substitute: the largest share of unmasked positions replaced by the draft's
    # substitutes in training; the share of positions the sampler remasks after its first
    # step (decaying to 0).
    substitute_max: Float = 0.6
    remask: Float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.t0 < 1.0:
            raise ValueError(f"t0 must be in [0, 1), got {self.t0}")
        if self.draft_noise < 0 or self.sigma_min < 0:
            raise ValueError("draft_noise and sigma_min must be >= 0")
        if self.kappa_exponent <= 0 or self.temperature <= 0:
            raise ValueError("kappa_exponent and temperature must be > 0")
        if not (0.0 <= self.substitute_max <= 1.0 and 0.0 <= self.remask <= 1.0):
            raise ValueError("substitute_max and remask must be in [0, 1]")


@_section
class ModelConfig:
    """The velocity network, shared by the refiner and the cold baseline."""

    kind: Literal["mlp", "unet", "transformer", "python"] = "mlp"
    hidden: int = 256  # mlp
    depth: int = 3  # mlp: hidden layers
    out_scale: Float = 1.0  # mlp: fixed output factor (0.1 measured best: BENCHMARKS.md)
    time_dim: int = 32  # all: size of the time embedding
    channels: int = 64  # unet
    d_model: int = 128  # transformer
    n_layers: int = 3  # transformer
    n_heads: int = 4  # transformer
    rel_pos: bool = False  # transformer: a learned per-head attention bias on the signed offset
    # python: a user's network, forward(x, t) -> dx/dt on the user's clock (wsfm.models.user)
    target: str = ""  # python: "package.module:Class"
    kwargs: dict[str, Any] = field(default_factory=dict)  # python: the class's arguments

    def __post_init__(self) -> None:
        if min(self.hidden, self.depth, self.time_dim, self.channels, self.d_model,
               self.n_layers, self.n_heads) < 1:
            raise ValueError("model sizes must be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.kind == "python" and ":" not in self.target:
            raise ValueError(f"model kind 'python' needs target: 'package.module:Class', got "
                             f"{self.target!r}")

    @property
    def user_clock(self) -> bool:
        """A user's network keeps its own clock: absolute time in, ``dx/dt`` out."""
        return self.kind == "python"


@_section
class ShardsConfig:
    """Draft shards: ``num_shards`` tars of ``per_shard`` drafts, one Ray task each."""

    num_shards: int = 8
    per_shard: int = 10000
    # Precomputed coupling: store with each draft the index of its training-data partner
    # (``idx.npy``): the nearest training row, or an exact OT assignment within each block;
    # substitute (text): a random training row, the "draft" being the draft model's
    # substitutes given that row's real characters.
    pair: Literal["none", "nearest", "minibatch_ot", "substitute"] = "none"
    block: int = 256  # drafts per tar record, and the minibatch of ``pair: minibatch_ot``
    # pair nearest at scale (wsfm.flow.search): each shard task searches a candidate pool of
    # ``nearest_pool`` training rows drawn by its seed (0: the whole split), exactly or
    # through an IVF index (faiss, ``nearest_nprobe`` of about sqrt(pool) lists searched).
    # Both are approximate: BENCHMARKS.md "nearest-search" measures their recall.
    nearest_pool: int = 0
    nearest_index: Literal["exact", "ivf"] = "exact"
    nearest_nprobe: int = 8

    def __post_init__(self) -> None:
        if self.num_shards < 1 or self.per_shard < 1:
            raise ValueError("num_shards and per_shard must be >= 1")
        if self.block < 1:
            raise ValueError(f"block must be >= 1, got {self.block}")
        if self.nearest_pool < 0 or self.nearest_nprobe < 1:
            raise ValueError(f"nearest_pool must be >= 0 and nearest_nprobe >= 1, got "
                             f"{self.nearest_pool} and {self.nearest_nprobe}")


@_section
class TrainConfig:
    """Distributed training (DeepSpeed on Ray Train), shared by the refiner and the baseline.

    ``batch_size`` is the global batch of one optimizer step: ``micro_batch`` samples per
    worker per micro step, ``grad_accum`` micro steps, ``num_workers`` workers
    (``micro_batch: 0`` derives it). On CPU: fp32 with a torch AdamW over gloo; with
    ``use_gpu``: NCCL, ``precision: bf16`` and DeepSpeed's fused Adam where it builds.
    """

    steps: int = 3000  # optimizer steps
    batch_size: int = 256  # global: micro_batch * grad_accum * num_workers
    micro_batch: int = 0  # per worker and micro step; 0: batch_size / (grad_accum * workers)
    grad_accum: int = 1
    lr: Float = 1e-3  # peak, after a linear warm-up; then cosine decay to 10% of it
    warmup_steps: int = 100
    weight_decay: Float = 0.0
    grad_clip: Float = 1.0  # max global gradient norm; 0 turns clipping off
    num_workers: int = 2
    use_gpu: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    zero_stage: Annotated[Literal[0, 1, 2, 3], BeforeValidator(_no_bool)] = 2
    ema_decay: Float = 0.999  # model.pt holds the EMA weights; 0 keeps the raw weights
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end); 0: end only
    max_failures: int = 2  # worker-group restarts (from the last checkpoint) per run
    log_every: int = 50
    shuffle_buffer: int = 2000
    seed: int = 0
    # model kind python: the user's weights (a state-dict file, or models:/NAME/VERSION)
    # initialise both flows; the cold rows are then the user's model as given (no training).
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.num_workers < 1 or self.grad_accum < 1:
            raise ValueError(f"steps, num_workers and grad_accum must be >= 1, got steps="
                             f"{self.steps}, num_workers={self.num_workers}, "
                             f"grad_accum={self.grad_accum}")
        if self.micro_batch < 0 or self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 and micro_batch >= 0 (0: derived), got "
                             f"{self.batch_size}, {self.micro_batch}")
        split = self.grad_accum * self.num_workers
        if self.micro_batch and self.micro_batch * split != self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} != micro_batch {self.micro_batch} x grad_accum "
                f"{self.grad_accum} x num_workers {self.num_workers} = "
                f"{self.micro_batch * split}")
        if self.batch_size % split:
            raise ValueError(
                f"batch_size {self.batch_size} must be micro_batch x grad_accum "
                f"{self.grad_accum} x num_workers {self.num_workers}, but {self.batch_size} is "
                f"not divisible by {split}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"lr must be > 0 and weight_decay, grad_clip >= 0, got lr={self.lr},"
                             f" weight_decay={self.weight_decay}, grad_clip={self.grad_clip}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], "
                             f"got {self.warmup_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.checkpoint_every < 0 or self.max_failures < 0 or self.log_every < 1:
            raise ValueError(f"checkpoint_every and max_failures must be >= 0 and log_every "
                             f">= 1, got {self.checkpoint_every}, {self.max_failures}, "
                             f"{self.log_every}")
        if self.precision == "bf16" and self.zero_stage == 0:
            raise ValueError("precision bf16 needs zero_stage >= 1: the fp32 master weights "
                             "that model.pt is made from live in DeepSpeed's ZeRO optimizer")

    @property
    def micro_batch_size(self) -> int:
        """Samples per worker per micro step."""
        return self.batch_size // (self.grad_accum * self.num_workers)


JOB_METHODS = ("draft", "retrieval", "cold", "zero_shot", "warm")
# What ``wsfm bench`` adds when a pipeline YAML has no ``bench:`` section: every trained rival
# and every solver (for vectors and images; a text pipeline names its own).
BENCH_OVERLAY = {"evaluate": {"methods": [*JOB_METHODS, "cold_ot", "reflow", "warm_reflow",
                                          "warm_budget"],
                              "solvers": ["euler", "midpoint", "heun"]}}


@_section
class EvalConfig:
    n_samples: int = 2000
    seeds: int = 3
    # Sampling seeds of the rows that decide what ships (the cold rows at cold_nfe, the
    # refiner's rows with the shipped solver, the draft alone): the shipping rule's
    # confidence bounds need them (docs/shipping.md). Never fewer than ``seeds``.
    decide_seeds: int = 10
    cold_nfe: int = 100
    nfe_grid: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    warm_t0s: list[Float] = field(default_factory=lambda: [0.8, 0.9, 0.96])
    method: Literal["euler", "midpoint", "heun", "rk4"] = "euler"
    n_projections: int = 256
    timing_repeats: int = 5  # interleaved cold/warm pairs behind speedup_wall
    # The report's methods (wsfm.stages.evaluate.METHODS; "warm" is the refiner, its rows
    # named after the coupling) and the ODE solvers every flow method is sampled with. The
    # job's default is what the shipping decision needs (the draft, retrieval, the cold
    # reference, zero-shot and the refiner, with the shipped solver); the trained rivals and
    # the other solvers are the benchmark's (``bench:`` in a pipeline YAML, ``wsfm bench``).
    methods: list[str] = field(default_factory=lambda: list(JOB_METHODS))
    solvers: list[str] = field(default_factory=lambda: ["euler"])
    # Retrieval and the copying checks search at most this many training rows, drawn by the
    # seed (all of them when the split is smaller); the report says how many.
    pool_rows: int = 200_000
    # The held-out rows every row (and real data) is scored against, and the rows an image
    # evaluator is fitted on, at most this many, drawn by the seed: k-NN precision and recall
    # compare every pair of them (wsfm.components.judged); the report says how many.
    test_rows: int = 10_000

    def __post_init__(self) -> None:
        if (self.seeds < 1 or self.n_samples < 2 or self.cold_nfe < 1 or self.timing_repeats < 1
                or self.pool_rows < 1 or self.test_rows < 1):
            raise ValueError("seeds, n_samples, cold_nfe, timing_repeats, pool_rows and "
                             "test_rows must be positive")
        if self.decide_seeds < self.seeds:
            raise ValueError(f"decide_seeds ({self.decide_seeds}) must be at least seeds "
                             f"({self.seeds}): the rows that decide shipping get more, not fewer")
        known = ("draft", "retrieval", "cold", "cold_ot", "reflow", "zero_shot", "warm",
                 "warm_reflow", "warm_budget", "ngram")
        if bad := [m for m in self.methods if m not in known]:
            raise ValueError(f"methods: unknown {bad} (known: {list(known)})")
        if "reflow" in self.methods and "cold_ot" not in self.methods:
            raise ValueError("methods: 'reflow' is one round on 'cold_ot': list cold_ot too")
        if not {"cold", "warm"} <= set(self.methods):
            raise ValueError("methods must include 'cold' and 'warm' (the gates compare them)")
        if bad := [s for s in self.solvers if s not in ("euler", "midpoint", "heun", "rk4")]:
            raise ValueError(f"solvers: unknown {bad} (known: euler, midpoint, heun, rk4)")
        if self.method not in self.solvers:
            raise ValueError(f"solvers {self.solvers} must include the shipped method "
                             f"{self.method!r}")
        if any(n < 1 for n in self.nfe_grid):
            raise ValueError(f"nfe_grid entries must be >= 1, got {self.nfe_grid}")
        if any(not 0.0 <= t < 1.0 for t in self.warm_t0s):
            raise ValueError(f"warm_t0s must lie in [0, 1), got {self.warm_t0s}")


@_section
class GateConfig:
    """When ``register`` may set the ``champion`` alias."""

    # warm may be this much worse than cold at full NFE, shown at 95% (wsfm.report.no_worse;
    # the benchmark's parity uses the same 10%, wsfm.report.PARITY_MARGIN)...
    rel_tolerance: Float = 0.10
    min_speedup: Float = 5.0  # ...and must save at least this factor of NFE...
    # ...and keep this share of it in wall time, draft included (docs/shipping.md). A timing:
    # the tests that exercise the champion path on a loaded machine set 0.
    wall_share: Float = 0.9


@_section
class ResourceConfig:
    # None: the stage's default (wsfm.orchestrate.scheduling.stage_cpus): 0 for a stage that
    # only fans out (its tasks hold the CPUs), else 1.
    num_cpus: Float | None = None
    num_gpus: Float = 0.0
    max_retries: int = 2


STAGE_NAMES = (
    "prepare_data",
    "pretrain_draft",
    "generate_drafts",
    "train_refiner",
    "train_baseline",
    "train_cold_ot",
    "generate_reflow",
    "train_reflow",
    "generate_warm_reflow",
    "train_warm_reflow",
    "train_refiner_budget",
    "fit_evaluator",
    "evaluate",
    "register",
)


@_section
class PipelineConfig:
    name: str
    task: str = "toy2d"  # names the registered model: wsfm-<task>
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    draft: DraftConfig = field(default_factory=DraftConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    gates: GateConfig = field(default_factory=GateConfig)
    resources: dict[str, ResourceConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.resources) - set(STAGE_NAMES))
        if unknown:
            raise ValueError(f"resources: unknown stage {unknown[0]!r} "
                             f"(stages: {list(STAGE_NAMES)})")
        if self.flow.coupling == "substitute" and (self.shards.pair != "substitute"
                                                   or self.draft.kind not in SUBSTITUTE_DRAFTS):
            raise ValueError("flow.coupling: substitute trains on the draft's substitutes of "
                             "real text: it needs a draft.kind that draws them (one of "
                             f"{', '.join(SUBSTITUTE_DRAFTS)}) and shards.pair: substitute")
        if self.shards.pair not in ("none", self.flow.coupling):
            raise ValueError(f"shards.pair {self.shards.pair!r} stores the pairs that training "
                             f"then uses, but flow.coupling is {self.flow.coupling!r}: set them "
                             "equal, or shards.pair: none to pair in the training loop")
        if self.shards.nearest_index == "ivf" and self.data.is_text:
            raise ValueError("shards.nearest_index: ivf searches Euclidean vectors; text pairs "
                             "by Hamming distance: use exact (with nearest_pool to bound it)")
        if self.train.init_from and self.model.kind != "python":
            raise ValueError("train.init_from initialises a user's network: it needs "
                             "model.kind: python (with model.target)")
        if self.model.kind == "python" and "warm_reflow" in self.evaluate.methods:
            raise ValueError("evaluate.methods: warm_reflow (the refiner's rectified round) is "
                             "not built for a user's network (model.kind python), whose "
                             "refiner starts from the noised draft: leave it out")
        if self.model.kind == "python" and self.data.is_text:
            raise ValueError("model.kind: python takes vectors or images (forward(x, t) -> "
                             "dx/dt); text data trains the package's discrete Transformer")

    def resources_for(self, stage: str) -> ResourceConfig:
        return self.resources.get(stage, ResourceConfig())


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping (``to_dict`` of a config) as ``{"train.lr": value, ...}``."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def to_dict(obj: Any) -> Any:
    """A config (or part of one) as plain JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


def load_pipeline(path: str | Path, profile: str | None = None, *,
                  bench: bool = False) -> PipelineConfig:
    """Read, merge the profile into, and validate a pipeline YAML. ``bench``: with the
    benchmark's additions merged last (the YAML's ``bench:`` section, else
    ``BENCH_OVERLAY``): what ``wsfm bench`` runs."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    profiles = doc.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a mapping of name -> overrides")
    bench_overlay = doc.pop("bench", None) or _default_bench(doc)
    if not isinstance(bench_overlay, dict):
        raise ConfigError(f"{path}: 'bench' must be a mapping of overrides (like a profile)")
    overlay: dict = {}
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(f"{path}: unknown profile {profile!r} (profiles: {sorted(profiles)})")
        overlay = profiles[profile]
        if not isinstance(overlay, dict):
            raise ConfigError(f"{path}: 'profiles.{profile}' must be a mapping")
        doc = _deep_merge(doc, overlay)
    doc = _anchored(doc, path)
    config = _validate(path, doc, profile, overlay)
    with_bench = _validate(path, _deep_merge(doc, bench_overlay), "bench", bench_overlay,
                           section="bench")  # checked on every load: a typo fails early
    return with_bench if bench else config


def _default_bench(doc: dict) -> dict:
    """``BENCH_OVERLAY``, less ``warm_reflow`` for a user's network (PipelineConfig)."""
    model = doc.get("model")
    if isinstance(model, dict) and model.get("kind") == "python":
        methods = [m for m in BENCH_OVERLAY["evaluate"]["methods"] if m != "warm_reflow"]
        return {"evaluate": {**BENCH_OVERLAY["evaluate"], "methods": methods}}
    return BENCH_OVERLAY


def _anchored(doc: dict, path: Path) -> dict:
    """``train.init_from`` as a relative file path is relative to the pipeline file (the
    training workers run elsewhere: Ray Train changes their working directory)."""
    train = doc.get("train")
    if not isinstance(train, dict):
        return doc
    init = train.get("init_from")
    if not isinstance(init, str) or not init or "://" in init or init.startswith("models:/"):
        return doc
    file = Path(init).expanduser()
    file = file if file.is_absolute() else (path.parent / file).resolve()
    return {**doc, "train": {**train, "init_from": str(file)}}


def _validate(path: Path, doc: dict, profile: str | None, overlay: dict,
              section: str = "profiles") -> PipelineConfig:
    try:
        # Through JSON: strict mode takes a mapping for a dataclass only from JSON input.
        return _ADAPTER.validate_json(json.dumps(doc, default=str))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, PipelineConfig, profile, overlay, section)}"
                          ) from None


_ADAPTER = TypeAdapter(PipelineConfig)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


_TYPE_NAMES = {"int_type": "int", "float_type": "float", "bool_type": "bool",
               "string_type": "str", "list_type": "a list", "dict_type": "a mapping",
               "dataclass_type": "a mapping"}


def _describe(exc: ValidationError, root: type, profile: str | None = None,
              overlay: dict | None = None, section: str = "profiles") -> str:
    """The first error of ``exc`` (validating ``root``) as one line naming the dotted key;
    keys that the profile's ``overlay`` set are named ``profiles.<profile>.key`` (the
    benchmark's: ``bench.key``)."""
    err = exc.errors()[0]
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    from_profile = profile is not None and _holds(overlay or {}, loc)
    if kind == "value_error":  # a section's own check (__post_init__)
        where = key + ((" (with the bench section)" if section == "bench" else
                        f" (with profile {profile!r})") if from_profile else "")
        return f"{where}: {err['ctx']['error']}" if where else str(err["ctx"]["error"])
    if from_profile:
        key = f"bench.{key}" if section == "bench" else f"profiles.{profile}.{key}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        known = [f.name for f in dataclasses.fields(_type_at(root, loc[:-1]))]
        return f"unknown key '{key}' (known keys: {', '.join(sorted(known))})"
    if kind == "missing":
        return f"missing required key '{key}'"
    if kind == "literal_error":
        choices = list(typing.get_args(_type_at(root, loc)))
        return f"'{key}' must be one of {choices}, got {value!r}"
    if kind == "dataclass_exact_type":  # constructed in Python: a section, not a dict
        return f"'{key}' must be a {err['ctx']['class_name']}, got {type(value).__name__}"
    if kind in _TYPE_NAMES:
        shown = "" if kind in ("list_type", "dict_type", "dataclass_type") else f" {value!r}"
        return f"'{key}' must be {_TYPE_NAMES[kind]}, got {type(value).__name__}{shown}"
    return f"'{key}': {err['msg']}"


def _type_at(root: type, loc: tuple) -> Any:
    """The annotated type at ``loc`` below the dataclass ``root`` (list items, dict values)."""
    tp: Any = root
    for part in loc:
        tp = (typing.get_type_hints(tp)[part] if dataclasses.is_dataclass(tp)
              else typing.get_args(tp)[-1])
    return tp


def _holds(doc: Any, loc: tuple) -> bool:
    """Whether the nested mapping ``doc`` has a value at ``loc``."""
    for part in loc:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
        else:
            return False
    return True
