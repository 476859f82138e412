"""A run directory is owned, locked and replaced as a transaction (tf_sine.owned)."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, write_seasonal_csv

import tf_sine
from tf_sine.errors import RunError, RunFailedError
from tf_sine.owned import OwnedFolder, check_writable_folder, write_together

TINY_FLAGS = ["--preset", "tiny", "--units", "4", "--steps", "40", "--checkpoint-every", "20", "--quiet"]


def _long_training(steps: int) -> list[str]:
    """Flags of a training long enough to be caught in the middle."""
    return [
        "--layout",
        "sequence",
        "--units",
        "32",
        "--steps",
        str(steps),
        "--checkpoint-every",
        "100",
        "--quiet",
    ]


def _tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` (the lock aside: its PID is rewritten by each writer) -> SHA-256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "lock"}  # fmt: skip


def _copy_run(tiny_run, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run.run.path, copy)
    return copy


def _start(run_dir: Path, *flags: str) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "tf_sine", "train", *flags, "--run-dir", str(run_dir)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the process ended first: {process.stderr.read()[-1000:]}")
        time.sleep(0.02)
    pytest.fail("timed out")


def test_a_second_writer_is_refused_with_the_holders_pid_and_the_lock_dies_with_its_holder(tmp_path, cli):
    run_dir = tmp_path / "run"
    flags = _long_training(50000)  # killed below, long before its end
    first = _start(run_dir, *flags)
    try:
        _wait_for(lambda: any((run_dir / "checkpoints").glob("step-*.keras")), first)
        status, _, stderr = cli("train", *flags, "--scale", "minmax", "--run-dir", str(run_dir))
        assert status == 2 and "Traceback" not in stderr
        (line,) = [line for line in stderr.splitlines() if line.startswith("tf-sine")]
        assert (
            f"argument --run-dir: {str(run_dir)!r} is being written by another tf_sine process (PID {first.pid})"
            in line
        )
        with pytest.raises(RunError, match=f"PID {first.pid}"):
            tf_sine.open_run(run_dir)  # a reader is refused too, not shown a half-made run
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    OwnedFolder(run_dir).claim().release()  # the operating system released the dead holder's lock
    assert tf_sine.RunDirectory(run_dir).load_config().scale != "minmax"  # the second writer changed nothing


def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path, cli):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"my": "settings"}')
    (folder / "loss.png").write_bytes(b"my plot")
    before = _tree(folder)
    status, _, stderr = cli("train", *TINY_FLAGS, "--run-dir", str(folder))
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "argument --run-dir: expected an empty folder or one tf_sine wrote" in stderr
    assert "holds config.json, loss.png" in stderr
    assert _tree(folder) == before and sorted(p.name for p in folder.iterdir()) == ["config.json", "loss.png"]


def test_an_empty_run_dir_is_a_usage_error(cli):
    status, _, stderr = cli("train", *TINY_FLAGS, "--run-dir", "")
    assert (
        status == 2
        and stderr.strip()
        == "tf-sine: error: argument --run-dir: expected a directory path, got an empty string"
    )


def test_overwrite_replaces_only_tf_sines_files(tiny_run, tmp_path, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    (run_dir / "notes.txt").write_text("my notes")
    (run_dir / "tensorboard").mkdir()
    (run_dir / "tensorboard" / "mine.txt").write_text("my logs")
    (run_dir / "checkpoints" / "keep.txt").write_text("mine too")
    old_model = (run_dir / "model.keras").read_bytes()
    status, _, stderr = cli("train", *TINY_FLAGS, "--seed", "3", "--run-dir", str(run_dir), "--overwrite")
    assert status == 0, stderr
    assert (run_dir / "notes.txt").read_text() == "my notes"
    assert (run_dir / "tensorboard" / "mine.txt").read_text() == "my logs"
    assert (run_dir / "checkpoints" / "keep.txt").read_text() == "mine too"
    assert (run_dir / "model.keras").read_bytes() != old_model
    assert tf_sine.RunDirectory(run_dir).load_config().seed == 3
    owned = OwnedFolder(run_dir).owned_files()
    assert "notes.txt" not in owned and "checkpoints/keep.txt" not in owned and "model.keras" in owned
    # The manifest's hashes are the files' own.
    assert all(
        hashlib.sha256((run_dir / name).read_bytes()).hexdigest() == digest for name, digest in owned.items()
    )
    assert not (run_dir / ".tf_sine" / "staging").exists()


@pytest.mark.parametrize(
    "flags, status",
    [(["--seed", "-1"], 2), (["--optimizer", "sgd", "--learning-rate", "1e30"], 1)],
    ids=["bad seed", "diverged"],
)
def test_a_failed_overwrite_leaves_the_old_run_byte_identical(tiny_run, tmp_path, flags, status, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    before = _tree(run_dir)
    done, _, stderr = cli("train", *TINY_FLAGS, *flags, "--run-dir", str(run_dir), "--overwrite")
    assert done == status and "Traceback" not in stderr
    after = {
        name: digest for name, digest in _tree(run_dir).items() if not name.startswith(".tf_sine/staging/")
    }
    assert after == before


def test_an_interrupted_overwrite_leaves_the_old_run_and_the_same_command_finishes_it(
    tiny_run, tmp_path, cli
):
    run_dir = _copy_run(tiny_run, tmp_path)
    before = _tree(run_dir)
    flags = _long_training(2000)
    process = _start(run_dir, *flags, "--overwrite")
    staging = run_dir / ".tf_sine" / "staging" / "checkpoints"
    _wait_for(lambda: any(staging.glob("step-*.keras")), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert {n: d for n, d in _tree(run_dir).items() if not n.startswith(".tf_sine/staging/")} == before
    assert tf_sine.open_run(run_dir).config.steps == TINY.steps  # readers still see the old run
    status, _, stderr = cli("train", *flags, "--run-dir", str(run_dir), "--overwrite")
    assert status == 0, stderr
    assert "resuming" in stderr and "staging" in stderr
    assert tf_sine.open_run(run_dir).config.steps == 2000 and not (run_dir / ".tf_sine" / "staging").exists()


def test_a_replacement_cut_short_while_moving_in_is_finished_by_the_next_writer(tmp_path):
    folder = OwnedFolder(tmp_path / "out", "out").claim()
    folder.write("a.txt", lambda path: path.write_text("old a"))
    folder.write("b.txt", lambda path: path.write_text("old b"))
    staging = folder.staging()
    staging.write("a.txt", lambda path: path.write_text("new a"))
    # What a process killed right after marking the commit leaves.
    (folder.path / ".tf_sine" / "commit").write_text('{"names": null}')
    folder.release()
    reading = OwnedFolder(folder.path, "out").reading()
    with pytest.raises(RunError, match="was being moved in when its process stopped"), reading:
        pass
    OwnedFolder(folder.path, "out").claim().release()
    assert (folder.path / "a.txt").read_text() == "new a" and not (folder.path / "b.txt").exists()
    assert OwnedFolder(folder.path).owned_files().keys() == {"a.txt"}


def test_results_written_together_are_all_or_none(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "forecast.csv").write_text("the user's")

    def build(staging: OwnedFolder) -> None:
        staging.write("forecast.csv", lambda path: path.write_text("ours"))

    with pytest.raises(RunError, match=r"forecast\.csv' exists and tf_sine did not write it"):
        write_together(out, ["forecast.csv"], build)
    assert (out / "forecast.csv").read_text() == "the user's"

    good = tmp_path / "good"

    def half(staging: OwnedFolder) -> None:
        staging.write("a.csv", lambda path: path.write_text("new"))
        raise OSError(28, "No space left on device")

    write_together(
        good, ["a.csv"], lambda staging: staging.write("a.csv", lambda path: path.write_text("old"))
    )
    with pytest.raises(RunFailedError, match="no space left on the device of"):
        write_together(good, ["a.csv"], half)
    assert (good / "a.csv").read_text() == "old" and not (good / ".tf_sine" / "staging").exists()


def test_a_full_disk_while_marking_the_folder_is_named_as_while_writing(tmp_path, monkeypatch):
    """ENOSPC outside the files themselves (the folder's lock and manifest, the commit's mark):
    the same one line naming the folder and the space left, not the system's bare message."""
    import tf_sine.owned

    def full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf_sine.owned, "write_json", full)
    for attempt in (
        lambda: write_together(tmp_path / "out" / "below", ["a.csv"], lambda staging: None),
        lambda: tf_sine.owned.check_writable_folder(tmp_path / "checked"),
    ):
        with pytest.raises(
            RunFailedError, match=r"^no space left on the device of '.*' \([0-9.e+]+ MiB free\)"
        ):
            attempt()
    assert list(tmp_path.iterdir()) == []  # the folders made for the work are gone with it


