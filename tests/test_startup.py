"""A quiet start: TensorFlow's start-up notes hidden, its real warnings and errors kept."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from tf_sine.startup import nvidia_driver_present, start_up_noise

NOISE = ["absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "cuInit"]


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    """A real process without the suite's TF_CPP_MIN_LOG_LEVEL, as a user's shell starts it."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=300)  # fmt: skip


def test_a_plain_training_run_prints_no_tensorflow_start_up_lines(tmp_path):
    done = _run("-m", "tf_sine", "train", "--units", "4", "--steps", "20", "--quiet",
                "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if any(noise in line for noise in NOISE)]
    if not nvidia_driver_present():
        compile_note = "compiling the native recurrent kernels"  # only where no build is kept yet
        assert not [line for line in done.stderr.splitlines() if compile_note not in line], done.stderr


def test_tensorflows_real_start_up_warnings_still_show():
    """An invalid TF_ENABLE_ONEDNN_OPTS makes TensorFlow warn while it starts, inside the filter."""
    done = _run("-c", "from tf_sine.startup import start_tensorflow; start_tensorflow()",
                TF_ENABLE_ONEDNN_OPTS="sometimes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TF_ENABLE_ONEDNN_OPTS is not set to either" in done.stderr
    assert not [line for line in done.stderr.splitlines() if any(noise in line for noise in NOISE)]


@pytest.mark.parametrize("driver_present", [False, True])
def test_the_filter_drops_only_start_up_notes(driver_present):
    """Every kind of line written to file descriptor 2, by a real process, through the filter."""
    lines = {
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR": False,
        "I0000 00:00:1795829039.020026    2628 port.cc:153] oneDNN custom operations are on.": False,
        "I0000 00:00:1795829039.020545    2628 cudart_stub.cc:31] Could not find cuda drivers": False,
        "E0000 00:00:1795829042.815259    2628 cuda_platform.cc:52] failed call to cuInit: INTERNAL:": driver_present,
        "W0000 00:00:1795829743.343026    4148 port.cc:148] a real warning": True,
        "E0000 00:00:1795829743.343026    4148 op_kernel.cc:1840] a real error": True,
        "Traceback (most recent call last):": True,
        "I told you so": True,
    }
    script = (
        "import os, sys\n"
        "from tf_sine.startup import filtered_stderr, start_up_noise\n"
        f"with filtered_stderr(lambda line: start_up_noise(line, {driver_present})):\n"
        f"    for line in {list(lines)!r}:\n"
        "        os.write(2, (line + '\\n').encode())\n"
        "    print('from Python', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    done = _run("-c", script)
    assert done.returncode == 0, done.stderr
    shown = [line for line, kept in lines.items() if kept]
    assert done.stderr.splitlines() == [*shown, "from Python", "after"]
    for line, kept in lines.items():
        assert start_up_noise(line, driver_present) is not kept
