"""A run's ``checkpoints/`` folder: what training saves to resume bit for bit, and reads back.

Each checkpoint is three files sharing one step number::

    step-000500.keras        the model with its optimizer state (plain Keras)
    step-000500.state.json   the random-generator states `model.save` leaves out, the
                             training time, the best step, the history's lengths, the step
    step-000500.best.npz     the best weights so far (only with a validation part)

The ``.keras`` file is written last, so it never exists without the others: a checkpoint is
its ``.keras`` file. Only the newest few are kept.

The training history is kept apart, in segments the checkpoints share
(`tf_sine.history_segments`): ``history-000500-001000.npz``, ...
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tf_sine.files import first_line, json_text, load_keras, read_arrays, read_json
from tf_sine.history_segments import HISTORY_KEYS, HistorySegments
from tf_sine.owned import OwnedFolder

CHECKPOINTS_KEPT = 3

_CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.keras$")


class Checkpoints:
    """The checkpoints of one run, in the folder `name` of the run's `owner` (made on the first save).

    Every file is written and removed through `owner`, so the run's manifest lists it.
    """

    def __init__(self, owner: OwnedFolder, name: str = "checkpoints"):
        self.owner = owner
        self.name = name
        self.folder = owner.path / name
        self.history = HistorySegments(owner, name)

    def save(
        self,
        model: Any,
        step: int,
        state: dict[str, Any] | None = None,
        best_weights: list[np.ndarray] | None = None,
        keep: int = CHECKPOINTS_KEPT,
    ) -> Path:
        """Saves the checkpoint of `step`, then removes all but the newest `keep`.

        Checkpoints after `step` are an abandoned course's (those that could not be read when
        the run resumed or started again): they are removed first, as is the ``.keras`` file of
        one at `step`, so that no crash leaves one beside a history it does not belong to.

        Args:
            model: a compiled Keras model; its optimizer state is saved with it.
            step: the optimizer steps taken so far.
            state: more JSON-able training state (`TrainingState.history()`); its history lists
                (`HISTORY_KEYS`) go to the shared segments (`tf_sine.history_segments`), the
                state file records their lengths.
            best_weights: the best weights so far, as `model.get_weights()` gives them.
            keep: how many checkpoints to keep.

        Returns:
            The checkpoint's ``.keras`` path.

        Raises:
            OSError: a file cannot be written (a full disk, for one).
        """
        path = self.folder / f"step-{step:06d}.keras"
        for saved_step, old in self.saved():
            if saved_step > step:
                self._remove(old)
            elif saved_step == step:
                self.owner.remove(self._relative(old))
        state = dict(state or {})
        if any(key in state for key in HISTORY_KEYS):
            history = {key: state.pop(key, []) for key in HISTORY_KEYS}
            state["history_lengths"] = self.history.save(step, history)
        text = json_text({**state, "step": step, "seed_generators": _seed_states(model)})
        self.owner.write(self._relative(_state_path(path)), lambda temporary: temporary.write_text(text))
        if best_weights is not None:
            arrays = {f"w{index:04d}": weight for index, weight in enumerate(best_weights)}
            self.owner.write(
                self._relative(_best_path(path)), lambda temporary: np.savez(temporary, **arrays)
            )
        self.owner.write(self._relative(path), model.save)
        for _, old in self.saved()[:-keep]:
            self._remove(old)
        return path

    def _remove(self, checkpoint: Path) -> None:
        # Its .keras last: a kill midway leaves a checkpoint that reads as unreadable and is
        # removed later, not a state file no checkpoint names.
        for file in (_best_path(checkpoint), _state_path(checkpoint), checkpoint):
            self.owner.remove(self._relative(file))

    def _relative(self, path: Path) -> str:
        return f"{self.name}/{path.name}"

    def saved(self) -> list[tuple[int, Path]]:
        """`(step, path)` of every checkpoint, oldest first."""
        if not self.folder.is_dir():
            return []
        ours = self.owner.owned_files()  # a file of the user's named like a checkpoint is not one
        entries = (e for e in self.folder.iterdir() if self._relative(e) in ours)
        steps = ((checkpoint_step(entry), entry) for entry in entries)
        return sorted((step, entry) for step, entry in steps if step is not None)

    def load_newest(self, notify: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]] | None:
        """Loads the newest readable checkpoint, with its random-generator states restored.

        A checkpoint that cannot be read (truncated, corrupt, its state file missing) is
        reported through `notify` and the one before it is tried.

        Returns:
            `(model, state)`, the state with ``best_weights`` when it was saved; None when
            there is no readable checkpoint.
        """
        for _, path in reversed(self.saved()):
            try:
                state = read_json(_state_path(path))
                chain = None
                if "history_lengths" in state:  # else the history is in the state file (older runs)
                    history, chain = self.history.load(state["step"], state.pop("history_lengths"))
                    state.update(history)
                _check_history_end(state)
                model = load_keras(path)
                _restore_seed_states(model, state["seed_generators"])
                if state.get("best_step"):
                    arrays = read_arrays(_best_path(path))
                    state["best_weights"] = [arrays[name] for name in sorted(arrays)]
            except (OSError, ValueError, KeyError) as error:  # ModelError is a ValueError
                if notify is not None:
                    notify(f"checkpoint {path} is unreadable ({first_line(error)}); using the one before it")
                continue
            # Read only: the next save settles the segments (other workers read them too).
            if chain is None:
                self.history.forget()
            else:
                self.history.remember(chain, state["step"])
            return model, state
        self.history.forget()
        return None


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a checkpoint file name (``step-000500.keras`` -> 500), else None."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def _state_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".keras", ".state.json"))


def _best_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".keras", ".best.npz"))


def _check_history_end(state: dict[str, Any]) -> None:
    """Refuses a history whose last loss is not of the checkpoint's step: one written while a
    signal cut a chunk's bookkeeping short (before `tf_sine.interrupts`) lacks that chunk."""
    steps = state.get("loss_steps")
    if steps and steps[-1] != state["step"]:
        raise ValueError(f"its loss history ends at step {steps[-1]}, not at its step {state['step']}")


def _seed_generator_variables(model: Any) -> list[Any]:
    # Dropout draws from keras.random.SeedGenerator states: model variables that model.save
    # does not store. Without them a resumed run would draw other dropout masks.
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def _seed_states(model: Any) -> list[list[int]]:
    return [[int(n) for n in v.numpy()] for v in _seed_generator_variables(model)]


def _restore_seed_states(model: Any, states: list[list[int]]) -> None:
    variables = _seed_generator_variables(model)
    if len(variables) != len(states):
        raise ValueError(
            f"the state file has {len(states)} random-generator states, the model {len(variables)}"
        )
    for variable, values in zip(variables, states, strict=True):
        variable.assign(values)
