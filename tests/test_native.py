"""The compiled recurrent kernels (tf_sine.native): built, loaded, right, and a clean fallback without them."""

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, native_ops, run_cli

from tf_sine.native.build import (
    PORTABLE,
    BuildRecord,
    TargetError,
    ladder,
    library_path,
    read_record,
    record_path,
)

LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}


@pytest.mark.parametrize("cell", LAYERS)
@pytest.mark.parametrize(
    ("time", "batch", "features", "units"),
    [(10, 16, 1, 30), (1, 5, 10, 7), (7, 1, 3, 33), (3, 4, 2, 1), (2, 3, 5, 128)],
    ids=["preset", "one-step", "batch-of-one", "one-unit", "wide"],
)
def test_ops_equal_keras_values_and_gradients(cell, time, batch, features, units):
    ops = native_ops()
    layer = LAYERS[cell](units, return_sequences=True)
    rng = np.random.default_rng(units)
    x = tf.constant(rng.normal(size=(batch, time, features)).astype(np.float32))
    layer.build(x.shape)
    weights = layer.cell
    weights.bias.assign(rng.normal(0, 0.3, weights.bias.shape).astype(np.float32))  # every bias matters
    weight = tf.constant(rng.normal(size=(batch, time, units)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * weight)
    expected = tape.gradient(loss, [x, weights.kernel, weights.recurrent_kernel, weights.bias])
    inputs = tf.transpose(x, [1, 0, 2])
    forward, gradient = getattr(ops, f"tf_sine_{cell}"), getattr(ops, f"tf_sine_{cell}_grad")
    outputs = forward(inputs, weights.kernel, weights.recurrent_kernel, weights.bias)
    states, *saved = [outputs] if isinstance(outputs, tf.Tensor) else outputs
    grads = gradient(
        inputs, weights.kernel, weights.recurrent_kernel, states, *saved, tf.transpose(weight, [1, 0, 2])
    )
    np.testing.assert_allclose(tf.transpose(states, [1, 0, 2]), layer(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tf.transpose(grads[0], [1, 0, 2]), expected[0], rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(grads[1:], expected[1:], strict=True):
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=1e-4, atol=2e-5)


def test_ops_refuse_mismatched_shapes_naming_the_argument():
    ops = native_ops()
    x = tf.zeros([4, 2, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"kernel must be \(features, 4 \* units\)"):
        ops.tf_sine_lstm(x, tf.zeros([2, 8]), tf.zeros([2, 8]), tf.zeros([8]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"recurrent_kernel must be \(units, 4 \* units\)"
    ):
        ops.tf_sine_lstm(x, tf.zeros([3, 8]), tf.zeros([2, 6]), tf.zeros([8]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \(4 \* units,\)"):
        ops.tf_sine_lstm(x, tf.zeros([3, 8]), tf.zeros([2, 8]), tf.zeros([5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \(2, 3 \* units\), got \[6\]"):
        ops.tf_sine_gru(x, tf.zeros([3, 6]), tf.zeros([2, 6]), tf.zeros([6]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"recurrent_kernel must be \(units, units\)"):
        ops.tf_sine_simple_rnn(x, tf.zeros([3, 2]), tf.zeros([2, 3]), tf.zeros([2]))


@pytest.mark.parametrize("column", range(8))
def test_a_nan_gate_spreads_as_in_keras(column):
    """The divergence check relies on NaN propagating through the kernels (no fast-math)."""
    ops = native_ops()
    layer = keras.layers.LSTM(2, return_sequences=True)
    layer.build((None, 3, 1))
    kernel = np.ones([1, 8], np.float32)
    kernel[0, column] = np.nan
    layer.cell.kernel.assign(kernel)
    states, *_ = ops.tf_sine_lstm(tf.ones([3, 2, 1]), kernel, layer.cell.recurrent_kernel, layer.cell.bias)
    expected = np.isnan(layer(tf.ones([2, 3, 1])).numpy())
    np.testing.assert_array_equal(np.isnan(tf.transpose(states, [1, 0, 2]).numpy()), expected)
    assert expected[:, -1].all()


def _module(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m tf_sine.native ARGS` in a real process, with this process's environment."""
    return subprocess.run([sys.executable, "-m", "tf_sine.native", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ), timeout=timeout)  # fmt: skip


MARK = "--- tf_sine.native "


def _modules(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """`python -m tf_sine.native ARGS` for each of `commands`, one after another in one real
    process (TensorFlow starts once): each one's status, stdout and stderr."""
    script = (
        "import sys\nfrom tf_sine.native.__main__ import main\n"
        f"for args in {[list(command) for command in commands]!r}:\n"
        "    status = main(args)\n"
        f"    print({MARK!r} + str(status), flush=True)\n"
        f"    print({MARK!r}, file=sys.stderr, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    outs, errs = done.stdout.split(MARK)[:-1], done.stderr.split(MARK + "\n")[:-1]
    statuses = [int(part.split("\n", 1)[0]) for part in done.stdout.split(MARK)[1:]]
    outs = [out.split("\n", 1)[1] if index else out for index, out in enumerate(outs)]
    return [subprocess.CompletedProcess(command, status, out, err)
            for command, status, out, err in zip(commands, statuses, outs, errs, strict=True)]  # fmt: skip


def _record(cache) -> BuildRecord:
    (path,) = cache.glob("rnn_ops-*.json")
    return BuildRecord.from_json(path.read_text())


def _rows(info: str) -> dict[str, str]:
    """`--info`'s ``name: value`` rows."""
    pairs = (line.split(":", 1) for line in info.splitlines())
    return {name: value.strip() for name, value in pairs}


def _train(run_dir, *flags: str) -> subprocess.CompletedProcess:
    return run_cli("train", "--layout", "sequence", "--units", "4", "--steps", "20", "--quiet",
                   "--run-dir", str(run_dir), *flags)  # fmt: skip


def test_the_first_training_run_builds_a_self_tested_library_outside_the_clock(tmp_path, monkeypatch):
    native_ops()  # skips, saying why, where this machine is not expected to build them
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    done = _train(tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("compiling the native recurrent kernels for this machine") == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["kernel"] == "native_lstm" and metrics["device"] == "CPU"
    record = _record(tmp_path / "cache")
    assert metrics["train_seconds"] < sum(attempt.seconds for attempt in record.attempts)  # not on the clock
    assert record.ok and record.selftest["cases"] >= 9 and record.attempts[-1].outcome == "built"
    library = Path(record.library)
    built = library.stat().st_mtime_ns
    again = _train(tmp_path / "run2")
    assert again.returncode == 0 and "compiling" not in again.stderr and library.stat().st_mtime_ns == built
    info, check = _modules(("--info",), ("--check",))
    assert info.returncode == 0, info.stderr
    rows = _rows(info.stdout)
    assert (
        rows["status"].startswith("built and self-tested")
        and rows["families loaded"] == "lstm, gru, simple_rnn"
    )
    assert rows["library"] == str(library) and "-march=" in rows["flags"] and not info.stderr
    assert check.returncode == 0 and "passes its self-test" in check.stdout
    assert not list((tmp_path / "cache").glob("*.tmp*"))  # (--force: the failed-build test)


FAILING_COMPILER = """#!/bin/sh
# Answers --version like a compiler, then fails every compile.
if [ "$1" = "--version" ]; then echo "fake-c++ 1.0"; exit 0; fi
echo "fake-c++: error: this compiler compiles nothing" >&2
exit 1
"""


@pytest.mark.parametrize("compiler", ["missing", "failing"])
def test_a_failed_build_is_remembered_and_training_falls_back(tmp_path, monkeypatch, compiler):
    monkeypatch.setenv("TF_SINE_NATIVE", "1")  # the build machinery, whatever the suite's setting
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    if compiler == "missing":
        monkeypatch.setenv("CXX", "/nonexistent/c++")
        reason, tries = "no C++ compiler (/nonexistent/c++ --version does not run)", 1
    else:
        script = tmp_path / "fake-c++"
        script.write_text(FAILING_COMPILER)
        script.chmod(0o755)
        monkeypatch.setenv("CXX", str(script))
        reason, tries = "exited with status 1: fake-c++: error: this compiler compiles nothing", len(ladder())
    first = _module()
    assert first.returncode == 1 and reason in first.stderr and "Traceback" not in first.stderr
    # Only a compiler that runs is announced as compiling.
    assert ("compiling the native recurrent kernels" in first.stderr) == (compiler == "failing")
    record = _record(tmp_path / "cache")
    assert not record.ok and reason in record.reason and record.library is None
    assert len(record.attempts) == tries  # every rung, unless no compiler runs at all
    (record_file,) = (tmp_path / "cache").glob("*.json")
    written = record_file.stat().st_mtime_ns
    if compiler == "missing":
        return  # what follows reads the record alike whatever failed: tested once, below

    done = _train(tmp_path / "run")  # remembered: no second try, one line saying so
    assert done.returncode == 0, done.stderr
    assert "compiling" not in done.stderr and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "native recurrent kernels" in line]
    assert (
        line.startswith("tf-sine: warning: the native recurrent kernels were not built")
        and reason[:60] in line
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["kernel"] == "fused_lstm" and np.isfinite(metrics["rmse"])
    assert record_file.stat().st_mtime_ns == written

    check, info, forced = _modules(("--check",), ("--info",), ("--force",))  # --force tries again
    assert check.returncode == 1 and reason in check.stderr and "compiling" not in check.stderr
    rows = _rows(info.stdout)
    assert info.returncode == 1 and rows["status"].startswith("failed") and rows["families loaded"] == "none"
    assert forced.returncode == 1 and reason in forced.stderr
    assert record_file.stat().st_mtime_ns != written


def test_an_unwritable_cache_is_named_and_training_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_SINE_NATIVE", "1")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "file" / "cache"))
    done = _module()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot write the cache directory {tmp_path / 'file' / 'cache'} (Not a directory)" in done.stderr
    assert "set TF_SINE_CACHE to a writable one" in done.stderr


def test_a_named_target_is_built_as_asked_or_not_at_all(tmp_path, monkeypatch):
    """`TF_SINE_NATIVE_MARCH` replaces -march=native: no portable baseline after it, a library
    of its own in the cache; a word that is not a target option is named, not compiled."""
    monkeypatch.setenv("TF_SINE_NATIVE", "1")
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TF_SINE_NATIVE_MARCH", raising=False)
    native_rungs, native_library = ladder(), library_path()
    baselines = [(flag,) for flag in PORTABLE.get(platform.machine(), ())] or [()]
    assert native_rungs[0] == ("-march=native",) and native_rungs[-len(baselines) :] == baselines
    if baselines[0]:  # an architecture with a named baseline: ask for it by name
        monkeypatch.setenv("TF_SINE_NATIVE_MARCH", f"  {baselines[0][0]} ")
        assert ladder() == [baselines[0]] and library_path() != native_library
    monkeypatch.setenv("TF_SINE_NATIVE_MARCH", "x86-64-v3")
    with pytest.raises(
        TargetError, match=r"TF_SINE_NATIVE_MARCH: expected compiler target options .* 'x86-64-v3'"
    ):
        library_path()
    done = _module()
    (line,) = done.stderr.strip().splitlines()
    assert (
        done.returncode == 2 and "TF_SINE_NATIVE_MARCH: expected" in line and "Traceback" not in done.stderr
    )
    assert not (tmp_path / "cache").exists()


def test_a_thread_count_tensorflow_would_abort_on_is_named(monkeypatch):
    """As the main command does: one line naming the variable, exit 2, before TensorFlow starts."""
    monkeypatch.setenv("TF_SINE_NATIVE", "1")  # with the kernels off, the command starts no TensorFlow
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "-3")
    done = _module("--info")
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert line == (
        "python -m tf_sine.native: error: argument TF_NUM_INTEROP_THREADS: expected a number of threads, "
        "0 or more (0: TensorFlow's default), got '-3'"
    )


def _fake_record(path: Path, changes: dict) -> str:
    fields = dict(status="built", compiler="c++ (fake)", cpu="cpu", machine="x86_64", tensorflow="2",
                  attempts=[{"flags": ["-march=native"], "outcome": "built", "detail": "", "seconds": 1.0}],
                  when="2026-01-01T00:00:00Z", library=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                  flags=["-O3", "-march=native"], selftest={"passed": True, "cases": 9, "max_error": 0.0})  # fmt: skip
    return json.dumps(fields | changes)


@pytest.mark.parametrize(
    ("changes", "kept"),
    [({}, True), ({"sha256": "0" * 64}, False), ({"library": None}, False), ({"library": "/elsewhere.so"}, False),
     ({"status": "maybe"}, False), ({"attempts": "many"}, False), ({"status": "failed"}, False),
     ({"status": "failed", "reason": "no compiler"}, True)],
    ids=["intact", "library-changed", "no-library", "elsewhere", "bad-status", "bad-attempts",
         "failed-without-reason", "failed"],
)  # fmt: skip
def test_a_record_is_trusted_only_for_the_library_that_passed_the_self_test(tmp_path, changes, kept):
    """A replaced, truncated or hand-edited library or record is not loaded: it is built again."""
    library = tmp_path / "rnn_ops-0123456789abcdef.so"
    library.write_bytes(b"\x7fELF a library")
    record_path(library).write_text(_fake_record(library, changes))
    assert (read_record(library) is not None) == kept
    if kept:
        library.write_bytes(b"")  # truncated after the record was written
        assert read_record(library) is None or changes.get("status") == "failed"


def test_the_native_kernels_can_be_turned_off(tmp_path, monkeypatch):
    """One process (the kernels are chosen when it starts) trains each cell with them off."""
    monkeypatch.setenv("TF_SINE_NATIVE", "0")
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    expected = {"lstm": "fused_lstm", "gru": "keras", "simple_rnn": "keras"}
    script = (
        "import sys\nfrom tf_sine.cli import main\n"
        f"for cell in {list(expected)!r}:\n"
        "    status = main(['train', '--layout', 'sequence', '--units', '4', '--steps', '20', '--quiet',\n"
        f"                   '--cell', cell, '--run-dir', {str(tmp_path)!r} + '/' + cell])\n"
        "    if status:\n        sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "native" not in done.stderr and not (tmp_path / "cache").exists()
    for cell, kernel in expected.items():
        metrics = json.loads((tmp_path / cell / "metrics.json").read_text())
        assert metrics["kernel"] == kernel and np.isfinite(metrics["rmse"])
