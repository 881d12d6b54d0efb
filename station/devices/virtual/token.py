"""A blank PIV token that administration tools for YubiKeys can drive.

:class:`VirtualPivToken` is the SP 800-73-4 card of ``card.py`` plus the vendor instructions
that yubico-piv-tool and yubikey-manager send (Yubico's PIV extensions, developers.yubico.com
"PIV/Introduction/Yubico_extensions"; encodings as in yubikit's ``piv.py`` and yubico-piv-tool's
``ykpiv.h``): GET VERSION (FD), GET SERIAL (F8), GET METADATA (F7), SET MANAGEMENT KEY (FF),
IMPORT KEY (FE), SET PIN RETRIES (FA), RESET (FB) and ATTEST (F9). Keys carry a PIN policy
(tag AA: never, once, always; the default depends on the slot) and a touch policy (tag AB;
the user is simulated as always touching, so it is only recorded). The ``firmware`` version
decides the default management key algorithm: 3DES before 5.7, AES-192 from 5.7 on (same
well-known value). Attestation certificates are signed by the key in slot F9, whose
certificate (object 5FFF01) is issued by a test root the token derives from its serial; it is
a test root, never Yubico's. The plain card (``--from``) keeps none of this.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from enum import IntEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from station.devices import tlv
from station.devices.apdu import CommandApdu
from station.devices.connection import Interface
from station.devices.piv import mgmkey
from station.devices.piv import constants
from station.devices.piv.constants import (AES_DEFAULT_FROM, AES_MANAGEMENT_KEY_FROM, ATTESTATION_OBJECT, INS_ATTEST,
                                           INS_GET_METADATA, INS_GET_SERIAL, INS_GET_VERSION, INS_IMPORT_KEY, INS_RESET,
                                           INS_SET_MANAGEMENT_KEY, INS_SET_PIN_RETRIES, TAG_PIN_POLICY, TAG_TOUCH_POLICY,
                                           Algorithm, KeyRef, PinPolicyOnKey, Slot, TouchPolicy)
from station.devices.piv.containers import CertificateContainer
from station.devices.piv.session import TOKEN_PIN_CHARS, algorithm_for_key, encode_public_key
from station.devices.virtual.card import DEFAULT_PIN, DEFAULT_PUK, VirtualPivCard, _Counter, _pad, _Status

# GET METADATA reply tags.
META_ALGORITHM, META_POLICY, META_ORIGIN, META_PUBLIC_KEY, META_IS_DEFAULT, META_RETRIES = 1, 2, 3, 4, 5, 6
ALGORITHM_PIN = 0xFF  # the "algorithm" of the PIN and PUK in GET METADATA

ATTESTATION_SLOT = 0xF9
YUBICO_TRIES = 3  # PIN and PUK tries as shipped and after RESET
DEFAULT_FIRMWARE = (5, 4, 3)
METADATA_FROM = (5, 3, 0)
SERIAL_FROM = (5, 0, 0)

# Attestation certificate extensions (docs.yubico.com/hardware/oid/oid-piv-arc).
OID_FIRMWARE, OID_SERIAL, OID_POLICY, OID_FORM_FACTOR = (x509.ObjectIdentifier(oid) for oid in (
    constants.OID_FIRMWARE, constants.OID_SERIAL, constants.OID_POLICY, constants.OID_FORM_FACTOR))
FORM_FACTOR_USB_A_KEYCHAIN = 0x01

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ATTESTATION_NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_ATTESTATION_NOT_AFTER = datetime.datetime(2099, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


class Origin(IntEnum):
    GENERATED = 1
    IMPORTED = 2


# A YubiKey's default PIN policy per slot: 9C is "PIN always" (SP 800-73-4), 9E needs no PIN.
DEFAULT_PIN_POLICY = {Slot.AUTHENTICATION: PinPolicyOnKey.ONCE, Slot.SIGNATURE: PinPolicyOnKey.ALWAYS,
                      Slot.KEY_MANAGEMENT: PinPolicyOnKey.ONCE, Slot.CARD_AUTH: PinPolicyOnKey.NEVER}


@dataclass(frozen=True)
class KeyPolicy:
    """What the token remembers about a key beside the key itself."""

    pin: PinPolicyOnKey
    touch: TouchPolicy
    origin: Origin


def default_management_algorithm(firmware: tuple[int, int, int]) -> Algorithm:
    return Algorithm.AES_192 if tuple(firmware) >= AES_DEFAULT_FROM else Algorithm.TDEA_3KEY


def parse_firmware(text: str) -> tuple[int, int, int]:
    """``"5.7.1"`` -> ``(5, 7, 1)``."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"a firmware version is three numbers 0-255 like 5.7.1, not {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _derived_p256_key(label: bytes, serial: int) -> ec.EllipticCurvePrivateKey:
    digest = hashlib.sha256(label + b"\x00" + serial.to_bytes(4, "big")).digest()
    return ec.derive_private_key(int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # a leading 00 keeps it positive
    while len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return tlv.encode_tlv(0x02, body)


def _check_policy(raw: bytes | None, kind: type[IntEnum]):
    if raw is None:
        return kind(0)
    if len(raw) != 1 or raw[0] not in kind._value2member_map_:
        raise _Status(0x6A80)  # includes the biometric "match" PIN policies: no sensor here
    return kind(raw[0])


class VirtualPivToken(VirtualPivCard):
    """A PIV token as shipped: default PIN, PUK and management key, no keys, and an attestation
    key in slot F9. ``firmware`` is what GET VERSION reports and gates the vendor features the
    way the real firmware does (metadata from 5.3, AES management keys from 5.4)."""

    def __init__(
        self,
        *,
        firmware: tuple[int, int, int] = DEFAULT_FIRMWARE,
        serial: int | None = None,
        interface: Interface = Interface.CONTACT,
        label: str = "blank PIV token",
    ):
        self.firmware = tuple(firmware)
        if len(self.firmware) != 3 or not all(0 <= v < 256 for v in self.firmware):
            raise ValueError(f"firmware {firmware!r} is not three bytes")
        self.serial = serial if serial is not None else 10_000_000 + int.from_bytes(os.urandom(3), "big")
        super().__init__(interface=interface, label=label, pin_characters=TOKEN_PIN_CHARS,
                         management_algorithm=default_management_algorithm(self.firmware))
        self.form_factor = FORM_FACTOR_USB_A_KEYCHAIN
        self._make_attestation()
        self._factory_reset()

    def __repr__(self) -> str:
        version = ".".join(map(str, self.firmware))
        return f"<VirtualPivToken {self.label!r} {version} serial={self.serial} keys={len(self.keys)}>"

    # --- state ---------------------------------------------------------------------------------
    def power_on(self) -> None:
        super().power_on()
        self._pin_fresh = False  # a VERIFY since the last use of a "PIN always" key

    def _factory_reset(self) -> None:
        """What RESET leaves: defaults everywhere, no keys, no objects but the attestation
        certificate (the F9 key and certificate survive a reset, as on a YubiKey)."""
        attestation = self.objects.get(ATTESTATION_OBJECT)
        self.objects.clear()
        if attestation is not None:
            self.objects[ATTESTATION_OBJECT] = attestation
        self.keys.clear()
        self.policies: dict[int, KeyPolicy] = {}
        self.management_algorithm = default_management_algorithm(self.firmware)
        self.management_key = mgmkey.DEFAULT_MANAGEMENT_KEY
        self.management_touch = False
        self._pin = _Counter(_pad(DEFAULT_PIN), YUBICO_TRIES, YUBICO_TRIES)
        self._puk = _Counter(_pad(DEFAULT_PUK), YUBICO_TRIES, YUBICO_TRIES)
        self._pin_verified = self._mgmt_authenticated = self._pin_fresh = False

    @property
    def puk_tries(self) -> int:
        return self._puk.tries

    def policy(self, slot: int) -> KeyPolicy | None:
        """The PIN/touch policy and origin of the key in ``slot`` (None: no key there)."""
        if slot == ATTESTATION_SLOT:
            return self._attestation_policy
        if slot not in self.keys:
            return None
        return self.policies.get(slot) or KeyPolicy(DEFAULT_PIN_POLICY[Slot(slot)], TouchPolicy.NEVER, Origin.IMPORTED)

    # --- attestation ---------------------------------------------------------------------------
    def _make_attestation(self) -> None:
        """A test root and the F9 key and certificate it issues, both derived from the serial
        (so one token always presents the same root), P-256 with ECDSA-SHA256."""
        root_key = _derived_p256_key(b"station virtual PIV token: attestation root", self.serial)
        self.attestation_key = _derived_p256_key(b"station virtual PIV token: attestation key F9", self.serial)
        self._attestation_policy = KeyPolicy(PinPolicyOnKey.NEVER, TouchPolicy.NEVER, Origin.IMPORTED)
        org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Derived PIV Station test (not Yubico)")
        root_name = x509.Name([org, x509.NameAttribute(NameOID.COMMON_NAME, f"Virtual PIV Token Attestation Root {self.serial}")])
        f9_name = x509.Name([org, x509.NameAttribute(NameOID.COMMON_NAME, "Virtual PIV Token Attestation")])

        def build(subject, key, issuer_key, serial_number, path_length):
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject).issuer_name(root_name).public_key(key.public_key())
                .serial_number(serial_number)
                .not_valid_before(_ATTESTATION_NOT_BEFORE).not_valid_after(_ATTESTATION_NOT_AFTER)
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            )
            if key is self.attestation_key:
                builder = builder.add_extension(x509.UnrecognizedExtension(OID_FIRMWARE, bytes(self.firmware)), critical=False)
            return builder.sign(issuer_key, hashes.SHA256())

        self.attestation_root = build(root_name, root_key, root_key, self.serial * 2 + 1, 1)
        f9_cert = build(f9_name, self.attestation_key, root_key, self.serial * 2 + 2, 0)
        self.objects[ATTESTATION_OBJECT] = CertificateContainer(f9_cert.public_bytes(Encoding.DER)).to_bytes()

    def attestation_root_pem(self) -> bytes:
        return self.attestation_root.public_bytes(Encoding.PEM)

    def _attest(self, c: CommandApdu, data: bytes) -> bytes:
        slot = c.p1
        policy = self.policy(slot) if slot in Slot._value2member_map_ else None
        if policy is None:
            raise _Status(0x6A88)
        if policy.origin != Origin.GENERATED:
            raise _Status(0x6A80)  # only a key made on the token is attested
        raw = self.objects.get(ATTESTATION_OBJECT)
        if raw is None:
            raise _Status(0x6A88)
        f9_cert = CertificateContainer.from_bytes(raw).certificate
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"YubiKey PIV Attestation {slot:02x}")]))
            .issuer_name(f9_cert.subject)
            .public_key(self.keys[slot].public_key())
            .serial_number(int.from_bytes(os.urandom(16), "big") >> 1 or 1)
            .not_valid_before(f9_cert.not_valid_before_utc).not_valid_after(f9_cert.not_valid_after_utc)
            .add_extension(x509.UnrecognizedExtension(OID_FIRMWARE, bytes(self.firmware)), critical=False)
            .add_extension(x509.UnrecognizedExtension(OID_SERIAL, _der_integer(self.serial)), critical=False)
            .add_extension(x509.UnrecognizedExtension(OID_POLICY, bytes([policy.pin, policy.touch])), critical=False)
            .add_extension(x509.UnrecognizedExtension(OID_FORM_FACTOR, bytes([self.form_factor])), critical=False)
            .sign(self.attestation_key, hashes.SHA256())
        )
        return cert.public_bytes(Encoding.DER)

    # --- dispatch ------------------------------------------------------------------------------
    def _vendor_dispatch(self, ins: int):
        return {
            INS_GET_VERSION: self._get_version, INS_GET_SERIAL: self._get_serial, INS_GET_METADATA: self._get_metadata,
            INS_SET_MANAGEMENT_KEY: self._set_management_key, INS_IMPORT_KEY: self._import_key,
            INS_SET_PIN_RETRIES: self._set_pin_retries, INS_RESET: self._reset, INS_ATTEST: self._attest,
        }.get(ins)

    def _get_version(self, c: CommandApdu, data: bytes) -> bytes:
        return bytes(self.firmware)

    def _get_serial(self, c: CommandApdu, data: bytes) -> bytes:
        if self.firmware < SERIAL_FROM:
            raise _Status(0x6D00)
        return self.serial.to_bytes(4, "big")

    def _get_metadata(self, c: CommandApdu, data: bytes) -> bytes:
        if self.firmware < METADATA_FROM:
            raise _Status(0x6D00)
        if c.p1 != 0x00:
            raise _Status(0x6A86)
        ref = c.p2
        if ref in (KeyRef.PIN, KeyRef.PUK):
            counter, default = (self._pin, DEFAULT_PIN) if ref == KeyRef.PIN else (self._puk, DEFAULT_PUK)
            return tlv.encode_tlvs([
                (META_ALGORITHM, bytes([ALGORITHM_PIN])),
                (META_IS_DEFAULT, bytes([counter.value == _pad(default)])),
                (META_RETRIES, bytes([counter.max_tries, counter.tries])),
            ])
        if ref == KeyRef.MANAGEMENT:
            touch = TouchPolicy.ALWAYS if self.management_touch else TouchPolicy.NEVER
            return tlv.encode_tlvs([
                (META_ALGORITHM, bytes([self.management_algorithm])),
                (META_POLICY, bytes([PinPolicyOnKey.DEFAULT, touch])),
                (META_IS_DEFAULT, bytes([self.management_key == mgmkey.DEFAULT_MANAGEMENT_KEY])),
            ])
        policy = self.policy(ref) if ref in Slot._value2member_map_ or ref == ATTESTATION_SLOT else None
        if policy is None:
            raise _Status(0x6A88)
        key = self.attestation_key if ref == ATTESTATION_SLOT else self.keys[ref]
        public = tlv.unwrap(encode_public_key(key.public_key()), 0x7F49)
        return tlv.encode_tlvs([
            (META_ALGORITHM, bytes([algorithm_for_key(key.public_key())])),
            (META_POLICY, bytes([policy.pin, policy.touch])),
            (META_ORIGIN, bytes([policy.origin])),
            (META_PUBLIC_KEY, public),
        ])

    def _set_management_key(self, c: CommandApdu, data: bytes) -> bytes:
        if c.p1 != 0xFF or c.p2 not in (0xFF, 0xFE):
            raise _Status(0x6A86)
        if not self._mgmt_authenticated:
            raise _Status(0x6982)
        if len(data) < 3 or data[0] not in mgmkey.KEY_LENGTHS:
            raise _Status(0x6A80)
        algorithm = Algorithm(data[0])
        if algorithm != Algorithm.TDEA_3KEY and self.firmware < AES_MANAGEMENT_KEY_FROM:
            raise _Status(0x6A80)
        key = tlv.unwrap(data[1:], KeyRef.MANAGEMENT)
        if len(key) != mgmkey.KEY_LENGTHS[algorithm]:
            raise _Status(0x6A80)
        self.management_algorithm, self.management_key = algorithm, key
        self.management_touch = c.p2 == 0xFE  # touch is simulated: always given
        return b""

    def _set_pin_retries(self, c: CommandApdu, data: bytes) -> bytes:
        if not (self._mgmt_authenticated and self._pin_verified):
            raise _Status(0x6982)
        if not (1 <= c.p1 <= 0xFF and 1 <= c.p2 <= 0xFF):
            raise _Status(0x6A86)
        self._pin = _Counter(_pad(DEFAULT_PIN), c.p1, c.p1)
        self._puk = _Counter(_pad(DEFAULT_PUK), c.p2, c.p2)
        self._pin_verified = self._pin_fresh = False
        return b""

    def _reset(self, c: CommandApdu, data: bytes) -> bytes:
        if (c.p1, c.p2) != (0, 0):
            raise _Status(0x6A86)
        if self._pin.tries or self._puk.tries:
            raise _Status(0x6985)  # only when both the PIN and the PUK are blocked
        self._factory_reset()
        return b""

    # --- keys ----------------------------------------------------------------------------------
    def _generate(self, c: CommandApdu, data: bytes) -> bytes:
        """GENERATE with the Yubico policy tags: they are taken off the template (the plain
        card refuses them) and remembered once the card has made the key."""
        if not self._mgmt_authenticated:
            raise _Status(0x6982)
        template = tlv.tlv_map(tlv.unwrap(data, 0xAC))
        pin = _check_policy(template.pop(TAG_PIN_POLICY, None), PinPolicyOnKey)
        touch = _check_policy(template.pop(TAG_TOUCH_POLICY, None), TouchPolicy)
        reply = super()._generate(c, tlv.encode_tlv(0xAC, tlv.encode_tlvs(template.items())))
        self.policies[c.p2] = self._resolve(c.p2, pin, touch, Origin.GENERATED)
        return reply

    @staticmethod
    def _resolve(slot: int, pin: PinPolicyOnKey, touch: TouchPolicy, origin: Origin) -> KeyPolicy:
        return KeyPolicy(pin or DEFAULT_PIN_POLICY[Slot(slot)], touch or TouchPolicy.NEVER, origin)

    def _import_key(self, c: CommandApdu, data: bytes) -> bytes:
        if not self._mgmt_authenticated:
            raise _Status(0x6982)
        if c.p2 not in Slot._value2member_map_:
            raise _Status(0x6A86)
        fields = tlv.tlv_map(data)
        pin = _check_policy(fields.pop(TAG_PIN_POLICY, None), PinPolicyOnKey)
        touch = _check_policy(fields.pop(TAG_TOUCH_POLICY, None), TouchPolicy)
        key = self._imported_key(c.p1, fields)
        self.keys[Slot(c.p2)] = key
        self.policies[c.p2] = self._resolve(c.p2, pin, touch, Origin.IMPORTED)
        return b""

    @staticmethod
    def _imported_key(algorithm: int, fields: dict[int, bytes]):
        """The private key of an IMPORT KEY body: RSA as p, q, dP, dQ, qInv (tags 01-05, e =
        65537), EC as the private scalar (tag 06)."""
        if algorithm == Algorithm.RSA_2048:
            if set(fields) != {1, 2, 3, 4, 5}:
                raise _Status(0x6A80)
            p, q, dmp1, dmq1, iqmp = (int.from_bytes(fields[t], "big") for t in (1, 2, 3, 4, 5))
            e, n = 65537, p * q
            if n.bit_length() != 2048:
                raise _Status(0x6A80)
            d = pow(e, -1, (p - 1) * (q - 1))
            if (d % (p - 1), d % (q - 1), pow(q, -1, p)) != (dmp1, dmq1, iqmp):
                raise _Status(0x6A80)
            return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)).private_key()
        curve = {Algorithm.ECC_P256: ec.SECP256R1(), Algorithm.ECC_P384: ec.SECP384R1()}.get(algorithm)
        if curve is None or set(fields) != {6} or len(fields[6]) != (curve.key_size + 7) // 8:
            raise _Status(0x6A80)
        return ec.derive_private_key(int.from_bytes(fields[6], "big"), curve)

    # --- PIN policy ----------------------------------------------------------------------------
    def _verify(self, c: CommandApdu, data: bytes) -> bytes:
        if data or c.p1 == 0xFF:
            self._pin_fresh = False
        reply = super()._verify(c, data)
        if data:
            self._pin_fresh = True  # reached only when the PIN was right
        return reply

    @property
    def contactless_rules(self) -> bool:
        """A YubiKey lets the PIN, its keys and card management work over NFC as over USB,
        contrary to SP 800-73-4's contactless rules (which the plain card keeps)."""
        return False

    def _authorize_key(self, slot: Slot) -> None:
        """A private-key operation under the key's own PIN policy (instead of the card's slot
        rules): never (no PIN), once (the PIN verified in this session) or always (a VERIFY
        since the last such operation, used up by this one)."""
        policy = self.policy(slot)
        if policy is None:
            return super()._authorize_key(slot)
        if policy.pin == PinPolicyOnKey.ALWAYS:
            if not (self._pin_verified and self._pin_fresh):
                raise _Status(0x6982)
            self._pin_fresh = False
        elif policy.pin == PinPolicyOnKey.ONCE and not self._pin_verified:
            raise _Status(0x6982)

    # --- objects -------------------------------------------------------------------------------
    @staticmethod
    def _read_needs_pin(tag: int) -> bool:
        """A YubiKey reads every object without the PIN but the biometrics, the facial image and
        the printed information (and 5FFF00, where ykman keeps its own data, is one of them)."""
        return tag in _PIN_PROTECTED


# Fingerprints, facial image, printed information, iris images.
_PIN_PROTECTED = {0x5FC103, 0x5FC108, 0x5FC109, 0x5FC121}
