"""Checkpoints keep the training history in segments: what is read back, after a resume from an
older checkpoint, a kill in the middle of a merge or a lost segment, is the history at that step."""

import json
import math

import keras
import numpy as np
import pytest

from tf_sine.checkpoints import Checkpoints
from tf_sine.history_segments import HISTORY_LISTS
from tf_sine.owned import OwnedFolder
from tf_sine.training import TrainingState

EVERY = 100  # steps between checkpoints
LAST = 3000


def _history(step: int, scale: float = 1.0) -> dict:
    """A history of `step` steps: a loss per step, a validation loss every 7 steps (so some fall
    on a checkpoint's step and most do not), values that round-trip only as float64."""
    steps = list(range(1, step + 1))
    val_steps = list(range(7, step + 1, 7))
    return TrainingState(
        steps=steps,
        losses=[scale / s + math.pi * 1e-12 for s in steps],
        val_steps=val_steps,
        val_losses=[scale * 2 / s for s in val_steps],
        best_step=val_steps[-1] if val_steps else 0,
        best_loss=scale * 2 / val_steps[-1] if val_steps else math.inf,
        train_seconds=step / 1000,
    ).history()


def _resumed(at: int, step: int, scale: float) -> dict:
    """The history of a run resumed at step `at` that then took another course (`scale`)."""
    before, after = _history(at), _history(step, scale)
    for steps_key, values_key in HISTORY_LISTS:
        taken = sum(s <= at for s in after[steps_key])
        after[values_key] = before[values_key] + after[values_key][taken:]
    return after


def _loaded_history(state: dict) -> dict:
    keys = ("train_seconds", "loss_steps", "losses", "val_steps", "val_losses", "best_step", "best_loss")
    return {key: state[key] for key in keys}


@pytest.fixture()
def folder(tmp_path):
    owned = OwnedFolder(tmp_path / "run", working=("checkpoints",)).claim()  # as a run directory has it
    yield owned
    owned.release()


@pytest.fixture(scope="module")
def model():
    built = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    built.compile(optimizer="adagrad", loss="mse")
    return built


def _save_all(folder: OwnedFolder, model, last: int = LAST, scale: float = 1.0) -> Checkpoints:
    checkpoints = Checkpoints(folder)
    for step in range(EVERY, last + 1, EVERY):
        checkpoints.save(model, step, _history(step, scale), model.get_weights())
    return checkpoints


def _segments(folder: OwnedFolder) -> list[tuple[int, int]]:
    names = sorted(p.name for p in (folder.path / "checkpoints").glob("history-*.npz"))
    return [(int(name.split("-")[1]), int(name.split("-")[2].split(".")[0])) for name in names]


def _load(folder: OwnedFolder) -> tuple[dict, list[str]]:
    """The newest readable checkpoint's state, read by a fresh object (as a new process would)."""
    messages: list[str] = []
    restored = Checkpoints(folder).load_newest(messages.append)
    assert restored is not None, messages
    return restored[1], messages


def test_a_long_run_keeps_few_segments_and_small_state_files(folder, model):
    _save_all(folder, model)
    # 30 checkpoints, as a binary counter: spans of 16, 8, 4 and 2 checkpoints.
    assert _segments(folder) == [(0, 1600), (1600, 2400), (2400, 2800), (2800, 3000)]
    sizes = [p.stat().st_size for p in (folder.path / "checkpoints").glob("step-*.state.json")]
    assert len(sizes) == 3 and max(sizes) < 2000  # no history inside, however long the run
    state, messages = _load(folder)
    assert state["step"] == LAST and not messages
    assert _loaded_history(state) == _history(LAST)  # equal to the bit: floats round-trip
    assert set(folder.owned_files()) >= {
        f"checkpoints/history-{a:06d}-{b:06d}.npz" for a, b in _segments(folder)
    }


def test_resuming_an_older_checkpoint_drops_what_came_after_it(folder, model):
    _save_all(folder, model)
    newest = folder.path / "checkpoints" / "step-003000.keras"
    newest.write_bytes(newest.read_bytes()[:300])  # damaged: the one before it is used
    restored = Checkpoints(folder)
    state = restored.load_newest(lambda message: None)[1]
    assert state["step"] == 2900 and _loaded_history(state) == _history(2900)
    assert _segments(folder)[-1] == (2800, 3000)  # reading changes nothing (other workers read too)
    # The resumed run takes another course: its history, not the abandoned one's, is kept.
    restored.save(model, 3000, _resumed(2900, 3000, scale=3.0), model.get_weights())
    restored.save(model, 3100, _resumed(2900, 3100, scale=3.0), model.get_weights())
    state, _ = _load(folder)
    assert state["step"] == 3100 and _loaded_history(state) == _resumed(2900, 3100, scale=3.0)
    assert _segments(folder) == [(0, 1600), (1600, 2400), (2400, 2800), (2800, 3000), (3000, 3100)]


