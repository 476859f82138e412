"""`convert`: a TF1 checkpoint of the source's network written as a plain .keras model."""

from __future__ import annotations

import argparse

from tf_sine.config import LAYOUTS, OPTIMIZERS

# The flags passed on to `tf_sine.compat.convert_tf1_checkpoint` when given (by their dest).
_OPTIONS = ("units", "num_layers", "timesteps", "layout", "forget_bias", "optimizer", "learning_rate")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds `convert` to the CLI's parser."""
    convert = commands.add_parser(
        "convert", help="write a TF1 checkpoint of the source's LSTM (0.12 or 1.x names) as a .keras model"
    )
    convert.add_argument(
        "--tf1-checkpoint",
        required=True,
        help="a checkpoint folder (its 'checkpoint' file names the latest) or a prefix: model.ckpt-3000",
    )
    convert.add_argument("--out", required=True, help="the .keras file to write")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    # Defaults are suppressed: what the checkpoint says is used unless a flag is given.
    group = convert.add_argument_group("model (default: read from the checkpoint)")
    add = group.add_argument
    add("--units", type=int, help="hidden units per layer (must agree with the checkpoint)")
    add("--layers", dest="num_layers", type=int, help="stacked LSTM layers (must agree with the checkpoint)")
    add("--layout", choices=tuple(LAYOUTS),
        help="legacy: windows (N, 1, T), the source's (default for an input width above 1); "
        "sequence: (N, T, width) (default for width 1)")  # fmt: skip
    add(
        "--timesteps",
        type=int,
        help="values per window (legacy: the checkpoint's width; sequence: default 10)",
    )
    add(
        "--forget-bias",
        type=float,
        help="the cells' forget_bias, folded into the forget gate's bias (default 1.0)",
    )
    add(
        "--optimizer", choices=tuple(OPTIMIZERS), help="compiled with, for further training (default adagrad)"
    )
    add("--learning-rate", type=float, help="the optimizer's learning rate (default 0.1)")
    for action in group._group_actions:
        action.default = argparse.SUPPRESS


def _convert(args: argparse.Namespace) -> int:
    from tf_sine.compat import convert_tf1_checkpoint

    options = {name: value for name, value in vars(args).items() if name in _OPTIONS}
    model = convert_tf1_checkpoint(args.tf1_checkpoint, args.out, overwrite=args.overwrite, **options)
    recurrent = model.layers[:-1]
    shape = ", ".join(str(size) for size in model.input_shape[1:])
    print(f"{len(recurrent)} LSTM layers of {recurrent[0].units} units and a Dense(1) head, "
          f"windows (batch, {shape})")  # fmt: skip
    print(f"written: {args.out} (loads with keras.models.load_model, without tf_sine)")
    return 0


COMMANDS = {"convert": _convert}
