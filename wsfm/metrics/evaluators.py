"""Evaluators: one quality metric suite per kind of data, fitted once and saved.

An evaluator is fitted on the training split (an image classifier, say), saved as an artifact
and loaded by the evaluation stage. ``score(samples, test)`` returns a dict of metrics whose
``primary`` entry ranks methods; ``lower_is_better`` says which way.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from wsfm.metrics.distances import energy_distance, sliced_wasserstein
from wsfm.metrics.features import (
    FeatureClassifier,
    frechet_distance,
    knn_precision_recall,
    train_classifier,
)

__all__ = ["EVALUATORS", "Evaluator", "ImageEvaluator", "ProseEvaluator", "TextEvaluator",
           "VectorEvaluator", "load_evaluator"]

if TYPE_CHECKING:
    from wsfm.data.base import Dataset

META = "evaluator.json"


class Evaluator(ABC):
    kind: ClassVar[str]
    primary: ClassVar[str]
    lower_is_better: ClassVar[bool]

    @abstractmethod
    def fit(self, data: Dataset) -> None:
        """Fit on the dataset's training split (and its labels where there are any)."""

    @abstractmethod
    def score(self, samples: np.ndarray, test: np.ndarray) -> dict[str, float]:
        """Metrics of ``samples`` (n, D) against held-out ``test`` (M, D)."""

    def save(self, folder: Path) -> None:
        (Path(folder) / META).write_text(json.dumps({"kind": self.kind, **self.params()}))

    def params(self) -> dict[str, Any]:
        return {}

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any]) -> Evaluator:
        return cls(**params)


class VectorEvaluator(Evaluator):
    """Sliced Wasserstein-2 (primary) and energy distance, straight on the vectors."""

    kind, primary, lower_is_better = "vector", "swd", True

    def __init__(self, n_projections: int = 256, seed: int = 0):
        self.n_projections, self.seed = n_projections, seed

    def params(self) -> dict[str, Any]:
        return {"n_projections": self.n_projections, "seed": self.seed}

    def fit(self, data: Dataset) -> None:
        pass  # nothing to learn

    def score(self, samples: np.ndarray, test: np.ndarray) -> dict[str, float]:
        return {"swd": sliced_wasserstein(samples, test, self.n_projections, seed=self.seed),
                "energy": energy_distance(samples[:2000], test[:2000])}


class ImageEvaluator(Evaluator):
    """Frechet distance (primary), precision, recall and classifier confidence in the
    penultimate features of a classifier (labelled data) or in PCA space (unlabelled).

    The classifier is fitted on the held-out split where its labels are known (glyphs: the
    judge never sees the training renderings, so a model that copies them gains nothing from
    features tuned to them), else on the training split (digits)."""

    kind, primary, lower_is_better = "image", "fd", True

    def __init__(self, seed: int = 0, classes: int = 0, dim: int = 0):
        self.seed, self.classes, self.dim = seed, classes, dim
        self.net: FeatureClassifier | None = None
        self.pca: tuple[np.ndarray, np.ndarray] | None = None  # mean (D,), components (F, D)

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed, "classes": self.classes, "dim": self.dim}

    def fit(self, data: Dataset) -> None:
        held_out = data.test_labels is not None
        x, labels = (data.test, data.test_labels) if held_out else (data.train, data.labels)
        self.dim = x.shape[1]
        if labels is not None:
            self.net = train_classifier(x, labels, seed=self.seed)
            self.classes = int(labels.max()) + 1
        else:
            mean = x.mean(0)
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            self.pca = (mean, vt[: min(32, len(vt))])

    def features(self, x: np.ndarray) -> np.ndarray:
        if self.net is not None:
            with torch.no_grad():
                return self.net.features(torch.from_numpy(np.asarray(x, np.float32))).numpy()
        assert self.pca is not None, "fit or load the evaluator first"
        mean, comps = self.pca
        return (x - mean) @ comps.T

    def score(self, samples: np.ndarray, test: np.ndarray) -> dict[str, float]:
        fs, ft = self.features(samples), self.features(test)
        precision, recall = knn_precision_recall(ft, fs[: max(len(ft), 1000)])
        out = {"fd": frechet_distance(fs, ft), "precision": precision, "recall": recall}
        if self.net is not None:
            with torch.no_grad():
                probs = torch.softmax(self.net(torch.from_numpy(np.asarray(samples, np.float32))),
                                      dim=1)
            out["confidence"] = float(probs.max(dim=1).values.mean())
        return out

    def save(self, folder: Path) -> None:
        super().save(folder)
        if self.net is not None:
            torch.save(self.net.state_dict(), Path(folder) / "classifier.pt")
        else:
            assert self.pca is not None, "fit the evaluator first"
            np.savez(Path(folder) / "pca.npz", mean=self.pca[0], components=self.pca[1])

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any]) -> Evaluator:
        self = cls(**params)
        folder = Path(folder)
        if (folder / "classifier.pt").is_file():
            self.net = FeatureClassifier(self.dim, self.classes)
            self.net.load_state_dict(torch.load(folder / "classifier.pt", weights_only=True))
            self.net.eval()
        else:
            with np.load(folder / "pca.npz") as f:
                self.pca = (f["mean"], f["components"])
        return self


