"""Predictions, error metrics, naive baselines and multi-step (autoregressive) forecasts.

The source printed `sqrt(mean((predicted - y) ** 2))` under the label "Mean Square Error"; it is
a root mean squared error, and we call it `rmse`.

>>> regression_metrics(np.array([[1.0], [2.0]]), np.array([[1.0], [4.0]]))
{'rmse': 1.4142135623730951, 'mse': 2.0, 'mae': 1.0}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tf_sine.config import ConfigError
from tf_sine.data import layout_of
from tf_sine.dataset import Dataset, Transform, first_target, root_mean_square

PREDICT_BATCH = 4096


def predict(model: Any, x: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Runs `model` on windows `x` (inference mode, no dropout).

    Models the native kernels cover (`tf_sine.kernels.native_inference`) run on them: the same
    predictions within float tolerance, without Keras's `predict` machinery and its tracing
    (README, "Prediction", has the measurements); others on `model.predict`.

    Args:
        model: a Keras model taking `(batch, *x.shape[1:])`.
        x: windows, shape `(N, 1, T)` or `(N, T, 1)` matching the model's input.
        batch_size: windows per forward pass.

    Returns:
        float32 predictions of shape `(N, K)`: `K` is 1, or a direct model's `horizon`.

    Raises:
        ValueError: `x` does not fit the model's input shape.
    """
    check_fits_model(model, x)
    from tf_sine.kernels import native_inference  # TensorFlow is loaded by now: there is a model

    forward = native_inference(model)
    if forward is None:
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    parts = [forward(x[start : start + batch_size]).numpy() for start in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, outputs_of(model)), np.float32)


def outputs_of(model: Any) -> int:
    """How many values `model` predicts at once: 1, or a direct model's `horizon`."""
    return int(model.output_shape[-1])


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
    return {"rmse": root_mean_square(error), "mse": mse, "mae": float(np.mean(np.abs(error)))}


