"""Shared fixtures: tiny configurations and one trained tiny run reused by several tests."""

import os
import signal
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite tests the CPU paths, in-process and in the subprocesses it starts; the GPU choice is
# tested by injecting the device list (test_kernels.py).
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.pop("TF_SINE_NATIVE_MARCH", None)  # the suite builds and tests this machine's kernels

import pytest
import tensorflow as tf

from tf_sine.config import Config

# TensorFlow fixes its thread pools when it runs its first op: here, once, so that a command run
# in this process (`call_main`) cannot change them, whatever order the tests run in. Training's
# choice of pools is tested in fresh processes (test_cli.py).
tf.constant(0.0)

ROOT = Path(__file__).resolve().parents[1]

# A few seconds of training: small enough for the default suite, large enough to learn.
TINY = Config(units=4, steps=40, checkpoint_every=20)


# The modules whose tests each start processes of their own (TensorFlow start-up, a compiler,
# a second worker), longest first. Under pytest-xdist's work stealing a worker that runs out
# takes tests from the end of another's queue, so the suite ends soonest with these first.
_LONG_FIRST = ("test_native.py", "test_reliability.py", "test_distribute.py", "test_notebooks.py",
               "test_legacy.py", "test_export.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(_LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept


def native_expected() -> bool:
    """Whether the native kernels must work here: they are on, and a C++ compiler runs. Where
    they must, a build that fails is a test failure, never a skip."""
    from tf_sine import native

    return native.enabled() and native.compiler_available()


def native_ops():
    """The loaded native op library; skips, saying why, where `native_expected()` is False."""
    from tf_sine import native

    if not native.enabled():
        pytest.skip("TF_SINE_NATIVE=0 turns the native kernels off")
    if not native.compiler_available():
        pytest.skip(
            f"no C++ compiler ({native.compiler_description()}): the fallback's tests cover this machine"
        )
    ops = native.load()
    assert ops is not None, (
        f"the native kernels should build wherever a compiler runs: {native.read_record()}"
    )
    return ops


def expected_kernel(cell: str = "lstm") -> str:
    """What `metrics.json`'s kernel says for a covered model of `cell` on this machine's CPU."""
    if native_expected():
        return f"native_{cell}"
    return "fused_lstm" if cell == "lstm" else "keras"


def default_sigint() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: the child answers Ctrl-C as a terminal's would.

    A suite started in the background (`nohup`, `&`) ignores SIGINT, children inherit that, and
    Python then leaves Ctrl-C ignored: a test that sends SIGINT resets it first.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m tf_sine ARGS` as a real subprocess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "tf_sine", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=600,
    )


def call_main(*argv: str, stdin: str | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    """Runs the command line in this process: `(status, stdout, stderr)`.

    What `main` changes in the process (the SIGTERM handler, the warnings' format, the working
    directory for `cwd`) is put back. An argparse error's `SystemExit` becomes its status.
    """
    import contextlib
    import io
    import signal
    import warnings

    from tf_sine.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler, show, stdin_before, here = (
        signal.getsignal(signal.SIGTERM),
        warnings.showwarning,
        sys.stdin,
        Path.cwd(),
    )
    try:
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(argv))
            except SystemExit as exit:
                status = exit.code
    finally:
        signal.signal(signal.SIGTERM, handler)
        warnings.showwarning, sys.stdin = show, stdin_before
        os.chdir(here)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def cli():
    """`call_main` as a fixture: `cli(*argv, stdin=None, cwd=None) -> (status, stdout, stderr)`."""
    return call_main


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny run directory (trained once per test session)."""
    from tf_sine.pipeline import run_experiment

    return run_experiment(TINY, tmp_path_factory.mktemp("tiny_run"), progress=False)


def seasonal_series(n: int = 500, seed: int = 0, trend: float = 0.04, period: int = 12):
    """A noisy seasonal series with a rising trend: 20 + trend*t + 4 sin(2 pi t / period) + N(0, 0.5)."""
    import numpy as np

    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0.0, 0.5, n)
    return 20 + trend * t + 4 * np.sin(2 * np.pi * t / period) + noise


def write_seasonal_csv(path: Path, n: int = 500, seed: int = 0, **kwargs) -> Path:
    """Writes `seasonal_series` as monthly CSV rows ``month,sales`` starting 1980-01."""
    values = seasonal_series(n, seed, **kwargs)
    rows = [f"{1980 + i // 12}-{i % 12 + 1:02d},{value:.4f}" for i, value in enumerate(values)]
    path.write_text("month,sales\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path
