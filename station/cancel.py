"""Cancellation, the way python-fido2 passes its ``event`` down to the transport.

A cancel token is a :class:`threading.Event`: whoever may stop the work (the GUI's Cancel
button, Ctrl-C at the command line) sets it; the work checks it at its safe points (between
APDUs, before a PIN is sent, between the steps of a target, between network fetches) and stops
there with :class:`Cancelled`. ``None`` means "cannot be cancelled".
"""

from __future__ import annotations

import threading
import time

from station.errors import Exit, StationError


class Cancelled(StationError):
    """The operator stopped the work; nothing after the last safe point happened."""

    code = "cancelled"
    hint = "resume the request with `station requests resume ID` or end it with `station requests cancel ID`"
    exit_code = Exit.INTERRUPTED
    request_id: int | None = None  # the request left behind, resumable or to be cancelled (set by the engine)


def check(cancel: threading.Event | None, where: str = "") -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set (``where`` names the safe point)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"cancelled {where}".strip() if where else "cancelled")


def sleep(cancel: threading.Event | None, seconds: float, where: str = "") -> None:
    """Wait ``seconds``, waking at once (with :class:`Cancelled`) when ``cancel`` is set."""
    if cancel is None:
        time.sleep(max(0.0, seconds))
        return
    if cancel.wait(max(0.0, seconds)):
        check(cancel, where)
