"""Ctrl-C and SIGTERM held until a piece of training is whole (`tf_sine.interrupts`), in process:
the process-level behaviour (exit statuses, resumed runs) is tested in test_reliability.py."""

import os
import signal
import threading
import time

import keras
import numpy as np
import pytest

from tf_sine.interrupts import held_interrupts


@pytest.fixture()
def sigterm_raises():
    """SIGTERM handled as the CLI handles it: recorded, then KeyboardInterrupt."""
    received: list[int] = []

    def handler(signum: int, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    yield received, handler
    signal.signal(signal.SIGTERM, previous)


def _signal_self(signum: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # where an unheld handler would already have run


def test_the_first_signal_waits_for_the_end_of_the_block(sigterm_raises):
    received, handler = sigterm_raises
    seen_inside = []
    with pytest.raises(KeyboardInterrupt), held_interrupts():
        _signal_self()
        seen_inside.append(list(received))
    assert seen_inside == [[]] and received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is handler  # restored


def test_a_second_signal_is_not_held(sigterm_raises):
    received, handler = sigterm_raises
    reached = []
    with pytest.raises(KeyboardInterrupt), held_interrupts():
        _signal_self()
        _signal_self()  # raises here
        reached.append(True)
    assert not reached and received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is handler


def test_a_block_that_raises_drops_the_held_signal(sigterm_raises):
    received, _ = sigterm_raises
    with pytest.raises(ZeroDivisionError), held_interrupts():
        _signal_self()
        _ = 1 / 0
    assert received == []


def test_ctrl_c_with_pythons_own_handler_is_held_too():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt), held_interrupts():
            _signal_self(signal.SIGINT)
            reached.append(True)
        assert reached == [True]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_nothing_is_touched():
    handlers = []

    def worker() -> None:
        with held_interrupts():
            handlers.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert handlers == [before]


def test_training_stopped_mid_piece_keeps_its_losses_and_checkpoints_once(sigterm_raises):
    """A signal during a piece's checkpoint: training stops after it, with every step's loss,
    and no second checkpoint of the same step."""
    from tf_sine.training import TrainingState, train

    model = keras.Sequential([keras.Input((4, 1)), keras.layers.LSTM(3), keras.layers.Dense(1)])
    model.compile(optimizer="adagrad", loss="mse")
    x = np.random.default_rng(0).random((40, 4, 1), dtype=np.float32)
    y = x[:, -1]
    saved = []

    def on_checkpoint(trained, step: int) -> None:
        saved.append(step)
        if step == 20:
            _signal_self()  # lands inside the piece that ends at step 20

    state = TrainingState()
    with pytest.raises(KeyboardInterrupt):
        train(model, x, y, steps=100, batch_size=8, checkpoint_every=10, on_checkpoint=on_checkpoint,
              progress=False, resume=state)  # fmt: skip
    assert saved == [10, 20] and int(model.optimizer.iterations.numpy()) == 20
    assert state.steps == list(range(1, 21)) and len(state.losses) == 20


def test_a_second_signal_midway_writes_no_checkpoint_of_a_cut_piece(sigterm_raises):
    """Two signals during a piece's callbacks: the piece is cut short, so the checkpoint before
    it stays the newest; no checkpoint pairs its weights with a partial history."""
    from tf_sine.training import train

    model = keras.Sequential([keras.Input((4, 1)), keras.layers.LSTM(3), keras.layers.Dense(1)])
    model.compile(optimizer="adagrad", loss="mse")
    x = np.random.default_rng(0).random((40, 4, 1), dtype=np.float32)
    saved = []

    class Twice(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 19:  # the piece that ends at step 20
                _signal_self()
                _signal_self()

    with pytest.raises(KeyboardInterrupt):
        train(model, x, x[:, -1], steps=100, batch_size=8, checkpoint_every=10, progress=False,
              on_checkpoint=lambda trained, step: saved.append(step), callbacks=[Twice()])  # fmt: skip
    assert saved == [10]
