"""A test-only target shaped like a phone: it makes its key itself and pushes its PKCS#10
request when it is ready, from another thread, after a delay (a software key: no device)."""

from __future__ import annotations

import hashlib
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from station.cancel import Cancelled
from station.issuance.targets import DeviceDescription, DeviceIdentity, RequestNotReceived, Target, TargetError


class PushTarget(Target):
    kind = "phone"
    sends_request = True

    def __init__(self, *, delay: float | None = 0.2, serial: str = "P-0001"):
        """``delay``: seconds from the station's wait to the phone's request (None: never sent)."""
        self.delay, self.serial = delay, serial
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.certificate: x509.Certificate | None = None
        self._pin_sha256: bytes | None = None
        self._csr: bytes | None = None
        self._sent = threading.Event()
        self._phone: threading.Thread | None = None
        self.waits = 0  # how many times the station waited
        self.waiting = threading.Event()  # set once the station waits for the request

    def describe(self) -> DeviceDescription:
        return DeviceDescription("phone", False, DeviceIdentity("phone", "test phone", "Test", "Push", self.serial),
                                 f"phone:test?serial={self.serial}")

    def _make_and_send(self, subject: x509.Name) -> None:  # the phone, on its own thread
        time.sleep(self.delay)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        self.key, self._csr = key, csr.public_bytes(Encoding.DER)
        self._sent.set()

    def await_request(self, subject: x509.Name, *, deadline: float, cancel: threading.Event | None = None, **request) -> bytes:
        self.waits += 1
        self.waiting.set()
        if self._phone is None and self.delay is not None:
            self._phone = threading.Thread(target=self._make_and_send, args=(subject,), daemon=True)
            self._phone.start()
        while not self._sent.wait(0.01):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while waiting for the phone's request")
            if time.monotonic() >= deadline:
                raise RequestNotReceived("the phone did not send its certification request in time")
        return self._csr

    def install_certificate(self, certificate, chain) -> None:
        self.certificate = certificate

    def installed_certificate(self):
        return self.certificate

    def set_activation_secret(self, new_pin: str) -> None:
        self._pin_sha256 = hashlib.sha256(new_pin.encode()).digest()

    def activation_secret_set(self, new_pin: str) -> bool:
        return self._pin_sha256 == hashlib.sha256(new_pin.encode()).digest()

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        if not self.activation_secret_set(pin):
            raise TargetError("wrong PIN", code="pin-incorrect")
        return self.key.sign(challenge, ec.ECDSA(hashes.SHA256()))

    def state(self) -> dict[str, str]:
        return {}

    def restore(self, state: dict[str, str]) -> None:
        pass
