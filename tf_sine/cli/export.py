"""`export`: a SavedModel (and TFLite file) for serving, from a run directory or a .keras file."""

from __future__ import annotations

import argparse
from pathlib import Path

from tf_sine.cli.common import SERIES_HELP


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds `export` to the CLI's parser."""
    export = commands.add_parser(
        "export", help="write a SavedModel with serving signatures, and a TFLite file"
    )
    export.add_argument(
        "--model", required=True, help="a run directory (its scaling is exported too) or a .keras file"
    )
    export.add_argument(
        "--out", required=True, help="the folder to write (saved_model/, model.tflite, export.json)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    export.add_argument("--series", dest="series_id", help=SERIES_HELP)


def _export(args: argparse.Namespace) -> int:
    from tf_sine.trained import open_run

    run = open_run(args.model)
    run = run if args.series_id is None else run.select(args.series_id)
    manifest = run.export(args.out, overwrite=args.overwrite)
    out = Path(args.out)
    for name, signature in manifest["signatures"].items():
        inputs = ", ".join(f"{key} {shape}" for key, shape in signature["inputs"].items())
        outputs = ", ".join(f"{key} {shape}" for key, shape in signature["outputs"].items())
        print(f"signature {name}: {inputs} -> {outputs}".replace("None", "batch"))
    tflite = manifest["tflite"]
    if tflite["file"]:
        print(f"TFLite: {out / tflite['file']} ({tflite['bytes']:,} bytes, builtin ops, recurrence unrolled)")
    else:
        print(f"TFLite: not written; TensorFlow's converter failed: {tflite['reason']}")
    print(f"written: {out / manifest['saved_model']}, {out / 'export.json'}")
    return 0


COMMANDS = {"export": _export}
