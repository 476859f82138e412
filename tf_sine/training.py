"""Training engines that count optimizer steps, as the source's Estimator did.

`train(model, x, y, steps=3000, batch_size=32)` runs exactly `steps` optimizer updates of
`batch_size` windows each. The data order is a fresh permutation of the windows for every pass
over them, drawn from `seed` and the pass number alone, so a run is repeatable and any step's
batch can be recomputed (what resuming needs).

Two engines (`tf_sine.config.ENGINES`):

* ``"fast"`` (default): one `tf.function` runs a whole chunk of steps in a graph loop; the
  training windows live in tensors and each step gathers its batch by index inside the graph,
  so Python and `fit`'s per-step machinery are out of the hot loop.
* ``"fit"``: the reference, plain `keras.Model.fit` on each chunk's batches.

Both update the same compiled Keras model with its own optimizer and loss, so the model that is
saved is the same plain Keras model either way. Progress, loss history, NaN checks and
checkpoints happen between chunks.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine.config import ENGINES, ConfigError, ConfigTypeError, check_choice, check_int, check_positive_int
from tf_sine.errors import RunFailedError
from tf_sine.kernels import default_kernel, fused_forward, kernel_name, training_device
from tf_sine.threads import current_plan

# Steps in the first compiled call. Later calls are sized to take about CHUNK_SECONDS each:
# long enough that the call, the progress bar and the NaN check cost nothing (100-step chunks
# cost 5% more than 500-step ones on the legacy preset), short enough for a lively progress
# bar and a prompt Ctrl-C. Chunks also end at every checkpoint.
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
class TrainingResult:
    """What `train` returns.

    Attributes:
        steps: the step number of each entry of `losses` (1-based, ascending).
        losses: training loss (MSE) of the batch at that step (``"fast"``) or the mean over
            the chunk ending at that step (``"fit"``).
        train_seconds: wall time of the training loop, tracing/compilation included,
            checkpoint writing excluded (see `checkpoint_seconds`).
        checkpoint_seconds: wall time spent in the checkpoint callback.
        final_step: the optimizer's step count at the end.
        kernel: the fast engine's recurrent kernel, `tf_sine.kernels.kernel_name` (e.g.
            ``"native_lstm"``, ``"native_gru"``, ``"fused_lstm"``), else ``"keras"`` (Keras's own
            layers, or the ``"fit"`` engine).
        shards: the independent slices each batch ran as (see `_shards`).
        device: ``"CPU"`` or ``"GPU"``, where training ran (`tf_sine.kernels.training_device`).
        val_steps, val_losses: validation loss (MSE, in the model's units) by step.
        best_step, best_loss: the step with the lowest validation loss so far, and that loss.
        best_weights: the model's weights at `best_step` (not saved in the history).
        stopped_early: training stopped before `steps` for lack of progress (`patience`).
    """

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    final_step: int = 0
    kernel: str = "keras"
    shards: int = 1
    device: str = "CPU"
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    best_step: int = 0
    best_loss: float = math.inf
    best_weights: list[np.ndarray] | None = field(default=None, repr=False)
    stopped_early: bool = False

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
    def from_history(cls, state: dict[str, Any], step: int) -> TrainingResult:
        """Inverts `history` (older checkpoints lack the validation entries)."""
        best = state.get("best_loss")
        return cls(
            steps=state["loss_steps"],
            losses=state["losses"],
            train_seconds=state["train_seconds"],
            final_step=step,
            val_steps=state.get("val_steps", []),
            val_losses=state.get("val_losses", []),
            best_step=state.get("best_step", 0),
            best_loss=math.inf if best is None else best,
        )


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


def _next_chunk_end(step: int, steps: int, chunk: int, *every: int | None) -> int:
    """Where the chunk starting after `step` ends: `chunk` steps on, or at the next multiple of
    any of `every` (checkpoints, validations), or at the end."""
    end = min(step + chunk, steps)
    for period in every:
        if period:
            end = min(end, (step // period + 1) * period)
    return end


class _FastEngine:
    """Runs many optimizer steps per call of one traced `tf.function`.

    Choices measured on the source experiment (README, "Training engines and performance"):
    * the chunk is an explicit `tf.while_loop` traced without AutoGraph: converting the loop
      and the Keras optimizer's code with AutoGraph cost more tracing than the legacy preset's
      whole training;
    * recurrent layers run on fused kernels (`tf_sine.kernels`), faster than Keras's layers;
    * no XLA: its compile time was more than it won back.
    """

    def __init__(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model = model
        # The windows are copied to tensors once; each step gathers its batch from them.
        self.x = tf.constant(x)
        self.y = tf.constant(y)
        optimizer = model.optimizer
        variables = model.trainable_variables
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            optimizer.build(variables)  # its slots are created like the model's variables
        loss_fn = model.loss
        if type(loss_fn) is keras.losses.MeanSquaredError and loss_fn.reduction == "sum_over_batch_size":
            # The same mean, in two ops instead of Keras's rank and dtype bookkeeping.
            loss_fn = lambda labels, outputs: tf.reduce_mean(tf.math.squared_difference(outputs, labels))  # noqa: E731
        self.shards = _shards(model, batch_size, strategy)
        fused = fused_forward(model, shards=self.shards)
        self.fused = fused is not None
        self.kernel = kernel_name(model) if self.fused else "keras"  # reported in metrics.json
        self.shards = self.shards if self.fused else 1  # reported as "batch_shards"
        forward = fused or (lambda inputs: model(inputs, training=True))
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        if batch_size % replicas:
            raise ConfigError(
                "batch_size", f"expected a multiple of the {replicas} replicas (each takes an equal share), "
                f"got {batch_size}",
            )  # fmt: skip
        share = batch_size // replicas

        def update(indices: tf.Tensor) -> tf.Tensor:
            """One replica's step on `indices`; returns its share of the global mean loss."""
            xb, yb = tf.gather(self.x, indices), tf.gather(self.y, indices)
            with tf.GradientTape() as tape:
                # Each replica's mean weighs 1/replicas of the global mean: the optimizer sums
                # the replicas' gradients, which then equal the gradient of the global mean.
                loss = loss_fn(yb, forward(xb))
                if replicas > 1:
                    loss = loss / replicas
            grads = tape.gradient(loss, variables)
            # A variable the loss does not reach gets a zero gradient, as in Keras's own step.
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)]
            optimizer.apply(grads, variables)
            return loss

        def replica_update(batch: tf.Tensor) -> tf.Tensor:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            return update(batch[replica * share : (replica + 1) * share])

        def distributed_update(batch: tf.Tensor) -> tf.Tensor:
            # One collective per step, the optimizer's gradient all-reduce: the loss is not
            # reduced across workers, it is the mean over this worker's replicas' shares.
            local = strategy.experimental_local_results(strategy.run(replica_update, args=(batch,)))
            return tf.add_n(list(local)) * (replicas / len(local))

        step_update = update if strategy is None else distributed_update

        def step(index: tf.Tensor, batches: tf.Tensor, losses: tf.TensorArray):
            return index + 1, batches, losses.write(index, step_update(batches[index]))

        def run_chunk(batches: tf.Tensor) -> tf.Tensor:
            count = tf.shape(batches)[0]
            _, _, losses = tf.while_loop(
                lambda index, *_: index < count,
                step,
                (tf.constant(0), batches, tf.TensorArray(tf.float32, size=count)),
            )
            return losses.stack()

        self.run_chunk = tf.function(
            run_chunk,
            input_signature=[tf.TensorSpec([None, batch_size], tf.int32)],
            autograph=False,
        )

    def __call__(self, batches: np.ndarray) -> np.ndarray:
        return self.run_chunk(batches).numpy()


