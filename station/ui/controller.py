"""Runs the wizard's operations on the device worker and brings everything back as signals.

:class:`IssuanceController` turns an :class:`~station.wizard.flow.Operation` into one
issuance session (``station.issuance_session(...)``, the composition root) run on the one
device worker, with a fresh :class:`~station.ui.bridge.QtInteractionBridge` per operation: the
engine's questions arrive as ``prompted(Prompt)``, its progress as ``progressed(Progress)``,
and the end as ``finished(operation, result)`` or ``failed(operation, error)``, all on the GUI
thread. :meth:`cancel` sets the running operation's cancel token: the engine stops at its next
safe point with ``Cancelled`` (delivered through ``failed``).

A phone target's events (its codes, and what the phone does: they come from the device worker,
the enrollment service's thread and the new-code thread) arrive as ``phone_event(event,
modules)``, a code's QR modules made on the thread that announced it, never on the GUI thread.
:meth:`new_code` asks the waiting phone target for a new code.

:class:`CardWatcher` notices cards inserted and removed without a click: a thread of its own
waits on PC/SC status changes (it never talks to a card; the worker does).
"""

from __future__ import annotations

import threading
from typing import Callable

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
    phone_event = Signal(object, object)  # PhoneEvent, the QR modules of a code (else None)
    new_code_failed = Signal(str)  # why no new code was made, in words

    def __init__(self, ctx, parent: QObject | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.bridge: QtInteractionBridge | None = None
        self.running: Operation | None = None
        self._new_code: Callable[[], object] | None = None  # the waiting phone target's new_code, while it runs

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
                options.update(applicant_reader=reader, target=uri, phone_events=self._phone_heard)
            with station.issuance_session(bridge.interaction, **options) as session:
                if operation is Operation.OPEN_REQUEST:
                    return session.open_request(registrar=registrar, aal=aal, replace=replace)
                if operation is Operation.DECIDE:
                    if approve:
                        return session.approve(request_id, approver=approver)
                    return session.deny(request_id, approver=approver, reason=reason)
                self._new_code = getattr(session.target, "new_code", None)  # a phone's; set and cleared here
                try:
                    return session.complete(request_id, registrar=registrar)
                finally:
                    self._new_code = None

        self.running = operation
        self.busy_changed.emit(True)
        self.ctx.call(operation.value, job, on_done=lambda result: self._end(operation, result, None),
                      on_error=lambda error: self._end(operation, None, error))

    def cancel(self) -> None:
        """The Cancel button: the running operation stops at its next safe point."""
        if self.bridge is not None:
            self.bridge.cancel()

    def _phone_heard(self, event) -> None:
        """On the thread that announced ``event``: a code's QR modules are made here (~15 ms of
        pure Python the GUI thread does not spend), then the event is queued to the GUI thread."""
        modules = None
        if event.kind == "code":
            from station.enrollment.qr import matrix

            modules = matrix(event.uri)
        try:
            self.phone_event.emit(event, modules)
        except RuntimeError:  # the window that listened is gone
            pass

    def new_code(self) -> bool:
        """A new code for the phone the engine waits for; False when no phone is waited for.

        It runs on a short thread of its own, not on the device worker (which is inside the
        engine's wait for the phone, the very wait the code is for: a job there would run only
        after it) nor on the GUI thread (it takes the binding registry's lock, which the
        enrollment service's thread also takes). The old code dies at once (the registry drops
        its label); the new one arrives as a ``phone_event``, a refusal as ``new_code_failed``."""
        make = self._new_code
        if make is None:
            return False

        def run() -> None:
            try:
                make()
            except Exception as exc:  # noqa: BLE001 - a TargetError (the phone has just enrolled), shown on the page
                try:
                    self.new_code_failed.emit(str(exc))
                except RuntimeError:
                    pass

        threading.Thread(target=run, name="phone-new-code", daemon=True).start()
        return True

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
