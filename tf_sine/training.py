"""Step-counted training, as the source's Estimator did it: `train(model, x, y, steps=3000)`.

`train` runs exactly `steps` optimizer updates of `batch_size` windows each. The data order is a
fresh permutation of the windows for every pass over them, drawn from `seed` and the pass
number alone (`batch_order`), so a run is repeatable and any step's batch can be recomputed
(what resuming needs).

The pieces:

* a `Schedule` cuts the steps into chunks, each run by one call of an engine
  (`tf_sine.engines`: ``"fast"``, a traced graph loop, or ``"fit"``, plain `keras.Model.fit`);
* between chunks, duties run as Keras callbacks through one `keras.callbacks.CallbackList`: the
  user's own (`EarlyStopping`, `CSVLogger`, `TerminateOnNaN`, ...) and ours, where Keras has
  none that resumes bit for bit: the divergence check, validation with patience and the best
  weights, TensorBoard scalars by step, the progress bar; checkpoints are written after them;
* a `TrainingState` (histories, best weights) is what checkpoints store and resuming restores;
  the `TrainingResult` returned adds what this call found (kernel, device, final step).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine.config import (
    BATCH_ORDERS,
    ENGINES,
    ConfigError,
    ConfigTypeError,
    check_choice,
    check_int,
    check_positive_int,
)
from tf_sine.engines import ENGINES as ENGINE_CLASSES
from tf_sine.errors import RunFailedError
from tf_sine.interrupts import held_interrupts
from tf_sine.kernels import default_kernel, training_device

# Steps in the first compiled call. Later calls are sized to take about CHUNK_SECONDS each: long
# enough that the call and the duties between chunks cost little, short enough for a lively
# progress bar and a prompt Ctrl-C (README, "Training engines and performance").
DEFAULT_CHUNK = 100
CHUNK_SECONDS = 0.25
MAX_CHUNK = 5000

CheckpointCallback = Callable[[keras.Model, int], None]


class TrainingDivergedError(RunFailedError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"training diverged: the loss is {loss} at step {step}; "
            "try a lower `learning_rate` or a gradient clip (`clipnorm`, `clipvalue`, `global_clipnorm`)"
        )
        self.step = step
        self.loss = loss


@dataclass
class TrainingState:
    """What resuming needs: the histories so far and the best model (saved with checkpoints).

    Attributes:
        steps: the step number of each entry of `losses` (1-based, ascending).
        losses: training loss (MSE) of the batch at that step (``"fast"``) or the mean over
            the chunk ending at that step (``"fit"``).
        val_steps, val_losses: validation loss (MSE, in the model's units) by step.
        best_step, best_loss: the step with the lowest validation loss so far, and that loss.
        best_weights: the model's weights at `best_step` (saved beside a checkpoint, not in
            the history).
        train_seconds: wall time of training so far, tracing included, checkpoint writes excluded.
    """

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    best_step: int = 0
    best_loss: float = math.inf
    best_weights: list[np.ndarray] | None = field(default=None, repr=False)
    train_seconds: float = 0.0

    def validations_since_best(self) -> int:
        """Validation losses computed after the best one (what `patience` counts)."""
        return sum(step > self.best_step for step in self.val_steps)

    def history(self) -> dict[str, Any]:
        """The JSON-ready history (what checkpoints store and resuming restores), weights excluded."""
        return {
            "train_seconds": self.train_seconds,
            "loss_steps": self.steps,
            "losses": self.losses,
            "val_steps": self.val_steps,
            "val_losses": self.val_losses,
            "best_step": self.best_step,
            "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
        }

    @classmethod
    def from_history(
        cls, saved: dict[str, Any], best_weights: list[np.ndarray] | None = None
    ) -> TrainingState:
        """Inverts `history` (older checkpoints lack the validation entries)."""
        best = saved.get("best_loss")
        return cls(
            steps=saved["loss_steps"],
            losses=saved["losses"],
            val_steps=saved.get("val_steps", []),
            val_losses=saved.get("val_losses", []),
            best_step=saved.get("best_step", 0),
            best_loss=math.inf if best is None else best,
            best_weights=best_weights,
            train_seconds=saved["train_seconds"],
        )


@dataclass
class TrainingResult:
    """What `train` returns: its `state` (the one passed as `resume`, extended) and what it found.

    Attributes:
        state: the histories and best weights (`TrainingState`).
        final_step: the optimizer's step count at the end.
        checkpoint_seconds: wall time spent writing checkpoints in this call.
        kernel: the engine's recurrent kernel (`tf_sine.kernels.kernel_name`, e.g.
            ``"native_lstm"``), else ``"keras"`` (Keras's own layers, or the ``"fit"`` engine).
        shards: the independent slices each batch ran as (`tf_sine.engines`).
        whole_steps: the fast engine ran each chunk as one call of the native training op
            (`tf_sine.whole_steps`), not as a graph of per-layer ops.
        device: ``"CPU"`` or ``"GPU"``, where training ran (`tf_sine.kernels.training_device`).
        stopped_early: training stopped before `steps` (patience, or a callback that set
            `model.stop_training`).
    """

    state: TrainingState = field(default_factory=TrainingState)
    final_step: int = 0
    checkpoint_seconds: float = 0.0
    kernel: str = "keras"
    shards: int = 1
    whole_steps: bool = False
    device: str = "CPU"
    stopped_early: bool = False

    # The state's histories, read through the result for convenience.
    steps = property(lambda self: self.state.steps)
    losses = property(lambda self: self.state.losses)
    val_steps = property(lambda self: self.state.val_steps)
    val_losses = property(lambda self: self.state.val_losses)
    best_step = property(lambda self: self.state.best_step)
    best_loss = property(lambda self: self.state.best_loss)
    train_seconds = property(lambda self: self.state.train_seconds)


def datafeeder_order(
    n: int, batch_size: int, start_step: int, stop_step: int
) -> tuple[np.ndarray, np.ndarray]:
    """The batches TF 0.12's contrib.learn `DataFeeder` fed for steps `start_step + 1 .. stop_step`.

    The feeder (made anew by every `fit` call, so its steps count from that call) drew a
    permutation of `range(n)` from `np.random.RandomState(42)`, whatever the graph's seed, and
    sliced it in order, `batch_size` at a time; the last slice of a pass is short (`n %
    batch_size` windows), and the next pass takes the generator's next permutation.

    Returns:
        `(indices, sizes)`: int32 `(stop_step - start_step, batch_size)` window indices, a short
        batch padded with index 0 after its `sizes[i]` real ones; int32 `(stop_step - start_step,)`.
    """
    per_pass = -(-n // batch_size)
    generator = np.random.RandomState(42)
    permutations = [generator.permutation(n) for _ in range((stop_step - 1) // per_pass + 1)]
    indices = np.zeros((stop_step - start_step, batch_size), np.int32)
    sizes = np.empty(stop_step - start_step, np.int32)
    for row, step in enumerate(range(start_step, stop_step)):
        pass_, slot = divmod(step, per_pass)
        chosen = permutations[pass_][slot * batch_size : (slot + 1) * batch_size]
        indices[row, : len(chosen)], sizes[row] = chosen, len(chosen)
    return indices, sizes


def batch_order(n: int, batch_size: int, seed: int, start_step: int, stop_step: int) -> np.ndarray:
    """Window indices of the batches for steps `start_step + 1 .. stop_step`.

    The stream of indices is the concatenation of one permutation of `range(n)` per pass,
    pass `p` drawn from `np.random.default_rng([seed, p])`; step `s` (1-based) takes the
    stream's items `(s - 1) * batch_size ... s * batch_size - 1`. A batch may straddle two
    passes; no window is skipped.

    Returns:
        int32 array of shape `(stop_step - start_step, batch_size)`.
    """
    first, last = start_step * batch_size, stop_step * batch_size
    passes = range(first // n, -(-last // n))
    stream = np.concatenate([np.random.default_rng([seed, p]).permutation(n) for p in passes])
    offset = passes.start * n
    return stream[first - offset : last - offset].astype(np.int32).reshape(-1, batch_size)


@dataclass
class Schedule:
    """Which steps each engine call runs.

    A chunk ends `chunk` steps on, at the next multiple of any of `every` (checkpoints, epochs),
    or at `steps`. The first chunk has `chunk` steps (its call includes tracing); later ones are
    sized from the last call's speed to take about `CHUNK_SECONDS`, except under a strategy,
    where every worker must run the same chunks or their collectives would not pair up.
    """

    steps: int
    chunk: int = DEFAULT_CHUNK
    every: tuple[int | None, ...] = ()
    adaptive: bool = True

    def end_after(self, step: int) -> int:
        """Where the chunk starting after `step` ends."""
        end = min(step + self.chunk, self.steps)
        for period in self.every:
            if period:
                end = min(end, (step // period + 1) * period)
        return end

    def measured(self, seconds: float, steps: int) -> None:
        """Sizes the next chunks from a call (not the first: it includes tracing) that ran
        `steps` steps in `seconds`."""
        if self.adaptive:
            per_step = seconds / steps
            self.chunk = int(min(max(CHUNK_SECONDS / max(per_step, 1e-9), 1), MAX_CHUNK))


def train(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    batch_size: int = 32,
    seed: int = 0,
    engine: str = "fast",
    checkpoint_every: int | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    progress: bool = True,
    summary_writer: tf.summary.SummaryWriter | None = None,
    chunk: int = DEFAULT_CHUNK,
    resume: TrainingState | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    validate_every: int = 100,
    patience: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    batches: str = "passes",
    feed_start: int = 0,
) -> TrainingResult:
    """Trains a compiled model until its optimizer has made `steps` updates.

    Starts from the optimizer's current step count (`model.optimizer.iterations`), so a model
    restored from a checkpoint continues where it stopped, with the same data order.

    Args:
        model: a compiled Keras model (from `tf_sine.build_model`).
        x: training windows, shape `(N, *model.input_shape[1:])`, float32.
        y: labels, shape `(N, 1)`, float32.
        steps: the optimizer step count to reach (the Estimator's `steps`).
        batch_size: windows per step.
        seed: seeds the data order (weights are seeded when the model is built).
        engine: ``"fast"`` or ``"fit"`` (`tf_sine.engines`).
        checkpoint_every: call `on_checkpoint(model, step)` every this many steps and at the end.
        on_checkpoint: the checkpoint callback (e.g. `Checkpoints.save`); it may
            save `resume`, which is up to date when it is called.
        progress: show a progress bar on stdout.
        summary_writer: a `tf.summary` writer receiving the loss by step (TensorBoard).
        chunk: steps in the first compiled call; later ones take about `CHUNK_SECONDS` each.
        resume: the `TrainingState` of a resumed run (from its checkpoint), extended in place;
            default a fresh one.
        validation: `(x, y)` windows scored every `validate_every` steps and at the end; the
            model ends with the weights of its best validation loss.
        validate_every: steps between validation losses, and the length of an epoch for
            `callbacks`.
        patience: stop once this many validations in a row found no better loss.
        strategy: a `tf.distribute.Strategy` whose scope built `model` (fast engine only):
            each step splits the global `batch_size` evenly over the replicas.
        callbacks: Keras callbacks (`EarlyStopping`, `CSVLogger`, `TerminateOnNaN`,
            `TensorBoard`, a user's own), called through `keras.callbacks.CallbackList` on
            both engines. Training counts steps, not epochs: an epoch ends every
            `validate_every` steps and at the last step, with logs ``loss`` (the mean over its
            steps) and, with `validation`, ``val_loss``; a batch is one compiled chunk of
            steps, as in `fit` with `steps_per_execution`, numbered by its last step (0-based),
            with the last step's ``loss``. Setting `model.stop_training` (what `EarlyStopping`
            and `TerminateOnNaN` do) ends training after that batch or epoch.
        batches: the data order, a name in `tf_sine.config.BATCH_ORDERS`: ``"passes"``
            (`batch_order`, from `seed`) or ``"datafeeder"`` (`datafeeder_order`: TF 0.12's,
            partial batches included; not under a strategy).
        feed_start: with ``"datafeeder"``, the step at which the feeder started (its order
            restarts at each of `LegacyRegressor.fit`'s calls).

    Returns:
        A `TrainingResult` with the state (loss histories) and what the run found.

    Raises:
        ValueError: bad arguments, or `x`/`y` not matching the model.
        TrainingDivergedError: the loss became NaN or infinite (the model keeps the weights of
            the end of the last finished chunk).
        KeyboardInterrupt: Ctrl-C (or SIGTERM turned into it by the CLI); the callback has
            then written a checkpoint at the step reached. A second Ctrl-C stops a piece of
            training midway: no checkpoint is written then, the newest one stays the last.
    """
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_int("seed", seed)
    check_choice("engine", engine, ENGINES)
    check_choice("batches", batches, BATCH_ORDERS)
    if strategy is not None and batches != "passes":
        raise ConfigError("batches", f"expected 'passes' with a distribution strategy, got {batches!r}")
    if strategy is not None and engine != "fast":
        raise ConfigError("engine", f"expected 'fast' with a distribution strategy, got {engine!r}")
    if checkpoint_every is not None:
        check_positive_int("checkpoint_every", checkpoint_every)
    validate_every = check_positive_int("validate_every", validate_every)
    if patience is not None:
        check_positive_int("patience", patience)
    _check_arrays(model, x, y)
    if validation is not None:
        _check_arrays(model, *validation)
    users = _users(callbacks)
    state = resume if resume is not None else TrainingState()
    result = TrainingResult(state, final_step=int(model.optimizer.iterations.numpy()))
    if result.final_step >= steps:
        return result
    if not 0 <= check_int("feed_start", feed_start) <= result.final_step:
        raise ConfigError("feed_start", f"expected a step from 0 to {result.final_step}, got {feed_start}")
    # Chunks end at epoch ends only where something happens there, so as not to cut them short.
    epochs = validate_every if validation is not None or callbacks else None
    schedule = Schedule(
        steps, check_positive_int("chunk", chunk), (checkpoint_every, epochs), strategy is None
    )
    # Validation first (its val_loss is in the logs the user's callbacks see), the divergence
    # check after them (a user's TerminateOnNaN stops training instead), the progress bar last.
    first = [_Validation(model, *validation, state, patience)] if validation is not None else []
    first += [_Summaries(summary_writer, state)] if summary_writer is not None else []
    last = [_DivergenceCheck(state), *([_Progress(steps)] if progress else [])]
    hooks = keras.callbacks.CallbackList(
        [*first, *users, *last],
        model=model,
        epochs=-(-steps // validate_every),
        steps=validate_every,
    )
    if engine == "fast":
        # Loads the native kernels, or builds them where no build is kept, before the clock and
        # the progress bar start.
        default_kernel()
    clock = _Clock(state, result)
    run_chunk = ENGINE_CLASSES[engine](model, x, y, batch_size, strategy)
    result.kernel, result.shards, result.device = run_chunk.kernel, run_chunk.shards, training_device()
    result.whole_steps = getattr(run_chunk, "whole_steps", None) is not None

    last_checkpoint = None

    def checkpoint(step: int) -> None:
        nonlocal last_checkpoint
        if on_checkpoint is not None:
            with clock.checkpointing():
                on_checkpoint(model, step)
            last_checkpoint = step

    start = step = result.final_step
    epoch_losses: list[float] = []
    model.stop_training = False
    hooks.on_train_begin()
    whole = True  # between pieces: the model, the histories and the callbacks agree
    try:
        while step < steps and not model.stop_training:
            # A chunk, its losses, its callbacks and a checkpoint due after it are one piece:
            # Ctrl-C and SIGTERM land between pieces (a second Ctrl-C stops one midway).
            with held_interrupts():
                whole = False
                end = schedule.end_after(step)
                if step % validate_every == 0:
                    hooks.on_epoch_begin(step // validate_every)
                hooks.on_train_batch_begin(end - 1)
                called = time.perf_counter()
                if batches == "passes":
                    losses = run_chunk(batch_order(len(x), batch_size, seed, step, end))
                else:
                    order = datafeeder_order(len(x), batch_size, step - feed_start, end - feed_start)
                    losses = run_chunk(*order)
                if step > start:  # the first call includes tracing
                    schedule.measured(time.perf_counter() - called, end - step)
                # The fit engine reports one mean for the chunk: it stands for each of its steps.
                each = [float(v) for v in losses] if len(losses) > 1 else [float(losses[0])] * (end - step)
                epoch_losses += each
                state.steps += list(range(step + 1, end + 1)) if len(losses) > 1 else [end]
                state.losses += [float(value) for value in losses]
                step = end
                hooks.on_train_batch_end(end - 1, {"loss": float(losses[-1])})
                if step % validate_every == 0 or step == steps:
                    hooks.on_epoch_end((step - 1) // validate_every, {"loss": float(np.mean(epoch_losses))})
                    epoch_losses = []
                ending = step == steps or model.stop_training
                if checkpoint_every and (ending or step % checkpoint_every == 0):
                    clock.stop()
                    checkpoint(step)
                whole = True
    except KeyboardInterrupt:  # keep the work done so far, if a piece was not cut short
        with held_interrupts():  # a second Ctrl-C waits for this checkpoint, a third does not
            result.final_step = int(model.optimizer.iterations.numpy())
            clock.stop()
            if whole and result.final_step > start and result.final_step != last_checkpoint:
                checkpoint(result.final_step)
        raise
    clock.stop()
    result.final_step, result.stopped_early = step, step < steps
    hooks.on_train_end()
    if state.best_weights is not None:
        model.set_weights(state.best_weights)  # the best model is the one kept
    return result


class _Clock:
    """Training time in `state.train_seconds` (summed over resumed segments), checkpoint writes
    excluded and counted in `result.checkpoint_seconds` instead."""

    def __init__(self, state: TrainingState, result: TrainingResult):
        self.state, self.result = state, result
        self.trained_before, self.began = state.train_seconds, time.perf_counter()

    def stop(self) -> None:
        """Brings `state.train_seconds` up to now."""
        elapsed = time.perf_counter() - self.began - self.result.checkpoint_seconds
        self.state.train_seconds = self.trained_before + elapsed

    @contextlib.contextmanager
    def checkpointing(self) -> Iterator[None]:
        """Times a checkpoint write into `result.checkpoint_seconds`."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.result.checkpoint_seconds += time.perf_counter() - began


def _users(callbacks: Sequence[keras.callbacks.Callback] | None) -> list[keras.callbacks.Callback]:
    for callback in callbacks or ():
        if not isinstance(callback, keras.callbacks.Callback):
            raise ConfigTypeError(
                "callbacks", f"expected keras.callbacks.Callback objects, got {type(callback).__name__}"
            )
    return list(callbacks or ())


class _DivergenceCheck(keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first non-finite loss of a chunk.

    Ours rather than `TerminateOnNaN`, which only stops: a diverged run must not end as a
    finished one, and every step of the chunk is checked, not only the last. A user's
    `TerminateOnNaN` still wins: training then stops instead.
    """

    def __init__(self, state: TrainingState):
        super().__init__()
        self.state, self.checked = state, len(state.losses)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        losses = np.asarray(self.state.losses[self.checked :])
        self.checked = len(self.state.losses)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size and not self.model.stop_training:
            index = self.checked - len(losses) + bad[0]
            raise TrainingDivergedError(self.state.steps[index], float(losses[bad[0]]))


class _Validation(keras.callbacks.Callback):
    """Scores the validation windows at each epoch end (one traced forward pass), adds
    ``val_loss`` to the logs, keeps the best weights, and stops after `patience` validations
    without a better loss.

    Ours rather than `EarlyStopping(restore_best_weights=True)`: the best weights and the
    validations since the best are part of `TrainingState`, saved with every checkpoint, so a
    resumed run stops at the same step and keeps the same model; Keras's callbacks keep theirs
    in memory only.
    """

    def __init__(
        self, model: keras.Model, x: np.ndarray, y: np.ndarray, state: TrainingState, patience: int | None
    ):
        super().__init__()
        inputs, labels = tf.constant(x), tf.constant(y)
        self.loss = tf.function(
            lambda: tf.reduce_mean(tf.math.squared_difference(model(inputs, training=False), labels)),
            autograph=False,
        )
        self.state, self.patience = state, patience

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        state, loss = self.state, float(self.loss())
        state.val_steps.append(state.steps[-1])
        state.val_losses.append(loss)
        if loss < state.best_loss:
            state.best_step, state.best_loss = state.steps[-1], loss
            state.best_weights = [np.array(w) for w in self.model.get_weights()]
        if logs is not None:
            logs["val_loss"] = loss
        if self.patience is not None and state.validations_since_best() >= self.patience:
            self.model.stop_training = True


class _Summaries(keras.callbacks.Callback):
    """TensorBoard scalars by optimizer step (``loss`` every step, ``val_loss``); Keras's
    `TensorBoard` callback counts batches and epochs instead."""

    def __init__(self, writer: tf.summary.SummaryWriter, state: TrainingState):
        super().__init__()
        self.writer, self.state, self.written = writer, state, len(state.losses)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        with self.writer.as_default():
            for step, loss in zip(
                self.state.steps[self.written :], self.state.losses[self.written :], strict=True
            ):
                tf.summary.scalar("loss", loss, step=step)
        self.written = len(self.state.losses)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs and "val_loss" in logs:
            with self.writer.as_default():
                tf.summary.scalar("val_loss", logs["val_loss"], step=self.state.steps[-1])

    def on_train_end(self, logs: dict | None = None) -> None:
        self.writer.flush()


class _Progress(keras.callbacks.Callback):
    """A progress bar over all the steps (Keras's `ProgbarLogger` counts epochs)."""

    def __init__(self, steps: int):
        super().__init__()
        self.bar = keras.utils.Progbar(steps, verbose=1 if sys.stdout.isatty() else 2)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(batch + 1, values=[("loss", (logs or {}).get("loss", math.nan))])


def _check_arrays(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    expected = tuple(model.input_shape[1:])
    if not isinstance(x, np.ndarray) or x.ndim != 3 or tuple(x.shape[1:]) != expected:
        got = getattr(x, "shape", type(x).__name__)
        raise ConfigError("x", f"expected windows of shape (N, {expected[0]}, {expected[1]}), got {got}")
    outputs = int(model.output_shape[-1])  # 1, or a direct model's horizon
    if not isinstance(y, np.ndarray) or y.shape != (len(x), outputs):
        got = getattr(y, "shape", type(y).__name__)
        raise ConfigError("y", f"expected labels of shape ({len(x)}, {outputs}), got {got}")
