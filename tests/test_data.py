"""generate_data against the source's own function, layouts, the source series, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from source_script import SOURCE, source_generate_data, source_windows

import tf_sine
from tf_sine.data import all_windows, count_windows, layout_of, sine_series, sine_windows, window_shape


def test_source_windows_equal_the_scripts():
    ours = sine_windows()
    for a, b in zip(ours, source_windows(), strict=True):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert SOURCE["TRAINING_EXAMPLES"] == 10000 and SOURCE["TESTING_EXAMPLES"] == 1000
    train_seq, test_seq = sine_series()
    assert train_seq.shape == (10000,) and test_seq.shape == (1000,) and test_seq.dtype == np.float32
    assert test_seq[0] == np.float32(np.sin(np.float32(100.0)))


@pytest.mark.parametrize("part", [0, 1], ids=["train", "test"])
def test_generate_data_equals_source_on_source_series(part):
    seq = sine_series()[part]
    x, y = tf_sine.generate_data(seq)
    sx, sy = source_generate_data(seq, 10)
    assert x.dtype == sx.dtype == np.float32 and y.dtype == np.float32
    assert x.shape == sx.shape == (len(seq) - 11, 1, 10)
    assert y.shape == sy.shape == (len(seq) - 11, 1)
    np.testing.assert_array_equal(x, sx)
    np.testing.assert_array_equal(y, sy)


def test_generate_data_equals_source_on_random_sequences():
    rng = np.random.default_rng(1234)
    for _ in range(60):
        timesteps = int(rng.integers(1, 40))
        length = int(rng.integers(timesteps + 2, 400))
        dtype = rng.choice([np.float64, np.float32, np.int64])
        seq = (rng.normal(size=length) * 100).astype(dtype)
        x, y = tf_sine.generate_data(seq, timesteps)
        sx, sy = source_generate_data(seq, timesteps)
        np.testing.assert_array_equal(x, sx)
        np.testing.assert_array_equal(y, sy)
        assert len(x) == count_windows(length, timesteps) == length - timesteps - 1


@settings(max_examples=80, deadline=None)
@given(
    seq=st.lists(st.floats(-1e30, 1e30, allow_nan=False, width=64), min_size=3, max_size=120),
    timesteps=st.integers(1, 30),
)
def test_generate_data_property_against_source(seq, timesteps):
    if len(seq) < timesteps + 2:
        with pytest.raises(ValueError, match="seq: expected at least"):
            tf_sine.generate_data(seq, timesteps)
        return
    x, y = tf_sine.generate_data(seq, timesteps)
    sx, sy = source_generate_data(seq, timesteps)  # the source works on a Python list too
    np.testing.assert_array_equal(x, sx)
    np.testing.assert_array_equal(y, sy)


def test_sequence_layout_is_the_transposed_window():
    seq = np.arange(30.0)
    legacy, y1 = tf_sine.generate_data(seq, 5)
    sequence, y2 = tf_sine.generate_data(seq, 5, layout="sequence")
    assert legacy.shape == (24, 1, 5) and sequence.shape == (24, 5, 1)
    np.testing.assert_array_equal(sequence[:, :, 0], legacy[:, 0, :])
    np.testing.assert_array_equal(y1, y2)
    assert sequence.flags["C_CONTIGUOUS"]
    # Window i holds seq[i:i+5] and is labelled with seq[i+5].
    np.testing.assert_array_equal(sequence[3, :, 0], [3, 4, 5, 6, 7])
    assert y2[3, 0] == 8


def test_all_windows_adds_the_windows_generate_data_drops():
    seq = np.arange(20.0)
    windows = all_windows(seq, 4, "sequence")
    x, _ = tf_sine.generate_data(seq, 4, "sequence")
    assert len(windows) == 17 == len(x) + 2
    np.testing.assert_array_equal(windows[: len(x)], x)
    np.testing.assert_array_equal(windows[-1, :, 0], [16, 17, 18, 19])


def test_sine_windows_shapes():
    train_x, train_y, test_x, test_y = sine_windows()
    assert train_x.shape == (9989, 1, 10) and train_y.shape == (9989, 1)
    assert test_x.shape == (989, 1, 10) and test_y.shape == (989, 1)
    assert sine_windows(layout="sequence")[2].shape == (989, 10, 1)


def test_window_shape_and_layout_of_are_inverse():
    for layout in ("legacy", "sequence"):
        for timesteps in (2, 10, 37):
            assert layout_of((None, *window_shape(timesteps, layout))) == (timesteps, layout)
    assert layout_of((None, *window_shape(12, "sequence", features=3))) == (12, "sequence")
    with pytest.raises(ValueError, match=r"model: expected an input shape .* got \(None, 3\)"):
        layout_of((None, 3))


@pytest.mark.parametrize(
    ("seq", "kwargs", "error", "message"),
    [
        (
            np.arange(11.0),
            {},
            ValueError,
            r"seq: expected at least timesteps \+ 2 = 12 values for one window, got 11",
        ),
        (np.zeros((20, 2)), {}, ValueError, r"seq: expected a 1-D sequence, got shape \(20, 2\)"),
        ([], {}, ValueError, "seq: expected a non-empty sequence, got 0 values"),
        ([1.0] * 5 + [float("nan")] * 10, {}, ValueError, "seq: expected finite values, got nan at index 5"),
        ([1.0] * 14 + [float("inf")], {}, ValueError, "seq: expected finite values, got inf at index 14"),
        (["a"] * 20, {}, TypeError, "seq: expected real numbers, got values of dtype <U1"),
        ([True] * 20, {}, TypeError, "seq: expected real numbers, got values of dtype bool"),
        (np.arange(20.0), {"timesteps": 0}, ValueError, "timesteps: expected a positive integer, got 0"),
        (np.arange(20.0), {"timesteps": 2.5}, TypeError, "timesteps: expected a positive integer, got 2.5"),
        (
            np.arange(20.0),
            {"layout": "nchw"},
            ValueError,
            "layout: expected one of 'legacy', 'sequence', got 'nchw'",
        ),
    ],
)
def test_generate_data_refuses_bad_input(seq, kwargs, error, message):
    with pytest.raises(error, match=message):
        tf_sine.generate_data(seq, **kwargs)


def test_sine_windows_refuse_windows_longer_than_the_test_series():
    with pytest.raises(
        ValueError, match="timesteps: expected at most 998 for the source's 1000-point test series, got 999"
    ):
        sine_windows(timesteps=999)


@settings(max_examples=60, deadline=None)
@given(
    seq=hnp.arrays(np.float64, st.integers(2, 300), elements=st.floats(-1e6, 1e6, allow_nan=False)),
    timesteps=st.integers(1, 40),
    layout=st.sampled_from(["legacy", "sequence"]),
)
def test_property_shapes_formula_and_no_nan_introduced(seq, timesteps, layout):
    if len(seq) < timesteps + 2:
        with pytest.raises(ValueError, match="seq: expected at least"):
            tf_sine.generate_data(seq, timesteps, layout)
        return
    x, y = tf_sine.generate_data(seq, timesteps, layout)
    n = len(seq) - timesteps - 1
    assert x.shape == ((n, 1, timesteps) if layout == "legacy" else (n, timesteps, 1)) and y.shape == (n, 1)
    assert np.isfinite(x).all() and np.isfinite(y).all()


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(12, 200),
    where=st.floats(0, 1, exclude_max=True),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    timesteps=st.integers(1, 10),
)
def test_property_every_non_finite_series_is_refused(length, where, bad, timesteps):
    seq = np.sin(np.arange(length, dtype=np.float64))
    index = int(where * length)
    seq[index] = bad
    with pytest.raises(ValueError, match=f"seq: expected finite values, got {bad} at index {index}"):
        tf_sine.generate_data(seq, timesteps)


@settings(max_examples=40, deadline=None)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6))
def test_property_every_multi_dimensional_series_is_refused(shape):
    with pytest.raises(ValueError, match=r"seq: expected a 1-D sequence, got shape"):
        tf_sine.generate_data(np.zeros(shape))
