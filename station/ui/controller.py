"""Runs the wizard's operations on the device worker and brings everything back as signals.

:class:`IssuanceController` turns an :class:`~station.wizard.flow.Operation` into one
issuance session (``station.issuance_session(...)``, the composition root) run on the one
device worker, with a fresh :class:`~station.ui.bridge.QtInteractionBridge` per operation: the
engine's questions arrive as ``prompted(Prompt)``, its progress as ``progressed(Progress)``,
and the end as ``finished(operation, result)`` or ``failed(operation, error)``, all on the GUI
thread. :meth:`cancel` sets the running operation's cancel token: the engine stops at its next
safe point with ``Cancelled`` (delivered through ``failed``).

:class:`CardWatcher` notices cards inserted and removed without a click: a thread of its own
waits on PC/SC status changes (it never talks to a card; the worker does).
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from station.ui.bridge import QtInteractionBridge
from station.wizard.flow import IssuanceFlow, Operation


class IssuanceController(QObject):
    prompted = Signal(object)  # Prompt
    withdrawn = Signal(object)  # Prompt
    progressed = Signal(object)  # Progress
    finished = Signal(object, object)  # Operation, result (request id, None, or the engine's Outcome)
    failed = Signal(object, object)  # Operation, BaseException (StationError, Cancelled…)
    busy_changed = Signal(bool)

    def __init__(self, ctx, parent: QObject | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.bridge: QtInteractionBridge | None = None
        self.running: Operation | None = None

    def run(self, operation: Operation, flow: IssuanceFlow, *, approver: str = "", approve: bool = True,
            reason: str = "") -> None:
        """Start ``operation`` for ``flow`` (what the registrar chose) as the signed-in operator."""
        if self.running is not None:
            raise RuntimeError(f"{self.running.value} is still running")
        bridge = self.bridge = QtInteractionBridge(threading.Event(), parent=self)
        bridge.prompted.connect(self.prompted)
        bridge.withdrawn.connect(self.withdrawn)
        bridge.progressed.connect(self.progressed)
        registrar = self.ctx.operator.identity
        reader = flow.applicant.reader if flow.applicant else self.ctx.settings.applicant_reader
        uri = flow.target.uri if flow.target else None
        request_id, aal, replace = flow.request_id, flow.aal.value, flow.replace_confirmed

        def job(station):
            options = {"cancel": bridge.cancel_token}
            if operation is not Operation.DECIDE:
                options.update(applicant_reader=reader, target=uri)
            with station.issuance_session(bridge.interaction, **options) as session:
                if operation is Operation.OPEN_REQUEST:
                    return session.open_request(registrar=registrar, aal=aal, replace=replace)
                if operation is Operation.DECIDE:
                    if approve:
                        return session.approve(request_id, approver=approver)
                    return session.deny(request_id, approver=approver, reason=reason)
                return session.complete(request_id, registrar=registrar)

        self.running = operation
        self.busy_changed.emit(True)
        self.ctx.call(operation.value, job, on_done=lambda result: self._end(operation, result, None),
                      on_error=lambda error: self._end(operation, None, error))

    def cancel(self) -> None:
        """The Cancel button: the running operation stops at its next safe point."""
        if self.bridge is not None:
            self.bridge.cancel()

    def _end(self, operation: Operation, result, error) -> None:
        self.running = None
        self.busy_changed.emit(False)
        if error is None:
            self.finished.emit(operation, result)
        else:
            self.failed.emit(operation, error)


class CardWatcher(QObject):
    """Emits ``changed(states)`` (a list of ``pcsc.ReaderState``) whenever a card is inserted
    or removed, and once at start; ``stop()`` ends the thread within a quarter second."""

    changed = Signal(object)

    def __init__(self, parent: QObject | None = None, *, poll: float = 0.25):
        super().__init__(parent)
        self._stop = threading.Event()
        self._poll = poll
        self._thread = threading.Thread(target=self._run, name="card-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from station.cancel import Cancelled
        from station.devices import pcsc
        from station.errors import StationError

        previous = None
        while not self._stop.is_set():
            try:
                states = pcsc.reader_states(self._poll, previous, cancel=self._stop) if previous is not None \
                    else pcsc.reader_states()
            except Cancelled:
                return
            except StationError:  # no reader yet, or pcscd restarting: look again shortly
                self._stop.wait(self._poll)
                previous = None
                continue
            if previous is None or [(s.reader, s.present) for s in states] != [(s.reader, s.present) for s in previous]:
                try:
                    self.changed.emit(states)
                except RuntimeError:  # the window that watched is gone
                    return
            previous = states

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
