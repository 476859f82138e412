"""tf.distribute: two workers on loopback train together and agree; a lost worker is survived."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, call_main, default_sigint

from tf_sine.distribute import local_tf_configs

FLAGS = ["--units", "4", "--steps", "300", "--checkpoint-every", "100", "--quiet"]


def _start_workers(run_dir: Path, flags: list[str]) -> list[subprocess.Popen]:
    workers = []
    for tf_config in local_tf_configs(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=tf_config)
        command = [sys.executable, "-m", "tf_sine", "train", "--distribute", "multi-worker",
                   "--run-dir", str(run_dir), *flags]  # fmt: skip
        workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))  # fmt: skip
    return workers


def _finish(worker: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    try:
        return worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()  # a worker blocked in a collective does not always answer SIGTERM
        _, err = worker.communicate()
        pytest.fail(f"a worker hung:\n{err[-2000:]}")


def _fingerprint(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if "weights fingerprint" in line)
    return line.rsplit(" ", 1)[1]


def _weights(path: Path) -> list[np.ndarray]:
    return keras.models.load_model(path).get_weights()


def test_two_workers_agree_and_match_one_process_with_the_same_global_batch(tmp_path):
    workers = _start_workers(tmp_path / "run", FLAGS)
    outputs = [_finish(worker) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
    assert _fingerprint(outputs[0][0]) == _fingerprint(outputs[1][0])  # identical weights, bit for bit
    assert "worker 1 of 2, 2 replicas in all: trained 300 steps" in outputs[1][0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["distribute"], metrics["replicas"], metrics["steps"]) == ("multi-worker", 2, 300)
    status, _, stderr = call_main("train", *FLAGS, "--run-dir", str(tmp_path / "single"))  # one process
    assert status == 0, stderr
    for distributed, alone in zip(_weights(tmp_path / "run" / "model.keras"),
                                  _weights(tmp_path / "single" / "model.keras"), strict=True):  # fmt: skip
        np.testing.assert_allclose(distributed, alone, atol=1e-5)


def test_a_lost_worker_stops_the_survivor_and_a_restart_resumes(tmp_path):
    run_dir = tmp_path / "run"
    flags = ["--units", "4", "--steps", "3000", "--checkpoint-every", "200", "--quiet"]
    chief, other = _start_workers(run_dir, flags)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "step-000200.keras").exists():
        assert time.monotonic() < deadline and chief.poll() is None, "no checkpoint appeared"
        time.sleep(0.05)
    other.send_signal(signal.SIGKILL)
    other.communicate()
    _, err = _finish(chief, timeout=120)
    assert chief.returncode == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tf-sine")]
    assert len(lines) == 1 and lines[0].startswith("tf-sine: error: multi-worker training lost a worker"), err
    assert "start every worker again with the same command" in lines[0]
    assert not (run_dir / "metrics.json").exists()

    workers = _start_workers(run_dir, flags)
    outputs = [_finish(worker) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert f"resuming {run_dir} from step" in err
    assert _fingerprint(outputs[0][0]) == _fingerprint(outputs[1][0])
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 3000


def test_mirrored_runs_on_this_machines_devices(tmp_path, cli):
    status, _, stderr = cli("train", "--distribute", "mirrored", "--units", "4", "--steps", "50", "--quiet",
                            "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert status == 0, stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["distribute"] == "mirrored" and metrics["replicas"] >= 1 and metrics["steps"] == 50


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--distribute", "multi-worker", "--run-dir", "x"], {},
         "argument --distribute: expected the TF_CONFIG environment variable for multi-worker, got none"),
        (["--distribute", "multi-worker", "--run-dir", "x"], {"TF_CONFIG": "{not json"},
         "argument --distribute: expected TF_CONFIG with cluster.worker and task.type/index"),
        (["--distribute", "mirrored", "--engine", "fit"], {}, "argument --engine: expected 'fast' with --distribute"),
    ],
)  # fmt: skip
def test_bad_distribution_settings_exit_2(tmp_path, flags, env, message):
    environment = (
        {k: v for k, v in os.environ.items() if k != "TF_CONFIG"} | env | {"TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    done = subprocess.run([sys.executable, "-m", "tf_sine", "train", "--steps", "5", *flags],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("tf-sine")]
    assert len(lines) == 1 and message in lines[0], done.stderr


_TWO = '"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]'


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
         "expected each worker in TF_CONFIG as host:port (port 1-65535), got 'localhost'"),
        ('{"cluster": {"worker": ["localhost:http"]}, "task": {"type": "worker", "index": 0}}',
         "got 'localhost:http'"),
        ('{"cluster": {"worker": ["localhost:70000"]}, "task": {"type": "worker", "index": 0}}',
         "got 'localhost:70000'"),
        ('{"cluster": {"worker": [2222]}, "task": {"type": "worker", "index": 0}}', "got 2222"),
        ('{' + _TWO + ', "chief": "127.0.0.1:2221"}, "task": {"type": "worker", "index": 0}}',
         "expected a list of chief addresses in TF_CONFIG, got '127.0.0.1:2221'"),
        ('{"cluster": {"worker": "127.0.0.1:2222"}, "task": {"type": "worker", "index": 0}}',
         "expected a list of worker addresses in TF_CONFIG"),
        ('{' + _TWO + '}, "task": {"type": "ps", "index": 0}}',
         "expected task.type worker or chief in TF_CONFIG, got 'ps'"),
        ('{' + _TWO + '}, "task": {"type": "worker", "index": 2}}',
         "expected a task index within the cluster"),
        ('{"cluster": [], "task": {"type": "worker", "index": 0}}', "expected TF_CONFIG with cluster.worker"),
    ],
)  # fmt: skip
def test_malformed_tf_config_is_one_line_and_exit_2(tmp_path, monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    status, _, stderr = call_main("train", "--distribute", "multi-worker", "--run-dir", str(tmp_path / "r"),
                                  "--steps", "5", "--units", "4")  # fmt: skip
    lines = [line for line in stderr.splitlines() if line.startswith("tf-sine")]
    assert status == 2 and len(lines) == 1 and message in lines[0], stderr
    assert lines[0].startswith("tf-sine: error: argument --distribute:") and "Traceback" not in stderr
    assert not (tmp_path / "r").exists()


def test_a_chief_is_named_as_the_chief_while_waited_for():
    from tf_sine.distribute import PeersMissingError, wait_for_peers

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        chief = f"127.0.0.1:{free.getsockname()[1]}"
    with socket.socket() as own:  # a port of our own to listen on
        own.bind(("127.0.0.1", 0))
        mine = f"127.0.0.1:{own.getsockname()[1]}"
    notes: list[str] = []
    with pytest.raises(PeersMissingError, match=r"no answer from chief \(127\.0\.0\.1:"):
        wait_for_peers([("chief", chief), ("worker 0", mine)], 1, timeout=0.5, notify=notes.append)


def test_local_tf_configs_name_one_cluster_of_distinct_ports():
    configs = [json.loads(text) for text in local_tf_configs(3)]
    assert [config["task"] for config in configs] == [{"type": "worker", "index": i} for i in range(3)]
    workers = configs[0]["cluster"]["worker"]
    assert all(config["cluster"]["worker"] == workers for config in configs) and len(set(workers)) == 3


def _lonely_worker(run_dir: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """Worker 0 of a cluster of two whose worker 1 never starts."""
    tf_config = local_tf_configs(2)[0]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=tf_config)
    command = [sys.executable, "-m", "tf_sine", "train", "--distribute", "multi-worker",
               "--run-dir", str(run_dir), *FLAGS, *flags]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=default_sigint)  # fmt: skip
    return process, json.loads(tf_config)["cluster"]["worker"][0]


def test_a_worker_whose_peer_never_starts_gives_up_with_one_line(tmp_path):
    process, _ = _lonely_worker(tmp_path / "run", "--peer-timeout", "6")
    _, stderr = _finish(process, timeout=120)
    assert process.returncode == 1 and "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tf-sine")]
    assert lines[0].startswith("tf-sine: waiting for worker 1 (127.0.0.1:") and lines[0].endswith("5 s of 6")
    assert lines[-1].startswith("tf-sine: error: no answer from worker 1 (127.0.0.1:")
    assert (
        "within 6 s; start every worker that TF_CONFIG lists, or allow longer with --peer-timeout"
        in lines[-1]
    )
    assert not (tmp_path / "run").exists()  # nothing was written


@pytest.mark.parametrize(("signum", "status", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                        (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_a_waiting_worker_stops_at_once_on_sigterm_and_ctrl_c(tmp_path, signum, status, word):
    process, address = _lonely_worker(tmp_path / "run")
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # its listener: it is waiting
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    process.send_signal(signum)
    sent = time.monotonic()
    _, stderr = _finish(process, timeout=60)
    assert time.monotonic() - sent < 10  # seconds, not the minute of the peer timeout
    assert process.returncode == status and f"tf-sine: {word}" in stderr and "Traceback" not in stderr
