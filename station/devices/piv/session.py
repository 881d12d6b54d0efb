"""``PivSession``: the SP 800-73-4 Part 2 card commands, named after the standard.

Protocol only: no UI, no policy. Higher layers decide whether to spend a PIN try.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from station.cancel import check as check_cancel
from station.devices import tlv
from station.devices.apdu import SW_OK, SmartCardProtocol
from station.devices.atr import supports_extended_length
from station.devices.pkcs1 import emsa_pkcs1_v15
from station.devices.connection import Interface, SmartCardConnection
from station.devices.errors import (
    FileNotFound,
    InvalidPinFormat,
    NotPivCard,
    ProtocolError,
    TlvError,
    error_for_sw,
)
from station.devices.piv import mgmkey
from station.devices.piv.chuid import Chuid
from station.devices.piv.constants import (
    DERIVED_PIV_AID,
    INS_ATTEST,
    INS_CHANGE_REFERENCE_DATA,
    INS_GENERAL_AUTHENTICATE,
    INS_GENERATE_ASYMMETRIC_KEY_PAIR,
    INS_GET_DATA,
    INS_GET_METADATA,
    INS_GET_SERIAL,
    INS_GET_VERSION,
    INS_PUT_DATA,
    INS_RESET_RETRY_COUNTER,
    INS_SELECT,
    INS_SET_MANAGEMENT_KEY,
    INS_VERIFY,
    PIV_AID,
    TAG_AUTH_CHALLENGE,
    TAG_AUTH_RESPONSE,
    TAG_AUTH_WITNESS,
    TAG_DYNAMIC_AUTH,
    TAG_PIN_POLICY,
    Algorithm,
    KeyRef,
    ObjectId,
    PinPolicyOnKey,
    Slot,
)
from station.devices.piv.containers import CertificateContainer, DiscoveryObject

PIN_LENGTH = 8
PIN_DIGITS = frozenset("0123456789")
TOKEN_PIN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def encode_pin(pin: str, *, key_ref: KeyRef = KeyRef.PIN, token: bool = False) -> bytes:
    """FIPS 201-3 §4.3.1: 6-8 digits padded with FF to 8 bytes; a PUK is 8 bytes of any value.
    ``token=True`` allows the Derived PIV token alphabet (SP 800-157r1 App. B)."""
    if key_ref == KeyRef.PUK:
        raw = pin.encode("ascii", "replace")
        if not 6 <= len(raw) <= PIN_LENGTH:
            raise InvalidPinFormat("the PUK must be 6 to 8 characters")
        return raw.ljust(PIN_LENGTH, b"\xff")
    allowed = TOKEN_PIN_CHARS if token else PIN_DIGITS
    if not 6 <= len(pin) <= PIN_LENGTH or not set(pin) <= allowed:
        raise InvalidPinFormat("the PIN must be 6 to 8 " + ("characters from 0-9, A-Z, a-z" if token else "digits"))
    return pin.encode("ascii").ljust(PIN_LENGTH, b"\xff")


@dataclass(frozen=True)
class PinStatus:
    """Result of VERIFY without data: spends no try."""

    verified: bool
    retries_left: int | None  # None when the card does not say (already verified)
    blocked: bool = False


class PivSession:
    """A PIV Card Application on one connection.

    ``cancel`` (a :class:`threading.Event`, settable later as ``session.cancel``) is checked
    before each command: once set, the next command raises :class:`~station.cancel.Cancelled`
    instead of being sent. A command already under way (its chained parts, its GET RESPONSEs)
    always finishes; :meth:`reset` is never refused, so a card can be reset after a cancel."""

    def __init__(self, connection: SmartCardConnection, *, aid: bytes | None = None, extended: bool | None = None,
                 cancel: threading.Event | None = None):
        """``extended=None`` uses extended-length APDUs when the ATR announces them."""
        self.connection = connection
        self.cancel = cancel
        if extended is None:
            extended = supports_extended_length(connection.atr)
        self.protocol = SmartCardProtocol(connection, extended=extended)
        self.aid = PIV_AID
        self.application_property_template = self.select(aid) if aid else self._select_any()

    @property
    def interface(self) -> Interface:
        return self.connection.interface

    # --- SELECT -------------------------------------------------------------------------
    def _command(self, name: str) -> None:
        """A safe point: between two commands, never inside one."""
        check_cancel(self.cancel, f"before {name}")

    def select(self, aid: bytes = PIV_AID) -> bytes:
        """SELECT the application by AID; returns the Application Property Template (61)."""
        self._command("SELECT")
        return self._select(aid)

    def _select(self, aid: bytes) -> bytes:
        resp, sw = self.protocol.transmit(0x00, INS_SELECT, 0x04, 0x00, aid)
        if sw in (0x6A82, 0x6A86, 0x6D00, 0x6E00):
            raise NotPivCard("the card has no PIV application")
        if sw != SW_OK:
            raise error_for_sw(sw)
        self.aid = aid
        return resp

    def reset(self) -> None:
        """Reset the card (a verified PIN no longer counts) and SELECT this application again."""
        self.connection.reset()
        self._select(self.aid)

    def _select_any(self) -> bytes:
        try:
            return self.select(PIV_AID)
        except NotPivCard:
            return self.select(DERIVED_PIV_AID)

    # --- GET DATA / PUT DATA --------------------------------------------------------------
    def get_data(self, object_id: int) -> bytes:
        """GET DATA; returns the content of the 53 container (for 7E: the whole 7E TLV)."""
        self._command("GET DATA")
        tag = tlv.encode_tag(int(object_id))
        resp = self.protocol.send_apdu(0x00, INS_GET_DATA, 0x3F, 0xFF, tlv.encode_tlv(0x5C, tag))
        if int(object_id) == ObjectId.DISCOVERY:
            tlv.parse_tlv(resp, 0x7E)
            return resp
        return tlv.unwrap(resp, 0x53)

    def put_data(self, object_id: int, content: bytes) -> None:
        """PUT DATA with 5C tag and 53 content (for 7E: ``content`` is the whole 7E TLV)."""
        self._command("PUT DATA")
        tag = tlv.encode_tag(int(object_id))
        body = content if int(object_id) == ObjectId.DISCOVERY else tlv.encode_tlv(0x53, content)
        self.protocol.send_apdu(0x00, INS_PUT_DATA, 0x3F, 0xFF, tlv.encode_tlv(0x5C, tag) + body, le=None)

    def read_optional(self, object_id: int) -> bytes | None:
        """GET DATA, or None when the card does not hold the object (6A82 or empty)."""
        try:
            data = self.get_data(object_id)
        except FileNotFound:
            return None
        if int(object_id) == ObjectId.DISCOVERY:
            return data if tlv.unwrap(data, 0x7E) else None
        return data

    def read_discovery(self) -> DiscoveryObject | None:
        data = self.read_optional(ObjectId.DISCOVERY)
        return DiscoveryObject.from_bytes(data) if data else None

    def read_chuid(self) -> Chuid:
        return Chuid.from_bytes(self.get_data(ObjectId.CHUID))

    def read_certificate_container(self, slot: Slot) -> CertificateContainer:
        return CertificateContainer.from_bytes(self.get_data(Slot(slot).object_id))

    def read_certificate(self, slot: Slot) -> x509.Certificate:
        return self.read_certificate_container(slot).certificate

    def read_security_object(self) -> bytes:
        return self.get_data(ObjectId.SECURITY_OBJECT)

    def read_facial_image(self) -> bytes:
        """PIN-protected (VERIFY first)."""
        return self.get_data(ObjectId.FACIAL_IMAGE)

    def read_fingerprints(self) -> bytes:
        """PIN-protected (VERIFY first)."""
        return self.get_data(ObjectId.FINGERPRINTS)

    def read_printed_information(self) -> bytes:
        """PIN-protected (VERIFY first)."""
        return self.get_data(ObjectId.PRINTED_INFORMATION)

    def read_ccc(self) -> bytes:
        return self.get_data(ObjectId.CARD_CAPABILITY_CONTAINER)

    def pin_key_reference(self) -> KeyRef:
        """The PIN the cardholder uses: the Global PIN (00) when the Discovery Object makes it
        primary, else the PIV Card Application PIN (80)."""
        disco = self.read_discovery()
        return disco.pin_key_reference if disco else KeyRef.PIN

    def put_certificate(self, slot: Slot, certificate: x509.Certificate, *, compress: bool = False) -> None:
        container = CertificateContainer(certificate.public_bytes(Encoding.DER), compress)
        self.put_data(Slot(slot).object_id, container.to_bytes())

    # --- PINs ------------------------------------------------------------------------------
    def get_pin_status(self, key_ref: KeyRef = KeyRef.PIN) -> PinStatus:
        """VERIFY with no data: the retry counter, without spending a try."""
        self._command("VERIFY")
        _, sw = self.protocol.transmit(0x00, INS_VERIFY, 0x00, int(key_ref), b"", le=None)
        if sw == SW_OK:
            return PinStatus(verified=True, retries_left=None)
        if sw & 0xFFF0 == 0x63C0:
            return PinStatus(verified=False, retries_left=sw & 0x0F)
        if sw == 0x6983:
            return PinStatus(verified=False, retries_left=0, blocked=True)
        raise error_for_sw(sw)

    def verify(self, pin: str, key_ref: KeyRef = KeyRef.PIN, *, token: bool = False) -> None:
        """VERIFY the application PIN (80), the Global PIN (00) or the PUK (81)."""
        self._command("VERIFY")
        data = encode_pin(pin, key_ref=key_ref, token=token)
        _, sw = self.protocol.transmit(0x00, INS_VERIFY, 0x00, int(key_ref), data, le=None)
        if sw != SW_OK:
            raise error_for_sw(sw)

    def change_reference_data(self, key_ref: KeyRef, current: str, new: str, *, token: bool = False) -> None:
        """CHANGE REFERENCE DATA: the current value is needed to set a new one."""
        self._command("CHANGE REFERENCE DATA")
        data = encode_pin(current, key_ref=key_ref, token=token) + encode_pin(new, key_ref=key_ref, token=token)
        self.protocol.send_apdu(0x00, INS_CHANGE_REFERENCE_DATA, 0x00, int(key_ref), data, le=None)

    def reset_retry_counter(self, puk: str, new_pin: str, *, token: bool = False) -> None:
        """RESET RETRY COUNTER: unblock the PIN with the PUK and set a new PIN."""
        self._command("RESET RETRY COUNTER")
        data = encode_pin(puk, key_ref=KeyRef.PUK) + encode_pin(new_pin, token=token)
        self.protocol.send_apdu(0x00, INS_RESET_RETRY_COUNTER, 0x00, int(KeyRef.PIN), data, le=None)

    # --- GENERAL AUTHENTICATE ----------------------------------------------------------------
    def general_authenticate(self, algorithm: Algorithm, key_ref: int, items: list[tuple[int, bytes]]) -> dict[int, bytes]:
        """GENERAL AUTHENTICATE with a 7C dynamic authentication template; returns its fields."""
        self._command("GENERAL AUTHENTICATE")
        body = tlv.encode_tlv(TAG_DYNAMIC_AUTH, tlv.encode_tlvs(items))
        resp = self.protocol.send_apdu(0x00, INS_GENERAL_AUTHENTICATE, int(algorithm), int(key_ref), body)
        try:
            return tlv.tlv_map(tlv.unwrap(resp, TAG_DYNAMIC_AUTH))
        except TlvError as exc:
            raise ProtocolError(f"GENERAL AUTHENTICATE reply is malformed: {exc}") from None

    def sign(self, slot: Slot, algorithm: Algorithm, message: bytes, hash_algorithm: hashes.HashAlgorithm = hashes.SHA256()) -> bytes:
        """Sign ``message`` with the key in ``slot``: RSA PKCS#1 v1.5 (block built here) or
        ECDSA (the card signs the hash; the reply is a DER ECDSA-Sig-Value)."""
        h = hashes.Hash(hash_algorithm)
        h.update(message)
        digest = h.finalize()
        if algorithm.is_rsa:
            size = 256 if algorithm == Algorithm.RSA_2048 else 128
            payload = emsa_pkcs1_v15(hash_algorithm.name, digest, size)
        elif algorithm.is_ec:
            field = 32 if algorithm == Algorithm.ECC_P256 else 48
            payload = digest[:field]
        else:
            raise ValueError(f"{algorithm!r} is not a signature algorithm")
        fields = self.general_authenticate(algorithm, slot, [(TAG_AUTH_RESPONSE, b""), (TAG_AUTH_CHALLENGE, payload)])
        if TAG_AUTH_RESPONSE not in fields:
            raise ProtocolError("GENERAL AUTHENTICATE reply has no response (82)")
        return fields[TAG_AUTH_RESPONSE]

    def authenticate_management_key(self, key: bytes, algorithm: Algorithm = Algorithm.TDEA_3KEY) -> None:
        """Mutual authentication with the card management key (9B), SP 800-73-4 Part 2 App. A.2."""
        mgmkey.check_key(algorithm, key)
        size = mgmkey.block_size(algorithm)
        step1 = self.general_authenticate(algorithm, KeyRef.MANAGEMENT, [(TAG_AUTH_WITNESS, b"")])
        witness = step1.get(TAG_AUTH_WITNESS, b"")
        if len(witness) != size:
            raise ProtocolError("management key witness has the wrong length")
        challenge = os.urandom(size)
        step2 = self.general_authenticate(
            algorithm,
            KeyRef.MANAGEMENT,
            [(TAG_AUTH_WITNESS, mgmkey.decrypt_block(algorithm, key, witness)), (TAG_AUTH_CHALLENGE, challenge)],
        )
        if step2.get(TAG_AUTH_RESPONSE) != mgmkey.encrypt_block(algorithm, key, challenge):
            raise mgmkey.ManagementKeyError("the card failed to prove it holds the same management key")

    # --- Key generation ----------------------------------------------------------------------
    def generate_asymmetric_key_pair(self, slot: Slot, algorithm: Algorithm, *, pin_policy: PinPolicyOnKey | None = None):
        """GENERATE ASYMMETRIC KEY PAIR; returns the public key (cryptography object).
        ``pin_policy`` (tag AA) is a YubiKey-compatible token's extension, not SP 800-73-4's:
        give it only to a token that answers :meth:`get_version`."""
        self._command("GENERATE ASYMMETRIC KEY PAIR")
        items = [(0x80, bytes([int(algorithm)]))] + ([(TAG_PIN_POLICY, bytes([int(pin_policy)]))] if pin_policy else [])
        resp = self.protocol.send_apdu(0x00, INS_GENERATE_ASYMMETRIC_KEY_PAIR, 0x00, int(slot),
                                       tlv.encode_tlv(0xAC, tlv.encode_tlvs(items)))
        return parse_public_key(algorithm, resp)

    # --- YubiKey-compatible tokens' vendor commands (yubikit's names; STANDARDS.md "Tokens") --------
    def get_version(self) -> tuple[int, int, int] | None:
        """GET VERSION (INS FD): the token's firmware version; None from a card without the
        vendor commands (a plain SP 800-73-4 card answers 6D00)."""
        self._command("GET VERSION")
        resp, sw = self.protocol.transmit(0x00, INS_GET_VERSION, 0x00, 0x00, b"")
        if sw in (0x6D00, 0x6E00, 0x6A81) or (sw == SW_OK and len(resp) != 3):
            return None
        if sw != SW_OK:
            raise error_for_sw(sw)
        return resp[0], resp[1], resp[2]

    def get_serial(self) -> int:
        """GET SERIAL (INS F8): the token's serial number."""
        self._command("GET SERIAL")
        return int.from_bytes(self.protocol.send_apdu(0x00, INS_GET_SERIAL, 0x00, 0x00), "big")

    def get_metadata(self, key_ref: int) -> dict[int, bytes]:
        """GET METADATA (INS F7) of a key, PIN, PUK or the management key: 01 algorithm,
        02 PIN/touch policy, 03 origin (01 generated), 04 public key, 05 default value, 06 retries."""
        self._command("GET METADATA")
        resp = self.protocol.send_apdu(0x00, INS_GET_METADATA, 0x00, int(key_ref))
        try:
            return tlv.tlv_map(resp)
        except TlvError as exc:
            raise ProtocolError(f"GET METADATA reply is malformed: {exc}") from None

    def set_management_key(self, algorithm: Algorithm, key: bytes) -> None:
        """SET MANAGEMENT KEY (INS FF, no touch): after :meth:`authenticate_management_key`."""
        mgmkey.check_key(algorithm, key)
        self._command("SET MANAGEMENT KEY")
        self.protocol.send_apdu(0x00, INS_SET_MANAGEMENT_KEY, 0xFF, 0xFF,
                                bytes([int(algorithm)]) + tlv.encode_tlv(KeyRef.MANAGEMENT, key), le=None)

    def attest(self, slot: Slot) -> x509.Certificate:
        """ATTEST (INS F9): the token's certificate that it generated the key in ``slot``."""
        self._command("ATTEST")
        resp = self.protocol.send_apdu(0x00, INS_ATTEST, int(slot), 0x00)
        try:
            return x509.load_der_x509_certificate(resp)
        except ValueError:
            raise ProtocolError("ATTEST reply is not a certificate") from None


