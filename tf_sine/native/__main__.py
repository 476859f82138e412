"""`python -m tf_sine.native [--force]`: build the compiled recurrent kernels now (`make install` does).

Exit status 0 with the library's path, or 1 with the reason it could not be built (training then
uses TensorFlow's BlockLSTM kernel for LSTM layers, Keras's layers for the others).
"""

import sys

from tf_sine.native import NativeBuildError, build, enabled


def main(argv: list[str]) -> int:
    if not enabled():
        print("tf_sine.native: TF_SINE_NATIVE=0, nothing built")
        return 0
    try:
        print(build(force="--force" in argv))
    except NativeBuildError as error:
        print(f"tf_sine.native: {error}; training will use TensorFlow's own kernels", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
