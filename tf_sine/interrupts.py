"""Ctrl-C and SIGTERM held back while a piece of training is made whole.

Python runs a signal's handler at the first instruction after the native call it arrived in
returns: a Ctrl-C during a chunk of training lands just after the chunk's graph call, before
its losses are recorded and its step counted. A checkpoint written then holds the chunk's
weights without its history. Holding the first signal until the chunk's bookkeeping (and a
checkpoint due then) is done keeps the two together. A second signal is not held: pressing
Ctrl-C again stops a piece that hangs (a user's callback, a slow disk) at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Holds the first SIGINT or SIGTERM until the block ends, then hands it to its handler.

    Only signals Python handles are held (Ctrl-C's `KeyboardInterrupt`, the CLI's SIGTERM
    handler); a signal left to the operating system (SIGTERM's default) still ends the process
    at once. A second signal goes to its handler at once. Outside the main thread, where Python
    handles no signal, nothing is held. A block that raises drops the signal held: its
    exception already ends the training.

    Raises:
        Whatever the held signal's handler raises (`KeyboardInterrupt` for Ctrl-C), after the
        block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in HELD_SIGNALS}
    handlers = {signum: handler for signum, handler in handlers.items() if callable(handler)}
    held: list[int] = []

    def restore() -> None:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    def hold(signum: int, frame: Any) -> None:
        if held:  # the second: not held
            restore()
            handlers[signum](signum, frame)
        held.append(signum)

    for signum in handlers:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        restore()
    if held:
        handlers[held[0]](held[0], None)
