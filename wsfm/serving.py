"""The MLflow pyfunc model, logged as *code* (``mlflow.pyfunc.log_model(python_model=<this
file>)``): MLflow runs this file at load time instead of unpickling an object, so nothing is
cloudpickled and the model loads wherever the ``wsfm`` package is installed.

A request is a table with one row (the first row is used)::

    n       int, required   number of samples
    seed    int, required   sampling seed
    t0      float, optional start time override (the model's own t0 otherwise)
    steps   int, optional   solver steps override (the model's step-size rule otherwise)
    method  str, optional   ODE method override (vectors and images)

The answer: (n, D) float32 for vectors, (n, C, H, W) float32 for images, n strings for text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

import mlflow

__all__ = ["REQUEST_COLUMNS", "WSFMModel", "parse_request"]

REQUEST_COLUMNS = {"n": int, "seed": int, "t0": float, "steps": int, "method": str}


def parse_request(model_input: pd.DataFrame | dict) -> dict[str, Any]:
    """The first row of ``model_input`` as keyword arguments (missing and NaN overrides
    dropped). Raises ``ValueError`` naming an unknown or missing column."""
    if isinstance(model_input, pd.DataFrame):
        if model_input.empty:
            raise ValueError("empty request: give one row with n and seed")
        model_input = model_input.iloc[0].to_dict()
    if not isinstance(model_input, dict):
        raise ValueError(f"expected a table or mapping with n and seed, got "
                         f"{type(model_input).__name__}")
    unknown = set(model_input) - set(REQUEST_COLUMNS)
    if unknown:
        raise ValueError(f"unknown request keys {sorted(unknown)} (known: "
                         f"{', '.join(REQUEST_COLUMNS)})")
    given = {k: v for k, v in model_input.items()
             if v is not None and not (isinstance(v, float) and math.isnan(v))}
    missing = {"n", "seed"} - set(given)
    if missing:
        raise ValueError(f"request lacks {sorted(missing)}")
    return {k: REQUEST_COLUMNS[k](v) for k, v in given.items()}


class WSFMModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]  # lazy submodule
    """Draft + refiner + t0 + solver (``wsfm.bundle.BundleModel``) behind ``predict``."""

    def load_context(self, context) -> None:
        from wsfm.bundle import BundleModel

        self.model = BundleModel(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> np.ndarray | list[str]:
        request = parse_request(model_input)
        return self.model.sample(request.pop("n"), request.pop("seed"), **request)


mlflow.models.set_model(WSFMModel())
