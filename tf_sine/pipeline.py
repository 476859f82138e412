"""The source experiment end to end: data, model, training, run directory, evaluation, plots.

`run_experiment(config)` does what the source script did (train on the sine, predict the test
range, print the error, plot), and writes everything to a run directory instead of a window.

>>> result = run_experiment(PRESETS["tiny"].config, "runs/doctest", progress=False)  # doctest: +SKIP
>>> sorted(result.metrics)                                                          # doctest: +SKIP
['checkpoint_seconds', 'engine', 'mae', 'mse', 'rmse', 'seed', 'steps', 'train_seconds']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine import plotting
from tf_sine.config import Config, ConfigError
from tf_sine.dataset import (
    PANDAS_SOURCE,
    Dataset,
    Transform,
    data_fingerprint,
    load_dataset,
    range_warnings,
    season_of,
)
from tf_sine.distribute import (
    PEER_TIMEOUT,
    WorkerLostError,
    is_chief,
    make_strategy,
    weights_fingerprint,
    worker_name,
)
from tf_sine.errors import DataError, RunError
from tf_sine.evaluation import score
from tf_sine.files import load_keras
from tf_sine.models import build_model_from_config
from tf_sine.owned import disk_full_named
from tf_sine.panel import Panel, score_panel
from tf_sine.runs import LOSS_PLOT, PREDICTION_PLOT, RUN_FILES, SERIES_FILE, RunDirectory
from tf_sine.training import TrainingResult, TrainingState, train


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
    overwrite: bool = False,
    notify: Callable[[str], None] | None = None,
    peer_timeout: float = PEER_TIMEOUT,
    series: Any = None,
) -> ExperimentResult:
    """Trains `config` on its series (the source's sine by default) and writes a run directory.

    An unfinished run in `run_dir` (same configuration, no metrics.json yet) is resumed from
    its newest readable checkpoint: weights, optimizer state, step count, data order and
    dropout random state, so it ends with the model an uninterrupted run would have made.
    A finished run is never overwritten unless `overwrite` is set.

    Args:
        config: the experiment; default `Config()` (the `legacy` preset).
        run_dir: where to write; default a new directory under ``runs/``.
        tensorboard: also write TensorBoard logs (loss by step, model graph) under
            ``run_dir/tensorboard`` (needs the ``tensorboard`` package).
        progress: show a progress bar.
        run_prefix: the name prefix of a default run directory.
        overwrite: replace a finished run in `run_dir` (or an unfinished one of another
            configuration) instead of refusing.
        series: a pandas `Series` or `DataFrame` (a `DatetimeIndex` gives the dates), or a
            `tf_sine.series.Series` (`from_pandas(frame, column, fill)` chooses the column and
            fills gaps), to train on instead of `config.data`; the run keeps it as
            ``series.csv``, so `open_run` finds it again.
        notify: receives one-line messages (resuming, unreadable checkpoints, waiting for
            other workers).
        peer_timeout: with `distribute` multi-worker, the seconds to wait for the other
            workers before giving up (`tf_sine.distribute.wait_for_peers`).

    Returns:
        An `ExperimentResult`; `metrics` holds `rmse`, `mse`, `mae` on the test part (in the
        series' units), `baselines` (name -> RMSE on the same targets) and `period`,
        `steps`, `train_seconds` (training loop incl. tracing, without checkpoint writes,
        summed over resumed segments), `checkpoint_seconds`, `engine`, `kernel`, `device`,
        `seed`, and with a validation part `best_step`, `best_val_loss` and `stopped_early`.

    Raises:
        ValueError: bad arguments, or `run_dir` holds a finished run or another
            configuration's unfinished run (and `overwrite` is not set).
    """
    config = config or Config()
    config.check_batch_memory()
    notify = notify or (lambda message: None)
    if tensorboard:
        _require_tensorboard()  # before any work is done
    if config.data is None and series is None:
        config.check_for_sine()
    several = config.id_column is not None and config.series_id is None  # a long table: tf_sine.panel
    if series is not None:  # checked like a file; kept in the run directory as series.csv
        from tf_sine.panel import read_one, read_panel
        from tf_sine.series import Series, from_pandas

        if config.id_column is not None and not several:  # one series of a long table
            series = read_one(series, config)
            config = config.replace(id_column=None, series_id=None)
        if several:
            from tf_sine.panel import LongTable

            tables = read_panel(series, config.id_column, config.column, config.fill, config.covariates)
            series = LongTable(tables, config.id_column)
            config = config.replace(data=PANDAS_SOURCE, column=None)
        else:
            if not isinstance(series, Series):
                series = from_pandas(series, config.column, config.fill, config.covariates)
            config = config.replace(data=PANDAS_SOURCE, column=None, fill=series.fill)
    # A bad data file is refused before the run directory exists.
    if several:
        from tf_sine.panel import load_panel

        data = load_panel(config, None if series is None else series.series)
    else:
        data = load_dataset(config, series)
    if config.calendar != data.calendar:  # "auto" resolved from the dates, for the run to keep
        config = config.replace(calendar=data.calendar, features=1)
    transform = data.fit_transforms(config) if several else Transform.for_config(data, config)
    train_windows = _windows(data, transform, "train", config)
    if not len(train_windows[0]):  # the head is longer than the training part
        raise DataError(
            "horizon", f"expected a training part with room for a window of {config.timesteps} steps and "
            f"the {config.horizon} values after it that the model predicts at once, got none",
        )  # fmt: skip
    strategy = make_strategy(config.distribute, peer_timeout, notify)
    chief = is_chief(strategy)  # only the chief writes the run directory
    if config.distribute == "multi-worker" and run_dir is None:
        raise RunError(
            "run_dir", "expected a `run_dir` that every worker sees with `distribute` multi-worker"
        )
    run = RunDirectory.create(run_dir, prefix=run_prefix) if chief else RunDirectory(run_dir)
    try:
        target = _target(run, overwrite, chief, config, data_fingerprint(config, data))
        with disk_full_named(run.path):  # resumable: the same command continues once there is space
            if series is not None and chief and not (target.path / SERIES_FILE).is_file():
                target.save_series(series)
            result = _train_into(
                target, data, transform, train_windows, config, strategy, chief, tensorboard, progress, notify
            )
            if target is not run and chief:
                run.commit_replacement()  # the old run stays as it was until the new one is complete
        result.run = run
        return result
    finally:
        run.release()


def _target(
    run: RunDirectory, overwrite: bool, chief: bool, config: Config, fingerprint: dict[str, Any]
) -> RunDirectory:
    """Where training writes: `run` itself, or its replacement when `overwrite` meets tf_sine's files."""
    if run.finished and not overwrite:
        raise RunError(
            "run_dir",
            f"{str(run.path)!r} holds a finished run; "
            "pass `overwrite` to train it again, or choose another `run_dir`",
        )
    # A clash with a file of the user's is found now, not when the trained run is written.
    run.files.check_writable(RUN_FILES)
    if not overwrite or not run.holds_files:
        return run
    if not chief:
        return RunDirectory(run.files.staging_path)
    run.files.refuse_edited()  # before training: the commit would refuse it at the end
    run.files.step_aside()  # the old run stays readable while its replacement trains
    replacement = run.replacement()
    # A replacement left by a stopped process is resumed only as the same configuration on the
    # same data; finished but not moved in, or of another kind, it is trained again.
    started = replacement.files.fact("data")
    other = replacement.config_path.is_file() and replacement.load_config() != config
    if replacement.finished or other or started not in (None, fingerprint):
        run.files.discard_staging()
        replacement = run.replacement()
    return replacement


def _train_into(
    run: RunDirectory,
    data: Dataset,
    transform: Transform,
    train_windows: tuple[np.ndarray, np.ndarray],
    config: Config,
    strategy: Any,
    chief: bool,
    tensorboard: bool,
    progress: bool,
    notify: Callable[[str], None],
) -> ExperimentResult:
    """Trains (or resumes) `config` into `run` on the training windows `train_windows` (`_windows`),
    scores it, and writes the plots, then the metrics."""
    fingerprint = data_fingerprint(config, data)
    for line in _range_warnings(data, transform) if chief else ():
        notify(line)
    train_x, train_y = train_windows
    validation = _windows(data, transform, "val", config)
    if not len(validation[0]):
        validation = None
    # Under a strategy, the model and its optimizer are created (or loaded) in its scope.
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model, state = _resume(run, config, fingerprint, notify, chief)
        if model is None:
            keras.utils.set_random_seed(config.seed)
            model = build_model_from_config(config)  # before anything is written: it may not fit
            if chief:
                run.save_config(config)
                run.save_transform(transform)
                run.files.set_fact("data", fingerprint)
    writer = tf.summary.create_file_writer(str(run.tensorboard_dir)) if tensorboard and chief else None
    if writer is not None:
        _write_graph(writer, model, train_x[:1])

    def checkpoint(trained: keras.Model, step: int) -> None:
        if not chief:
            return _save_and_discard(trained)
        best = state.best_weights if validation is not None else None
        run.checkpoints.save(trained, step, state.history(), best)

    try:
        training = train(
            model, train_x, train_y, steps=config.steps, batch_size=config.batch_size, seed=config.seed,
            engine=config.engine, batches=config.batches, checkpoint_every=config.checkpoint_every,
            on_checkpoint=checkpoint, progress=progress and chief, summary_writer=writer,
            resume=state, validation=validation, validate_every=config.validate_every,
            patience=config.patience, strategy=strategy,
        )  # fmt: skip
    except tf.errors.OpError as error:
        if strategy is None:
            raise
        raise WorkerLostError(str(error).strip().splitlines()[0]) from None
    summary = {"steps": training.final_step, "train_seconds": round(training.train_seconds, 4)}
    if strategy is not None:
        summary.update(
            distribute=config.distribute,
            replicas=strategy.num_replicas_in_sync,
            worker=worker_name(strategy),
            weights_fingerprint=weights_fingerprint(model.get_weights()),
        )
    if not chief:
        _save_and_discard(model)
        return ExperimentResult(run, model, summary, np.empty((0, 1), np.float32), training)
    run.save_model(model)
    run.save_history(training)
    if writer is not None:
        writer.close()
        for events in sorted(run.tensorboard_dir.rglob("events.out.tfevents.*")):
            run.files.adopt(events.relative_to(run.path).as_posix())
    if strategy is not None:
        # A plain copy to evaluate: Keras's predict under the strategy would wait for every worker.
        model = load_keras(run.model_path)

    if isinstance(data, Panel):
        metrics, predictions = score_panel(model, data, transform, config.period)
    else:
        metrics, predictions = score(model, data, transform, season_of(data, config.period))
    metrics.update(
        checkpoint_seconds=round(training.checkpoint_seconds, 4),
        engine=config.engine,
        kernel=training.kernel,
        device=training.device,
        batch_shards=training.shards,
        whole_steps=training.whole_steps,
        seed=config.seed,
        **summary,
    )
    if validation is not None:
        metrics.update(best_step=training.best_step, best_val_loss=training.best_loss,
                       stopped_early=training.stopped_early)  # fmt: skip
    write_plots(run, predictions, data, training, metrics["rmse"])
    run.save_metrics(metrics)  # written last, after the plots: its presence marks the run finished
    return ExperimentResult(run, model, metrics, predictions, training)


def _save_and_discard(model: keras.Model) -> None:
    """What a non-chief worker does when the chief saves: the same save, to a throwaway file.

    Saving reads the model's variables, and reading a variable aggregated across replicas (a
    metric's state) is a collective operation: every worker must take part, in the same order.
    """
    with tempfile.TemporaryDirectory() as folder:
        model.save(os.path.join(folder, "model.keras"))


def _resume(
    run: RunDirectory,
    config: Config,
    fingerprint: dict[str, Any],
    notify: Callable[[str], None],
    chief: bool = True,
) -> tuple[keras.Model | None, TrainingState]:
    """The model and history to continue from, or `(None, empty)` for a fresh start.

    Only the chief changes the run directory; other workers read the same checkpoint.
    """
    fresh = TrainingState()
    for leftover in run.files.remove_temporaries() if chief else ():
        notify(f"removed {leftover}, a file half-written when the last run was stopped")
    if not run.config_path.is_file() or not run.checkpoints.saved():
        return None, fresh  # nothing worth keeping was written yet
    saved = run.load_config()
    if saved != config:
        requested, stored = config.to_dict(), saved.to_dict()  # name -> value
        changed = ", ".join(
            f"{k}={v!r} (saved {stored[k]!r})" for k, v in requested.items() if v != stored[k]
        )
        raise RunError(
            "run_dir",
            f"{str(run.path)!r} holds an unfinished run of another configuration ({changed}); "
            "run the same command to resume it, pass `overwrite`, or choose another `run_dir`",
        )
    _check_same_data(run, fingerprint)
    restored = run.checkpoints.load_newest(notify)
    if restored is None:
        notify(f"no readable checkpoint in {run.checkpoint_dir}; starting again")
        return None, fresh
    model, state = restored
    step = state["step"]
    notify(f"resuming {run.path} from step {step} of {config.steps} (checkpoint {step:06d})")
    return model, TrainingState.from_history(state, state.get("best_weights"))


def _check_same_data(run: RunDirectory, fingerprint: dict[str, Any]) -> None:
    """Refuses to resume on data other than the run started with."""
    started = run.files.fact("data")
    if started is None or started == fingerprint:
        return  # (a run written before fingerprints existed is trusted)
    what = [f"{name} {started.get(name)!r} -> {fingerprint.get(name)!r}"
            for name in ("path", "size") if started.get(name) != fingerprint.get(name)]  # fmt: skip
    if started.get("values_sha256") != fingerprint.get("values_sha256"):
        what.append("other values")
    raise RunError(
        "data",
        f"the data changed since the unfinished run in {str(run.path)!r} started ({', '.join(what)}); "
        "pass `overwrite` to start over on the new data, or restore the old data to resume",
    )


def _windows(
    data: Dataset | Panel, transform: Any, part: str, config: Config
) -> tuple[np.ndarray, np.ndarray]:
    """The windows of `part` (``"train"``, ``"val"``), of every series for a `Panel`; none for a
    validation part shorter than the head's horizon."""
    timesteps, layout, horizon = config.timesteps, config.layout, config.horizon
    if isinstance(data, Panel):
        return data.windows(transform, part, timesteps, layout, horizon)
    targets = getattr(data, f"{part}_targets")
    if len(targets) < horizon:
        targets = targets[:0]
    return data.windows(transform, targets, timesteps, layout, horizon)


def _range_warnings(data: Dataset | Panel, transform: Any) -> list[str]:
    if not isinstance(data, Panel):
        return range_warnings(data, transform)
    return [
        f"series {key!r}: {line}"
        for key, one in data.datasets.items()
        for line in range_warnings(one, transform[key])
    ]


def write_plots(
    run: RunDirectory, predictions: np.ndarray, data: Dataset | Panel, training: TrainingResult, rmse: float
) -> None:
    """Writes ``prediction.png`` (the test part; every series' one after another for a `Panel`)
    and ``loss.png`` into the run directory."""
    if isinstance(data, Panel):
        truth = np.concatenate([one.levels[one.test_targets] for one in data.datasets.values()])
        times, name = None, f"{len(data.datasets)} series, one after another"
    else:
        truth, name = data.levels[data.test_targets], data.name
        times = None if data.dates is None else [data.dates[t] for t in data.test_targets]
    prediction_ax = plotting.plot_prediction(
        predictions, truth, title=f"test RMSE {rmse:.6g}", times=times, name=name
    )
    run.save_plot(PREDICTION_PLOT, prediction_ax)
    loss_ax = plotting.plot_loss(training.steps, training.losses, val_steps=training.val_steps,
                                 val_losses=training.val_losses, best_step=training.best_step)  # fmt: skip
    run.save_plot(LOSS_PLOT, loss_ax)


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
