"""Issuance onto a PKCS#11 token named by an RFC 7512 URI (SoftHSM2 in tests; OpenSC's
``opensc-pkcs11.so`` or Yubico's ``libykcs11.so`` for real tokens).

The URI's PIN (``pin-source``, ``pin-value``), else the caller's ``pin_entry`` (the command
line: a line of standard input), is the token's transport user PIN; activation
replaces it with the applicant's PIN (C_SetPIN). Whether the module is hardware is a matter of
configuration (``hardware=True``): SoftHSM is software.
"""

from __future__ import annotations

import os
from typing import Callable

from cryptography import x509

from station.devices.pkcs11 import Pkcs11Token, Pkcs11Uri
from station.devices.errors import PinBlocked, PinIncorrect
from station.issuance.targets.base import DeviceDescription, DeviceIdentity, DeviceMustBeReset, Target, TargetError

KEY_LABEL = "Derived PIV Authentication key"
CERT_LABEL = "Derived PIV Authentication"


def open_pkcs11(uri: str, *, hardware_modules: set[str] | frozenset[str] = frozenset(),
                pin_entry: Callable[[], str] | None = None, **_options) -> Pkcs11Target:
    """The ``pkcs11:`` factory of the target registry: the module is hardware only when the
    configuration lists its path in ``hardware_modules``."""
    parsed = Pkcs11Uri.parse(uri)
    return Pkcs11Target(parsed, hardware=parsed.query.get("module-path") in hardware_modules, pin_entry=pin_entry)


class Pkcs11Target(Target):
    kind = "pkcs11"

    def __init__(self, uri: str | Pkcs11Uri, *, hardware: bool = False, pin_entry: Callable[[], str] | None = None):
        self.uri = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
        self.hardware = hardware
        self._pin_entry = pin_entry  # asked for the transport PIN when the URI names none
        self.token = Pkcs11Token(self.uri)
        self.key_id: bytes | None = None
        self.public_key = None
        self._pin: str | None = None  # the transport PIN, read from its source once
        self._description: DeviceDescription | None = None

    def describe(self) -> DeviceDescription:
        """Made once: it is the token's information read when it was opened, and the configuration."""
        if self._description is None:
            d = self.token.describe()
            device = DeviceIdentity("pkcs11", d["label"], d["manufacturer"], d["model"], d["serial"])
            self._description = DeviceDescription("pkcs11", self.hardware, device, str(self.uri), smart_card=False, details=d)
        return self._description

    def _transport_pin(self) -> str:
        """From pin-value, a PIN file or the keyring (a D-Bus call): read once, not per operation."""
        if self._pin is None:
            self._pin = self.uri.pin(self._pin_entry)
        return self._pin

    def _key(self) -> bytes:
        if self.key_id is None:
            raise TargetError("no key has been generated on this token for the request")
        return self.key_id

    def plan_key(self, algorithm: str) -> None:
        self.key_id, self.public_key = os.urandom(16), None

    def generate_key(self, algorithm: str):
        """Generate the planned key, or find it when an earlier run generated it already. Half
        a pair under the planned CKA_ID (a run killed while the token stored the pair) is
        removed and the pair generated again under that CKA_ID."""
        self._check_cancel("before logging in to the token")
        pin = self._transport_pin()
        self.token.hold_login(pin)  # one login for key, request and certificate
        self._check_cancel("before looking for the key on the token")
        if self.public_key is not None and self.token.has_private_key(pin, self._key()):
            return self.public_key
        if self.key_id is not None:
            self._check_cancel("before clearing the planned key's place")
            self.token.destroy_key_pair(pin, self.key_id)
        self._check_cancel("before generating the key on the token")
        self.key_id, self.public_key = self.token.generate_key(pin, algorithm, KEY_LABEL, self.key_id)
        return self.public_key

    def proof_of_possession(self, subject: x509.Name) -> bytes:
        if self.public_key is None:
            raise TargetError("the public key is unknown; generate the key first")
        self._check_cancel("before signing the certification request on the token")
        return self.token.certification_request(self._transport_pin(), self._key(), self.public_key, subject)

    def install_certificate(self, certificate: x509.Certificate, chain: list[x509.Certificate]) -> None:
        self._check_cancel("before storing the certificate on the token")
        self.token.install_certificate(self._transport_pin(), self._key(), certificate, CERT_LABEL)

    def installed_certificate(self) -> x509.Certificate | None:
        return self.token.certificate(self._key())

    def locate_credential(self) -> x509.Certificate | None:
        found = self.token.find_certificate(CERT_LABEL)
        if found is None:
            return None
        self.key_id, cert = found
        self.public_key = cert.public_key()
        return cert

    def set_activation_secret(self, new_pin: str) -> None:
        self._check_cancel("before setting the applicant's PIN on the token")
        self.token.change_pin(self._transport_pin(), new_pin)

    def activation_secret_set(self, new_pin: str) -> bool:
        try:
            self.token.key_info(new_pin, self._key())
            return True
        except PinIncorrect:
            return False

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        self._check_cancel("before signing the test challenge on the token")
        return self.token.sign(pin, self._key(), challenge)

    def discard_key(self) -> None:
        """Delete the key pair under the recorded CKA_ID and the certificate stored with it,
        logged in with the transport PIN; a refused transport PIN means activation replaced
        it (or it was never this token's): the device must be reset."""
        if self.key_id is None:
            return  # nothing was planned, so nothing was made
        try:
            pin = self._transport_pin()
            self.token.destroy_credential(pin, self.key_id)
        except (PinIncorrect, PinBlocked):
            raise DeviceMustBeReset("the token no longer takes its transport PIN (the applicant's PIN is set): "
                                    "the key made for the request stays on it: the device must be reset") from None
        self.public_key = None

    def close(self) -> None:
        self.token.release()

    def state(self) -> dict[str, str]:
        """The key's CKA_ID once planned, and whether the token holds it yet."""
        if not self.key_id:
            return {}
        return {"key_id": self.key_id.hex(), **({"key": "generated"} if self.public_key is not None else {})}

    def restore(self, state: dict[str, str]) -> None:
        """The key of ``state``; ``public_key`` stays None when the key was planned but not
        generated (the crash came first)."""
        if "key_id" in state:
            self.key_id = bytes.fromhex(state["key_id"])
            self.public_key = self.token.find_public_key(self.key_id)