def test_folders_made_for_work_that_did_not_happen_are_removed_and_no_others(tmp_path):
    """A check before the work leaves nothing; a write cut short removes the folders it made,
    never a folder that was there before, nor one holding anything else."""
    check_writable_folder(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []

    def cut_short(staging: OwnedFolder) -> None:
        staging.write("a.csv", lambda path: path.write_text("half"))
        raise OSError(28, "No space left on device")

    existing = tmp_path / "existing"
    existing.mkdir()
    for out in (tmp_path / "new" / "out", existing):
        with pytest.raises(RunFailedError):
            write_together(out, ["a.csv"], cut_short)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert [p.name for p in existing.iterdir()] == [".tf_sine"]  # the user's folder stays, marked

    def refused_after_a_users_file_appeared(staging: OwnedFolder) -> None:
        (tmp_path / "third" / "notes.txt").write_text("the user's, written meanwhile")
        raise OSError(28, "No space left on device")

    with pytest.raises(RunFailedError):
        write_together(tmp_path / "third", ["a.csv"], refused_after_a_users_file_appeared)
    assert (tmp_path / "third" / "notes.txt").read_text() == "the user's, written meanwhile"


def test_a_resume_on_changed_data_is_refused_and_overwrite_starts_over(tmp_path, cli):
    csv = write_seasonal_csv(tmp_path / "series.csv")
    run_dir = tmp_path / "run"
    flags = ["--data", str(csv), *TINY_FLAGS]
    assert cli("train", *flags, "--run-dir", str(run_dir))[0] == 0
    # An unfinished run: checkpoints and configuration, no metrics (what a kill leaves).
    OwnedFolder(run_dir).claim().remove("metrics.json")
    OwnedFolder(run_dir).release()
    lines = csv.read_text().splitlines()
    scaled = [lines[0]] + [f"{d},{float(v) * 10:.6f}" for d, v in (line.split(",") for line in lines[1:])]
    csv.write_text("\n".join(scaled) + "\n")
    status, _, stderr = cli("train", *flags, "--run-dir", str(run_dir))
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "argument --data: the data changed since the unfinished run" in stderr and "other values" in stderr
    assert "pass --overwrite to start over" in stderr
    status, _, stderr = cli("train", *flags, "--run-dir", str(run_dir), "--overwrite")
    assert status == 0, stderr
    run = tf_sine.open_run(run_dir)
    metrics = tf_sine.RunDirectory(run_dir).metrics_path.read_text()
    assert f'"rmse": {run.evaluate()["rmse"]}' in metrics  # training and evaluation agree


def test_reading_a_run_writes_nothing(tiny_run, tmp_path, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    hashes = _tree(run_dir)
    for path in run_dir.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    run_dir.chmod(0o555)
    try:
        for command in (["evaluate", "--horizon", "3"], ["forecast", "--horizon", "3"]):
            status, stdout, stderr = cli(command[0], "--model", str(run_dir), *command[1:])
            assert status == 0, stderr
            assert "written" not in stdout
        assert np.isfinite(tf_sine.open_run(run_dir).evaluate()["rmse"])
    finally:
        for path in [run_dir, *run_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before and _tree(run_dir) == hashes
    status, stdout, stderr = cli(
        "evaluate", "--model", str(run_dir), "--json", "--out", str(tmp_path / "scores")
    )
    assert status == 0, stderr  # writing scores is asked for explicitly, into a folder of one's choice
    assert json.loads((tmp_path / "scores" / "evaluation.json").read_text()) == json.loads(stdout)


def test_a_study_or_forecast_folder_keeps_the_users_files(tiny_run, tmp_path, cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status, stdout, stderr = cli(
        "forecast", "--model", str(tiny_run.run.path), "--horizon", "3", "--out", str(out)
    )
    assert status == 0, stderr and "written" in stdout
    first = (out / "forecast.csv").read_text()
    status, _, stderr = cli(
        "forecast", "--model", str(tiny_run.run.path), "--horizon", "5", "--out", str(out)
    )
    assert status == 0, stderr
    assert (out / "forecast.csv").read_text() != first and (out / "notes.txt").read_text() == "mine"
    assert OwnedFolder(out).owned_files().keys() == {"forecast.csv", "forecast.png"}


FULL_DISK = """
set -u
mount -t tmpfs -o size=80k tmpfs "$1"
"$3" -m tf_sine train --preset tiny --quiet --run-dir "$1/run" 2> "$2/first.err"; echo $? > "$2/first.status"
mount -o remount,size=20m "$1"
"$3" -m tf_sine train --preset tiny --quiet --run-dir "$1/run" 2> "$2/second.err"; echo $? > "$2/second.status"
ls -A "$1/run" > "$2/files"
"""


def _can_mount_a_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _can_mount_a_tmpfs(), reason="no user and mount namespaces here (unshare -rm) for a small tmpfs"
)
def test_a_full_disk_is_one_line_and_the_same_command_resumes_once_there_is_space(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = ["unshare", "-rm", "sh", "-c", FULL_DISK, "full-disk", str(disk), str(tmp_path), sys.executable]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=300)
    first = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.status").read_text().strip() == "1" and "Traceback" not in first
    (line,) = [line for line in first.splitlines() if line.startswith("tf-sine")]
    assert (
        line.startswith(f"tf-sine: error: no space left on the device of '{disk}/run' (")
        and "MiB free" in line
    )
    second = (tmp_path / "second.err").read_text()
    assert (tmp_path / "second.status").read_text().strip() == "0", second
    assert "resuming" in second and "metrics.json" in (tmp_path / "files").read_text().split()


def test_an_export_killed_midway_leaves_the_earlier_export_whole(tiny_run, tmp_path, cli):
    out = tmp_path / "export"
    status, _, stderr = cli("export", "--model", str(tiny_run.run.path), "--out", str(out))
    assert status == 0, stderr
    before = _tree(out)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "tf_sine", "export", "--model", str(tiny_run.run.path), "--out", str(out),
               "--overwrite"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: (out / ".tf_sine" / "staging" / "saved_model").exists(), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert {n: d for n, d in _tree(out).items() if not n.startswith(".tf_sine/staging/")} == before
    status, _, stderr = cli("export", "--model", str(tiny_run.run.path), "--out", str(out), "--overwrite")
    assert status == 0, stderr
    assert not (out / ".tf_sine" / "staging").exists() and (out / "export.json").is_file()
    assert set(OwnedFolder(out).owned_files()) == {n for n in _tree(out) if not n.startswith(".tf_sine/")}


def test_a_damaged_or_escaping_manifest_is_one_line_and_deletes_nothing(tiny_run, tmp_path, cli):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for text in ("garbage{", '{"format": "tf_sine-files/1", "files": {"../victim.txt": "0"}}'):
        run_dir = tmp_path / f"run{len(text)}"
        shutil.copytree(tiny_run.run.path, run_dir)
        (run_dir / ".tf_sine" / "manifest.json").write_text(text)
        status, _, stderr = cli("train", *TINY_FLAGS, "--run-dir", str(run_dir), "--overwrite")
        assert status == 2 and len(stderr.strip().splitlines()) == 1 and "manifest" in stderr, stderr
    assert victim.read_text() == "precious"


def test_a_leftover_staging_is_never_moved_in_by_another_command(tiny_run, tmp_path, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    before = _tree(run_dir)
    staging = OwnedFolder(run_dir).claim().staging()  # what a killed `train --overwrite` leaves
    staging.write("config.json", lambda path: path.write_text("{}"))
    OwnedFolder(run_dir).release()
    status, _, stderr = cli("forecast", "--model", str(run_dir), "--horizon", "3", "--out", str(run_dir))
    assert status == 0, stderr
    after = {n: d for n, d in _tree(run_dir).items() if not n.startswith(("forecast.", ".tf_sine/"))}
    assert after == {n: d for n, d in before.items() if not n.startswith(".tf_sine/")}


def test_overwrite_starts_over_past_a_stopped_replacement_of_another_configuration(tiny_run, tmp_path, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    staging = tf_sine.RunDirectory(run_dir)
    staging.files.claim()
    left = staging.replacement()  # what a killed `train --overwrite --units 5` leaves
    left.save_config(TINY.replace(units=5))
    left.checkpoints.save(tf_sine.build_model(units=5), 20)
    staging.release()
    status, _, stderr = cli("train", *TINY_FLAGS, "--seed", "2", "--run-dir", str(run_dir), "--overwrite")
    assert status == 0, stderr
    assert tf_sine.RunDirectory(run_dir).load_config().seed == 2 and "resuming" not in stderr


def test_an_edited_file_of_ours_is_the_users_and_overwrite_refuses_before_training(tiny_run, tmp_path, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "note": "my edit"}))
    before = _tree(run_dir)
    status, _, stderr = cli("train", *TINY_FLAGS, "--run-dir", str(run_dir), "--overwrite")
    lines = [line for line in stderr.splitlines() if line.startswith("tf-sine")]
    assert status == 2 and len(lines) == 1, stderr
    assert "config.json' was changed after tf_sine wrote it, so it is yours now" in lines[0]
    assert _tree(run_dir) == before and not (run_dir / ".tf_sine" / "staging").exists()


def test_an_edited_file_is_never_deleted_and_a_stopped_rename_is_still_ours(tmp_path):
    folder = OwnedFolder(tmp_path / "out", "out").claim()
    folder.write("a.txt", lambda path: path.write_text("first"))
    # What a process killed between listing a new version and renaming it into place leaves.
    folder._record("a.txt", hashlib.sha256(b"second").hexdigest())
    assert folder.edited_files() == []  # the previous content is still tf_sine's
    folder.write("a.txt", lambda path: path.write_text("second"))
    (folder.path / "a.txt").write_text("the user's")
    assert folder.edited_files() == ["a.txt"]
    with pytest.raises(RunError, match=r"a\.txt' was changed after tf_sine wrote it"):
        folder.write("a.txt", lambda path: path.write_text("third"))
    folder.remove("a.txt")  # forgotten, not deleted
    assert (folder.path / "a.txt").read_text() == "the user's" and "a.txt" not in folder.owned_files()
    folder.release()


def test_leftover_temporaries_are_removed_only_inside_the_run(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    theirs = outside / ".model.tf_sine-tmp-1.keras"
    theirs.write_text("another run's")
    folder = OwnedFolder(tmp_path / "run").claim()
    (folder.path / "linked").symlink_to(outside, target_is_directory=True)
    (folder.path / ".metrics.tf_sine-tmp-1.json").write_text("left by a killed run")
    (folder.path / "sub").mkdir()
    (folder.path / "sub" / ".x.tf_sine-tmp-1.npz").write_text("left too")
    removed = folder.remove_temporaries()
    folder.release()
    assert sorted(p.name for p in removed) == [".metrics.tf_sine-tmp-1.json", ".x.tf_sine-tmp-1.npz"]
    assert theirs.read_text() == "another run's"


def test_a_users_file_named_like_a_checkpoint_is_not_one(tmp_path):
    from tf_sine.checkpoints import Checkpoints

    folder = OwnedFolder(tmp_path / "run").claim()
    (folder.path / "checkpoints").mkdir()
    (folder.path / "checkpoints" / "step-999999.keras").write_text("the user's")
    checkpoints = Checkpoints(folder)
    assert checkpoints.saved() == [] and checkpoints.load_newest() is None
    folder.release()


def test_the_old_run_stays_readable_while_overwrite_trains_its_replacement(tiny_run, tmp_path, cli):
    run_dir = _copy_run(tiny_run, tmp_path)
    old_model = (run_dir / "model.keras").read_bytes()
    process = _start(run_dir, *_long_training(50000), "--overwrite")
    try:
        staging = run_dir / ".tf_sine" / "staging" / "checkpoints"
        _wait_for(lambda: any(staging.glob("step-*.keras")), process)
        status, out, stderr = cli("evaluate", "--model", str(run_dir))
        assert status == 0 and "rmse" in out.lower(), stderr
        assert tf_sine.open_run(run_dir).config.steps == TINY.steps
        status, _, stderr = cli("train", *TINY_FLAGS, "--run-dir", str(run_dir), "--overwrite")
        assert status == 2 and f"another tf_sine process (PID {process.pid})" in stderr  # still one writer
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (run_dir / "model.keras").read_bytes() == old_model


def test_a_users_file_clashing_with_a_run_file_is_refused_before_training(tmp_path, cli):
    OwnedFolder(tmp_path / "run").claim().release()  # tf_sine's folder, as a stopped run leaves it
    (tmp_path / "run" / "loss.png").write_text("the user's plot")
    status, _, stderr = cli("train", *TINY_FLAGS, "--run-dir", str(tmp_path / "run"))
    lines = [line for line in stderr.splitlines() if line.startswith("tf-sine")]
    assert status == 2 and len(lines) == 1 and "loss.png' exists and tf_sine did not write it" in lines[0]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".tf_sine", "loss.png"]