class TextEvaluator(Evaluator):
    """Held-out valid rate (primary: samples that are valid words outside the training
    split), length-standardised and raw valid rates, NLL per character under a character
    5-gram LM fitted on the held-out words, and the distance between length histograms
    (``wsfm.metrics.text``). Samples are (n, L) character codes."""

    kind, primary, lower_is_better = "text", "novel_valid_rate", False

    def __init__(self, order: int = 5):
        self.order = order
        self.words: dict[str, list[str]] = {}

    def params(self) -> dict[str, Any]:
        return {"order": self.order}

    def fit(self, data: Dataset) -> None:
        assert data.text is not None, "a text evaluator needs text data"
        self._fit_words({"train": list(data.text.train_words),
                         "test": list(data.text.test_words)})

    def _fit_words(self, words: dict[str, list[str]]) -> None:
        from wsfm.metrics.text import CharNgramLM

        self.words = words
        self.train_set = set(words["train"])
        self.valid = self.train_set | set(words["test"])
        self.lengths = [len(w) for w in self.words["test"]]
        self.lm = CharNgramLM(order=self.order).fit(self.words["test"])

    def score(self, samples: np.ndarray, test: np.ndarray) -> dict[str, float]:
        from wsfm.data.words import VOCAB, decode
        from wsfm.metrics.text import text_metrics

        codes = np.clip(np.asarray(samples, dtype=np.int64), 0, VOCAB - 1)  # (n, L)
        return text_metrics(decode(codes), self.train_set, self.valid, self.lengths, self.lm)

    def save(self, folder: Path) -> None:
        super().save(folder)
        (Path(folder) / "words.json").write_text(json.dumps(self.words))

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any]) -> Evaluator:
        self = cls(**params)
        words = json.loads((Path(folder) / "words.json").read_text())
        self._fit_words({"train": words["train"], "test": words["test"]})  # LM refits fast
        return self


class ProseEvaluator(Evaluator):
    """Prose windows (``wsfm.metrics.prose``): the generative NLL in bits per character under
    a Kneser-Ney n-gram fitted on the held-out judge documents (primary), the entropy inside
    each sample beside it, the share of common English words and the verbatim-copy share."""

    kind, primary, lower_is_better = "prose", "nll", True

    def __init__(self, order: int = 7, alphabet: str = ""):
        self.order, self.alphabet = order, alphabet
        self.documents: dict[str, list[str]] = {}

    def params(self) -> dict[str, Any]:
        return {"order": self.order, "alphabet": self.alphabet}

    def fit(self, data: Dataset) -> None:
        assert data.text is not None and data.text.form == "windows", "needs prose windows"
        self.alphabet = data.text.alphabet
        self._fit_documents({"train": list(data.text.train_words),
                             "judge": list(data.text.test_words)})

    def _fit_documents(self, documents: dict[str, list[str]]) -> None:
        from wsfm.metrics.prose import KneserNeyLM, common_words, training_runs

        self.documents = documents
        index = {c: k + 1 for k, c in enumerate(self.alphabet)}
        judge = [np.array([index[c] for c in doc], dtype=np.int64)
                 for doc in documents["judge"]]
        self.lm = KneserNeyLM(len(self.alphabet) + 1, self.order).fit(judge)
        self.runs = training_runs(documents["train"])
        self.words = common_words()

    def score(self, samples: np.ndarray, test: np.ndarray) -> dict[str, float]:
        from wsfm.data.words import decode_with
        from wsfm.metrics.prose import prose_metrics

        codes = np.clip(np.asarray(samples, dtype=np.int64), 1, len(self.alphabet))
        return prose_metrics(codes, decode_with(codes, self.alphabet), self.lm, self.runs,
                             self.words)

    def save(self, folder: Path) -> None:
        super().save(folder)
        (Path(folder) / "documents.json").write_text(json.dumps(self.documents))

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any]) -> Evaluator:
        self = cls(**params)
        self._fit_documents(json.loads((Path(folder) / "documents.json").read_text()))
        return self


EVALUATORS: dict[str, type[Evaluator]] = {"vector": VectorEvaluator, "image": ImageEvaluator,
                                          "text": TextEvaluator, "prose": ProseEvaluator}


def load_evaluator(folder: str | Path) -> Evaluator:
    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    kind = meta.pop("kind")
    if kind not in EVALUATORS:
        raise ValueError(f"{folder}: unknown evaluator kind {kind!r}; known: {sorted(EVALUATORS)}")
    return EVALUATORS[kind].load(folder, meta)
