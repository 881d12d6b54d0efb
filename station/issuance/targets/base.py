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

A device that makes its key and sends its own PKCS#10 request when it is ready (a phone) sets
``sends_request = True``: instead of steps 1 and 2 the engine records that it waits
(``target.awaiting_request``) and calls ``await_request(subject, deadline=..., cancel=...)``,
which returns the DER request (the proof of possession, as in step 2).
"""

from __future__ import annotations

import abc
import re
import threading
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from cryptography import x509

from station.cancel import check
from station.errors import Exit, StationError


class TargetError(StationError):
    class Code(str, Enum):
        TARGET = "target"
        SENDS_REQUEST = "target.sends_request"
        NO_REQUEST = "target.no_request"
        CANNOT_DISCARD = "target.cannot_discard"

    code = Code.TARGET.value
    hint = "check the --target URI and that the token is plugged in"


class DeviceMustBeReset(TargetError):
    """The run's key cannot be removed: the applicant's PIN has replaced the transport secret."""

    code = "target.reset_needed"
    hint = "reset the device (re-initialize the token with its security officer PIN) before it is used again"
    exit_code = Exit.REFUSED


class RequestNotReceived(TargetError):
    """The device did not send its certification request before the deadline; the request
    stays where it was (resumable: the device may send it when the step is run again)."""

    code = "target.request_timeout"
    exit_code = Exit.REFUSED
    hint = "make the device send its request, then `station requests resume ID`; or `station requests cancel ID`"


_IDENTITY = re.compile(r"(?P<kind>[a-z0-9-]+):token=(?P<label>.*);manufacturer=(?P<manufacturer>.*);"
                       r"model=(?P<model>.*);serial=(?P<serial>.*)", re.S)


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a device is, field by field: stable and PIN-free. Its text form
    (``pkcs11:token=<label>;manufacturer=…;model=…;serial=…``) is what the records and the audit
    chain hold (``target_device``); :meth:`parse` reads it back."""
    kind: str  # the target URI's scheme: "pkcs11", "piv", "phone"
    label: str
    manufacturer: str = ""
    model: str = ""
    serial: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:token={self.label};manufacturer={self.manufacturer};model={self.model};serial={self.serial}"

    @property
    def name(self) -> str:
        """The short form for messages: kind and label."""
        return f"{self.kind}:token={self.label}" if self.kind else self.label

    def words(self, *, label: bool = True) -> str:
        """The device for people: label (when asked), manufacturer and model, serial."""
        model = " ".join(part for part in (self.manufacturer, self.model) if part)
        return ", ".join(part for part in (self.label if label else "", model, f"serial {self.serial}" if self.serial else "")
                         if part)

    @classmethod
    def parse(cls, text: str) -> DeviceIdentity:
        """The identity a record holds; a text in no known form is kept whole as the label (it
        then matches only itself)."""
        found = _IDENTITY.fullmatch(text)
        if found is None:
            return cls("", text)
        return cls(**found.groupdict())

    def same_device(self, other: DeviceIdentity) -> bool:
        """The same device: every field equal."""
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))


@dataclass(frozen=True)
class DeviceDescription:
    kind: str  # "pkcs11", "piv-token", "phone"
    hardware: bool  # a hardware cryptographic module (AAL3-capable), from configuration
    device: DeviceIdentity  # stable, PIN-free identity recorded with the credential
    uri: str = ""  # the target URI without any secret, recorded with the request (resume names it)
    smart_card: bool = False  # Smart Card Logon EKU only for keys on a smart card
    details: dict[str, str] = field(default_factory=dict)
    not_hardware_because: str = ""  # why the device cannot carry AAL3, where more than configuration decides

    @property
    def identity(self) -> str:
        """The device identity's text form, as recorded."""
        return str(self.device)


class Target(abc.ABC):
    kind: str = ""
    sends_request: bool = False  # the device sends its own PKCS#10 request when ready (a phone)
    device_sets_pin: bool = False  # the applicant sets the PIN on the device itself: activation waits for its report
    device_self_test: bool = False  # the device runs the functional test through the station: step 7 waits for it
    replaces_credential: bool = False  # the device holds one credential, which a new one replaces (a PIV token's 9A)
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

    def generate_key(self, algorithm: str) -> Any:
        """Generate the key pair on the device (or find the planned one, already generated, with
        its private key: a pair found without it is made again); returns the public key. Every
        target but one that ``sends_request`` implements it."""
        raise TargetError(f"a {self.kind} target makes its key itself and sends its request", code=TargetError.Code.SENDS_REQUEST)

    def proof_of_possession(self, subject: x509.Name) -> bytes:
        """A DER PKCS#10 request signed by the device's new key."""
        raise TargetError(f"a {self.kind} target makes its key itself and sends its request", code=TargetError.Code.SENDS_REQUEST)

    def await_request(self, subject: x509.Name, *, deadline: float, cancel: threading.Event | None = None,
                      request_id: int = 0, aal: str = "AAL2") -> bytes:
        """For a target that ``sends_request``: wait until the device sends its DER PKCS#10
        request (the key made on the device) for request ``request_id`` at ``aal``, at most
        until ``deadline`` (``time.monotonic()``; then :class:`RequestNotReceived`); a set
        ``cancel`` stops the wait (:class:`station.cancel.Cancelled`)."""
        raise TargetError(f"a {self.kind} target does not send its own request", code=TargetError.Code.NO_REQUEST)

    def attested(self) -> dict[str, str]:
        """For a target that ``sends_request``: what was checked of the key it sent (recorded
        with ``target.request_received``)."""
        return {}

    def await_activation(self, *, deadline: float, cancel: threading.Event | None = None) -> None:
        """For a target whose ``device_sets_pin``: wait until the device reports the applicant's PIN set."""
        raise TargetError(f"a {self.kind} target takes its PIN from the station", code=TargetError.Code.NO_REQUEST)

    def await_self_test(self, *, deadline: float, cancel: threading.Event | None = None):
        """For a target whose ``device_self_test``: the station's result of the device's
        functional test (a :class:`station.issuance.selftest.SelfTestResult`)."""
        raise TargetError(f"a {self.kind} target is tested by the station", code=TargetError.Code.NO_REQUEST)

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

    def discard_key(self) -> None:
        """Delete the key (and its certificate) this request's run made, as ``restore()`` found
        it, while the transport secret still opens the device; nothing planned: nothing to do.
        Once the applicant's PIN has replaced the transport secret it raises
        :class:`DeviceMustBeReset`."""
        raise TargetError(f"a {self.kind or 'target'} device cannot delete a key it made",
                          code=TargetError.Code.CANNOT_DISCARD, hint="reset the device before it is used again")

    def close(self) -> None:
        """Let go of the device (sessions, logins); the target may be used again after."""

    def installed_certificate(self) -> x509.Certificate | None:
        return None

    def locate_credential(self) -> x509.Certificate | None:
        """Find an installed derived credential on the device itself (no stored state) and
        make it the target's key; None when the device holds none."""
        return None
