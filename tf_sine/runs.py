"""The run directory: where one training run keeps its model, configuration, metrics and plots.

Layout of a run directory::

    model.keras          the trained model (plain Keras; loads without tf_sine)
    config.json          the `Config` that built and trained it
    metrics.json         test rmse, mse, mae, steps, train_seconds, ...
    history.json         training loss by step
    prediction.png       predicted vs real sine on the test range
    loss.png             training loss by step
    scaling.json         the differencing and scaling the model sees the series through
    checkpoints/         step-000500.keras, ... with their training state, the last few kept
    tensorboard/         event files, with --tensorboard

(`tf_sine.checkpoints` describes the checkpoint files.)

Every file is written atomically: to a temporary name in the same directory, flushed to disk,
then renamed over the final name, so a reader sees the old file or the new one, never half.
metrics.json marks a finished run; the plots are drawn after it.
"""

from __future__ import annotations

import datetime as _datetime
import os
import shutil
from pathlib import Path
from typing import Any

from tf_sine.checkpoints import Checkpoints
from tf_sine.config import Config
from tf_sine.errors import RunError
from tf_sine.files import atomic_write, read_json, write_json

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
SCALING_FILE = "scaling.json"
PREDICTION_PLOT = "prediction.png"
LOSS_PLOT = "loss.png"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
DEFAULT_ROOT = "runs"


def default_run_name(prefix: str = "run") -> str:
    """A fresh, sortable run name such as ``legacy-20261127-060102-123456``."""
    return f"{prefix}-{_datetime.datetime.now():%Y%m%d-%H%M%S-%f}"


class RunDirectory:
    """Paths and atomic writers for one run directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(
        cls, path: str | os.PathLike | None = None, prefix: str = "run", argument: str = "run_dir"
    ) -> RunDirectory:
        """Creates (or reuses) the folder `path`, default a new one under ``runs/``.

        Raises:
            RunError: `path` (named `argument` in the message) is a file, or cannot be
                created or written.
        """
        if path is None:
            path = Path(DEFAULT_ROOT) / default_run_name(prefix)
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunError(argument, f"expected a directory, got the file {str(path)!r}")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunError(argument, f"cannot create {str(path)!r}: {error.strerror}") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise RunError(argument, f"expected a writable directory, got {str(path)!r}")
        return cls(path)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def checkpoints(self) -> Checkpoints:
        """The run's checkpoints (`tf_sine.checkpoints.Checkpoints`)."""
        return Checkpoints(self.checkpoint_dir)

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def save_config(self, config: Config) -> Path:
        return write_json(self.config_path, config.to_dict())

    def load_config(self) -> Config:
        return Config.from_dict(read_json(self.config_path))

    def save_transform(self, transform: Any) -> Path:
        """Writes ``scaling.json`` (a `tf_sine.dataset.Transform`)."""
        return write_json(self.path / SCALING_FILE, transform.to_dict())

    def load_transform(self) -> Any:
        """The run's `Transform`; the identity for runs written before scaling existed."""
        from tf_sine.dataset import Transform

        path = self.path / SCALING_FILE
        return Transform.from_dict(read_json(path)) if path.is_file() else Transform()

    def save_metrics(self, metrics: dict[str, Any]) -> Path:
        return write_json(self.metrics_path, metrics)

    def save_history(self, training: Any) -> Path:
        """Writes ``history.json``: training loss by step and validation loss by step."""
        history = {"step": training.steps, "loss": training.losses}
        if training.val_steps:
            history.update(val_step=training.val_steps, val_loss=training.val_losses)
        return write_json(self.history_path, history)

    def save_model(self, model: Any, path: str | os.PathLike | None = None) -> Path:
        """Saves a Keras model (with its optimizer state) atomically, by default as model.keras."""
        return atomic_write(path or self.model_path, model.save)

    @property
    def finished(self) -> bool:
        """True once a run has written its metrics: the mark of a completed run."""
        return self.metrics_path.is_file()

    def clear(self) -> None:
        """Removes everything a run writes here (for ``--overwrite``); other files are left alone."""
        for name in (
            MODEL_FILE,
            CONFIG_FILE,
            METRICS_FILE,
            HISTORY_FILE,
            SCALING_FILE,
            PREDICTION_PLOT,
            LOSS_PLOT,
        ):
            (self.path / name).unlink(missing_ok=True)
        for folder in (self.checkpoint_dir, self.tensorboard_dir):
            if folder.is_dir():
                shutil.rmtree(folder)

    def remove_temporaries(self) -> list[Path]:
        """Deletes half-written temporary files that a killed process left behind."""
        leftovers = [p for folder in (self.path, self.checkpoint_dir) if folder.is_dir()
                     for p in folder.glob(".*.tmp-*")]  # fmt: skip
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        return leftovers
