"""Ctrl-C (SIGINT) and SIGTERM during a long command: stop at the next safe point.

:func:`interruptible` installs handlers that set a cancel token (a :class:`threading.Event`,
handed to the engine) instead of raising ``KeyboardInterrupt`` wherever the interpreter happens
to be, and restores the previous handlers afterwards. The work checks the token at its safe
points and stops there with :class:`~station.cancel.Cancelled`; a second signal changes nothing
(a step half written to a token or the database is never cut short): it only says again that
the command is stopping. :func:`stopped_line` is the one error line the command then prints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

from station.cancel import Cancelled

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: set by the ``station`` program (:func:`station.cli.run`): when an interruptible command ends,
#: the process is ending too, so a late signal is ignored instead of turning a command that has
#: finished (and printed its outcome) into a ``KeyboardInterrupt``
ending_process = False
_NOTICE = b"station: stopping at the next safe point (the step under way finishes first)\n"


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """A cancel token that SIGINT and SIGTERM set while the block runs. Off the main thread
    (where Python cannot catch signals) the token is only set by whoever holds it."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def stop(signum, frame) -> None:
        cancel.set()
        try:
            os.write(2, _NOTICE)  # not print(): the signal may land while stderr is being written
        except OSError:
            pass

    previous = {sig: signal.signal(sig, stop) for sig in SIGNALS}
    try:
        yield cancel
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if ending_process else handler)


def stopped_line(exc: Cancelled) -> str:
    """What a command stopped by the operator says: the request left behind and the two ways on."""
    request_id = exc.request_id
    if request_id is None:
        return "stopped before a request was recorded: nothing was left to resume or cancel. Run the command again when ready."
    return (f"stopped at a safe point ({exc}): request {request_id} is left as its last finished step left it. "
            f"Go on with `station requests resume {request_id}` or end it with `station requests cancel {request_id}`.")
