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

``cancel`` (a :class:`threading.Event` the engine sets on the target before it drives it) is
checked between the target's device operations: once set, the next one raises
:class:`~station.cancel.Cancelled` and the device is left as the last finished operation left
it. ``discard_key()`` removes what this request's run made (found through ``restore()``)
while the transport secret still opens the device: ``station requests cancel --target``.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from station.cancel import check
from station.errors import Exit, StationError


class TargetError(StationError):
    code = "target"
    hint = "check the --target URI and that the token is plugged in"


class DeviceMustBeReset(TargetError):
    """The run's key cannot be removed: the applicant's PIN has replaced the transport secret."""

    code = "target.reset_needed"
    hint = "reset the device (re-initialize the token with its security officer PIN) before it is used again"
    exit_code = Exit.REFUSED


@dataclass(frozen=True)
class DeviceDescription:
    kind: str  # "pkcs11", "piv-token", "phone"
    hardware: bool  # a hardware cryptographic module (AAL3-capable), from configuration
    identity: str  # stable, PIN-free identity recorded with the credential
    smart_card: bool = False  # Smart Card Logon EKU only for keys on a smart card
    details: dict[str, str] = field(default_factory=dict)


class Target(abc.ABC):
    kind: str = ""
    cancel: threading.Event | None = None  # set by the engine; checked between device operations

    def _check_cancel(self, where: str) -> None:
        """A safe point between two device operations."""
        check(self.cancel, where)

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
        """Replace the transport secret; a refused transport secret raises an error whose
        ``code`` is ``pin-incorrect`` (the engine then checks whether ``new_pin`` is set)."""

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

    def discard_key(self) -> None:
        """Delete the key (and its certificate) this request's run made, as ``restore()`` found
        it, while the transport secret still opens the device; nothing planned: nothing to do.
        Once the applicant's PIN has replaced the transport secret it raises
        :class:`DeviceMustBeReset`."""
        raise TargetError(f"a {self.kind or 'target'} device cannot delete a key it made",
                          code="target.cannot_discard", hint="reset the device before it is used again")

    def close(self) -> None:
        """Let go of the device (sessions, logins); the target may be used again after."""

    def installed_certificate(self) -> x509.Certificate | None:
        return None

    def locate_credential(self) -> x509.Certificate | None:
        """Find an installed derived credential on the device itself (no stored state) and
        make it the target's key; None when the device holds none."""
        return None
