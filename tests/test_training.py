"""Step-counted training: data order, both engines, determinism, checkpoints, divergence."""

import keras
import numpy as np
import pytest

import tf_sine
from tf_sine.training import TrainingDivergedError, batch_order, train


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
