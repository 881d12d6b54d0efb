"""Questions asked on the device worker, answered on another thread (the GUI's).

The engine runs on the device worker and calls its :class:`~station.issuance.interaction.Interaction`
synchronously. :class:`InteractionBridge` is that interaction for a screen: each question
becomes a :class:`Prompt` handed to the listener (``on_prompt``, called on the worker thread:
it must only pass the prompt on, e.g. as a queued Qt signal, see ``station/ui/bridge.py``),
and the worker blocks until the screen calls :meth:`Prompt.answer` or :meth:`Prompt.decline`
from its own thread — the shape of Electrum's device thread waiting on the GUI, with
python-fido2's cancel event. When the cancel token is set the worker stops waiting within
:data:`POLL` seconds with :class:`~station.cancel.Cancelled`, the prompt is withdrawn (the
listener hears ``on_withdrawn``), and a late answer is dropped. Progress events are passed to
``on_progress`` as they come, on the worker thread, without waiting for anyone.

A prompt carries only what may be shown (PIN kind and tries left, operator and purpose, the
card's subject and facial image, a summary); the answer it gets is held in the prompt only
until the worker takes it, then the slot is emptied: no PIN or password stays in the bridge
or the prompt.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from enum import Enum
from typing import Any, Callable, Mapping

from station.cancel import Cancelled, check
from station.errors import StationError
from station.issuance.interaction import ApprovalDecision
from station.issuance.progress import Progress

log = logging.getLogger(__name__)

#: how often a waiting worker looks at the cancel token (seconds): the bound on cancel latency
POLL = 0.01


class PromptKind(str, Enum):
    PIN = "pin"  # the applicant's PIV card PIN, or the new credential's PIN for the self-test
    NEW_PIN = "new-pin"  # the applicant's new credential PIN, typed twice
    PHOTO = "photo"  # the registrar confirms the card's facial image shows the applicant
    OPERATOR_SECRET = "operator-secret"  # an operator's password for a fresh sign-in
    APPROVAL = "approval"  # a supervisor approves a request, or not

    @property
    def secret(self) -> bool:
        """The answer is a secret: typed masked, never shown, never kept."""
        return self in (PromptKind.PIN, PromptKind.NEW_PIN, PromptKind.OPERATOR_SECRET)


class PromptDeclined(StationError):
    """The person at the station declined to answer a question."""

    code = "interaction.declined"
    hint = "nothing was sent to the device; go on with the request when the person is ready (`station requests resume ID`)"


class PromptTimedOut(StationError):
    """Nobody answered a question in the time allowed."""

    code = "interaction.timeout"
    hint = "nothing was sent to the device; go on with the request when the person is at the station (`station requests resume ID`)"


_OPEN, _ANSWERED, _DECLINED, _WITHDRAWN, _TAKEN = "open", "answered", "declined", "withdrawn", "taken"
_numbers = itertools.count(1)


class Prompt:
    """One question from the worker: what to ask (non-secret fields) and a one-shot answer
    slot, safe to answer from any thread. :meth:`answer` and :meth:`decline` return whether
    they were taken: a prompt already answered, declined or withdrawn ignores them."""

    def __init__(self, kind: PromptKind, *, pin_kind: str | None = None, tries_left: int | None = None,
                 again: bool = False, operator: str | None = None, purpose: str | None = None,
                 subject: str | None = None, facial_image: bytes | None = None, summary: str | None = None):
        self.number = next(_numbers)
        self.kind = kind
        self.pin_kind, self.tries_left = pin_kind, tries_left
        self.again = again  # a PIN asked again: the one typed before was wrong
        self.operator, self.purpose = operator, purpose
        self.subject, self.facial_image = subject, facial_image
        self.summary = summary
        self._lock = threading.Lock()
        self._settled = threading.Event()
        self._status = _OPEN
        self._value: Any = None
        self._reason = ""

    def __repr__(self) -> str:  # never the answer
        return f"<Prompt {self.number} {self.kind.value} {self._status}>"

    @property
    def question(self) -> str:
        """The question in plain words, for a screen's label."""
        if self.kind is PromptKind.PIN:
            if self.pin_kind == "credential":
                return "The applicant's new credential PIN, for the functional test"
            tries = f" ({self.tries_left} tries left)" if self.tries_left is not None else ""
            wrong = "Wrong PIN. " if self.again else ""
            return f"{wrong}The applicant's PIV card {self.pin_kind} PIN{tries}"
        if self.kind is PromptKind.NEW_PIN:
            return "The applicant chooses the new credential's PIN and types it twice"
        if self.kind is PromptKind.PHOTO:
            return f"Does the card's facial image show the person at the desk ({self.subject})?"
        if self.kind is PromptKind.OPERATOR_SECRET:
            return f"{self.operator}: your password, to {self.purpose}"
        return f"Approve this request? {self.summary}"

    @property
    def secret(self) -> bool:
        return self.kind.secret

    @property
    def status(self) -> str:
        """``open``, ``answered``, ``declined``, ``withdrawn`` (cancelled or timed out) or ``taken``."""
        return self._status

    @property
    def withdrawn(self) -> bool:
        return self._status == _WITHDRAWN

    def done(self) -> bool:
        """No longer waiting for an answer."""
        return self._status != _OPEN

    def answer(self, value: Any) -> bool:
        with self._lock:
            if self._status != _OPEN:
                return False  # late (withdrawn) or twice: dropped, not kept
            self._value, self._status = value, _ANSWERED
            self._settled.set()
        return True

    def decline(self, reason: str = "") -> bool:
        with self._lock:
            if self._status != _OPEN:
                return False
            self._reason, self._status = reason, _DECLINED
            self._settled.set()
        return True

    # --- the worker's side ----------------------------------------------------------------
    def _wait(self, seconds: float) -> bool:
        return self._settled.wait(seconds)

    def _take(self) -> Any:
        """The answer, once: the slot is emptied as it is handed over."""
        with self._lock:
            value, self._value = self._value, None
            self._status = _TAKEN
        return value

    def _withdraw(self) -> bool:
        """Withdrawn unless the worker already took the answer; any answer given is dropped."""
        with self._lock:
            if self._status == _TAKEN:
                return False
            self._value, self._status = None, _WITHDRAWN
            self._settled.set()
        return True


