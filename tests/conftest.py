"""Shared fixtures: tiny configurations and one trained tiny run reused by several tests."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from tf_sine.config import Config

ROOT = Path(__file__).resolve().parents[1]

# A few seconds of training: small enough for the default suite, large enough to learn.
TINY = Config(units=4, steps=40, checkpoint_every=20)


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny run directory (trained once per test session)."""
    from tf_sine.pipeline import run_experiment

    return run_experiment(TINY, tmp_path_factory.mktemp("tiny_run"), progress=False)