def evaluate(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Predicts `x` and scores it against `y`.

    Returns:
        `(metrics, predictions)`: the dict of `regression_metrics` and the `(N, 1)` predictions.
    """
    predictions = predict(model, x)
    return regression_metrics(y, predictions), predictions


def predict_levels(model: Any, data: Dataset, transform: Transform, targets: np.ndarray) -> np.ndarray:
    """One-step predictions of `data.levels[targets]`, in the series' units, shape `(len(targets),)`."""
    timesteps, layout = layout_of(model.input_shape)
    x = data.inputs(transform, targets, timesteps, layout)
    return transform.decode(predict(model, x)[:, 0], data.levels[np.asarray(targets) - 1])


def score(
    model: Any, data: Dataset, transform: Transform, period: int | None = None
) -> tuple[dict[str, Any], np.ndarray]:
    """The model's one-step errors on the test part, beside the baselines', in the series' units.

    Returns:
        `(metrics, predictions)`: `rmse`, `mse`, `mae`, the scale-free `mase`, `smape` and
        `mape` (`scale_free_metrics`), `baselines` (name -> RMSE on the same targets, see
        `baseline_forecasts`), `baseline_metrics` (name -> each of those scores), `period`,
        `mase_scale` and, for a series with filled gaps, `filled` (how many; never targets);
        predictions of shape `(n, 1)`.
    """
    targets = data.test_targets
    truth = data.levels[targets]
    predictions = predict_levels(model, data, transform, targets).reshape(-1, 1)
    metrics: dict[str, Any] = regression_metrics(truth.reshape(-1, 1), predictions)
    scale = mase_scale(data, period)
    metrics.update(scale_free_metrics(truth, predictions[:, 0], scale))
    baselines = baseline_forecasts(data, targets - 1, 1, period)
    metrics["baselines"] = {name: rmse(values[:, 0], truth) for name, values in baselines.items()}
    metrics["baseline_metrics"] = {
        name: {"rmse": metrics["baselines"][name], "mae": float(np.mean(np.abs(values[:, 0] - truth))),
               **scale_free_metrics(truth, values[:, 0], scale)}
        for name, values in baselines.items()
    }  # fmt: skip
    metrics["period"] = period
    metrics["mase_scale"] = scale
    if data.filled is not None:
        metrics["filled"] = int(data.filled.sum())
    return metrics, predictions


def mase_scale(data: Dataset, period: int | None) -> float | None:
    """MASE's denominator: the training part's in-sample MAE of the seasonal-naive forecast
    (`period` steps back; one step, the naive forecast, without a period). None when it is 0
    (a constant training part), where no error can be scaled by it."""
    train = data.levels[: data.train_end]
    lag = period if period and period < len(train) else 1
    scale = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return scale if scale > 0 else None


def scale_free_metrics(truth: np.ndarray, forecast: np.ndarray, scale: float | None) -> dict[str, Any]:
    """MASE, sMAPE and MAPE of `forecast` against `truth` (same shape `(n,)`), in percent but MASE.

    * ``mase``: the MAE divided by `scale` (`mase_scale`); below 1 beats the training part's
      seasonal-naive forecast. None without a scale.
    * ``smape``: the mean of `200 |f - y| / (|f| + |y|)`; a pair of zeros counts 0.
    * ``mape``: the mean of `100 |f - y| / |y|`, only where no truth is zero (it divides by
      each value); otherwise left out, with ``mape_omitted`` saying why.
    """
    truth, forecast = np.asarray(truth, np.float64), np.asarray(forecast, np.float64)
    error = np.abs(forecast - truth)
    size = np.abs(forecast) + np.abs(truth)
    with np.errstate(invalid="ignore", divide="ignore"):
        smape = np.where(size > 0, 2 * error / size, 0.0)
    metrics: dict[str, Any] = {
        "mase": float(np.mean(error) / scale) if scale else None,
        "smape": float(100 * np.mean(smape)),
    }
    zeros = int(np.sum(truth == 0))
    if zeros:
        metrics["mape_omitted"] = f"{zeros} of the {len(truth)} true values are 0, which MAPE divides by"
    else:
        metrics["mape"] = float(100 * np.mean(error / np.abs(truth)))
    return metrics


def baseline_forecasts(
    data: Dataset, origins: np.ndarray, horizon: int, period: int | None
) -> dict[str, np.ndarray]:
    """Naive forecasts of `data.levels[origins + h]` for h = 1..`horizon`, shape `(n, horizon)` each.

    * ``persistence``: the last known value, `levels[origin]`;
    * ``seasonal_naive``: the value one season before, `levels[origin + h - period * ceil(h / period)]`
      (left out without a period, or when the history is shorter than a season);
    * ``mean``: the mean of the training part.
    """
    origins = np.asarray(origins, dtype=np.int64)
    steps = np.arange(1, horizon + 1)
    forecasts = {
        "persistence": np.repeat(data.levels[origins][:, None], horizon, axis=1),
        "mean": np.full((len(origins), horizon), data.levels[: data.train_end].mean()),
    }
    if period:
        source = origins[:, None] + steps - period * np.ceil(steps / period).astype(np.int64)
        if source.min() >= 0:
            forecasts["seasonal_naive"] = data.levels[source]
    return forecasts


def rollout(
    model: Any,
    data: Dataset,
    transform: Transform,
    origins: np.ndarray,
    horizon: int,
    on_step: Callable[[int, int], None] | None = None,
    direct: bool = False,
) -> np.ndarray:
    """Forecasts `horizon` steps after each origin by feeding predictions back (autoregressive).

    The first window ends at `origins` (the last value known); each prediction joins the
    window for the next step. `on_step(done, horizon)` is called after each step (progress).
    With `direct`, a model that predicts `horizon` values at once answers in one pass instead
    (`forecast_method`, `direct_forecasts`).

    Returns:
        float64 array `(len(origins), horizon)` in the series' units.
    """
    origins = np.asarray(origins, dtype=np.int64)
    if direct and forecast_method(model, horizon) == "direct":
        return direct_forecasts(model, data, transform, origins)[:, :horizon]
    timesteps, layout = layout_of(model.input_shape)
    if len(origins):
        data.check_extras(int(origins.max()) + horizon)  # before any step: covariates known that far
    window = data.value_windows(transform, origins + 1, timesteps)  # (n, T), model space
    previous = data.levels[origins]
    forecast = np.empty((len(origins), horizon))
    for h in range(horizon):
        outputs = predict(model, data.with_extras(transform, window, origins + 1 + h, layout))[:, 0]
        forecast[:, h] = previous = transform.decode(outputs, previous)
        window = np.concatenate([window[:, 1:], outputs[:, None]], axis=1)
        if on_step is not None:
            on_step(h + 1, horizon)
    return forecast


def direct_forecasts(model: Any, data: Dataset, transform: Transform, origins: np.ndarray) -> np.ndarray:
    """A direct model's forecasts after each origin in one pass: float64 `(n, K)`, series units.

    Output `k` of the window ending at an origin is the value `k + 1` steps after it
    (`tf_sine.build_model(horizon=K)`); nothing is fed back.
    """
    timesteps, layout = layout_of(model.input_shape)
    origins = np.asarray(origins, dtype=np.int64)
    outputs = predict(model, data.inputs(transform, origins + 1, timesteps, layout))
    return transform.decode_ahead(outputs, data.levels[origins])


def forecast_method(model: Any, horizon: int) -> str:
    """``"direct"`` where `model` predicts `horizon` (> 1) values or more at once, else
    ``"recursive"`` (each next value fed back, `rollout`)."""
    return "direct" if outputs_of(model) >= horizon > 1 else "recursive"


def horizon_scores(
    model: Any,
    data: Dataset,
    transform: Transform,
    horizon: int,
    period: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """RMSE by horizon 1..`horizon` over the test targets, for the model and each baseline.

    The model is rolled out (recursive); a direct model (`K` outputs) is also scored on its
    own forecasts for horizons 1..min(`K`, `horizon`), on the same targets.

    `on_step` sees the rollout's progress (`rollout`).

    Horizon `h` forecasts every test target from the origin `h` steps before it (rolled out
    from the values known there; an origin may lie before the test part), so every horizon is
    scored on the same targets, the whole test part.

    Returns:
        `{"rmse_by_horizon": [...], "baselines_by_horizon": {name: [...]}, "targets": n}`, and
        `"direct_rmse_by_horizon"` for a direct model.

    Raises:
        ValueError: `horizon` reaches back before the first full window.
    """
    test = data.test_targets
    longest = max_horizon(model, data, transform)
    if horizon > longest:
        raise ConfigError(
            "horizon",
            f"expected at most {longest} (the steps between the first full window and the test part), "
            f"got {horizon}",
        )
    rolled = rolled_forecasts(model, data, transform, test, horizon, period, on_step)
    scores = {name: [rmse(row, data.levels[test]) for row in values] for name, values in rolled.items()}
    result = {"rmse_by_horizon": scores.pop("model"), "baselines_by_horizon": scores, "targets": len(test)}
    direct = min(outputs_of(model), horizon)
    if direct > 1:  # a direct model: its own forecasts beside the rollout, on the same targets
        origins = np.arange(test[0] - direct, test[-1])
        forecasts = direct_forecasts(model, data, transform, origins)
        result["direct_rmse_by_horizon"] = [
            rmse(forecasts[test - h - origins[0], h - 1], data.levels[test]) for h in range(1, direct + 1)
        ]
    return result


def rolled_forecasts(
    model: Any,
    data: Dataset,
    transform: Transform,
    targets: np.ndarray,
    horizon: int,
    period: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
    direct: bool = False,
) -> dict[str, np.ndarray]:
    """Each of `targets` forecast from 1..`horizon` steps before it: the model rolled out (or,
    with `direct`, in one pass where it can, see `rollout`), and each baseline.

    Returns:
        name (``"model"``, then the baselines') -> float64 `(horizon, len(targets))`: row
        `h - 1` holds the forecasts made `h` steps ahead.
    """
    origins = np.arange(targets[0] - horizon, targets[-1])  # every origin some horizon needs
    reach = int(targets[-1]) + horizon  # the last origins roll past the last target
    if data.extras is not None and reach > len(data.extras):
        # Covariates unknown there: NaN. Those steps lie past the last target and are never kept.
        padding = np.full((reach - len(data.extras), data.extras.shape[1]), np.nan)
        data = dataclasses.replace(data, extras=np.concatenate([data.extras, padding]))
    forecasts = {"model": rollout(model, data, transform, origins, horizon, on_step, direct)}
    forecasts.update(baseline_forecasts(data, origins, horizon, period))
    # Row i is origin targets[0] - horizon + i; target t at horizon h is row t - h - origins[0].
    steps = range(1, horizon + 1)
    return {name: np.stack([values[targets - h - origins[0], h - 1] for h in steps])
            for name, values in forecasts.items()}  # fmt: skip


def conformal_widths(
    model: Any,
    data: Dataset,
    transform: Transform,
    horizon: int,
    level: float,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Half-widths of split-conformal prediction intervals, one per horizon 1..`horizon`.

    The model forecasts every validation target from `h` steps before it (direct where it
    predicts `horizon` values at once, else rolled out: `rollout`); the interval
    at horizon `h` is the forecast plus or minus the `ceil((n + 1) level)`-th smallest of those
    `n` absolute errors, which covers a new value with probability at least `level` when the
    errors are exchangeable (Vovk et al.; Lei et al. 2018). The validation part was not fitted
    on, so its errors are honest; a series whose errors drift over time is covered less.

    Returns:
        float64 `(horizon,)`, in the series' units.

    Raises:
        ConfigError: `level` is not in (0, 1), there is no validation part, it is too short
            for `level`, or `horizon` reaches back before the first full window.
    """
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ConfigError("interval", f"expected a coverage level between 0 and 1 such as 0.9, got {level!r}")
    validation = data.val_targets
    if not len(validation):
        raise ConfigError(
            "interval", "needs a validation part to calibrate on (a validation fraction in `split`), got none"
        )
    earliest = first_target(layout_of(model.input_shape)[0], transform.difference) - 1
    if validation[0] - horizon < earliest:
        raise ConfigError(
            "horizon",
            f"expected at most {int(validation[0]) - earliest} steps for intervals (the steps between the "
            f"first full window and the validation part), got {horizon}",
        )
    forecasts = rolled_forecasts(model, data, transform, validation, horizon, None, on_step, direct=True)
    errors = np.abs(forecasts["model"] - data.levels[validation])
    n = len(validation)
    rank = math.ceil((n + 1) * level)
    if rank > n:
        raise ConfigError(
            "interval",
            f"expected at most {n / (n + 1):.4g} with {n} validation values (the conformal rank "
            f"ceil((n + 1) level) must not pass n), got {level}",
        )
    return np.sort(errors, axis=1)[:, rank - 1]


def interval_coverage(
    model: Any, data: Dataset, transform: Transform, horizon: int, level: float
) -> dict[str, Any]:
    """The test part's empirical coverage of `conformal_widths`' intervals, by horizon.

    Returns:
        `{"level": level, "half_width_by_horizon": [...], "coverage_by_horizon": [...]}`: the
        fraction of test targets inside the interval made `h` steps before each.
    """
    widths = conformal_widths(model, data, transform, horizon, level)
    test = data.test_targets
    forecasts = rolled_forecasts(model, data, transform, test, horizon, direct=True)["model"]
    inside = np.abs(forecasts - data.levels[test]) <= widths[:, None]
    return {
        "level": level,
        "half_width_by_horizon": widths.tolist(),
        "coverage_by_horizon": inside.mean(axis=1).tolist(),
    }


def max_horizon(model: Any, data: Dataset, transform: Transform) -> int:
    """The longest horizon `horizon_scores` can score: origins must end a full window."""
    earliest = (
        first_target(layout_of(model.input_shape)[0], transform.difference) - 1
    )  # the first window's end
    return int(data.test_targets[0]) - earliest


def rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The root mean squared error of `predicted` against `truth` (same shape), in float64."""
    return root_mean_square(np.asarray(predicted, np.float64) - truth)
