"""Predictions and error metrics.

The source printed `sqrt(mean((predicted - y) ** 2))` under the label "Mean Square Error"; it is
a root mean squared error, and we call it `rmse`.

>>> regression_metrics(np.array([[1.0], [2.0]]), np.array([[1.0], [4.0]]))
{'rmse': 1.4142135623730951, 'mse': 2.0, 'mae': 1.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_sine.config import ConfigError
from tf_sine.data import layout_of

PREDICT_BATCH = 4096


def predict(model: Any, x: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Runs `model` on windows `x` (inference mode, no dropout).

    Args:
        model: a Keras model taking `(batch, *x.shape[1:])`.
        x: windows, shape `(N, 1, T)` or `(N, T, 1)` matching the model's input.
        batch_size: windows per forward pass.

    Returns:
        float32 predictions of shape `(N, 1)`.

    Raises:
        ValueError: `x` does not fit the model's input shape.
    """
    check_fits_model(model, x)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def check_fits_model(model: Any, x: np.ndarray) -> None:
    """Raises `ValueError` when windows `x` do not have the model's input shape."""
    expected = tuple(model.input_shape[1:])
    if x.ndim != 3 or tuple(x.shape[1:]) != expected:
        timesteps, layout = layout_of(model.input_shape)
        raise ConfigError(
            "model",
            f"expects windows of shape (N, {expected[0]}, {expected[1]}) "
            f"({layout} layout, timesteps={timesteps}), got {x.shape}",
        )


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MSE and MAE between labels and predictions of the same shape `(N, 1)`.

    Shapes are checked, not broadcast: a squeezed `(N,)` prediction against `(N, 1)` labels
    would silently broadcast to an `(N, N)` error matrix.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ConfigError("y_pred", f"expected shape {y_true.shape} like the labels, got {y_pred.shape}")
    error = y_pred - y_true
    mse = float(np.mean(error**2))
    return {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": float(np.mean(np.abs(error)))}


def evaluate(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Predicts `x` and scores it against `y`.

    Returns:
        `(metrics, predictions)`: the dict of `regression_metrics` and the `(N, 1)` predictions.
    """
    predictions = predict(model, x)
    return regression_metrics(y, predictions), predictions
