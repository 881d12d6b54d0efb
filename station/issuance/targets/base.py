"""The interface every issuance target implements (PKCS#11 tokens, PIV-applet tokens, phones).

The engine drives a target through these steps, in this order, and persists ``state()``
after each so that a crash can be resumed with ``restore()``:

1. ``plan_key(algorithm)`` — the key's name on the device is chosen (no device I/O) and
   persisted; then ``generate_key(algorithm)`` — the key pair is generated inside the device
   (after a crash, ``restore()`` + ``generate_key()`` finds a key already generated instead of
   making a second one);
2. ``proof_of_possession(subject)`` — a PKCS#10 request signed by that key, on the device;
3. ``install_certificate(certificate, chain)`` — idempotent;
4. ``set_activation_secret(new_pin)`` — the applicant's PIN replaces the transport secret;
5. ``sign_challenge(pin, challenge)`` — used by the functional test (``selftest.run``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from station.errors import StationError


class TargetError(StationError):
    code = "target"
    hint = "check the --target URI and that the token is plugged in"


@dataclass(frozen=True)
class DeviceDescription:
    kind: str  # "pkcs11", "piv-token", "phone"
    hardware: bool  # a hardware cryptographic module (AAL3-capable), from configuration
    identity: str  # stable, PIN-free identity recorded with the credential
    smart_card: bool = False  # Smart Card Logon EKU only for keys on a smart card
    details: dict[str, str] = field(default_factory=dict)


class Target(abc.ABC):
    kind: str = ""

    @abc.abstractmethod
    def describe(self) -> DeviceDescription: ...

    def plan_key(self, algorithm: str) -> None:
        """Choose the new key's name on the device so that ``state()`` finds it again; a target
        that cannot name its key in advance leaves this empty (a crash during generation may
        then leave an unused key on the device)."""

    @abc.abstractmethod
    def generate_key(self, algorithm: str) -> Any:
        """Generate the key pair on the device (or find the planned one, already generated, with
        its private key: a pair found without it is made again); returns the public key."""

    @abc.abstractmethod
    def proof_of_possession(self, subject: x509.Name) -> bytes:
        """A DER PKCS#10 request signed by the device's new key."""

    @abc.abstractmethod
    def install_certificate(self, certificate: x509.Certificate, chain: list[x509.Certificate]) -> None: ...

    @abc.abstractmethod
    def set_activation_secret(self, new_pin: str) -> None:
        """Replace the transport secret; a refused transport secret raises
        :class:`~station.devices.errors.PinIncorrect` (the engine then checks whether ``new_pin`` is set)."""

    @abc.abstractmethod
    def activation_secret_set(self, new_pin: str) -> bool:
        """True when ``new_pin`` already unlocks the device (resume after a crash). A wrong
        guess spends a PIN try, so the engine asks only when the transport secret failed."""

    @abc.abstractmethod
    def sign_challenge(self, pin: str, challenge: bytes) -> bytes: ...

    @abc.abstractmethod
    def state(self) -> dict[str, str]:
        """What the engine must persist to find the key again (no secrets)."""

    @abc.abstractmethod
    def restore(self, state: dict[str, str]) -> None: ...

    def close(self) -> None:
        """Let go of the device (sessions, logins); the target may be used again after."""

    def installed_certificate(self) -> x509.Certificate | None:
        return None

    def locate_credential(self) -> x509.Certificate | None:
        """Find an installed derived credential on the device itself (no stored state) and
        make it the target's key; None when the device holds none."""
        return None
