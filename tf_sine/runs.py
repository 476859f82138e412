"""The run directory: where one training run keeps its model, configuration, metrics and plots.

Layout of a run directory::

    model.keras          the trained model (plain Keras; loads without tf_sine)
    config.json          the `Config` that built and trained it
    metrics.json         test rmse, mse, mae, steps, train_seconds, ...
    history.json         training loss by step
    prediction.png       predicted vs real sine on the test range
    loss.png             training loss by step
    scaling.json         the differencing and scaling the model sees the series through
    checkpoints/         step-000500.keras, ... (model + optimizer state), the last few kept,
                         each with step-000500.state.json (random-generator states, history)
                         and, with a validation part, step-000500.best.npz (best weights so far)
    tensorboard/         event files, with --tensorboard

Every file is written atomically: to a temporary name in the same directory, flushed to disk,
then renamed over the final name, so a reader sees the old file or the new one, never half.
metrics.json is written last: its presence marks a finished run.
"""

from __future__ import annotations

import datetime as _datetime
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tf_sine.config import Config
from tf_sine.errors import ModelError, RunError
from tf_sine.files import atomic_write, first_line, read_json, write_json

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
CHECKPOINTS_KEPT = 3

_CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.keras$")


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

    def save_checkpoint(
        self,
        model: Any,
        step: int,
        state: dict[str, Any] | None = None,
        best_weights: list[Any] | None = None,
        keep: int = CHECKPOINTS_KEPT,
    ) -> Path:
        """Saves ``checkpoints/step-NNNNNN.keras`` (model + optimizer) and its ``.state.json``.

        The state file (random-generator states, which `model.save` leaves out, and `state`)
        and, with validation, the best weights so far (``.best.npz``) are written first, so a
        checkpoint's ``.keras`` file never exists without them. Only the newest `keep`
        checkpoints are kept.
        """
        self.checkpoint_dir.mkdir(exist_ok=True)
        path = self.checkpoint_dir / f"step-{step:06d}.keras"
        write_json(_state_path(path), {**(state or {}), "step": step, "seed_generators": _seed_states(model)})
        if best_weights is not None:
            import numpy as np

            arrays = {f"w{index:04d}": weight for index, weight in enumerate(best_weights)}
            atomic_write(_best_path(path), lambda temporary: np.savez(temporary, **arrays))
        self.save_model(model, path)
        for _, old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
            _state_path(old).unlink(missing_ok=True)
            _best_path(old).unlink(missing_ok=True)
        return path

    def checkpoints(self) -> list[tuple[int, Path]]:
        """`(step, path)` of every checkpoint, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        steps = ((checkpoint_step(entry), entry) for entry in self.checkpoint_dir.iterdir())
        return sorted((step, entry) for step, entry in steps if step is not None)

    def load_checkpoint(
        self, notify: Callable[[str], None] | None = None
    ) -> tuple[Any, dict[str, Any]] | None:
        """Loads the newest readable checkpoint, with its random-generator states restored.

        A checkpoint that cannot be read (truncated, corrupt, its state file missing) is
        reported through `notify` and the one before it is tried.

        Returns:
            `(model, state)`, or None when there is no readable checkpoint.
        """
        for _, path in reversed(self.checkpoints()):
            try:
                state = read_json(_state_path(path))
                model = load_keras(path)  # the run's own files may not exist yet
                _restore_seed_states(model, state["seed_generators"])
                if state.get("best_step"):
                    state["best_weights"] = _load_weights(_best_path(path))
            except (OSError, ValueError, KeyError) as error:
                if notify is not None:
                    notify(f"checkpoint {path} is unreadable ({first_line(error)}); using the one before it")
                continue
            return model, state
        return None


def _state_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".keras", ".state.json"))


def _best_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".keras", ".best.npz"))


def _load_weights(path: Path) -> list[Any]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as arrays:
            return [arrays[name] for name in sorted(arrays.files)]
    except OSError:
        raise
    except Exception as error:  # a truncated archive raises zipfile.BadZipFile
        raise ValueError(f"cannot read {path.name}: {error}") from None


def _seed_generator_variables(model: Any) -> list[Any]:
    # Dropout draws from keras.random.SeedGenerator states: model variables that model.save
    # does not store. Without them a resumed run would draw other dropout masks.
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def _seed_states(model: Any) -> list[list[int]]:
    return [[int(n) for n in v.numpy()] for v in _seed_generator_variables(model)]


def _restore_seed_states(model: Any, states: list[list[int]]) -> None:
    variables = _seed_generator_variables(model)
    if len(variables) != len(states):
        raise ValueError(
            f"the state file has {len(states)} random-generator states, the model {len(variables)}"
        )
    for variable, values in zip(variables, states, strict=True):
        variable.assign(values)


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a checkpoint file name (``step-000500.keras`` -> 500), else None."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def load_keras(path: str | os.PathLike) -> Any:
    """Loads a ``.keras`` file, any failure of a damaged archive as one `ModelError`."""
    import keras

    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many kinds for a damaged archive
        raise ModelError(
            "model", f"cannot load {str(path)!r} as a Keras model: {first_line(error)}"
        ) from None
