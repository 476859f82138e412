"""The source experiment end to end: data, model, training, run directory, evaluation, plots.

`run_experiment(config)` does what the source script did (train on the sine, predict the test
range, print the error, plot), and writes everything to a run directory instead of a window.

>>> result = run_experiment(PRESETS["tiny"].config, "runs/doctest", progress=False)  # doctest: +SKIP
>>> sorted(result.metrics)                                                          # doctest: +SKIP
['checkpoint_seconds', 'engine', 'mae', 'mse', 'rmse', 'seed', 'steps', 'train_seconds']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine import plotting
from tf_sine.config import Config, ConfigError
from tf_sine.data import sine_windows
from tf_sine.evaluation import evaluate
from tf_sine.models import build_model_from_config
from tf_sine.runs import LOSS_PLOT, PREDICTION_PLOT, RunDirectory, atomic_write
from tf_sine.training import TrainingResult, train


@dataclass
class ExperimentResult:
    """What `run_experiment` returns: the run directory, the model and its scores."""

    run: RunDirectory
    model: keras.Model
    metrics: dict[str, Any]
    predictions: np.ndarray
    training: TrainingResult


def run_experiment(
    config: Config | None = None,
    run_dir: str | os.PathLike | None = None,
    *,
    tensorboard: bool = False,
    progress: bool = True,
    run_prefix: str = "run",
) -> ExperimentResult:
    """Trains `config` on the source's sine data and writes a complete run directory.

    Args:
        config: the experiment; default `Config()` (the `legacy` preset).
        run_dir: where to write; default a new directory under ``runs/``.
        tensorboard: also write TensorBoard logs (loss by step, model graph) under
            ``run_dir/tensorboard`` (needs the ``tensorboard`` package).
        progress: show a progress bar.
        run_prefix: the name prefix of a default run directory.

    Returns:
        An `ExperimentResult`; `metrics` holds `rmse`, `mse`, `mae` on the test windows,
        `steps`, `train_seconds` (training loop incl. tracing, without checkpoint writes),
        `checkpoint_seconds`, `engine`, `kernel` and `seed`.
    """
    config = config or Config()
    if tensorboard:
        _require_tensorboard()  # before any work is done
    run = RunDirectory.create(run_dir, prefix=run_prefix)
    writer = tf.summary.create_file_writer(str(run.tensorboard_dir)) if tensorboard else None
    run.save_config(config)

    keras.utils.set_random_seed(config.seed)
    train_x, train_y, test_x, test_y = sine_windows(config.timesteps, config.layout)
    model = build_model_from_config(config)
    if writer is not None:
        _write_graph(writer, model, test_x[:1])

    training = train(
        model,
        train_x,
        train_y,
        steps=config.steps,
        batch_size=config.batch_size,
        seed=config.seed,
        engine=config.engine,
        checkpoint_every=config.checkpoint_every,
        on_checkpoint=lambda trained, step: run.save_checkpoint(trained, step),
        progress=progress,
        summary_writer=writer,
    )
    run.save_model(model)
    run.save_history(training.steps, training.losses)

    metrics, predictions = evaluate(model, test_x, test_y)
    metrics.update(
        steps=training.final_step,
        train_seconds=round(training.train_seconds, 4),
        checkpoint_seconds=round(training.checkpoint_seconds, 4),
        engine=config.engine,
        kernel=training.kernel,
        seed=config.seed,
    )
    run.save_metrics(metrics)
    write_plots(run, predictions, test_y, training, metrics["rmse"])
    return ExperimentResult(run, model, metrics, predictions, training)


def write_plots(
    run: RunDirectory, predictions: np.ndarray, labels: np.ndarray, training: TrainingResult, rmse: float
) -> None:
    """Writes ``prediction.png`` and ``loss.png`` into the run directory."""
    title = f"test RMSE {rmse:.6f}"
    prediction_ax = plotting.plot_prediction(predictions, labels, title=title)
    atomic_write(run.path / PREDICTION_PLOT, lambda path: plotting.save_figure(prediction_ax, path))
    loss_ax = plotting.plot_loss(training.steps, training.losses)
    atomic_write(run.path / LOSS_PLOT, lambda path: plotting.save_figure(loss_ax, path))


def _require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401  (tf.summary needs it to write scalars)
    except ImportError:
        raise ConfigError(
            "tensorboard", "needs the tensorboard package: pip install 'tf-sine[tensorboard]'"
        ) from None


def _write_graph(writer: tf.summary.SummaryWriter, model: keras.Model, example: np.ndarray) -> None:
    """Writes the model's forward graph for TensorBoard's Graphs tab."""
    forward = tf.function(lambda x: model(x, training=False))
    tf.summary.trace_on(graph=True)
    forward(tf.constant(example))
    with writer.as_default():
        tf.summary.trace_export("model", step=0)