def test_a_merge_cut_short_leaves_a_readable_history(folder, model, monkeypatch):
    checkpoints = _save_all(folder, model, last=300)  # segments (0, 200], (200, 300]
    removals = []

    def killed(relative: str) -> None:  # the process dies after the merged segment is written
        removals.append(relative)
        raise KeyboardInterrupt

    monkeypatch.setattr(folder, "remove", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(
            model, 400, _history(400), model.get_weights()
        )  # merges (200, 300] with (300, 400], then more
    monkeypatch.undo()
    assert removals == ["checkpoints/history-000200-000300.npz"] and (200, 400) in _segments(folder)
    state, messages = _load(folder)
    assert state["step"] == 300 and not messages and _loaded_history(state) == _history(300)
    resumed = Checkpoints(folder)
    resumed.load_newest()
    resumed.save(model, 400, _history(400), model.get_weights())
    assert _loaded_history(_load(folder)[0]) == _history(400) and _segments(folder) == [(0, 400)]


def test_a_lost_segment_makes_its_checkpoints_unreadable(folder, model):
    _save_all(folder, model)
    (folder.path / "checkpoints" / "history-002800-003000.npz").unlink()
    state, messages = _load(folder)
    assert state["step"] == 2800 and _loaded_history(state) == _history(2800)
    assert len(messages) == 2 and all("its history has no segment from step 2800" in m for m in messages)


def test_a_fresh_start_replaces_an_abandoned_runs_checkpoints_and_segments(folder, model):
    _save_all(folder, model, last=700)
    _save_all(folder, model, last=200, scale=5.0)  # a new object that loaded nothing
    assert _segments(folder) == [(0, 200)]
    steps = sorted(p.name for p in (folder.path / "checkpoints").glob("step-*.keras"))
    assert steps == ["step-000100.keras", "step-000200.keras"]  # not removed as older than 700's
    state, _ = _load(folder)
    assert state["step"] == 200 and _loaded_history(state) == _history(200, scale=5.0)


def test_a_checkpoint_with_its_history_inside_still_loads_and_resumes(folder, model):
    _save_all(folder, model, last=200)
    state_file = folder.path / "checkpoints" / "step-000200.state.json"
    state = json.loads(state_file.read_text())
    del state["history_lengths"]
    state.update(_history(200))  # as checkpoints were written before the segments
    state_file.write_text(json.dumps(state))
    for segment in _segments(folder):
        (folder.path / "checkpoints" / f"history-{segment[0]:06d}-{segment[1]:06d}.npz").unlink()
    resumed = Checkpoints(folder)
    assert _loaded_history(resumed.load_newest()[1]) == _history(200)
    resumed.save(model, 300, _history(300), model.get_weights())
    assert _segments(folder) == [(0, 300)] and _loaded_history(_load(folder)[0]) == _history(300)


def test_segments_hold_float64_and_int64(folder, model):
    _save_all(folder, model, last=100)
    with np.load(folder.path / "checkpoints" / "history-000000-000100.npz") as arrays:
        assert arrays["loss_steps"].dtype == np.int64 and arrays["losses"].dtype == np.float64
        assert arrays["val_steps"].tolist() == list(range(7, 101, 7))


def test_a_kill_between_listing_and_renaming_a_merged_segment_loses_no_checkpoint(folder, model, monkeypatch):
    """The manifest lists a file before it is renamed into place: a listed segment may be
    missing, and the chain is read from those on disk."""
    import tf_sine.files

    _save_all(folder, model, last=300)  # (0, 200], (200, 300]
    replace = tf_sine.files.os.replace

    def killed_at_the_last_merge(source, target):
        if str(target).endswith("history-000000-000400.npz"):
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(tf_sine.files.os, "replace", killed_at_the_last_merge)
    with pytest.raises(KeyboardInterrupt):
        Checkpoints(folder).save(model, 400, _history(400), model.get_weights())
    monkeypatch.undo()
    assert "checkpoints/history-000000-000400.npz" in folder.owned_files() and (0, 400) not in _segments(
        folder
    )
    state, messages = _load(folder)
    assert state["step"] == 300 and not messages and _loaded_history(state) == _history(300)
    resumed = Checkpoints(folder)
    resumed.load_newest()
    resumed.save(model, 400, _history(400), model.get_weights())
    assert _segments(folder) == [(0, 400)] and _loaded_history(_load(folder)[0]) == _history(400)


def test_a_segment_changed_by_hand_is_found_out(folder, model):
    """Same lengths, other values: the manifest's SHA-256 tells."""
    _save_all(folder, model)
    path = folder.path / "checkpoints" / "history-002800-003000.npz"
    with np.load(path) as arrays:
        changed = {name: arrays[name] for name in arrays.files}
    changed["losses"] = changed["losses"] + 1.0
    np.savez(path, **changed)
    state, messages = _load(folder)
    assert state["step"] == 2800 and _loaded_history(state) == _history(2800)
    assert len(messages) == 2 and all(
        "history-002800-003000.npz was changed after tf_sine wrote it" in m for m in messages
    )


def test_two_objects_on_one_folder_keep_the_history_whole(folder, model):
    """Each save checks the chain it extends is still there; another writer's segments are
    kept where they hold the same entries."""
    first, second = Checkpoints(folder), Checkpoints(folder)
    first.save(model, 100, _history(100), model.get_weights())
    second.save(model, 200, _history(200), model.get_weights())
    first.save(model, 300, _history(300), model.get_weights())
    state, messages = _load(folder)
    assert state["step"] == 300 and not messages and _loaded_history(state) == _history(300)


def test_a_history_that_stops_short_of_its_checkpoint_is_not_resumed(folder, model):
    """What a signal between a chunk and its bookkeeping left in the older state files."""
    _save_all(folder, model, last=200)
    state_file = folder.path / "checkpoints" / "step-000200.state.json"
    state = json.loads(state_file.read_text())
    del state["history_lengths"]
    state.update(_history(190))
    state_file.write_text(json.dumps(state))
    state, messages = _load(folder)
    assert state["step"] == 100
    assert "its loss history ends at step 190, not at its step 200" in messages[0]


def test_a_save_reads_only_the_segments_it_merges(folder, model, monkeypatch):
    """The chain an object remembers is extended without reading the folder's history again;
    a fresh object reads each segment once to check it holds the same entries."""
    from tf_sine.history_segments import HistorySegments

    checkpoints = _save_all(folder, model, last=700)  # (0, 400], (400, 600], (600, 700]
    reads = []
    read = HistorySegments._read

    def counted(self, segment, digest):
        reads.append(segment)
        return read(self, segment, digest)

    monkeypatch.setattr(HistorySegments, "_read", counted)
    checkpoints.save(model, 800, _history(800), model.get_weights())  # merges into (0, 800]
    assert reads == [(600, 700), (700, 800), (400, 600), (600, 800), (0, 400), (400, 800)]
    reads.clear()
    Checkpoints(folder).save(model, 900, _history(900), model.get_weights())
    assert reads == [(0, 800)]  # checked once, then extended
    assert _loaded_history(_load(folder)[0]) == _history(900)


def test_a_segment_changed_during_the_run_is_rewritten_from_the_history_saved(folder, model):
    checkpoints = _save_all(folder, model, last=300)  # (0, 200], (200, 300]
    path = folder.path / "checkpoints" / "history-000200-000300.npz"
    with np.load(path) as arrays:
        changed = {name: arrays[name] for name in arrays.files}
    np.savez(path, **{**changed, "losses": changed["losses"] * 2})
    checkpoints.save(model, 400, _history(400), model.get_weights())
    state, messages = _load(folder)
    assert state["step"] == 400 and not messages and _loaded_history(state) == _history(400)


def test_a_segment_changed_where_no_save_reads_it_is_found_by_its_file(folder, model):
    """The remembered chain is checked by each file's size, time and inode, not read: a segment
    no merge touches, changed between two saves, is still found and written anew."""
    checkpoints = _save_all(folder, model, last=500)  # (0, 400], (400, 500]
    path = folder.path / "checkpoints" / "history-000000-000400.npz"
    with np.load(path) as arrays:
        changed = {name: arrays[name] for name in arrays.files}
    np.savez(path, **{**changed, "losses": changed["losses"] * 2})
    checkpoints.save(model, 600, _history(600), model.get_weights())  # merges (400, 600] only
    state, messages = _load(folder)
    assert state["step"] == 600 and not messages and _loaded_history(state) == _history(600)


def test_lists_of_unequal_lengths_are_refused_when_saved_and_when_read(folder, model):
    checkpoints = _save_all(folder, model, last=300)
    broken = _history(400)
    broken["losses"] = broken["losses"][:-1]
    with pytest.raises(ValueError, match="expected loss_steps and losses of one length"):
        checkpoints.save(model, 400, broken)
    relative = "checkpoints/history-000200-000300.npz"  # as if tf_sine had written it so
    with np.load(folder.path / relative) as arrays:
        short = {name: arrays[name] for name in arrays.files}
    short["losses"] = short["losses"][:-1]
    folder.write(relative, lambda temporary: np.savez(temporary, **short))
    state, messages = _load(folder)
    assert state["step"] == 200 and "of different lengths" in messages[0]
