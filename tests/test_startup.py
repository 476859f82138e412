"""A quiet start: TensorFlow's start-up notes hidden, its real warnings and errors kept."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, native_expected

from tf_sine.startup import gpus_findable, start_up_noise

# What a quiet start hides; a failed cuInit only where no GPU can be found (then it is no error).
NOISE = ["absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers"]
NOISE += [] if gpus_findable() else ["cuInit"]


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
    # Only tf_sine's own notes may remain: compiling the kernels where no build is kept yet, and
    # where they cannot be built, the one line saying that training falls back.
    allowed = ["compiling the native recurrent kernels"]
    allowed += [] if native_expected() else ["native recurrent kernels"]
    assert not [line for line in done.stderr.splitlines() if not any(note in line for note in allowed)], (
        done.stderr
    )


def test_tensorflows_real_start_up_warnings_still_show():
    """An invalid TF_ENABLE_ONEDNN_OPTS makes TensorFlow warn while it starts, inside the filter."""
    done = _run("-c", "from tf_sine.startup import start_tensorflow; start_tensorflow()",
                TF_ENABLE_ONEDNN_OPTS="sometimes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TF_ENABLE_ONEDNN_OPTS is not set to either" in done.stderr
    assert not [line for line in done.stderr.splitlines() if any(noise in line for noise in NOISE)]


@pytest.mark.parametrize("gpus", [False, True])
def test_the_filter_drops_only_start_up_notes(gpus):
    """Every kind of line written to file descriptor 2, by a real process, through the filter."""
    lines = {
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR": False,
        "I0000 00:00:1795829039.020026    2628 port.cc:153] oneDNN custom operations are on.": False,
        "I0000 00:00:1795829039.020545    2628 cudart_stub.cc:31] Could not find cuda drivers": False,
        "E0000 00:00:1795829042.815259    2628 cuda_platform.cc:52] failed call to cuInit: INTERNAL:": gpus,
        "W0000 00:00:1795829743.343026    4148 port.cc:148] a real warning": True,
        "E0000 00:00:1795829743.343026    4148 op_kernel.cc:1840] a real error": True,
        "Traceback (most recent call last):": True,
        "I told you so": True,
    }
    script = (
        "import os, sys\n"
        "from tf_sine.startup import filtered_stderr\n"
        f"with filtered_stderr({gpus}):\n"
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
        assert start_up_noise(line, gpus) is not kept


def test_what_is_written_just_before_a_crash_still_shows():
    """TensorFlow's fatal lines come right before it aborts: the filter outlives the process."""
    script = (
        "import os\n"
        "from tf_sine.startup import filtered_stderr\n"
        "with filtered_stderr(False):\n"
        "    os.write(2, b'I0000 00:00:1.5 1 port.cc:1] a note\\n')\n"
        "    os.write(2, b'F0000 00:00:1.5 1 op.cc:1] a fatal error\\n')\n"
        "    os.abort()\n"
    )
    done = _run("-c", script)
    assert done.returncode < 0 and done.stderr.splitlines() == ["F0000 00:00:1.5 1 op.cc:1] a fatal error"]


def test_a_closed_stderr_is_no_error():
    """`tf-sine ... 2>&-`: nothing to filter, and nothing fails for it."""
    code = "import os; os.close(2)\nfrom tf_sine.startup import start_tensorflow\nstart_tensorflow(); print('started')"
    done = _run("-c", code)
    assert done.returncode == 0 and done.stdout == "started\n"
