"""The run directory: where one training run keeps its model, configuration, metrics and plots.

Layout of a run directory::

    model.keras          the trained model (plain Keras; loads without tf_sine)
    config.json          the `Config` that built and trained it
    metrics.json         test rmse, mse, mae, steps, train_seconds, ...
    history.json         training loss by step
    prediction.png       predicted vs real sine on the test range
    loss.png             training loss by step
    scaling.json         the differencing and scaling the model sees the series through
    checkpoints/         step-000500.keras, ... with their training state, the last few kept,
                         and the training history's segments
    tensorboard/         event files, with --tensorboard

(`tf_sine.checkpoints` describes the checkpoint files.)

    .tf_sine/            the manifest of the files above, the lock, a replacement being built
                         (`tf_sine.owned`)

Every file is written atomically: to a temporary name in the same directory, flushed to disk,
then renamed over the final name, so a reader sees the old file or the new one, never half.
metrics.json marks a finished run; it is written after the plots.
"""

from __future__ import annotations

import datetime as _datetime
import functools
import os
from pathlib import Path
from typing import Any

from tf_sine.checkpoints import Checkpoints
from tf_sine.config import Config
from tf_sine.errors import RunError
from tf_sine.files import read_json
from tf_sine.owned import OwnedFolder

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
SCALING_FILE = "scaling.json"
SERIES_FILE = "series.csv"  # the series of a run trained on a pandas object
PREDICTION_PLOT = "prediction.png"
LOSS_PLOT = "loss.png"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
DEFAULT_ROOT = "runs"
# The files a finished run holds at its top level, each written at some point of a training.
RUN_FILES = (MODEL_FILE, CONFIG_FILE, METRICS_FILE, HISTORY_FILE, SCALING_FILE, SERIES_FILE, PREDICTION_PLOT,
             LOSS_PLOT)  # fmt: skip


def default_run_name(prefix: str = "run") -> str:
    """A fresh, sortable run name such as ``legacy-20261127-060102-123456``."""
    return f"{prefix}-{_datetime.datetime.now():%Y%m%d-%H%M%S-%f}"


class RunDirectory:
    """Paths and atomic writers for one run directory (see the module docstring).

    Every file is written through `files` (`tf_sine.owned.OwnedFolder`), which lists it in the
    run's manifest: only those files are ever replaced or removed.
    """

    def __init__(self, path: str | os.PathLike, argument: str = "run_dir"):
        # (OwnedFolder refuses "", which Path would read as ".")
        self.files = OwnedFolder(path, argument, working=(CHECKPOINT_DIR,))
        self.path = self.files.path

    @classmethod
    def create(
        cls, path: str | os.PathLike | None = None, prefix: str = "run", argument: str = "run_dir"
    ) -> RunDirectory:
        """Creates (or reopens) the folder `path`, default a new one under ``runs/``, and locks it.

        The lock is held until `release` (or the end of the process).

        Raises:
            RunError: `path` (named `argument` in the message) is empty, a file, a folder
                holding files tf_sine did not write, cannot be created or written, or is being
                written by another process.
        """
        if path is None:
            path = Path(DEFAULT_ROOT) / default_run_name(prefix)
        run = cls(path, argument)
        run.files.claim()
        return run

    def release(self) -> None:
        """Releases the writer's lock."""
        self.files.release()

    def replacement(self) -> RunDirectory:
        """The run that `overwrite` builds beside this one (`commit_replacement` moves it in)."""
        return RunDirectory(self.files.staging().path, self.files.argument)

    def commit_replacement(self) -> None:
        """Replaces this run's files by the finished replacement's, as one transaction."""
        self.files.commit()

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

    @functools.cached_property
    def checkpoints(self) -> Checkpoints:
        """The run's checkpoints (`tf_sine.checkpoints.Checkpoints`): one object, which knows the
        history segments the checkpoint it loaded or saved last relies on."""
        return Checkpoints(self.files, CHECKPOINT_DIR)

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def save_config(self, config: Config) -> Path:
        return self.files.write_json(CONFIG_FILE, config.to_dict())

    def load_config(self) -> Config:
        return Config.from_dict(read_json(self.config_path))

    def save_transform(self, transform: Any) -> Path:
        """Writes ``scaling.json``: a `tf_sine.dataset.Transform`, or for several series
        ``{"series": {id: transform}, "order": [id, ...]}`` (JSON's keys are written sorted)."""
        if isinstance(transform, dict):
            return self.files.write_json(
                SCALING_FILE,
                {"series": {k: t.to_dict() for k, t in transform.items()}, "order": list(transform)},
            )
        return self.files.write_json(SCALING_FILE, transform.to_dict())

    def load_transform(self) -> Any:
        """The run's `Transform` (id -> `Transform` for several series); the identity for runs
        written before scaling existed."""
        from tf_sine.dataset import Transform

        path = self.path / SCALING_FILE
        if not path.is_file():
            return Transform()
        values = read_json(path)
        if "series" in values:
            order = values.get("order", sorted(values["series"]))  # the table's order
            if sorted(order) != sorted(values["series"]):
                ordered, scaled = (", ".join(map(repr, keys)) for keys in (order, values["series"]))
                raise RunError(
                    "run_dir",
                    f"expected {str(path)!r} to order the series it scales, got {ordered} for {scaled}",
                )
            return {key: Transform.from_dict(values["series"][key]) for key in order}
        return Transform.from_dict(values)

    def save_series(self, series: Any) -> Path:
        """Writes ``series.csv``: a `tf_sine.series.Series` given in memory, its gaps empty
        again, so that `load_series` reads back the same values, dates and filled cells."""
        text = series.csv_text()
        return self.files.write(SERIES_FILE, lambda path: path.write_text(text, encoding="utf-8"))

    def load_series(self, config: Any) -> Any:
        """The series ``series.csv`` holds (`save_series`), read as `config` says (filled, its
        covariates; for several series, id -> series)."""
        from tf_sine.series import read_series_file

        if config.id_column is not None:
            from tf_sine.panel import read_panel

            return read_panel(self.path / SERIES_FILE, config.id_column, None, config.fill, config.covariates)
        return read_series_file(self.path / SERIES_FILE, fill=config.fill, covariates=config.covariates)

    def save_metrics(self, metrics: dict[str, Any]) -> Path:
        return self.files.write_json(METRICS_FILE, metrics)

    def save_history(self, training: Any) -> Path:
        """Writes ``history.json``: training loss by step and validation loss by step."""
        history = {"step": training.steps, "loss": training.losses}
        if training.val_steps:
            history.update(val_step=training.val_steps, val_loss=training.val_losses)
        return self.files.write_json(HISTORY_FILE, history)

    def save_model(self, model: Any) -> Path:
        """Saves a Keras model (with its optimizer state) atomically as model.keras."""
        return self.files.write(MODEL_FILE, model.save)

    def save_plot(self, name: str, ax: Any) -> Path:
        """Saves a matplotlib figure (`tf_sine.plotting.save_figure`) as `name`."""
        from tf_sine import plotting

        return self.files.write(name, lambda path: plotting.save_figure(ax, path))

    @property
    def finished(self) -> bool:
        """True once a run has written its metrics (after its plots): the mark of a completed run."""
        return self.metrics_path.is_file()

    @property
    def holds_files(self) -> bool:
        """True when tf_sine has written anything here."""
        return bool(self.files.owned_files())
