"""Step-counted training: data order, both engines, determinism, checkpoints, divergence."""

import keras
import numpy as np
import pytest

import tf_sine
from tf_sine.training import TrainingDivergedError, batch_order, datafeeder_order, train


def test_each_pass_is_a_permutation_and_order_is_resumable():
    order = batch_order(n=50, batch_size=8, seed=4, start_step=0, stop_step=25)  # 200 = 4 passes
    assert order.shape == (25, 8) and order.dtype == np.int32
    stream = order.reshape(-1)
    for p in range(4):
        assert sorted(stream[p * 50 : (p + 1) * 50]) == list(range(50))
    assert not np.array_equal(stream[:50], stream[50:100])  # reshuffled each pass
    # Any later slice is the same as the matching rows of the whole order.
    np.testing.assert_array_equal(batch_order(50, 8, 4, 13, 25), order[13:])
    assert not np.array_equal(batch_order(50, 8, 5, 0, 25), order)  # the seed matters


def _tiny(**options):
    keras.utils.set_random_seed(0)
    x, y = tf_sine.generate_data(
        np.sin(np.linspace(0, 20, 400)), timesteps=8, layout=options.get("layout", "legacy")
    )
    return tf_sine.build_model(units=4, timesteps=8, **options), x, y


def test_training_counts_optimizer_steps_and_learns():
    model, x, y = _tiny()
    before = tf_sine.evaluate(model, x, y)[0]["mse"]
    result = train(model, x, y, steps=120, batch_size=16, progress=False, chunk=50)
    assert result.final_step == 120 == int(model.optimizer.iterations.numpy())
    assert result.steps == list(range(1, 121)) and len(result.losses) == 120
    assert tf_sine.evaluate(model, x, y)[0]["mse"] < before / 2
    assert result.train_seconds > 0
    # Training again to the same count does nothing; to a higher one continues.
    assert train(model, x, y, steps=120, progress=False).steps == []
    assert train(model, x, y, steps=130, progress=False).steps == list(range(121, 131))


@pytest.mark.parametrize("layout", ["legacy", "sequence"])
def test_same_seed_gives_identical_predictions(layout):
    outputs = []
    for _ in range(2):
        model, x, y = _tiny(layout=layout, dropout=0.1)
        train(model, x, y, steps=60, batch_size=16, seed=7, progress=False)
        outputs.append(tf_sine.predict(model, x))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_fast_and_fit_engines_compute_the_same_updates():
    results = {}
    for engine in ("fast", "fit"):
        model, x, y = _tiny()
        train(model, x, y, steps=50, batch_size=16, engine=engine, progress=False)
        results[engine] = tf_sine.predict(model, x)
    np.testing.assert_allclose(results["fast"], results["fit"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("where", ["kernel", "activity"])
def test_regularization_losses_train_on_the_fast_engine_as_in_fit(where):
    """A user's regularized model: the fast engine adds `model.losses` as Keras's step does."""
    results = {}
    for engine in ("fast", "fit", "unregularized"):
        _, x, y = _tiny()
        keras.utils.set_random_seed(0)
        penalty = {} if engine == "unregularized" else {f"{where}_regularizer": keras.regularizers.L2(0.05)}
        model = keras.Sequential([keras.Input((1, 8)), keras.layers.LSTM(4, return_sequences=True),
                                  keras.layers.LSTM(4, **penalty), keras.layers.Dense(1)])  # fmt: skip
        model.compile(optimizer=keras.optimizers.Adagrad(0.1), loss="mse")
        train(
            model,
            x,
            y,
            steps=40,
            batch_size=16,
            engine=engine.replace("unregularized", "fast"),
            progress=False,
        )
        results[engine] = tf_sine.predict(model, x)
    np.testing.assert_allclose(results["fast"], results["fit"], rtol=1e-4, atol=1e-5)
    assert np.abs(results["fast"] - results["unregularized"]).max() > 1e-3  # the penalty mattered


def test_checkpoints_at_the_interval_and_at_the_end():
    model, x, y = _tiny()
    seen = []
    train(
        model,
        x,
        y,
        steps=70,
        checkpoint_every=30,
        progress=False,
        on_checkpoint=lambda m, step: seen.append((step, int(m.optimizer.iterations.numpy()))),
    )
    assert seen == [(30, 30), (60, 60), (70, 70)]


def test_divergence_names_the_step():
    model, x, y = _tiny(optimizer="sgd", learning_rate=1e9)
    with pytest.raises(
        TrainingDivergedError, match=r"training diverged: the loss is (nan|inf) at step \d+; try"
    ):
        train(model, x, y * 1e6, steps=40, progress=False, chunk=10)


def test_mismatched_windows_are_refused():
    model, x, y = _tiny()
    with pytest.raises(ValueError, match=r"x: expected windows of shape \(N, 1, 8\), got \(391, 8, 1\)"):
        train(model, x.transpose(0, 2, 1), y, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"y: expected labels of shape \(391, 1\), got \(391,\)"):
        train(model, x, y[:, 0], steps=1, progress=False)
    with pytest.raises(ValueError, match="steps: expected a positive integer, got 0"):
        train(model, x, y, steps=0)


def _scalar_steps(folder, tag: str) -> list[int]:
    import tensorflow as tf

    return sorted(
        event.step for path in folder.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path)) for value in event.summary.value if value.tag == tag
    )  # fmt: skip