def parse_public_key(algorithm: Algorithm, data: bytes):
    """A 7F49 public key template: 86 EC point, or 81 modulus + 82 exponent."""
    try:
        fields = tlv.tlv_map(tlv.unwrap(data, 0x7F49))
    except TlvError as exc:
        raise ProtocolError(f"public key template is malformed: {exc}") from None
    try:
        if algorithm.is_ec:
            curve = ec.SECP256R1() if algorithm == Algorithm.ECC_P256 else ec.SECP384R1()
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, fields[0x86])
        n = int.from_bytes(fields[0x81], "big")
        e = int.from_bytes(fields[0x82], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError):
        raise ProtocolError("public key template lacks a valid key") from None


def encode_public_key(public_key) -> bytes:
    """The 7F49 template for a public key (the card side of GENERATE)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        inner = [(0x86, public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))]
    else:
        numbers = public_key.public_numbers()
        inner = [
            (0x81, numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            (0x82, numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        ]
    return tlv.encode_tlv(0x7F49, tlv.encode_tlvs(inner))


def algorithm_for_key(public_key) -> Algorithm:
    """The PIV algorithm identifier of a certificate's public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return {2048: Algorithm.RSA_2048, 1024: Algorithm.RSA_1024}[public_key.key_size]
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": Algorithm.ECC_P256, "secp384r1": Algorithm.ECC_P384}[public_key.curve.name]
    raise ValueError("unsupported public key type")


__all__ = [
    "PivSession",
    "PinStatus",
    "encode_pin",
    "parse_public_key",
    "encode_public_key",
    "algorithm_for_key",
]
