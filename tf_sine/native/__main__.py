"""`python -m tf_sine.native [--force | --info | --check]`: build and inspect the compiled kernels.

    python -m tf_sine.native          # build them unless a record is kept (make install does)
    python -m tf_sine.native --force  # climb the flag ladder again, even after a failure
    python -m tf_sine.native --info   # compiler, flags, CPU, library, self-test, families loaded
    python -m tf_sine.native --check  # self-test the kept library again

Exit status 0 when a self-tested library is available, 1 with the reason when none is (training
then falls back, see `tf_sine.native.FALLBACK`), 2 for an unknown option, a malformed
`TF_SINE_NATIVE_MARCH` or a thread count in `TF_NUM_INTRAOP_THREADS`/`TF_NUM_INTEROP_THREADS`
that is not a whole number from 0 up.
"""

from __future__ import annotations

import argparse
import sys

from tf_sine import native

PROGRAM = "python -m tf_sine.native"


def main(argv: list[str] | None = None) -> int:
    """Runs the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--force", action="store_true", help="climb the flag ladder again, even after a failure"
    )
    group.add_argument("--info", action="store_true", help="report what is kept, without building")
    group.add_argument("--check", action="store_true", help="self-test the kept library again")
    args = parser.parse_args(argv)
    if not native.enabled():
        print(f"{PROGRAM}: TF_SINE_NATIVE=0 turns the native kernels off; nothing built or loaded")
        return 1 if args.check or args.info else 0
    from tf_sine.errors import TfSineError
    from tf_sine.startup import start_tensorflow

    try:
        start_tensorflow()
    except TfSineError as error:  # a thread count TensorFlow would abort on
        print(f"{PROGRAM}: error: argument {error.argument}: {error.detail}", file=sys.stderr)
        return 2
    try:
        if args.info:
            rows = native.report()
            width = max(map(len, rows))
            print("\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in rows.items()))
            return 0 if rows["families loaded"] != "none" else 1
        if args.check:
            print(native.check())
            return 0
        record = native.build(force=args.force, announce=native.note)
    except native.TargetError as error:  # a malformed setting: a usage error
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 1
    if not record.ok:
        print(f"{PROGRAM}: not built: {record.reason}; {native.FALLBACK}", file=sys.stderr)
        return 1
    print(record.library)
    return 0


if __name__ == "__main__":
    sys.exit(main())
