"""The frozen configuration, its presets, and the shared tables of allowed values."""

import dataclasses

import pytest

from tf_sine.cli import build_parser
from tf_sine.config import CELLS, ENGINES, LAYOUTS, OPTIMIZERS, PRESETS, Config, get_preset


def test_legacy_preset_is_the_source_hyperparameters():
    legacy = PRESETS["legacy"].config
    assert legacy == Config()
    assert (legacy.cell, legacy.units, legacy.num_layers) == ("lstm", 30, 2)
    assert (legacy.optimizer, legacy.learning_rate) == ("adagrad", 0.1)
    assert (legacy.batch_size, legacy.steps, legacy.timesteps, legacy.layout) == (32, 3000, 10, "legacy")
    assert legacy.clipnorm is legacy.clipvalue is legacy.global_clipnorm is None
    assert get_preset("sequence").layout == "sequence"
    assert legacy.engine == "fast"  # the fast engine is the default


def test_config_is_frozen_and_round_trips():
    config = Config(cell="gru", units=7, bidirectional=True, clipvalue=0.5, layout="sequence")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.units = 3
    assert Config.from_dict(config.to_dict()) == config
    assert config.replace(units=9).units == 9 and config.units == 7


def _choices(subcommand, dest):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[subcommand]
    return next(tuple(a.choices) for a in sub._actions if a.dest == dest)


def test_cli_reads_its_choices_from_the_config_tables():
    assert _choices("train", "cell") == tuple(CELLS)
    assert _choices("train", "optimizer") == tuple(OPTIMIZERS)
    assert _choices("train", "layout") == tuple(LAYOUTS)
    assert _choices("train", "engine") == tuple(ENGINES)
    assert _choices("train", "preset") == tuple(PRESETS)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"cell": "transformer"},
            ValueError,
            "cell: expected one of 'lstm', 'gru', 'simple_rnn', got 'transformer'",
        ),
        (
            {"optimizer": "lamb"},
            ValueError,
            "optimizer: expected one of 'adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'",
        ),
        ({"layout": "nhwc"}, ValueError, "layout: expected one of 'legacy', 'sequence', got 'nhwc'"),
        ({"engine": "turbo"}, ValueError, "engine: expected one of 'fast', 'fit', got 'turbo'"),
        ({"steps": 0}, ValueError, "steps: expected a positive integer, got 0"),
        ({"units": -3}, ValueError, "units: expected a positive integer, got -3"),
        ({"num_layers": 0}, ValueError, "num_layers: expected a positive integer, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size: expected a positive integer, got 2.0"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every: expected a positive integer, got 0"),
        ({"timesteps": True}, TypeError, "timesteps: expected a positive integer, got True"),
        ({"dropout": 1.0}, ValueError, r"dropout: expected a rate in \[0, 1\), got 1.0"),
        (
            {"recurrent_dropout": -0.1},
            ValueError,
            r"recurrent_dropout: expected a rate in \[0, 1\), got -0.1",
        ),
        ({"learning_rate": 0.0}, ValueError, "learning_rate: expected a positive number, got 0.0"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate: expected a positive number, got nan"),
        ({"clipnorm": -1.0}, ValueError, "clipnorm: expected a positive number, got -1.0"),
        (
            {"clipnorm": 1.0, "global_clipnorm": 2.0},
            ValueError,
            "expected at most one of clipnorm, clipvalue, global_clipnorm, got clipnorm=1.0, global_clipnorm=2.0",
        ),
        ({"bidirectional": "yes"}, TypeError, "bidirectional: expected True or False, got 'yes'"),
        ({"seed": 1.5}, TypeError, "seed: expected an integer, got 1.5"),
        ({"colour": "red"}, ValueError, "colour: not a configuration field"),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_them(changes, error, message):
    with pytest.raises(error, match=message) as caught:
        Config().replace(**changes)
    assert "\n" not in str(caught.value)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(
        ValueError, match="preset: expected one of 'legacy', 'legacy-exact', 'sequence', 'tiny', got 'huge'"
    ):
        get_preset("huge")
