"""One-time enrollment bindings: one per approved phone request (RFC 7030 §3.2.3 HTTP Basic).

Each binding has its own EST label, user name and one-time secret (128 bits, base32 without
padding: 26 characters a phone camera reads fast), valid until ``expires`` (Unix seconds)
and once. The registry keeps only the secret's SHA-256; :meth:`BindingRegistry.check` tells a
wrong, expired or spent secret without spending it, :meth:`BindingRegistry.consume` spends it
under a lock, so of concurrent attempts exactly one wins. ``renew`` gives the request a new
label and secret and the old ones die at once.

The exchange between the enrollment service (its event loop thread) and the phone target (the
engine's device worker) goes through the :class:`Enrollment` of the binding: the request the
phone sent, the certificate the station issued, the activation report and the self-test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from station.cancel import Cancelled


class Refusal(str, Enum):
    """Why an enrollment attempt is refused (the audit event's ``reason``)."""

    UNKNOWN_LABEL = "unknown-label"
    WRONG_SECRET = "wrong-secret"
    EXPIRED = "expired"
    SPENT = "spent"


class BindingRefused(Exception):
    def __init__(self, reason: Refusal, request_id: int | None = None):
        super().__init__(reason.value)
        self.reason, self.request_id = reason, request_id


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def attestation_challenge(otp: str) -> bytes:
    """The challenge a phone puts in its key attestation: SHA-256 of ``dpiv-attest-v1:`` and the
    one-time secret (a phone knows it from the QR code; nobody else does)."""
    return hashlib.sha256(b"dpiv-attest-v1:" + otp.encode()).digest()


@dataclass
class Enrollment:
    """What passes between the service and the phone target for one request (thread-safe:
    each hand-over is an Event)."""
    request_id: int
    aal: str
    label: str = ""
    user: str = ""
    expires: int = 0
    challenge: bytes = b""
    csr_der: bytes | None = None
    attested: dict[str, str] = field(default_factory=dict)  # a verified attestation's facts
    certificate: Any = None  # set by the target at delivery; the service answers with it
    chain: list = field(default_factory=list)
    policy: str = ""  # the certificate policy it was issued under
    selftest: Any = None  # the station's SelfTestResult of the phone's self-test
    ended: str = ""  # why the station stopped waiting (cancel, a new code): the service answers 503
    on_event: Callable[..., None] = lambda kind, detail, ok=True: None  # (kind, detail, ok) for screens; any thread
    request_received: threading.Event = field(default_factory=threading.Event)
    delivered: threading.Event = field(default_factory=threading.Event)  # the certificate is ready to send
    sent: threading.Event = field(default_factory=threading.Event)  # ...and the phone has it
    activated: threading.Event = field(default_factory=threading.Event)
    tested: threading.Event = field(default_factory=threading.Event)
    wakers: list[Callable[[], None]] = field(default_factory=list)  # the service's waits, woken on any signal

    def signal(self, event: threading.Event | None = None) -> None:
        """Set ``event`` (None: only wake the waits, e.g. when the station stops waiting)."""
        if event is not None:
            event.set()
        for wake in list(self.wakers):
            wake()

    def end(self, why: str) -> None:
        """The station stops waiting for this phone (cancelled, a new code): its waits answer 503."""
        self.ended = why
        self.signal()

    def wait(self, event: threading.Event, *, deadline: float, cancel: threading.Event | None, what: str) -> bool:
        """Wait for ``event`` until ``deadline`` (monotonic): True when set; a set ``cancel``
        raises :class:`Cancelled`."""
        while not event.wait(0.02):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled while waiting for the phone {what}")
            if time.monotonic() >= deadline:
                return False
        return True


class BindingRegistry:
    """The live bindings, by label (thread-safe)."""

    def __init__(self, *, lifetime_seconds: float = 600):
        self.lifetime = lifetime_seconds
        self._lock = threading.Lock()
        self._by_label: dict[str, tuple[bytes, Enrollment, bool]] = {}  # label -> (secret digest, enrollment, spent)

    def bind(self, enrollment: Enrollment) -> str:
        """A new label, user and secret for ``enrollment`` (any earlier ones die); returns the secret."""
        otp = base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()
        with self._lock:
            self._by_label.pop(enrollment.label, None)
            enrollment.label = f"r{enrollment.request_id}-{secrets.token_hex(4)}"
            enrollment.user = f"request-{enrollment.request_id}"
            enrollment.expires = int(time.time() + self.lifetime)
            enrollment.challenge = attestation_challenge(otp)
            self._by_label[enrollment.label] = (_digest(otp), enrollment, False)
        return otp

    def drop(self, enrollment: Enrollment) -> None:
        with self._lock:
            if self._by_label.get(enrollment.label, (None, None))[1] is enrollment:
                del self._by_label[enrollment.label]

    def find(self, label: str) -> Enrollment | None:
        with self._lock:
            entry = self._by_label.get(label)
        return entry[1] if entry else None

    def _checked(self, label: str, user: str, otp: str) -> tuple[bytes, Enrollment, bool]:
        entry = self._by_label.get(label)
        if entry is None:
            raise BindingRefused(Refusal.UNKNOWN_LABEL)
        digest, enrollment, spent = entry
        if not (hmac.compare_digest(_digest(otp), digest) & hmac.compare_digest(user.encode(), enrollment.user.encode())):
            raise BindingRefused(Refusal.WRONG_SECRET, enrollment.request_id)
        if time.time() >= enrollment.expires:
            raise BindingRefused(Refusal.EXPIRED, enrollment.request_id)
        if spent:
            raise BindingRefused(Refusal.SPENT, enrollment.request_id)
        return entry

    def check(self, label: str, user: str, otp: str) -> Enrollment:
        """The enrollment these credentials open, without spending them; else :class:`BindingRefused`."""
        with self._lock:
            return self._checked(label, user, otp)[1]

    def consume(self, label: str, user: str, otp: str) -> Enrollment:
        """As :meth:`check`, and the secret is spent: of concurrent callers exactly one gets it."""
        with self._lock:
            digest, enrollment, _ = self._checked(label, user, otp)
            self._by_label[label] = (digest, enrollment, True)
            return enrollment