class _Calls(keras.callbacks.Callback):
    """A user's own callback: records what it is told."""

    def __init__(self):
        super().__init__()
        self.batches, self.epochs, self.began, self.ended = [], [], 0, 0

    def on_train_begin(self, logs=None):
        self.began += 1

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((batch, logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.ended += 1


@pytest.mark.parametrize("engine", ["fast", "fit"])
def test_keras_early_stopping_csv_logger_and_a_users_callback(tmp_path, engine):
    """Keras's own callbacks through `train(callbacks=...)`: an epoch is `validate_every` steps."""
    model, x, y = _tiny()
    # No loss ever improves by 10: EarlyStopping keeps the first epoch's and stops after the second.
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)
    calls = _Calls()
    log = tmp_path / "log.csv"
    result = train(model, x[:300], y[:300], steps=100, batch_size=16, engine=engine, progress=False,
                   validation=(x[300:], y[300:]), validate_every=10,
                   callbacks=[stop, keras.callbacks.CSVLogger(str(log)), calls,
                              keras.callbacks.TensorBoard(str(tmp_path / "tb"))])  # fmt: skip
    assert result.final_step == 20 == int(model.optimizer.iterations.numpy()) and result.stopped_early
    assert stop.stopped_epoch == 1 and calls.began == calls.ended == 1
    rows = log.read_text().splitlines()
    assert rows[0] == "epoch,loss,val_loss" and len(rows) == 3
    epoch, loss, val_loss = (float(value) for value in rows[2].split(","))
    assert epoch == 1 and val_loss == pytest.approx(result.val_losses[1], rel=1e-6)
    # Each epoch's loss is the mean over its steps (the fit engine's chunk mean stands for each step).
    expected = np.mean(result.losses[len(result.losses) // 2 :])
    assert loss == pytest.approx(expected, rel=1e-5)
    assert [epoch for epoch, _ in calls.epochs] == [0, 1] and calls.batches[-1][0] == 19
    for part in ("train", "validation"):  # TensorBoard's epoch scalars, one per epoch
        assert _scalar_steps(tmp_path / "tb" / part, "epoch_loss") == [0, 1]
    # The callbacks watched; they did not change the updates: the same weights as 20 plain steps.
    plain, _, _ = _tiny()
    train(plain, x[:300], y[:300], steps=20, batch_size=16, engine=engine, progress=False)
    for got, expected in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_terminate_on_nan_stops_instead_of_raising():
    model, x, y = _tiny(learning_rate=1e30, optimizer="sgd")
    result = train(model, x, y, steps=200, batch_size=16, progress=False, chunk=5,
                   callbacks=[keras.callbacks.TerminateOnNaN()])  # fmt: skip
    assert result.stopped_early and result.final_step < 200 and not np.isfinite(result.losses[-1])
    with pytest.raises(TypeError,
                       match=r"callbacks: expected keras\.callbacks\.Callback objects, got builtin"):  # fmt: skip
        train(model, x, y, steps=1, progress=False, callbacks=[print])


class _DataFeeder:
    """TF 0.12's contrib.learn DataFeeder as its source reads (learn_io/data_feeder.py): a
    RandomState(42) permutation, sliced in order, a short last slice, then the next permutation."""

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size = n, batch_size
        self.random_state = np.random.RandomState(42)
        self.indices, self.offset = self.random_state.permutation(n), 0

    def next_batch(self) -> np.ndarray:
        end = min(self.n, self.offset + self.batch_size)
        batch = self.indices[self.offset : end]
        self.offset += self.batch_size
        if self.offset >= self.n:
            self.indices, self.offset = self.random_state.permutation(self.n), 0
        return batch


def test_the_datafeeder_order_is_tf_012s_with_a_short_batch_at_each_pass_end():
    feeder = _DataFeeder(9989, 32)
    expected = [feeder.next_batch() for _ in range(1000)]
    indices, sizes = datafeeder_order(9989, 32, 0, 1000)
    assert [int(s) for s in np.flatnonzero(sizes < 32) + 1] == [313, 626, 939]  # every 313th step
    assert set(sizes[sizes < 32].tolist()) == {9989 - 312 * 32} == {5}
    for row, batch in enumerate(expected):
        np.testing.assert_array_equal(indices[row, : sizes[row]], batch)
    later, later_sizes = datafeeder_order(9989, 32, 600, 1000)  # a resumed call: the same rows
    np.testing.assert_array_equal(later, indices[600:])
    np.testing.assert_array_equal(later_sizes, sizes[600:])


@pytest.mark.parametrize("engine", ["fast", "fit"])
def test_datafeeder_batches_train_as_keras_does_on_the_same_batches(engine):
    model, x, y = _tiny()
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    reference.compile(optimizer=keras.optimizers.Adagrad(0.1), loss="mse")
    feeder = _DataFeeder(len(x), 64)  # 392 windows: 6 full batches and one of 8 per pass
    for _ in range(15):
        batch = feeder.next_batch()
        reference.train_on_batch(x[batch], y[batch])
    result = train(model, x, y, steps=15, batch_size=64, engine=engine, batches="datafeeder", progress=False)
    assert result.final_step == 15
    for trained, expected in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)


def test_the_datafeeder_order_restarts_where_the_feeder_started():
    model, x, y = _tiny()
    train(model, x, y, steps=5, batch_size=64, batches="datafeeder", progress=False)
    twice = keras.models.clone_model(model)
    twice.set_weights(model.get_weights())
    twice.compile(optimizer=keras.optimizers.Adagrad(0.1), loss="mse")
    twice.optimizer.build(twice.trainable_variables)
    for mine, theirs in zip(twice.optimizer.variables, model.optimizer.variables, strict=True):
        mine.assign(theirs)
    train(model, x, y, steps=8, batch_size=64, batches="datafeeder", feed_start=5, progress=False)
    feeder = _DataFeeder(len(x), 64)  # a new fit call: the feeder's first batches again
    for _ in range(3):
        batch = feeder.next_batch()
        twice.train_on_batch(x[batch], y[batch])
    for trained, expected in zip(model.get_weights(), twice.get_weights(), strict=True):
        np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("cell", "layout"), [("lstm", "legacy"), ("gru", "sequence")])
def test_uniform_unit_scaling_draws_within_tf_012s_limits(cell, layout):
    model = tf_sine.build_model(cell=cell, layout=layout, units=30, initializer="uniform_unit_scaling")
    inputs = 10 if layout == "legacy" else 1
    for index, width in enumerate([inputs, 30]):
        layer = model.get_layer(f"{cell}_{index}")
        limit = np.sqrt(3.0 / (width + 30))  # TF 0.12: sqrt(3 / fan_in) of the joint [x, h] matrix
        for weights in (layer.cell.kernel.numpy(), layer.cell.recurrent_kernel.numpy()):
            assert np.abs(weights).max() <= limit and np.abs(weights).max() > 0.9 * limit
    glorot = (
        tf_sine.build_model(cell=cell, layout=layout, units=30).get_layer(f"{cell}_0").cell.kernel.numpy()
    )
    assert np.abs(glorot).max() < np.sqrt(3.0 / (inputs + 30))  # Keras's default is narrower
