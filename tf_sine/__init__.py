"""tf_sine: the TensorFlow 2 / Keras 3 port of the TF1 contrib-era sine-wave LSTM script.

>>> import tf_sine
>>> x, y = tf_sine.generate_data(tf_sine.sine_series()[1])
>>> x.shape, y.shape
((989, 1, 10), (989, 1))
>>> model = tf_sine.build_model(units=8)          # a compiled keras.Model
>>> result = tf_sine.train(model, x, y, steps=20, progress=False)

The names below are imported on first use, so `import tf_sine` (and the CLI's argument
checks) do not pay for importing TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Config": "tf_sine.config",
    "TfSineError": "tf_sine.errors",
    "ConfigError": "tf_sine.errors",
    "DataError": "tf_sine.errors",
    "RunError": "tf_sine.errors",
    "ModelError": "tf_sine.errors",
    "PRESETS": "tf_sine.config",
    "get_preset": "tf_sine.config",
    "generate_data": "tf_sine.data",
    "all_windows": "tf_sine.data",
    "sine_series": "tf_sine.data",
    "sine_windows": "tf_sine.data",
    "read_series_file": "tf_sine.series",
    "from_pandas": "tf_sine.series",
    "Dataset": "tf_sine.dataset",
    "Transform": "tf_sine.dataset",
    "load_dataset": "tf_sine.dataset",
    "split_series": "tf_sine.dataset",
    "detect_period": "tf_sine.dataset",
    "build_model": "tf_sine.models",
    "build_model_from_config": "tf_sine.models",
    "train": "tf_sine.training",
    "TrainingResult": "tf_sine.training",
    "TrainingDivergedError": "tf_sine.training",
    "evaluate": "tf_sine.evaluation",
    "predict": "tf_sine.evaluation",
    "regression_metrics": "tf_sine.evaluation",
    "score": "tf_sine.evaluation",
    "rollout": "tf_sine.evaluation",
    "horizon_scores": "tf_sine.evaluation",
    "baseline_forecasts": "tf_sine.evaluation",
    "RunDirectory": "tf_sine.runs",
    "load_model": "tf_sine.trained",
    "open_run": "tf_sine.trained",
    "Run": "tf_sine.trained",
    "Forecast": "tf_sine.trained",
    "Backtest": "tf_sine.backtest",
    "run_experiment": "tf_sine.pipeline",
    "LegacyRegressor": "tf_sine.compat",
    "load_tf1_checkpoint": "tf_sine.compat",
    "convert_tf1_checkpoint": "tf_sine.compat",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tf_sine' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
