"""The idle lock: after a time without input the station locks to the sign-in screen.

As KeePassXC does it (its ``InactivityTimer``): one event filter sees every key, mouse and
touch event and restarts one single-shot timer; when the timer runs out,
:attr:`IdleLock.locked` is emitted. The shell installs it on each top-level ``QWindow`` while
someone is signed in (every input event reaches a window's ``QWindow`` before its widgets),
not on the whole application: a Python filter on the application runs for every event of
every object and waits for the GIL while the worker runs Python (40-70 ms stalls). The
application (:class:`station.ui.app.Shell`) signs the operator out and shows the sign-in
screen; an open request stays resumable, since it lives in the database.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

# the operator's own input; paint, timer and focus events are not someone at the station
INPUT_EVENTS = frozenset({
    QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick, QEvent.Type.MouseMove, QEvent.Type.Wheel, QEvent.Type.TouchBegin,
    QEvent.Type.TouchUpdate, QEvent.Type.TouchEnd, QEvent.Type.TabletPress, QEvent.Type.TabletMove,
    QEvent.Type.ShortcutOverride,
})


class IdleLock(QObject):
    """Install with ``QApplication.instance().installEventFilter(lock)``; :meth:`start` once
    someone signs in, :meth:`stop` once no one is. Input restarts the countdown only while it
    runs."""

    locked = Signal()

    def __init__(self, seconds: float = 300.0, parent: QObject | None = None):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(max(1, round(seconds * 1000)))
        self._timer.timeout.connect(self.locked)

    @property
    def seconds(self) -> float:
        return self._timer.interval() / 1000

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def is_running(self) -> bool:
        return self._timer.isActive()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() in INPUT_EVENTS and self._timer.isActive():
            self._timer.start()  # restarts the single shot
        return False  # the event goes on to its receiver
