"""The interaction bridge seen from Qt: questions, withdrawals and progress as signals.

Create :class:`QtInteractionBridge` on the GUI thread and give its ``interaction`` to the
engine running on the device worker. Each question the engine asks is emitted as
``prompted(prompt)``, each withdrawn question (cancel, timeout) as ``withdrawn(prompt)`` and
each progress event as ``progressed(event)``; they are emitted on the worker thread and Qt
queues them to the receivers' (GUI) thread. A screen answers with :meth:`answer` or
:meth:`decline` (or the prompt's own methods), which wake the waiting worker. No widgets here.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from station.issuance.bridge import InteractionBridge, Prompt, PromptKind


class QtInteractionBridge(QObject):
    prompted = Signal(object)  # Prompt
    withdrawn = Signal(object)  # Prompt
    progressed = Signal(object)  # station.issuance.progress.Progress

    def __init__(self, cancel: threading.Event | None = None, *, timeout: float | None = None,
                 timeouts: dict[PromptKind, float] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.cancel_token = cancel if cancel is not None else threading.Event()
        self.interaction = InteractionBridge(self.prompted.emit, on_progress=self.progressed.emit,
                                             on_withdrawn=self.withdrawn.emit, cancel=self.cancel_token,
                                             timeout=timeout, timeouts=timeouts)

    @Slot(object, object, result=bool)
    def answer(self, prompt: Prompt, value: Any) -> bool:
        """Answer ``prompt``; False when it was already answered or withdrawn."""
        return prompt.answer(value)

    @Slot(object, str, result=bool)
    def decline(self, prompt: Prompt, reason: str = "") -> bool:
        return prompt.decline(reason)

    @Slot()
    def cancel(self) -> None:
        """The Cancel button: the worker stops at its next safe point (a waiting prompt at once)."""
        self.cancel_token.set()
