"""Experiments that measure the claims of the source's text, on the same factory and engine.

* `compare`: SimpleRNN, LSTM, GRU, bidirectional LSTM and a deep LSTM with dropout on the sine
  task: parameters, training seconds and test RMSE (median over seeds).
* `memory_study`: the adding problem at several lengths: where each cell still learns to
  remember, and where it falls back to the trivial baseline.
* `clipping_study`: a setting that diverges without clipping, trained with no clipping,
  `clipvalue`, `clipnorm` and `global_clipnorm`: losses and gradient norms before/after clipping.
* `input_gradients`: the norm of the loss's gradient with respect to the input at each time
  step, the text's vanishing/exploding-gradient argument (0.99^100 ≈ 0.37, 1.1^100 ≈ 13780)
  measured on real cells, at initialisation and after training.

>>> rows = compare(steps=50, seeds=(0,))                     # doctest: +SKIP
>>> [row["name"] for row in rows]                            # doctest: +SKIP
['simple_rnn', 'lstm', 'gru', 'bidirectional_lstm', 'deep_lstm_dropout']
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine.config import Config, check_choice, check_positive_int, physical_memory
from tf_sine.data import adding_problem, sine_windows
from tf_sine.errors import ConfigError
from tf_sine.evaluation import evaluate
from tf_sine.models import build_model_from_config
from tf_sine.training import TrainingDivergedError, TrainingState, batch_order, train

# The configurations `compare` trains: name -> changes to the base configuration.
COMPARE_SET: dict[str, dict[str, Any]] = {
    "simple_rnn": {"cell": "simple_rnn"},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "bidirectional_lstm": {"cell": "lstm", "bidirectional": True},
    "deep_lstm_dropout": {"cell": "lstm", "num_layers": 3, "dropout": 0.2},
}


def compare(
    base: Config | None = None,
    names: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int | None = None,
) -> list[dict[str, Any]]:
    """Trains each configuration of `COMPARE_SET` on the source's sine task, for every seed.

    Args:
        base: the configuration the variants change (default: the `sequence` layout of the
            source's model, where the recurrence is used).
        names: which entries of `COMPARE_SET` (default all, in its order).
        seeds: one training run per seed; medians are reported.
        steps: optimizer steps per run (default `base.steps`).

    Returns:
        One dict per configuration: `name`, `parameters`, `train_seconds` and `rmse` (medians
        over seeds), `rmse_by_seed`.
    """
    base = base or Config(layout="sequence")
    if steps is not None:
        base = base.replace(steps=check_positive_int("steps", steps))
    names = list(names or COMPARE_SET)
    unknown = [name for name in names if name not in COMPARE_SET]
    if unknown:
        allowed = ", ".join(repr(name) for name in COMPARE_SET)
        raise ConfigError("names", f"expected entries of {allowed}, got {unknown[0]!r}")
    if not seeds:
        raise ConfigError("seeds", "expected at least one seed, got none")
    train_x, train_y, test_x, test_y = sine_windows(base.timesteps, base.layout)
    rows = []
    for name in names:
        config = base.replace(**COMPARE_SET[name])
        scores, seconds, parameters = [], [], 0
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = build_model_from_config(config)
            parameters = model.count_params()
            result = train(model, train_x, train_y, steps=config.steps, batch_size=config.batch_size,
                           seed=seed, engine=config.engine, progress=False)  # fmt: skip
            scores.append(evaluate(model, test_x, test_y)[0]["rmse"])
            seconds.append(result.train_seconds)
        rows.append({
            "name": name, "parameters": parameters, "train_seconds": statistics.median(seconds),
            "rmse": statistics.median(scores), "rmse_by_seed": scores,
        })  # fmt: skip
    return rows


def input_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Norm of d(loss)/d(input at step t) for every time step t, averaged over the batch.

    Args:
        model: a model taking `(batch, T, features)` windows (the sequence layout).
        x: windows `(N, T, features)`.
        y: labels `(N, 1)`.

    Returns:
        float64 array of shape `(T,)`: entry `t` is the mean over windows of the L2 norm of the
        gradient of the window's squared error with respect to its input at step `t`.
    """
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        # Summed, not averaged: each window's gradient is then its own squared error's.
        loss = tf.reduce_sum(tf.square(model(inputs, training=False) - y))
    gradient = tape.gradient(loss, inputs)  # (N, T, features)
    return tf.reduce_mean(tf.norm(gradient, axis=-1), axis=0).numpy().astype(np.float64)


def gradient_study(
    cells: Sequence[str] = ("simple_rnn", "lstm", "gru"),
    timesteps: int = 100,
    units: int = 30,
    steps: int = 1000,
    seed: int = 0,
    windows: int = 256,
) -> dict[str, dict[str, list[float]]]:
    """Input-gradient norms by time step for each cell, at initialisation and after training.

    Each cell is a single recurrent layer of `units` on the sine task with windows of
    `timesteps` values (sequence layout), trained `steps` steps with Adam (1e-3, global clip 1).

    Returns:
        `{cell: {"initial": [T floats], "trained": [T floats], "test_rmse": float}}`;
        gradient lists run from the first time step (farthest from the output) to the last.
    """
    timesteps = check_positive_int("timesteps", timesteps)
    train_x, train_y, test_x, test_y = sine_windows(timesteps, "sequence")
    probe = np.random.default_rng(seed).choice(len(test_x), size=min(windows, len(test_x)), replace=False)
    results = {}
    for cell in cells:
        config = Config(
            cell=cell, units=units, num_layers=1, timesteps=timesteps, layout="sequence",
            optimizer="adam", learning_rate=1e-3, global_clipnorm=1.0, steps=steps, seed=seed,
        )  # fmt: skip
        keras.utils.set_random_seed(seed)
        model = build_model_from_config(config)
        initial = input_gradients(model, test_x[probe], test_y[probe])
        train(model, train_x, train_y, steps=steps, seed=seed, progress=False)
        trained = input_gradients(model, test_x[probe], test_y[probe])
        results[cell] = {
            "initial": initial.tolist(), "trained": trained.tolist(),
            "test_rmse": evaluate(model, test_x, test_y)[0]["rmse"],
        }  # fmt: skip
    return results


# Always predicting 1.0 on the adding problem: the variance of the sum of two U(0, 1) values.
ADDING_BASELINE_MSE = 2.0 / 12.0
ADDING_TRAIN, ADDING_TEST = 10_000, 1_000  # the memory study's sequences
# Bytes per time step of the memory study's data, all of it held at once while `adding_problem`
# builds it: the values and the markers (float64), both stacked (float64), then as float32.
ADDING_BYTES_PER_STEP = (ADDING_TRAIN + ADDING_TEST) * (8 + 8 + 2 * 8 + 2 * 4)


def memory_study(
    cells: Sequence[str] = ("simple_rnn", "lstm", "gru"),
    lengths: Sequence[int] = (10, 50, 100, 200),
    units: int = 32,
    steps: int = 2000,
    batch_size: int = 64,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Trains each cell on the adding problem at each length; test MSE against the baseline.

    One recurrent layer of `units`, Adam 1e-3 with global clipping 1.0, `steps` steps on
    10,000 training sequences, scored on 1,000 fresh ones.

    Returns:
        One dict per (cell, length): `cell`, `timesteps`, `mse`, `baseline_mse` (0.167),
        `ratio` (mse / baseline; near 1 means nothing was remembered), `train_seconds`.
    """
    check_lengths(lengths)  # every length before the first is trained
    rows = []
    for timesteps in lengths:
        train_x, train_y = adding_problem(ADDING_TRAIN, timesteps, seed=seed)
        test_x, test_y = adding_problem(ADDING_TEST, timesteps, seed=seed + 1)
        for cell in cells:
            config = Config(
                cell=cell, units=units, num_layers=1, timesteps=timesteps, features=2, layout="sequence",
                optimizer="adam", learning_rate=1e-3, global_clipnorm=1.0, steps=steps, batch_size=batch_size,
            )  # fmt: skip
            keras.utils.set_random_seed(seed)
            model = build_model_from_config(config)
            result = train(
                model, train_x, train_y, steps=steps, batch_size=batch_size, seed=seed, progress=False
            )
            mse = evaluate(model, test_x, test_y)[0]["mse"]
            rows.append({
                "cell": cell, "timesteps": timesteps, "mse": mse, "baseline_mse": ADDING_BASELINE_MSE,
                "ratio": mse / ADDING_BASELINE_MSE, "train_seconds": result.train_seconds,
            })  # fmt: skip
    return rows


def check_lengths(lengths: Sequence[int]) -> None:
    """Refuses a memory-study length below 2, or one whose data cannot fit in this machine's
    memory (`ADDING_BYTES_PER_STEP`), naming `lengths`."""
    available = physical_memory()
    for length in lengths:
        if check_positive_int("lengths", length) < 2:
            raise ConfigError("lengths", f"expected sequence lengths of at least 2, got {length}")
        need = ADDING_BYTES_PER_STEP * length
        if available and need > available:
            raise ConfigError(
                "lengths", f"expected sequence lengths whose adding problems fit in this machine's memory "
                f"({available / 2**30:.3g} GiB), got {length}, which needs about {need / 2**30:.3g} GiB",
            )  # fmt: skip


# The clipping study's settings: name -> optimizer clipping option.
CLIP_SETTINGS: dict[str, dict[str, float]] = {
    "none": {},
    "clipvalue": {"clipvalue": 0.1},
    "clipnorm": {"clipnorm": 1.0},
    "global_clipnorm": {"global_clipnorm": 1.0},
}


def clip_gradients(gradients: Sequence[tf.Tensor], **clip: float) -> list[tf.Tensor]:
    """Clips `gradients` as a Keras optimizer with the option `clip` does before its update."""
    if "clipvalue" in clip:
        return [tf.clip_by_value(g, -clip["clipvalue"], clip["clipvalue"]) for g in gradients]
    if "clipnorm" in clip:
        return [tf.clip_by_norm(g, clip["clipnorm"]) for g in gradients]
    if "global_clipnorm" in clip:
        return tf.clip_by_global_norm(list(gradients), clip["global_clipnorm"])[0]
    return list(gradients)


def clipping_study(
    settings: dict[str, dict[str, float]] | None = None,
    steps: int = 600,
    timesteps: int = 50,
    learning_rate: float = 1.0,
    probe_every: int = 25,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Trains one diverging setting with each clipping option of `settings`.

    The setting: the source's 2 x LSTM(30) on 50-step sine windows (sequence layout) with plain
    SGD at learning rate 1.0, which diverges within a few dozen steps without clipping. Every
    `probe_every` steps the gradient of the next batch is measured before and after clipping.

    Returns:
        `{name: {"steps", "losses", "probe_steps", "norm_before", "norm_after",
        "diverged_at" (step or None), "test_rmse" (None when diverged)}}`; norms are global
        L2 norms over all weights.
    """
    steps = check_positive_int("steps", steps)
    probe_every = check_positive_int("probe_every", probe_every)
    train_x, train_y, test_x, test_y = sine_windows(timesteps, "sequence")
    results = {}
    for name, clip in (settings or CLIP_SETTINGS).items():
        config = Config(
            units=30, timesteps=timesteps, layout="sequence", optimizer="sgd", learning_rate=learning_rate,
            steps=steps, seed=seed, **clip,
        )  # fmt: skip
        keras.utils.set_random_seed(seed)
        model = build_model_from_config(config)
        history = TrainingState()
        probes: dict[str, list[float]] = {"probe_steps": [], "norm_before": [], "norm_after": []}
        diverged_at = None
        for stop in range(probe_every, steps + probe_every, probe_every):
            at = int(model.optimizer.iterations.numpy())
            index = batch_order(len(train_x), config.batch_size, seed, at, at + 1)[0]
            with tf.GradientTape() as tape:
                loss = model.loss(train_y[index], model(train_x[index], training=True))
            raw = tape.gradient(loss, model.trainable_variables)
            probes["probe_steps"].append(at)
            probes["norm_before"].append(float(tf.linalg.global_norm(raw)))
            probes["norm_after"].append(float(tf.linalg.global_norm(clip_gradients(raw, **clip))))
            try:
                train(
                    model, train_x, train_y, steps=min(stop, steps), seed=seed, progress=False, resume=history
                )
            except TrainingDivergedError as error:
                diverged_at = error.step
                break
        results[name] = {
            "steps": history.steps, "losses": history.losses, **probes, "diverged_at": diverged_at,
            "test_rmse": None if diverged_at else evaluate(model, test_x, test_y)[0]["rmse"],
        }  # fmt: skip
    return results


# Each study: its function, and its figures (file name -> `tf_sine.plotting` function).
STUDIES: dict[str, tuple[Callable[..., Any], dict[str, str]]] = {
    "compare": (compare, {"compare.png": "plot_compare"}),
    "gradients": (gradient_study, {"gradients.png": "plot_input_gradients"}),
    "memory": (memory_study, {}),
    "clipping": (clipping_study, {"clipping_loss.png": "plot_clipping_losses",
                                  "clipping_norms.png": "plot_clipping_norms"}),
}  # fmt: skip


@dataclass(frozen=True)
class StudyResult:
    """A study's findings (`run_study`): `data` is what its function returned.

    Attributes:
        name: the study, a key of `STUDIES`.
        data: the rows or dict the study function returned (JSON-ready).
    """

    name: str
    data: Any

    def save(self, folder: str | os.PathLike | None = None) -> list[Path]:
        """Writes ``<name>.json`` and the study's figures into `folder` (default: a new folder
        under ``runs/``); returns the files written.

        Raises:
            RunError: `folder` is a file or cannot be created.
        """
        from tf_sine import plotting
        from tf_sine.owned import OwnedFolder, write_together
        from tf_sine.runs import DEFAULT_ROOT, default_run_name

        figures = {name: getattr(plotting, draw)(self.data) for name, draw in STUDIES[self.name][1].items()}
        names = [f"{self.name}.json", *figures]

        def build(staging: OwnedFolder) -> None:
            staging.write_json(names[0], self.data)
            for file_name, ax in figures.items():
                staging.write(file_name, lambda path, ax=ax: plotting.save_figure(ax, path))

        if folder is None:
            folder = Path(DEFAULT_ROOT) / default_run_name(self.name)
        written = write_together(folder, names, build)
        return [written.path / name for name in names]


def run_study(
    name: str, out: str | os.PathLike | None = None, **parameters: Any
) -> tuple[StudyResult, list[Path]]:
    """Checks `parameters`, makes the folder `out`, runs the study and saves it there.

    The folder is made before the work, so a bad `out` is refused at once, not after minutes.

    Args:
        name: a key of `STUDIES`.
        out: the folder to write (default: a new one under ``runs/``).
        **parameters: the study function's arguments.

    Returns:
        `(result, files written)`.
    """
    from tf_sine.owned import check_writable_folder
    from tf_sine.runs import DEFAULT_ROOT, default_run_name

    function, _ = STUDIES[check_choice("study", name, STUDIES)]
    _check_study_parameters(parameters)
    folder = Path(DEFAULT_ROOT) / default_run_name(name) if out is None else out
    check_writable_folder(folder, "out")  # refused now, not after the work
    result = StudyResult(name, function(**parameters))
    return result, result.save(folder)


def _check_study_parameters(parameters: dict[str, Any]) -> None:
    for argument in ("steps", "timesteps", "units"):
        if argument in parameters:
            check_positive_int(argument, parameters[argument])
    check_lengths(parameters.get("lengths", ()))
    for seed in parameters.get("seeds", ()):
        Config(seed=seed)  # the seed range training accepts