def _shards(model: keras.Model, batch_size: int, strategy: tf.distribute.Strategy | None) -> int:
    """2 when two single-threaded halves of each batch can run side by side, else 1.

    Each fused kernel op runs on one thread, so two halves on 2 inter-op threads of 1 intra-op
    thread each keep both cores busy. It pays on the sequence layout; the legacy layout's single
    step gains nothing but longer tracing, nor do 4 halves on 2 cores (README has the numbers).
    """
    side_by_side = current_plan().halves
    recurrent = model.input_shape[1] > 1  # the sequence layout
    return 2 if side_by_side and recurrent and strategy is None and batch_size % 2 == 0 else 1


class _FitEngine:
    """The reference: `keras.Model.fit` over each chunk's batches, in order."""

    def __init__(
        self, model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, strategy: None = None
    ):
        self.model, self.x, self.y, self.batch_size = model, x, y, batch_size

    def __call__(self, batches: np.ndarray) -> np.ndarray:
        flat = batches.reshape(-1)
        history = self.model.fit(
            self.x[flat], self.y[flat], batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0
        )
        return np.asarray(history.history["loss"][-1:], dtype=np.float32)


_ENGINES = {"fast": _FastEngine, "fit": _FitEngine}


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
    result: TrainingResult | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    validate_every: int = 100,
    patience: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
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
        engine: ``"fast"`` or ``"fit"`` (see the module docstring).
        checkpoint_every: call `on_checkpoint(model, step)` every this many steps and at the end.
        on_checkpoint: the checkpoint callback (e.g. `RunDirectory.save_checkpoint`).
        progress: show a progress bar on stdout.
        summary_writer: a `tf.summary` writer receiving the loss by step (TensorBoard).
        chunk: steps in the first compiled call; later ones take about `CHUNK_SECONDS` each.
        result: a `TrainingResult` to extend (e.g. the history of a resumed run); it is
            updated in place before each checkpoint, so the callback can save it.
        validation: `(x, y)` windows scored every `validate_every` steps and at the end; the
            model ends with the weights of its best validation loss.
        validate_every: steps between validation losses.
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

    Returns:
        A `TrainingResult` with the loss history and timings.

    Raises:
        ValueError: bad arguments, or `x`/`y` not matching the model.
        TrainingDivergedError: the loss became NaN or infinite (the model keeps the weights of
            the end of the last finished chunk).
        KeyboardInterrupt: Ctrl-C (or SIGTERM turned into it by the CLI); the callback has
            then written a checkpoint at the step reached.
    """
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_int("seed", seed)
    chunk = check_positive_int("chunk", chunk)
    check_choice("engine", engine, ENGINES)
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
    start = int(model.optimizer.iterations.numpy())
    hooks = _callback_list(callbacks, model, steps, validate_every)
    # Chunks end at epoch ends only where something happens there, so as not to cut them short.
    epoch_ends = validate_every if validation is not None or callbacks else None
    result = result if result is not None else TrainingResult()
    result.final_step = start
    if start >= steps:
        return result

    if engine == "fast":
        # Loads the native kernels, or builds them where no build is kept, before the clock and
        # the progress bar start.
        default_kernel()
    bar = keras.utils.Progbar(steps, verbose=1 if sys.stdout.isatty() else 2) if progress else None
    began = time.perf_counter()
    run_chunk = _ENGINES[engine](model, x, y, batch_size, strategy)
    result.kernel = getattr(run_chunk, "kernel", "keras")
    result.shards = getattr(run_chunk, "shards", 1)
    result.device = training_device()
    step, trained_before, saved_before = start, result.train_seconds, result.checkpoint_seconds
    validate = _Validator(model, *validation) if validation is not None else None

    def account() -> None:  # training time so far, checkpoint writes excluded
        saving = result.checkpoint_seconds - saved_before
        result.train_seconds = trained_before + time.perf_counter() - began - saving

    model.stop_training = False
    hooks.on_train_begin()
    epoch_losses: list[float] = []
    try:
        calls = 0
        while step < steps and not result.stopped_early:
            end = _next_chunk_end(step, steps, chunk, checkpoint_every, epoch_ends)
            if step % validate_every == 0:
                hooks.on_epoch_begin(step // validate_every)
            hooks.on_train_batch_begin(end - 1)
            called = time.perf_counter()
            losses = run_chunk(batch_order(len(x), batch_size, seed, step, end))
            calls += 1
            # Adapted to this process's speed, except under a strategy: every worker must run
            # the same chunks, or their collectives would not pair up.
            if calls > 1 and strategy is None:  # the first call includes tracing
                per_step = (time.perf_counter() - called) / (end - step)
                chunk = int(min(max(CHUNK_SECONDS / max(per_step, 1e-9), 1), MAX_CHUNK))
            loss_steps = list(range(step + 1, end + 1)) if len(losses) > 1 else [end]
            # The fit engine reports one mean for the chunk: it stands for each of its steps.
            epoch_losses += (
                [float(v) for v in losses] if len(losses) > 1 else [float(losses[0])] * (end - step)
            )
            hooks.on_train_batch_end(end - 1, {"loss": float(losses[-1])})
            if not model.stop_training:  # TerminateOnNaN ends training instead
                _check_finite(loss_steps, losses)
            step = end
            _record(result, loss_steps, losses, summary_writer)
            if bar is not None:
                bar.update(step, values=[("loss", float(losses[-1]))])
            if step % validate_every == 0 or step == steps:
                logs = {"loss": float(np.mean(epoch_losses))}
                if validate is not None:
                    logs["val_loss"] = validate(result, step, summary_writer)
                    result.stopped_early = (
                        patience is not None and result.validations_since_best() >= patience
                    )
                hooks.on_epoch_end((step - 1) // validate_every, logs)
                epoch_losses = []
            result.stopped_early = result.stopped_early or bool(model.stop_training)
            if (
                on_checkpoint is not None
                and checkpoint_every
                and (step % checkpoint_every == 0 or step == steps or result.stopped_early)
            ):
                account()
                saving = time.perf_counter()
                on_checkpoint(model, step)
                result.checkpoint_seconds += time.perf_counter() - saving
    except KeyboardInterrupt:
        # Ctrl-C lands between chunks (Python handles signals once the graph call returns), so
        # the model is consistent: keep the work done so far.
        result.final_step = int(model.optimizer.iterations.numpy())
        account()
        if on_checkpoint is not None and result.final_step > start:
            on_checkpoint(model, result.final_step)
        raise
    account()
    result.final_step = step
    hooks.on_train_end()
    if result.best_weights is not None:
        model.set_weights(result.best_weights)  # the best model is the one kept
    if summary_writer is not None:
        summary_writer.flush()
    return result


class _Validator:
    """Scores the validation windows with one traced forward pass and keeps the best weights."""

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray):
        self.model = model
        inputs, labels = tf.constant(x), tf.constant(y)
        self.loss = tf.function(
            lambda: tf.reduce_mean(tf.math.squared_difference(model(inputs, training=False), labels)),
            autograph=False,
        )

    def __call__(self, result: TrainingResult, step: int, writer: tf.summary.SummaryWriter | None) -> float:
        loss = float(self.loss())
        result.val_steps.append(step)
        result.val_losses.append(loss)
        if loss < result.best_loss:
            result.best_step, result.best_loss = step, loss
            result.best_weights = [np.array(w) for w in self.model.get_weights()]
        if writer is not None:
            with writer.as_default():
                tf.summary.scalar("val_loss", loss, step=step)
        return loss


def _callback_list(
    callbacks: Sequence[keras.callbacks.Callback] | None, model: keras.Model, steps: int, every: int
) -> keras.callbacks.CallbackList:
    """The user's Keras callbacks, told the run's shape in epochs of `every` steps."""
    for callback in callbacks or ():
        if not isinstance(callback, keras.callbacks.Callback):
            raise ConfigTypeError(
                "callbacks", f"expected keras.callbacks.Callback objects, got {type(callback).__name__}"
            )
    return keras.callbacks.CallbackList(
        list(callbacks or ()), model=model, epochs=-(-steps // every), steps=every, verbose=0
    )


def _record(
    result: TrainingResult, steps: list[int], losses: np.ndarray, writer: tf.summary.SummaryWriter | None
):
    result.steps += steps
    result.losses += [float(value) for value in losses]
    if writer is not None:
        with writer.as_default():
            for at, value in zip(steps, losses, strict=True):
                tf.summary.scalar("loss", float(value), step=at)


def _check_arrays(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    expected = tuple(model.input_shape[1:])
    if not isinstance(x, np.ndarray) or x.ndim != 3 or tuple(x.shape[1:]) != expected:
        got = getattr(x, "shape", type(x).__name__)
        raise ConfigError("x", f"expected windows of shape (N, {expected[0]}, {expected[1]}), got {got}")
    if not isinstance(y, np.ndarray) or y.shape != (len(x), 1):
        got = getattr(y, "shape", type(y).__name__)
        raise ConfigError("y", f"expected labels of shape ({len(x)}, 1), got {got}")


def _check_finite(steps: list[int], losses: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise TrainingDivergedError(steps[bad[0]], float(losses[bad[0]]))
