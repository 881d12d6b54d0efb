"""A phone as the target: it makes its key in its own crypto module and enrolls over EST.

The engine drives it like any device that sends its own request (``sends_request``), and the
phone also sets its own PIN (``device_sets_pin``: activation waits for the phone's
``activate`` call) and runs the self-test through the station (``device_self_test``: the
station checks the credential the phone presents over mutual TLS). When the engine first waits
for the request, the target makes the request's one-time binding in the enrollment service
and announces the ``dpiv://enroll`` URI (a :class:`PhoneEvent` ``code``) for the QR code; the
wait lasts until the binding expires. :meth:`PhoneTarget.new_code` replaces the binding (the
old one dies at once) while the phone has not enrolled yet.

A phone's key cannot be reached by the station afterwards: after a crash once the certificate
is issued, the request cannot be delivered (the phone's connection is gone with the process):
resuming it says so (``target.phone_silent``) and ``requests cancel`` ends it, its certificate
revoked; ``requests cancel --target phone`` cannot delete the key on the phone (the phone's
app deletes what it never activated).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from cryptography import x509

from station.enrollment.binding import Enrollment
from station.enrollment.qr import EnrollmentPayload
from station.issuance.selftest import SelfTestResult
from station.issuance.targets.base import DeviceDescription, DeviceIdentity, RequestNotReceived, Target, TargetError

CERTIFICATE_PICKUP_SECONDS = 30.0  # from the certificate to the phone having it


@dataclass(frozen=True)
class PhoneEvent:
    """What the screens show of the phone: ``code`` (a new QR payload in ``uri``, valid until
    ``expires``, Unix seconds), ``enrolling``, ``enrolled``, ``activated``, ``selftest``,
    ``refused``, ``ended``; ``detail`` in plain words; ``ok``: it went well (a refusal, an
    expiry or a failed self-test did not)."""
    kind: str
    detail: str
    uri: str = ""
    expires: int = 0
    ok: bool = True


class DeviceDidNotAnswer(TargetError):
    """The phone did not take a step the station waits for (its certificate, activation, self-test)."""

    code = "target.phone_silent"
    hint = "open a new request for the phone (one left open: `station requests cancel ID` revokes its certificate)"


class PhoneTarget(Target):
    kind = "phone"
    sends_request = True
    device_sets_pin = True
    device_self_test = True

    def __init__(self, uri: str, *, enrollment_service: Callable[[], object] | None = None,
                 phone_events: Callable[[PhoneEvent], None] | None = None):
        self.uri = uri
        self._service_factory = enrollment_service
        self._service = None
        self._listener = phone_events or (lambda event: None)
        self.enrollment: Enrollment | None = None
        self._lock = threading.Lock()

    def describe(self) -> DeviceDescription:
        # hardware: a phone may carry AAL3, and only a verified key attestation lets it (the service refuses otherwise)
        return DeviceDescription("phone", True, DeviceIdentity("phone", "phone"), uri="phone:",
                                 details={"channel": "EST over pinned TLS"})

    # --- the binding --------------------------------------------------------------------------------
    @property
    def service(self):
        if self._service is None:
            if self._service_factory is None:
                raise TargetError("the phone target needs the station's enrollment service",
                                  hint="configure [enrollment] in station.toml (station init makes it)")
            self._service = self._service_factory()
        return self._service

    def _emit(self, kind: str, detail: str, ok: bool = True) -> None:
        self._listener(PhoneEvent(kind, detail, ok=ok))

    def new_code(self) -> PhoneEvent:
        """A new binding for the waiting request (the old label and secret die at once); its
        :class:`PhoneEvent` ``code`` is announced and returned."""
        with self._lock:
            enrollment = self.enrollment
            if enrollment is None or enrollment.request_received.is_set():
                raise TargetError("the phone has already sent its request: no new code is needed",
                                  code=TargetError.Code.SENDS_REQUEST)
            otp = self.service.registry.bind(enrollment)
            payload = EnrollmentPayload(self.service.base_url(enrollment.label), self.service.fingerprint,
                                        enrollment.user, otp, enrollment.expires)
            event = PhoneEvent("code", "scan the code with the phone's app", payload.uri(), enrollment.expires)
        self._listener(event)
        return event

    def await_request(self, subject: x509.Name, *, deadline: float, cancel: threading.Event | None = None,
                      request_id: int = 0, aal: str = "AAL2") -> bytes:
        """Bind, announce the code, and wait for the phone's request until the binding expires
        (a new code moves that on); ``deadline`` is not used: the binding's lifetime is the wait."""
        if self.enrollment is None or self.enrollment.request_id != request_id:
            self.enrollment = Enrollment(request_id, aal, on_event=self._emit)
            self.new_code()
        enrollment = self.enrollment
        while not enrollment.request_received.is_set():
            left = enrollment.expires - time.time()
            if left <= 0:  # the binding stays, refused as expired, until the target closes
                self._emit("ended", "the code expired before the phone enrolled", ok=False)
                raise RequestNotReceived("the phone did not enroll before its code expired")
            enrollment.wait(enrollment.request_received, deadline=time.monotonic() + min(left, 1.0), cancel=cancel,
                            what="to enroll")
        return enrollment.csr_der

    def attested(self) -> dict[str, str]:
        """What the service checked of the phone's key (type; a verified attestation's facts)."""
        return dict(self.enrollment.attested) if self.enrollment else {}

    # --- delivery, activation, self-test -------------------------------------------------------------
    def _current(self) -> Enrollment:
        if self.enrollment is None or not self.enrollment.request_received.is_set():
            raise DeviceDidNotAnswer("the phone's enrollment is gone (the station was restarted): the certificate "
                                     "cannot be delivered to it")
        return self.enrollment

    def install_certificate(self, certificate: x509.Certificate, chain: list[x509.Certificate]) -> None:
        enrollment = self._current()
        if enrollment.certificate is None:
            policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
            enrollment.policy = policies[0].policy_identifier.dotted_string if policies else ""
            enrollment.certificate, enrollment.chain = certificate, chain
            enrollment.signal(enrollment.delivered)
        if not enrollment.wait(enrollment.sent, deadline=time.monotonic() + CERTIFICATE_PICKUP_SECONDS, cancel=self.cancel,
                               what="to take its certificate"):
            raise DeviceDidNotAnswer("the phone did not take its certificate")

    def installed_certificate(self) -> x509.Certificate | None:
        return self.enrollment.certificate if self.enrollment else None

    def await_activation(self, *, deadline: float, cancel: threading.Event | None = None) -> None:
        enrollment = self._current()
        if not enrollment.wait(enrollment.activated, deadline=deadline, cancel=cancel, what="to report its PIN set"):
            raise DeviceDidNotAnswer("the phone did not report that the applicant's PIN protects the key")

    def await_self_test(self, *, deadline: float, cancel: threading.Event | None = None) -> SelfTestResult:
        enrollment = self._current()
        if not enrollment.wait(enrollment.tested, deadline=deadline, cancel=cancel, what="to run its self-test"):
            raise DeviceDidNotAnswer("the phone did not run its self-test")
        return enrollment.selftest

    def set_activation_secret(self, new_pin: str) -> None:
        raise TargetError("the applicant sets the PIN on the phone", code=TargetError.Code.SENDS_REQUEST)

    def activation_secret_set(self, new_pin: str) -> bool:
        return False

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        raise TargetError("the phone proves its key to the station over mutual TLS", code=TargetError.Code.SENDS_REQUEST)

    def state(self) -> dict[str, str]:
        return {"label": self.enrollment.label} if self.enrollment else {}

    def restore(self, state: dict[str, str]) -> None:
        """Nothing to find again: a phone's enrollment lives only as long as this target."""

    def close(self) -> None:
        enrollment, self.enrollment = self.enrollment, None
        if enrollment is not None and self._service is not None:
            self._service.registry.drop(enrollment)
            if not enrollment.tested.is_set():
                enrollment.end("the station ended the enrollment")


def open_phone(uri: str, **options) -> PhoneTarget:
    if uri.rstrip(":").lower() != "phone":
        raise TargetError(f"a phone target is named just phone:, not {uri!r}", hint="give --target phone")
    return PhoneTarget("phone:", enrollment_service=options.get("enrollment_service"),
                       phone_events=options.get("phone_events"))


