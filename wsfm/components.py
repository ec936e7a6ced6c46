"""Config -> components: the one place that turns config sections into drafts, networks and
evaluators, so that training, evaluation and the registered model build them identically."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from wsfm.config import DraftConfig, EvalConfig, FlowConfig, ModelConfig, PipelineConfig
from wsfm.data.datasets import Dataset, describe_source
from wsfm.data.prepared import PreparedData
from wsfm.drafts import Draft, get_draft
from wsfm.metrics.evaluators import (
    Evaluator,
    ImageEvaluator,
    ProseEvaluator,
    TextEvaluator,
    VectorEvaluator,
)
from wsfm.models import build_model
from wsfm.models.user import UserVelocity, check_user_model, load_initial_state
from wsfm.sampler import build_sampler

__all__ = ["build_draft", "check_users_network", "judged", "make_evaluator", "make_sampler",
           "net_spec", "remask_of", "users_network"]

# The config fields that each kind reads; the others are ignored for that kind.
DRAFT_FIELDS: dict[str, tuple[str, ...]] = {
    "gmm": ("n_components", "covariance_type"),
    "pca_gmm": ("n_pca", "n_components", "covariance_type"),
    "vae": ("latent", "hidden", "steps"),
    "ngram": ("order",),
    "gru": ("hidden", "steps"),
    "window_ngram": ("order",),
    "window_gru": ("hidden", "steps"),
}
MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "mlp": ("hidden", "depth", "time_dim", "out_scale"),
    "unet": ("channels", "time_dim"),
    "transformer": ("d_model", "n_layers", "n_heads", "time_dim", "rel_pos"),
    "python": ("target", "kwargs"),
}


def build_draft(cfg: DraftConfig, seed: int) -> Draft:
    kwargs = {name: getattr(cfg, name) for name in DRAFT_FIELDS[cfg.kind]}
    make: Any = get_draft(cfg.kind)  # each draft class takes its own fields and a seed
    return make(**kwargs, seed=seed)


def net_spec(cfg: ModelConfig, data: Dataset) -> dict[str, Any]:
    """``{"kind", **kwargs}`` for ``wsfm.models.build_model(kind, dim=D, **kwargs)``."""
    spec: dict[str, Any] = {"kind": cfg.kind,
                            **{name: getattr(cfg, name) for name in MODEL_FIELDS[cfg.kind]}}
    if cfg.kind == "python":  # the user's network takes samples in their natural shape
        spec["kwargs"] = dict(cfg.kwargs)
        spec["shape"] = list(data.shape)
    if cfg.kind == "unet":
        if data.kind != "image":
            raise ValueError(f"model kind 'unet' needs image data, got {data.kind!r} data")
        spec["image_shape"] = list(data.shape)
    if cfg.kind == "transformer":
        if data.text is not None:
            spec.update(data.text.net_spec())  # sequence length, vocabulary, discrete form
        elif data.kind == "vector" and len(data.shape) == 2:  # one-hot sequences (L, vocab)
            spec.update(seq_len=data.shape[0], vocab=data.shape[1], mode="continuous")
        else:
            raise ValueError(f"model kind 'transformer' needs text data or one-hot sequences "
                             f"(vector data of shape (L, vocab)), got {data.kind!r} data of "
                             f"shape {data.shape}")
    return spec


def users_network(cfg: PipelineConfig, data: Dataset,
                  registered: Callable[[str], dict[str, Any]] | None) -> UserVelocity:
    """The user's network (``model.kind: python``) for ``data``, with the weights of
    ``train.init_from`` where it names some (a file, or a registered model that
    ``registered`` fetches), checked to fit. ``wsfm.models.user.ModelError`` otherwise."""
    spec = net_spec(cfg.model, data)
    net = build_model(spec.pop("kind"), dim=data.dim, **spec)
    assert isinstance(net, UserVelocity), "a user's network needs model.kind python"
    if cfg.train.init_from:
        net.net.load_state_dict(load_initial_state(cfg.train.init_from, net, registered))
    return net


def check_users_network(cfg: PipelineConfig,
                        registered: Callable[[str], dict[str, Any]] | None) -> None:
    """Before any work: the user's network builds with its weights (:func:`users_network`)
    and its forward answers one call on a batch of two in the data's shape."""
    check_user_model(users_network(cfg, describe_source(cfg.data), registered))


def judged(data: PreparedData, config: PipelineConfig, *, train: bool = True) -> Dataset:
    """The description of ``data`` with at most ``evaluate.test_rows`` held-out rows and
    (``train``) as many training rows, their labels with them, drawn by the seed; all of a
    split that is smaller. What the evaluator is fitted on (an image classifier or PCA fits
    on one of the two) and what every row and real data are scored against (``train=False``:
    only that is needed): the metrics' cost grows with these rows (k-NN precision and recall
    compare each pair), so a split of millions is judged on a sample. Only the sampled rows
    are read; the other splits hold no rows."""
    k, seed = config.evaluate.test_rows, config.seed
    test, test_labels = data.sample("test", k, [seed, 29])
    changes: dict[str, Any] = {"test": test, "test_labels": test_labels}
    if train:
        rows, labels = data.sample("train", k, [seed, 31])
        changes.update(train=rows, labels=labels)
    return dataclasses.replace(data.describe(), **changes)


def make_evaluator(data: Dataset, cfg: EvalConfig, seed: int) -> Evaluator:
    if data.kind == "vector":
        return VectorEvaluator(n_projections=cfg.n_projections, seed=seed)
    if data.kind == "image":
        return ImageEvaluator(seed=seed)
    if data.text is not None and data.text.form == "windows":
        return ProseEvaluator()
    return TextEvaluator()


def remask_of(flow: FlowConfig) -> float:
    """The share the text sampler remasks: only a refiner trained to undo substitutes
    (coupling ``substitute``) samples by remasking; 0 means CTMC jumps."""
    return flow.remask if flow.coupling == "substitute" else 0.0


def make_sampler(data: Dataset, draft: Draft | None, net, t0: float, *, step_size: float,
                 method: str = "euler", draft_noise: float = 0.0, start: str = "draft",
                 exponent: float = 1.0, temperature: float = 1.0, final: str = "sample",
                 remask: float = 0.0):
    """The sampler for this kind of data: ODE integration for vectors and images, CTMC jumps
    for text codes (``temperature``, ``final``: see ``DiscreteWarmStartSampler``).
    ``draft=None`` makes the cold sampler (noise / all-mask start at 0). Built by
    ``wsfm.sampler.build_sampler``, as the shipped bundle's is: ``data`` only says what one
    sample is (D, and the codes' length and mask id for text). Its callers know which of the
    two samplers their data gets, hence no return annotation."""
    codes = None if data.text is None else (data.text.seq_len, data.text.mask_id)
    return build_sampler(draft, net, t0, step_size=step_size, dim=data.dim, codes=codes,
                         method=method, draft_noise=draft_noise, start=start,
                         exponent=exponent, temperature=temperature, final=final,
                         remask=remask)