class InteractionBridge:
    """An :class:`~station.issuance.interaction.Interaction` for a worker thread (see the
    module docstring). ``cancel``: the cancel token (a :class:`threading.Event`) that stops
    a wait; ``timeout``: seconds a prompt waits for its answer (None: no limit), per kind in
    ``timeouts``."""

    def __init__(self, on_prompt: Callable[[Prompt], None], *, on_progress: Callable[[Progress], None] | None = None,
                 on_withdrawn: Callable[[Prompt], None] | None = None, cancel: threading.Event | None = None,
                 timeout: float | None = None, timeouts: Mapping[PromptKind, float] | None = None):
        self._on_prompt = on_prompt
        self._on_progress = on_progress
        self._on_withdrawn = on_withdrawn
        self.cancel = cancel
        self._timeout = timeout
        self._timeouts = dict(timeouts or {})
        self._pins_asked: set[str | None] = set()  # a PIN asked again in one operation: the last one was wrong

    # --- the Interaction --------------------------------------------------------------------
    asks_again = True  # a person at a screen types a mistyped PIN again (pkiauth.PinEntry)

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        again = pin_kind in self._pins_asked
        self._pins_asked.add(pin_kind)
        return _text(self._ask(Prompt(PromptKind.PIN, pin_kind=pin_kind, tries_left=tries_left, again=again)), PromptKind.PIN)

    def request_new_pin(self) -> tuple[str, str]:
        answer = self._ask(Prompt(PromptKind.NEW_PIN))
        if not (isinstance(answer, tuple) and len(answer) == 2 and all(isinstance(a, str) for a in answer)):
            raise TypeError("a new-pin prompt is answered with the PIN and its confirmation, two strings")
        return answer

    def confirm_photo(self, facial_image: bytes | None, subject: str) -> bool:
        answer = self._ask(Prompt(PromptKind.PHOTO, facial_image=facial_image, subject=subject))
        if not isinstance(answer, bool):
            raise TypeError("a photo prompt is answered with True or False")
        return answer

    def operator_secret(self, operator: str, purpose: str) -> str:
        return _text(self._ask(Prompt(PromptKind.OPERATOR_SECRET, operator=operator, purpose=purpose)), PromptKind.OPERATOR_SECRET)

    def approve_request(self, summary: str) -> ApprovalDecision:
        answer = self._ask(Prompt(PromptKind.APPROVAL, summary=summary))
        if not isinstance(answer, ApprovalDecision):
            raise TypeError("an approval prompt is answered with an ApprovalDecision")
        return answer

    def progress(self, event: Progress) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(event)
        except Exception:  # a screen's fault must not stop an issuance half way
            log.exception("the progress listener failed on %s", event.step.value)

    # --- asking ------------------------------------------------------------------------------
    def _ask(self, prompt: Prompt) -> Any:
        """Hand ``prompt`` to the listener and wait for its answer, the cancel token or the timeout."""
        what = prompt.kind.value
        check(self.cancel, f"before the {what} question")
        limit = self._timeouts.get(prompt.kind, self._timeout)
        deadline = None if limit is None else time.monotonic() + limit
        try:
            self._on_prompt(prompt)
        except BaseException:
            prompt._withdraw()
            raise
        while not prompt._wait(POLL if self.cancel is not None or deadline is not None else 3600.0):
            if self.cancel is not None and self.cancel.is_set():
                self._withdraw(prompt)
                raise Cancelled(f"cancelled while waiting for the {what} answer")
            if deadline is not None and time.monotonic() >= deadline:
                self._withdraw(prompt)
                raise PromptTimedOut(f"no answer to the {what} question within {limit:g} s")
        if self.cancel is not None and self.cancel.is_set():  # answered as the cancel came: cancel wins
            self._withdraw(prompt)
            raise Cancelled(f"cancelled while waiting for the {what} answer")
        if prompt.status == _DECLINED:
            reason = prompt._reason
            raise PromptDeclined(f"the {what} question was declined" + (f": {reason}" if reason else ""))
        return prompt._take()

    def _withdraw(self, prompt: Prompt) -> None:
        if prompt._withdraw() and self._on_withdrawn is not None:
            try:
                self._on_withdrawn(prompt)
            except Exception:
                log.exception("the withdrawal listener failed on prompt %s", prompt.number)


def _text(answer: Any, kind: PromptKind) -> str:
    if not isinstance(answer, str):
        raise TypeError(f"a {kind.value} prompt is answered with a string")
    return answer
